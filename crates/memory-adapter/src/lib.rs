//! In-memory implementations of every driven port.
//!
//! This is the embedded default (the service runs with no database at all) and a fast
//! double for tests. It passes the same contract suite as the Postgres adapter, so
//! behaviour seen here is behaviour seen in production.

mod accounts;
mod chat;
mod events;
mod health;
mod housekeeping;
mod idempotency;
mod jobs;
mod mail;
mod posts;
mod refresh;
mod tables;
mod users;

pub use accounts::MemoryAccountStore;
pub use chat::MemoryChatRepository;
pub use events::{MemoryEventBus, broadcast_stream};
pub use health::MemoryProbe;
pub use housekeeping::{MemoryHousekeeping, MemoryLeaseStore};
pub use idempotency::MemoryIdempotencyStore;
pub use jobs::MemoryJobQueue;
pub use mail::MemoryMailer;
pub use posts::MemoryPostRepository;
pub use refresh::MemoryRefreshTokenStore;
pub use users::MemoryUserRepository;

/// Locks a mutex, recovering the data if a holder panicked: every critical section here
/// leaves the data consistent before anything that could panic.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
