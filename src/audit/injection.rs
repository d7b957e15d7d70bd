//! The STARTTLS command injection probe (CVE-2011-0411 class), on its own raw connection.
//!
//! A server that reads `STARTTLS\r\nNOOP\r\n` in one segment must throw away the `NOOP`: it
//! arrived in cleartext, where an attacker on the path could have put it, and running it
//! after the handshake would let that attacker act inside the encrypted session (RFC 3207
//! §4.2). The probe sends exactly that, performs the handshake, and then sends nothing: any
//! reply that arrives inside TLS answers the cleartext `NOOP`.
//!
//! The engine cannot send this on purpose (it refuses lines holding CR or LF, the very guard
//! against smuggled commands), so this probe talks to the socket itself. It only ever sends
//! `EHLO`, the pipelined pair and `QUIT`; no AUTH, no credential. Replies are parsed by the
//! same sans-IO [`ReplyParser`] with the same limits, and every exchange is recorded.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::findings::{InjectionSeen, ReplyBrief};
use super::probe::Recorder;
use crate::proto::reply::{Reply, ReplyParser};
use crate::session::{SessionConfig, format_target};
use crate::tls;
use crate::transcript::{EventKind, Security, SentKind};

/// How long to wait inside TLS for an answer to the injected NOOP. A vulnerable server runs
/// it right after the handshake, so a short wait is enough; it is also capped by `--timeout`.
const INJECTED_REPLY_WAIT: Duration = Duration::from_millis(1500);

/// The bytes written in one go: the command and the one to be smuggled behind it.
pub const PIPELINED: &[u8] = b"STARTTLS\r\nNOOP\r\n";

/// Runs the probe. Never fails: problems make the result [`InjectionSeen::Inconclusive`].
pub async fn probe(config: &SessionConfig, ehlo_name: &str, recorder: &Recorder) -> InjectionSeen {
    match run(config, ehlo_name, recorder).await {
        Ok(seen) => seen,
        Err(why) => {
            recorder.push(EventKind::Warning(format!("injection probe: {why}")));
            InjectionSeen::Inconclusive(why)
        }
    }
}

async fn run(
    config: &SessionConfig,
    ehlo_name: &str,
    recorder: &Recorder,
) -> Result<InjectionSeen, String> {
    let target = format_target(&config.host, config.port);
    let host = config.host.trim_start_matches('[').trim_end_matches(']');
    let mut tcp = tokio::time::timeout(config.timeout, TcpStream::connect((host, config.port)))
        .await
        .map_err(|_| format!("timed out connecting to {target}"))?
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut parser = ReplyParser::new(config.limits);

    let greeting = read_reply(
        &mut tcp,
        &mut parser,
        config.timeout,
        Security::Cleartext,
        recorder,
    )
    .await?
    .ok_or("no greeting")?;
    if greeting.code.value() != 220 {
        return Err(format!("greeted with {}", greeting.summary()));
    }
    let ehlo = format!("EHLO {ehlo_name}");
    write(&mut tcp, format!("{ehlo}\r\n").as_bytes(), config.timeout).await?;
    sent(recorder, Security::Cleartext, &ehlo);
    read_reply(
        &mut tcp,
        &mut parser,
        config.timeout,
        Security::Cleartext,
        recorder,
    )
    .await?
    .ok_or("no reply to EHLO")?;

    write(&mut tcp, PIPELINED, config.timeout).await?;
    sent(
        recorder,
        Security::Cleartext,
        "STARTTLS\\r\\nNOOP (one write)",
    );
    let reply = read_reply(
        &mut tcp,
        &mut parser,
        config.timeout,
        Security::Cleartext,
        recorder,
    )
    .await?
    .ok_or("no reply to STARTTLS")?;
    if reply.code.value() != 220 {
        return Err(format!("STARTTLS answered {}", reply.summary()));
    }
    if !parser.buffered().is_empty() {
        return Err(format!(
            "{} byte(s) followed the 220 in cleartext (the server answered the NOOP before \
             the handshake, or something on the path injected them)",
            parser.buffered().len()
        ));
    }

    // The certificate was judged on the main session; here only the NOOP matters.
    let (client, _verdict) = tls::client_config(&config.trust).map_err(|e| e.to_string())?;
    let name = tls::server_name(&config.server_name).map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(client);
    let mut stream = tokio::time::timeout(config.timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| "timed out in the TLS handshake".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    recorder.push(EventKind::Note(
        "TLS is up; sending nothing, waiting for an unasked reply".to_owned(),
    ));

    let mut parser = ReplyParser::new(config.limits);
    let wait = INJECTED_REPLY_WAIT.min(config.timeout);
    let seen = match read_reply(&mut stream, &mut parser, wait, Security::Tls, recorder).await {
        Ok(Some(reply)) => InjectionSeen::Vulnerable(ReplyBrief::from(&reply)),
        Ok(None) => InjectionSeen::Safe,
        Err(why) => return Err(format!("after the handshake: {why}")),
    };
    // Leave politely; the answer no longer matters.
    if write(&mut stream, b"QUIT\r\n", config.timeout)
        .await
        .is_ok()
    {
        sent(recorder, Security::Tls, "QUIT");
        let _ = read_reply(&mut stream, &mut parser, wait, Security::Tls, recorder).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    recorder.push(EventKind::Closed);
    Ok(seen)
}

fn sent(recorder: &Recorder, security: Security, text: &str) {
    recorder.push(EventKind::Sent {
        security,
        text: text.to_owned(),
        kind: SentKind::Command,
    });
}

async fn write<S: AsyncWrite + Unpin>(
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

/// Reads one reply. `Ok(None)` when the wait passed with no complete reply, which for the
/// injected NOOP is the good outcome; the read loop is bounded by the parser's limits and the
/// deadline.
async fn read_reply<S: AsyncRead + Unpin>(
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
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
        };
        parser.push(buffer.get(..n).unwrap_or_default());
    }
}
