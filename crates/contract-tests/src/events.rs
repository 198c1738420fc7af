//! The [`EventBus`] contract.

use std::time::Duration;

use domain::events::{Event, EventBus, EventStream};
use futures_util::StreamExt;

fn event(name: &str, n: u32) -> Event {
    Event {
        topic: "posts".into(),
        name: name.into(),
        data: serde_json::json!({ "n": n }),
    }
}

/// The next event that is not a warm-up marker (or a gap marker from the bus starting
/// to listen), within a generous bound.
async fn next(stream: &mut EventStream) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event arrives")
            .expect("the stream goes on");
        if event.name != "warm-up" && !event.is_gap() {
            return event;
        }
    }
}

/// A bus listening over a network starts listening a moment after it is built: publish
/// markers until `stream` sees one, so later events cannot be lost to that start.
async fn warm_up(bus: &impl EventBus, stream: &mut EventStream) {
    for n in 0..100 {
        bus.publish(&event("warm-up", n)).await.expect("publish");
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
            return;
        }
    }
    panic!("the bus never delivered");
}

pub async fn every_subscriber_gets_every_event_in_order(bus: &impl EventBus) {
    let mut a = bus.subscribe();
    let mut b = bus.subscribe();
    warm_up(bus, &mut a).await;
    for n in 1..=3 {
        bus.publish(&event("post.created", n))
            .await
            .expect("publish");
    }
    for stream in [&mut a, &mut b] {
        for n in 1..=3 {
            assert_eq!(next(stream).await, event("post.created", n));
        }
    }
}

pub async fn an_oversized_event_is_refused(bus: &impl EventBus) {
    let big = Event {
        topic: "posts".into(),
        name: "post.created".into(),
        data: serde_json::json!({ "body": "x".repeat(10_000) }),
    };
    assert!(matches!(
        bus.publish(&big).await,
        Err(domain::Error::Validation(_))
    ));
}
