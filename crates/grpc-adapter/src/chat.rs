//! `app.chat.v1.ChatService`: the WebSocket protocol's rooms and topics as one
//! bidirectional stream, on the same [`Live`] hub, so gRPC and WebSocket clients share
//! rooms on one instance or across several.

use std::sync::Arc;
use std::time::Duration;

use domain::chat::{ChatMessage, MessageId};
use ports::auth::AuthService;
use ports::client::TrustedProxies;
use ports::live::{Delivery, Ended, Live, LiveError, Owner, Subscription};
use ports::rate_limit::TokenBucket;
use ports::users::UserService;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::claims;
use crate::outbound::{self, ResponseStream, Sink};
use crate::pb::chat::{self as pb, client_event, server_event};
use crate::users::timestamp;

/// Limits of one chat stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// Client events per second, sustained and as a burst (the WebSocket's budget).
    pub events_per_sec: u32,
    /// How long one event may wait for a reader that does not read before the stream
    /// ends with `RESOURCE_EXHAUSTED`.
    pub write_stall: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            events_per_sec: 20,
            write_stall: Duration::from_secs(60),
        }
    }
}

pub struct ChatGrpc {
    live: Arc<Live>,
    auth: Arc<dyn AuthService>,
    users: Arc<dyn UserService>,
    config: ChatConfig,
    trusted_proxies: TrustedProxies,
}

impl ChatGrpc {
    pub fn new(
        live: Arc<Live>,
        auth: Arc<dyn AuthService>,
        users: Arc<dyn UserService>,
        config: ChatConfig,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        Self {
            trusted_proxies,
            live,
            auth,
            users,
            config,
        }
    }

    /// Who opens the stream, as stored now, and until when their token holds.
    async fn owner<T>(&self, request: &Request<T>) -> Result<Owner, Status> {
        let claims = claims(&*self.auth, request)?;
        let principal = match self.users.session_principal(claims.principal).await {
            Ok(principal) => principal,
            Err(domain::Error::Unauthorized(_)) => {
                return Err(Status::unauthenticated("invalid or expired token"));
            }
            Err(e) => return Err(crate::status::status(e)),
        };
        Ok(Owner {
            principal,
            session: claims.session,
            client: crate::client::client_key(request, &self.trusted_proxies),
            expires_at: claims.expires_at,
        })
    }
}

/// Events written to the transport ahead of the reader; the hub's per-subscriber queue
/// holds the rest, bounded, in front of this.
const IN_FLIGHT: usize = 16;

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for ChatGrpc {
    type ChatStream = ResponseStream<pb::ServerEvent>;

    async fn chat(
        &self,
        request: Request<Streaming<pb::ClientEvent>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let opened = match self.owner(&request).await {
            Ok(owner) => self.live.connect(owner).map_err(|refused| match refused {
                LiveError::TooManyForUser(_) | LiveError::TooManyFromClient(_) => {
                    Status::resource_exhausted(refused.to_string())
                }
                _ => Status::unavailable("this instance serves its maximum of live connections"),
            }),
            Err(status) => Err(status),
        };
        let subscription = opened?;
        let (sink, stream) = outbound::channel(IN_FLIGHT);
        tokio::spawn(session(
            subscription,
            request.into_inner(),
            sink,
            self.config.clone(),
        ));
        Ok(Response::new(stream))
    }
}

fn ended(subscription: &Subscription) -> Status {
    match subscription.ended() {
        Some(Ended::ShuttingDown) => Status::unavailable("server shutting down; reconnect"),
        Some(Ended::Gap) => {
            Status::unavailable("messages may have been missed; reconnect and rejoin with `since`")
        }
        Some(Ended::Revoked) => {
            Status::unauthenticated("the session has ended, or the account no longer exists")
        }
        Some(Ended::Expired) => {
            Status::unauthenticated("the access token expired; reconnect with a fresh one")
        }
        Some(Ended::TooSlow) | None => Status::resource_exhausted(
            "too slow to read; reconnect and rejoin with `since` to resume",
        ),
    }
}

async fn session(
    mut subscription: Subscription,
    mut inbound: Streaming<pb::ClientEvent>,
    sink: Sink<pb::ServerEvent>,
    config: ChatConfig,
) {
    let mut rate = TokenBucket::new(config.events_per_sec);
    let end = loop {
        tokio::select! {
            () = subscription.ending() => break Some(ended(&subscription)),
            () = sink.closed() => break None,
            delivery = subscription.next() => {
                let Some(delivery) = delivery else { break None };
                if let Err(end) = write(&sink, from_delivery(&delivery), &subscription, &config).await {
                    break end;
                }
            }
            incoming = inbound.message() => {
                let event = match incoming {
                    Ok(Some(event)) => event,
                    // The client closed its side: the session is over.
                    Ok(None) => break None,
                    // Undecodable or oversized: the stream cannot go on.
                    Err(status) => break Some(status),
                };
                let reply = if rate.allow() {
                    handle(&subscription, event).await
                } else if rate.refused() > config.events_per_sec {
                    break Some(Status::resource_exhausted("rate limit exceeded"));
                } else {
                    Some(error("rate_limited", "too many events; slow down"))
                };
                if let Some(reply) = reply
                    && let Err(end) = write(&sink, reply, &subscription, &config).await
                {
                    break end;
                }
            }
        }
    };
    drop(subscription);
    if let Some(status) = end {
        sink.finish(status);
    }
}

/// Writes one event, waiting for a slow reader at most `write_stall`; meanwhile the
/// subscription can still be ended (too slow, shutdown).
async fn write(
    sink: &Sink<pb::ServerEvent>,
    event: pb::ServerEvent,
    subscription: &Subscription,
    config: &ChatConfig,
) -> Result<(), Option<Status>> {
    tokio::select! {
        sent = sink.send(event) => sent.map_err(|_| None),
        () = subscription.ending() => Err(Some(ended(subscription))),
        () = tokio::time::sleep(config.write_stall) => {
            subscription.too_slow();
            Err(Some(ended(subscription)))
        }
    }
}

fn event(event: server_event::Event) -> pb::ServerEvent {
    pb::ServerEvent { event: Some(event) }
}

fn error(code: &str, message: impl Into<String>) -> pb::ServerEvent {
    event(server_event::Event::Error(pb::Error {
        code: code.into(),
        message: message.into(),
    }))
}

fn failed(e: &LiveError) -> pb::ServerEvent {
    error(e.code(), e.public_message())
}

fn message_pb(m: &ChatMessage, client_id: Option<&str>) -> pb::ChatMessage {
    pb::ChatMessage {
        id: m.id.to_string(),
        room: m.room.as_str().to_owned(),
        author: Some(pb::Author {
            id: m.author.id.to_string(),
            name: m.author.name.clone(),
        }),
        text: m.text.as_str().to_owned(),
        sent_at: Some(timestamp(m.sent_at)),
        client_id: client_id.map(str::to_owned),
    }
}

fn from_delivery(delivery: &Delivery) -> pb::ServerEvent {
    match delivery {
        Delivery::Message { message, client_id } => event(server_event::Event::Message(
            message_pb(message, client_id.as_deref()),
        )),
        Delivery::Event(e) => event(server_event::Event::TopicEvent(pb::TopicEvent {
            topic: e.topic.to_string(),
            name: e.kind.to_string(),
            data_json: e.data.to_string(),
        })),
    }
}

/// Handles one client event; returns the direct reply, if any.
async fn handle(subscription: &Subscription, incoming: pb::ClientEvent) -> Option<pb::ServerEvent> {
    let Some(incoming) = incoming.event else {
        return Some(error(
            "invalid_frame",
            "an event needs one of join, leave, message, subscribe, ping",
        ));
    };
    Some(match incoming {
        client_event::Event::Ping(_) => event(server_event::Event::Pong(pb::Pong {})),
        client_event::Event::Join(pb::Join { room, since }) => {
            let since = match since.as_deref().map(str::parse::<MessageId>).transpose() {
                Ok(since) => since,
                Err(_) => return Some(error("validation", "since must be a message id")),
            };
            match subscription.join(&room, since).await {
                Ok(found) => event(server_event::Event::Joined(pb::Joined {
                    history: found.messages.iter().map(|m| message_pb(m, None)).collect(),
                    history_truncated: found.truncated,
                    room,
                })),
                Err(e) => failed(&e),
            }
        }
        client_event::Event::Leave(pb::Leave { room }) => {
            if subscription.leave(&room) {
                event(server_event::Event::Left(pb::Left { room }))
            } else {
                error("not_joined", format!("not in room {room}"))
            }
        }
        client_event::Event::Message(pb::SendMessage {
            room,
            text,
            client_id,
        }) => match subscription.send(&room, &text, client_id).await {
            // The message comes back through the bus like everyone else's.
            Ok(_) => return None,
            Err(e) => failed(&e),
        },
        client_event::Event::Subscribe(pb::Subscribe { topic }) => {
            match subscription.subscribe(&topic) {
                Ok(topic) => event(server_event::Event::Subscribed(pb::Subscribed {
                    topic: topic.to_string(),
                })),
                Err(e) => failed(&e),
            }
        }
    })
}
