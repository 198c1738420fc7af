//! The [`ChatRepository`] contract. Cases get a user repository too: messages have
//! stored authors.

use domain::auth::PasswordHash;
use domain::chat::{ChatMessage, ChatRepository, MessageId, MessageText, RoomName};
use domain::users::{Email, User, UserName, UserRepository};
use domain::{Error, Limit};

async fn author(users: &impl UserRepository) -> User {
    let user = User::new(
        UserName::parse("Ada").expect("name"),
        Email::parse("ada@example.com").expect("email"),
    );
    users
        .create(&user, &PasswordHash::new("$argon2id$x"), &[])
        .await
        .expect("author")
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("room")
}

/// Stores `n` messages in `name`, in sending order, and returns them.
async fn say(chat: &impl ChatRepository, ada: &User, name: &str, n: usize) -> Vec<ChatMessage> {
    let mut sent = Vec::new();
    for i in 0..n {
        let m = ChatMessage::new(
            room(name),
            ada,
            MessageText::parse(&format!("m{i}")).expect("text"),
        );
        chat.append(&m).await.expect("append");
        sent.push(m);
    }
    sent
}

pub async fn messages_round_trip_and_unknown_is_not_found(
    chat: &impl ChatRepository,
    users: &impl UserRepository,
) {
    let ada = author(users).await;
    let sent = say(chat, &ada, "general", 1).await;
    assert_eq!(chat.get(&sent[0].id).await.expect("get"), sent[0]);
    assert!(matches!(
        chat.get(&MessageId::generate()).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn recent_is_the_latest_n_of_the_room_oldest_first(
    chat: &impl ChatRepository,
    users: &impl UserRepository,
) {
    let ada = author(users).await;
    let sent = say(chat, &ada, "general", 5).await;
    say(chat, &ada, "other", 2).await;
    let recent = chat.recent(&room("general"), 3).await.expect("recent");
    assert_eq!(recent, sent[2..].to_vec());
    assert!(
        chat.recent(&room("empty"), 50)
            .await
            .expect("recent")
            .is_empty()
    );
}

pub async fn since_returns_what_was_missed_up_to_a_bound(
    chat: &impl ChatRepository,
    users: &impl UserRepository,
) {
    let ada = author(users).await;
    let sent = say(chat, &ada, "general", 6).await;
    let all = chat
        .since(&room("general"), &sent[1].id, 10)
        .await
        .expect("since");
    assert_eq!(all.messages, sent[2..].to_vec());
    assert!(!all.truncated);
    let bounded = chat
        .since(&room("general"), &sent[0].id, 3)
        .await
        .expect("since");
    assert_eq!(bounded.messages, sent[1..4].to_vec());
    assert!(bounded.truncated);
    let none = chat
        .since(&room("general"), &sent[5].id, 10)
        .await
        .expect("since");
    assert!(none.messages.is_empty() && !none.truncated);
}

pub async fn pages_are_newest_first_per_room(
    chat: &impl ChatRepository,
    users: &impl UserRepository,
) {
    let ada = author(users).await;
    let mut sent = say(chat, &ada, "general", 5).await;
    say(chat, &ada, "other", 3).await;
    sent.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = chat
            .page(&room("general"), Limit::new(2).expect("limit"), cursor)
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|m| m.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, sent.iter().map(|m| m.id).collect::<Vec<_>>());
}

pub async fn resuming_follows_storage_order_not_id_order(
    chat: &impl ChatRepository,
    users: &impl UserRepository,
) {
    let ada = author(users).await;
    // Made first (smaller id) but stored second, as when an instance's clock runs behind.
    let behind = ChatMessage::new(
        room("general"),
        &ada,
        MessageText::parse("behind").expect("text"),
    );
    let ahead = ChatMessage::new(
        room("general"),
        &ada,
        MessageText::parse("ahead").expect("text"),
    );
    chat.append(&ahead).await.expect("append");
    chat.append(&behind).await.expect("append");

    let missed = chat
        .since(&room("general"), &ahead.id, 10)
        .await
        .expect("since");
    assert_eq!(
        missed.messages,
        vec![behind.clone()],
        "nothing stored later is lost"
    );
    assert_eq!(
        chat.recent(&room("general"), 10).await.expect("recent"),
        vec![ahead.clone(), behind.clone()]
    );
    let unknown = chat
        .since(&room("general"), &MessageId::generate(), 10)
        .await
        .expect("since");
    assert_eq!(
        unknown.messages.len(),
        2,
        "an unknown point replays the room"
    );
}
