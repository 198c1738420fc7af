use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::{auth, health, jobs, posts, problem, users};

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
        users::me,
        users::delete_user,
        posts::create_post,
        posts::get_post,
        posts::update_post,
        posts::delete_post,
        posts::list_user_posts,
        crate::ws::room_history,
        jobs::list_jobs,
        jobs::retry_job,
        auth::login,
        auth::refresh,
        auth::logout,
    ),
    modifiers(&BearerAuth),
    components(schemas(problem::Problem, problem::FieldProblem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "users", description = "User accounts"),
        (name = "posts", description = "What users write"),
        (name = "chat", description = "Chat history (live chat is on the WebSocket at /api/ws)"),
        (name = "auth", description = "Login, token refresh and logout"),
        (name = "admin", description = "Administration (admins only)"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the protected operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/auth/login` or `/api/auth/refresh`.",
                    ))
                    .build(),
            ),
        );
    }
}

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
