//! The STARTTLS command injection probe (CVE-2011-0411 class), on its own raw connection.
//!
//! A server that reads `STARTTLS\r\nNOOP\r\n` in one segment must not run the `NOOP` inside
//! TLS: it arrived in cleartext, where an attacker on the path could have put it, and running
//! it after the handshake would let that attacker act inside the encrypted session (RFC 3207
//! §4.2). The probe sends exactly that, performs the handshake, and then sends nothing: any
//! reply that arrives inside TLS answers the cleartext `NOOP`.
//!
//! A careful server may also refuse: answer the pipelined STARTTLS with an error, or abort
//! the handshake that follows (Dovecot feeds the pipelined bytes to its TLS layer, which then
//! fails). Both leave no TLS session in which the command could run, so both are safe.
//!
//! The engine cannot send this on purpose (it refuses lines holding CR or LF, the very guard
//! against smuggled commands), so this probe talks to the socket itself (the `raw` module). It
//! only ever sends `EHLO`, the pipelined pair and `QUIT`; no AUTH, no credential.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::findings::{InjectionSeen, ReplyBrief};
use super::probe::Recorder;
use super::raw::{self, Cleartext};
use crate::proto::reply::ReplyParser;
use crate::session::SessionConfig;
use crate::tls;
use crate::transcript::{EventKind, Security};

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
    let mut clear = Cleartext::open(config, ehlo_name, recorder).await?;
    raw::write(&mut clear.tcp, PIPELINED, config.timeout).await?;
    raw::sent(
        recorder,
        Security::Cleartext,
        "STARTTLS\\r\\nNOOP (one write)",
    );
    let reply = raw::read_reply(
        &mut clear.tcp,
        &mut clear.parser,
        config.timeout,
        Security::Cleartext,
        recorder,
    )
    .await?
    .ok_or("no reply to STARTTLS")?;
    if reply.code.value() != 220 {
        recorder.push(EventKind::Closed);
        return Ok(InjectionSeen::Refused(ReplyBrief::from(&reply)));
    }
    if !clear.parser.buffered().is_empty() {
        return Err(format!(
            "{} byte(s) followed the 220 in cleartext (the server answered the NOOP before \
             the handshake, or something on the path injected them)",
            clear.parser.buffered().len()
        ));
    }

    // The certificate was judged on the main session; here only the NOOP matters.
    let (client, _verdict) =
        tls::client_config_with(&config.trust, &config.transport.tls).map_err(|e| e.to_string())?;
    let name = tls::server_name(&config.server_name).map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(client);
    let mut stream =
        match tokio::time::timeout(config.timeout, connector.connect(name, clear.tcp)).await {
            Err(_) => return Err("timed out in the TLS handshake".to_owned()),
            Ok(Err(error)) => {
                let error = if error.kind() == std::io::ErrorKind::UnexpectedEof {
                    "the server closed the connection during the handshake".to_owned()
                } else {
                    error.to_string()
                };
                recorder.push(EventKind::Note(format!(
                    "the server aborted the TLS handshake after the pipelined STARTTLS: {error}"
                )));
                recorder.push(EventKind::Closed);
                return Ok(InjectionSeen::Aborted(error));
            }
            Ok(Ok(stream)) => stream,
        };
    recorder.push(EventKind::Note(
        "TLS is up; sending nothing, waiting for an unasked reply".to_owned(),
    ));

    let mut parser = ReplyParser::new(config.limits);
    let wait = INJECTED_REPLY_WAIT.min(config.timeout);
    let seen = match raw::read_reply(&mut stream, &mut parser, wait, Security::Tls, recorder).await
    {
        Ok(Some(reply)) => InjectionSeen::Vulnerable(ReplyBrief::from(&reply)),
        Ok(None) => InjectionSeen::Safe,
        Err(why) => return Err(format!("after the handshake: {why}")),
    };
    // Leave politely; the answer no longer matters.
    if raw::write(&mut stream, b"QUIT\r\n", config.timeout)
        .await
        .is_ok()
    {
        raw::sent(recorder, Security::Tls, "QUIT");
        let _ = raw::read_reply(&mut stream, &mut parser, wait, Security::Tls, recorder).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    recorder.push(EventKind::Closed);
    Ok(seen)
}
