//! The [`IdempotencyStore`] contract.

use domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoredResponse};
use time::Duration;

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey {
        scope: "user:1".into(),
        key: name.into(),
    }
}

fn windows() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = domain::now();
    (now - Duration::hours(24), now - Duration::minutes(1))
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        location: Some("/api/posts/1".into()),
        body: br#"{"id":"1"}"#.to_vec(),
    }
}

pub async fn a_completed_key_replays_for_the_same_request(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let k = key("k1");
    assert_eq!(
        store
            .claim(&k, &[1; 32], expired, stale)
            .await
            .expect("claim"),
        Claim::New
    );
    store.complete(&k, &response()).await.expect("complete");
    assert_eq!(
        store
            .claim(&k, &[1; 32], expired, stale)
            .await
            .expect("again"),
        Claim::Replay(response())
    );
}

pub async fn a_different_request_with_the_key_is_a_mismatch(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let k = key("k2");
    store
        .claim(&k, &[1; 32], expired, stale)
        .await
        .expect("claim");
    store.complete(&k, &response()).await.expect("complete");
    assert_eq!(
        store
            .claim(&k, &[2; 32], expired, stale)
            .await
            .expect("other body"),
        Claim::Mismatch
    );
}

pub async fn an_unfinished_claim_is_in_progress_until_released(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let k = key("k3");
    assert_eq!(
        store
            .claim(&k, &[1; 32], expired, stale)
            .await
            .expect("first"),
        Claim::New
    );
    assert_eq!(
        store
            .claim(&k, &[1; 32], expired, stale)
            .await
            .expect("second"),
        Claim::InProgress
    );
    store.release(&k).await.expect("release");
    assert_eq!(
        store
            .claim(&k, &[1; 32], expired, stale)
            .await
            .expect("retry"),
        Claim::New
    );
}

pub async fn keys_are_scoped_per_caller(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let mine = key("shared-name");
    let theirs = IdempotencyKey {
        scope: "user:2".into(),
        key: "shared-name".into(),
    };
    assert_eq!(
        store
            .claim(&mine, &[1; 32], expired, stale)
            .await
            .expect("mine"),
        Claim::New
    );
    assert_eq!(
        store
            .claim(&theirs, &[2; 32], expired, stale)
            .await
            .expect("theirs"),
        Claim::New
    );
}

pub async fn expired_and_abandoned_keys_can_be_claimed_again(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let done = key("k4");
    store
        .claim(&done, &[1; 32], expired, stale)
        .await
        .expect("claim");
    store.complete(&done, &response()).await.expect("complete");
    // Seen from a day later, the completed key has expired.
    let later = domain::now() + Duration::hours(25);
    assert_eq!(
        store
            .claim(&done, &[2; 32], later - Duration::hours(24), later)
            .await
            .expect("expired"),
        Claim::New
    );

    let abandoned = key("k5");
    store
        .claim(&abandoned, &[1; 32], expired, stale)
        .await
        .expect("claim");
    // Seen from two minutes later, the unfinished claim is stale.
    let later = domain::now() + Duration::minutes(2);
    assert_eq!(
        store
            .claim(&abandoned, &[1; 32], expired, later - Duration::minutes(1))
            .await
            .expect("abandoned"),
        Claim::New
    );
}

pub async fn concurrent_claims_of_one_key_give_one_new(store: &impl IdempotencyStore) {
    let (expired, stale) = windows();
    let k = key("k6");
    let (a, b) = futures_util::future::join(
        store.claim(&k, &[1; 32], expired, stale),
        store.claim(&k, &[1; 32], expired, stale),
    )
    .await;
    let claims = [a.expect("a"), b.expect("b")];
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::New).count(),
        1,
        "{claims:?}"
    );
    assert!(claims.contains(&Claim::InProgress), "{claims:?}");
}
