//! Idempotent creation: a client retrying a request with the same `Idempotency-Key` gets
//! the first response again instead of a second resource.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Error;

/// Identifies one request: the caller's scope and the key they chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// Whose key it is: a user id, or `anonymous` for unauthenticated registration.
    pub scope: String,
    pub key: String,
}

/// The response stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the caller does the work, then `complete`s or `release`s the key.
    New,
    /// Done before with the same request: send this again.
    Replay(StoredResponse),
    /// Used before with a different request.
    Mismatch,
    /// Another request with this key is being handled right now.
    InProgress,
}

/// Where idempotency keys and their responses are kept (for `ttl`, typically 24 h).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for a request whose fingerprint is `fingerprint`.
    ///
    /// MUST be atomic: of concurrent claims of one key exactly one gets [`Claim::New`].
    /// A key older than `expires_before` counts as unused. A claim that was never
    /// completed or released and is older than `stale_before` (its worker died) may be
    /// claimed again.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &[u8; 32],
        expires_before: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> Result<Claim, Error>;

    /// Stores the response of a claimed key, for replay.
    async fn complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> Result<(), Error>;

    /// Gives a claimed key up (the request failed), so a retry can do the work.
    async fn release(&self, key: &IdempotencyKey) -> Result<(), Error>;
}
