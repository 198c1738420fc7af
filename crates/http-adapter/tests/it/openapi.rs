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
