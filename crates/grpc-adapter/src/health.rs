//! `grpc.health.v1.Health`, answered from the same readiness checks as `/health/ready`:
//! NOT_SERVING while the database is unreachable.

use std::sync::Arc;
use std::time::Duration;

use ports::health::HealthService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::outbound::{self, ResponseStream};

/// The names `Check` answers for: the whole server (`""`) and each service.
const SERVICES: [&str; 3] = ["", "app.users.v1.UserService", "app.chat.v1.ChatService"];

pub struct HealthGrpc {
    health: Arc<dyn HealthService>,
    /// How often `Watch` re-checks.
    poll: Duration,
}

impl HealthGrpc {
    pub fn new(health: Arc<dyn HealthService>, poll: Duration) -> Self {
        Self { health, poll }
    }
}

async fn serving(health: &dyn HealthService) -> ServingStatus {
    if health.readiness().await.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
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
        let poll = self.poll;
        tokio::spawn(async move {
            // Per the protocol: the current status at once, then every change.
            let mut last = None;
            loop {
                let now = if known {
                    serving(&*health).await
                } else {
                    ServingStatus::ServiceUnknown
                };
                if last != Some(now) {
                    if sink.send(response(now)).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = sink.closed() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}
