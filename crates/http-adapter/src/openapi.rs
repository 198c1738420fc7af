use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{health, problem, users};

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Users service",
        description = "Users and posts over REST. Every error is an RFC 9457 \
            `application/problem+json` document; validation problems list each invalid \
            field under `errors`."
    ),
    paths(
        health::liveness,
        health::readiness,
        users::create_user,
        users::get_user,
        users::update_user,
        users::list_users,
    ),
    components(schemas(problem::Problem, problem::FieldProblem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "users", description = "User accounts"),
    )
)]
pub struct ApiDoc;

/// The document as YAML, exactly as committed in `docs/openapi.yaml`.
pub fn openapi_yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .unwrap_or_else(|e| format!("# cannot render the OpenAPI document: {e}\n"))
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/openapi.json",
        web::get().to(|| async { HttpResponse::Ok().json(ApiDoc::openapi()) }),
    )
    // The reference page's assets are compiled into the binary ("vendored"): no CDN.
    .service(
        SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/api/openapi.json")),
    )
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/api/docs/"))
                .finish()
        }),
    );
}
