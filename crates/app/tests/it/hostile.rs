//! Hostile requests against the real server on Postgres: each gets the documented
//! answer — never a 5xx, never a hang — and nothing is lost or rewritten.

use serde_json::{Value, json};

use crate::support::*;

/// Sends raw bytes as a JSON body, on a connection of its own: the server may close a
/// connection after refusing a body it did not read, and that connection must not be
/// reused by the next case.
async fn post_raw(app: &TestApp, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    read(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_documented_answers() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;

    let valid = |extra: Value| {
        let mut body = json!({"name": "Eve", "email": "eve@example.com", "password": PASSWORD});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::to_vec(&body).unwrap()
    };
    let bodies: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "truncated JSON",
            br#"{"name": "Eve", "email": "#.to_vec(),
            400,
            None,
        ),
        ("not JSON at all", b"name=Eve".to_vec(), 400, None),
        (
            "invalid UTF-8",
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
            None,
        ),
        (
            "deep nesting past the size limit",
            format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000)).into_bytes(),
            413,
            None,
        ),
        (
            // Refused at the first unknown field, before any recursion.
            "deep nesting within the size limit",
            format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000)).into_bytes(),
            422,
            Some("a"),
        ),
        (
            "deep nesting inside a known field",
            format!(
                r#"{{"name":{}1{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
            .into_bytes(),
            422,
            Some("name"),
        ),
        (
            "a nested array instead of an object",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            422,
            Some("body"),
        ),
        (
            "unknown field",
            valid(json!({"is_admin": true})),
            422,
            Some("is_admin"),
        ),
        ("wrong type", valid(json!({"name": 42})), 422, Some("name")),
        (
            "null where a string belongs",
            valid(json!({"email": null})),
            422,
            Some("email"),
        ),
        (
            "oversized body",
            valid(json!({"name": "x".repeat(200_000)})),
            413,
            None,
        ),
    ];
    for (case, body, status, field) in bodies {
        let (got, problem) = post_raw(&app, "/api/users", body).await;
        assert_eq!(got, status, "{case}: {problem}");
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("/problems/")),
            "{case}: {problem}"
        );
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{case}: {problem}");
        }
    }

    // Query strings and paths.
    let gets = [
        ("huge limit", "/api/users?limit=99999999999999999999", 422),
        ("negative limit", "/api/users?limit=-1", 422),
        ("garbage cursor", "/api/users?cursor=%00%ff' OR 1=1 --", 422),
        (
            "duplicate query parameter",
            "/api/users?limit=1&limit=2",
            400,
        ),
        (
            "traversal-looking id",
            "/api/users/..%2F..%2Fetc%2Fpasswd",
            400,
        ),
        ("SQL-looking id", "/api/users/1%27%20OR%20%271%27=%271", 400),
    ];
    for (case, path, status) in gets {
        let (got, problem) = app.get_as(&token, path).await;
        assert_eq!(got, status, "{case}: {problem}");
        assert!(problem["type"].as_str().is_some(), "{case}: {problem}");
    }

    // Header fields past 32 KiB: a 431 problem from the service.
    let response = reqwest::Client::new()
        .get(app.url("/api/health"))
        .header("x-padding", "x".repeat(40 * 1024))
        .send()
        .await
        .expect("answered");
    let (status, problem) = read(response).await;
    assert_eq!(status, 431);
    assert_eq!(problem["type"], "/problems/headers-too-large");

    // A head past the HTTP parser's own 128 KiB limit is refused by the parser (its body
    // may be empty). Its own client: the parser drops that connection, which must not
    // be one the shared client pools for the requests after it.
    let response = reqwest::Client::new()
        .get(app.url("/api/health"))
        .header("x-padding", "x".repeat(1024 * 1024))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        // Some parsers close the connection instead of answering; either way no 5xx.
        Err(error) => assert!(error.is_request() || error.is_connect(), "{error}"),
    }

    // SQL-looking and odd text is stored and returned verbatim.
    let name = "Robert'); DROP TABLE users;-- \u{202e}\u{0000}?";
    let (status, body) = app
        .post(
            "/api/users",
            json!({"name": name.replace('\u{0000}', ""), "email": "bobby@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, fetched) = app
        .get_as(
            &token,
            &format!("/api/users/{}", body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["name"], name.replace('\u{0000}', ""));
    let (status, listed) = app.get_as(&token, "/api/users?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        2,
        "the table is intact"
    );
}
