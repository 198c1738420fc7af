//! Prometheus: the process-wide recorder, what `/metrics` samples at scrape time, and
//! the figures only the housekeeping leader reports.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ports::housekeeping::HousekeepingStatus;
use ports::live::Live;
use postgres_adapter::Database;

use crate::wiring::Databases;

/// The process-wide Prometheus recorder. Installed once: tests run several
/// applications in one process, and they share it.
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics is off");
                return None;
            }
            // Histograms buffer samples until upkeep folds them in; without a scrape
            // they would grow, so fold them in on a timer too.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread did not start");
            }
            metrics::gauge!("build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .clone()
}

/// `GET /metrics`: samples what is cheap to read at scrape time (pool sizes, live
/// connections), then renders everything off the HTTP worker. Nothing here touches the
/// database: job counts come from the housekeeping leader.
pub(crate) fn renderer(
    db: Option<&Databases>,
    live: Arc<Live>,
    housekeeping: Arc<HousekeepingStatus>,
    revocations: Arc<ports::sessions::Revocations>,
) -> Option<http_adapter::MetricsRenderer> {
    let handle = prometheus()?;
    let pools: Vec<(&'static str, Database)> = db
        .map(|db| vec![("main", db.main.clone()), ("jobs", db.jobs.clone())])
        .unwrap_or_default();
    Some(Arc::new(move || {
        let handle = handle.clone();
        let pools = pools.clone();
        let live = live.clone();
        let housekeeping = housekeeping.clone();
        let revocations = revocations.clone();
        Box::pin(async move {
            for (name, pool) in &pools {
                let stats = pool.stats();
                metrics::gauge!("db_pool_max_connections", "pool" => *name)
                    .set(stats.max_size as f64);
                metrics::gauge!("db_pool_connections", "pool" => *name).set(stats.size as f64);
                metrics::gauge!("db_pool_idle_connections", "pool" => *name).set(stats.idle as f64);
                metrics::gauge!("db_pool_waiting", "pool" => *name).set(stats.waiting as f64);
            }
            let stats = live.stats();
            metrics::gauge!("live_connections").set(stats.open as f64);
            metrics::counter!("live_dropped_slow_total").absolute(stats.dropped_too_slow);
            // The sessions this instance refuses tokens of: ended within one token
            // lifetime. A steady climb means many sessions end (a logout-all storm).
            metrics::gauge!("sessions_ended_remembered").set(revocations.len() as f64);
            // Rendering walks every series: on the blocking pool, an HTTP worker keeps
            // serving meanwhile.
            let mut text = tokio::task::spawn_blocking(move || handle.render())
                .await
                .unwrap_or_default();
            text.push_str(&leader_figures(&housekeeping));
            text
        })
    }))
}

/// How often the housekeeping leader reads the job counts of `/metrics`.
pub(crate) const JOB_COUNTS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// The figures only the housekeeping leader reports, in the exposition format: whether
/// this instance leads, and the job counts (from the leader alone, so a sum over
/// instances counts every job once; an instance that stops leading stops reporting).
fn leader_figures(status: &HousekeepingStatus) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP housekeeping_leader 1 on the instance that runs the periodic work.\n\
         # TYPE housekeeping_leader gauge\n",
    );
    let _ = writeln!(out, "housekeeping_leader {}", u8::from(status.is_leader()));
    if let Some(counts) = status.job_counts() {
        out.push_str(
            "# HELP jobs Jobs in each state, reported by the housekeeping leader only.\n\
             # TYPE jobs gauge\n",
        );
        for (state, n) in counts {
            let _ = writeln!(out, "jobs{{state=\"{}\"}} {n}", state.as_str());
        }
    }
    out
}
