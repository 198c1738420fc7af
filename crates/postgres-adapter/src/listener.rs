//! A dedicated `LISTEN` connection that survives failures, shared by the job queue
//! (wake-ups) and the event bus (payloads).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// What a listener does with each notification: `Some(payload)`, or `None` right after
/// (re)connecting, when notifications may have been missed.
pub(crate) type Sink = Box<dyn Fn(Option<String>) + Send + Sync>;

/// Listens on `channel` until aborted, reconnecting with backoff.
pub(crate) fn spawn(target: crate::Target, channel: &'static str, sink: Sink) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match target.connect().await {
                Ok((client, mut connection)) => {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let listen = format!("LISTEN {channel}");
                    let listening = client.batch_execute(&listen);
                    let mut listening = std::pin::pin!(listening);
                    // The connection must be polled for LISTEN to complete.
                    let ready = loop {
                        tokio::select! {
                            result = &mut listening => break result.is_ok(),
                            message = messages.next() => if message.is_none() { break false },
                        }
                    };
                    if ready {
                        delay = Duration::from_millis(200);
                        sink(None);
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                    sink(Some(n.payload().to_owned()));
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, channel, "listener cannot connect"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    })
}

/// Aborts the listener task when the last owner goes.
pub(crate) struct Listening(pub(crate) JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}
