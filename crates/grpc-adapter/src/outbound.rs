//! A bounded server stream that can be ended with a status at any time.
//!
//! A plain channel of `Result<T, Status>` cannot end a stream whose reader stopped
//! reading: the final status would queue behind a full buffer. Here the status skips
//! the queue; what was still queued is dropped, which is fine because every status
//! that ends a stream early tells the client to resume or retry.

use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The producer's end.
pub struct Sink<T> {
    items: mpsc::Sender<T>,
    end: Option<oneshot::Sender<Status>>,
}

/// The reader is gone.
#[derive(Debug)]
pub struct Closed;

impl<T: Send + 'static> Sink<T> {
    /// Waits while `capacity` items are unread.
    pub async fn send(&self, item: T) -> Result<(), Closed> {
        self.items.send(item).await.map_err(|_| Closed)
    }

    /// Completes when the reader is gone.
    pub async fn closed(&self) {
        self.items.closed().await;
    }

    /// Ends the stream with `status` now, ahead of anything still queued.
    pub fn finish(mut self, status: Status) {
        if let Some(end) = self.end.take() {
            let _ = end.send(status);
        }
    }
}

/// A stream of at most `capacity` queued items, and its producer. Dropping the sink
/// ends the stream with OK after the queued items.
pub fn channel<T: Send + 'static>(capacity: usize) -> (Sink<T>, ResponseStream<T>) {
    let (items, rx) = mpsc::channel(capacity.max(1));
    let (end_tx, end_rx) = oneshot::channel();
    let state = State {
        items: rx,
        end: Some(end_rx),
    };
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            tokio::select! {
                biased;
                end = async {
                    match state.end.as_mut() {
                        Some(end) => end.await,
                        None => std::future::pending().await,
                    }
                } => {
                    match end {
                        Ok(status) => return Some((Err(status), None)),
                        // Finished without a status: drain the queue, then end.
                        Err(_) => state.end = None,
                    }
                }
                item = state.items.recv() => {
                    return item.map(|item| (Ok(item), Some(state)));
                }
            }
        }
    });
    (
        Sink {
            items,
            end: Some(end_tx),
        },
        Box::pin(stream),
    )
}

struct State<T> {
    items: mpsc::Receiver<T>,
    end: Option<oneshot::Receiver<Status>>,
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn items_flow_then_ok_when_the_sink_is_dropped() {
        let (sink, mut stream) = channel(2);
        sink.send(1).await.unwrap();
        sink.send(2).await.unwrap();
        drop(sink);
        assert_eq!(stream.next().await.unwrap().unwrap(), 1);
        assert_eq!(stream.next().await.unwrap().unwrap(), 2);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_status_overtakes_a_full_queue_and_ends_the_stream() {
        let (sink, mut stream) = channel(2);
        sink.send(1).await.unwrap();
        sink.send(2).await.unwrap();
        // Full: a third send would wait for the reader.
        assert!(sink.items.try_send(3).is_err());
        sink.finish(Status::resource_exhausted("too slow"));
        let first = stream.next().await.unwrap().unwrap_err();
        assert_eq!(first.code(), tonic::Code::ResourceExhausted);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn the_sink_learns_when_the_reader_is_gone() {
        let (sink, stream) = channel::<u8>(1);
        drop(stream);
        sink.closed().await;
        assert!(sink.send(1).await.is_err());
    }
}
