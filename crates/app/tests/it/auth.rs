use serde_json::{Value, json};

use crate::support::*;

fn token(tokens: &Value, name: &str) -> String {
    tokens[name].as_str().unwrap().to_owned()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (u16, Value) {
    app.post(
        "/api/auth/refresh",
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_session_lifecycle_on_postgres() {
    let app = spawn_app().await;
    let ada = app.create_user("Ada", "ada@example.com").await;
    assert_eq!(ada["role"], "user");

    // Login → a protected route.
    let first = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    let (status, me) = app
        .get_as(&token(&first, "access_token"), "/api/users/me")
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], ada["id"]);

    // Refresh rotates: a new pair, the old refresh token spent.
    let (status, second) = refresh(&app, &token(&first, "refresh_token")).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, _) = app
        .get_as(&token(&second, "access_token"), "/api/users/me")
        .await;
    assert_eq!(status, 200);

    // Presenting the spent token again is theft: 401, and the whole family dies,
    // including the token the legitimate refresh just got.
    let (status, problem) = refresh(&app, &token(&first, "refresh_token")).await;
    assert_eq!(status, 401, "{problem}");
    let (status, _) = refresh(&app, &token(&second, "refresh_token")).await;
    assert_eq!(status, 401);

    // A new login starts a new family.
    let third = app.login("ada@example.com", PASSWORD).await;

    // An admin deletes Ada: her refresh token is dead at once, and /me with her still
    // unexpired access token is 401.
    let admin = app.admin_token().await;
    let id = ada["id"].as_str().unwrap();
    assert_eq!(
        app.delete_as(&admin, &format!("/api/admin/users/{id}"))
            .await,
        204
    );
    let (status, _) = refresh(&app, &token(&third, "refresh_token")).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .get_as(&token(&third, "access_token"), "/api/users/me")
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        app.delete_as(&admin, &format!("/api/admin/users/{id}"))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_emails_get_the_same_401() {
    let app = spawn_app().await;
    app.create_user("Ada", "ada@example.com").await;
    let (s1, wrong) = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": "not the password"}),
        )
        .await;
    let (s2, unknown) = app
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    app.create_user("Ada", "ada@example.com").await;
    let tokens = app.login("ada@example.com", PASSWORD).await;
    let response = app
        .client
        .post(app.url("/api/auth/logout"))
        .json(&json!({"refresh_token": token(&tokens, "refresh_token")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = refresh(&app, &token(&tokens, "refresh_token")).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_manage_themselves_and_only_admins_change_roles_or_delete() {
    let app = spawn_app().await;
    let (ada, ada_token) = app.signed_in("Ada", "ada@example.com").await;
    let (grace, _) = app.signed_in("Grace", "grace@example.com").await;
    let ada_path = format!("/api/users/{}", ada["id"].as_str().unwrap());
    let grace_path = format!("/api/users/{}", grace["id"].as_str().unwrap());
    let delete_ada = format!("/api/admin/users/{}", ada["id"].as_str().unwrap());
    let delete_grace = format!("/api/admin/users/{}", grace["id"].as_str().unwrap());

    let (status, _) = app
        .patch_as(&ada_token, &grace_path, json!({"name": "Hacked"}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .patch_as(&ada_token, &ada_path, json!({"role": "admin"}))
        .await;
    assert_eq!(status, 403);
    let (status, renamed) = app
        .patch_as(&ada_token, &ada_path, json!({"name": "Ada K"}))
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("Ada K")));
    assert_eq!(app.delete_as(&ada_token, &delete_grace).await, 403);

    let admin = app.admin_token().await;
    let (status, promoted) = app
        .patch_as(&admin, &grace_path, json!({"role": "admin"}))
        .await;
    assert_eq!((status, promoted["role"].as_str()), (200, Some("admin")));
    // The new role shows in Grace's next tokens.
    let grace_admin = token(
        &app.login("grace@example.com", PASSWORD).await,
        "access_token",
    );
    assert_eq!(app.delete_as(&grace_admin, &delete_ada).await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_another_key_or_garbage_are_401() {
    let app = spawn_app().await;
    let other = spawn_with(settings(
        None,
        &[("JWT_SECRET", "a-different-secret-0123456789abcdef-xyz")],
    ))
    .await;
    let (_, foreign) = other.signed_in("Ada", "ada@example.com").await;
    for bad in [foreign.as_str(), "garbage", ""] {
        let response = app
            .client
            .get(app.url("/api/users/me"))
            .header("authorization", format!("Bearer {bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{bad}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_old_tokens_valid() {
    let mut before = spawn_app().await;
    let (_, old_token) = before.signed_in("Ada", "ada@example.com").await;
    let db = before.take_db();
    before.stop().await.unwrap();

    let after = spawn_with(settings(
        Some(db.url()),
        &[
            ("JWT_SECRET", "the-new-signing-key-0123456789abcdef-new"),
            ("JWT_PREVIOUS_SECRETS", JWT_SECRET),
        ],
    ))
    .await;
    let (status, _) = after.get_as(&old_token, "/api/users/me").await;
    assert_eq!(status, 200);
}

const OLD_KEY: &str = "the-old-signing-key-0123456789abcdef-old";
const NEW_KEY: &str = "the-new-signing-key-0123456789abcdef-new";

/// A rolling rotation runs old and new instances side by side. Phase one deploys the new
/// key as a previous one everywhere; phase two promotes it. Between the phases, tokens
/// from either kind of instance are good on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_two_phase_key_rotation_every_instance_accepts_every_token() {
    let db = test_support::TestDb::new().await;
    let phase_one = spawn_with(settings(
        Some(db.url()),
        &[("JWT_SECRET", OLD_KEY), ("JWT_PREVIOUS_SECRETS", NEW_KEY)],
    ))
    .await;
    let promoted = spawn_with(settings(
        Some(db.url()),
        &[("JWT_SECRET", NEW_KEY), ("JWT_PREVIOUS_SECRETS", OLD_KEY)],
    ))
    .await;
    phase_one.create_user("Ada", "ada@example.com").await;
    let old_token = phase_one.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_token = promoted.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (instance, token) in [(&promoted, &old_token), (&phase_one, &new_token)] {
        let (status, body) = instance.get_as(token, "/api/users/me").await;
        assert_eq!(status, 200, "{body}");
    }
}

/// `IDEMPOTENCY_SECRET` keys the request fingerprints apart from the signing key: a
/// retry that lands on an instance already rotated to a new `JWT_SECRET` still replays
/// the first answer, instead of being refused as a different request (422).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_replays_across_a_signing_key_rotation() {
    let db = test_support::TestDb::new().await;
    let idempotency = (
        "IDEMPOTENCY_SECRET",
        "idempotency-key-0123456789abcdef-0123456789",
    );
    let before = spawn_with(settings(
        Some(db.url()),
        &[("JWT_SECRET", OLD_KEY), idempotency],
    ))
    .await;
    let after = spawn_with(settings(
        Some(db.url()),
        &[
            ("JWT_SECRET", NEW_KEY),
            ("JWT_PREVIOUS_SECRETS", OLD_KEY),
            idempotency,
        ],
    ))
    .await;
    let register = async |app: &TestApp| {
        app.client
            .post(app.url("/api/users"))
            .header("idempotency-key", "signup-1")
            .json(&serde_json::json!({
                "name": "Ada", "email": "ada@example.com", "password": PASSWORD,
            }))
            .send()
            .await
            .unwrap()
    };
    let first = register(&before).await;
    assert_eq!(first.status(), 201);
    let retry = register(&after).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
}
