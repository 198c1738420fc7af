use actix_web::test::TestRequest;

use crate::support::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");

/// Fails when `docs/openapi.yaml` differs from what the handlers generate; `just openapi`
/// rewrites it.
#[test]
fn committed_openapi_document_is_current() {
    let generated = http_adapter::openapi_yaml();
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.yaml is stale: run `just openapi` and commit it"
    );
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_with_problem_responses() {
    let reply = send(
        state(untouched()),
        TestRequest::get().uri("/api/openapi.json"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let doc = reply.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/users",
        "/api/users/{id}",
        "/api/health",
        "/api/health/ready",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    let conflict = &doc["paths"]["/api/users"]["post"]["responses"]["409"]["content"];
    assert!(
        conflict["application/problem+json"].is_object(),
        "{conflict}"
    );
}

#[actix_web::test]
async fn the_reference_page_is_served_offline() {
    let page = actix_web::test::init_service(http_adapter::app(
        state(untouched()),
        http_adapter::HttpConfig::default(),
    ))
    .await;
    let html =
        actix_web::test::call_service(&page, TestRequest::get().uri("/api/docs/").to_request())
            .await;
    assert_eq!(html.status(), 200);
    let body = actix_web::test::read_body(html).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        !body.contains("https://"),
        "the page must not load from a CDN"
    );

    let css = actix_web::test::call_service(
        &page,
        TestRequest::get()
            .uri("/api/docs/swagger-ui.css")
            .to_request(),
    )
    .await;
    assert_eq!(css.status(), 200);
}

/// Every documented path answers a method it does not document with 405 and an `Allow`
/// header naming exactly the documented ones, so the document and the routes agree.
#[actix_web::test]
async fn undocumented_methods_are_405_with_the_documented_allow() {
    let doc = send(
        state(untouched()),
        TestRequest::get().uri("/api/openapi.json"),
    )
    .await
    .body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, item) in paths {
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        documented.sort();
        let uri = path
            .replace("{id}", "01a221b3-e4a4-76fb-8e00-dd5e90e19e97")
            .replace("{room}", "lobby");
        for method in ["TRACE", "PUT"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let reply = send(
                state(untouched()),
                as_admin(
                    TestRequest::default()
                        .method(method.parse().unwrap())
                        .uri(&uri),
                ),
            )
            .await;
            reply.assert_problem(405);
            let mut allowed: Vec<String> = reply
                .header("allow")
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{method} {path}");
        }
    }
}
