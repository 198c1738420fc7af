use actix_web::test::TestRequest;
use domain::Error;
use ports::users::MockUserService;

use crate::support::*;

#[actix_web::test]
async fn unknown_routes_are_404_problems() {
    for uri in ["/nope", "/api/nope", "/api/users/1/2/3"] {
        let reply = send(state(untouched()), TestRequest::get().uri(uri)).await;
        reply.assert_problem(404);
    }
}

#[actix_web::test]
async fn wrong_methods_are_405_problems_with_allow() {
    let reply = send(state(untouched()), TestRequest::delete().uri("/api/users")).await;
    reply.assert_problem(405);
    let allow = reply.header("allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[actix_web::test]
async fn an_unavailable_dependency_is_503_with_retry_after() {
    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_, _| Err(Error::unavailable("pool timed out")));
    let reply = send(
        state(users),
        as_user(TestRequest::get().uri(&format!("/api/users/{}", uuid::Uuid::now_v7()))),
    )
    .await;
    reply.assert_problem(503);
    assert!(reply.headers.contains_key("retry-after"));
}

#[actix_web::test]
async fn an_internal_error_is_500_without_internals() {
    let mut users = MockUserService::new();
    users.expect_get().returning(|_, _| {
        Err(Error::internal(
            "SELECT \"users\".\"id\" FROM \"users\": relation does not exist (diesel::result::Error)",
        ))
    });
    let reply = send(
        state(users),
        as_user(TestRequest::get().uri(&format!("/api/users/{}", uuid::Uuid::now_v7()))),
    )
    .await;
    reply.assert_problem(500);
    let text = reply.body.to_string();
    for leak in ["SELECT", "users", "diesel", "relation"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}
