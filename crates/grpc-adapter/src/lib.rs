//! The gRPC inbound adapter: `app.users.v1.UserService` and `app.chat.v1.ChatService`
//! over the same `ports` use cases as the HTTP adapter, plus `grpc.health.v1.Health`
//! and server reflection (so `grpcurl` works without the `.proto` files).
//!
//! Nothing here decides who may do what: authorisation and validation live in the use
//! cases; this crate maps requests in and statuses out (`status.rs`, the gRPC column of
//! docs/errors.md).

mod auth;
mod chat;
mod client;
mod deadline;
mod health;
mod incoming;
mod observe;
mod outbound;
pub mod status;
mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use chat::ChatConfig;
use ports::auth::AuthService;
use ports::health::HealthService;
use ports::live::Live;
use ports::users::UserService;
use tonic::transport::Server;

/// Generated message types, servers and clients.
pub mod pb {
    pub mod users {
        tonic::include_proto!("app.users.v1");
    }
    pub mod chat {
        tonic::include_proto!("app.chat.v1");
    }
    /// Every service's descriptors, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
}

/// The use cases the gRPC services call.
#[derive(Clone)]
pub struct GrpcState {
    pub users: Arc<dyn UserService>,
    pub auth: Arc<dyn AuthService>,
    pub health: Arc<dyn HealthService>,
    pub live: Arc<Live>,
}

/// Transport limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcConfig {
    /// Largest request message accepted (a chat event or a unary request).
    pub max_message_bytes: usize,
    /// Concurrent streams (calls) one HTTP/2 connection may carry.
    pub max_concurrent_streams: u32,
    /// HTTP/2 pings on idle connections, to notice dead peers.
    pub keepalive: Duration,
    /// How often a health `Watch` re-checks.
    pub health_poll: Duration,
    pub chat: ChatConfig,
    /// Connections open at once; the next is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection that has not sent the HTTP/2 preface by then is closed.
    pub handshake_timeout: Duration,
    /// A connection older than this is asked to go away (GOAWAY) so clients rebalance;
    /// calls still running get `max_connection_age_grace` to finish.
    pub max_connection_age: Duration,
    pub max_connection_age_grace: Duration,
    /// Peers whose `forwarded` / `x-forwarded-for` metadata names the client (an L7
    /// proxy in front); empty: the TCP peer is the client.
    pub trusted_proxies: ports::client::TrustedProxies,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            keepalive: Duration::from_secs(30),
            health_poll: Duration::from_secs(5),
            chat: ChatConfig::default(),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60 * 60),
            max_connection_age_grace: Duration::from_secs(5 * 60),
            trusted_proxies: ports::client::TrustedProxies::default(),
        }
    }
}

/// Serves every gRPC service on `listener` until `shutdown` completes; then stops
/// accepting and lets calls in flight finish (chat streams end when the live hub
/// closes).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: GrpcState,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    // Streams that would otherwise run until their client leaves (health `Watch`, a
    // `ListUsers` whose reader stopped reading) end when shutdown starts, so the
    // graceful stop does not wait out the grace period for them.
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        // The descriptor sets are generated at build time; a bad one is a build bug.
        .map_err(|e| {
            tracing::error!(error = %e, "gRPC reflection is unavailable");
        })
        .ok();
    let users = pb::users::user_service_server::UserServiceServer::new(users::UsersGrpc::new(
        state.users.clone(),
        state.auth.clone(),
        stop.clone(),
        config.trusted_proxies.clone(),
    ))
    .max_decoding_message_size(config.max_message_bytes);
    let chat = pb::chat::chat_service_server::ChatServiceServer::new(chat::ChatGrpc::new(
        state.live.clone(),
        state.auth.clone(),
        state.users.clone(),
        config.chat.clone(),
        config.trusted_proxies.clone(),
    ))
    .max_decoding_message_size(config.max_message_bytes);
    let incoming = incoming::admit(
        listener,
        config.max_connections,
        config.handshake_timeout,
        stop.clone(),
    );
    let health = tonic_health::pb::health_server::HealthServer::new(health::HealthGrpc::new(
        state.health.clone(),
        config.health_poll,
        stop,
    ));
    Server::builder()
        // One span per call, with the caller's `x-request-id` (if sane) or a new one,
        // like HTTP requests: every log line of the call carries it.
        .trace_fn(|request| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= 128
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                })
                .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
            tracing::info_span!("rpc", method = %request.uri().path(), request_id = %request_id)
        })
        .layer(observe::ObserveLayer)
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(Some(config.keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_connection_age(config.max_connection_age)
        .max_connection_age_grace(config.max_connection_age_grace)
        .add_service(users)
        .add_service(chat)
        .add_service(health)
        .add_optional_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
