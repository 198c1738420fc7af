use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp, token: &str) -> Ws {
    let url = app.url("/api/ws").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    ws
}

pub(crate) async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame (pings are answered by the client library), within 10 s.
pub(crate) async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives")
            .expect("the connection is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next JSON frame, or how the connection ended (its close code, if it sent one),
/// within `within`: for clients that must survive being told to reconnect.
pub(crate) async fn next_frame(ws: &mut Ws, within: Duration) -> Result<Value, Option<CloseCode>> {
    loop {
        let frame = tokio::time::timeout(within, ws.next())
            .await
            .expect("a frame arrives in time");
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// The close code the server ends with, within 10 s.
pub(crate) async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closes")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

pub(crate) async fn join(ws: &mut Ws, room: &str) -> Value {
    send(ws, json!({"type": "join", "room": room})).await;
    let joined = recv(ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_bad_token_is_401_before_the_upgrade() {
    let app = spawn_app().await;
    let url = app.url("/api/ws").replace("http://", "ws://");
    for token in [None, Some("garbage")] {
        let mut request = url.clone().into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    // Browsers pass the token in the query string.
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let with_query = format!("{url}?access_token={token}");
    assert!(tokio_tungstenite::connect_async(with_query).await.is_ok());
    match tokio_tungstenite::connect_async(format!("{url}?access_token=garbage")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_member_of_the_room_and_no_one_else() {
    let app = spawn_app().await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let (_, grace) = app.signed_in("Grace", "grace@example.com").await;
    let (_, eve) = app.signed_in("Eve", "eve@example.com").await;
    let (mut a, mut g, mut e) = (
        connect(&app, &ada).await,
        connect(&app, &grace).await,
        connect(&app, &eve).await,
    );
    join(&mut a, "general").await;
    join(&mut g, "general").await;
    join(&mut e, "other").await;

    send(
        &mut a,
        json!({"type": "message", "room": "general", "text": " hello ", "client_id": "c1"}),
    )
    .await;
    for ws in [&mut a, &mut g] {
        let m = recv(ws).await;
        assert_eq!(
            (m["type"].as_str(), m["text"].as_str()),
            (Some("message"), Some("hello"))
        );
        assert_eq!(m["author"]["name"], "Ada");
        assert_eq!(m["room"], "general");
        assert_eq!(m["client_id"], "c1");
    }
    // Eve's next frame is the answer to her ping: nothing from general came first.
    send(&mut e, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut e).await["type"], "pong");

    // A late joiner gets the history, oldest first.
    let (_, late) = app.signed_in("Late", "late@example.com").await;
    let mut l = connect(&app, &late).await;
    let joined = join(&mut l, "general").await;
    assert_eq!(joined["history"][0]["text"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_from_its_last_message() {
    let app = spawn_app().await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = connect(&app, &ada).await;
    join(&mut a, "general").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        send(
            &mut a,
            json!({"type": "message", "room": "general", "text": format!("m{n}")}),
        )
        .await;
        ids.push(recv(&mut a).await["id"].as_str().unwrap().to_owned());
    }
    drop(a);
    let mut again = connect(&app, &ada).await;
    send(
        &mut again,
        json!({"type": "join", "room": "general", "since": ids[0]}),
    )
    .await;
    let joined = recv(&mut again).await;
    let texts: Vec<&str> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m1", "m2"]);
    // And over REST, newest first.
    let (status, page) = app
        .get_as(&ada, "/api/rooms/general/messages?limit=2")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["text"], "m2");
    assert!(page["next_cursor"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let (ada_user, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = connect(&app, &ada).await;
    let cases = [
        ("{not json", "bad_json"),
        (r#"{"type":"dance"}"#, "invalid_frame"),
        (
            r#"{"type":"message","room":"general","text":"hi"}"#,
            "not_joined",
        ),
        (r#"{"type":"join","room":"Not A Room"}"#, "validation"),
        (
            r#"{"type":"subscribe","topic":"user:00000000-0000-0000-0000-000000000001"}"#,
            "forbidden",
        ),
        (r#"{"type":"subscribe","topic":"secrets"}"#, "invalid_topic"),
        (r#"{"type":"leave","room":"general"}"#, "not_joined"),
    ];
    for (frame, code) in cases {
        a.send(Message::text(frame)).await.unwrap();
        let reply = recv(&mut a).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    }
    join(&mut a, "general").await;
    send(
        &mut a,
        json!({"type": "message", "room": "general", "text": "x".repeat(4001)}),
    )
    .await;
    assert_eq!(recv(&mut a).await["code"], "validation");
    let own = format!("user:{}", ada_user["id"].as_str().unwrap());
    send(&mut a, json!({"type": "subscribe", "topic": own})).await;
    assert_eq!(recv(&mut a).await["type"], "subscribed");
    send(&mut a, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut a).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn_app().await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = connect(&app, &ada).await;
    a.send(Message::text("x".repeat(70 * 1024))).await.unwrap();
    assert_eq!(close_code(&mut a).await, Some(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_gets_rate_limited_then_closed_with_1008() {
    let app = spawn_with(settings(
        None,
        &[("JWT_SECRET", ""), ("LIVE_MAX_FRAMES_PER_SEC", "5")],
    ))
    .await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = connect(&app, &ada).await;
    for _ in 0..40 {
        if a.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let mut saw_rate_limited = false;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), a.next())
            .await
            .expect("frames")
        {
            Some(Ok(Message::Text(t))) => saw_rate_limited |= t.contains("rate_limited"),
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(saw_rate_limited);
    assert_eq!(code, Some(CloseCode::Policy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_behave_as_one_chat() {
    let db = test_support::TestDb::new().await;
    let one = spawn_with(settings(Some(db.url()), &[])).await;
    let two = spawn_with(settings(Some(db.url()), &[])).await;
    let (_, ada) = one.signed_in("Ada", "ada@example.com").await;
    let (_, grace) = two.signed_in("Grace", "grace@example.com").await;
    let mut a = connect(&one, &ada).await;
    let mut g = connect(&two, &grace).await;
    join(&mut a, "general").await;
    join(&mut g, "general").await;
    send(&mut g, json!({"type": "subscribe", "topic": "posts"})).await;
    assert_eq!(recv(&mut g).await["type"], "subscribed");

    send(
        &mut a,
        json!({"type": "message", "room": "general", "text": "across"}),
    )
    .await;
    let m = recv(&mut g).await;
    assert_eq!(
        (m["type"].as_str(), m["text"].as_str()),
        (Some("message"), Some("across"))
    );

    let response = one
        .client
        .post(one.url("/api/posts"))
        .bearer_auth(&ada)
        .json(&json!({"title": "Live", "body": "Seen on the other instance."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event = recv(&mut g).await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["topic"].as_str(),
            event["name"].as_str()
        ),
        (Some("event"), Some("posts"), Some("post.created"))
    );
    assert_eq!(event["data"]["title"], "Live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_going_away_to_every_client() {
    let mut app = spawn_app().await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let mut a = connect(&app, &ada).await;
    join(&mut a, "general").await;
    app.begin_shutdown();
    assert_eq!(close_code(&mut a).await, Some(CloseCode::Away));
    app.wait().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_read_is_closed_with_1013_while_others_keep_receiving() {
    let app = spawn_with(settings(
        None,
        &[
            ("JWT_SECRET", ""),
            ("LIVE_OUTBOUND_QUEUE", "8"),
            ("LIVE_MAX_FRAMES_PER_SEC", "100000"),
            ("LIVE_MAX_MESSAGES_PER_SEC_PER_USER", "100000"),
        ],
    ))
    .await;
    let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
    let (_, slow_user) = app.signed_in("Slow", "slow@example.com").await;
    let mut fast = connect(&app, &ada).await;
    // The slow client asks for a tiny receive buffer and then stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = app.address.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(address).await.unwrap();
    let mut request = app
        .url("/api/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {slow_user}").parse().unwrap(),
    );
    let (mut slow, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    join(&mut fast, "flood").await;
    join(&mut slow, "flood").await;

    // ~8 MB: far more than the socket buffers and the 8-frame queue can hold.
    let text = "x".repeat(4000);
    for _ in 0..2000 {
        send(
            &mut fast,
            json!({"type": "message", "room": "flood", "text": text}),
        )
        .await;
        let m = recv(&mut fast).await;
        assert_eq!(m["type"], "message", "the fast client keeps receiving");
    }
    // Now the slow client reads: what was buffered, then the close.
    let code = close_code(&mut slow).await;
    assert_eq!(code, Some(CloseCode::Again));
    send(&mut fast, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut fast).await["type"], "pong");
}
