//! Ended sessions, known to every instance: access tokens are checked against this set
//! (in memory, no database query per request), and live connections of an ended
//! session are closed.
//!
//! An instance learns of an ending from the bus (published by whichever instance
//! ended it) and, since a bus may lose events, reloads the set from the store at start,
//! after every gap and every [`RELOAD_EVERY`]. An ended session is remembered only as long as an access
//! token of it could still be valid: the set stays as small as the number of sessions
//! ended within one token lifetime, which login's rate limits bound.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::Error;
use domain::auth::{EndSessions, RefreshTokenStore, SessionId};
use domain::events::{Event, EventBus, EventKind, Topic};
use domain::users::UserId;
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How often the set is reloaded from the store even without a gap.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// Session ids per bus event: the event stays well under `MAX_EVENT_BYTES`.
const IDS_PER_EVENT: usize = 100;

/// This instance's view of which sessions have ended.
pub struct Revocations {
    /// Each ended session with the instant its access tokens have all expired.
    ended: RwLock<HashMap<SessionId, OffsetDateTime>>,
    /// How long an access token may live: the access-token lifetime and its leeway.
    keep_for: Duration,
    store: Arc<dyn RefreshTokenStore>,
    bus: Option<Arc<dyn EventBus>>,
}

impl Revocations {
    /// Ended sessions of `store`, remembered for `keep_for` (the access-token lifetime
    /// plus its leeway), on this instance only until [`Revocations::with_bus`].
    pub fn new(store: Arc<dyn RefreshTokenStore>, keep_for: Duration) -> Self {
        Self {
            ended: RwLock::default(),
            keep_for,
            store,
            bus: None,
        }
    }

    /// Tells every instance on `bus` of the sessions ended here.
    pub fn with_bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Whether `session` has ended: its access tokens prove nothing.
    pub fn is_ended(&self, session: SessionId) -> bool {
        let ended = self.ended.read().unwrap_or_else(|e| e.into_inner());
        !ended.is_empty() && ended.contains_key(&session)
    }

    /// How many ended sessions this instance remembers now.
    pub fn len(&self) -> usize {
        self.ended.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remember(&self, sessions: impl IntoIterator<Item = SessionId>) {
        let now = OffsetDateTime::now_utc();
        let until = now + self.keep_for;
        let mut ended = self.ended.write().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, forget_at| *forget_at > now);
        for session in sessions {
            ended.insert(session, until);
        }
    }

    /// Ends `which` of `user`'s sessions in the store, and everywhere at once.
    pub async fn end(&self, user: UserId, which: EndSessions) -> Result<Vec<SessionId>, Error> {
        let ended = self.store.end_sessions(&user, which).await?;
        self.announce(user, &ended).await;
        Ok(ended)
    }

    /// Records sessions the store has already ended (by a logout, a reuse, a password
    /// change) here, and tells every other instance.
    pub async fn announce(&self, user: UserId, sessions: &[SessionId]) {
        if sessions.is_empty() {
            return;
        }
        self.remember(sessions.iter().copied());
        let Some(bus) = &self.bus else { return };
        for chunk in sessions.chunks(IDS_PER_EVENT) {
            let event = sessions_ended(user, chunk);
            if let Err(error) = bus.publish(&event).await {
                // Other instances learn of it at their next reload (after a gap, or
                // within RELOAD_EVERY); until then they accept its access tokens.
                tracing::warn!(%error, user_id = %user, "announcing ended sessions failed");
            }
        }
    }

    /// Adds what the store says ended within `keep_for` to what is remembered (an
    /// ended session never comes back, so nothing remembered is dropped but what has
    /// outlived its tokens).
    pub async fn reload(&self) -> Result<(), Error> {
        let since = domain::now() - self.keep_for;
        let sessions = self.store.ended_since(since).await?;
        let count = sessions.len();
        self.remember(sessions);
        tracing::debug!(count, "ended sessions reloaded");
        Ok(())
    }

    /// Follows `bus` until `stop`: each ending announced anywhere is remembered, and
    /// the set is reloaded from the store now, after every gap (retried each second
    /// while the store is away) and every [`RELOAD_EVERY`] (for an ending whose
    /// announcement was lost without a gap here: a publisher that lost the bus, or a
    /// command run without one). Resolves once the first load is done, so a caller
    /// may start serving knowing the set.
    pub async fn follow(self: &Arc<Self>, bus: Arc<dyn EventBus>, stop: CancellationToken) {
        let mut events = bus.subscribe();
        let first = self.reload_until_done(&stop).await;
        if !first {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RELOAD_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            // A bus whose stream ended delivers no more; the reloads go on.
            let mut bus_open = true;
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => {
                        if let Err(error) = this.reload().await {
                            tracing::warn!(%error, "reloading ended sessions failed");
                        }
                        continue;
                    }
                    event = events.next(), if bus_open => event,
                };
                let Some(event) = event else {
                    bus_open = false;
                    continue;
                };
                if event.is_gap() {
                    if !this.reload_until_done(&stop).await {
                        return;
                    }
                } else if event.kind == EventKind::SessionsEnded {
                    this.remember(ended_sessions(&event));
                }
            }
        });
    }

    /// Reloads, retrying each second; `false` when stopped first.
    async fn reload_until_done(&self, stop: &CancellationToken) -> bool {
        loop {
            match self.reload().await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(%error, "loading ended sessions failed; retrying");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The event telling every instance that `sessions` of `user` ended.
pub fn sessions_ended(user: UserId, sessions: &[SessionId]) -> Event {
    Event {
        topic: Topic::Accounts,
        kind: EventKind::SessionsEnded,
        data: serde_json::json!({
            "user_id": user.to_string(),
            "sessions": sessions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    }
}

/// The sessions a [`sessions_ended`] event names; nothing for any other event.
pub fn ended_sessions(event: &Event) -> Vec<SessionId> {
    if event.kind != EventKind::SessionsEnded {
        return Vec::new();
    }
    event.data["sessions"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::auth::MockRefreshTokenStore;
    use domain::events::MAX_EVENT_BYTES;

    #[test]
    fn an_event_names_its_sessions_and_fits_on_every_bus() {
        let user = UserId::generate();
        let sessions: Vec<_> = (0..IDS_PER_EVENT).map(|_| SessionId::generate()).collect();
        let event = sessions_ended(user, &sessions);
        assert!(serde_json::to_vec(&event).unwrap().len() < MAX_EVENT_BYTES);
        assert_eq!(ended_sessions(&event), sessions);
        let other = crate::live::account_changed(user, None);
        assert!(ended_sessions(&other).is_empty());
    }

    #[tokio::test]
    async fn ended_sessions_are_refused_and_a_reload_adds_the_stores() {
        let kept = SessionId::generate();
        let mut store = MockRefreshTokenStore::new();
        store
            .expect_ended_since()
            .returning(move |_| Ok(vec![kept]));
        let revocations = Revocations::new(Arc::new(store), Duration::from_secs(60));
        let gone = SessionId::generate();
        assert!(!revocations.is_ended(gone));
        revocations.announce(UserId::generate(), &[gone]).await;
        assert!(revocations.is_ended(gone));
        revocations.reload().await.unwrap();
        assert!(revocations.is_ended(kept));
        assert!(
            revocations.is_ended(gone),
            "an ending announced here meanwhile is kept: sessions never come back"
        );
    }

    #[tokio::test]
    async fn sessions_are_forgotten_once_their_tokens_have_expired() {
        let revocations = Revocations::new(Arc::new(MockRefreshTokenStore::new()), Duration::ZERO);
        let old = SessionId::generate();
        revocations.announce(UserId::generate(), &[old]).await;
        revocations
            .announce(UserId::generate(), &[SessionId::generate()])
            .await;
        assert!(!revocations.is_ended(old));
        assert_eq!(revocations.len(), 1);
    }
}
