use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};

use crate::support::*;

impl TestApp {
    pub(crate) async fn write_post(&self, token: &str, title: &str) -> Value {
        let response = self
            .client
            .post(self.url("/api/posts"))
            .bearer_auth(token)
            .json(&json!({"title": title, "body": "Some text."}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_crud_ownership_and_listing_on_postgres() {
    let app = spawn_app().await;
    let (ada, ada_token) = app.signed_in("Ada", "ada@example.com").await;
    let (_, grace_token) = app.signed_in("Grace", "grace@example.com").await;

    let first = app.write_post(&ada_token, "  First  ").await;
    assert_eq!(first["title"], "First");
    assert_eq!(first["author_id"], ada["id"]);
    let mut written = vec![id(&first).to_owned()];
    for n in 2..=5 {
        written.push(id(&app.write_post(&ada_token, &format!("Post {n}")).await).to_owned());
    }
    written.reverse();

    // Newest first, two at a time, every post exactly once.
    let mut seen = Vec::new();
    let mut path = format!("/api/users/{}/posts?limit=2", id(&ada));
    for _ in 0..5 {
        let (status, page) = app.get_as(&grace_token, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| id(p).to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/users/{}/posts?limit=2&cursor={c}", id(&ada)),
            None => break,
        }
    }
    assert_eq!(seen, written);

    let (status, _) = app
        .get_as(
            &ada_token,
            &format!("/api/users/{}/posts", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(status, 404);
    let grace_id = app.get_as(&grace_token, "/api/users/me").await.1["id"].clone();
    let (status, empty) = app
        .get_as(
            &grace_token,
            &format!("/api/users/{}/posts", grace_id.as_str().unwrap()),
        )
        .await;
    assert_eq!((status, empty["items"].as_array().unwrap().len()), (200, 0));

    let post_path = format!("/api/posts/{}", id(&first));
    let (status, _) = app
        .patch_as(&grace_token, &post_path, json!({"title": "Mine now"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(app.delete_as(&grace_token, &post_path).await, 403);
    let (status, edited) = app
        .patch_as(&ada_token, &post_path, json!({"body": "Edited."}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (edited["body"].as_str(), edited["version"].as_i64()),
        (Some("Edited."), Some(2))
    );
    assert_eq!(app.delete_as(&ada_token, &post_path).await, 204);
    let (status, _) = app.get_as(&ada_token, &post_path).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_posts_gives_the_latest_twenty_newest_first() {
    let app = spawn_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let mut ids = Vec::new();
    for n in 0..22 {
        ids.push(id(&app.write_post(&token, &format!("Post {n}")).await).to_owned());
    }
    let (status, body) = app
        .get_as(&token, &format!("/api/users/{}?include=posts", id(&ada)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ada@example.com");
    let got: Vec<&str> = body["posts"].as_array().unwrap().iter().map(id).collect();
    let expected: Vec<&str> = ids.iter().rev().take(20).map(String::as_str).collect();
    assert_eq!(got, expected);

    let (status, _) = app
        .get_as(
            &token,
            &format!("/api/users/{}?include=posts", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_past_its_deadline_is_504_and_its_queries_are_cancelled() {
    let db = test_support::TestDb::new().await;
    let app = spawn_with(settings(Some(db.url()), &[("FANOUT_DEADLINE_MS", "300")])).await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;

    // Block every read of posts inside Postgres.
    let mut locker = db.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE posts IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, problem) = app
        .get_as(&token, &format!("/api/users/{}?include=posts", id(&ada)))
        .await;
    assert_eq!(status, 504, "{problem}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The abandoned posts query does not stay queued behind the lock: it was cancelled.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.sessions_waiting_for_locks().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the query kept running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (status, _) = app
        .get_as(&token, &format!("/api/users/{}?include=posts", id(&ada)))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_give_304_and_of_two_patches_with_one_tag_exactly_one_wins() {
    let app = spawn_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let user_path = format!("/api/users/{}", id(&ada));

    let response = app
        .client
        .get(app.url(&user_path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(tag, "\"1\"");
    let cached = app
        .client
        .get(app.url(&user_path))
        .bearer_auth(&token)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let post = app.write_post(&token, "Race").await;
    for path in [user_path.clone(), format!("/api/posts/{}", id(&post))] {
        let patch = |name: &'static str| {
            let field = if path.contains("/posts/") {
                "title"
            } else {
                "name"
            };
            app.client
                .patch(app.url(&path))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&json!({ field: name }))
                .send()
        };
        let (a, b) = tokio::join!(patch("Writer A"), patch("Writer B"));
        let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "{path}");
        let (_, now) = app.get_as(&token, &path).await;
        assert_eq!(now["version"], 2, "{path}: one write happened");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_with_an_idempotency_key_creates_once() {
    let app = spawn_app().await;
    let register = || {
        app.client
            .post(app.url("/api/users"))
            .header("idempotency-key", "signup-42")
            .json(&json!({"name": "Ada", "email": "ada@example.com", "password": PASSWORD}))
            .send()
    };
    let first = register().await.unwrap();
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let (_, first_body) = read(first).await;

    let retry = register().await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["location"], location.as_str());
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let (_, retry_body) = read(retry).await;
    assert_eq!(retry_body, first_body);

    let other = app
        .client
        .post(app.url("/api/users"))
        .header("idempotency-key", "signup-42")
        .json(&json!({"name": "Eve", "email": "eve@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 422);

    let token = app.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, page) = app.get_as(&token, "/api/users").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "one row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_with_one_key_create_one_row() {
    let app = spawn_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let create = || {
        app.client
            .post(app.url("/api/posts"))
            .bearer_auth(&token)
            .header("idempotency-key", "post-1")
            .json(&json!({"title": "Once", "body": "Only once."}))
            .send()
    };
    let (a, b) = tokio::join!(create(), create());
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    // One creates; the other either replays it (201) or is told to retry (409).
    assert!(
        statuses == [201, 201] || statuses == [201, 409],
        "{statuses:?}"
    );
    let (_, page) = app
        .get_as(&token, &format!("/api/users/{}/posts", id(&ada)))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_deletes_their_posts() {
    let app = spawn_app().await;
    let (ada, ada_token) = app.signed_in("Ada", "ada@example.com").await;
    let post = app.write_post(&ada_token, "Soon gone").await;
    let admin = app.admin_token().await;
    assert_eq!(
        app.delete_as(&admin, &format!("/api/admin/users/{}", id(&ada)))
            .await,
        204
    );
    let (status, _) = app
        .get_as(&admin, &format!("/api/posts/{}", id(&post)))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_work_on_the_embedded_default_too() {
    let app = spawn_memory_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let post = app.write_post(&token, "In memory").await;
    let (status, body) = app
        .get_as(&token, &format!("/api/users/{}?include=posts", id(&ada)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["posts"][0]["id"], post["id"]);
    let (status, _) = app
        .patch_as(
            &token,
            &format!("/api/posts/{}", id(&post)),
            json!({"title": "Edited"}),
        )
        .await;
    assert_eq!(status, 200);
}
