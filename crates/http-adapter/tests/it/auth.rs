use actix_web::test::{self, TestRequest};
use domain::Error;
use domain::auth::{AccessToken, Principal, RefreshToken};
use http_adapter::{HttpConfig, app};
use mockall::predicate::eq;
use ports::auth::TokenPair;
use ports::users::MockUserService;

use crate::support::*;

fn protected() -> Vec<TestRequest> {
    let id = uuid::Uuid::now_v7();
    vec![
        TestRequest::get().uri("/api/users"),
        TestRequest::get().uri(&format!("/api/users/{id}")),
        TestRequest::get().uri("/api/users/me"),
        TestRequest::patch()
            .uri(&format!("/api/users/{id}"))
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"name":"X"}"#),
        TestRequest::delete().uri(&format!("/api/admin/users/{id}")),
    ]
}

#[actix_web::test]
async fn protected_routes_without_a_token_are_401_missing_header() {
    for req in protected() {
        let reply = send(state(untouched()), req).await;
        reply.assert_problem(401);
        assert_eq!(reply.body["detail"], "Missing authorization header");
        assert_eq!(reply.header("www-authenticate"), "Bearer");
    }
}

#[actix_web::test]
async fn bad_tokens_are_401_invalid_token() {
    for header in [
        "Bearer forged",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "user-token",
        "Bearer\tuser-token",
    ] {
        for req in protected() {
            let reply = send(
                state(untouched()),
                req.insert_header(("authorization", header)),
            )
            .await;
            reply.assert_problem(401);
            assert_eq!(
                reply.header("www-authenticate"),
                r#"Bearer error="invalid_token""#,
                "{header}"
            );
        }
    }
}

#[actix_web::test]
async fn the_admin_scope_decides_on_the_role_stored_now_not_on_the_claim() {
    let target = uuid::Uuid::now_v7();
    let mut users = MockUserService::new();
    // The token still says admin; the account was demoted since.
    users.expect_current_principal().returning(|claimed| {
        Ok(Principal {
            role: domain::users::Role::User,
            ..claimed
        })
    });
    users.expect_delete().never();
    let demoted = send(
        state(users),
        as_admin(TestRequest::delete().uri(&format!("/api/admin/users/{target}"))),
    )
    .await;
    demoted.assert_problem(403);

    let mut users = MockUserService::new();
    users
        .expect_current_principal()
        .returning(|_| Err(Error::Unauthorized("invalid or expired token")));
    users.expect_delete().never();
    let deleted = send(
        state(users),
        as_admin(TestRequest::delete().uri(&format!("/api/admin/users/{target}"))),
    )
    .await;
    deleted.assert_problem(401);
}

#[actix_web::test]
async fn the_admin_scope_is_403_for_users_and_works_for_admins() {
    let target = uuid::Uuid::now_v7();
    let forbidden = send(
        state(untouched()),
        as_user(TestRequest::delete().uri(&format!("/api/admin/users/{target}"))),
    )
    .await;
    forbidden.assert_problem(403);

    let mut users = stored_roles_as_claimed(MockUserService::new());
    users
        .expect_delete()
        .withf(move |actor, id| actor.is_admin() && id.as_uuid() == target)
        .times(1)
        .returning(|_, _| Ok(()));
    let deleted = send(
        state(users),
        as_admin(TestRequest::delete().uri(&format!("/api/admin/users/{target}"))),
    )
    .await;
    assert_eq!(deleted.status, 204);

    let mut users = stored_roles_as_claimed(MockUserService::new());
    users
        .expect_delete()
        .returning(|_, id| Err(Error::not_found("user", id)));
    let missing = send(
        state(users),
        as_admin(TestRequest::delete().uri(&format!("/api/admin/users/{target}"))),
    )
    .await;
    missing.assert_problem(404);
}

#[actix_web::test]
async fn forbidden_use_cases_are_403() {
    let mut users = MockUserService::new();
    users
        .expect_update()
        .withf(|actor, _, c, _| actor.user_id == user_id() && c.role.is_some())
        .returning(|_, _, _, _| Err(Error::Forbidden("only an admin can change a role")));
    let reply = send(
        state(users),
        as_user(
            TestRequest::patch()
                .uri(&format!("/api/users/{}", user_id()))
                .insert_header(("content-type", "application/json"))
                .set_payload(r#"{"role":"admin"}"#),
        ),
    )
    .await;
    reply.assert_problem(403);
    assert_eq!(reply.body["detail"], "only an admin can change a role");
}

#[actix_web::test]
async fn me_is_routed_before_the_id_route_and_is_401_once_the_account_is_gone() {
    let mut users = MockUserService::new();
    users
        .expect_get()
        .withf(|_, id| *id == user_id())
        .times(1)
        .returning(|_, _| {
            let mut u = ada();
            u.id = user_id();
            Ok(ports::users::UserView::Full(u))
        });
    let reply = send(
        state(users),
        as_user(TestRequest::get().uri("/api/users/me")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["id"], user_id().to_string());

    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_, _| Err(Error::Unauthorized("invalid or expired token")));
    let gone = send(
        state(users),
        as_user(TestRequest::get().uri("/api/users/me")),
    )
    .await;
    gone.assert_problem(401);
}

fn pair() -> TokenPair {
    TokenPair {
        access: AccessToken {
            token: "jwt".into(),
            expires_in: 900,
        },
        refresh: RefreshToken::presented("opaque"),
    }
}

#[actix_web::test]
async fn login_returns_a_bearer_token_pair() {
    let mut auth = token_auth();
    auth.expect_login()
        .withf(|email, password, _| {
            email == "ada@example.com" && password == "correct horse battery"
        })
        .returning(|_, _, _| Ok(pair()));
    let reply = send(
        with_auth(untouched(), auth),
        post_json(
            "/api/auth/login",
            r#"{"email":"ada@example.com","password":"correct horse battery"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "access_token": "jwt", "token_type": "Bearer",
            "expires_in": 900, "refresh_token": "opaque"
        })
    );
}

#[actix_web::test]
async fn failed_logins_are_401_and_the_11th_attempt_in_a_minute_is_429() {
    let mut auth = token_auth();
    auth.expect_login()
        .times(10)
        .returning(|_, _, _| Err(Error::Unauthorized("invalid email or password")));
    let service =
        test::init_service(app(with_auth(untouched(), auth), HttpConfig::default())).await;
    for _ in 0..10 {
        let response = call(&service, login_from("guess guess guess", "10.1.2.3:4000")).await;
        assert_eq!(response.status(), 401);
    }
    let limited = call(&service, login_from("guess guess guess", "10.1.2.3:4000")).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        limited.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
}

#[actix_web::test]
async fn the_account_failure_ceiling_holds_across_ip_addresses() {
    let mut auth = token_auth();
    auth.expect_login()
        .times(10)
        .returning(|_, _, _| Err(Error::Unauthorized("invalid email or password")));
    let config = HttpConfig {
        auth_account_failures_per_hour: 10,
        ..HttpConfig::default()
    };
    let service = test::init_service(app(with_auth(untouched(), auth), config)).await;
    for n in 0..11u8 {
        let response = call(
            &service,
            post_json(
                "/api/auth/login",
                r#"{"email":" ADA@example.com","password":"guess guess guess"}"#,
            )
            .peer_addr(format!("10.0.0.{n}:4000").parse().unwrap())
            .to_request(),
        )
        .await;
        let expected = if n < 10 { 401 } else { 429 };
        assert_eq!(response.status(), expected, "attempt {n}");
    }
}

/// Logins with `guess guess guess` fail; any other password succeeds.
fn guesses_fail() -> ports::auth::MockAuthService {
    let mut auth = token_auth();
    auth.expect_login()
        .withf(|_, password, _| password == "guess guess guess")
        .returning(|_, _, _| Err(Error::Unauthorized("invalid email or password")));
    auth.expect_login().returning(|_, _, _| Ok(pair()));
    auth
}

/// A login as ada@example.com with `password`, from `peer`.
fn login_from(password: &str, peer: &str) -> actix_http::Request {
    post_json(
        "/api/auth/login",
        &format!(r#"{{"email":"ada@example.com","password":"{password}"}}"#),
    )
    .peer_addr(peer.parse().unwrap())
    .to_request()
}

#[actix_web::test]
async fn only_failures_count_against_an_account_and_only_from_where_they_come() {
    let auth = guesses_fail();
    let config = HttpConfig {
        auth_rate_limit_per_minute: 3,
        ..HttpConfig::default()
    };
    let service = test::init_service(app(with_auth(untouched(), auth), config)).await;
    // An attacker exhausts what the account allows from their address...
    for n in 0..3 {
        let response = call(
            &service,
            login_from("guess guess guess", &format!("10.9.0.1:{}", 4000 + n)),
        )
        .await;
        assert_eq!(response.status(), 401);
    }
    let refused = call(&service, login_from("guess guess guess", "10.9.0.1:4100")).await;
    assert_eq!(refused.status(), 429);
    // ...which does not refuse the owner elsewhere, whose successes count for nothing.
    for n in 0..5u8 {
        let response = call(
            &service,
            login_from("correct horse battery", &format!("10.8.0.{n}:4000")),
        )
        .await;
        assert_eq!(response.status(), 200, "owner's login {n}");
    }
}

#[actix_web::test]
async fn past_the_account_ceiling_the_owner_still_gets_in_where_they_signed_in_before() {
    let auth = guesses_fail();
    let config = HttpConfig {
        auth_account_failures_per_hour: 4,
        ..HttpConfig::default()
    };
    let service = test::init_service(app(with_auth(untouched(), auth), config)).await;
    // The owner signs in from home, and a success never counts against the account.
    for _ in 0..3 {
        let home = call(
            &service,
            login_from("correct horse battery", "10.1.1.1:4000"),
        )
        .await;
        assert_eq!(home.status(), 200);
    }
    // Guesses from many addresses drain the account's hourly ceiling.
    for n in 0..4u8 {
        let guess = call(
            &service,
            login_from("guess guess guess", &format!("10.7.0.{n}:4000")),
        )
        .await;
        assert_eq!(guess.status(), 401, "guess {n}");
    }
    let fresh = call(&service, login_from("guess guess guess", "10.7.0.99:4000")).await;
    assert_eq!(fresh.status(), 429, "the ceiling holds for new addresses");
    let stranger = call(
        &service,
        login_from("correct horse battery", "10.6.0.1:4000"),
    )
    .await;
    assert_eq!(
        stranger.status(),
        429,
        "even with the right password, from a new address"
    );
    let home = call(
        &service,
        login_from("correct horse battery", "10.1.1.1:4001"),
    )
    .await;
    assert_eq!(
        home.status(),
        200,
        "the owner gets in where they signed in before"
    );
}

#[actix_web::test]
async fn refresh_and_logout() {
    let mut auth = token_auth();
    auth.expect_refresh()
        .withf(|token, _| token == "opaque")
        .returning(|_, _| Ok(pair()));
    auth.expect_refresh()
        .returning(|_, _| Err(Error::Unauthorized("invalid refresh token")));
    auth.expect_logout()
        .with(eq("opaque"))
        .times(1)
        .returning(|_| Ok(()));
    let state = with_auth(untouched(), auth);

    let ok = send(
        state.clone(),
        post_json("/api/auth/refresh", r#"{"refresh_token":"opaque"}"#),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["refresh_token"], "opaque");

    let spent = send(
        state.clone(),
        post_json("/api/auth/refresh", r#"{"refresh_token":"spent"}"#),
    )
    .await;
    spent.assert_problem(401);

    let out = send(
        state,
        post_json("/api/auth/logout", r#"{"refresh_token":"opaque"}"#),
    )
    .await;
    assert_eq!(out.status, 204);
}

#[actix_web::test]
async fn asking_for_a_role_as_a_non_admin_is_403_whatever_the_value() {
    for role in ["admin", "superuser", ""] {
        let reply = send(
            state(untouched()),
            as_user(
                TestRequest::patch()
                    .uri(&format!("/api/users/{}", user_id()))
                    .insert_header(("content-type", "application/json"))
                    .set_payload(format!(r#"{{"role":"{role}"}}"#)),
            ),
        )
        .await;
        reply.assert_problem(403);
    }
}
