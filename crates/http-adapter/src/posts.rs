//! `/api/posts` and `/api/users/{id}/posts`.

use actix_web::http::header::{self, ETAG};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::posts::Post;
use ports::posts::{CreatePost, ListPosts, PostService, UpdatePost};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Authenticated, invalid_token};
use crate::etag::{self, etag, if_match};
use crate::extract::{Json, path_id, present};
use crate::idempotency::idempotent;
use crate::pagination::{ListParams, Page};
use crate::problem::{ApiError, Problem};
use crate::routing::Routes;

/// A 20,000-character body is up to 80 KB of UTF-8, more once JSON-escaped; the
/// general 64 KiB limit would refuse valid posts.
const POST_BODY_LIMIT: usize = 256 * 1024;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/posts")
        .body_limit(POST_BODY_LIMIT)
        .endpoint(__path_create_post, create_post);
    routes
        .resource("/api/posts/{id}")
        .body_limit(POST_BODY_LIMIT)
        .endpoint(__path_get_post, get_post)
        .endpoint(__path_update_post, update_post)
        .endpoint(__path_delete_post, delete_post);
    routes
        .resource("/api/users/{id}/posts")
        .endpoint(__path_list_user_posts, list_user_posts);
}

/// A new post. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePostRequest {
    /// 1 to 200 characters after trimming, one line.
    #[schema(example = "Notes on the Analytical Engine", min_length = 1)]
    title: String,
    /// 1 to 20,000 characters after trimming.
    #[schema(
        example = "It might act upon other things besides number.",
        min_length = 1
    )]
    body: String,
}

/// Partial update: only the fields present change. Unknown fields and `null` are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePostRequest {
    /// 1 to 200 characters after trimming, one line.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, min_length = 1)]
    title: Option<String>,
    /// 1 to 20,000 characters after trimming.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, min_length = 1)]
    body: Option<String>,
}

/// A post as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PostResponse {
    id: Uuid,
    author_id: Uuid,
    title: String,
    body: String,
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

impl From<Post> for PostResponse {
    fn from(p: Post) -> Self {
        Self {
            id: p.id.as_uuid(),
            author_id: p.author_id.as_uuid(),
            title: p.title.into_inner(),
            body: p.body.into_inner(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version.get(),
        }
    }
}

/// Write a post as the caller.
#[utoipa::path(post, path = "/api/posts", tag = "posts",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
        description = "Retrying with the same key and body replays the first response (24 h)")),
    request_body = CreatePostRequest,
    responses(
        (status = 201, description = "Created", body = PostResponse,
            headers(("Location" = String, description = "/api/posts/{id}"), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_post(
    Authenticated(caller): Authenticated,
    posts: web::Data<dyn PostService>,
    req: HttpRequest,
    Json(body): Json<CreatePostRequest>,
) -> Result<HttpResponse, ApiError> {
    let command = CreatePost::parse(&body.title, &body.body).map_err(domain::Error::from)?;
    idempotent(&req, format!("user:{}", caller.user_id), || async move {
        let post = posts.create(caller, command).await.map_err(|e| match e {
            // The token outlived its account (deleted since): it proves nothing any more.
            domain::Error::NotFound { .. } => invalid_token(),
            other => other.into(),
        })?;
        Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/posts/{}", post.id)))
            .insert_header((ETAG, etag(post.version)))
            .json(PostResponse::from(post)))
    })
    .await
}

/// Get a post.
#[utoipa::path(get, path = "/api/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An ETag seen before: 304 if unchanged")),
    responses(
        (status = 200, description = "The post", body = PostResponse, headers(("ETag" = String))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 404, description = "No such post", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_post(
    _caller: Authenticated,
    posts: web::Data<dyn PostService>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let post = posts.get(path_id(&id)?).await?;
    Ok(etag::conditional(
        &req,
        post.version,
        PostResponse::from(post),
    ))
}

/// Change a post's title and/or body (its author or an admin).
#[utoipa::path(patch, path = "/api/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id"),
        ("If-Match" = Option<String>, Header, nullable = false,
            description = "The ETag the change is based on; a stale one gets 412 and nothing is written. Without it the last write wins.")),
    request_body = UpdatePostRequest,
    responses(
        (status = 200, description = "The updated post", body = PostResponse, headers(("ETag" = String))),
        (status = 403, description = "Neither the author nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match the current ETag", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update_post(
    Authenticated(caller): Authenticated,
    posts: web::Data<dyn PostService>,
    req: HttpRequest,
    id: web::Path<String>,
    Json(body): Json<UpdatePostRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    // Invalid content is 422 whatever the precondition says: fixing it comes first.
    let command = UpdatePost::parse(body.title.as_deref(), body.body.as_deref())
        .map_err(domain::Error::from)?;
    let expected = if_match(&req)?;
    let post = posts.update(caller, id, command, expected).await?;
    Ok(etag::ok(post.version, PostResponse::from(post)))
}

/// Delete a post (its author or an admin).
#[utoipa::path(delete, path = "/api/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The post's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the author nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such post", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_post(
    Authenticated(caller): Authenticated,
    posts: web::Data<dyn PostService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    posts.delete(caller, path_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's posts, newest first, with keyset pagination.
#[utoipa::path(get, path = "/api/users/{id}/posts", tag = "posts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The author's id"), ListParams),
    responses(
        (status = 200, description = "A page of posts (empty for a user without posts)", body = Page<PostResponse>),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_user_posts(
    _caller: Authenticated,
    posts: web::Data<dyn PostService>,
    id: web::Path<String>,
    params: web::Query<ListParams>,
) -> Result<web::Json<Page<PostResponse>>, ApiError> {
    let author = path_id(&id)?;
    let (limit, cursor) = params.parse()?;
    let page = posts
        .list_by_author(author, ListPosts { limit, cursor })
        .await?;
    Ok(web::Json(Page::of(page, PostResponse::from)))
}
