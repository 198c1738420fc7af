//! Several instances of the binary on one database, as behind a load balancer.

use std::time::{Duration, Instant};

use crate::binary::{app, listening, read_log};
use crate::support::{ApiClient, JWT_SECRET};

/// One running instance.
struct Instance {
    process: tokio::process::Child,
    api: ApiClient,
}

async fn start(db: &test_support::TestDb, extra: &[(&str, &str)]) -> Instance {
    let mut command = app();
    command
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", JWT_SECRET)
        .env("WORKERS", "0");
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut process = command.spawn().unwrap();
    let (address, lines) = listening(&mut process).await;
    let _log = read_log(lines);
    Instance {
        process,
        api: ApiClient::new(format!("http://{address}")),
    }
}

/// Whether the instance reports that it holds the housekeeping lease.
async fn leads(instance: &Instance) -> bool {
    let text = reqwest::get(instance.api.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().any(|line| line == "housekeeping_leader 1")
}

/// Waits until exactly one of `instances` leads, and returns which.
async fn the_leader(instances: &[Instance], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        for (n, instance) in instances.iter().enumerate() {
            if leads(instance).await {
                leaders.push(n);
            }
        }
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job that completed two days ago, past the default retention of a day.
async fn old_completed_job(db: &test_support::TestDb) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    db.execute(&format!(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
           created_at, updated_at) \
         VALUES ('{id}', 'welcome_email', '{{}}', 'completed', 1, 5, now(), \
           now() - interval '2 days', now() - interval '2 days')"
    ))
    .await;
    id
}

async fn swept(db: &test_support::TestDb, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while db
        .count(&format!("SELECT count(*) AS n FROM jobs WHERE id = '{id}'"))
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "job {id} was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_housekeeping_lease_moves_within_its_lifetime_when_the_leader_dies() {
    const LEASE: Duration = Duration::from_secs(3);
    let db = test_support::TestDb::new().await;
    let settings = [
        ("LEADER_LEASE_SECS", "3"),
        ("HOUSEKEEPING_INTERVAL_SECS", "1"),
    ];
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(start(&db, &settings).await);
    }
    let leader = the_leader(&instances, 2 * LEASE).await;
    // Only the leader reports job counts, so a sum over instances counts each job once.
    for (n, instance) in instances.iter().enumerate() {
        let text = reqwest::get(instance.api.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let reports = text
            .lines()
            .any(|l| l.starts_with("jobs{state=\"queued\"}"));
        assert_eq!(reports, n == leader, "instance {n} (leader {leader})");
    }
    let old = old_completed_job(&db).await;
    let young = old_completed_job(&db).await;
    db.execute(&format!(
        "UPDATE jobs SET updated_at = now() WHERE id = '{young}'"
    ))
    .await;
    swept(&db, &old, Duration::from_secs(10)).await;

    // Killed, not stopped: it cannot give the lease up.
    let mut dead = instances.remove(leader);
    dead.process.start_kill().unwrap();
    dead.process.wait().await.unwrap();
    let killed = Instant::now();
    let successor = the_leader(&instances, 2 * LEASE).await;
    let took = killed.elapsed();
    // Within the lease's lifetime (and the time one scrape round takes).
    assert!(took <= LEASE + Duration::from_millis(500), "took {took:?}");

    // The sweeps go on under the successor, and keep what is young.
    let older = old_completed_job(&db).await;
    swept(&db, &older, Duration::from_secs(10)).await;
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM jobs WHERE id = '{young}'"
        ))
        .await,
        1
    );
    // A graceful stop hands the lease over at once, without waiting for it to expire.
    let mut stopping = instances.remove(successor);
    crate::binary::sigterm(&stopping.process);
    stopping.process.wait().await.unwrap();
    let stopped = Instant::now();
    the_leader(&instances, 2 * LEASE).await;
    assert!(stopped.elapsed() < LEASE, "took {:?}", stopped.elapsed());
}
