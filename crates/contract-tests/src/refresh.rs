//! The [`RefreshTokenStore`] contract. Cases get a user repository too, because a token
//! belongs to a stored user.

use domain::auth::{
    NewRefreshToken, PasswordHash, RefreshToken, RefreshTokenHash, RefreshTokenStore, Rotation,
};
use domain::users::{Email, User, UserName, UserRepository};
use time::Duration;
use uuid::Uuid;

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

/// Stores a fresh token (a new family) for `user` and returns its hash.
async fn login(store: &impl RefreshTokenStore, user: &User) -> RefreshTokenHash {
    let hash = token();
    store
        .insert(&NewRefreshToken {
            hash,
            user_id: user.id,
            family_id: Uuid::now_v7(),
            expires_at: later(),
            family_expires_at: later(),
        })
        .await
        .expect("insert");
    hash
}

pub async fn a_valid_token_rotates_once(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    let second = token();
    assert_eq!(
        store
            .rotate(&first, &second, later())
            .await
            .expect("rotate"),
        Rotation::Rotated { user_id: ada.id }
    );
    let third = token();
    assert_eq!(
        store
            .rotate(&second, &third, later())
            .await
            .expect("rotate the successor"),
        Rotation::Rotated { user_id: ada.id }
    );
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
        .rotate(&first, &second, later())
        .await
        .expect("rotate");

    // The thief (or the victim) presents the spent token again.
    assert_eq!(
        store
            .rotate(&first, &token(), later())
            .await
            .expect("reuse"),
        Rotation::Reused { user_id: ada.id }
    );
    // Every token of that family is dead, including the one issued from it...
    assert_eq!(
        store
            .rotate(&second, &token(), later())
            .await
            .expect("successor"),
        Rotation::Invalid
    );
    // ...but another login's family is untouched.
    assert!(matches!(
        store
            .rotate(&other_session, &token(), later())
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
            .rotate(&token(), &token(), later())
            .await
            .expect("unknown"),
        Rotation::Invalid
    );

    let expired = token();
    store
        .insert(&NewRefreshToken {
            hash: expired,
            user_id: ada.id,
            family_id: Uuid::now_v7(),
            expires_at: domain::now() - Duration::seconds(1),
            family_expires_at: later(),
        })
        .await
        .expect("insert");
    let next = token();
    assert_eq!(
        store
            .rotate(&expired, &next, later())
            .await
            .expect("expired"),
        Rotation::Invalid
    );
    // Nothing was stored for the refused rotation.
    assert_eq!(
        store
            .rotate(&next, &token(), later())
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
            family_id: Uuid::now_v7(),
            expires_at: later(),
            family_expires_at: domain::now() - Duration::seconds(1),
        })
        .await
        .expect("insert");
    assert_eq!(
        store
            .rotate(&ended, &token(), later())
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
            family_id: Uuid::now_v7(),
            expires_at: later(),
            family_expires_at: domain::now() + Duration::seconds(1),
        })
        .await
        .expect("insert");
    let next = token();
    assert_eq!(
        store.rotate(&ending, &next, later()).await.expect("rotate"),
        Rotation::Rotated { user_id: ada.id }
    );
    // The family's end passes (a lifetime, not a synchronisation): its newest token,
    // issued to live 30 days, ends with it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .rotate(&next, &token(), later())
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
    assert_eq!(
        store
            .rotate(&first, &token(), later())
            .await
            .expect("rotate"),
        Rotation::Rotated { user_id: ada.id }
    );
    assert_eq!(store.owner(&first).await.expect("spent"), Some(ada.id));
}

pub async fn a_revoked_token_is_invalid_and_revoking_is_idempotent(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let session = login(store, &ada).await;
    store.revoke(&session).await.expect("logout");
    store.revoke(&session).await.expect("logout twice");
    store.revoke(&token()).await.expect("unknown token");
    assert_eq!(
        store
            .rotate(&session, &token(), later())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

pub async fn revoking_a_user_kills_all_their_tokens_only(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let grace = stored_user(users, "grace@example.com").await;
    let ada_phone = login(store, &ada).await;
    let ada_laptop = login(store, &ada).await;
    let grace_session = login(store, &grace).await;

    store
        .revoke_all_for_user(&ada.id)
        .await
        .expect("revoke all");
    for dead in [ada_phone, ada_laptop] {
        assert_eq!(
            store
                .rotate(&dead, &token(), later())
                .await
                .expect("rotate"),
            Rotation::Invalid
        );
    }
    assert!(matches!(
        store
            .rotate(&grace_session, &token(), later())
            .await
            .expect("grace"),
        Rotation::Rotated { .. }
    ));
}

pub async fn concurrent_rotations_of_one_token_succeed_at_most_once(
    store: &impl RefreshTokenStore,
    users: &impl UserRepository,
) {
    let ada = stored_user(users, "ada@example.com").await;
    let first = login(store, &ada).await;
    let (a, b) = (token(), token());
    let (ra, rb) = futures_util::future::join(
        store.rotate(&first, &a, later()),
        store.rotate(&first, &b, later()),
    )
    .await;
    let outcomes = [ra.expect("a"), rb.expect("b")];
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
}
