use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fetch_update_and_list_on_postgres() {
    let app = spawn_app().await;

    let created = app.create_user(" Ada Lovelace ", " Ada@Example.com ").await;
    let token = app.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "Ada@Example.com");

    let (status, fetched) = app.get_as(&token, &format!("/api/users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);

    let (status, updated) = app
        .patch_as(
            &token,
            &format!("/api/users/{id}"),
            json!({"name": "Ada King"}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], "Ada@Example.com");
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, page) = app.get_as(&token, "/api/users").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([updated]));
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_header_points_at_the_new_user() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/users"))
        .json(&json!({"name": "Grace", "email": "grace@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let token = app.login("grace@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app.get_as(&token, &location).await;
    assert_eq!(status, 200);
    assert_eq!(body["email"], "grace@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_unique_ignoring_case() {
    let app = spawn_app().await;
    app.create_user("Ada", "ada@example.com").await;
    let (grace, token) = app.signed_in("Grace", "grace@example.com").await;

    let (status, problem) = app
        .post(
            "/api/users",
            json!({"name": "Imposter", "email": "ADA@example.COM", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(problem["errors"][0]["field"], "email");

    let (status, _) = app
        .patch_as(
            &token,
            &format!("/api/users/{}", grace["id"].as_str().unwrap()),
            json!({"email": "Ada@Example.com"}),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_every_user_newest_first_exactly_once() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = app
            .create_user(&format!("User {n}"), &format!("user{n}@example.com"))
            .await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let token = app.login("user0@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut seen = Vec::new();
    let mut path = "/api/users?limit=2".to_owned();
    for _ in 0..5 {
        let (status, page) = app.get_as(&token, &path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_problem_documents() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            app.client
                .get(app.url("/api/users/not-a-uuid"))
                .bearer_auth(&token),
            400,
        ),
        (
            app.client
                .get(app.url(&format!("/api/users/{}", uuid::Uuid::now_v7())))
                .bearer_auth(&token),
            404,
        ),
        (
            app.client
                .get(app.url("/api/users?limit=101"))
                .bearer_auth(&token),
            422,
        ),
        (app.client.get(app.url("/api/users")), 401),
        (app.client.get(app.url("/api/nothing-here")), 404),
        (app.client.delete(app.url("/api/users")), 405),
        (
            app.client
                .post(app.url("/api/users"))
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
        ),
        (
            app.client
                .post(app.url("/api/users"))
                .header("content-type", "text/plain")
                .body("hello"),
            415,
        ),
        (
            app.client
                .post(app.url("/api/users"))
                .json(&json!({"name": "Ada", "emial": "ada@example.com"})),
            422,
        ),
        (
            app.client
                .post(app.url("/api/users"))
                .header("content-type", "application/json")
                .body(vec![b' '; 65 * 1024]),
            413,
        ),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key("x-request-id"));
        let (_, body) = read(response).await;
        assert_eq!(body["status"], expected, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_the_same_api_from_memory() {
    let app = spawn_memory_app().await;
    let (created, token) = app.signed_in("Ada", "ada@example.com").await;
    let (status, _) = app
        .post(
            "/api/users",
            json!({"name": "Ada", "email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, fetched) = app
        .get_as(
            &token,
            &format!("/api/users/{}", created["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
    let (status, ready) = app.get("/api/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["database"], "ok");
}
