use async_trait::async_trait;
use domain::Error;
use domain::events::{Event, EventBus, EventStream, MAX_EVENT_BYTES};
use tokio::sync::broadcast;

/// An [`EventBus`] for one instance: a tokio broadcast channel. Subscribers that fall
/// more than `capacity` events behind skip what they missed.
#[derive(Debug, Clone)]
pub struct MemoryEventBus {
    sender: broadcast::Sender<Event>,
}

impl MemoryEventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

/// A stream over a broadcast receiver: a gap marker where it lagged; ends when the sender goes.
pub fn broadcast_stream(receiver: broadcast::Receiver<Event>) -> EventStream {
    Box::pin(futures_util::stream::unfold(
        receiver,
        |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((event, rx)),
                // Fell behind: say so, so consumers can catch up from storage.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "an event subscriber fell behind");
                    Some((Event::gap(), rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        },
    ))
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, event: &Event) -> Result<(), Error> {
        let size = serde_json::to_vec(event)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_EVENT_BYTES {
            return Err(domain::FieldError::new("event", "is too large for the event bus").into());
        }
        // No subscriber is not an error: nobody is listening.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> EventStream {
        broadcast_stream(self.sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_so() {
        let bus = MemoryEventBus::new(2);
        let mut stream = bus.subscribe();
        for n in 0..5 {
            bus.publish(&Event {
                topic: domain::events::Topic::Posts,
                kind: domain::events::EventKind::PostCreated,
                data: serde_json::json!(n),
            })
            .await
            .unwrap();
        }
        assert!(stream.next().await.unwrap().is_gap());
        // Then the events it still has.
        assert_eq!(stream.next().await.unwrap().data, serde_json::json!(3));
    }
}
