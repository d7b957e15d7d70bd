//! The tokio shell around [`ServerSession`]: accept loops, deadlines, waits, the TLS upgrade,
//! and carrying out the state machine's [`Output`]s. No protocol decision is taken here; what
//! the shell sees of the connection (a handshake that did not come, how it failed) is handed
//! to the session, which judges it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::server::{Direction, Output, ServerSession, ServerSettings};
use super::verdict::TlsFailure;
use super::{LabShared, MailStore};
use crate::proto::escape::escape_str;

/// How long a closing lab waits for sessions to say goodbye before dropping them.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the stream moves into TLS, or after a failed handshake.
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf).await,
            Self::Tls(tls) => tls.read(buf).await,
            Self::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.write_all(bytes).await,
            Self::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
            Self::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        // The peer may already be gone; a failed goodbye changes nothing.
        let _ = match self {
            Self::Plain(tcp) => tcp.shutdown().await,
            Self::Tls(tls) => tls.shutdown().await,
            Self::Gone => Ok(()),
        };
    }
}

/// Everything one accept loop needs.
pub(super) struct Listener {
    pub(super) tcp: TcpListener,
    pub(super) settings: Arc<ServerSettings>,
    pub(super) shared: Arc<LabShared>,
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Listener {
    /// Accepts until shutdown, one task per session, then gives the sessions a moment to
    /// send their 421 before dropping the rest.
    pub(super) async fn run(mut self) {
        let mut sessions = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.shared.max_sessions));
        loop {
            // Reap finished sessions so the set stays as small as the number of live ones.
            while sessions.try_join_next().is_some() {}
            let accepted = tokio::select! {
                accepted = self.tcp.accept() => accepted,
                _ = self.shutdown.changed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Usually out of file descriptors: wait a little instead of spinning.
                    self.shared.log_line(
                        self.settings.profile.name(),
                        0,
                        Direction::Note,
                        false,
                        &format!("accept failed: {error}"),
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let number = self.shared.next_session();
            let settings = self.settings.clone();
            let shared = self.shared.clone();
            let shutdown = self.shutdown.clone();
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    sessions.spawn(async move {
                        serve(tcp, peer, settings, shared, number, shutdown).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    sessions.spawn(async move {
                        let mut tcp = tcp;
                        shared.log_line(
                            settings.profile.name(),
                            number,
                            Direction::Note,
                            false,
                            "refused: too many sessions",
                        );
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            tcp.write_all(b"421 4.3.2 All server ports are busy\r\n"),
                        )
                        .await;
                    });
                }
            }
        }
        if tokio::time::timeout(DRAIN_DEADLINE, async {
            while sessions.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            sessions.abort_all();
        }
    }
}

/// Why a session loop stops.
enum Stop {
    Closed,
    Failed(String),
    ShuttingDown,
}

/// One session's connection, its state machine and what the shell needs around them.
struct Served<'a> {
    conn: Conn,
    session: ServerSession,
    settings: &'a ServerSettings,
    shared: &'a LabShared,
    number: u64,
    buffer: Vec<u8>,
    shutdown: watch::Receiver<bool>,
    /// The activity's change count the classroom last saw.
    reported: u64,
}

impl Served<'_> {
    fn log(&self, direction: Direction, text: &str) {
        self.shared.log_line(
            self.settings.profile.name(),
            self.number,
            direction,
            self.session.is_tls(),
            text,
        );
    }

    /// Tells the classroom what the session did, when anything changed since last time, and
    /// logs the notable events that came of it.
    fn report_progress(&mut self) {
        let activity = self.session.activity();
        if activity.changes == self.reported {
            return;
        }
        self.reported = activity.changes;
        let views = self
            .shared
            .board
            .session_update(self.number, self.settings.profile, activity);
        self.shared.log_feed(&views);
    }

    /// Carries out the state machine's requests in order. Replies are gathered and written
    /// in one go, so a pipelined group gets its answers in one segment, as from a real
    /// server; a wait writes what came before it first.
    async fn perform(&mut self, outputs: Vec<Output>) -> Result<(), Stop> {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut pending = Vec::new();
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Send(bytes) => pending.extend_from_slice(&bytes),
                Output::Log(direction, text) => self.log(direction, &text),
                Output::Deliver(message) => {
                    self.shared.log_delivery(&message);
                    self.deliver(message).await;
                }
                Output::Wait(duration) => {
                    self.flush(&mut pending).await?;
                    self.wait(duration, &mut queue).await?;
                }
                Output::StartTls => {
                    self.flush(&mut pending).await?;
                    let identity = self.upgrade().await.map_err(|reason| {
                        Stop::Failed(format!("TLS handshake after STARTTLS failed: {reason}"))
                    })?;
                    self.log(Direction::Note, "TLS established");
                    self.session.tls_started();
                    for output in self.session.client_certificate(identity) {
                        if let Output::Log(direction, text) = output {
                            self.log(direction, &text);
                        }
                    }
                }
                Output::Close => {
                    self.flush(&mut pending).await?;
                    return Err(Stop::Closed);
                }
            }
        }
        self.flush(&mut pending).await
    }

    /// Lets `duration` pass, giving the session at once whatever the client sends meanwhile
    /// (the outputs join the queue, after those already in it).
    async fn wait(&mut self, duration: Duration, queue: &mut VecDeque<Output>) -> Result<(), Stop> {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                read = self.conn.read(&mut self.buffer) => match read {
                    Ok(0) => return Err(Stop::Failed("the client disconnected".to_owned())),
                    Ok(n) => {
                        let outputs = self.session.receive(self.buffer.get(..n).unwrap_or_default());
                        queue.extend(outputs);
                    }
                    Err(error) => return Err(Stop::Failed(format!("read failed: {error}"))),
                },
                _ = self.shutdown.changed() => return Err(Stop::ShuttingDown),
            }
        }
        self.session.waited();
        Ok(())
    }

    async fn flush(&mut self, pending: &mut Vec<u8>) -> Result<(), Stop> {
        if pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(pending);
        match tokio::time::timeout(self.shared.command_timeout, self.conn.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Stop::Failed(format!("write failed: {error}"))),
            Err(_) => Err(Stop::Failed("the client stopped reading".to_owned())),
        }
    }

    /// Moves the connection into TLS. What the client sends first is looked at before the
    /// handshake: cleartext there (a client that believed it could go on without TLS) is
    /// given to the session to judge, and the way a handshake fails is reported to it.
    /// Returns the common name of the client certificate the client presented (verified
    /// against the lab CA), on a profile that asks for one.
    async fn upgrade(&mut self) -> Result<Option<String>, String> {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err("the connection is not in cleartext".to_owned());
        };
        let mut first = [0u8; 1];
        let timeout = self.shared.command_timeout;
        let failure = match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
            Err(_) => Some((
                TlsFailure::TimedOut,
                "the client never started it".to_owned(),
            )),
            Ok(Ok(0)) => Some((
                TlsFailure::Closed,
                "the client closed the connection".to_owned(),
            )),
            Ok(Err(error)) => Some((
                TlsFailure::Other(error.to_string()),
                format!("read failed: {error}"),
            )),
            Ok(Ok(_)) if first[0] != TLS_HANDSHAKE => {
                let mut cleartext = vec![0u8; 4096];
                let n = tcp.try_read(&mut cleartext).unwrap_or(0);
                if self.session.is_tls() {
                    // Implicit TLS: no STARTTLS was answered, the client just spoke first.
                    self.log(
                        Direction::Note,
                        &format!("{n} cleartext byte(s) where the TLS handshake should start"),
                    );
                } else {
                    let outputs = self.session.receive(cleartext.get(..n).unwrap_or_default());
                    for output in outputs {
                        if let Output::Log(direction, text) = output {
                            self.log(direction, &text);
                        }
                    }
                }
                Some((
                    TlsFailure::NotTls,
                    "the client sent cleartext instead of a TLS handshake".to_owned(),
                ))
            }
            Ok(Ok(_)) => None,
        };
        if let Some((failure, reason)) = failure {
            self.session.tls_failed(failure);
            return Err(reason);
        }
        // The grade profile presents the certificate of the session's trial; a profile that asks
        // for a client certificate has a configuration of its own.
        let config = match (&self.settings.grade, self.session.grade_ticket()) {
            (Some(board), Some(ticket)) => board.tls_for(ticket),
            _ if self.settings.profile.policy().asks_client_certificate => {
                self.shared.client_cert_tls.clone()
            }
            _ => self.shared.tls.clone(),
        };
        let acceptor = TlsAcceptor::from(config);
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| common_name(leaf.as_ref()));
                self.conn = Conn::Tls(Box::new(tls));
                Ok(identity)
            }
            Ok(Err(error)) => {
                let reason = escape_str(&error.to_string());
                let failure = match received_alert(&error) {
                    Some(alert) => TlsFailure::Alert(alert),
                    None => TlsFailure::Other(reason.clone()),
                };
                self.session.tls_failed(failure);
                Err(reason)
            }
            Err(_) => {
                self.session.tls_failed(TlsFailure::TimedOut);
                Err("timed out".to_owned())
            }
        }
    }

    async fn deliver(&self, message: super::Message) {
        if let Some(dir) = self.shared.maildir.as_deref()
            && let Err(error) = super::write_maildir(dir, &message).await
        {
            self.log(
                Direction::Note,
                &format!(
                    "cannot write message {} to {}: {error}",
                    message.id,
                    dir.display()
                ),
            );
        }
        store(&self.shared.mail, message);
    }

    /// The session, from the greeting to its end. Returns why it ended.
    async fn run(&mut self) -> String {
        if self.session.is_tls() {
            if let Err(reason) = self.upgrade().await {
                return format!("TLS handshake failed: {reason}");
            }
            self.log(Direction::Note, "TLS established (implicit)");
        }
        let mut outputs = self.session.greeting();
        loop {
            let performed = self.perform(outputs).await;
            self.report_progress();
            match performed {
                Ok(()) => {}
                Err(Stop::Closed) => return "closed".to_owned(),
                Err(Stop::Failed(reason)) => return reason,
                Err(Stop::ShuttingDown) => return self.say_goodbye().await,
            }
            outputs = tokio::select! {
                read = tokio::time::timeout(self.shared.command_timeout, self.conn.read(&mut self.buffer)) => match read {
                    Err(_) => self.session.timed_out(),
                    Ok(Ok(0)) => return "the client disconnected".to_owned(),
                    Ok(Ok(n)) => self.session.receive(self.buffer.get(..n).unwrap_or_default()),
                    Ok(Err(error)) => return format!("read failed: {error}"),
                },
                _ = self.shutdown.changed() => return self.say_goodbye().await,
            };
        }
    }

    async fn say_goodbye(&mut self) -> String {
        let text = format!("421 4.3.0 {} Server shutting down", self.settings.host);
        self.log(Direction::Server, &text);
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.conn.write_all(format!("{text}\r\n").as_bytes()),
        )
        .await;
        "the lab is shutting down".to_owned()
    }
}

/// The common name of a certificate's subject (what the lab's client certificate carries
/// the account in).
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_owned())
}

/// The TLS alert a failed handshake received from the client, by its name (`UnknownCA`).
fn received_alert(error: &std::io::Error) -> Option<String> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(format!("{alert:?}")),
        _ => None,
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: Arc<ServerSettings>,
    shared: Arc<LabShared>,
    number: u64,
    shutdown: watch::Receiver<bool>,
) {
    // Small replies to a waiting client: Nagle would only add latency.
    let _ = tcp.set_nodelay(true);
    let implicit = settings.profile.policy().implicit_tls;
    let mut session = ServerSession::new(settings.clone(), number, implicit);
    session.set_peer(peer.ip());
    let mut served = Served {
        conn: Conn::Plain(tcp),
        session,
        settings: &settings,
        shared: &shared,
        number,
        buffer: vec![0u8; 8 * 1024],
        shutdown,
        reported: 0,
    };
    shared.board.session_started(number, settings.profile);
    served.shared.log_line(
        settings.profile.name(),
        number,
        Direction::Note,
        false,
        &format!("connection from {peer}"),
    );
    let reason = served.run().await;
    served.conn.shutdown().await;
    served.log(Direction::Note, &format!("session ended: {reason}"));
    let verdict = served.session.verdict();
    shared.log_verdict(settings.profile.name(), number, &verdict);
    if let (Some(board), Some((ticket, facts))) = (&settings.grade, served.session.grade_facts()) {
        for line in board.finish(ticket, &facts) {
            shared.log_grade(number, &line);
        }
    }
    let views = shared.board.session_ended(
        number,
        settings.profile,
        served.session.activity(),
        &verdict,
    );
    shared.log_feed(&views);
}

fn store(store: &MailStore, message: super::Message) {
    store.push(message);
}
