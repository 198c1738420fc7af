//! Logging in, refreshing, logging out, and proving who a request comes from.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Error;
use domain::auth::{
    AccessToken, AccessTokens, Claims, NewRefreshToken, Password, PasswordCheck, PasswordHash,
    PasswordHasher, Principal, RefreshToken, RefreshTokenStore, Rotation, SeenFrom, SessionId,
};
use domain::users::{Credentials, Email, UserRepository};

use crate::sessions::Revocations;

/// What a successful login or refresh hands the client.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: AccessToken,
    pub refresh: RefreshToken,
}

const BAD_CREDENTIALS: Error = Error::Unauthorized("invalid email or password");
const BAD_REFRESH: Error = Error::Unauthorized("invalid refresh token");
const BAD_TOKEN: Error = Error::Unauthorized("invalid or expired token");

/// The authentication use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AuthService: Send + Sync + 'static {
    /// Exchanges an e-mail and password for tokens, starting a session seen from
    /// `seen`. A wrong password and an unknown e-mail are the same
    /// [`Error::Unauthorized`], in about the same time; [`Error::EmailNotVerified`]
    /// (when verified addresses are required) only after the password checks out.
    async fn login(&self, email: &str, password: &str, seen: SeenFrom) -> Result<TokenPair, Error>;

    /// Spends a refresh token for a new pair in the same session, seen from `seen`. A
    /// token presented twice ends its session: [`Error::Unauthorized`], and the holder
    /// must log in again.
    async fn refresh(&self, refresh_token: &str, seen: SeenFrom) -> Result<TokenPair, Error>;

    /// Ends the session of a refresh token, its access tokens included. Unknown tokens
    /// are fine: logging out is idempotent.
    async fn logout(&self, refresh_token: &str) -> Result<(), Error>;

    /// What an access token proves, if its session has not ended;
    /// [`Error::Unauthorized`] otherwise. No storage is read.
    fn authenticate(&self, access_token: &str) -> Result<Claims, Error>;
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case), as
/// every transport reads it; `None` for any other scheme or shape.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// The application service behind [`AuthService`].
pub struct Auth {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn AccessTokens>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    refresh_ttl: Duration,
    /// A session's absolute lifetime, however often it is refreshed.
    refresh_absolute_ttl: Duration,
    revocations: Arc<Revocations>,
    /// Whether an account must have proved its address before it may log in.
    require_verified_email: bool,
}

impl Auth {
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn AccessTokens>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            users,
            hasher,
            tokens,
            revocations: Arc::new(Revocations::new(refresh_tokens.clone(), refresh_ttl)),
            refresh_tokens,
            refresh_ttl,
            refresh_absolute_ttl: Self::REFRESH_ABSOLUTE_TTL,
            require_verified_email: false,
        }
    }

    /// Refuses access tokens of the sessions `revocations` knows ended, and tells it
    /// of the sessions ended here (by logout, or a refresh token's reuse).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// Login of an account whose address is not verified is refused.
    pub fn requiring_verified_email(mut self, required: bool) -> Self {
        self.require_verified_email = required;
        self
    }

    /// A session's absolute lifetime unless configured: 30 days.
    pub const REFRESH_ABSOLUTE_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    /// Ends every session `ttl` after its login, however often it is refreshed.
    pub fn with_refresh_absolute_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_absolute_ttl = ttl;
        self
    }

    fn refresh_expiry(&self) -> time::OffsetDateTime {
        domain::now() + self.refresh_ttl
    }

    async fn start_session(
        &self,
        principal: Principal,
        seen: SeenFrom,
        proof: PasswordHash,
    ) -> Result<TokenPair, Error> {
        let session = SessionId::generate();
        let access = self.tokens.issue(&principal, session)?;
        let refresh = RefreshToken::generate()?;
        self.refresh_tokens
            .insert(&NewRefreshToken {
                hash: refresh.hash(),
                user_id: principal.user_id,
                family_id: session,
                expires_at: self.refresh_expiry(),
                family_expires_at: domain::now() + self.refresh_absolute_ttl,
                seen,
                proof: Some(proof),
            })
            .await?;
        Ok(TokenPair { access, refresh })
    }
}

#[async_trait]
impl AuthService for Auth {
    async fn login(&self, email: &str, password: &str, seen: SeenFrom) -> Result<TokenPair, Error> {
        let password = Password::candidate(password);
        let credentials = match Email::parse(email) {
            Ok(email) => self.users.credentials_by_email(&email).await?,
            Err(_) => None,
        };
        let Some((user, Some(hash))) = credentials.map(|c| (c.user, c.password_hash)) else {
            // Same work as a real check, so timing does not tell which accounts exist.
            self.hasher.verify_dummy(&password).await?;
            return Err(BAD_CREDENTIALS);
        };
        match self.hasher.verify(&password, &hash).await? {
            PasswordCheck::Invalid => Err(BAD_CREDENTIALS),
            PasswordCheck::Valid { needs_rehash } => {
                let mut proof = hash;
                if needs_rehash {
                    // The configured cost changed: upgrade the stored hash while we hold
                    // the plaintext, unless the password changed meanwhile. A failure
                    // here must not fail the login.
                    let rehashed = match self.hasher.hash(&password).await {
                        Ok(new) => self
                            .users
                            .rehash_password(&user.id, &proof, &new)
                            .await
                            .map(|done| done.then_some(new)),
                        Err(e) => Err(e),
                    };
                    match rehashed {
                        Ok(Some(new)) => proof = new,
                        // Changed meanwhile: by a concurrent login's rehash (the same
                        // password, still right) or by a password change (then not).
                        Ok(None) => match self.users.credentials_by_email(&user.email).await? {
                            Some(Credentials {
                                password_hash: Some(now),
                                ..
                            }) if matches!(
                                self.hasher.verify(&password, &now).await?,
                                PasswordCheck::Valid { .. }
                            ) =>
                            {
                                proof = now;
                            }
                            _ => return Err(BAD_CREDENTIALS),
                        },
                        Err(error) => {
                            tracing::warn!(user_id = %user.id, %error, "password rehash failed");
                        }
                    }
                }
                if self.require_verified_email && user.email_verified_at.is_none() {
                    return Err(Error::EmailNotVerified);
                }
                tracing::info!(user_id = %user.id, "logged in");
                match self
                    .start_session(
                        Principal {
                            user_id: user.id,
                            role: user.role,
                        },
                        seen,
                        proof,
                    )
                    .await
                {
                    // The password changed while this login checked the old one.
                    Err(Error::Unauthorized(_)) => Err(BAD_CREDENTIALS),
                    other => other,
                }
            }
        }
    }

    async fn refresh(&self, refresh_token: &str, seen: SeenFrom) -> Result<TokenPair, Error> {
        let presented = RefreshToken::presented(refresh_token);
        // What the new access token needs is read before the token is spent: a failure
        // here (the database away) leaves it usable, so the client's retry works.
        let Some(owner) = self.refresh_tokens.owner(&presented.hash()).await? else {
            return Err(BAD_REFRESH);
        };
        // The role may have changed since login: the new access token says what it is
        // now. A deleted user has no session.
        let Some(user) = crate::users::existing_user(&*self.users, owner).await? else {
            return Err(BAD_REFRESH);
        };
        let next = RefreshToken::generate()?;
        match self
            .refresh_tokens
            .rotate(
                &presented.hash(),
                &next.hash(),
                self.refresh_expiry(),
                &seen,
            )
            .await?
        {
            Rotation::Rotated { user_id, session } => {
                let access = self.tokens.issue(
                    &Principal {
                        user_id,
                        role: user.role,
                    },
                    session,
                )?;
                Ok(TokenPair {
                    access,
                    refresh: next,
                })
            }
            Rotation::Reused { user_id, session } => {
                tracing::warn!(
                    %user_id,
                    %session,
                    "a spent refresh token was presented again; its session is ended"
                );
                self.revocations.announce(user_id, &[session]).await;
                Err(BAD_REFRESH)
            }
            Rotation::Invalid => Err(BAD_REFRESH),
        }
    }

    async fn logout(&self, refresh_token: &str) -> Result<(), Error> {
        let presented = RefreshToken::presented(refresh_token).hash();
        if let Some((user, session)) = self.refresh_tokens.end_by_token(&presented).await? {
            self.revocations.announce(user, &[session]).await;
        }
        Ok(())
    }

    fn authenticate(&self, access_token: &str) -> Result<Claims, Error> {
        let claims = self.tokens.verify(access_token)?;
        if self.revocations.is_ended(claims.session) {
            return Err(BAD_TOKEN);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use domain::auth::{MockAccessTokens, MockPasswordHasher, MockRefreshTokenStore, PasswordHash};
    use domain::users::{Credentials, MockUserRepository, Role, User, UserName};

    use super::*;

    #[test]
    fn bearer_tokens_are_read_in_any_case_and_nothing_else_is() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        for other in ["Basic abc", "Bearer", "Bearer ", "abc", ""] {
            assert_eq!(bearer_token(other), None, "{other}");
        }
    }

    fn ada() -> User {
        User::new(
            UserName::parse("Ada").unwrap(),
            Email::parse("ada@example.com").unwrap(),
        )
    }

    fn tokens() -> MockAccessTokens {
        let mut tokens = MockAccessTokens::new();
        tokens.expect_issue().returning(|_, _| {
            Ok(AccessToken {
                token: "access".into(),
                expires_in: 900,
            })
        });
        tokens
    }

    fn store() -> MockRefreshTokenStore {
        let mut store = MockRefreshTokenStore::new();
        store.expect_insert().returning(|_| Ok(()));
        store
    }

    fn auth(
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        store: MockRefreshTokenStore,
    ) -> Auth {
        Auth::new(
            Arc::new(users),
            Arc::new(hasher),
            Arc::new(tokens()),
            Arc::new(store),
            Duration::from_secs(3600),
        )
    }

    fn with_credentials(user: User) -> MockUserRepository {
        let mut users = MockUserRepository::new();
        users.expect_credentials_by_email().returning(move |_| {
            Ok(Some(Credentials {
                user: user.clone(),
                password_hash: Some(PasswordHash::new("$argon2id$stored")),
            }))
        });
        users
    }

    #[tokio::test]
    async fn unknown_emails_cost_a_dummy_verification_and_look_like_wrong_passwords() {
        let mut users = MockUserRepository::new();
        users.expect_credentials_by_email().returning(|_| Ok(None));
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify_dummy().times(1).returning(|_| Ok(()));
        hasher.expect_verify().never();
        let err = auth(users, hasher, MockRefreshTokenStore::new())
            .login(
                "nobody@example.com",
                "whatever password",
                SeenFrom::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), BAD_CREDENTIALS.to_string());

        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|_, _| Ok(PasswordCheck::Invalid));
        let wrong = auth(
            with_credentials(ada()),
            hasher,
            MockRefreshTokenStore::new(),
        )
        .login("ada@example.com", "wrong password!", SeenFrom::default())
        .await
        .unwrap_err();
        assert_eq!(wrong.to_string(), err.to_string());
    }

    #[tokio::test]
    async fn malformed_emails_are_bad_credentials_too() {
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify_dummy().times(1).returning(|_| Ok(()));
        let err = auth(
            MockUserRepository::new(),
            hasher,
            MockRefreshTokenStore::new(),
        )
        .login("not an email", "whatever password", SeenFrom::default())
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)));
    }

    #[tokio::test]
    async fn an_unverified_address_is_refused_only_after_the_password_checks_out() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|_, _| Ok(PasswordCheck::Invalid));
        let strict = |users, hasher| {
            auth(users, hasher, MockRefreshTokenStore::new()).requiring_verified_email(true)
        };
        let wrong = strict(with_credentials(ada()), hasher)
            .login("ada@example.com", "wrong password!", SeenFrom::default())
            .await
            .unwrap_err();
        assert!(matches!(wrong, Error::Unauthorized(_)), "{wrong:?}");

        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().returning(|_, _| {
            Ok(PasswordCheck::Valid {
                needs_rehash: false,
            })
        });
        let right = strict(with_credentials(ada()), hasher)
            .login(
                "ada@example.com",
                "correct horse battery",
                SeenFrom::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(right, Error::EmailNotVerified), "{right:?}");

        let mut verified = ada();
        verified.email_verified_at = Some(domain::now());
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().returning(|_, _| {
            Ok(PasswordCheck::Valid {
                needs_rehash: false,
            })
        });
        let users = with_credentials(verified);
        auth(users, hasher, store())
            .requiring_verified_email(true)
            .login(
                "ada@example.com",
                "correct horse battery",
                SeenFrom::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_good_login_rehashes_when_parameters_changed() {
        let mut users = with_credentials(ada());
        users
            .expect_rehash_password()
            .withf(|_, old, new| {
                old.expose() == "$argon2id$stored" && new.expose() == "$argon2id$new"
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: true }));
        hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        // The session is started on the hash stored now, the new one.
        let mut store = MockRefreshTokenStore::new();
        store
            .expect_insert()
            .withf(|t| t.proof.as_ref().map(PasswordHash::expose) == Some("$argon2id$new"))
            .times(1)
            .returning(|_| Ok(()));
        let pair = auth(users, hasher, store)
            .login(
                "ada@example.com",
                "correct horse battery",
                SeenFrom::default(),
            )
            .await
            .unwrap();
        assert_eq!(pair.access.token, "access");
    }

    #[tokio::test]
    async fn a_login_whose_rehash_lost_a_race_to_another_login_still_succeeds() {
        let mut users = with_credentials(ada());
        // A concurrent login rehashed first: ours finds the old hash gone.
        users
            .expect_rehash_password()
            .returning(|_, _, _| Ok(false));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: true }));
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$ours")));
        let mut store = MockRefreshTokenStore::new();
        store
            .expect_insert()
            .withf(|t| t.proof.as_ref().map(PasswordHash::expose) == Some("$argon2id$stored"))
            .times(1)
            .returning(|_| Ok(()));
        auth(users, hasher, store)
            .login(
                "ada@example.com",
                "correct horse battery",
                SeenFrom::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_user_read_leaves_the_refresh_token_unspent() {
        let mut store = MockRefreshTokenStore::new();
        let user_id = ada().id;
        store.expect_owner().returning(move |_| Ok(Some(user_id)));
        // The token is not spent when the user cannot be read: the retry still works.
        store.expect_rotate().never();
        let mut users = MockUserRepository::new();
        users
            .expect_get()
            .returning(|_| Err(Error::unavailable("the database is away")));
        let err = auth(users, MockPasswordHasher::new(), store)
            .refresh("valid", SeenFrom::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_unknown_refresh_token_is_unauthorized_without_a_rotation() {
        let mut store = MockRefreshTokenStore::new();
        store.expect_owner().returning(|_| Ok(None));
        store.expect_rotate().never();
        let err = auth(MockUserRepository::new(), MockPasswordHasher::new(), store)
            .refresh("unknown", SeenFrom::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)));
    }

    #[tokio::test]
    async fn a_reused_refresh_token_is_unauthorized() {
        let mut store = MockRefreshTokenStore::new();
        let user = ada();
        let user_id = user.id;
        store.expect_owner().returning(move |_| Ok(Some(user_id)));
        store.expect_rotate().returning(move |_, _, _, _| {
            Ok(Rotation::Reused {
                user_id,
                session: SessionId::generate(),
            })
        });
        let mut users = MockUserRepository::new();
        users.expect_get().returning(move |_| Ok(user.clone()));
        let err = auth(users, MockPasswordHasher::new(), store)
            .refresh("spent", SeenFrom::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)));
    }

    #[tokio::test]
    async fn a_refresh_carries_the_current_role() {
        let mut admin = ada();
        admin.role = Role::Admin;
        let id = admin.id;
        let mut users = MockUserRepository::new();
        users.expect_get().returning(move |_| Ok(admin.clone()));
        let mut store = MockRefreshTokenStore::new();
        store.expect_owner().returning(move |_| Ok(Some(id)));
        store.expect_rotate().returning(move |_, _, _, _| {
            Ok(Rotation::Rotated {
                user_id: id,
                session: SessionId::generate(),
            })
        });
        let mut tokens = MockAccessTokens::new();
        tokens
            .expect_issue()
            .withf(|p, _| p.role == Role::Admin)
            .times(1)
            .returning(|_, _| {
                Ok(AccessToken {
                    token: "admin-access".into(),
                    expires_in: 900,
                })
            });
        let auth = Auth::new(
            Arc::new(users),
            Arc::new(MockPasswordHasher::new()),
            Arc::new(tokens),
            Arc::new(store),
            Duration::from_secs(60),
        );
        let pair = auth.refresh("valid", SeenFrom::default()).await.unwrap();
        assert_eq!(pair.access.token, "admin-access");
    }
}
