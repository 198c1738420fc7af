//! `/api/users`: registration, lookup, partial update and the newest-first listing.

use actix_web::http::header::{self, ETAG};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::users::{Email, User};
use ports::users::{CreateUser, ListUsers, PublicProfile, UpdateUser, UserService, UserView};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Authenticated, client_key, invalid_token};
use crate::etag::{etag, if_match};
use crate::extract::{Json, path_id, present};
use crate::idempotency::idempotent;
use crate::pagination::{ListParams, Page};
use crate::posts::PostResponse;
use crate::problem::{ApiError, Problem};
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/users")
        .endpoint(__path_create_user, create_user)
        .endpoint(__path_list_users, list_users);
    // Before `/users/{id}`, which would otherwise take "me" for an id.
    routes.resource("/api/users/me").endpoint(__path_me, me);
    routes
        .resource("/api/users/{id}")
        .endpoint(__path_get_user, get_user)
        .endpoint(__path_update_user, update_user);
    routes
        .resource("/api/admin/users/{id}")
        .endpoint(__path_delete_user, delete_user);
}

/// Registration request. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    /// 1 to 100 characters after trimming, no control characters.
    #[schema(example = "Ada Lovelace", min_length = 1)]
    name: String,
    /// ASCII only; trimmed; unique ignoring case.
    #[schema(example = "ada@example.com", format = Email, min_length = 3)]
    email: String,
    /// 12 to 128 characters, kept exactly as typed. Never returned or logged.
    #[schema(
        example = "correct horse battery staple",
        min_length = 12,
        max_length = 128
    )]
    password: String,
}

/// Partial update: only the fields present change; an empty object changes nothing.
/// Unknown fields and `null` values are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    /// 1 to 100 characters after trimming, no control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(example = "Ada King", nullable = false, min_length = 1)]
    name: Option<String>,
    /// ASCII only; trimmed; unique ignoring case. Changed by the user themself, it is
    /// recorded as `pending_email` and applies once confirmed from that address; an
    /// admin's change applies at once, verified.
    #[serde(default, deserialize_with = "present")]
    #[schema(example = "ada.king@example.com", format = Email, nullable = false, min_length = 3)]
    email: Option<String>,
    /// `user` or `admin`; only an admin may set it, and not on their own account.
    #[serde(default, deserialize_with = "present")]
    #[schema(example = "user", nullable = false, pattern = "^(user|admin)$")]
    role: Option<String>,
}

// Public so clients' tests and the benchmarks can build one.
/// A user's whole record, as the user themself and admins see it.
#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    id: Uuid,
    name: String,
    email: String,
    /// `user` or `admin`.
    #[schema(example = "user")]
    role: &'static str,
    /// Whether the owner proved `email` is theirs.
    email_verified: bool,
    /// When they did (RFC 3339, UTC); `null` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    email_verified_at: Option<OffsetDateTime>,
    /// An address the owner asked to move to, waiting for its confirmation link;
    /// `null` when there is none.
    #[schema(format = Email)]
    pending_email: Option<String>,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// Bumped on every update; the `ETag` is this number in quotes.
    #[schema(example = 1)]
    version: i64,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            name: u.name.into_inner(),
            email: u.email.into_inner(),
            role: u.role.as_str(),
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
            pending_email: u.pending_email.map(Email::into_inner),
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version.get(),
        }
    }
}

/// What anyone signed in sees of another user: no e-mail address, no role.
#[derive(Serialize, ToSchema)]
// Not read, but it makes the schema closed (`additionalProperties: false`), so a whole
// record can never pass for a public profile.
#[serde(deny_unknown_fields)]
pub(crate) struct PublicUserResponse {
    id: Uuid,
    name: String,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The user's latest 20 posts, newest first; only with `?include=posts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    posts: Option<Vec<PostResponse>>,
}

impl From<PublicProfile> for PublicUserResponse {
    fn from(p: PublicProfile) -> Self {
        Self {
            id: p.id.as_uuid(),
            name: p.name.into_inner(),
            created_at: p.created_at,
            posts: None,
        }
    }
}

/// `GET /api/users/{id}`: the whole record (for the user themself and admins) or the
/// public profile, with `posts` when asked for.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum UserRead {
    Full(UserWithPostsResponse),
    Public(PublicUserResponse),
}

/// A user as the caller may see them: the whole record for themself and for admins,
/// the public profile otherwise.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum UserBody {
    Full(UserResponse),
    Public(PublicUserResponse),
}

impl From<UserView> for UserBody {
    fn from(view: UserView) -> Self {
        match view {
            UserView::Full(user) => Self::Full(user.into()),
            UserView::Public(profile) => Self::Public(profile.into()),
        }
    }
}

/// A user with their latest posts (`?include=posts`).
#[derive(Serialize, ToSchema)]
pub(crate) struct UserWithPostsResponse {
    #[serde(flatten)]
    user: UserResponse,
    /// The user's latest 20 posts, newest first; only with `?include=posts`.
    #[schema(required = false)]
    posts: Vec<PostResponse>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetParams {
    /// `posts` adds the user's latest 20 posts, fetched concurrently with the user
    /// under the fan-out deadline (`504` past it).
    #[param(example = "posts", nullable = false, pattern = "^posts$")]
    include: Option<String>,
}

/// Register a user.
#[utoipa::path(post, path = "/api/users", tag = "users",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
        description = "Retrying with the same key and body replays the first response (24 h)")),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "/api/users/{id}"), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "E-mail already taken, or a request with this Idempotency-Key in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this client address (`REGISTRATION_RATE_LIMIT_PER_MINUTE`)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or password hashing at capacity", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_user(
    users: web::Data<dyn UserService>,
    req: HttpRequest,
    Json(body): Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let command =
        CreateUser::parse(&body.name, &body.email, &body.password).map_err(domain::Error::from)?;
    let client = client_key(&req);
    // Registration is anonymous: the key alone identifies the request.
    idempotent(&req, "anonymous".to_owned(), || async move {
        let user = users.create(command, client).await?;
        Ok(HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::LOCATION, format!("/api/users/{}", user.id)))
            .insert_header((ETAG, etag(user.version)))
            .json(UserResponse::from(user)))
    })
    .await
}

/// Get a user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id"), GetParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An ETag seen before: 304 if unchanged")),
    responses(
        (status = 200, description = "The user: the whole record for the user themself and admins, the public profile (no `email`, `role`) for anyone else; with `posts` when `include=posts`. An `ETag` only on a whole record without `include`",
            body = UserRead, headers(("ETag" = String))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`include` other than `posts`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_user(
    Authenticated(caller): Authenticated,
    users: web::Data<dyn UserService>,
    req: HttpRequest,
    id: web::Path<String>,
    params: web::Query<GetParams>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    match params.include.as_deref() {
        None => {}
        Some("posts") => {
            let found = users.get_with_posts(caller, id).await?;
            let posts = found.posts.into_iter().map(PostResponse::from).collect();
            return Ok(match found.user {
                UserView::Full(user) => no_store(HttpResponse::Ok().json(UserRead::Full(
                    UserWithPostsResponse {
                        user: user.into(),
                        posts,
                    },
                ))),
                UserView::Public(profile) => {
                    HttpResponse::Ok().json(UserRead::Public(PublicUserResponse {
                        posts: Some(posts),
                        ..profile.into()
                    }))
                }
            });
        }
        Some(_) => {
            return Err(
                domain::Error::from(domain::FieldError::new("include", "must be `posts`")).into(),
            );
        }
    }
    match users.get(caller, id).await? {
        UserView::Full(user) => Ok(no_store(crate::etag::conditional(
            &req,
            user.version,
            UserResponse::from(user),
        ))),
        UserView::Public(profile) => Ok(HttpResponse::Ok().json(PublicUserResponse::from(profile))),
    }
}

/// `200` with the whole record and its `ETag`.
fn with_etag(user: User) -> HttpResponse {
    no_store(crate::etag::ok(user.version, UserResponse::from(user)))
}

/// A response carrying someone's private fields is for the caller alone: no cache
/// along the way may keep it.
pub(crate) fn no_store(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn private_if(
    private: bool,
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    if private {
        builder.insert_header((header::CACHE_CONTROL, "no-store"));
    }
    builder
}

/// Change a user's name and/or e-mail.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, nullable = false,
            description = "The ETag the change is based on; a stale one gets 412 and nothing is written. Without it the last write wins.")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse, headers(("ETag" = String))),
        (status = 403, description = "Not your account, or a role change by a non-admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "E-mail already taken, or an admin demoting themselves", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match the current ETag", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update_user(
    Authenticated(caller): Authenticated,
    users: web::Data<dyn UserService>,
    req: HttpRequest,
    id: web::Path<String>,
    Json(body): Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    // Invalid content is 422 whatever the precondition says: fixing it comes first.
    let command = UpdateUser::parse_as(
        &caller,
        body.name.as_deref(),
        body.email.as_deref(),
        body.role.as_deref(),
    )?;
    let expected = if_match(&req)?;
    let user = users.update(caller, id, command, expected).await?;
    Ok(with_etag(user))
}

/// List users, newest first, with keyset pagination.
#[utoipa::path(get, path = "/api/users", tag = "users",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of users: whole records for admins (and the caller's own), public profiles otherwise", body = Page<UserBody>),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_users(
    Authenticated(caller): Authenticated,
    users: web::Data<dyn UserService>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = params.parse()?;
    let page = users.list(caller, ListUsers { limit, cursor }).await?;
    let private = page.items.iter().any(|u| matches!(u, UserView::Full(_)));
    Ok(private_if(private, HttpResponse::Ok()).json(Page::of(page, UserBody::from)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse, headers(("ETag" = String))),
        (status = 401, description = "Missing, invalid or expired token, or the account no longer exists",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(
    Authenticated(caller): Authenticated,
    users: web::Data<dyn UserService>,
) -> Result<HttpResponse, ApiError> {
    match users.get(caller, caller.user_id).await {
        Ok(UserView::Full(user)) => Ok(with_etag(user)),
        Ok(UserView::Public(_)) => Err(domain::Error::internal("one's own record is whole").into()),
        // A valid token for a deleted account proves nothing any more.
        Err(domain::Error::NotFound { .. }) => Err(invalid_token()),
        Err(e) => Err(e.into()),
    }
}

/// Delete a user, their data and their sessions (admins only).
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "One's own account: another admin deletes it", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_user(
    Authenticated(caller): Authenticated,
    users: web::Data<dyn UserService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    users.delete(caller, path_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
