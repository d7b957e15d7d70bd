//! The embedded practice server behind `smtptui lab` and `smtptui demo`.
//!
//! One process runs one listener per [`Profile`]: the safe configurations students should
//! recognise and the hostile ones the client must survive. The pieces:
//! - [`profile`]: what each profile does and teaches;
//! - [`server`]: the sans-IO server session (bytes in, replies out), with Postfix's texts;
//! - `listener`: the tokio shell (accept loops, deadlines, TLS);
//! - [`certs`]: the throw-away CA and server certificate made at every start;
//! - [`accounts`]: who may AUTH;
//! - [`demo`]: the built-in demonstration run against an in-process lab.
//!
//! Accepted mail is kept in a bounded in-memory [`MailStore`] and, on request, written to a
//! Maildir. Nothing here listens beyond the addresses it is given.

pub mod accounts;
pub mod certs;
pub mod demo;
mod listener;
pub mod pair;
pub mod profile;
pub mod server;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use accounts::Accounts;
pub use certs::LabPki;
pub use profile::Profile;
pub use server::{Direction, Message};

use crate::proto::escape::escape_str;

/// Receives each line of the lab's log (session lines and deliveries), without a newline.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How much the lab keeps of accepted mail in memory.
const STORE_MESSAGES: usize = 100;
/// Total bytes of message content kept in memory; the oldest messages go first.
const STORE_BYTES: usize = 64 * 1024 * 1024;

/// How to run a lab.
#[derive(Clone)]
pub struct LabConfig {
    /// The host name in banners and replies.
    pub host: String,
    /// Which profiles to run and where.
    pub listeners: Vec<(Profile, SocketAddr)>,
    /// Who may AUTH.
    pub accounts: Accounts,
    /// How long the server waits for each client command (and each TLS handshake or write).
    pub command_timeout: Duration,
    /// Most sessions per listener at once; beyond it, connections get a 421.
    pub max_sessions: usize,
    /// Largest accepted message.
    pub size_limit: usize,
    /// Also write accepted messages into this Maildir.
    pub maildir: Option<PathBuf>,
    /// Where to write `ca.pem` (a fresh temp directory when `None`).
    pub ca_dir: Option<PathBuf>,
    /// Where log lines go.
    pub log: LogSink,
    /// Log every connection, command and reply; when false only deliveries are logged.
    pub log_sessions: bool,
}

impl std::fmt::Debug for LabConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabConfig")
            .field("host", &self.host)
            .field("listeners", &self.listeners)
            .field("accounts", &self.accounts)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl LabConfig {
    /// Every profile on 127.0.0.1 at its [`Profile::default_port`], the default account, a
    /// 60 s command timeout, logging to stdout.
    pub fn loopback_defaults() -> Self {
        Self::on_ports(Profile::ALL.to_vec(), Profile::default_port)
    }

    /// The given profiles on 127.0.0.1 ports chosen by the system (port 0): for tests and the
    /// demo, which must never collide with a lab already running.
    pub fn ephemeral(profiles: Vec<Profile>) -> Self {
        Self::on_ports(profiles, |_| 0)
    }

    fn on_ports(profiles: Vec<Profile>, port: impl Fn(Profile) -> u16) -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self {
            host: "lab.test".to_owned(),
            listeners: profiles
                .into_iter()
                .map(|p| (p, SocketAddr::new(loopback, port(p))))
                .collect(),
            accounts: Accounts::with_default(),
            command_timeout: Duration::from_secs(60),
            max_sessions: 1000,
            size_limit: server::SIZE_LIMIT,
            maildir: None,
            ca_dir: None,
            // println! would panic on a closed stdout; a lab must outlive its log reader.
            log: Arc::new(|line| {
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }),
            log_sessions: true,
        }
    }
}

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} for the {profile} profile: {source}{}", bind_hint(*profile, source))]
    Bind {
        /// The profile.
        profile: Profile,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Certificates.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// The Maildir could not be prepared.
    #[error("cannot use {path} as a Maildir: {source}")]
    Maildir {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn bind_hint(profile: Profile, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (the port is busy: is another lab running? Run this profile elsewhere with \
             --profile {profile} --listen 127.0.0.1:PORT)"
        ),
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges; use a port above 1024)".to_owned()
        }
        _ => String::new(),
    }
}

/// Accepted messages, newest last, bounded in count and bytes.
#[derive(Debug, Clone, Default)]
pub struct MailStore {
    inner: Arc<Mutex<VecDeque<Message>>>,
}

impl MailStore {
    /// Keeps a message, dropping the oldest ones beyond the bounds.
    pub fn push(&self, message: Message) {
        let mut messages = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        messages.push_back(message);
        let mut total: usize = messages.iter().map(|m| m.data.len()).sum();
        while messages.len() > STORE_MESSAGES || (total > STORE_BYTES && messages.len() > 1) {
            if let Some(old) = messages.pop_front() {
                total -= old.data.len();
            }
        }
    }

    /// A copy of the kept messages, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        let messages = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        messages.iter().cloned().collect()
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the listeners share.
struct LabShared {
    tls: Arc<rustls::ServerConfig>,
    mail: MailStore,
    maildir: Option<PathBuf>,
    command_timeout: Duration,
    max_sessions: usize,
    log: LogSink,
    log_sessions: bool,
    sessions: AtomicU64,
}

impl LabShared {
    fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn log_line(&self, profile: &str, session: u64, direction: Direction, text: &str) {
        if !self.log_sessions {
            return;
        }
        let arrow = match direction {
            Direction::Client => "C:",
            Direction::Server => "S:",
            Direction::Note => "..",
        };
        // Every log line may quote a client (a recipient echoed in a reply, a note about a
        // command): escaped once more here, so nothing a client sent reaches the projector raw.
        // Escaping is idempotent on already escaped text.
        let text = escape_str(text);
        (self.log)(&format!("{} {profile}#{session} {arrow} {text}", clock()));
    }

    fn log_delivery(&self, message: &Message) {
        (self.log)(&format!(
            "{} {}: queued {} from <{}> to {} ({} bytes, {}, {})",
            clock(),
            message.profile,
            message.id,
            escape_str(&message.from),
            message
                .to
                .iter()
                .map(|t| format!("<{}>", escape_str(t)))
                .collect::<Vec<_>>()
                .join(", "),
            message.data.len(),
            message.authenticated_as.as_deref().map_or_else(
                || "not authenticated".to_owned(),
                |u| format!("authenticated as {}", escape_str(u))
            ),
            if message.tls {
                "over TLS"
            } else {
                "in cleartext"
            },
        ));
    }
}

fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// Writes a message into a Maildir (`tmp/` then renamed into `new/`, so a reader never sees
/// half a message), with a `Return-Path` header as a delivery agent adds.
async fn write_maildir(dir: &Path, message: &Message) -> std::io::Result<()> {
    let name = format!(
        "{}.{}.smtptui-lab",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        message.id
    );
    let mut content = format!("Return-Path: <{}>\r\n", message.from).into_bytes();
    content.extend_from_slice(&message.data);
    let tmp = dir.join("tmp").join(&name);
    tokio::fs::write(&tmp, content).await?;
    tokio::fs::rename(&tmp, dir.join("new").join(&name)).await
}

/// A running lab.
pub struct Lab {
    listening: Vec<(Profile, SocketAddr)>,
    accounts: Vec<String>,
    ca_file: PathBuf,
    /// Whether the CA's directory was made by the lab (and is removed when it stops).
    owns_ca_dir: bool,
    ca_der: CertificateDer<'static>,
    mail: MailStore,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("listening", &self.listening)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Makes the certificates, binds every listener (all or nothing) and starts serving.
    ///
    /// # Errors
    /// [`LabError`] naming the listener that could not bind, or the file that could not be
    /// written.
    pub async fn start(config: LabConfig) -> Result<Lab, LabError> {
        let pki = LabPki::generate()?;
        let mut bound = Vec::new();
        for (profile, addr) in &config.listeners {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| LabError::Bind {
                    profile: *profile,
                    addr: *addr,
                    source,
                })?;
            let local = tcp.local_addr().map_err(|source| LabError::Bind {
                profile: *profile,
                addr: *addr,
                source,
            })?;
            bound.push((*profile, local, tcp));
        }
        if let Some(dir) = &config.maildir {
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(dir.join(sub)).map_err(|source| LabError::Maildir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        let ca_file = pki.write_ca(config.ca_dir.as_deref())?;
        let mail = MailStore::default();
        let shared = Arc::new(LabShared {
            tls: pki.server_config.clone(),
            mail: mail.clone(),
            maildir: config.maildir.clone(),
            command_timeout: config.command_timeout,
            max_sessions: config.max_sessions,
            log: config.log.clone(),
            log_sessions: config.log_sessions,
            sessions: AtomicU64::new(0),
        });
        let accounts = Arc::new(config.accounts.clone());
        let (shutdown, watcher) = watch::channel(false);
        let mut listening = Vec::new();
        let mut tasks = Vec::new();
        for (profile, addr, tcp) in bound {
            let settings = Arc::new(server::ServerSettings {
                host: config.host.clone(),
                profile,
                accounts: accounts.clone(),
                size_limit: config.size_limit,
            });
            let listener = listener::Listener {
                tcp,
                settings,
                shared: shared.clone(),
                shutdown: watcher.clone(),
            };
            tasks.push(tokio::spawn(listener.run()));
            listening.push((profile, addr));
        }
        Ok(Lab {
            listening,
            accounts: config.accounts.users().map(str::to_owned).collect(),
            ca_file,
            owns_ca_dir: config.ca_dir.is_none(),
            ca_der: pki.ca_der,
            mail,
            shutdown,
            tasks,
        })
    }

    /// Where each profile listens.
    pub fn listening(&self) -> &[(Profile, SocketAddr)] {
        &self.listening
    }

    /// The address of a profile's listener, if it runs.
    pub fn addr(&self, profile: Profile) -> Option<SocketAddr> {
        self.listening
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, addr)| *addr)
    }

    /// The PEM file with the lab's CA certificate (give it to clients with `--ca-file`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, for in-process clients.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A client configuration for this lab's `profile` listener, as a student's client would
    /// use it: the lab's CA trusted, the name `localhost` verified, implicit TLS for the
    /// implicit profile, no guard override. `None` when that profile is not running.
    pub fn client_config(&self, profile: Profile) -> Option<crate::session::SessionConfig> {
        let addr = self.addr(profile)?;
        Some(crate::session::SessionConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls_mode: if profile == Profile::Implicit {
                crate::session::TlsMode::Implicit
            } else {
                crate::session::TlsMode::StartTls
            },
            server_name: "localhost".to_owned(),
            trust: crate::tls::TrustSettings {
                extra_roots: vec![self.ca_der.clone()],
                continue_unverified: false,
            },
            policy: crate::guard::GuardPolicy::default(),
            timeout: Duration::from_secs(30),
            limits: crate::proto::reply::ReplyLimits::default(),
            unasked: crate::session::UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
        })
    }

    /// The accepted mail.
    pub fn mail(&self) -> &MailStore {
        &self.mail
    }

    /// The table printed at start: each listener, the `--tls` option a client needs there,
    /// what it teaches, and how to log in.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<11} {:<21} {:<15} {}\n",
            "PROFILE", "ADDRESS", "CLIENT OPTION", "WHAT IT TEACHES"
        ));
        for (profile, addr) in &self.listening {
            out.push_str(&format!(
                "{:<11} {:<21} {:<15} {}\n",
                profile.name(),
                addr.to_string(),
                profile.client_tls_flag(),
                profile.teaches()
            ));
        }
        out.push('\n');
        for user in &self.accounts {
            if user == accounts::DEFAULT_USER {
                out.push_str(&format!(
                    "Account: {user}  password: {}  (a practice password, printed on purpose)\n",
                    accounts::DEFAULT_PASSWORD
                ));
            } else {
                out.push_str(&format!(
                    "Account: {}  (password from its file)\n",
                    escape_str(user)
                ));
            }
        }
        out.push_str(&format!(
            "Mail is accepted for any address @{}; with AUTH, for any address.\n",
            server::LOCAL_DOMAIN
        ));
        out.push_str(&format!(
            "Lab CA (fresh at every start): {}\n  trust it with: --ca-file {} --servername localhost\n",
            self.ca_file.display(),
            self.ca_file.display()
        ));
        if let Some(addr) = self.addr(Profile::Submission) {
            out.push_str(&format!(
                "Try: smtptui run assets/submission-starttls.smtp {addr} {} --ca-file {} --servername localhost --user {}\n",
                Profile::Submission.client_tls_flag(),
                self.ca_file.display(),
                accounts::DEFAULT_USER
            ));
        }
        if let Some(addr) = self.addr(Profile::Implicit) {
            out.push_str(&format!(
                "Try: smtptui run assets/implicit-tls.smtp {addr} {} --ca-file {} --servername localhost --user {}\n\
                 \x20 (the implicit profile speaks TLS first: with --tls starttls a client waits for a greeting that never comes)\n",
                Profile::Implicit.client_tls_flag(),
                self.ca_file.display(),
                accounts::DEFAULT_USER
            ));
        }
        out
    }

    /// Stops accepting, tells open sessions `421 ... shutting down`, and waits (bounded) for
    /// them to end. A CA directory the lab made itself is removed: the CA of a stopped lab
    /// vouches for nothing, and /tmp should not collect them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if self.owns_ca_dir
            && let Some(dir) = self.ca_file.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
