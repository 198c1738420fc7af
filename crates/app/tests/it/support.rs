use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use app::{Application, Settings};
use serde_json::{Value, json};
use test_support::TestDb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A client of the HTTP API at any address: a server of [`spawn_app`], or a process
/// started from the binary. Answers come back as `(status, JSON body)`.
#[derive(Clone)]
pub struct ApiClient {
    pub address: String,
    pub client: reqwest::Client,
}

/// A running server and a client for it (through `Deref`, `app.get(…)` is its
/// [`ApiClient`]'s). Dropping it stops the server.
pub struct TestApp {
    pub api: ApiClient,
    /// `http://127.0.0.1:{grpc port}`, for tonic clients.
    pub grpc_address: String,
    /// `http://127.0.0.1:{port}` of `/metrics` when `METRICS_ADDR` is set.
    pub metrics_address: Option<String>,
    pub db: Option<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery staple";

/// Settings for a test server (a random port and a small pool), read as the process
/// reads its environment, with `extra` variables on top. A name in `extra` that the
/// settings never read fails the test: a misspelt override would otherwise be ignored.
pub fn settings(database_url: Option<&str>, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("GRPC_PORT", "0"),
        ("DB_MAX_CONNECTIONS", "5"),
        ("DB_MIN_IDLE", "1"),
        ("SHUTDOWN_GRACE_SECS", "10"),
        ("HTTP_WORKERS", "2"),
        ("JWT_SECRET", JWT_SECRET),
        ("WORKERS", "2"),
        // Tests register many users from one address; the limit has its own tests.
        ("REGISTRATION_RATE_LIMIT_PER_MINUTE", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(url) = database_url {
        vars.insert("DATABASE_URL".into(), url.into());
    }
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let read = RefCell::new(HashSet::<String>::new());
    let settings = Settings::from_lookup(|k| {
        read.borrow_mut().insert(k.to_owned());
        vars.get(k).cloned()
    })
    .expect("test settings");
    let read = read.into_inner();
    for (name, _) in extra {
        assert!(read.contains(*name), "`{name}` is not a setting: misspelt?");
    }
    settings
}

/// The server on a fresh Postgres database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The server on a fresh Postgres database, with the test's settings changed by
/// `configure`, in their own types: `spawn_app_with(|s| s.jobs.workers = 0)`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new().await;
    let mut settings = settings(Some(db.url()), &[]);
    configure(&mut settings);
    let mut app = spawn_with(settings).await;
    app.db = Some(db);
    app
}

/// The server on the in-memory default, as `cargo run -p app` starts it: no database
/// and no JWT secret (a random one is made).
pub async fn spawn_memory_app() -> TestApp {
    spawn_with(settings(None, &[("JWT_SECRET", "")])).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    let application = Application::build(&settings).await.expect("build the app");
    let address = format!("http://127.0.0.1:{}", application.port());
    let grpc_address = format!("http://127.0.0.1:{}", application.grpc_port());
    let metrics_address = application
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(application.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        api: ApiClient::new(address),
        grpc_address,
        metrics_address,
        db: None,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl std::ops::Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl ApiClient {
    /// A client of the server at `address` (`http://host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET` without credentials.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        read(response).await
    }

    /// `GET` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    /// `POST` of a JSON body without credentials.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    /// `POST` of a JSON body with a bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    pub async fn patch_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("PATCH");
        read(response).await
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> u16 {
        let response = self
            .client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE");
        response.status().as_u16()
    }

    /// Registers a user (password [`PASSWORD`]) and returns its JSON.
    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/users",
                json!({"name": name, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Registers a user and returns their access token.
    pub async fn signed_in(&self, name: &str, email: &str) -> (Value, String) {
        let user = self.create_user(name, email).await;
        let tokens = self.login(email, PASSWORD).await;
        (user, tokens["access_token"].as_str().unwrap().to_owned())
    }
}

impl TestApp {
    /// Makes `root@example.com` an admin the operator's way (`create-admin`) and returns
    /// their access token. Needs a Postgres-backed app.
    pub async fn admin_token(&self) -> String {
        let url = self
            .db
            .as_ref()
            .expect("a Postgres-backed app")
            .url()
            .to_owned();
        app::create_admin(
            &settings(Some(&url), &[]),
            "Root",
            "root@example.com",
            PASSWORD,
        )
        .await
        .expect("create admin");
        self.login("root@example.com", PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.wait().await
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Takes the database so it outlives this server (e.g. for a restart).
    pub fn take_db(&mut self) -> TestDb {
        self.db.take().expect("a Postgres-backed app")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}
