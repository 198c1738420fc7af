use actix_web::test::TestRequest;
use domain::{Cursor, Error, Limit, Page};
use ports::users::MockUserService;

use crate::support::*;

fn principal_admin() -> domain::auth::Principal {
    domain::auth::Principal {
        user_id: admin_id(),
        role: domain::users::Role::Admin,
    }
}

#[actix_web::test]
async fn create_returns_201_with_location_and_the_user() {
    let mut users = MockUserService::new();
    users
        .expect_create()
        .withf(|c, _| {
            c.name.as_str() == "Ada"
                && c.email.as_str() == "Ada@Example.com"
                && c.password.expose() == "correct horse battery"
        })
        .times(1)
        .returning(|c, _| Ok(domain::users::User::new(c.name, c.email)));

    let reply = send(
        state(users),
        post_json(
            "/api/users",
            r#"{"name":"  Ada ","email":" Ada@Example.com ","password":"correct horse battery"}"#,
        ),
    )
    .await;

    assert_eq!(reply.status, 201);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(
        reply.header("location"),
        format!("/api/users/{id}").as_str()
    );
    assert_eq!(reply.body["name"], "Ada");
    assert_eq!(reply.body["email"], "Ada@Example.com");
    let created = reply.body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "RFC 3339 UTC: {created}");
    assert_eq!(reply.body["updated_at"], created);
    assert_eq!(reply.body["role"], "user");
    let text = reply.body.to_string();
    assert!(
        !text.contains("password") && !text.contains("horse"),
        "{text}"
    );
}

#[actix_web::test]
async fn invalid_fields_are_422_naming_each_field_and_never_reach_the_use_case() {
    const PW: &str = r#""password":"correct horse battery""#;
    let cases = [
        (
            format!(r#"{{"name":"","email":"ada@example.com",{PW}}}"#),
            vec!["name"],
        ),
        (
            format!(r#"{{"name":"Ada","email":"not-an-email",{PW}}}"#),
            vec!["email"],
        ),
        (
            format!(r#"{{"name":"Ada","email":"jürgen@example.com",{PW}}}"#),
            vec!["email"],
        ),
        (
            format!(r#"{{"name":" ","email":"@",{PW}}}"#),
            vec!["name", "email"],
        ),
        (
            r#"{"name":"Ada","email":"ada@example.com","password":"short"}"#.to_owned(),
            vec!["password"],
        ),
        (
            format!(
                r#"{{"name":"Ada","email":"ada@example.com","password":"{}"}}"#,
                "x".repeat(129)
            ),
            vec!["password"],
        ),
        (
            r#"{"name":"Ada","email":"ada@example.com"}"#.to_owned(),
            vec!["password"],
        ),
        (format!(r#"{{"name":"Ada",{PW}}}"#), vec!["email"]),
        (
            format!(r#"{{"name":"Ada","emial":"ada@example.com",{PW}}}"#),
            vec!["emial"],
        ),
        (
            format!(r#"{{"name":7,"email":"ada@example.com",{PW}}}"#),
            vec!["name"],
        ),
        (r#"[1,2]"#.to_owned(), vec!["body"]),
    ];
    for (body, fields) in cases {
        let reply = send(state(untouched()), post_json("/api/users", &body)).await;
        assert_eq!(reply.assert_problem(422), fields, "{body}");
        assert!(
            !reply.body.to_string().contains("CreateUserRequest"),
            "no Rust type names: {}",
            reply.body
        );
    }
}

#[actix_web::test]
async fn bodies_that_are_not_json_get_400_415_or_413() {
    let malformed = send(state(untouched()), post_json("/api/users", r#"{"name":"#)).await;
    malformed.assert_problem(400);

    let empty = send(state(untouched()), post_json("/api/users", "")).await;
    empty.assert_problem(400);

    let invalid_utf8 = send(
        state(untouched()),
        TestRequest::post()
            .uri("/api/users")
            .insert_header(("content-type", "application/json"))
            .set_payload(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
    )
    .await;
    invalid_utf8.assert_problem(400);

    let text = send(
        state(untouched()),
        TestRequest::post()
            .uri("/api/users")
            .insert_header(("content-type", "text/plain"))
            .set_payload(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    text.assert_problem(415);

    let no_type = send(
        state(untouched()),
        TestRequest::post()
            .uri("/api/users")
            .set_payload(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    no_type.assert_problem(415);

    let huge = format!(r#"{{"name":"{}","email":"a@b.co"}}"#, "x".repeat(70 * 1024));
    let too_large = send(state(untouched()), post_json("/api/users", &huge)).await;
    too_large.assert_problem(413);
}

#[actix_web::test]
async fn a_taken_email_is_409() {
    let mut users = MockUserService::new();
    users.expect_create().returning(|_, _| {
        Err(Error::Duplicate {
            entity: "user",
            field: "email",
        })
    });
    let reply = send(
        state(users),
        post_json(
            "/api/users",
            r#"{"name":"Ada","email":"ada@example.com","password":"correct horse battery"}"#,
        ),
    )
    .await;
    assert_eq!(reply.assert_problem(409), ["email"]);
}

#[actix_web::test]
async fn get_answers_200_404_or_400() {
    let user = ada();
    let id = user.id;
    let mut users = MockUserService::new();
    users
        .expect_get()
        .withf(move |_, got| *got == id)
        .returning(move |_, _| Ok(ports::users::UserView::Full(user.clone())));
    users
        .expect_get()
        .returning(|_, id| Err(Error::not_found("user", id)));
    let state = state(users);

    let found = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!("/api/users/{id}"))),
    )
    .await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["id"], id.to_string());

    let unknown = uuid::Uuid::now_v7();
    let missing = send(
        state.clone(),
        as_user(TestRequest::get().uri(&format!("/api/users/{unknown}"))),
    )
    .await;
    missing.assert_problem(404);

    let bad = send(state, as_user(TestRequest::get().uri("/api/users/12345"))).await;
    assert_eq!(bad.assert_problem(400), ["id"]);
}

#[actix_web::test]
async fn patch_sends_only_present_fields() {
    let user = ada();
    let id = user.id;
    let mut users = MockUserService::new();
    users
        .expect_update()
        .withf(move |actor, got, c, _| {
            *actor == principal_admin() && *got == id && c.name.is_none() && c.email.is_some()
        })
        .times(1)
        .returning(move |_, _, c, _| {
            let mut u = user.clone();
            u.email = c.email.unwrap();
            Ok(u)
        });
    let reply = send(
        state(users),
        as_admin(
            TestRequest::patch()
                .uri(&format!("/api/users/{id}"))
                .insert_header(("content-type", "application/json"))
                .set_payload(r#"{"email":"ada.king@example.com"}"#),
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["email"], "ada.king@example.com");
    assert_eq!(reply.body["name"], "Ada");
}

#[actix_web::test]
async fn patch_rejects_invalid_and_unknown_fields() {
    let id = uuid::Uuid::now_v7();
    for (body, field) in [
        (r#"{"name":""}"#, "name"),
        (r#"{"email":"x"}"#, "email"),
        (r#"{"role":"root"}"#, "role"),
        (r#"{"nickname":"x"}"#, "nickname"),
        (r#"{"email":null}"#, "email"),
        (r#"{"name":null,"email":"ada@example.com"}"#, "name"),
    ] {
        let reply = send(
            state(untouched()),
            as_admin(
                TestRequest::patch()
                    .uri(&format!("/api/users/{id}"))
                    .insert_header(("content-type", "application/json"))
                    .set_payload(body),
            ),
        )
        .await;
        assert_eq!(reply.assert_problem(422), [field], "{body}");
    }
}

#[actix_web::test]
async fn list_defaults_to_20_and_returns_an_opaque_next_cursor() {
    let user = ada();
    let next = user.cursor();
    let mut users = MockUserService::new();
    users
        .expect_list()
        .withf(|_, q| q.limit == Limit::DEFAULT && q.cursor.is_none())
        .times(1)
        .returning(move |_, _| {
            Ok(Page {
                items: vec![ports::users::UserView::Full(user.clone())],
                next_cursor: Some(next),
            })
        });
    let reply = send(state(users), as_user(TestRequest::get().uri("/api/users"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 1);
    let cursor = reply.body["next_cursor"].as_str().unwrap();
    assert_eq!(Cursor::decode(cursor).unwrap(), next);
}

#[actix_web::test]
async fn list_passes_limit_and_cursor_through() {
    let cursor = ada().cursor();
    let mut users = MockUserService::new();
    users
        .expect_list()
        .withf(move |_, q| q.limit.get() == 100 && q.cursor == Some(cursor))
        .times(1)
        .returning(|_, _| {
            Ok(Page {
                items: vec![],
                next_cursor: None,
            })
        });
    let uri = format!("/api/users?limit=100&cursor={}", cursor.encode());
    let reply = send(state(users), as_user(TestRequest::get().uri(&uri))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["next_cursor"], serde_json::Value::Null);
}

#[actix_web::test]
async fn list_rejects_bad_limits_and_cursors() {
    for (query, fields) in [
        ("limit=101", vec!["limit"]),
        ("limit=0", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("cursor=garbage", vec!["cursor"]),
        ("limit=1000&cursor=%27%3B--", vec!["limit", "cursor"]),
    ] {
        let reply = send(
            state(untouched()),
            as_user(TestRequest::get().uri(&format!("/api/users?{query}"))),
        )
        .await;
        assert_eq!(reply.assert_problem(422), fields, "{query}");
    }
    let duplicated = send(
        state(untouched()),
        as_user(TestRequest::get().uri("/api/users?limit=5&limit=6")),
    )
    .await;
    duplicated.assert_problem(400);
}
