use actix_web::test::{self, TestRequest};
use domain::posts::{Post, PostBody, PostTitle};
use domain::users::UserId;
use domain::{Error, Page, Version};
use http_adapter::{HttpConfig, app};
use ports::posts::MockPostService;
use ports::users::{MockUserService, UserWithPosts};

use crate::support::*;

fn post_by(author: UserId) -> Post {
    Post::new(
        author,
        PostTitle::parse("Hello").unwrap(),
        PostBody::parse("World").unwrap(),
    )
}

fn json_req(req: TestRequest, body: &str) -> TestRequest {
    req.insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn create_is_201_with_location_and_etag_and_the_caller_as_author() {
    let mut posts = MockPostService::new();
    posts
        .expect_create()
        .withf(|actor, c| actor.user_id == user_id() && c.title.as_str() == "Hello")
        .times(1)
        .returning(|actor, c| Ok(Post::new(actor.user_id, c.title, c.body)));
    let reply = send(
        with_posts(posts),
        as_user(json_req(
            TestRequest::post().uri("/api/posts"),
            r#"{"title":"  Hello ","body":"World"}"#,
        )),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(reply.header("location"), format!("/api/posts/{id}"));
    assert_eq!(reply.header("etag"), "\"1\"");
    assert_eq!(reply.body["author_id"], user_id().to_string());
    assert_eq!(reply.body["version"], 1);
}

#[actix_web::test]
async fn a_token_that_outlived_its_account_cannot_write_posts() {
    let mut posts = MockPostService::new();
    posts
        .expect_create()
        .returning(|actor, _| Err(domain::Error::not_found("user", actor.user_id)));
    let reply = send(
        with_posts(posts),
        as_user(json_req(
            TestRequest::post().uri("/api/posts"),
            r#"{"title":"Hello","body":"World"}"#,
        )),
    )
    .await;
    reply.assert_problem(401);
    assert!(reply.header("www-authenticate").contains("invalid_token"));
}

#[actix_web::test]
async fn invalid_posts_are_422() {
    for (body, fields) in [
        (r#"{"title":"","body":"x"}"#.to_owned(), vec!["title"]),
        (
            format!(r#"{{"title":"t","body":"{}"}}"#, "b".repeat(20_001)),
            vec!["body"],
        ),
        (r#"{"title":"t"}"#.to_owned(), vec!["body"]),
        (
            r#"{"title":"t","body":"b","author_id":"x"}"#.to_owned(),
            vec!["author_id"],
        ),
    ] {
        let reply = send(
            with_posts(MockPostService::new()),
            as_user(json_req(TestRequest::post().uri("/api/posts"), &body)),
        )
        .await;
        assert_eq!(reply.assert_problem(422), fields);
    }
}

#[actix_web::test]
async fn get_sends_an_etag_and_honours_if_none_match() {
    let post = post_by(user_id());
    let id = post.id;
    let mut posts = MockPostService::new();
    posts.expect_get().returning(move |_| Ok(post.clone()));
    let state = with_posts(posts);

    let fresh = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!("/api/posts/{id}"))),
    )
    .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("etag"), "\"1\"");

    let cached = send(
        state.clone(),
        as_user(
            TestRequest::get()
                .uri(&format!("/api/posts/{id}"))
                .insert_header(("if-none-match", "\"1\"")),
        ),
    )
    .await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.header("etag"), "\"1\"");

    let changed = send(
        state,
        as_user(
            TestRequest::get()
                .uri(&format!("/api/posts/{id}"))
                .insert_header(("if-none-match", "\"0\", \"7\"")),
        ),
    )
    .await;
    assert_eq!(changed.status, 200);
}

#[actix_web::test]
async fn if_match_is_passed_down_and_stale_or_unusable_tags_are_412() {
    let post = post_by(user_id());
    let id = post.id;
    let mut posts = MockPostService::new();
    posts
        .expect_update()
        .withf(|_, _, _, expected| *expected == Version::new(3))
        .returning(|_, _, _, _| Err(Error::VersionMismatch { entity: "post" }));
    posts
        .expect_update()
        .withf(|_, _, _, expected| expected.is_none())
        .returning(move |_, _, _, _| Ok(post.clone()));
    let state = with_posts(posts);
    let patch = |if_match: Option<&str>| {
        let mut req = json_req(
            TestRequest::patch().uri(&format!("/api/posts/{id}")),
            r#"{"title":"New"}"#,
        );
        if let Some(tag) = if_match {
            req = req.insert_header(("if-match", tag));
        }
        as_user(req)
    };

    send(state.clone(), patch(Some("\"3\"")))
        .await
        .assert_problem(412);
    send(state.clone(), patch(Some("W/\"3\"")))
        .await
        .assert_problem(412);
    send(state.clone(), patch(Some("garbage")))
        .await
        .assert_problem(412);
    let unconditional = send(state.clone(), patch(None)).await;
    assert_eq!(unconditional.status, 200);
    assert_eq!(unconditional.header("etag"), "\"1\"");
    let star = send(state, patch(Some("*"))).await;
    assert_eq!(star.status, 200);
}

#[actix_web::test]
async fn include_posts_returns_the_user_with_posts_and_maps_the_deadline_to_504() {
    let mut users = MockUserService::new();
    users
        .expect_get_with_posts()
        .withf(|_, id| *id == user_id())
        .returning(|_, id| {
            let mut user = ada();
            user.id = id;
            Ok(UserWithPosts {
                posts: vec![post_by(id), post_by(id)],
                user: ports::users::UserView::Full(user),
            })
        });
    users
        .expect_get_with_posts()
        .returning(|_, _| Err(Error::DeadlineExceeded("too slow")));
    let state = state(users);

    let reply = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!("/api/users/{}?include=posts", user_id()))),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["id"], user_id().to_string());
    assert_eq!(reply.body["email"], "ada@example.com");
    assert_eq!(reply.body["posts"].as_array().unwrap().len(), 2);

    let slow = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!(
            "/api/users/{}?include=posts",
            uuid::Uuid::now_v7()
        ))),
    )
    .await;
    slow.assert_problem(504);

    let bogus = send(
        state,
        as_user(TestRequest::get().uri(&format!("/api/users/{}?include=friends", user_id()))),
    )
    .await;
    assert_eq!(bogus.assert_problem(422), ["include"]);
}

#[actix_web::test]
async fn listing_a_users_posts_validates_the_page() {
    let mut posts = MockPostService::new();
    posts
        .expect_list_by_author()
        .withf(|author, q| *author == user_id() && q.limit.get() == 5)
        .returning(|_, _| {
            Ok(Page {
                items: vec![],
                next_cursor: None,
            })
        });
    let state = with_posts(posts);
    let ok = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!("/api/users/{}/posts?limit=5", user_id()))),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.body,
        serde_json::json!({"items": [], "next_cursor": null})
    );
    let bad = send(
        state,
        as_user(TestRequest::get().uri(&format!("/api/users/{}/posts?limit=0", user_id()))),
    )
    .await;
    assert_eq!(bad.assert_problem(422), ["limit"]);
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let mut posts = MockPostService::new();
    posts
        .expect_create()
        .times(2)
        .returning(|actor, c| Ok(Post::new(actor.user_id, c.title, c.body)));
    let service = test::init_service(app(with_posts(posts), HttpConfig::default())).await;
    let create = |key: Option<&str>, title: &str| {
        let mut req = json_req(
            TestRequest::post().uri("/api/posts"),
            &format!(r#"{{"title":"{title}","body":"b"}}"#),
        );
        if let Some(key) = key {
            req = req.insert_header(("idempotency-key", key));
        }
        as_user(req).to_request()
    };
    let read = |response: actix_web::dev::ServiceResponse| async move {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body = test::read_body(response).await;
        (status, location, replayed, body)
    };

    let first = read(call(&service, create(Some("key-1"), "A")).await).await;
    let again = read(call(&service, create(Some("key-1"), "A")).await).await;
    assert_eq!(first.0, 201);
    assert!(!first.2);
    assert_eq!((again.0, &again.1, &again.3), (201, &first.1, &first.3));
    assert!(again.2, "marked as a replay");

    let other_body = call(&service, create(Some("key-1"), "B")).await;
    assert_eq!(other_body.status(), 422);

    // Without a key every request creates (the second expected create).
    let plain = call(&service, create(None, "C")).await;
    assert_eq!(plain.status(), 201);

    let bad_key = call(&service, create(Some("has space"), "D")).await;
    assert_eq!(bad_key.status(), 400);
}

#[actix_web::test]
async fn the_longest_valid_post_fits_the_body_limit() {
    let mut posts = MockPostService::new();
    posts
        .expect_create()
        .returning(|actor, c| Ok(Post::new(actor.user_id, c.title, c.body)));
    // 20,000 four-byte characters: 80 KB of UTF-8, over the general 64 KiB limit.
    let body = format!(r#"{{"title":"Long","body":"{}"}}"#, "𝄞".repeat(20_000));
    let reply = send(
        with_posts(posts),
        as_user(json_req(TestRequest::post().uri("/api/posts"), &body)),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}
