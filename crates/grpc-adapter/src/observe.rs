//! One tower layer around every call: counts it by method and status code, times it
//! (for streams: until the stream is open), and logs one line, inside the call's span,
//! as HTTP does in its middleware. No method has to remember to do it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderMap, Request, Response};

/// The methods counted by name. Anything else a client sends (an unknown path, health,
/// reflection) is counted as `other`: a label's values must not be the client's choice.
const METHODS: &[(&str, &str)] = &[
    ("/app.users.v1.UserService/CreateUser", "CreateUser"),
    ("/app.users.v1.UserService/GetUser", "GetUser"),
    ("/app.users.v1.UserService/UpdateUser", "UpdateUser"),
    ("/app.users.v1.UserService/ListUsers", "ListUsers"),
    ("/app.chat.v1.ChatService/Chat", "Chat"),
];

/// The layer; see the module's documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed(inner)
    }
}

/// A service with every call observed.
#[derive(Debug, Clone)]
pub struct Observed<S>(S);

impl<S, B, RB> Service<Request<B>> for Observed<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = METHODS
            .iter()
            .find(|(path, _)| *path == request.uri().path())
            .map_or("other", |(_, name)| name);
        let started = Instant::now();
        let call = self.0.call(request);
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(response) => code_of(response.headers()),
                Err(_) => Code::Internal,
            };
            record(method, code, started);
            result
        })
    }
}

/// A call that failed before its body answers "trailers-only": its status is in the
/// headers. Otherwise the head means the call is under way, which is success so far
/// (a unary call's status then comes in the trailers, and is `OK` unless its body
/// failed to encode).
fn code_of(headers: &HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

fn record(method: &'static str, code: Code, started: Instant) {
    let elapsed = started.elapsed();
    let code = format!("{code:?}");
    metrics::counter!("grpc_requests_total", "method" => method, "code" => code.clone())
        .increment(1);
    metrics::histogram!("grpc_request_duration_seconds", "method" => method)
        .record(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if matches!(code.as_str(), "Internal" | "Unavailable" | "Unknown") {
        tracing::warn!(method, code, latency_ms, "rpc completed");
    } else {
        tracing::info!(method, code, latency_ms, "rpc completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_of_a_failed_call_is_read_from_its_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(code_of(&headers), Code::Ok);
        headers.insert(
            "grpc-status",
            "5".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(code_of(&headers), Code::NotFound);
    }
}
