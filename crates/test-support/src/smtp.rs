//! A minimal SMTP server for tests: it speaks enough of RFC 5321 for a real client
//! (lettre) to deliver, and records every message it accepts.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message (headers and body), dot-unstuffed.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n").unwrap_or((&self.data, ""));
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }
}

impl ReceivedMail {
    /// The decoded body of each `text/plain` and `text/html` part, with its type, as a
    /// mail client shows it (quoted-printable and base64 undone).
    pub fn text_parts(&self) -> Vec<(String, String)> {
        let mut parts = Vec::new();
        collect_parts(&self.data, &mut parts);
        parts
    }

    /// The first `http(s)://…` link in the part of type `content_type` that contains
    /// `path`, up to the first character a URL cannot hold.
    pub fn link(&self, content_type: &str, path: &str) -> Option<String> {
        self.text_parts()
            .into_iter()
            .filter(|(kind, _)| kind == content_type)
            .find_map(|(_, body)| {
                let start = body.find("http")?;
                let rest = &body[start..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
                    .unwrap_or(rest.len());
                let url = rest[..end].replace("&amp;", "&");
                url.contains(path).then_some(url)
            })
    }
}

/// Walks a MIME entity: the leaf text parts, decoded, go to `out`.
fn collect_parts(entity: &str, out: &mut Vec<(String, String)>) {
    let (head, body) = entity.split_once("\r\n\r\n").unwrap_or((entity, ""));
    let header = |name: &str| {
        ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: format!("{head}\r\n\r\n"),
        }
        .header(name)
    };
    let content_type = header("Content-Type").unwrap_or_else(|| "text/plain".into());
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if kind.starts_with("multipart/") {
        let Some(boundary) = content_type.split(';').find_map(|p| {
            p.trim()
                .strip_prefix("boundary=")
                .map(|b| b.trim_matches('"').to_owned())
        }) else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for part in body.split(&delimiter).skip(1) {
            if part.starts_with("--") {
                break;
            }
            collect_parts(part.trim_start_matches("\r\n"), out);
        }
        return;
    }
    let encoding = header("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => body.to_owned(),
    };
    out.push((kind, decoded));
}

/// RFC 2045 §6.7 decoding: `=XX` bytes and `=` soft line breaks.
fn quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let raw = body.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'=' if raw[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if raw[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        bytes.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        bytes.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A running sink; stops when dropped.
pub struct SmtpSink {
    port: u16,
    received: watch::Receiver<Vec<ReceivedMail>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// A sink on a free port.
    pub async fn start() -> Self {
        Self::start_on(0, Duration::ZERO).await
    }

    /// A sink on `port` (0 for any) that waits `delay` before accepting each message,
    /// so tests can catch deliveries in flight.
    pub async fn start_on(port: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("binding the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let (tx, rx) = watch::channel(Vec::new());
        let tx = Arc::new(tx);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = session(stream, &tx, delay).await;
                });
            }
        });
        Self {
            port,
            received: rx,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.borrow().clone()
    }

    /// Waits until `matching` holds for the accepted messages, at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        matching: impl Fn(&[ReceivedMail]) -> bool,
    ) -> Vec<ReceivedMail> {
        let mut rx = self.received.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|mails| matching(mails))).await;
        match waited {
            Ok(Ok(mails)) => mails.clone(),
            _ => panic!(
                "the SMTP sink did not get the expected mail within {timeout:?}; got {:?}",
                self.received()
            ),
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(
    stream: TcpStream,
    tx: &Arc<watch::Sender<Vec<ReceivedMail>>>,
    delay: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 sink\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().to_owned());
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                // A client that died meanwhile never learns the message was accepted,
                // so a real server would not count it delivered either.
                let probe = tokio::time::timeout(Duration::from_millis(1), lines.fill_buf()).await;
                if matches!(probe, Ok(Ok(buf)) if buf.is_empty()) || matches!(probe, Ok(Err(_))) {
                    return Ok(());
                }
            }
            let mail = ReceivedMail {
                from: from.clone(),
                to: to.clone(),
                data,
            };
            tx.send_modify(|mails| mails.push(mail));
            write.write_all(b"250 OK queued\r\n").await?;
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
