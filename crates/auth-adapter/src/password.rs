use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use domain::Error;
use domain::auth::{Password, PasswordCheck, PasswordHash, PasswordHasher};
use tokio::sync::{OnceCell, Semaphore};

/// argon2id cost parameters. The defaults are OWASP's recommendation (19 MiB, 2 passes,
/// 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl Argon2Settings {
    fn params(&self) -> Result<Params, String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }

    /// Checks the parameters without hashing anything.
    pub fn validate(&self) -> Result<(), String> {
        self.params().map(|_| ())
    }
}

/// [`PasswordHasher`] with argon2id. Every hash and verification runs on tokio's
/// blocking pool, so a burst of logins never stalls the async workers.
#[derive(Clone)]
pub struct Argon2Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    settings: Argon2Settings,
    /// A hash of a random password, made on first use, to verify against when the
    /// account does not exist.
    dummy: OnceCell<String>,
    /// Each hash holds `memory_kib` of RAM; at most one per core runs at a time, so a
    /// burst of registrations or logins queues instead of exhausting memory.
    permits: Semaphore,
}

impl Argon2Hasher {
    pub fn new(settings: Argon2Settings) -> Result<Self, String> {
        let params = settings.params()?;
        Ok(Self {
            inner: Arc::new(Inner {
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
                settings,
                dummy: OnceCell::new(),
                permits: Semaphore::new(
                    std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
                ),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| Error::internal(format!("password hashing closed: {e}")))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| Error::internal(format!("password hashing task failed: {e}")))
    }

    async fn dummy_hash(&self) -> Result<String, Error> {
        self.inner
            .dummy
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| Error::internal(e.to_string()))?;
                self.blocking(move |inner| inner.hash(&random))
                    .await?
                    .map_err(Error::internal)
            })
            .await
            .cloned()
    }
}

impl Inner {
    fn hash(&self, password: &[u8]) -> Result<String, String> {
        self.argon2
            .hash_password(password)
            .map(|h| h.to_string())
            .map_err(|e| format!("hashing a password failed: {e}"))
    }

    fn verify(&self, password: &[u8], phc: &str) -> PasswordCheck {
        let Ok(parsed) = argon2::PasswordHash::new(phc) else {
            return PasswordCheck::Invalid;
        };
        if self.argon2.verify_password(password, &parsed).is_err() {
            return PasswordCheck::Invalid;
        }
        let current = Params::try_from(&parsed).ok();
        let needs_rehash = parsed.algorithm != argon2::ARGON2ID_IDENT
            || current.is_none_or(|p| {
                p.m_cost() != self.settings.memory_kib
                    || p.t_cost() != self.settings.iterations
                    || p.p_cost() != self.settings.parallelism
            });
        PasswordCheck::Valid { needs_rehash }
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Error> {
        let password = password.expose().as_bytes().to_vec();
        self.blocking(move |inner| inner.hash(&password))
            .await?
            .map(PasswordHash::new)
            .map_err(Error::internal)
    }

    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<PasswordCheck, Error> {
        let password = password.expose().as_bytes().to_vec();
        let hash = hash.expose().to_owned();
        self.blocking(move |inner| inner.verify(&password, &hash))
            .await
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), Error> {
        let dummy = self.dummy_hash().await?;
        let password = password.expose().as_bytes().to_vec();
        self.blocking(move |inner| {
            inner.verify(&password, &dummy);
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn password(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let hasher = Argon2Hasher::new(cheap()).unwrap();
        let pw = password("correct horse battery");
        let a = hasher.hash(&pw).await.unwrap();
        let b = hasher.hash(&pw).await.unwrap();
        assert_ne!(a, b, "each hash has its own salt");
        assert!(a.expose().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&pw, &a).await.unwrap(),
            PasswordCheck::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(&password("wrong horse battery"), &a)
                .await
                .unwrap(),
            PasswordCheck::Invalid
        );
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = Argon2Hasher::new(cheap()).unwrap();
        let pw = password("correct horse battery");
        let hash = old.hash(&pw).await.unwrap();
        let new = Argon2Hasher::new(Argon2Settings {
            iterations: 2,
            ..cheap()
        })
        .unwrap();
        assert_eq!(
            new.verify(&pw, &hash).await.unwrap(),
            PasswordCheck::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn garbage_hashes_are_invalid_not_errors() {
        let hasher = Argon2Hasher::new(cheap()).unwrap();
        for garbage in ["", "not a hash", "$argon2id$v=19$m=1024,t=1,p=1$%%%$%%%"] {
            assert_eq!(
                hasher
                    .verify(
                        &password("correct horse battery"),
                        &PasswordHash::new(garbage)
                    )
                    .await
                    .unwrap(),
                PasswordCheck::Invalid,
                "{garbage:?}"
            );
        }
        hasher
            .verify_dummy(&password("correct horse battery"))
            .await
            .unwrap();
    }

    #[test]
    fn impossible_parameters_are_refused() {
        assert!(
            Argon2Hasher::new(Argon2Settings {
                memory_kib: 1,
                ..cheap()
            })
            .is_err()
        );
        assert!(
            Argon2Hasher::new(Argon2Settings {
                parallelism: 0,
                ..cheap()
            })
            .is_err()
        );
    }
}
