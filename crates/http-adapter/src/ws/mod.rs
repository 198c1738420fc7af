//! `GET /api/ws`: chat rooms and live updates over WebSocket. See `protocol.rs` for
//! the frames and `ports::live` for how events reach connections.

mod config;
mod protocol;

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
pub use config::WsConfig;
use domain::chat::MessageId;
use ports::auth::AuthService;
use ports::live::{Ended, Live, LiveError, Owner, Subscription};
use ports::rate_limit::TokenBucket;
use ports::users::UserService;
pub(crate) use protocol::MessageView;
use protocol::{ClientFrame, ServerFrame, error};

use crate::auth::{authenticate, client_key, invalid_token};
use crate::problem::{ApiError, Problem};
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    // The upgrade is described in docs/realtime.md: OpenAPI has no words for it.
    routes
        .resource("/api/ws")
        .undocumented(actix_web::http::Method::GET, connect);
}

/// The caller's token, from `Authorization: Bearer` or, for browsers (which cannot set
/// headers on a WebSocket), `?access_token=`. The query string is never logged.
fn token(req: &HttpRequest) -> Result<String, ApiError> {
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        return header
            .to_str()
            .ok()
            .and_then(ports::auth::bearer_token)
            .map(str::to_owned)
            .ok_or_else(invalid_token);
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("access_token").cloned())
        .ok_or_else(|| authenticate(req).err().unwrap_or_else(invalid_token))
}

/// Who opens the session, as stored now (a live session outlasts many requests, so it
/// starts from the account as it is, not as the token remembers it), and until when.
async fn owner(req: &HttpRequest) -> Result<Owner, ApiError> {
    let token = token(req)?;
    let auth = req
        .app_data::<web::Data<dyn AuthService>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no AuthService configured")))?;
    let claims = auth.authenticate(&token).map_err(|_| invalid_token())?;
    let users = req
        .app_data::<web::Data<dyn UserService>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no UserService configured")))?;
    let principal = match users.session_principal(claims.principal).await {
        Ok(principal) => principal,
        Err(domain::Error::Unauthorized(_)) => return Err(invalid_token()),
        Err(e) => return Err(e.into()),
    };
    Ok(Owner {
        principal,
        session: claims.session,
        client: client_key(req),
        expires_at: claims.expires_at,
    })
}

async fn connect(
    req: HttpRequest,
    body: web::Payload,
    live: web::Data<Live>,
    config: web::Data<WsConfig>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req).await?;
    let subscription = live.connect(owner).map_err(|refused| match refused {
        LiveError::TooManyForUser(_) | LiveError::TooManyFromClient(_) => {
            let mut problem = Problem::for_status(StatusCode::TOO_MANY_REQUESTS);
            problem.detail = refused.to_string();
            problem.retry_after = Some(1);
            ApiError::problem(problem)
        }
        _ => ApiError::problem(Problem::for_status(StatusCode::SERVICE_UNAVAILABLE)),
    })?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::problem(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            format!("not a WebSocket upgrade: {e}"),
        ))
    })?;
    let stream = stream
        .max_frame_size(config.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_frame_bytes);
    let config = config.get_ref().clone();
    // The subscription (and its slot under the caps) ends with this task, however it ends.
    actix_web::rt::spawn(run(config, subscription, session, stream));
    Ok(response)
}

fn close(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.to_owned()),
    })
}

/// The close frame for a subscription the server ended.
fn ended(subscription: &Subscription) -> Option<CloseReason> {
    match subscription.ended() {
        Some(Ended::ShuttingDown) => close(CloseCode::Away, "server shutting down"),
        Some(Ended::Gap) => close(
            CloseCode::Again,
            "messages may have been missed; reconnect and resume",
        ),
        Some(Ended::Revoked) => close(CloseCode::Policy, "the session has ended"),
        Some(Ended::Expired) => close(
            CloseCode::Policy,
            "the access token expired; reconnect with a fresh one",
        ),
        Some(Ended::TooSlow) | None => {
            close(CloseCode::Again, "too slow to read; reconnect and resume")
        }
    }
}

async fn run(
    config: WsConfig,
    mut subscription: Subscription,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let mut rate = TokenBucket::new(config.max_messages_per_sec);
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            () = subscription.ending() => break ended(&subscription),
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.heartbeat * 2 {
                    break close(CloseCode::Away, "no heartbeat");
                }
                let ping = tokio::time::timeout(config.heartbeat, session.ping(b""));
                if !matches!(ping.await, Ok(Ok(()))) {
                    break close(CloseCode::Again, "not reading");
                }
            }
            delivery = subscription.next() => {
                let Some(delivery) = delivery else { break None };
                let frame = ServerFrame::from(&delivery).to_text();
                if let Err(reason) = write(&mut session, frame, &config, &subscription).await {
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
                    if rate.refused() > config.max_messages_per_sec {
                        break close(CloseCode::Policy, "rate limit exceeded");
                    }
                    let warning = error("rate_limited", "too many frames; slow down");
                    if let Err(reason) = write(&mut session, warning, &config, &subscription).await {
                        break reason;
                    }
                    continue;
                }
                let reply = match incoming {
                    Ok(AggregatedMessage::Text(text)) => handle(&subscription, &text).await,
                    Ok(AggregatedMessage::Binary(_)) => Some(error("unsupported", "send JSON text frames")),
                    Ok(AggregatedMessage::Ping(bytes)) => {
                        let pong = tokio::time::timeout(config.heartbeat, session.pong(&bytes));
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
                    && let Err(reason) = write(&mut session, reply, &config, &subscription).await
                {
                    break reason;
                }
            }
        }
    };
    // Stop receiving before the (possibly slow) close.
    drop(subscription);
    // The close frame queues behind whatever the client has not read yet. A slow
    // client gets longer to drain and see its 1013; the wait is bounded either way.
    let patience = match &reason {
        Some(r) if r.code == CloseCode::Again => std::time::Duration::from_secs(10),
        _ => std::time::Duration::from_secs(1),
    };
    let _ = tokio::time::timeout(patience, session.close(reason)).await;
}

/// Writes one frame. The write waits while the client does not read (the socket and
/// actix's small buffer are full); meanwhile the subscription can still be ended (too
/// slow, shutdown), which ends the wait.
async fn write(
    session: &mut Session,
    frame: String,
    config: &WsConfig,
    subscription: &Subscription,
) -> Result<(), Option<CloseReason>> {
    tokio::select! {
        sent = session.text(frame) => sent.map_err(|_| None),
        () = subscription.ending() => Err(ended(subscription)),
        // A client that reads nothing at all (not even to be declared too slow by a
        // full queue) cannot hold the connection open either.
        () = tokio::time::sleep(config.heartbeat * 2) => {
            subscription.too_slow();
            Err(ended(subscription))
        }
    }
}

/// Handles one client frame; returns the direct reply, if any.
async fn handle(subscription: &Subscription, text: &str) -> Option<String> {
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
            match subscription.join(&room, since).await {
                Ok(found) => ServerFrame::Joined {
                    room: &room,
                    history: found.messages.iter().map(MessageView::from).collect(),
                    history_truncated: found.truncated,
                }
                .to_text(),
                Err(e) => error_frame(&e),
            }
        }
        ClientFrame::Leave { room } => {
            if subscription.leave(&room) {
                ServerFrame::Left { room: &room }.to_text()
            } else {
                error("not_joined", format!("not in room {room}"))
            }
        }
        ClientFrame::Message {
            room,
            text,
            client_id,
        } => match subscription.send(&room, &text, client_id).await {
            // The message comes back through the bus like everyone else's.
            Ok(_) => return None,
            Err(e) => error_frame(&e),
        },
        ClientFrame::Subscribe { topic } => match subscription.subscribe(&topic) {
            Ok(canonical) => ServerFrame::Subscribed { topic: &canonical }.to_text(),
            Err(e) => error_frame(&e),
        },
    })
}

fn error_frame(e: &LiveError) -> String {
    error(e.code(), e.public_message())
}
