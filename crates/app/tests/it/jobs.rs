use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::jobs::{JobPayload, JobQueue, JobState, NewJob};
use domain::mail::{EmailMessage, MailError, Mailer};
use serde_json::{Value, json};
use test_support::SmtpSink;

use crate::support::*;

async fn jobs(app: &TestApp, token: &str, state: &str) -> Vec<Value> {
    let (status, page) = app
        .get_as(token, &format!("/api/admin/jobs?state={state}"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Polls the admin API until a job in `state` shows up (bounded).
async fn wait_for_job(app: &TestApp, token: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(job) = jobs(app, token, state).await.into_iter().next() {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {state} job appeared"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn spawn_with_smtp(smtp_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let db = test_support::TestDb::new().await;
    let mut vars = vec![
        ("SMTP_URL", smtp_url),
        ("SMTP_FROM", "Users <no-reply@users.example>"),
    ];
    vars.extend_from_slice(extra);
    let mut app = spawn_with(settings(Some(db.url()), &vars)).await;
    app.db = Some(db);
    app
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_delivers_the_welcome_email_over_smtp() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_smtp(&sink.url(), &[]).await;
    app.create_user("Ada Lovelace", "ada@example.com").await;

    let mails = sink
        .wait_until(Duration::from_secs(15), |m| !m.is_empty())
        .await;
    let mail = &mails[0];
    assert_eq!(mail.to, ["<ada@example.com>"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Welcome, Ada Lovelace")
    );
    assert!(mail.data.contains("multipart/alternative"));

    let token = app.admin_token().await;
    let done = wait_for_job(&app, &token, "completed").await;
    assert_eq!(done["kind"], "welcome_email");
    assert_eq!(done["payload"]["email"], "ada@example.com");
    let message_id = format!("<job-{}@users.example>", done["id"].as_str().unwrap());
    assert_eq!(mail.header("Message-ID"), Some(message_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_enqueues_nothing() {
    let app = spawn_app().await;
    app.create_user("Ada", "ada@example.com").await;
    let (status, _) = app
        .post(
            "/api/users",
            json!({"name": "Twin", "email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 409);
    let token = app.admin_token().await;
    let (_, page) = app.get_as(&token, "/api/admin/jobs").await;
    let welcome: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "welcome_email")
        .collect();
    assert_eq!(welcome.len(), 1, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_means_retries_with_backoff_then_delivery_when_it_returns() {
    let port = free_port();
    let app = spawn_with_smtp(
        &format!("smtp://127.0.0.1:{port}"),
        &[
            ("JOB_BACKOFF_BASE_MS", "50"),
            ("JOB_BACKOFF_MAX_MS", "200"),
            ("JOB_MAX_ATTEMPTS", "100"),
        ],
    )
    .await;
    app.create_user("Ada", "ada@example.com").await;
    let token = app.admin_token().await;
    let failed = wait_for_job(&app, &token, "failed").await;
    assert!(failed["last_error"].as_str().is_some_and(|e| !e.is_empty()));

    let sink = SmtpSink::start_on(port, Duration::ZERO).await;
    let mails = sink
        .wait_until(Duration::from_secs(15), |m| !m.is_empty())
        .await;
    assert_eq!(mails[0].to, ["<ada@example.com>"]);
    let done = wait_for_job(&app, &token, "completed").await;
    assert!(done["attempts"].as_u64().unwrap() >= 2, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_is_kept_with_its_error_and_an_admin_can_retry_it() {
    let port = free_port();
    let app = spawn_with_smtp(
        &format!("smtp://127.0.0.1:{port}"),
        &[("JOB_MAX_ATTEMPTS", "1")],
    )
    .await;
    app.create_user("Ada", "ada@example.com").await;
    let token = app.admin_token().await;
    let dead = wait_for_job(&app, &token, "dead").await;
    assert_eq!(dead["attempts"], 1);
    assert!(dead["last_error"].is_string());

    let user_token = app.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let retry_path = format!("/api/admin/jobs/{}/retry", dead["id"].as_str().unwrap());
    let forbidden = app
        .client
        .post(app.url(&retry_path))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let sink = SmtpSink::start_on(port, Duration::ZERO).await;
    let retried = app
        .client
        .post(app.url(&retry_path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    sink.wait_until(Duration::from_secs(15), |m| !m.is_empty())
        .await;
    let again = app
        .client
        .post(app.url(&retry_path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(again.status().as_u16(), 409),
        "not failed or dead any more"
    );
}

/// A mailer that never finishes, to hold a job in flight.
struct Stuck;

#[async_trait]
impl Mailer for Stuck {
    async fn send(&self, _: &EmailMessage) -> Result<(), MailError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_worker_task_and_releases_unfinished_jobs() {
    let users = memory_adapter::MemoryUserRepository::new();
    let queue = Arc::new(users.jobs());
    queue
        .enqueue(&NewJob::now(
            JobPayload::WelcomeEmail {
                user_id: uuid::Uuid::now_v7(),
                email: "ada@example.com".into(),
                name: "Ada".into(),
            },
            5,
        ))
        .await
        .unwrap();
    let settings = settings(None, &[("WORKERS", "3")]);
    let runner = Arc::new(ports::jobs::JobRunner::new(Arc::new(Stuck), "x.example"));
    let metrics = tokio::runtime::Handle::current().metrics();
    let alive_before = metrics.num_alive_tasks();
    let pool = app::workers::WorkerPool::start(queue.clone(), runner, &settings.jobs);
    assert_eq!(metrics.num_alive_tasks(), alive_before + 3);

    // Wait until a worker holds the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queue
        .list(Some(JobState::Running), domain::Limit::DEFAULT, None)
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let ended = tokio::time::timeout(
        Duration::from_secs(5),
        pool.shutdown(Duration::from_millis(200)),
    )
    .await
    .expect("shutdown is bounded by the grace period");
    assert_eq!(ended, 3);
    // A joined task leaves the runtime's task list a moment after its output is taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while metrics.num_alive_tasks() > alive_before {
        assert!(
            std::time::Instant::now() < deadline,
            "a task outlived shutdown: {} alive, {alive_before} before",
            metrics.num_alive_tasks()
        );
        tokio::task::yield_now().await;
    }
    let queued = queue
        .list(Some(JobState::Queued), domain::Limit::DEFAULT, None)
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 1, "the unfinished job was released");
    assert_eq!(queued.items[0].attempts, 0, "its attempt does not count");
}
