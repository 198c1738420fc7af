//! The [`EventBus`] contract.

use std::time::Duration;

use domain::events::{Event, EventBus, EventKind, EventStream, Topic};
use futures_util::StreamExt;

fn event(kind: EventKind, n: u32) -> Event {
    Event {
        topic: Topic::Posts,
        kind,
        data: serde_json::json!({ "n": n }),
    }
}

/// A marker published until the bus is seen delivering (see [`warm_up`]).
fn warm_up_marker(n: u32) -> Event {
    Event {
        topic: Topic::Posts,
        kind: EventKind::PostCreated,
        data: serde_json::json!({ "warm_up": n }),
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
        if event.data.get("warm_up").is_none() && !event.is_gap() {
            return event;
        }
    }
}

/// A bus listening over a network starts listening a moment after it is built: publish
/// markers until `stream` sees one, so later events cannot be lost to that start.
async fn warm_up(bus: &impl EventBus, stream: &mut EventStream) {
    for n in 0..100 {
        bus.publish(&warm_up_marker(n)).await.expect("publish");
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
            return;
        }
    }
    panic!("the bus never delivered");
}

pub async fn every_subscriber_gets_every_event_in_order(bus: &impl EventBus) {
    bus.follow(&Topic::Posts).await.expect("follow");
    let mut a = bus.subscribe();
    let mut b = bus.subscribe();
    warm_up(bus, &mut a).await;
    for n in 1..=3 {
        bus.publish(&event(EventKind::PostCreated, n))
            .await
            .expect("publish");
    }
    for stream in [&mut a, &mut b] {
        for n in 1..=3 {
            assert_eq!(next(stream).await, event(EventKind::PostCreated, n));
        }
    }
}

pub async fn an_oversized_event_is_refused(bus: &impl EventBus) {
    let big = Event {
        topic: Topic::Posts,
        kind: EventKind::PostCreated,
        data: serde_json::json!({ "body": "x".repeat(10_000) }),
    };
    assert!(matches!(
        bus.publish(&big).await,
        Err(domain::Error::Validation(_))
    ));
}

pub async fn an_event_at_the_size_limit_is_accepted(bus: &impl EventBus) {
    let mut event = Event {
        topic: Topic::Posts,
        kind: EventKind::PostCreated,
        data: serde_json::json!({ "body": "" }),
    };
    let overhead = serde_json::to_vec(&event).expect("serializes").len();
    event.data =
        serde_json::json!({ "body": "x".repeat(domain::events::MAX_EVENT_BYTES - overhead) });
    assert_eq!(
        serde_json::to_vec(&event).expect("serializes").len(),
        domain::events::MAX_EVENT_BYTES
    );
    bus.publish(&event)
        .await
        .expect("an event of exactly the limit is accepted");
}

fn in_room(room: &str, n: u32) -> Event {
    Event {
        topic: Topic::Room(domain::chat::RoomName::parse(room).expect("room")),
        kind: EventKind::ChatMessage,
        data: serde_json::json!({ "n": n }),
    }
}

/// Until it is unfollowed as often as it was followed, a topic is delivered.
pub async fn a_topic_followed_twice_stays_until_unfollowed_twice(bus: &impl EventBus) {
    let room = in_room("lobby", 0).topic;
    bus.follow(&Topic::Posts).await.expect("follow");
    let mut stream = bus.subscribe();
    warm_up(bus, &mut stream).await;
    bus.follow(&room).await.expect("follow");
    bus.follow(&room).await.expect("follow again");
    bus.unfollow(&room);
    bus.publish(&in_room("lobby", 1)).await.expect("publish");
    assert_eq!(next(&mut stream).await, in_room("lobby", 1));
    bus.unfollow(&room);
    // Unfollowing what is not followed changes nothing.
    bus.unfollow(&room);
    bus.unfollow(&in_room("elsewhere", 0).topic);
    bus.publish(&event(EventKind::PostCreated, 2))
        .await
        .expect("publish");
    assert_eq!(next(&mut stream).await, event(EventKind::PostCreated, 2));
}

/// Account changes reach every instance, whatever it follows.
pub async fn account_changes_are_delivered_without_following(bus: &impl EventBus) {
    let mut stream = bus.subscribe();
    let change = |n: u32| Event {
        topic: Topic::Accounts,
        kind: EventKind::AccountChanged,
        data: serde_json::json!({ "n": n }),
    };
    // As `warm_up`, on the accounts topic.
    for n in 0..100 {
        bus.publish(&change(n)).await.expect("publish");
        let got = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
        if let Ok(Some(got)) = got
            && !got.is_gap()
        {
            assert_eq!(got.topic, Topic::Accounts);
            return;
        }
    }
    panic!("account changes are never delivered");
}
