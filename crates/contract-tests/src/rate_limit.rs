//! The [`RateLimitStore`] contract.

use std::time::Duration;

use domain::rate_limit::{Budget, RateLimitStore, Taken};

fn budget(name: &'static str, limit: u32) -> Budget {
    Budget::per_minute(name, limit)
}

fn left(taken: Taken) -> u32 {
    match taken {
        Taken::Allowed(remaining) => remaining.left,
        Taken::Refused { retry_after } => panic!("refused, retry after {retry_after:?}"),
    }
}

fn refused(taken: Taken) -> Duration {
    match taken {
        Taken::Refused { retry_after } => retry_after,
        Taken::Allowed(remaining) => panic!("allowed, {} left", remaining.left),
    }
}

pub async fn a_budget_allows_its_limit_then_refuses_spending_nothing(store: &impl RateLimitStore) {
    let b = budget("contract-limit", 3);
    for expected in [2, 1, 0] {
        assert_eq!(left(store.take(&b, "k").await.expect("take")), expected);
    }
    let wait = refused(store.take(&b, "k").await.expect("take"));
    // One attempt comes back every 20 s.
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(21),
        "{wait:?}"
    );
    // The refusal spent nothing: the wait did not grow.
    let again = refused(store.peek(&b, "k").await.expect("peek"));
    assert!(again <= wait, "{again:?} > {wait:?}");
}

pub async fn keys_and_budgets_are_independent(store: &impl RateLimitStore) {
    let a = budget("contract-a", 1);
    let b = budget("contract-b", 1);
    assert_eq!(left(store.take(&a, "k").await.expect("take")), 0);
    refused(store.take(&a, "k").await.expect("take"));
    assert_eq!(left(store.take(&a, "other").await.expect("take")), 0);
    assert_eq!(left(store.take(&b, "k").await.expect("take")), 0);
}

pub async fn peek_spends_nothing_record_spends_past_the_limit_and_refund_gives_back(
    store: &impl RateLimitStore,
) {
    let b = budget("contract-record", 3);
    for _ in 0..5 {
        assert_eq!(left(store.peek(&b, "k").await.expect("peek")), 3);
    }
    for _ in 0..4 {
        store.record(&b, "k").await.expect("record");
    }
    refused(store.take(&b, "k").await.expect("take"));
    store.refund(&b, "k").await.expect("refund");
    store.refund(&b, "k").await.expect("refund");
    left(store.take(&b, "k").await.expect("take"));
    // Refunds never give back more than was spent.
    let fresh = budget("contract-refund", 2);
    for _ in 0..5 {
        store.refund(&fresh, "k").await.expect("refund");
    }
    assert_eq!(left(store.take(&fresh, "k").await.expect("take")), 1);
    assert_eq!(left(store.take(&fresh, "k").await.expect("take")), 0);
    refused(store.take(&fresh, "k").await.expect("take"));
}

pub async fn concurrent_takes_never_exceed_the_budget(store: &impl RateLimitStore) {
    let b = budget("contract-race", 5);
    let takes = futures_util::future::join_all((0..20).map(|_| store.take(&b, "k"))).await;
    let allowed = takes
        .into_iter()
        .map(|t| t.expect("take"))
        .filter(|t| matches!(t, Taken::Allowed(_)))
        .count();
    assert_eq!(allowed, 5);
}
