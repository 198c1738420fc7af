//! `GET /api/ws`: chat rooms and live updates over WebSocket. See `protocol.rs` for
//! the frames and `hub.rs` for how events reach connections.

mod hub;
mod protocol;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use domain::auth::Principal;
use domain::chat::MessageId;
pub use hub::{WsConfig, WsHub};
use ports::auth::AuthService;
use ports::chat::room_topic;
use protocol::{ClientFrame, MessageView, ServerFrame, error};
use tokio::sync::mpsc;

use crate::problem::{ApiError, Problem};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(connect))
        .route("/rooms/{room}/messages", web::get().to(room_history));
}

/// The caller, from `Authorization: Bearer` or, for browsers (which cannot set headers
/// on a WebSocket), `?access_token=`. The query string is never logged.
fn principal(req: &HttpRequest) -> Result<Principal, ApiError> {
    if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        return crate::auth::authenticate(req);
    }
    let token =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("access_token").cloned());
    let Some(token) = token else {
        return crate::auth::authenticate(req);
    };
    let auth = req
        .app_data::<web::Data<dyn AuthService>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no AuthService configured")))?;
    auth.authenticate(&token)
        .map_err(|_| crate::auth::invalid_token())
}

async fn connect(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<WsHub>,
) -> Result<HttpResponse, ApiError> {
    let principal = principal(&req)?;
    // Count first, then check: concurrent upgrades cannot slip past the cap together.
    let slot = Slot::take(hub.clone().into_inner());
    if hub.closing.is_cancelled() || slot.over_cap() {
        return Err(ApiError::problem(Problem::for_status(
            StatusCode::SERVICE_UNAVAILABLE,
        )));
    }
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::problem(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            format!("not a WebSocket upgrade: {e}"),
        ))
    })?;
    let stream = stream
        .max_frame_size(hub.config.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(hub.config.max_frame_bytes);
    let hub = hub.into_inner();
    actix_web::rt::spawn(async move {
        // The slot is released when this task ends, however it ends.
        let _slot = slot;
        run(hub, principal, session, stream).await;
    });
    Ok(response)
}

/// One counted connection; releases its count when dropped.
struct Slot(Arc<WsHub>);

impl Slot {
    fn take(hub: Arc<WsHub>) -> Self {
        hub.open.fetch_add(1, Ordering::Relaxed);
        Self(hub)
    }

    fn over_cap(&self) -> bool {
        self.0.open.load(Ordering::Relaxed) > self.0.config.max_connections
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Rooms and topics one connection may follow at once.
const MAX_SUBSCRIPTIONS: usize = 100;

/// Token bucket over every client frame.
struct RateLimit {
    capacity: f64,
    tokens: f64,
    last: Instant,
    /// Frames refused in a row; too many and the client is cut off.
    refused: u32,
}

impl RateLimit {
    fn new(per_sec: u32) -> Self {
        let capacity = f64::from(per_sec.max(1));
        Self {
            capacity,
            tokens: capacity,
            last: Instant::now(),
            refused: 0,
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.capacity)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

fn close(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.to_owned()),
    })
}

async fn run(
    hub: Arc<WsHub>,
    principal: Principal,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let (tx, mut outbound) = mpsc::channel::<String>(hub.config.outbound_queue.max(1));
    let (id, too_slow) = hub.register(tx);
    let mut rate = RateLimit::new(hub.config.max_messages_per_sec);
    let mut heartbeat = tokio::time::interval(hub.config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            () = hub.closing.cancelled() => break close(CloseCode::Away, "server shutting down"),
            () = too_slow.cancelled() => break close(CloseCode::Again, "too slow to read; reconnect and resume"),
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > hub.config.heartbeat * 2 {
                    break close(CloseCode::Away, "no heartbeat");
                }
                let ping = tokio::time::timeout(hub.config.heartbeat, session.ping(b""));
                if !matches!(ping.await, Ok(Ok(()))) {
                    break close(CloseCode::Again, "not reading");
                }
            }
            frame = outbound.recv() => {
                let Some(frame) = frame else { break None };
                if let Err(reason) = write(&mut session, frame, &hub, &too_slow).await {
                    break reason;
                }
            }
            incoming = stream.recv() => {
                last_heard = Instant::now();
                let Some(incoming) = incoming else { break None };
                let limited = matches!(
                    incoming,
                    Ok(AggregatedMessage::Text(_) | AggregatedMessage::Binary(_) | AggregatedMessage::Ping(_))
                );
                // Every frame a client sends counts against its budget.
                if limited && !rate.allow() {
                    if rate.refused > hub.config.max_messages_per_sec {
                        break close(CloseCode::Policy, "rate limit exceeded");
                    }
                    let warning = error("rate_limited", "too many frames; slow down");
                    if let Err(reason) = write(&mut session, warning, &hub, &too_slow).await {
                        break reason;
                    }
                    continue;
                }
                let reply = match incoming {
                    Ok(AggregatedMessage::Text(text)) => handle(&hub, id, principal, &text).await,
                    Ok(AggregatedMessage::Binary(_)) => Some(error("unsupported", "send JSON text frames")),
                    Ok(AggregatedMessage::Ping(bytes)) => {
                        let pong = tokio::time::timeout(hub.config.heartbeat, session.pong(&bytes));
                        if !matches!(pong.await, Ok(Ok(()))) {
                            break None;
                        }
                        None
                    }
                    Ok(AggregatedMessage::Pong(_)) => None,
                    Ok(AggregatedMessage::Close(_)) => break None,
                    Err(ProtocolError::Overflow) => break close(CloseCode::Size, "frame larger than 64 KiB"),
                    Err(_) => break close(CloseCode::Protocol, "protocol error"),
                };
                if let Some(reply) = reply
                    && let Err(reason) = write(&mut session, reply, &hub, &too_slow).await
                {
                    break reason;
                }
            }
        }
    };
    hub.unregister(id);
    // The close frame queues behind whatever the client has not read yet. A slow
    // client gets longer to drain and see its 1013; the wait is bounded either way.
    let patience = match &reason {
        Some(r) if r.code == CloseCode::Again => std::time::Duration::from_secs(10),
        _ => std::time::Duration::from_secs(1),
    };
    let _ = tokio::time::timeout(patience, session.close(reason)).await;
}

/// Writes one frame. The write waits while the client does not read (the socket and
/// actix's small buffer are full); meanwhile the connection can still be declared too
/// slow or the server can shut down, which ends the wait.
async fn write(
    session: &mut Session,
    frame: String,
    hub: &WsHub,
    too_slow: &tokio_util::sync::CancellationToken,
) -> Result<(), Option<CloseReason>> {
    tokio::select! {
        sent = session.text(frame) => sent.map_err(|_| None),
        () = too_slow.cancelled() => Err(close(CloseCode::Again, "too slow to read; reconnect and resume")),
        () = hub.closing.cancelled() => Err(close(CloseCode::Away, "server shutting down")),
        // A client that reads nothing at all (not even to be declared too slow by a
        // full queue) cannot hold the connection open either.
        () = tokio::time::sleep(hub.config.heartbeat * 2) => {
            Err(close(CloseCode::Again, "too slow to read; reconnect and resume"))
        }
    }
}

/// Handles one client frame; returns the direct reply, if any.
async fn handle(hub: &WsHub, conn: u64, principal: Principal, text: &str) -> Option<String> {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Some(error("invalid_frame", e.to_string()));
        }
        Err(e) => return Some(error("bad_json", e.to_string())),
    };
    Some(match frame {
        ClientFrame::Ping => ServerFrame::Pong.to_text(),
        ClientFrame::Join { room, since } => {
            let since = match since.as_deref().map(str::parse::<MessageId>).transpose() {
                Ok(since) => since,
                Err(_) => return Some(error("validation", "since must be a message id")),
            };
            let topic = match domain::chat::RoomName::parse(&room) {
                Ok(name) => room_topic(&name),
                Err(e) => return Some(error("validation", e.to_string())),
            };
            if hub.subscriptions(conn) >= MAX_SUBSCRIPTIONS {
                return Some(error("too_many_subscriptions", "leave a room first"));
            }
            // Subscribe before reading history: a message sent in between arrives
            // twice (clients dedupe by id) rather than not at all.
            hub.subscribe(conn, topic.clone());
            match hub.chat.join(&room, since).await {
                Ok(found) => ServerFrame::Joined {
                    room: &room,
                    history: found.messages.iter().map(MessageView::from).collect(),
                    history_truncated: found.truncated,
                }
                .to_text(),
                Err(e) => {
                    hub.unsubscribe(conn, &topic);
                    error_frame(&e)
                }
            }
        }
        ClientFrame::Leave { room } => {
            let left = domain::chat::RoomName::parse(&room)
                .is_ok_and(|name| hub.unsubscribe(conn, &room_topic(&name)));
            if left {
                ServerFrame::Left { room: &room }.to_text()
            } else {
                error("not_joined", format!("not in room {room}"))
            }
        }
        ClientFrame::Message {
            room,
            text,
            client_id,
        } => {
            let joined = domain::chat::RoomName::parse(&room)
                .is_ok_and(|name| hub.is_subscribed(conn, &room_topic(&name)));
            if !joined {
                return Some(error(
                    "not_joined",
                    format!("join {room} before sending to it"),
                ));
            }
            // The message comes back through the bus like everyone else's.
            match hub.chat.send(principal, &room, &text, client_id).await {
                Ok(_) => return None,
                Err(e) => error_frame(&e),
            }
        }
        ClientFrame::Subscribe { topic } => {
            if hub.subscriptions(conn) >= MAX_SUBSCRIPTIONS {
                return Some(error("too_many_subscriptions", "too many subscriptions"));
            }
            let allowed = if topic == "posts" {
                Ok(topic.clone())
            } else if let Some(user) = topic.strip_prefix("user:") {
                match user.parse::<domain::users::UserId>() {
                    // Stored in the canonical form events are published under.
                    Ok(user) if principal.may_manage(user) => Ok(format!("user:{user}")),
                    Ok(_) => Err(error(
                        "forbidden",
                        "only that user or an admin may subscribe",
                    )),
                    Err(_) => Err(error("validation", "user:{id} needs a user id")),
                }
            } else {
                Err(error("invalid_topic", "topics are `posts` and `user:{id}`"))
            };
            match allowed {
                Ok(canonical) => {
                    hub.subscribe(conn, canonical.clone());
                    ServerFrame::Subscribed { topic: &canonical }.to_text()
                }
                Err(frame) => frame,
            }
        }
    })
}

fn error_frame(e: &domain::Error) -> String {
    match e {
        domain::Error::Validation(errors) => error("validation", errors.to_string()),
        domain::Error::Unauthorized(m) => error("unauthorized", *m),
        domain::Error::Unavailable(_) => error("unavailable", "try again shortly"),
        other => {
            tracing::error!(error = %other, "websocket frame failed");
            error("internal", "the server failed to handle the frame")
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct MessagePage {
    items: Vec<MessageView>,
    next_cursor: Option<String>,
}

/// A room's messages, newest first.
#[utoipa::path(get, path = "/api/rooms/{room}/messages", tag = "chat",
    security(("bearer" = [])),
    params(("room" = String, Path, description = "1-64 of a-z, 0-9, - and _"), crate::users::ListParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid room, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn room_history(
    _caller: crate::auth::Authenticated,
    hub: web::Data<WsHub>,
    room: web::Path<String>,
    params: web::Query<crate::users::ListParams>,
) -> Result<web::Json<MessagePage>, ApiError> {
    let (limit, cursor) =
        crate::users::page_params(params.limit.as_deref(), params.cursor.as_deref())?;
    let page = hub.chat.history(&room, limit, cursor).await?;
    Ok(web::Json(MessagePage {
        next_cursor: page.next_cursor.map(|c| c.encode()),
        items: page.items.iter().map(MessageView::from).collect(),
    }))
}
