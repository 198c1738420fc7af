//! The client's `grpc-timeout`, applied to the use case it asked for.
//!
//! tonic itself answers `CANCELLED` when a deadline passes, on the client and on the
//! server alike. So the server gives up a little earlier (a tenth of the budget, at
//! most 20 ms): the use case is dropped (cancelled) and the client hears
//! `DEADLINE_EXCEEDED` before its own timer fires.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Status};

use crate::status::status;

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

const MAX_MARGIN: Duration = Duration::from_millis(20);

impl Deadline {
    pub fn of<T>(request: &Request<T>) -> Self {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout);
        Self(timeout.map(|t| Instant::now() + t - (t / 10).min(MAX_MARGIN)))
    }

    /// Runs `work`, dropping it with `DEADLINE_EXCEEDED` when the deadline passes.
    pub async fn bound<T>(
        self,
        work: impl Future<Output = Result<T, domain::Error>>,
    ) -> Result<T, Status> {
        match self.0 {
            None => work.await.map_err(status),
            Some(at) => match tokio::time::timeout_at(at, work).await {
                Ok(result) => result.map_err(status),
                Err(_) => Err(exceeded()),
            },
        }
    }

    /// Completes when the deadline passes (never, without one).
    pub async fn passed(self) {
        match self.0 {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

pub fn exceeded() -> Status {
    Status::deadline_exceeded("the deadline passed before the call completed")
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.checked_mul(3600)?),
        "M" => Duration::from_secs(value.checked_mul(60)?),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_the_rest() {
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "S", "5", "5s", "123456789S", "-5S", "5 S"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_is_dropped_with_deadline_exceeded() {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("grpc-timeout", "100m".parse().unwrap());
        let deadline = Deadline::of(&request);
        let started = Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, domain::Error>(())
        };
        let status = deadline.bound(slow).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        // A tenth of the budget earlier, so the client hears it before its own timer.
        assert_eq!(started.elapsed(), Duration::from_millis(90));
    }
}
