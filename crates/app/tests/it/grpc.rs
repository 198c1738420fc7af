//! gRPC end to end: tonic clients against the real server, on Postgres.

use std::time::{Duration, Instant};

use grpc_adapter::pb::chat::chat_service_client::ChatServiceClient;
use grpc_adapter::pb::chat::{self, client_event, server_event};
use grpc_adapter::pb::users::user_service_client::UserServiceClient;
use grpc_adapter::pb::users::{self, Role};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::support::*;

async fn users_client(app: &TestApp) -> UserServiceClient<Channel> {
    UserServiceClient::connect(app.grpc_address.clone())
        .await
        .expect("connect")
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(app.grpc_address.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

/// A request carrying `authorization: Bearer <token>`.
fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn create(name: &str, email: &str) -> users::CreateUserRequest {
    users::CreateUserRequest {
        name: name.into(),
        email: email.into(),
        password: PASSWORD.into(),
    }
}

/// The field violations in a status's `google.rpc.BadRequest` details.
fn violations(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_rpc_works_against_postgres() {
    let app = spawn_app().await;
    let mut client = users_client(&app).await;

    // Registration is public, like POST /api/users.
    let ada = client
        .create_user(create("Ada", "ada@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ada.name.as_str(), ada.email.as_str()),
        ("Ada", "ada@example.com")
    );
    assert_eq!(ada.role, Role::User as i32);
    assert_eq!(ada.version, 1);
    assert!(ada.created_at.is_some());
    let token = app.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same user the REST API sees.
    let fetched = client
        .get_user(authed(users::GetUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, ada);
    let (status, rest) = app.get_as(&token, &format!("/api/users/{}", ada.id)).await;
    assert_eq!(
        (status, rest["email"].as_str()),
        (200, Some("ada@example.com"))
    );

    let updated = client
        .update_user(authed(
            users::UpdateUserRequest {
                id: ada.id.clone(),
                name: Some("Ada Lovelace".into()),
                expected_version: Some(1),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.version),
        ("Ada Lovelace", 2)
    );

    // Five users in all, streamed newest first over pages of two.
    for i in 0..4 {
        client
            .create_user(create(&format!("User {i}"), &format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    let list = |page_size, after: String, max_users| {
        authed(
            users::ListUsersRequest {
                page_size,
                after,
                max_users,
            },
            &token,
        )
    };
    let streamed: Vec<users::ListUsersResponse> = client
        .list_users(list(2, String::new(), 0))
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    let names: Vec<_> = streamed
        .iter()
        .map(|r| r.user.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(
        names,
        ["User 3", "User 2", "User 1", "User 0", "Ada Lovelace"]
    );

    // `max_users` stops early; a cursor resumes right after its user.
    let first_two: Vec<_> = client
        .list_users(list(0, String::new(), 2))
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(first_two.len(), 2);
    let rest: Vec<_> = client
        .list_users(list(2, first_two[1].cursor.clone(), 0))
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let rest: Vec<_> = rest
        .iter()
        .map(|r| r.user.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(rest, ["User 1", "User 0", "Ada Lovelace"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_one_grpc_code_each() {
    let app = spawn_app().await;
    let mut client = users_client(&app).await;
    let ada = client
        .create_user(create("Ada", "ada@example.com"))
        .await
        .unwrap()
        .into_inner();
    let grace = client
        .create_user(create("Grace", "grace@example.com"))
        .await
        .unwrap()
        .into_inner();
    let token = app.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let duplicate = client
        .create_user(create("Ada again", "ADA@example.com"))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate:?}");

    let invalid = client
        .create_user(users::CreateUserRequest {
            name: String::new(),
            email: "not-an-email".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violations(&invalid), ["name", "email"]);

    let get = |id: &str, token: &str| authed(users::GetUserRequest { id: id.into() }, token);
    let missing = client
        .get_user(get("0190f0f0-0000-7000-8000-000000000000", &token))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_id = client.get_user(get("42", &token)).await.unwrap_err();
    assert_eq!(
        (bad_id.code(), violations(&bad_id)),
        (Code::InvalidArgument, vec!["id".to_owned()])
    );

    // Metadata auth: missing, garbage, and a wrong scheme are all UNAUTHENTICATED.
    let anonymous = client
        .get_user(users::GetUserRequest { id: ada.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let garbage = client.get_user(get(&ada.id, "garbage")).await.unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);
    let mut basic = Request::new(users::GetUserRequest { id: ada.id.clone() });
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {token}").parse().unwrap());
    assert_eq!(
        client.get_user(basic).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // Someone else's account, or one's own role: PERMISSION_DENIED.
    let update = |id: &str, change: users::UpdateUserRequest| {
        authed(
            users::UpdateUserRequest {
                id: id.into(),
                ..change
            },
            &token,
        )
    };
    let others = client
        .update_user(update(
            &grace.id,
            users::UpdateUserRequest {
                name: Some("Mallory".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(others.code(), Code::PermissionDenied);
    let promote = client
        .update_user(update(
            &ada.id,
            users::UpdateUserRequest {
                role: Some(Role::Admin as i32),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(promote.code(), Code::PermissionDenied);
    // Asking for a role is what is forbidden, whatever the value and whatever else is
    // wrong: the same order as over HTTP (403 before 422).
    let invalid_promote = client
        .update_user(update(
            &ada.id,
            users::UpdateUserRequest {
                name: Some(String::new()),
                role: Some(99),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid_promote.code(), Code::PermissionDenied);

    // A stale version: FAILED_PRECONDITION, and nothing changed.
    let stale = client
        .update_user(update(
            &ada.id,
            users::UpdateUserRequest {
                name: Some("Too late".into()),
                expected_version: Some(7),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let unchanged = client
        .get_user(get(&ada.id, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.name, "Ada");

    // Listing arguments are validated by field too.
    let bad_page = client
        .list_users(authed(
            users::ListUsersRequest {
                page_size: 1000,
                after: "not a cursor".into(),
                max_users: 0,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_page.code(), Code::InvalidArgument);
    assert_eq!(violations(&bad_page), ["page_size"]);

    // Postgres unreachable: UNAVAILABLE, without internals.
    let mut app = app;
    let db = app.take_db();
    db.cut_off().await;
    let down = client.get_user(get(&ada.id, &token)).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(!down.message().contains("5432"), "{}", down.message());
    db.restore().await;
    client.get_user(get(&ada.id, &token)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_is_deadline_exceeded_and_its_query_cancelled() {
    let app = spawn_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let db = app.db.as_ref().unwrap();
    let mut client = users_client(&app).await;

    // Every read of users waits inside Postgres.
    let mut locker = db.connect().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut locker,
        "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;",
    )
    .await
    .unwrap();
    let mut request = authed(
        users::GetUserRequest {
            id: ada["id"].as_str().unwrap().into(),
        },
        &token,
    );
    request.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let status = client.get_user(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The use case was dropped, and its query does not stay queued behind the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.sessions_waiting_for_locks().await > 0 {
        assert!(Instant::now() < deadline, "the query kept running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    diesel_async::SimpleAsyncConnection::batch_execute(&mut locker, "ROLLBACK")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_postgres_is_down() {
    let mut app = spawn_app().await;
    let mut health = HealthClient::new(channel(&app).await);
    let check = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    let status = |r: tonic::Response<tonic_health::pb::HealthCheckResponse>| r.into_inner().status;
    for service in ["", "app.users.v1.UserService", "app.chat.v1.ChatService"] {
        let serving = health.check(check(service)).await.unwrap();
        assert_eq!(status(serving), ServingStatus::Serving as i32, "{service}");
    }
    let unknown = health.check(check("nope.v1.Nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let db = app.take_db();
    db.cut_off().await;
    let down = health.check(check("")).await.unwrap();
    assert_eq!(status(down), ServingStatus::NotServing as i32);
    db.restore().await;
    let up = health.check(check("")).await.unwrap();
    assert_eq!(status(up), ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_memory_app().await;
    let mut client = ServerReflectionClient::new(channel(&app).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("a service list");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app.chat.v1.ChatService",
            "app.users.v1.UserService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );
}

/// A chat stream: events go in through `tx`, server events come out of `rx`.
struct ChatSession {
    tx: mpsc::Sender<chat::ClientEvent>,
    rx: Streaming<chat::ServerEvent>,
}

async fn chat_session(app: &TestApp, token: &str) -> Result<ChatSession, Status> {
    chat_session_on(channel(app).await, token).await
}

async fn chat_session_on(channel: Channel, token: &str) -> Result<ChatSession, Status> {
    let mut client = ChatServiceClient::new(channel);
    let (tx, outgoing) = mpsc::channel(64);
    let rx = client
        .chat(authed(ReceiverStream::new(outgoing), token))
        .await?
        .into_inner();
    Ok(ChatSession { tx, rx })
}

impl ChatSession {
    async fn send(&self, event: client_event::Event) {
        self.tx
            .send(chat::ClientEvent { event: Some(event) })
            .await
            .unwrap();
    }

    /// The next server event (or the status that ended the stream), within 10 s.
    async fn next(&mut self) -> Result<server_event::Event, Status> {
        match tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("an event arrives")
        {
            Ok(Some(event)) => Ok(event.event.expect("an event")),
            Ok(None) => Err(Status::ok("the stream ended")),
            Err(status) => Err(status),
        }
    }

    async fn join(&mut self, room: &str) -> chat::Joined {
        self.send(client_event::Event::Join(chat::Join {
            room: room.into(),
            since: None,
        }))
        .await;
        match self.next().await {
            Ok(server_event::Event::Joined(joined)) => joined,
            other => panic!("expected joined, got {other:?}"),
        }
    }

    async fn say(&self, room: &str, text: &str) {
        self.send(client_event::Event::Message(chat::SendMessage {
            room: room.into(),
            text: text.into(),
            client_id: Some(format!("c-{text}")),
        }))
        .await;
    }

    async fn message(&mut self) -> chat::ChatMessage {
        match self.next().await {
            Ok(server_event::Event::Message(message)) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

pub(crate) async fn chat_between_grpc_and_websocket(grpc_side: &TestApp, ws_side: &TestApp) {
    let (_, ada) = grpc_side.signed_in("Ada", "ada@example.com").await;
    let (grace_user, grace) = ws_side.signed_in("Grace", "grace@example.com").await;
    let mut a = chat_session(grpc_side, &ada).await.unwrap();
    let mut g = crate::ws::connect(ws_side, &grace).await;
    a.join("general").await;
    crate::ws::join(&mut g, "general").await;

    // gRPC → WebSocket (and the sender's own copy, tagged with its client id).
    a.say("general", "hello from grpc").await;
    let seen = crate::ws::recv(&mut g).await;
    assert_eq!(
        (
            seen["type"].as_str(),
            seen["text"].as_str(),
            seen["author"]["name"].as_str()
        ),
        (Some("message"), Some("hello from grpc"), Some("Ada"))
    );
    let own = a.message().await;
    assert_eq!(
        (own.text.as_str(), own.client_id.as_deref(), own.id.as_str()),
        (
            "hello from grpc",
            Some("c-hello from grpc"),
            seen["id"].as_str().unwrap()
        )
    );

    // WebSocket → gRPC.
    crate::ws::send(
        &mut g,
        json!({"type": "message", "room": "general", "text": "hello from ws"}),
    )
    .await;
    let heard = a.message().await;
    assert_eq!(heard.text, "hello from ws");
    let author = heard.author.unwrap();
    assert_eq!(
        (author.name.as_str(), author.id.as_str()),
        ("Grace", grace_user["id"].as_str().unwrap())
    );

    // Rejoining shows both in the shared history, oldest first.
    let mut late = chat_session(ws_side, &grace).await.unwrap();
    let history: Vec<_> = late
        .join("general")
        .await
        .history
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(history, ["hello from grpc", "hello from ws"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_and_a_websocket_client_chat_in_one_room() {
    let app = spawn_app().await;
    chat_between_grpc_and_websocket(&app, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_websocket_clients_chat_across_two_instances() {
    let db = test_support::TestDb::new().await;
    let one = spawn_with(settings(Some(db.url()), &[])).await;
    let two = spawn_with(settings(Some(db.url()), &[])).await;
    chat_between_grpc_and_websocket(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_needs_a_token_and_answers_bad_events_without_ending() {
    let app = spawn_app().await;
    for token in ["", "garbage"] {
        let refused = chat_session(&app, token).await.err().expect("refused");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = chat_session(&app, &ada).await.unwrap();
    let cases = [
        (
            client_event::Event::Message(chat::SendMessage {
                room: "general".into(),
                text: "hi".into(),
                client_id: None,
            }),
            "not_joined",
        ),
        (
            client_event::Event::Join(chat::Join {
                room: "Not A Room".into(),
                since: None,
            }),
            "validation",
        ),
        (
            client_event::Event::Subscribe(chat::Subscribe {
                topic: "user:0190f0f0-0000-7000-8000-000000000000".into(),
            }),
            "forbidden",
        ),
        (
            client_event::Event::Subscribe(chat::Subscribe {
                topic: "secrets".into(),
            }),
            "invalid_topic",
        ),
        (
            client_event::Event::Leave(chat::Leave {
                room: "general".into(),
            }),
            "not_joined",
        ),
    ];
    for (event, code) in cases {
        a.send(event.clone()).await;
        match a.next().await {
            Ok(server_event::Event::Error(error)) => assert_eq!(error.code, code, "{event:?}"),
            other => panic!("expected an error event for {event:?}, got {other:?}"),
        }
    }
    a.tx.send(chat::ClientEvent { event: None }).await.unwrap();
    assert!(
        matches!(a.next().await, Ok(server_event::Event::Error(e)) if e.code == "invalid_frame")
    );
    a.send(client_event::Event::Ping(chat::Ping {})).await;
    assert!(matches!(a.next().await, Ok(server_event::Event::Pong(_))));
    a.send(client_event::Event::Subscribe(chat::Subscribe {
        topic: "posts".into(),
    }))
    .await;
    assert!(matches!(a.next().await, Ok(server_event::Event::Subscribed(s)) if s.topic == "posts"));

    // Closing our side ends the session with OK.
    drop(a.tx);
    assert_eq!(a.rx.message().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_stream_too_slow_to_read_ends_with_resource_exhausted() {
    let app = spawn_with(settings(
        None,
        &[
            ("JWT_SECRET", ""),
            ("LIVE_OUTBOUND_QUEUE", "4"),
            ("LIVE_MAX_FRAMES_PER_SEC", "100000"),
            ("LIVE_MAX_MESSAGES_PER_SEC_PER_USER", "100000"),
        ],
    ))
    .await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let (_, grace) = app.signed_in("Grace", "grace@example.com").await;
    // HTTP/2's smallest windows: what `slow` does not read soon holds the server back,
    // instead of piling up in the client's buffers.
    let small_windows = Channel::from_shared(app.grpc_address.clone())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut slow = chat_session_on(small_windows, &ada).await.unwrap();
    slow.join("general").await;
    let mut sender = chat_session(&app, &grace).await.unwrap();
    sender.join("general").await;

    // Far more than HTTP/2's windows and every queue hold, while `slow` reads nothing.
    let text = "x".repeat(3000);
    for _ in 0..400 {
        sender.say("general", &text).await;
        // The sender reads its own echoes, so it is never the slow one.
        sender.message().await;
    }
    let mut received = 0;
    let ended = loop {
        match slow.next().await {
            Ok(server_event::Event::Message(_)) => received += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(received < 400, "{received}");
    // The sender was not affected.
    sender.send(client_event::Event::Ping(chat::Ping {})).await;
    assert!(matches!(
        sender.next().await,
        Ok(server_event::Event::Pong(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_chat_streams_with_unavailable_and_stops_cleanly() {
    let mut app = spawn_app().await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = chat_session(&app, &ada).await.unwrap();
    a.join("general").await;
    // A health watch never ends by itself; shutdown must end it too, or the graceful
    // stop would wait out the grace period and fail.
    let mut health = HealthClient::new(channel(&app).await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    app.begin_shutdown();
    let ended = a.next().await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    let watch_ended = watch.message().await.unwrap_err();
    assert_eq!(watch_ended.code(), Code::Unavailable, "{watch_ended:?}");
    app.wait()
        .await
        .expect("stops cleanly, within the grace period");
}
