//! The tokio shell around [`ServerSession`]: accept loops, deadlines, the TLS upgrade, and
//! carrying out the state machine's [`Output`]s. No protocol decision is taken here.

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
use super::{LabShared, MailStore};
use crate::proto::escape::escape_str;

/// How long a closing lab waits for sessions to say goodbye before dropping them.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

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
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: Arc<ServerSettings>,
    shared: Arc<LabShared>,
    number: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let profile = settings.profile.name();
    let log = |direction: Direction, text: &str| shared.log_line(profile, number, direction, text);
    log(Direction::Note, &format!("connection from {peer}"));
    // Small replies to a waiting client: Nagle would only add latency.
    let _ = tcp.set_nodelay(true);
    let implicit = settings.profile.policy().implicit_tls;
    let mut conn = Conn::Plain(tcp);
    if implicit {
        if let Err(reason) = upgrade(&mut conn, &shared).await {
            log(Direction::Note, &format!("TLS handshake failed: {reason}"));
            return;
        }
        log(Direction::Note, "TLS established (implicit)");
    }
    let mut session = ServerSession::new(settings.clone(), number, implicit);
    let mut buffer = vec![0u8; 8 * 1024];
    let mut outputs = session.greeting();
    let reason = loop {
        match perform(&mut conn, &mut session, outputs, &shared, &log).await {
            Ok(()) => {}
            Err(Stop::Closed) => break "closed".to_owned(),
            Err(Stop::Failed(reason)) => break reason,
        }
        outputs = tokio::select! {
            read = tokio::time::timeout(shared.command_timeout, conn.read(&mut buffer)) => match read {
                Err(_) => session.timed_out(),
                Ok(Ok(0)) => break "the client disconnected".to_owned(),
                Ok(Ok(n)) => session.receive(buffer.get(..n).unwrap_or_default()),
                Ok(Err(error)) => break format!("read failed: {error}"),
            },
            _ = shutdown.changed() => {
                let text = format!("421 4.3.0 {} Server shutting down", settings.host);
                log(Direction::Server, &text);
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.write_all(format!("{text}\r\n").as_bytes())).await;
                break "the lab is shutting down".to_owned();
            }
        };
    };
    conn.shutdown().await;
    log(Direction::Note, &format!("session ended: {reason}"));
}

/// Carries out the state machine's requests in order. Replies are gathered and written in one
/// go, so a pipelined group gets its answers in one segment, as from a real server.
async fn perform(
    conn: &mut Conn,
    session: &mut ServerSession,
    outputs: Vec<Output>,
    shared: &Arc<LabShared>,
    log: &impl Fn(Direction, &str),
) -> Result<(), Stop> {
    let mut pending = Vec::new();
    for output in outputs {
        match output {
            Output::Send(bytes) => pending.extend_from_slice(&bytes),
            Output::Log(direction, text) => log(direction, &text),
            Output::Deliver(message) => {
                shared.log_delivery(&message);
                deliver(&shared.mail, shared.maildir.as_deref(), message, log).await;
            }
            Output::StartTls => {
                flush(conn, &mut pending, shared).await?;
                upgrade(conn, shared).await.map_err(|reason| {
                    Stop::Failed(format!("TLS handshake after STARTTLS failed: {reason}"))
                })?;
                log(Direction::Note, "TLS established");
                session.tls_started();
            }
            Output::Close => {
                flush(conn, &mut pending, shared).await?;
                return Err(Stop::Closed);
            }
        }
    }
    flush(conn, &mut pending, shared).await
}

async fn flush(conn: &mut Conn, pending: &mut Vec<u8>, shared: &LabShared) -> Result<(), Stop> {
    if pending.is_empty() {
        return Ok(());
    }
    let bytes = std::mem::take(pending);
    match tokio::time::timeout(shared.command_timeout, conn.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Stop::Failed(format!("write failed: {error}"))),
        Err(_) => Err(Stop::Failed("the client stopped reading".to_owned())),
    }
}

async fn upgrade(conn: &mut Conn, shared: &LabShared) -> Result<(), String> {
    let Conn::Plain(tcp) = std::mem::replace(conn, Conn::Gone) else {
        return Err("the connection is not in cleartext".to_owned());
    };
    let acceptor = TlsAcceptor::from(shared.tls.clone());
    match tokio::time::timeout(shared.command_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            *conn = Conn::Tls(Box::new(tls));
            Ok(())
        }
        Ok(Err(error)) => Err(escape_str(&error.to_string())),
        Err(_) => Err("timed out".to_owned()),
    }
}

async fn deliver(
    store: &MailStore,
    maildir: Option<&std::path::Path>,
    message: super::Message,
    log: &impl Fn(Direction, &str),
) {
    if let Some(dir) = maildir
        && let Err(error) = super::write_maildir(dir, &message).await
    {
        log(
            Direction::Note,
            &format!(
                "cannot write message {} to {}: {error}",
                message.id,
                dir.display()
            ),
        );
    }
    store.push(message);
}
