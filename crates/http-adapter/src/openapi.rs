//! The OpenAPI 3.1 document: the handlers' own `#[utoipa::path]` annotations, gathered
//! from the route table, plus what every operation shares (the answers of the shared
//! extractors and middleware, the bearer scheme, links between operations).

use std::collections::BTreeMap;

use utoipa::openapi::RefOr;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem;
use crate::routing::{ADMIN, Routes};

/// The document of the endpoints in `routes`.
pub(crate) fn document(routes: &Routes) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    routes.document(&mut openapi);
    for modifier in [&BearerAuth as &dyn Modify, &UniformAnswers, &Links] {
        modifier.modify(&mut openapi);
    }
    openapi
}

/// The reference page at `/api/docs/`. Its assets are compiled into the binary
/// ("vendored"): no CDN.
pub(crate) fn reference_page() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/api/openapi.json"))
}

/// What the document says besides its paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Users service",
        description = "Users and posts over REST. Every error is an RFC 9457 \
            `application/problem+json` document; validation problems list each invalid \
            field under `errors`."
    ),
    components(schemas(problem::Problem, problem::FieldProblem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "users", description = "User accounts"),
        (name = "posts", description = "What users write"),
        (name = "chat", description = "Chat history (live chat is on the WebSocket at /api/ws)"),
        (name = "auth", description = "Login, token refresh and logout"),
        (name = "accounts", description = "Address verification, password reset and change, e-mail change, and the sessions an owner can see and end (REST only; gRPC serves the other use cases)"),
        (name = "admin", description = "Administration (admins only)"),
    )
)]
struct ApiDoc;

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

/// Answers that come from the shared extractors and middleware rather than from one
/// handler, added to every operation they apply to (where the handler's own annotation
/// does not already describe them, when it describes the status at all), so the
/// document cannot forget one. Where two apply to one status their descriptions are
/// joined:
/// - a JSON body: 400 (not JSON), 413 (too large), 415 (not `application/json`), 422;
/// - path parameters: 400 (an id that is not a UUID);
/// - query parameters: 400 (an unreadable query string, a repeated parameter);
/// - a `bearer` requirement: 401;
/// - the admin scope: 403;
/// - every operation: 431 for header fields past 32 KiB, 500, and 504 past the request
///   deadline; every one but liveness:
///   503 when the database is unavailable.
struct UniformAnswers;

impl Modify for UniformAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;

        for (path, item) in &mut openapi.paths.paths {
            for operation in operations(item) {
                let parameters: Vec<ParameterIn> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        RefOr::T(p) => Some(p.parameter_in.clone()),
                        RefOr::Ref(_) => None,
                    })
                    .collect();
                let mut answers: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
                let mut answer = |status: u16, description: &'static str| {
                    answers.entry(status).or_default().push(description);
                };
                if operation.request_body.is_some() {
                    answer(400, "Malformed JSON");
                    answer(413, "Body too large");
                    answer(415, "Not JSON");
                    answer(422, "Invalid, missing or unknown fields");
                }
                if parameters.iter().any(|p| matches!(p, ParameterIn::Path)) {
                    answer(
                        400,
                        "A path parameter is malformed (an id that is not a UUID)",
                    );
                }
                if parameters.iter().any(|p| matches!(p, ParameterIn::Query)) {
                    answer(400, "Unreadable query string, or a parameter given twice");
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    answer(401, "Missing, invalid or expired token");
                }
                if path.starts_with(ADMIN) {
                    answer(403, "Not an admin");
                }
                answer(431, "Header fields past 32 KiB");
                answer(500, "Internal error");
                if path != "/api/health" {
                    answer(503, "Database unavailable");
                }
                answer(504, "Request deadline exceeded");
                for (status, descriptions) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem_response(&joined(&descriptions)));
                }
            }
        }
    }
}

/// "Malformed JSON", "A path parameter is malformed": "Malformed JSON; a path parameter
/// is malformed".
fn joined(descriptions: &[&str]) -> String {
    let mut text = String::new();
    for (i, description) in descriptions.iter().enumerate() {
        if i == 0 {
            text.push_str(description);
        } else {
            text.push_str("; ");
            let mut chars = description.chars();
            text.extend(chars.next().map(|c| c.to_ascii_lowercase()));
            text.push_str(chars.as_str());
        }
    }
    text
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                crate::problem::PROBLEM_JSON,
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

/// OpenAPI links: where a created resource's id goes next. Clients (and the stateful
/// API fuzzing in CI) follow them from a creation to the reads, updates and deletes.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;

        let follow = [
            (
                "/api/users",
                "201",
                &[
                    ("GetUser", "get_user"),
                    ("UpdateUser", "update_user"),
                    ("ListUserPosts", "list_user_posts"),
                    ("DeleteUser", "delete_user"),
                ][..],
            ),
            (
                "/api/posts",
                "201",
                &[
                    ("GetPost", "get_post"),
                    ("UpdatePost", "update_post"),
                    ("DeletePost", "delete_post"),
                ][..],
            ),
        ];
        for (path, status, links) in follow {
            let Some(RefOr::T(created)) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|op| op.responses.responses.get_mut(status))
            else {
                continue;
            };
            for (name, operation_id) in links {
                created.links.insert(
                    (*name).to_owned(),
                    RefOr::T(
                        LinkBuilder::new()
                            .operation_id(*operation_id)
                            .parameter("id", "$response.body#/id")
                            .build(),
                    ),
                );
            }
        }
    }
}
