use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use domain::Error;
use domain::auth::{Claims, Principal, SessionId};
use domain::users::{Email, Role, User, UserId, UserName};
use http_adapter::{ApiState, HttpConfig, app};
use memory_adapter::MemoryIdempotencyStore;
use ports::auth::{AuthService, MockAuthService};
use ports::health::{CheckStatus, HealthService, MockHealthService, Readiness};
use ports::jobs::MockJobService;
use ports::posts::{MockPostService, PostService};
use ports::users::{MockUserService, UserService};

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type")
    }

    /// Asserts an RFC 9457 problem with this status and returns its `errors` fields.
    pub fn assert_problem(&self, status: u16) -> Vec<String> {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        for member in ["type", "title", "detail"] {
            assert!(
                self.body[member].is_string(),
                "problem lacks {member}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn healthy() -> Arc<dyn HealthService> {
    let mut health = MockHealthService::new();
    health.expect_readiness().returning(|| Readiness {
        checks: vec![("database", CheckStatus::Ok)],
    });
    Arc::new(health)
}

pub const USER_TOKEN: &str = "Bearer user-token";
pub const ADMIN_TOKEN: &str = "Bearer admin-token";

pub fn user_id() -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(1))
}

pub fn admin_id() -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(2))
}

/// Token checks as the real service does them, for two known tokens.
pub fn token_auth() -> MockAuthService {
    let mut auth = MockAuthService::new();
    let claims = |user_id, role| Claims {
        principal: Principal { user_id, role },
        session: SessionId::from_uuid(uuid::Uuid::from_u128(9)),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::minutes(15),
    };
    auth.expect_authenticate()
        .returning(move |token| match token {
            "user-token" => Ok(claims(user_id(), Role::User)),
            "admin-token" => Ok(claims(admin_id(), Role::Admin)),
            _ => Err(Error::Unauthorized("invalid or expired token")),
        });
    auth
}

pub fn state(users: impl UserService) -> ApiState {
    with_auth(users, token_auth())
}

pub fn with_auth(users: impl UserService, auth: impl AuthService) -> ApiState {
    ApiState {
        worker_start: None,
        users: Arc::new(users),
        health: healthy(),
        auth: Arc::new(auth),
        accounts: Arc::new(ports::accounts::MockAccountService::new()),
        posts: Arc::new(MockPostService::new()),
        idempotency: http_adapter::Idempotency {
            store: Arc::new(MemoryIdempotencyStore::new()),
            fingerprint_key: http_adapter::FingerprintKey([7; 32]),
        },
        jobs: Arc::new(MockJobService::new()),
        rate_limits: Arc::new(ports::rate_limit::LocalRateLimits::default()),
        live: ports::live::Live::start(
            Arc::new(ports::chat::MockChatService::new()),
            Arc::new(memory_adapter::MemoryEventBus::default()),
            ports::live::LiveConfig::default(),
        ),
        ws: http_adapter::WsConfig::default(),
        metrics: None,
    }
}

pub fn with_posts(posts: impl PostService) -> ApiState {
    let mut state = state(untouched());
    state.posts = Arc::new(posts);
    state
}

pub async fn send(state: ApiState, req: TestRequest) -> Reply {
    send_with(state, HttpConfig::default(), req).await
}

/// Calls the service; an error (panic, timeout) is rendered the way the server renders it.
pub async fn call<S, R, B>(service: &S, req: R) -> ServiceResponse
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    match test::try_call_service(service, req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => {
            let (req, _) = TestRequest::default().to_srv_request().into_parts();
            ServiceResponse::new(req, error.error_response())
        }
    }
}

pub async fn send_with(state: ApiState, config: HttpConfig, req: TestRequest) -> Reply {
    let service = test::init_service(app(state, config)).await;
    let response = call(&service, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// A service whose every method must not be called.
pub fn untouched() -> MockUserService {
    stored_roles_as_claimed(MockUserService::new())
}

/// Every claimed role is the one stored now (the admin scope asks).
pub fn stored_roles_as_claimed(mut users: MockUserService) -> MockUserService {
    users.expect_current_principal().returning(Ok);
    users
}

pub fn ada() -> User {
    User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    )
}

/// A request with the ordinary user's token.
pub fn as_user(req: TestRequest) -> TestRequest {
    req.insert_header(("authorization", USER_TOKEN))
}

/// A request with the admin's token.
pub fn as_admin(req: TestRequest) -> TestRequest {
    req.insert_header(("authorization", ADMIN_TOKEN))
}

pub fn post_json(uri: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}
