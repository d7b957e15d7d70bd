//! The raw-socket side of the probes that the engine cannot run on purpose (a pipelined
//! STARTTLS, a hand-built TLS hello): a TCP connection, the cleartext greeting and EHLO, and
//! commands written as given. Replies go through the same sans-IO [`ReplyParser`] with the
//! same limits as everywhere, every read has a deadline, and every exchange is recorded.
//! Only `EHLO`, `STARTTLS`, `NOOP` (pipelined) and `QUIT` are ever sent this way, and, for the
//! opt-in smuggling probe, `MAIL FROM:<>`, `RCPT TO`, `DATA` and its test messages: no AUTH,
//! no credential.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::probe::Recorder;
use crate::proto::reply::{Reply, ReplyParser};
use crate::session::{SessionConfig, format_target};
use crate::transcript::{EventKind, Security, SentKind};

/// Opens a TCP connection to the configured server, within the deadline.
///
/// # Errors
/// Why there is no connection, in words.
pub(super) async fn connect(
    config: &SessionConfig,
    recorder: &Recorder,
) -> Result<TcpStream, String> {
    let target = format_target(&config.host, config.port);
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::time::timeout(config.timeout, TcpStream::connect((host, config.port)))
        .await
        .map_err(|_| format!("timed out connecting to {target}"))?
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let address = |a: std::io::Result<std::net::SocketAddr>| {
        a.map(|a| a.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"))
    };
    recorder.push(EventKind::Connected {
        peer: address(tcp.peer_addr()),
        local: address(tcp.local_addr()),
    });
    Ok(tcp)
}

/// A cleartext SMTP connection after the greeting and EHLO.
pub(super) struct Cleartext {
    /// The socket.
    pub tcp: TcpStream,
    /// What has been read and not yet taken as a reply.
    pub parser: ReplyParser,
}

impl Cleartext {
    /// Connects, reads the 220 greeting and sends EHLO.
    ///
    /// # Errors
    /// No connection, no 220 greeting, or EHLO not answered 250.
    pub async fn open(
        config: &SessionConfig,
        ehlo_name: &str,
        recorder: &Recorder,
    ) -> Result<Self, String> {
        let tcp = connect(config, recorder).await?;
        let mut clear = Self {
            tcp,
            parser: ReplyParser::new(config.limits),
        };
        let greeting = read_reply(
            &mut clear.tcp,
            &mut clear.parser,
            config.timeout,
            Security::Cleartext,
            recorder,
        )
        .await?
        .ok_or("no greeting")?;
        if greeting.code.value() != 220 {
            return Err(format!("greeted with {}", greeting.summary()));
        }
        let ehlo = clear
            .command(config, recorder, &format!("EHLO {ehlo_name}"))
            .await?;
        if ehlo.code.value() != 250 {
            return Err(format!("EHLO answered {}", ehlo.summary()));
        }
        Ok(clear)
    }

    /// Sends one command line and reads its reply.
    ///
    /// # Errors
    /// A failed write, no reply in time, or a reply that breaks the limits.
    pub async fn command(
        &mut self,
        config: &SessionConfig,
        recorder: &Recorder,
        line: &str,
    ) -> Result<Reply, String> {
        write(
            &mut self.tcp,
            format!("{line}\r\n").as_bytes(),
            config.timeout,
        )
        .await?;
        sent(recorder, Security::Cleartext, line);
        read_reply(
            &mut self.tcp,
            &mut self.parser,
            config.timeout,
            Security::Cleartext,
            recorder,
        )
        .await?
        .ok_or_else(|| format!("no reply to {line}"))
    }
}

/// Records a line as sent.
pub(super) fn sent(recorder: &Recorder, security: Security, text: &str) {
    recorder.push(EventKind::Sent {
        security,
        text: text.to_owned(),
        kind: SentKind::Command,
    });
}

/// Writes all of `bytes` within the deadline.
///
/// # Errors
/// A timeout or a failed write.
pub(super) async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| "timed out writing".to_owned())?
    .map_err(|e| format!("write failed: {e}"))
}

/// Reads one reply. `Ok(None)` when the wait passed with no complete reply (for the injected
/// NOOP, the good outcome); the read loop is bounded by the parser's limits and the deadline.
///
/// # Errors
/// A closed connection, a failed read, or bytes that are not a reply within the limits.
pub(super) async fn read_reply<S: AsyncRead + Unpin>(
    stream: &mut S,
    parser: &mut ReplyParser,
    wait: Duration,
    security: Security,
    recorder: &Recorder,
) -> Result<Option<Reply>, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(reply) = parser.next_reply().map_err(|e| e.to_string())? {
            recorder.push(EventKind::Received {
                security,
                reply: reply.clone(),
            });
            return Ok(Some(reply));
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) => return Err("the server closed the connection".to_owned()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(
                    "the server closed the connection without ending TLS first (no close_notify)"
                        .to_owned(),
                );
            }
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
        };
        parser.push(buffer.get(..n).unwrap_or_default());
    }
}
