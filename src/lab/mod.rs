//! The embedded practice server behind `smtptui lab` and `smtptui demo`.
//!
//! One process runs one listener per [`Profile`], all with one CA: the safe configurations
//! students should recognise, the hostile ones the client must survive, and a slow one. The
//! pieces:
//! - [`profile`]: what each profile does and teaches;
//! - [`server`]: the sans-IO server session (bytes in, replies out), answering as Postfix does;
//! - [`verdict`]: what the client did that matters, judged from what the server saw;
//! - [`triggers`]: the replies a recipient or an EHLO name provokes on purpose;
//! - `listener`: the tokio shell (accept loops, deadlines, waits, TLS);
//! - [`certs`]: the CA (fresh, or kept in a state directory) and the server certificate;
//! - [`accounts`]: who may AUTH;
//! - classroom mode: [`roster`] (the students, their accounts and the class sheet),
//!   [`exercise`] (the exercise files and their goals), [`activity`] (what a session did, as
//!   goals read it), [`classroom`] (each student's progress and the feed of notable events,
//!   pure), [`dashboard`] (the instructor's view of it) and [`status`] (a student asking the
//!   lab for their exercises);
//! - [`grade`]: the `grade` profile, an MX that grades the sender delivering to it (which
//!   Postfix `smtp_tls_security_level` it behaved like);
//! - [`demo`]: the built-in demonstration run against an in-process lab;
//! - [`pair`]: the client core and a server session joined in memory, for tests and fuzzing.
//!
//! Accepted mail is kept in a bounded in-memory [`MailStore`] and, on request, written to a
//! Maildir. Nothing here listens beyond the addresses it is given.

pub mod accounts;
pub mod activity;
pub mod certs;
pub mod classroom;
pub mod dashboard;
pub mod demo;
pub mod exercise;
pub mod grade;
mod listener;
pub mod pair;
pub mod profile;
pub mod roster;
pub mod server;
pub mod status;
pub mod textfile;
pub mod triggers;
pub mod verdict;

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
pub use classroom::{ClassBoard, Classroom};
pub use exercise::Exercises;
pub use profile::Profile;
pub use roster::Roster;
pub use server::{Direction, Message};
pub use verdict::{Level, Verdict};

use crate::proto::escape::escape_str;

/// Receives each line of the lab's log (session lines, verdicts and deliveries), without a
/// newline.
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
    /// Where the CA and its key are kept across starts (`None`: a fresh CA in a fresh temp
    /// directory, removed when the lab stops).
    pub state_dir: Option<PathBuf>,
    /// More names (host names or IP addresses) the server certificate is valid for, such as
    /// the address students use on a LAN; the first is also the one the start table's
    /// command lines connect to.
    pub names: Vec<String>,
    /// Where log lines go.
    pub log: LogSink,
    /// Log every connection, command and reply; when false only deliveries and the verdicts
    /// that flag something are logged.
    pub log_sessions: bool,
    /// Colour the verdict lines (for a terminal).
    pub colour: bool,
    /// The wait before each reply once a client made ten errors (Postfix's
    /// `smtpd_error_sleep_time`, 1 s; zero turns it off).
    pub error_sleep: Duration,
    /// The `slow` profile's delays.
    pub slow: server::SlowTimings,
    /// The students (or "everyone", without a class).
    pub roster: Roster,
    /// The exercises they do.
    pub exercises: Exercises,
    /// Where the class's passwords were written, for the start table.
    pub class_sheet: Option<PathBuf>,
    /// SMTPUTF8 support (Postfix's `smtputf8_enable`), on by default.
    pub smtputf8: bool,
    /// REQUIRETLS support inside TLS (Postfix 3.11's `requiretls_enable`), on by default.
    pub requiretls: bool,
    /// The grade profile's certificates and report.
    pub grade: GradeConfig,
}

/// How the `grade` profile presents itself and where its report goes.
#[derive(Debug, Clone, Default)]
pub struct GradeConfig {
    /// The MX name its certificates are for (default: `lab.test`, the lab's host).
    pub mx_name: Option<String>,
    /// The CA that signs the good and wrong-name certificates, as (certificate, key) PEM
    /// files: the CA the graded senders trust. Default: the lab's own CA.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// The MX key (PEM, PKCS#8), whose TLSA record the test domain publishes. Default: kept
    /// in the state directory, or fresh for one run.
    pub key: Option<PathBuf>,
    /// Where the JSON report is kept (rewritten after every graded session).
    pub report: Option<PathBuf>,
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
            state_dir: None,
            names: Vec::new(),
            // println! would panic on a closed stdout; a lab must outlive its log reader.
            log: Arc::new(|line| {
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }),
            log_sessions: true,
            colour: false,
            error_sleep: server::ERROR_SLEEP,
            slow: server::SlowTimings::default(),
            roster: Roster::anonymous(),
            // The shipped file always parses (a test holds it to that).
            exercises: Exercises::builtin().unwrap_or_default(),
            class_sheet: None,
            smtputf8: true,
            requiretls: true,
            grade: GradeConfig::default(),
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
    /// Certificates, or the state directory that keeps them.
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
            " (the port is busy: is another lab running? Move every profile with --port-base N, \
             or this one with --listen {profile}=127.0.0.1:PORT)"
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
    /// The same, asking for a client certificate (profiles whose policy says so).
    client_cert_tls: Arc<rustls::ServerConfig>,
    mail: MailStore,
    maildir: Option<PathBuf>,
    command_timeout: Duration,
    max_sessions: usize,
    log: LogSink,
    log_sessions: bool,
    colour: bool,
    sessions: AtomicU64,
    board: Arc<ClassBoard>,
}

impl LabShared {
    fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One session line, marked `plain` or `tls` as the client's transcript marks its lines
    /// (notes carry no mark), so a projector shows the moment TLS starts.
    fn log_line(&self, profile: &str, session: u64, direction: Direction, tls: bool, text: &str) {
        if !self.log_sessions {
            return;
        }
        let (security, arrow) = match direction {
            Direction::Client => (if tls { "tls  " } else { "plain" }, "C:"),
            Direction::Server => (if tls { "tls  " } else { "plain" }, "S:"),
            Direction::Note => ("     ", ".."),
        };
        // Every log line may quote a client (a recipient echoed in a reply, a note about a
        // command): escaped once more here, so nothing a client sent reaches the projector raw.
        // Escaping is idempotent on already escaped text.
        let text = escape_str(text);
        (self.log)(&format!(
            "{} {profile}#{session} {security} {arrow} {text}",
            clock()
        ));
    }

    /// The verdict line that ends a session. With `--quiet` only the ones that flag
    /// something; an alarm is loud (bold red on a terminal, `!!` everywhere).
    fn log_verdict(&self, profile: &str, session: u64, verdict: &Verdict) {
        if !self.log_sessions && verdict.level == Level::Ok {
            return;
        }
        let line = format!("{profile}#{session} VERDICT {verdict}");
        let line = if self.colour {
            let colour = match verdict.level {
                Level::Alarm => "\x1b[1;31m",
                Level::Warning => "\x1b[33m",
                Level::Ok => "\x1b[32m",
            };
            format!("{colour}{line}\x1b[0m")
        } else {
            line
        };
        (self.log)(&format!("{} {line}", clock()));
        if let Some(lesson) = verdict.lesson {
            (self.log)(&format!("{} {profile}#{session} LESSON: {lesson}", clock()));
        }
    }

    /// A line of the grade profile (kept under `--quiet`: the grade is what it is for).
    fn log_grade(&self, session: u64, text: &str) {
        (self.log)(&format!(
            "{} {}#{session} {}",
            clock(),
            Profile::Grade,
            escape_str(text)
        ));
    }

    /// Notable class events, in the log of a lab with a class (kept under `--quiet`).
    fn log_feed(&self, views: &[classroom::FeedView]) {
        if views.is_empty() || !self.board.logs_feed() {
            return;
        }
        for view in views {
            let line = format!("CLASS {}", view.line());
            let line = if self.colour && view.tone == classroom::Tone::Alarm {
                format!("\x1b[1;31m{line}\x1b[0m")
            } else {
                line
            };
            (self.log)(&format!("{} {line}", clock()));
        }
    }

    fn log_delivery(&self, message: &Message) {
        let with = if message.parameters.is_empty() {
            String::new()
        } else {
            format!(" {}", escape_str(&message.parameters.join(" ")))
        };
        (self.log)(&format!(
            "{} {}: queued {} from <{}>{with} to {} ({} bytes, {}, {})",
            clock(),
            message.profile,
            message.id,
            escape_str(&message.from),
            message
                .to
                .iter()
                .zip(
                    message
                        .recipient_parameters
                        .iter()
                        .chain(std::iter::repeat(&String::new()))
                )
                .map(|(to, parameters)| if parameters.is_empty() {
                    format!("<{}>", escape_str(to))
                } else {
                    format!("<{}> {}", escape_str(to), escape_str(parameters))
                })
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

/// The grade profile's board: its certificates from the given CA (or the lab's) and MX key
/// (or the one kept in the state directory, or a fresh one).
fn grade_board(config: &LabConfig, ca: &certs::LabCa) -> Result<grade::GradeBoard, LabError> {
    let options = &config.grade;
    let key = grade::certs::mx_key(options.key.as_deref(), config.state_dir.as_deref())?;
    let mx_name = options
        .mx_name
        .clone()
        .unwrap_or_else(|| config.host.clone());
    let tls = match &options.ca {
        Some((cert, key_file)) => {
            let issuer = grade::certs::load_issuer(cert, key_file)?;
            grade::GradeTls::build(&issuer, &key, &mx_name, &config.names)?
        }
        None => grade::GradeTls::build(ca.issuer(), &key, &mx_name, &config.names)?,
    };
    Ok(grade::GradeBoard::new(tls, options.report.clone()))
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

/// Where the lab's CA lives: a state directory it holds, or a temp directory it made.
#[derive(Debug)]
enum CaHome {
    Kept(certs::StateDir),
    Temporary(PathBuf),
}

/// A running lab.
pub struct Lab {
    listening: Vec<(Profile, SocketAddr)>,
    roster: Roster,
    class_sheet: Option<PathBuf>,
    board: Arc<ClassBoard>,
    accounts: Vec<String>,
    /// The workshop account's access token for OAUTHBEARER, printed at start.
    workshop_token: Option<crate::secret::Secret>,
    /// The workshop account's client certificate and key files, for EXTERNAL.
    client_certificate: Option<(PathBuf, PathBuf)>,
    names: Vec<String>,
    ca_file: PathBuf,
    ca_home: CaHome,
    ca_der: CertificateDer<'static>,
    mail: MailStore,
    grade: Option<Arc<grade::GradeBoard>>,
    /// The grade profile's good certificate is signed by the lab's own CA.
    grade_ca_is_lab: bool,
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
    /// Makes (or loads) the CA and the server certificate, binds every listener (all or
    /// nothing) and starts serving. One CA serves every profile.
    ///
    /// # Errors
    /// [`LabError`] naming the listener that could not bind, the state directory that cannot
    /// be used, or the file that could not be written.
    pub async fn start(config: LabConfig) -> Result<Lab, LabError> {
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
        let (pki, ca_file, ca_home, ca) = match &config.state_dir {
            Some(dir) => {
                let (state, ca) = certs::StateDir::open(dir)?;
                let pki = LabPki::issue(&ca, &config.names)?;
                (pki, state.ca_file(), CaHome::Kept(state), ca)
            }
            None => {
                let ca = certs::LabCa::generate(30)?;
                let pki = LabPki::issue(&ca, &config.names)?;
                let file = pki.write_ca_to_temp()?;
                (pki, file.clone(), CaHome::Temporary(file), ca)
            }
        };
        let grade = if bound.iter().any(|(p, _, _)| *p == Profile::Grade) {
            Some(Arc::new(grade_board(&config, &ca)?))
        } else {
            None
        };
        let client_certificate = match ca_file.parent() {
            Some(dir) => Some(pki.write_client_certificate(dir)?),
            None => None,
        };
        let mail = MailStore::default();
        let board = Arc::new(ClassBoard::new(Classroom::new(
            config.roster.clone(),
            config.exercises.clone(),
            bound
                .iter()
                .map(|(profile, addr, _)| (*profile, addr.port()))
                .collect(),
        )));
        let shared = Arc::new(LabShared {
            tls: pki.server_config.clone(),
            client_cert_tls: pki.client_cert_config.clone(),
            mail: mail.clone(),
            maildir: config.maildir.clone(),
            command_timeout: config.command_timeout,
            max_sessions: config.max_sessions,
            log: config.log.clone(),
            log_sessions: config.log_sessions,
            colour: config.colour,
            sessions: AtomicU64::new(0),
            board: board.clone(),
        });
        let accounts = Arc::new(config.accounts.clone());
        // Greylisting and the slow profile remember attempts across sessions and profiles.
        let seen = Arc::new(triggers::SeenOnce::default());
        let (shutdown, watcher) = watch::channel(false);
        let mut listening = Vec::new();
        let mut tasks = Vec::new();
        for (profile, addr, tcp) in bound {
            let mut settings = server::ServerSettings::new(&config.host, profile, accounts.clone());
            settings.size_limit = config.size_limit;
            settings.seen = seen.clone();
            settings.error_sleep = config.error_sleep;
            settings.slow = config.slow;
            settings.log = config.log_sessions;
            settings.class = Some(board.clone());
            settings.smtputf8 = config.smtputf8;
            settings.requiretls = config.requiretls;
            if profile == Profile::Grade
                && let Some(board) = &grade
            {
                // The MX of the test domain introduces itself by the name senders verify.
                settings.host = board.info().mx_name.clone();
                settings.grade = Some(board.clone());
            }
            let listener = listener::Listener {
                tcp,
                settings: Arc::new(settings),
                shared: shared.clone(),
                shutdown: watcher.clone(),
            };
            tasks.push(tokio::spawn(listener.run()));
            listening.push((profile, addr));
        }
        Ok(Lab {
            listening,
            roster: config.roster.clone(),
            class_sheet: config.class_sheet.clone(),
            board,
            accounts: config.accounts.users().map(str::to_owned).collect(),
            workshop_token: config.accounts.token(accounts::DEFAULT_USER).cloned(),
            client_certificate,
            names: config.names.clone(),
            ca_file,
            ca_home,
            ca_der: pki.ca_der,
            mail,
            grade,
            grade_ca_is_lab: config.grade.ca.is_none(),
            shutdown,
            tasks,
        })
    }

    /// The workshop account's client certificate and key files (for `--cert` and `--key`).
    pub fn client_certificate(&self) -> Option<(&Path, &Path)> {
        self.client_certificate
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()))
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
                client_identity: None,
                roots: Default::default(),
            },
            policy: crate::guard::GuardPolicy::default(),
            timeout: Duration::from_secs(30),
            limits: crate::proto::reply::ReplyLimits::default(),
            unasked: crate::session::UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            transport: crate::session::Transport::default(),
        })
    }

    /// The grade profile's board (when it runs): each sender's grade, the MX name and TLSA.
    pub fn grade(&self) -> Option<&Arc<grade::GradeBoard>> {
        self.grade.as_ref()
    }

    /// The accepted mail.
    pub fn mail(&self) -> &MailStore {
        &self.mail
    }

    /// The class: its students' progress and the feed of notable events.
    pub fn board(&self) -> &Arc<ClassBoard> {
        &self.board
    }

    /// The host and the name to verify that the start table's command lines use for a
    /// listener: loopback as `127.0.0.1` verified as `localhost`; a listener on every
    /// interface by the first `--name` (the address students use), or loopback without one.
    fn connect_host(&self, addr: SocketAddr) -> (String, String) {
        let ip = addr.ip();
        if ip.is_unspecified() {
            if let Some(name) = self.names.first() {
                return (name.clone(), name.clone());
            }
            return ("127.0.0.1".to_owned(), "localhost".to_owned());
        }
        if ip.is_loopback() {
            let host = if ip.is_ipv4() {
                ip.to_string()
            } else {
                format!("[{ip}]")
            };
            return (host, "localhost".to_owned());
        }
        (ip.to_string(), ip.to_string())
    }

    /// The table printed at start: each listener, what it teaches, and the exact command
    /// lines for smtptui, swaks and openssl s_client that reach it as they should (the lab CA
    /// trusted, the name verified, `--tls implicit` for the implicit profile); then the
    /// account, the CA, and the fault triggers.
    pub fn table(&self) -> String {
        let ca = self.ca_file.display().to_string();
        let class = !self.roster.is_anonymous();
        let user = if class {
            "ID@lab.test"
        } else {
            accounts::DEFAULT_USER
        };
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
            let (host, name) = self.connect_host(*addr);
            let port = addr.port();
            if *profile == Profile::Grade {
                // Its client is a sending MTA, and its certificates are for the MX name.
                out.push_str(&format!(
                    "{}a sending MTA delivers here, e.g. Postfix: transport_maps entry `DOMAIN smtp:[{host}]:{port}`\n",
                    " ".repeat(12)
                ));
                continue;
            }
            let policy = profile.policy();
            let auth = policy.auth_under_tls;
            let smtptui_user = if auth {
                format!(" --user {user}")
            } else {
                String::new()
            };
            let swaks_auth = if auth {
                format!(" --auth-user {user}")
            } else {
                String::new()
            };
            let (swaks_tls, openssl_tls) = if policy.implicit_tls {
                ("--tlsc", "")
            } else if policy.lmtp {
                // openssl s_client knows LMTP's STARTTLS (it sends LHLO).
                ("--protocol LMTP --tls", " -starttls lmtp")
            } else {
                ("--tls", " -starttls smtp")
            };
            let pad = " ".repeat(12);
            out.push_str(&format!(
                "{pad}smtptui {host}:{port} {} --ca-file {ca} --servername {name}{smtptui_user}\n",
                profile.client_tls_flag()
            ));
            out.push_str(&format!(
                "{pad}swaks --server {host} --port {port} {swaks_tls} --tls-verify --tls-ca-path {ca}{swaks_auth}\n"
            ));
            out.push_str(&format!(
                "{pad}openssl s_client{openssl_tls} -crlf -connect {host}:{port} -CAfile {ca} -verify_return_error -verify_hostname {name}\n"
            ));
        }
        if self
            .listening
            .iter()
            .any(|(_, addr)| addr.ip().is_unspecified())
            && self.names.is_empty()
        {
            out.push_str(
                "Listening on every interface: students connect to this machine's address; add it to the certificate with --name ADDRESS.\n",
            );
        }
        out.push('\n');
        if class {
            let students = self.roster.students();
            let range = match (students.first(), students.last()) {
                (Some(first), Some(last)) if students.len() > 1 => {
                    format!("{} ... {}", first.account(), last.account())
                }
                (Some(first), _) => first.account(),
                _ => String::new(),
            };
            out.push_str(&format!(
                "Class: {} students, one account each ({range}); each says EHLO with their ID so sessions without AUTH count too.\n",
                students.len()
            ));
            if let Some(sheet) = &self.class_sheet {
                out.push_str(&format!(
                    "  Their passwords are on the class sheet {} (mode 600): hand each student their line; never project it.\n",
                    sheet.display()
                ));
            }
        }
        for account in &self.accounts {
            if class && self.roster.by_account(account).is_some() {
                continue;
            }
            if account == accounts::DEFAULT_USER {
                out.push_str(&format!(
                    "Account: {account}  password: {}  (a practice password, printed on purpose; swaks asks for it)\n",
                    accounts::DEFAULT_PASSWORD
                ));
                if let (Some((cert, key)), Some(addr)) =
                    (&self.client_certificate, self.addr(Profile::Submission))
                {
                    let (host, name) = self.connect_host(addr);
                    out.push_str(&format!(
                        "  client certificate (CN={account}) for AUTH EXTERNAL on submission: smtptui {host}:{} --tls starttls --ca-file {ca} --servername {name} --cert {} --key {}\n",
                        addr.port(),
                        cert.display(),
                        key.display()
                    ));
                }
                if let Some(token) = &self.workshop_token {
                    out.push_str(&format!(
                        "  OAUTHBEARER token: {}  (fresh at this start; submission and legacy also take CRAM-MD5 and OAUTHBEARER: SMTPTUI_PASSWORD=<token> smtptui ... then AUTH OAUTHBEARER)\n",
                        token.expose()
                    ));
                }
            } else {
                out.push_str(&format!(
                    "Account: {}  (password from its file)\n",
                    escape_str(account)
                ));
            }
        }
        out.push_str(&format!(
            "Mail: the mx, inject, slow and lmtp profiles take mail for any address @{} from anyone; the others only after AUTH.\n",
            server::LOCAL_DOMAIN
        ));
        match &self.ca_home {
            CaHome::Kept(state) => out.push_str(&format!(
                "Lab CA (kept in its state directory, the same after a restart): {}\n",
                state.ca_file().display()
            )),
            CaHome::Temporary(_) => out.push_str(&format!(
                "Lab CA (fresh at this start, gone when the lab stops): {ca}\n"
            )),
        }
        out.push_str(&format!(
            "  trust it with: --ca-file {ca} --servername localhost\n"
        ));
        // Scenarios built into the binary, so the line works wherever smtptui is installed.
        for (profile, asset) in [
            (Profile::Submission, "submission-starttls"),
            (Profile::Implicit, "implicit-tls"),
        ] {
            if let Some(addr) = self.addr(profile) {
                let (host, name) = self.connect_host(addr);
                out.push_str(&format!(
                    "Try: smtptui run {asset} {host}:{} {} --ca-file {ca} --servername {name} --user {user}\n",
                    addr.port(),
                    profile.client_tls_flag(),
                ));
            }
        }
        if self.addr(Profile::Implicit).is_some() {
            out.push_str(
                "  (the implicit profile speaks TLS first: with --tls starttls a client waits for a greeting that never comes)\n",
            );
        }
        if let Some((profile, addr)) = self.status_listener() {
            let (host, name) = self.connect_host(addr);
            let exercises = self.board.read(|c| c.exercises().list.len());
            let tls = if profile.policy().implicit_tls {
                format!(" --tls implicit --ca-file {ca} --servername {name}")
            } else {
                String::new()
            };
            let target = format!("{host}:{}{tls}", addr.port());
            out.push_str(&if class {
                format!(
                    "Exercises ({exercises}): smtptui lab-status {target} ID  (or XEXERCISES ID in any session, :exercises in smtptui)\n"
                )
            } else {
                format!(
                    "Exercises ({exercises}): smtptui lab-status {target}  (or XEXERCISES in any session, :exercises in smtptui)\n"
                )
            });
        }
        if let (Some(board), Some(addr)) = (&self.grade, self.addr(Profile::Grade)) {
            out.push_str(&self.grade_help(board.info(), addr));
        }
        out.push_str(TRIGGERS_HELP);
        out
    }

    /// The grade profile's part of the start table: where senders deliver, the TLSA record
    /// to publish, the CA they must trust, the trials and the report.
    fn grade_help(&self, info: &grade::GradeInfo, addr: SocketAddr) -> String {
        let mut out = format!(
            "Grade: the MX {} at {addr} grades each sender (address + EHLO name) over {} sessions, one trial each:\n  {}\n",
            info.mx_name,
            grade::Trial::ALL.len(),
            grade::Trial::ALL
                .iter()
                .map(|t| format!("{t} ({})", t.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push_str(&format!(
            "  publish for DANE: _{}._tcp.{}. IN TLSA {}\n",
            addr.port(),
            info.mx_name,
            info.tlsa
        ));
        out.push_str(&format!(
            "  senders verifying certificates trust the CA that signed the good one{}\n",
            if self.grade_ca_is_lab {
                format!(": {}", self.ca_file.display())
            } else {
                " (given with --grade-ca)".to_owned()
            }
        ));
        if let Some(report) = &info.report {
            out.push_str(&format!(
                "  the grades as JSON, rewritten after each session: {}\n",
                report.display()
            ));
        }
        out
    }

    /// The listener `smtptui lab-status` is best pointed at: the MX (no TLS needed to ask),
    /// else submission, else any.
    fn status_listener(&self) -> Option<(Profile, SocketAddr)> {
        [Profile::Mx, Profile::Submission]
            .into_iter()
            .find_map(|p| self.addr(p).map(|a| (p, a)))
            .or_else(|| self.listening.first().copied())
    }

    /// Stops accepting, tells open sessions `421 ... shutting down`, and waits (bounded) for
    /// them to end. A CA directory the lab made itself is removed: the CA of a stopped lab
    /// vouches for nothing, and /tmp should not collect them. A state directory is kept (and
    /// released for the next lab).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let CaHome::Temporary(file) = &self.ca_home
            && let Some(dir) = file.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The fault triggers and verdicts, as the start table and `smtptui lab --help` explain them.
pub const TRIGGERS_HELP: &str = "\
Fault triggers (any profile that takes the recipient):
  RCPT TO:<rcpt-550-5.1.1@lab.test>   that reply to RCPT (any 4xx/5xx code, enhanced code optional; 421 closes)
  RCPT TO:<data-554@lab.test>         accepted; that reply at the end of the message
  RCPT TO:<greylist@lab.test>         450 4.7.1 the first time (per client, sender, recipient), 250 on the retry
  EHLO no-pipelining.no-chunking.lab.test   each no-KEYWORD label turns that EHLO extension off
Extensions: PIPELINING, SIZE, 8BITMIME, DSN, SMTPUTF8 and CHUNKING (BDAT) everywhere, REQUIRETLS inside
  TLS, with Postfix's replies; the lmtp profile speaks LMTP (LHLO, one reply per recipient after the
  message, RCPT TO:<data-452@lab.test> refusing just that one). A group of commands sent in one write
  shows in the log as one 'pipelined group'.
Every session ends with a VERDICT line: '!! ATTACK WORKED' / '!! DANGER' (credentials in cleartext,
injected bytes believed, cleartext after a refused STARTTLS), '!  warning', or 'ok'; an alarm is
followed by a LESSON line.
";
