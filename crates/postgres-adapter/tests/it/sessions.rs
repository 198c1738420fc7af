//! Sessions across a rolling deploy: what only the Postgres store has to handle.

use domain::auth::{
    EndSessions, PasswordHash, RefreshToken, RefreshTokenStore, Rotation, SeenFrom,
};
use domain::users::{Email, User, UserName, UserRepository};
use postgres_adapter::{Database, PgRefreshTokenStore, PgUserRepository};
use test_support::TestDb;

use crate::contract::small_pool;

/// A fresh database with a user, and the refresh-token store on it.
async fn with_user() -> (TestDb, PgRefreshTokenStore, User) {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.unwrap();
    let ada = User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    );
    PgUserRepository::new(pool.clone())
        .create(&ada, &PasswordHash::new("$argon2id$x"), &[])
        .await
        .unwrap();
    (db, PgRefreshTokenStore::new(pool), ada)
}

/// A token of a new family, stored as the previous release stored it: no session row.
async fn old_release_token(db: &TestDb, user: &User, revoked: bool) -> RefreshToken {
    let token = RefreshToken::generate().unwrap();
    let hex: String = token.hash().0.iter().map(|b| format!("{b:02x}")).collect();
    let revoked_at = if revoked { "now()" } else { "NULL" };
    db.execute(&format!(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, \
         family_expires_at, revoked_at) VALUES ('\\x{hex}', '{}', gen_random_uuid(), \
         now() + interval '1 day', now() + interval '30 days', {revoked_at})",
        user.id
    ))
    .await;
    token
}

async fn rotate(store: &PgRefreshTokenStore, token: &RefreshToken) -> Rotation {
    store
        .rotate(
            &token.hash(),
            &RefreshToken::generate().unwrap().hash(),
            domain::now() + time::Duration::days(1),
            &SeenFrom::default(),
        )
        .await
        .unwrap()
}

/// A family the previous release started has tokens but no session row: its first
/// refresh on this release makes it a session, instead of signing its user out. A
/// revoked one stays dead.
#[tokio::test]
async fn a_family_without_a_session_row_becomes_a_session_on_its_refresh() {
    let (db, store, ada) = with_user().await;
    let old = old_release_token(&db, &ada, false).await;
    let revoked = old_release_token(&db, &ada, true).await;
    let rotated = rotate(&store, &old).await;
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
    assert_eq!(store.sessions(&ada.id).await.unwrap().len(), 1);
    assert_eq!(rotate(&store, &revoked).await, Rotation::Invalid);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM sessions").await,
        1,
        "a revoked family is not adopted"
    );
}

/// Such a family also ends with the others (a password change, logout-all), before it
/// was ever refreshed here.
#[tokio::test]
async fn a_family_without_a_session_row_ends_with_the_users_sessions() {
    let (db, store, ada) = with_user().await;
    let old = old_release_token(&db, &ada, false).await;
    let ended = store
        .end_sessions(&ada.id, EndSessions::AllExcept(None))
        .await
        .unwrap();
    assert_eq!(ended.len(), 1, "the old family is ended too");
    assert_eq!(rotate(&store, &old).await, Rotation::Invalid);
}
