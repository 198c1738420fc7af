//! Admission to the gRPC port: at most `max_connections` open at once, and a connection
//! that has not sent the HTTP/2 preface within `handshake` is closed. tonic itself
//! accepts every connection and waits on it for ever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An accepted connection, holding its place under the cap until it closes. The
/// preface it sent was read to check it; the server reads it again from here.
pub(crate) struct Admitted {
    stream: TcpStream,
    replayed: usize,
    _place: OwnedSemaphorePermit,
}

impl Connected for Admitted {
    // The peer address stays visible to the services (`Request::remote_addr`).
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replayed < PREFACE.len() {
            let rest = &PREFACE[self.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections tonic serves: accepted from `listener` until `stop`, past the cap
/// closed at once, and handed over only once their preface has arrived.
pub(crate) fn admit(
    listener: TcpListener,
    max_connections: usize,
    handshake: Duration,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<Admitted>> {
    let places = Arc::new(Semaphore::new(max_connections.max(1)));
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, a connection reset before accept: back off a
                    // little rather than spin, and go on.
                    tracing::warn!(%error, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                metrics::counter!("grpc_connections_refused_total", "reason" => "full")
                    .increment(1);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                match tokio::time::timeout(handshake, preface(&mut stream)).await {
                    Ok(true) => {
                        let _ = ready
                            .send(Ok(Admitted {
                                stream,
                                replayed: 0,
                                _place: place,
                            }))
                            .await;
                    }
                    Ok(false) => {}
                    Err(_) => {
                        metrics::counter!("grpc_connections_refused_total", "reason" => "handshake_timeout")
                            .increment(1);
                    }
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// Reads the connection's first bytes: true when they are the HTTP/2 preface, false
/// when it closes or sends something else (not a gRPC client). The read waits without
/// spinning, however slowly the bytes come.
async fn preface(stream: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut first = [0u8; PREFACE.len()];
    match stream.read_exact(&mut first).await {
        Ok(_) => first == *PREFACE,
        Err(_) => false,
    }
}
