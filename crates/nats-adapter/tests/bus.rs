//! The event bus contract against a real nats-server, and what only a bus that
//! delivers followed topics can promise.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use domain::events::{Event, EventBus, EventKind, Topic};
use futures_util::StreamExt;
use nats_adapter::NatsEventBus;
use test_support::NatsServer;

async fn bus() -> (NatsEventBus, NatsServer) {
    let server = NatsServer::start();
    let bus = NatsEventBus::connect(&server.url()).await.unwrap();
    (bus, server)
}

mod contract {
    contract_tests::event_bus_contract!(super::bus);
}

fn message(room: &str, n: u32) -> Event {
    Event {
        topic: Topic::Room(domain::chat::RoomName::parse(room).unwrap()),
        kind: EventKind::ChatMessage,
        data: serde_json::json!({ "n": n }),
    }
}

async fn next(stream: &mut domain::events::EventStream) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event arrives")
            .unwrap();
        if !event.is_gap() {
            return event;
        }
    }
}

#[tokio::test]
async fn an_instance_receives_only_the_topics_it_follows() {
    let server = NatsServer::start();
    let (here, there) = (
        NatsEventBus::connect(&server.url()).await.unwrap(),
        NatsEventBus::connect(&server.url()).await.unwrap(),
    );
    let mut stream = here.subscribe();
    here.follow(&message("followed", 0).topic).await.unwrap();
    // Published in order on one connection: had `here` received "other", it would
    // come first.
    there.publish(&message("other", 1)).await.unwrap();
    there.publish(&message("followed", 2)).await.unwrap();
    assert_eq!(next(&mut stream).await, message("followed", 2));
    // The last follower gone, the subscription goes: later messages never arrive.
    here.unfollow(&message("followed", 0).topic);
    assert_eq!(here.subscribed(), 1, "only the accounts subject");
    here.follow(&Topic::Posts).await.unwrap();
    there.publish(&message("followed", 3)).await.unwrap();
    let post = Event {
        topic: Topic::Posts,
        kind: EventKind::PostCreated,
        data: serde_json::json!({}),
    };
    there.publish(&post).await.unwrap();
    assert_eq!(next(&mut stream).await, post);
}

#[tokio::test]
async fn a_nats_restart_is_announced_as_a_gap_and_delivery_resumes() {
    let mut server = NatsServer::start();
    let bus = NatsEventBus::connect(&server.url()).await.unwrap();
    let room = message("r", 0).topic;
    bus.follow(&room).await.unwrap();
    let mut stream = bus.subscribe();
    server.stop();
    server.resume();
    // Told it may have missed something...
    let gap = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if stream.next().await.unwrap().is_gap() {
                return;
            }
        }
    })
    .await;
    assert!(gap.is_ok(), "no gap announced after the restart");
    // ...and subscribed again: new messages arrive (the client resubscribes).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 1;
    loop {
        bus.publish(&message("r", n)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        if let Ok(Some(event)) = got
            && !event.is_gap()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery after the restart"
        );
        n += 1;
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_connecting_with_its_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let error = match NatsEventBus::connect(&url).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(error.contains(&url), "{error}");
}
