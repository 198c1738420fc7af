//! `GET /api/rooms/{room}/messages`: a chat room's history over REST (live chat is on
//! the WebSocket, `ws/`).

use actix_web::web;
use ports::live::Live;

use crate::auth::Authenticated;
use crate::pagination::{ListParams, Page};
use crate::problem::ApiError;
use crate::routing::Routes;
use crate::ws::MessageView;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/rooms/{room}/messages")
        .endpoint(__path_room_history, room_history);
}

/// A room's messages, newest first.
#[utoipa::path(get, path = "/api/rooms/{room}/messages", tag = "chat",
    security(("bearer" = [])),
    params(("room" = String, Path, pattern = "^[a-z0-9_-]{1,64}$", description = "1-64 of a-z, 0-9, - and _"), ListParams),
    responses(
        (status = 200, description = "A page of messages", body = Page<MessageView>),
        (status = 422, description = "Invalid room, limit or cursor", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn room_history(
    _caller: Authenticated,
    live: web::Data<Live>,
    room: web::Path<String>,
    params: web::Query<ListParams>,
) -> Result<web::Json<Page<MessageView>>, ApiError> {
    let (limit, cursor) = params.parse()?;
    let page = live.chat().history(&room, limit, cursor).await?;
    Ok(web::Json(Page::of(page, |m| MessageView::from(&m))))
}
