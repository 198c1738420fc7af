use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use domain::Error;
use domain::auth::{Password, PasswordCheck, PasswordHash, PasswordHasher};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

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

/// How much hashing may run at once and how long a request may wait for its turn.
///
/// Each hash holds `memory_kib` of RAM and a core for tens of milliseconds, and the
/// requests that cause them are anonymous: without these bounds a flood of
/// registrations (or of requests abandoned mid-hash) grows memory and threads without
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCapacity {
    /// Hashes running at once, ever (`PASSWORD_HASH_CONCURRENCY`).
    pub concurrency: usize,
    /// Requests waiting for a turn, at most (`PASSWORD_HASH_QUEUE`); the next is refused.
    pub queue: usize,
    /// How long a request waits for a turn before it is refused (`PASSWORD_HASH_WAIT_MS`).
    pub wait: Duration,
}

impl Default for HashCapacity {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            queue: 64,
            wait: Duration::from_millis(2000),
        }
    }
}

impl HashCapacity {
    /// Checks the bounds: every one must allow some work.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("the hash concurrency must be at least 1".into());
        }
        if self.queue == 0 {
            return Err("the hash queue must hold at least 1 waiter".into());
        }
        if self.wait.is_zero() {
            return Err("the hash wait must be longer than 0".into());
        }
        Ok(())
    }

    /// What new passwords (registrations, password changes) may take of the running
    /// slots and of the queue: half, rounded down, at least one. The rest is kept for
    /// logins, so a registration flood cannot starve them.
    fn new_password_share(total: usize) -> usize {
        (total / 2).max(1)
    }
}

/// Which budget a piece of hashing work draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Verifying a login (and the dummy verification of an unknown account).
    Login,
    /// Hashing a new password: registration, password change, rehash on login.
    NewPassword,
}

/// Admission to the hashing slots: bounded waiting, bounded running, and a share of
/// both that new passwords cannot take from logins.
struct Gate {
    capacity: HashCapacity,
    /// `capacity.concurrency` permits; every hash holds one while it runs.
    running: Arc<Semaphore>,
    /// The share of `running` that new passwords may hold.
    new_passwords: Arc<Semaphore>,
    /// Waiters now: (all, new passwords).
    waiting: Mutex<(usize, usize)>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// Both permits a hash holds; released when the hash ends, not when its caller leaves.
struct Permits {
    _running: OwnedSemaphorePermit,
    _share: Option<OwnedSemaphorePermit>,
}

/// One place in the queue, given back when the wait ends either way.
struct Waiting<'a> {
    gate: &'a Gate,
    purpose: Purpose,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .gate
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.0 -= 1;
        if self.purpose == Purpose::NewPassword {
            waiting.1 -= 1;
        }
    }
}

/// Counts a hash as running for as long as it lives.
struct InFlight<'a>(&'a Gate);

impl<'a> InFlight<'a> {
    fn enter(gate: &'a Gate) -> Self {
        let now = gate.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let peak = gate.peak.fetch_max(now, Ordering::SeqCst).max(now);
        metrics::gauge!("password_hashes_in_flight").set(now as f64);
        metrics::gauge!("password_hashes_in_flight_peak").set(peak as f64);
        Self(gate)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let now = self.0.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("password_hashes_in_flight").set(now as f64);
    }
}

fn refused(reason: &'static str) -> Error {
    metrics::counter!("password_hash_refused_total", "reason" => reason).increment(1);
    Error::unavailable(format!(
        "password hashing is at capacity ({reason}); retry shortly"
    ))
}

impl Gate {
    fn new(capacity: HashCapacity) -> Self {
        let share = HashCapacity::new_password_share(capacity.concurrency);
        Self {
            capacity,
            running: Arc::new(Semaphore::new(capacity.concurrency)),
            new_passwords: Arc::new(Semaphore::new(share)),
            waiting: Mutex::new((0, 0)),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// A place in the queue, or `None` when this purpose's part of it is full.
    fn enqueue(&self, purpose: Purpose) -> Option<Waiting<'_>> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let share = HashCapacity::new_password_share(self.capacity.queue);
        if waiting.0 >= self.capacity.queue
            || (purpose == Purpose::NewPassword && waiting.1 >= share)
        {
            return None;
        }
        waiting.0 += 1;
        if purpose == Purpose::NewPassword {
            waiting.1 += 1;
        }
        Some(Waiting {
            gate: self,
            purpose,
        })
    }

    /// Waits (bounded in number and in time) for the permits a hash needs.
    async fn admit(&self, purpose: Purpose) -> Result<Permits, Error> {
        let place = self.enqueue(purpose).ok_or_else(|| refused("queue_full"))?;
        let acquire = async {
            // The share first: a new password waiting for it holds no running slot, so
            // logins keep theirs.
            let share = match purpose {
                Purpose::NewPassword => Some(self.new_passwords.clone().acquire_owned().await?),
                Purpose::Login => None,
            };
            let running = self.running.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>(Permits {
                _running: running,
                _share: share,
            })
        };
        let permits = match tokio::time::timeout(self.capacity.wait, acquire).await {
            Ok(Ok(permits)) => permits,
            Ok(Err(closed)) => {
                return Err(Error::internal(format!(
                    "password hashing closed: {closed}"
                )));
            }
            Err(_) => return Err(refused("wait_timeout")),
        };
        drop(place);
        Ok(permits)
    }
}

/// [`PasswordHasher`] with argon2id. Every hash and verification runs on tokio's
/// blocking pool, so a burst of logins never stalls the async workers; a [`Gate`]
/// bounds how many run and wait.
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
    gate: Gate,
}

impl Argon2Hasher {
    pub fn new(settings: Argon2Settings, capacity: HashCapacity) -> Result<Self, String> {
        let params = settings.params()?;
        capacity.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
                settings,
                dummy: OnceCell::new(),
                gate: Gate::new(capacity),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        purpose: Purpose,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permits = self.inner.gate.admit(purpose).await?;
        let inner = self.inner.clone();
        // The permits move into the blocking work: when the caller goes away (a
        // cancelled call, a client that hung up) the hash still runs to its end, and
        // its slot stays taken until then. Counting only the callers would let
        // abandoned hashes pile up without limit.
        tokio::task::spawn_blocking(move || {
            let _permits = permits;
            let _running = InFlight::enter(&inner.gate);
            work(&inner)
        })
        .await
        .map_err(|e| Error::internal(format!("password hashing task failed: {e}")))
    }

    async fn dummy_hash(&self) -> Result<String, Error> {
        self.inner
            .dummy
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| Error::internal(e.to_string()))?;
                self.blocking(Purpose::Login, move |inner| inner.hash(&random))
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
        self.blocking(Purpose::NewPassword, move |inner| inner.hash(&password))
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
        self.blocking(Purpose::Login, move |inner| inner.verify(&password, &hash))
            .await
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), Error> {
        let dummy = self.dummy_hash().await?;
        let password = password.expose().as_bytes().to_vec();
        self.blocking(Purpose::Login, move |inner| {
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
        let hasher = Argon2Hasher::new(cheap(), HashCapacity::default()).unwrap();
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
        let old = Argon2Hasher::new(cheap(), HashCapacity::default()).unwrap();
        let pw = password("correct horse battery");
        let hash = old.hash(&pw).await.unwrap();
        let new = Argon2Hasher::new(
            Argon2Settings {
                iterations: 2,
                ..cheap()
            },
            HashCapacity::default(),
        )
        .unwrap();
        assert_eq!(
            new.verify(&pw, &hash).await.unwrap(),
            PasswordCheck::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn garbage_hashes_are_invalid_not_errors() {
        let hasher = Argon2Hasher::new(cheap(), HashCapacity::default()).unwrap();
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

    fn capacity(concurrency: usize, queue: usize, wait_ms: u64) -> HashCapacity {
        HashCapacity {
            concurrency,
            queue,
            wait: Duration::from_millis(wait_ms),
        }
    }

    /// Work that holds its slot until `release` is dropped or sent to.
    fn held(release: std::sync::mpsc::Receiver<()>) -> impl FnOnce(&Inner) + Send + 'static {
        move |_| {
            let _ = release.recv();
        }
    }

    #[tokio::test]
    async fn an_abandoned_hash_keeps_its_slot_until_it_ends() {
        let hasher = Argon2Hasher::new(cheap(), capacity(1, 8, 5000)).unwrap();
        let (release, held_until) = std::sync::mpsc::channel();
        // The caller gives up while the work runs, as a cancelled call does.
        let call = hasher.blocking(Purpose::Login, held(held_until));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), call)
                .await
                .is_err()
        );
        assert_eq!(hasher.inner.gate.running.available_permits(), 0);
        assert_eq!(hasher.inner.gate.in_flight.load(Ordering::SeqCst), 1);
        // The next one waits for the abandoned hash, not for its caller.
        let next = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.blocking(Purpose::Login, |_| ()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next.is_finished());
        release.send(()).unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(hasher.inner.gate.peak.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiting_is_bounded_in_number_and_in_time() {
        let hasher = Argon2Hasher::new(cheap(), capacity(1, 2, 200)).unwrap();
        let (release, held_until) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.blocking(Purpose::Login, held(held_until)).await }
        });
        while hasher.inner.gate.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // New passwords may take half of the queue (one place); logins the rest.
        let waiter = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.blocking(Purpose::NewPassword, |_| ()).await }
        });
        while hasher.inner.gate.waiting.lock().unwrap().1 == 0 {
            tokio::task::yield_now().await;
        }
        let second = hasher.blocking(Purpose::NewPassword, |_| ()).await;
        assert!(
            matches!(&second, Err(Error::Unavailable(e)) if e.to_string().contains("queue_full")),
            "{second:?}"
        );
        // The queued one is refused when its wait is over.
        let timed_out = waiter.await.unwrap();
        assert!(
            matches!(&timed_out, Err(Error::Unavailable(e)) if e.to_string().contains("wait_timeout")),
            "{timed_out:?}"
        );
        drop(release);
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn new_passwords_cannot_take_the_slots_kept_for_logins() {
        let hasher = Argon2Hasher::new(cheap(), capacity(2, 8, 5000)).unwrap();
        let (release, held_until) = std::sync::mpsc::channel::<()>();
        let registration = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .blocking(Purpose::NewPassword, held(held_until))
                    .await
            }
        });
        while hasher.inner.gate.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A second registration waits for the share, although a slot is free...
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.blocking(Purpose::NewPassword, |_| ()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!queued.is_finished());
        // ...which a login takes at once.
        tokio::time::timeout(
            Duration::from_secs(1),
            hasher.blocking(Purpose::Login, |_| ()),
        )
        .await
        .expect("a login is not kept waiting by registrations")
        .unwrap();
        drop(release);
        registration.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
    }

    #[test]
    fn impossible_parameters_are_refused() {
        assert!(
            Argon2Hasher::new(
                Argon2Settings {
                    memory_kib: 1,
                    ..cheap()
                },
                HashCapacity::default()
            )
            .is_err()
        );
        assert!(
            Argon2Hasher::new(
                Argon2Settings {
                    parallelism: 0,
                    ..cheap()
                },
                HashCapacity::default()
            )
            .is_err()
        );
        assert!(Argon2Hasher::new(cheap(), capacity(0, 1, 1)).is_err());
        assert!(Argon2Hasher::new(cheap(), capacity(1, 0, 1)).is_err());
        assert!(Argon2Hasher::new(cheap(), capacity(1, 1, 0)).is_err());
    }
}
