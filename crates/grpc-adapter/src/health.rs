//! `grpc.health.v1.Health`, answered from the same readiness checks as `/health/ready`:
//! NOT_SERVING while the database is unreachable.

use std::sync::Arc;
use std::time::Duration;

use ports::health::HealthService;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::outbound::{self, ResponseStream};

/// The names `Check` answers for: the whole server (`""`) and each service.
const SERVICES: [&str; 3] = ["", "app.users.v1.UserService", "app.chat.v1.ChatService"];

pub struct HealthGrpc {
    health: Arc<dyn HealthService>,
    /// How often `Watch` re-checks; every watcher shares one result per period, so
    /// watchers cannot multiply the load on the database.
    poll: Duration,
    shared: Arc<Mutex<Option<(Instant, ServingStatus)>>>,
    /// Cancelled when the server starts shutting down: watches end.
    stop: CancellationToken,
}

impl HealthGrpc {
    pub fn new(health: Arc<dyn HealthService>, poll: Duration, stop: CancellationToken) -> Self {
        Self {
            health,
            poll,
            shared: Arc::new(Mutex::new(None)),
            stop,
        }
    }
}

async fn serving(health: &dyn HealthService) -> ServingStatus {
    if health.readiness().await.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// The status at most `poll` old; one caller re-checks while the others wait for it.
async fn shared_serving(
    health: &dyn HealthService,
    shared: &Mutex<Option<(Instant, ServingStatus)>>,
    poll: Duration,
) -> ServingStatus {
    let mut last = shared.lock().await;
    match *last {
        Some((at, status)) if at.elapsed() < poll => status,
        _ => {
            let status = serving(health).await;
            *last = Some((Instant::now(), status));
            status
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthGrpc {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if !SERVICES.contains(&request.get_ref().service.as_str()) {
            return Err(Status::not_found("unknown service"));
        }
        Ok(Response::new(response(serving(&*self.health).await)))
    }

    type WatchStream = ResponseStream<HealthCheckResponse>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let known = SERVICES.contains(&request.get_ref().service.as_str());
        let (sink, stream) = outbound::channel(1);
        let health = self.health.clone();
        let shared = self.shared.clone();
        let poll = self.poll;
        let stop = self.stop.clone();
        tokio::spawn(async move {
            // Per the protocol: the current status at once, then every change.
            let mut last = None;
            loop {
                let now = if known {
                    shared_serving(&*health, &shared, poll).await
                } else {
                    ServingStatus::ServiceUnknown
                };
                if last != Some(now) {
                    let sent = tokio::select! {
                        sent = sink.send(response(now)) => sent.is_ok(),
                        () = stop.cancelled() => false,
                    };
                    if !sent {
                        break;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = sink.closed() => return,
                    () = stop.cancelled() => break,
                }
            }
            if stop.is_cancelled() {
                sink.finish(Status::unavailable("server shutting down"));
            }
        });
        Ok(Response::new(stream))
    }
}
