//! The [`RefreshTokenStore`] contract. Cases get a user repository too, because a token
//! belongs to a stored user.

use domain::auth::{
    EndSessions, NewRefreshToken, PasswordHash, RefreshToken, RefreshTokenHash, RefreshTokenStore,
    Rotation, SeenFrom, SessionId,
};
use domain::users::{Email, User, UserName, UserRepository};
use time::Duration;

async fn stored_user(users: &impl UserRepository, email: &str) -> User {
    let user = User::new(
        UserName::parse("Token Holder").expect("name"),
        Email::parse(email).expect("email"),
    );
    users
        .create(&user, &PasswordHash::new("$argon2id$placeholder"), &[])
        .await
        .expect("user")
}

fn token() -> RefreshTokenHash {
    RefreshToken::generate().expect("token").hash()
}

fn later() -> time::OffsetDateTime {
    domain::now() + Duration::days(30)
}

fn seen(address: &str) -> SeenFrom {
    SeenFrom::new(Some(address.to_owned()), Some("contract-tests/1.0"))
}

/// Stores a fresh token (a new family) for `user` and returns its hash.
async fn login(store: &impl RefreshTokenStore, user: &User) -> RefreshTokenHash {
    login_in(store, user).await.0
}

/// As [`login`], with the session it started.
async fn login_in(store: &impl RefreshTokenStore, user: &User) -> (RefreshTokenHash, SessionId) {
    let hash = token();
    let session = SessionId::generate();
    store
        .insert(&NewRefreshToken {
            hash,
            user_id: user.id,
            family_id: session,
            expires_at: later(),
            family_expires_at: later(),
            seen: seen("192.0.2.1"),
            proof: None,
        })
        .await
        .expect("insert");
    (hash, session)
}

pub async fn a_valid_token_rotates_once(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    let second = token();
    assert!(matches!(
        store
            .rotate(&first, &second, later(), &SeenFrom::default())
            .await
            .expect("rotate"),
        Rotation::Rotated { user_id, .. } if user_id == ada.id
    ));
    let third = token();
    assert!(matches!(
        store
            .rotate(&second, &third, later(), &SeenFrom::default())
            .await
            .expect("rotate the successor"),
        Rotation::Rotated { user_id, .. } if user_id == ada.id
    ));
}

pub async fn reusing_a_spent_token_revokes_its_whole_family(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    let other_session = login(store, &ada).await;
    let second = token();
    store
        .rotate(&first, &second, later(), &SeenFrom::default())
        .await
        .expect("rotate");

    // The thief (or the victim) presents the spent token again.
    assert!(matches!(
        store
            .rotate(&first, &token(), later(), &SeenFrom::default())
            .await
            .expect("reuse"),
        Rotation::Reused { user_id, .. } if user_id == ada.id
    ));
    // Every token of that family is dead, including the one issued from it...
    assert_eq!(
        store
            .rotate(&second, &token(), later(), &SeenFrom::default())
            .await
            .expect("successor"),
        Rotation::Invalid
    );
    // ...but another login's family is untouched.
    assert!(matches!(
        store
            .rotate(&other_session, &token(), later(), &SeenFrom::default())
            .await
            .expect("other"),
        Rotation::Rotated { .. }
    ));
}

pub async fn unknown_and_expired_tokens_are_invalid(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    assert_eq!(
        store
            .rotate(&token(), &token(), later(), &SeenFrom::default())
            .await
            .expect("unknown"),
        Rotation::Invalid
    );

    let expired = token();
    store
        .insert(&NewRefreshToken {
            hash: expired,
            user_id: ada.id,
            family_id: SessionId::generate(),
            seen: SeenFrom::default(),
            proof: None,
            expires_at: domain::now() - Duration::seconds(1),
            family_expires_at: later(),
        })
        .await
        .expect("insert");
    let next = token();
    assert_eq!(
        store
            .rotate(&expired, &next, later(), &SeenFrom::default())
            .await
            .expect("expired"),
        Rotation::Invalid
    );
    // Nothing was stored for the refused rotation.
    assert_eq!(
        store
            .rotate(&next, &token(), later(), &SeenFrom::default())
            .await
            .expect("never stored"),
        Rotation::Invalid
    );
}

/// A family ends at its absolute time, however fresh its newest token.
pub async fn a_family_past_its_absolute_lifetime_is_invalid(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let ended = token();
    store
        .insert(&NewRefreshToken {
            hash: ended,
            user_id: ada.id,
            family_id: SessionId::generate(),
            seen: SeenFrom::default(),
            proof: None,
            expires_at: later(),
            family_expires_at: domain::now() - Duration::seconds(1),
        })
        .await
        .expect("insert");
    assert_eq!(
        store
            .rotate(&ended, &token(), later(), &SeenFrom::default())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    // Rotations within the lifetime expire with the family, not later.
    let ending = token();
    store
        .insert(&NewRefreshToken {
            hash: ending,
            user_id: ada.id,
            family_id: SessionId::generate(),
            seen: SeenFrom::default(),
            proof: None,
            expires_at: later(),
            family_expires_at: domain::now() + Duration::seconds(1),
        })
        .await
        .expect("insert");
    let next = token();
    assert!(matches!(
        store.rotate(&ending, &next, later(), &SeenFrom::default()).await.expect("rotate"),
        Rotation::Rotated { user_id, .. } if user_id == ada.id
    ));
    // The family's end passes (a lifetime, not a synchronisation): its newest token,
    // issued to live 30 days, ends with it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .rotate(&next, &token(), later(), &SeenFrom::default())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

/// `owner` names the holder of a token in any state and changes nothing.
pub async fn the_owner_of_a_token_is_read_without_spending_it(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    assert_eq!(store.owner(&first).await.expect("owner"), Some(ada.id));
    assert_eq!(store.owner(&first).await.expect("again"), Some(ada.id));
    assert_eq!(store.owner(&token()).await.expect("unknown"), None);
    // Still unspent: it rotates.
    assert!(matches!(
        store
            .rotate(&first, &token(), later(), &SeenFrom::default())
            .await
            .expect("rotate"),
        Rotation::Rotated { user_id, .. } if user_id == ada.id
    ));
    assert_eq!(store.owner(&first).await.expect("spent"), Some(ada.id));
}

pub async fn ending_a_session_by_its_token_is_idempotent(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let (token_of, session) = login_in(store, &ada).await;
    let before = domain::now();
    let ended = Some((ada.id, session));
    assert_eq!(store.end_by_token(&token_of).await.expect("logout"), ended);
    assert_eq!(
        store.end_by_token(&token_of).await.expect("twice"),
        None,
        "ended already: nothing new to announce"
    );
    assert_eq!(store.end_by_token(&token()).await.expect("unknown"), None);
    assert_eq!(
        store
            .rotate(&token_of, &token(), later(), &SeenFrom::default())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    assert!(store.sessions(&ada.id).await.expect("list").is_empty());
    let known = store.ended_since(before).await.expect("ended");
    assert!(known.contains(&session), "{known:?}");
}

pub async fn ending_every_session_of_a_user_spares_others_and_the_one_kept(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let grace = stored_user(users, "grace@example.com").await;
    let (ada_phone, phone) = login_in(store, &ada).await;
    let (ada_laptop, laptop) = login_in(store, &ada).await;
    let (ada_tablet, tablet) = login_in(store, &ada).await;
    let (grace_token, grace_session) = login_in(store, &grace).await;

    // Another user's session id ends nothing.
    assert!(
        store
            .end_sessions(&ada.id, EndSessions::One(grace_session))
            .await
            .expect("not hers")
            .is_empty()
    );
    let mut ended = store
        .end_sessions(&ada.id, EndSessions::AllExcept(Some(tablet)))
        .await
        .expect("all but one");
    ended.sort();
    let mut expected = vec![phone, laptop];
    expected.sort();
    assert_eq!(ended, expected);
    // Ended ones stay ended: ending again ends nothing new.
    assert!(
        store
            .end_sessions(&ada.id, EndSessions::One(phone))
            .await
            .expect("again")
            .is_empty()
    );
    for dead in [ada_phone, ada_laptop] {
        assert_eq!(
            store
                .rotate(&dead, &token(), later(), &SeenFrom::default())
                .await
                .expect("rotate"),
            Rotation::Invalid
        );
    }
    for alive in [ada_tablet, grace_token] {
        assert!(matches!(
            store
                .rotate(&alive, &token(), later(), &SeenFrom::default())
                .await
                .expect("alive"),
            Rotation::Rotated { .. }
        ));
    }
    let listed: Vec<_> = store
        .sessions(&ada.id)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![tablet]);
}

/// A login that checked a password changed since starts no session.
pub async fn a_login_that_raced_a_password_change_starts_no_session(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    users
        .set_password_hash(&ada.id, &PasswordHash::new("$argon2id$changed"))
        .await
        .expect("change");
    let stale = NewRefreshToken {
        hash: token(),
        user_id: ada.id,
        family_id: SessionId::generate(),
        expires_at: later(),
        family_expires_at: later(),
        seen: SeenFrom::default(),
        proof: Some(PasswordHash::new("$argon2id$placeholder")),
    };
    let refused = store.insert(&stale).await;
    assert!(
        matches!(refused, Err(domain::Error::Unauthorized(_))),
        "{refused:?}"
    );
    assert!(store.sessions(&ada.id).await.expect("list").is_empty());
    assert_eq!(store.owner(&stale.hash).await.expect("owner"), None);
    let current = NewRefreshToken {
        hash: token(),
        proof: Some(PasswordHash::new("$argon2id$changed")),
        ..stale
    };
    store
        .insert(&current)
        .await
        .expect("the current hash starts one");
    assert_eq!(store.sessions(&ada.id).await.expect("list").len(), 1);
}

/// A session lists where it was seen at login and at its latest refresh.
pub async fn a_session_records_where_it_was_seen(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let (first, session) = login_in(store, &ada).await;
    let [listed] = &store.sessions(&ada.id).await.expect("list")[..] else {
        panic!("one session");
    };
    assert_eq!(listed.id, session);
    assert_eq!(listed.user_id, ada.id);
    assert_eq!(listed.login, seen("192.0.2.1"));
    assert_eq!(listed.last, seen("192.0.2.1"));
    let rotated = store
        .rotate(&first, &token(), later(), &seen("198.51.100.9"))
        .await
        .expect("rotate");
    assert!(matches!(rotated, Rotation::Rotated { session: s, .. } if s == session));
    let [after] = &store.sessions(&ada.id).await.expect("list")[..] else {
        panic!("still one session");
    };
    assert_eq!(after.login, seen("192.0.2.1"));
    assert_eq!(after.last, seen("198.51.100.9"));
    assert!(after.last_used_at >= listed.last_used_at);
    assert_eq!(after.created_at, listed.created_at);
}

pub async fn concurrent_rotations_of_one_token_succeed_at_most_once(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    let (a, b) = (token(), token());
    let (ra, rb) = futures_util::future::join(
        store.rotate(&first, &a, later(), &SeenFrom::default()),
        store.rotate(&first, &b, later(), &SeenFrom::default()),
    )
    .await;
    let outcomes = [ra.expect("a"), rb.expect("b")];
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
}
