//! Sessions across a rolling deploy: what only the Postgres store has to handle.

use domain::auth::{PasswordHash, RefreshToken, RefreshTokenStore, Rotation, SeenFrom};
use domain::users::{Email, User, UserName, UserRepository};
use postgres_adapter::{Database, PgRefreshTokenStore, PgUserRepository};
use test_support::TestDb;

use crate::contract::small_pool;

/// A family the previous release started has tokens but no session row: its first
/// refresh on this release makes it a session, instead of signing its user out. A
/// revoked one stays dead.
#[tokio::test]
async fn a_family_without_a_session_row_becomes_a_session_on_its_refresh() {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.unwrap();
    let users = PgUserRepository::new(pool.clone());
    let store = PgRefreshTokenStore::new(pool);
    let ada = User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    );
    users
        .create(&ada, &PasswordHash::new("$argon2id$x"), &[])
        .await
        .unwrap();
    let old = RefreshToken::generate().unwrap();
    let revoked = RefreshToken::generate().unwrap();
    for (token, revoked_at) in [(&old, "NULL"), (&revoked, "now()")] {
        let hex: String = token.hash().0.iter().map(|b| format!("{b:02x}")).collect();
        db.execute(&format!(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, \
             family_expires_at, revoked_at) VALUES ('\\x{hex}', '{}', gen_random_uuid(), \
             now() + interval '1 day', now() + interval '30 days', {revoked_at})",
            ada.id
        ))
        .await;
    }
    let later = domain::now() + time::Duration::days(1);
    let rotated = store
        .rotate(
            &old.hash(),
            &RefreshToken::generate().unwrap().hash(),
            later,
            &SeenFrom::default(),
        )
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
    assert_eq!(store.sessions(&ada.id).await.unwrap().len(), 1);
    let dead = store
        .rotate(
            &revoked.hash(),
            &RefreshToken::generate().unwrap().hash(),
            later,
            &SeenFrom::default(),
        )
        .await
        .unwrap();
    assert_eq!(dead, Rotation::Invalid);
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
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.unwrap();
    let users = PgUserRepository::new(pool.clone());
    let store = PgRefreshTokenStore::new(pool);
    let ada = User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    );
    users
        .create(&ada, &PasswordHash::new("$argon2id$x"), &[])
        .await
        .unwrap();
    let old = RefreshToken::generate().unwrap();
    let hex: String = old.hash().0.iter().map(|b| format!("{b:02x}")).collect();
    db.execute(&format!(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, \
         family_expires_at) VALUES ('\\x{hex}', '{}', gen_random_uuid(), \
         now() + interval '1 day', now() + interval '30 days')",
        ada.id
    ))
    .await;
    let ended = store
        .end_sessions(&ada.id, domain::auth::EndSessions::AllExcept(None))
        .await
        .unwrap();
    assert_eq!(ended.len(), 1, "the old family is ended too");
    let refused = store
        .rotate(
            &old.hash(),
            &RefreshToken::generate().unwrap().hash(),
            domain::now() + time::Duration::days(1),
            &SeenFrom::default(),
        )
        .await
        .unwrap();
    assert_eq!(refused, Rotation::Invalid);
}
