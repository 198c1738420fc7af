use std::sync::Arc;

use async_trait::async_trait;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use domain::Error;
use domain::events::{Event, EventBus, EventStream, MAX_EVENT_BYTES};
use tokio::sync::broadcast;

use crate::Database;
use crate::listener::Listening;

const CHANNEL: &str = "events";

/// An [`EventBus`] over Postgres `LISTEN/NOTIFY`: every instance sharing the database
/// receives every event. One listening connection per instance feeds a local broadcast
/// to its subscribers.
#[derive(Clone)]
pub struct PgEventBus {
    db: Database,
    local: broadcast::Sender<Event>,
    _listener: Arc<Listening>,
}

impl PgEventBus {
    pub fn new(db: Database) -> Self {
        let local = broadcast::channel(1024).0;
        let sender = local.clone();
        let connected_before = std::sync::atomic::AtomicBool::new(false);
        let task = crate::listener::spawn(
            db.target().clone(),
            CHANNEL,
            Box::new(move |payload| {
                let Some(payload) = payload else {
                    // Reconnected: whatever was notified while we were away is gone. (The
                    // first connection misses nothing: there was nothing before it.)
                    if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        let _ = sender.send(Event::gap());
                    }
                    return;
                };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(event) => {
                        let _ = sender.send(event);
                    }
                    Err(error) => tracing::warn!(%error, "unreadable event on the bus"),
                }
            }),
        );
        Self {
            db,
            local,
            _listener: Arc::new(Listening(task)),
        }
    }
}

#[async_trait]
impl EventBus for PgEventBus {
    async fn publish(&self, event: &Event) -> Result<(), Error> {
        let payload = serde_json::to_string(event).map_err(Error::internal)?;
        if payload.len() > MAX_EVENT_BYTES {
            return Err(domain::FieldError::new("event", "is too large for the event bus").into());
        }
        let mut conn = self.db.get().await?;
        // Delivered to every listener, this instance's included.
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(&payload)
            .execute(&mut conn)
            .await
            .map_err(|e| crate::error::query(e, &[]))?;
        Ok(())
    }

    fn subscribe(&self) -> EventStream {
        memory_adapter::broadcast_stream(self.local.subscribe())
    }
}
