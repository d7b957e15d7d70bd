//! Shared integration-test harness for `smtptui`.
//!
//! * [`Server`]: a scripted fake SMTP server on `127.0.0.1:0`, one thread per test, built on
//!   `std::net` and a rustls `ServerConnection`. It records every byte it receives before TLS
//!   ([`Recorded::plain`]) separately from the decrypted bytes received inside TLS
//!   ([`Recorded::tls`]), so tests can prove that no credential crossed in cleartext.
//! * [`Smtp`]: a configurable "ordinary" SMTP dialogue (EHLO, STARTTLS, AUTH PLAIN/LOGIN,
//!   MAIL/RCPT/DATA, QUIT) with per-command overrides, usable as the server script.
//! * [`Pki`]: a throw-away CA plus good / expired / wrong-name leaf certificates (rcgen),
//!   written as PEM into a temp dir so the binary can be given `--ca-file`.
//! * [`Run`]: runs the `smtptui` binary headless with a small `--timeout` and a hard kill, and
//!   returns an [`Outcome`] with exit code, stdout, stderr and elapsed time.
//!
//! * [`Case`]: one row of a table of runs (server behaviour, scenario, options, exit status,
//!   texts, what must never reach the server), checked with the invariants of every run;
//!   [`cases!`] makes one `#[test]` per row.
//!
//! * [`postfix`]: the loopback Postfix of `scripts/postfix-env.sh`, started once or skipped.
//! * [`mta`]: the loopback Exim and Dovecot of `scripts/exim-env.sh` and
//!   `scripts/dovecot-env.sh`, likewise.
//!
//! Every socket operation has a timeout and every wait is bounded: a misbehaving binary makes
//! a test fail, never hang.

#![allow(dead_code)]

pub mod mta;
pub mod postfix;
pub mod program;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// User name used by credential tests.
pub const USER: &str = "alice";
/// A password distinctive enough that it never appears in output by accident.
pub const PASSWORD: &str = "Tr0ub4dor&3-zebra!";

/// How long the fake server waits for the client to connect.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(25);
/// Per-read / per-write socket timeout in the fake server.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(20);
/// Hard limit on one binary run.
pub const RUN_DEADLINE: Duration = Duration::from_secs(20);
/// Largest line the fake server accepts from the client (protects the harness, not the client).
const MAX_SERVER_LINE: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

/// Everything the fake server observed.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Every byte received from the client on the raw TCP stream before TLS started
    /// (for implicit TLS: nothing). Bytes received after the server decided to start TLS
    /// (i.e. the TLS handshake itself) are not included.
    pub plain: Vec<u8>,
    /// Whether the server started a TLS handshake (after STARTTLS or implicitly).
    pub tls_started: bool,
    /// `Some(Ok)` when the TLS handshake completed, `Some(Err(reason))` when it failed.
    pub tls_handshake: Option<Result<(), String>>,
    /// Decrypted application bytes received from the client inside TLS.
    pub tls: Vec<u8>,
    /// Lines received by the server, in order, with whether they came inside TLS.
    pub lines: Vec<(bool, String)>,
    /// Decoded SASL credentials `(user, password, inside_tls)` the server received.
    pub auth: Vec<(String, String, bool)>,
    /// DATA payloads exactly as received (still dot-stuffed), one `Vec` of lines per message,
    /// the terminating `.` excluded.
    pub messages: Vec<Vec<Vec<u8>>>,
    /// Whether a client connected at all.
    pub connected: bool,
    /// Server-side error that ended the session, if any (diagnostics only).
    pub end: Option<String>,
}

impl Recorded {
    /// All bytes received, plain then decrypted TLS.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut v = self.plain.clone();
        v.extend_from_slice(&self.tls);
        v
    }

    /// The cleartext bytes received after the first `STARTTLS` line (empty if none was sent).
    pub fn plain_after_starttls(&self) -> &[u8] {
        match find_ci(&self.plain, b"STARTTLS\r\n") {
            Some(i) => &self.plain[i + b"STARTTLS\r\n".len()..],
            None => match find_ci(&self.plain, b"STARTTLS\n") {
                Some(i) => &self.plain[i + b"STARTTLS\n".len()..],
                None => &[],
            },
        }
    }

    /// Asserts that no AUTH line crossed, in cleartext or inside TLS, that the server saw no
    /// SASL exchange, and that no credential form is in any byte it received.
    #[track_caller]
    pub fn assert_no_auth_anywhere(&self) {
        assert!(
            find_ci(&self.plain, b"AUTH").is_none(),
            "AUTH crossed in cleartext: {}",
            self.dump()
        );
        assert!(
            find_ci(&self.tls, b"AUTH").is_none(),
            "AUTH was sent inside TLS: {}",
            self.dump()
        );
        assert!(
            self.auth.is_empty(),
            "server received credentials: {:?}\n{}",
            self.auth,
            self.dump()
        );
        assert_no_credentials(
            &self.all_bytes(),
            USER,
            PASSWORD,
            "bytes received by the server",
        );
    }

    /// Human-readable dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "connected={} tls_started={} handshake={:?} end={:?}\n  plain={:?}\n  tls={:?}",
            self.connected,
            self.tls_started,
            self.tls_handshake,
            self.end,
            String::from_utf8_lossy(&self.plain),
            String::from_utf8_lossy(&self.tls),
        )
    }
}

/// The PLAIN response of the test credentials, base64 of `\0USER\0PASSWORD`.
pub fn plain_response() -> String {
    B64.encode(format!("\0{USER}\0{PASSWORD}"))
}

/// Case-insensitive byte substring search.
pub fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Case-sensitive byte substring search.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every encoding of the credentials that must never cross in cleartext or reach stdout:
/// the password, base64 of `\0user\0password`, base64 of `user\0user\0password`
/// (authzid form), base64 of the password, base64 of the user. Padding-less variants too.
pub fn credential_forms(user: &str, password: &str) -> Vec<String> {
    let mut forms = vec![
        password.to_string(),
        B64.encode(format!("\0{user}\0{password}")),
        B64.encode(format!("{user}\0{user}\0{password}")),
        B64.encode(password),
        B64.encode(user),
        B64.encode(format!("user={user}\x01auth=Bearer {password}\x01\x01")),
        B64.encode(format!("n,a={user},\x01auth=Bearer {password}\x01\x01")),
    ];
    let unpadded: Vec<String> = forms
        .iter()
        .skip(1)
        .map(|f| f.trim_end_matches('=').to_string())
        .collect();
    forms.extend(unpadded);
    forms
}

/// Panics if `bytes` contains any credential form of `user`/`password` (see
/// [`credential_forms`]; the plain user name is allowed, it appears in redaction markers).
pub fn assert_no_credentials(bytes: &[u8], user: &str, password: &str, what: &str) {
    for form in credential_forms(user, password) {
        assert!(
            find_bytes(bytes, form.as_bytes()).is_none(),
            "credential form {form:?} found in {what}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Connection (server side)
// ---------------------------------------------------------------------------------------------

/// A TCP stream with some already-read bytes put back in front (so that a TLS handshake
/// started after cleartext reading does not lose bytes the client sent early).
pub struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, Prefixed>>),
    Closed,
}

/// The server end of one client connection, handed to server scripts.
pub struct Conn {
    transport: Transport,
    buf: Vec<u8>,
    rec: Arc<Mutex<Recorded>>,
    tls_config: Option<Arc<rustls::ServerConfig>>,
}

impl Conn {
    fn new(
        sock: TcpStream,
        rec: Arc<Mutex<Recorded>>,
        tls_config: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let _ = sock.set_nodelay(true);
        let _ = sock.set_read_timeout(Some(SOCKET_TIMEOUT));
        let _ = sock.set_write_timeout(Some(SOCKET_TIMEOUT));
        Conn {
            transport: Transport::Plain(sock),
            buf: Vec::new(),
            rec,
            tls_config,
        }
    }

    fn record<F: FnOnce(&mut Recorded)>(&self, f: F) {
        let mut g = self.rec.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
    }

    /// True once TLS is up.
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// The raw TCP stream (for socket options).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match &self.transport {
            Transport::Plain(s) => Some(s),
            Transport::Tls(t) => Some(&t.sock.inner),
            Transport::Closed => None,
        }
    }

    /// Writes `bytes` in ONE write call (then flushes), on whatever transport is current.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Transport::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
            Transport::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }

    /// Reads more bytes into the line buffer; Ok(0) on EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 8192];
        let (n, tls) = match &mut self.transport {
            Transport::Plain(s) => (s.read(&mut tmp)?, false),
            Transport::Tls(t) => match t.read(&mut tmp) {
                Ok(n) => (n, true),
                // A client that just closes the TCP stream without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => (0, true),
                Err(e) => return Err(e),
            },
            Transport::Closed => return Ok(0),
        };
        let data = &tmp[..n];
        self.record(|r| {
            if tls {
                r.tls.extend_from_slice(data)
            } else {
                r.plain.extend_from_slice(data)
            }
        });
        self.buf.extend_from_slice(data);
        Ok(n)
    }

    /// Reads one line (terminated by LF, CR stripped). `Ok(None)` on EOF.
    pub fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let tls = self.is_tls();
                let text = String::from_utf8_lossy(&line).into_owned();
                self.record(|r| r.lines.push((tls, text)));
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_SERVER_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "client line too long",
                ));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Starts a server-side TLS handshake on the current plain connection using the
    /// configured certificate, and completes it. Bytes the client sent early (already buffered)
    /// are fed to the handshake.
    pub fn start_tls(&mut self) -> io::Result<()> {
        self.start_tls_with(None)
    }

    /// Like [`Conn::start_tls`], but sends `data` inside TLS right behind the server's
    /// Finished (TLS 1.3 half-RTT data), before the client could have sent anything: bytes
    /// nobody asked for that reach the client in the same flight as the end of the handshake.
    pub fn start_tls_sending_first(&mut self, data: &[u8]) -> io::Result<()> {
        self.start_tls_with(Some(data))
    }

    fn start_tls_with(&mut self, half_rtt: Option<&[u8]>) -> io::Result<()> {
        let mut cfg = self
            .tls_config
            .clone()
            .ok_or_else(|| io::Error::other("no TLS config for this fake server"))?;
        if half_rtt.is_some() {
            let mut config = (*cfg).clone();
            config.send_half_rtt_data = true;
            cfg = Arc::new(config);
        }
        let sock = match std::mem::replace(&mut self.transport, Transport::Closed) {
            Transport::Plain(s) => s,
            other => {
                self.transport = other;
                return Err(io::Error::other("start_tls: not on a plain connection"));
            }
        };
        self.record(|r| r.tls_started = true);
        let prefix = std::mem::take(&mut self.buf);
        let mut conn = rustls::ServerConnection::new(cfg).map_err(io::Error::other)?;
        if let Some(data) = half_rtt {
            conn.writer().write_all(data)?;
        }
        let mut stream = rustls::StreamOwned::new(
            conn,
            Prefixed {
                prefix,
                pos: 0,
                inner: sock,
            },
        );
        // Each flight goes out in one write, so whatever rides behind the server's Finished
        // (half-RTT data) reaches the client in the same segment as the end of the handshake.
        let handshake = |stream: &mut rustls::StreamOwned<rustls::ServerConnection, Prefixed>| {
            while stream.conn.is_handshaking() || stream.conn.wants_write() {
                if stream.conn.wants_write() {
                    let mut flight = Vec::new();
                    while stream.conn.wants_write() {
                        stream.conn.write_tls(&mut flight)?;
                    }
                    stream.sock.write_all(&flight)?;
                    stream.sock.flush()?;
                    continue;
                }
                if stream.conn.read_tls(&mut stream.sock)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "EOF during handshake",
                    ));
                }
                stream
                    .conn
                    .process_new_packets()
                    .map_err(io::Error::other)?;
            }
            Ok(())
        };
        let result = handshake(&mut stream);
        match result {
            Ok(()) => {
                self.record(|r| r.tls_handshake = Some(Ok(())));
                self.transport = Transport::Tls(Box::new(stream));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.record(|r| r.tls_handshake = Some(Err(msg)));
                Err(e)
            }
        }
    }

    /// Pretends to start TLS but answers the ClientHello with `garbage`, then closes.
    pub fn fail_tls_with(&mut self, garbage: &[u8]) -> io::Result<()> {
        self.record(|r| r.tls_started = true);
        if let Transport::Plain(s) = &mut self.transport {
            // Read (and discard, not record as cleartext) whatever the client sends first.
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut tmp = [0u8; 4096];
            let _ = s.read(&mut tmp);
            let _ = s.write_all(garbage);
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.record(|r| r.tls_handshake = Some(Err("server sent garbage".into())));
        self.transport = Transport::Closed;
        Ok(())
    }

    /// Closes the connection (TLS close_notify when applicable).
    pub fn close(&mut self) {
        match std::mem::replace(&mut self.transport, Transport::Closed) {
            Transport::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Transport::Tls(mut t) => {
                t.conn.send_close_notify();
                let _ = t.flush();
                let _ = t.sock.inner.shutdown(std::net::Shutdown::Both);
            }
            Transport::Closed => {}
        }
    }

    /// Records decoded SASL credentials.
    pub fn record_auth(&self, user: &str, pass: &str) {
        let tls = self.is_tls();
        let (u, p) = (user.to_string(), pass.to_string());
        self.record(|r| r.auth.push((u, p, tls)));
    }

    /// Records one DATA payload.
    pub fn record_message(&self, lines: Vec<Vec<u8>>) {
        self.record(|r| r.messages.push(lines));
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// What a line handler wants to happen next.
pub enum Flow {
    /// Keep reading lines.
    Continue,
    /// Close the connection and end the session.
    Close,
}

/// A running fake server (one connection).
pub struct Server {
    /// The bound address (always 127.0.0.1).
    pub addr: SocketAddr,
    rec: Arc<Mutex<Recorded>>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    /// Spawns a server thread; `session` gets the accepted connection and does anything.
    pub fn raw<F>(tls_config: Option<Arc<rustls::ServerConfig>>, session: F) -> Server
    where
        F: FnOnce(&mut Conn) -> io::Result<()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let rec = Arc::new(Mutex::new(Recorded::default()));
        let rec2 = Arc::clone(&rec);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let sock = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if start.elapsed() > ACCEPT_DEADLINE
                            || stop2.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            return;
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            };
            let _ = sock.set_nonblocking(false);
            rec2.lock().unwrap_or_else(|e| e.into_inner()).connected = true;
            let mut conn = Conn::new(sock, Arc::clone(&rec2), tls_config);
            let res = session(&mut conn);
            if let Err(e) = res {
                rec2.lock().unwrap_or_else(|e| e.into_inner()).end = Some(e.to_string());
            }
            conn.close();
        });
        Server {
            addr,
            rec,
            handle: Some(handle),
            stop,
        }
    }

    /// Spawns a line-driven server: optional implicit TLS, then `greeting`, then `handler`
    /// for each received line until it returns [`Flow::Close`] or the client goes away.
    pub fn lines<H>(
        tls_config: Option<Arc<rustls::ServerConfig>>,
        implicit_tls: bool,
        greeting: &[u8],
        mut handler: H,
    ) -> Server
    where
        H: FnMut(&mut Conn, &str) -> io::Result<Flow> + Send + 'static,
    {
        let greeting = greeting.to_vec();
        Server::raw(tls_config, move |conn| {
            if implicit_tls {
                conn.start_tls()?;
            }
            conn.send(&greeting)?;
            while let Some(line) = conn.read_line()? {
                let text = String::from_utf8_lossy(&line).into_owned();
                match handler(conn, &text)? {
                    Flow::Continue => {}
                    Flow::Close => break,
                }
            }
            Ok(())
        })
    }

    /// Spawns a server running the [`Smtp`] script.
    pub fn smtp(smtp: Smtp) -> Server {
        let tls = smtp.tls.clone();
        let implicit = smtp.implicit_tls;
        let greeting = smtp.greeting.clone();
        let mut session = smtp.session();
        Server::lines(tls, implicit, &greeting, move |conn, line| {
            session.handle(conn, line)
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    /// A snapshot of what was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Call after the client is gone: stops waiting for a connection that will never come,
    /// waits (bounded, 5 s) for a running session to end, then returns the recording.
    pub fn finish(mut self) -> Recorded {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let start = Instant::now();
            while !h.is_finished() && start.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        self.recorded()
    }
}

// ---------------------------------------------------------------------------------------------
// An ordinary SMTP dialogue
// ---------------------------------------------------------------------------------------------

/// How the server answers STARTTLS.
#[derive(Clone)]
pub enum StartTls {
    /// `220 2.0.0 Ready to start TLS`, then a real handshake.
    Handshake,
    /// Send these bytes (one write), stay in cleartext.
    Reply(Vec<u8>),
    /// Send these bytes (one write), then attempt a real handshake.
    ReplyThenHandshake(Vec<u8>),
    /// Send these bytes (one write), then close.
    ReplyThenClose(Vec<u8>),
    /// Send `220 Ready`, let the client start its handshake, answer with this garbage, close.
    ReplyThenGarbage(Vec<u8>),
    /// `220 Ready`, a real handshake, and these bytes inside TLS with the server's last
    /// handshake flight, unasked.
    HandshakeThenSend(Vec<u8>),
}

/// Configurable SMTP server script.
#[derive(Clone)]
pub struct Smtp {
    /// Greeting bytes (sent as one write).
    pub greeting: Vec<u8>,
    /// Host name used in EHLO reply.
    pub hostname: String,
    /// Advertise STARTTLS in the EHLO reply (only while not in TLS).
    pub advertise_starttls: bool,
    /// Advertise AUTH even in cleartext.
    pub advertise_auth: bool,
    /// The mechanisms AUTH advertises.
    pub mechanisms: &'static str,
    /// STARTTLS behaviour.
    pub starttls: StartTls,
    /// TLS server config (needed for STARTTLS handshakes and implicit TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Implicit TLS from the first byte.
    pub implicit_tls: bool,
    /// Expected credentials: `Some` → 235 only if they match, else 535. `None` → always 235.
    pub credentials: Option<(String, String)>,
    /// Overrides: if a received command starts with the key (case-insensitive), send the bytes.
    pub overrides: Vec<(String, Vec<u8>)>,
    /// What the final dot of a message is answered with, instead of a 250.
    pub message_reply: Option<Vec<u8>>,
}

/// A running [`Smtp`] dialogue: the configuration plus its per-connection state.
pub struct SmtpSession {
    cfg: Smtp,
    state: SmtpState,
}

#[derive(Clone, Default)]
enum SmtpState {
    #[default]
    Command,
    Data(Vec<Vec<u8>>),
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass(String),
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            greeting: b"220 fake.example ESMTP test\r\n".to_vec(),
            hostname: "fake.example".into(),
            advertise_starttls: true,
            advertise_auth: true,
            mechanisms: "PLAIN LOGIN",
            starttls: StartTls::Handshake,
            tls: None,
            implicit_tls: false,
            credentials: Some((USER.into(), PASSWORD.into())),
            overrides: Vec::new(),
            message_reply: None,
        }
    }
}

impl Smtp {
    /// The ordinary dialogue, with STARTTLS backed by `leaf` of `pki`.
    pub fn with_cert(pki: &Pki, leaf: Leaf) -> Smtp {
        Smtp {
            tls: Some(pki.server_config(leaf)),
            ..Smtp::default()
        }
    }

    /// Adds an override: a command starting with `prefix` is answered with `reply`.
    pub fn on(mut self, prefix: &str, reply: &[u8]) -> Self {
        self.overrides
            .push((prefix.to_ascii_uppercase(), reply.to_vec()));
        self
    }

    /// Starts a session (fresh state) for this configuration.
    pub fn session(self) -> SmtpSession {
        SmtpSession {
            cfg: self,
            state: SmtpState::Command,
        }
    }
}

impl SmtpSession {
    fn check_plain(&mut self, conn: &mut Conn, b64: &str) -> io::Result<Flow> {
        let decoded = B64.decode(b64.trim()).unwrap_or_default();
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        if parts.len() != 3 {
            conn.send(b"501 5.5.2 malformed AUTH PLAIN\r\n")?;
            return Ok(Flow::Continue);
        }
        let user = String::from_utf8_lossy(parts[1]).into_owned();
        let pass = String::from_utf8_lossy(parts[2]).into_owned();
        self.finish_auth(conn, &user, &pass)
    }

    fn finish_auth(&mut self, conn: &mut Conn, user: &str, pass: &str) -> io::Result<Flow> {
        conn.record_auth(user, pass);
        let ok = match &self.cfg.credentials {
            Some((u, p)) => u == user && p == pass,
            None => true,
        };
        if ok {
            conn.send(b"235 2.7.0 Authentication successful\r\n")?;
        } else {
            conn.send(b"535 5.7.8 Authentication credentials invalid\r\n")?;
        }
        Ok(Flow::Continue)
    }

    /// Handles one received line.
    pub fn handle(&mut self, conn: &mut Conn, line: &str) -> io::Result<Flow> {
        match std::mem::take(&mut self.state) {
            SmtpState::Data(mut lines) => {
                if line == "." {
                    conn.record_message(lines);
                    match &self.cfg.message_reply {
                        Some(reply) => conn.send(&reply.clone())?,
                        None => conn.send(b"250 2.0.0 Ok: queued as FAKE\r\n")?,
                    }
                } else {
                    lines.push(line.as_bytes().to_vec());
                    self.state = SmtpState::Data(lines);
                }
                return Ok(Flow::Continue);
            }
            SmtpState::AuthPlain => {
                if line.trim() == "*" {
                    conn.send(b"501 5.0.0 AUTH aborted\r\n")?;
                    return Ok(Flow::Continue);
                }
                return self.check_plain(conn, line);
            }
            SmtpState::AuthLoginUser => {
                let user = String::from_utf8_lossy(&B64.decode(line.trim()).unwrap_or_default())
                    .into_owned();
                self.state = SmtpState::AuthLoginPass(user);
                conn.send(b"334 UGFzc3dvcmQ6\r\n")?;
                return Ok(Flow::Continue);
            }
            SmtpState::AuthLoginPass(user) => {
                let pass = String::from_utf8_lossy(&B64.decode(line.trim()).unwrap_or_default())
                    .into_owned();
                return self.finish_auth(conn, &user, &pass);
            }
            SmtpState::Command => {}
        }

        let upper = line.to_ascii_uppercase();
        if let Some((_, reply)) = self
            .cfg
            .overrides
            .iter()
            .find(|(p, _)| upper.starts_with(p.as_str()))
        {
            conn.send(&reply.clone())?;
            return Ok(Flow::Continue);
        }
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                let mut r = format!(
                    "250-{} greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n",
                    self.cfg.hostname
                );
                if self.cfg.advertise_starttls && !conn.is_tls() {
                    r.push_str("250-STARTTLS\r\n");
                }
                if self.cfg.advertise_auth || conn.is_tls() {
                    r.push_str(&format!("250-AUTH {}\r\n", self.cfg.mechanisms));
                }
                r.push_str("250 8BITMIME\r\n");
                conn.send(r.as_bytes())?;
            }
            "HELO" => conn.send(format!("250 {}\r\n", self.cfg.hostname).as_bytes())?,
            "STARTTLS" => {
                if conn.is_tls() {
                    conn.send(b"503 5.5.1 TLS already active\r\n")?;
                    return Ok(Flow::Continue);
                }
                match self.cfg.starttls.clone() {
                    StartTls::Handshake => {
                        conn.send(b"220 2.0.0 Ready to start TLS\r\n")?;
                        conn.start_tls()?;
                    }
                    StartTls::Reply(b) => conn.send(&b)?,
                    StartTls::ReplyThenHandshake(b) => {
                        conn.send(&b)?;
                        conn.start_tls()?;
                    }
                    StartTls::ReplyThenClose(b) => {
                        conn.send(&b)?;
                        return Ok(Flow::Close);
                    }
                    StartTls::HandshakeThenSend(data) => {
                        conn.send(b"220 2.0.0 Ready to start TLS\r\n")?;
                        conn.start_tls_sending_first(&data)?;
                    }
                    StartTls::ReplyThenGarbage(g) => {
                        conn.send(b"220 2.0.0 Ready to start TLS\r\n")?;
                        conn.fail_tls_with(&g)?;
                        return Ok(Flow::Close);
                    }
                }
            }
            "AUTH" => {
                let mut words = line.split_whitespace().skip(1);
                let mech = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next();
                match (mech.as_str(), initial) {
                    ("PLAIN", Some("=")) => return self.check_plain(conn, ""),
                    ("PLAIN", Some(ir)) => return self.check_plain(conn, ir),
                    ("PLAIN", None) => {
                        self.state = SmtpState::AuthPlain;
                        conn.send(b"334 \r\n")?;
                    }
                    ("LOGIN", Some(ir)) => {
                        let user = String::from_utf8_lossy(&B64.decode(ir).unwrap_or_default())
                            .into_owned();
                        self.state = SmtpState::AuthLoginPass(user);
                        conn.send(b"334 UGFzc3dvcmQ6\r\n")?;
                    }
                    ("LOGIN", None) => {
                        self.state = SmtpState::AuthLoginUser;
                        conn.send(b"334 VXNlcm5hbWU6\r\n")?;
                    }
                    _ => conn.send(b"504 5.5.4 Unrecognized authentication type\r\n")?,
                }
            }
            "MAIL" => conn.send(b"250 2.1.0 Ok\r\n")?,
            "RCPT" => conn.send(b"250 2.1.5 Ok\r\n")?,
            "DATA" => {
                self.state = SmtpState::Data(Vec::new());
                conn.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            }
            "RSET" | "NOOP" => conn.send(b"250 2.0.0 Ok\r\n")?,
            "QUIT" => {
                conn.send(b"221 2.0.0 Bye\r\n")?;
                return Ok(Flow::Close);
            }
            _ => conn.send(b"500 5.5.2 Error: command not recognized\r\n")?,
        }
        Ok(Flow::Continue)
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// Which leaf certificate a TLS server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// SAN localhost + 127.0.0.1, currently valid, signed by the test CA.
    Good,
    /// SAN localhost + 127.0.0.1, signed by the test CA, validity ended in the past.
    Expired,
    /// SAN wrong.example.invalid only, signed by the test CA.
    WrongName,
    /// Valid for localhost + 127.0.0.1, signed by the test CA, but its subject CN and O carry
    /// terminal escape sequences (ESC, BEL, CSI/OSC) — for output-sanitising tests.
    Hostile,
}

struct LeafMaterial {
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A throw-away PKI: one CA and three leaves, CA PEM written to a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
    /// Path to the CA certificate PEM (for `--ca-file`).
    pub ca_file: PathBuf,
    ca_der: Vec<u8>,
    good: LeafMaterial,
    expired: LeafMaterial,
    wrong_name: LeafMaterial,
    hostile: LeafMaterial,
    /// A client certificate (CN client.example, issued by the CA) for `--cert`.
    pub client_cert: PathBuf,
    /// Its key (mode 0600) for `--key`.
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates fresh keys and certificates.
    pub fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        // A unique CA name per Pki, so two test CAs never look like the same issuer.
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ca_name = format!(
            "smtptui test CA {}-{seq}-{}",
            std::process::id(),
            now.unix_timestamp_nanos()
        );
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "smtptui tests");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = now - day * 30;
        ca_params.not_after = now + day * 3650;
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA self-sign");
        let issuer = Issuer::new(ca_params, ca_key);

        let make_leaf = |sans: Vec<String>,
                         not_before: time::OffsetDateTime,
                         not_after: time::OffsetDateTime,
                         cn: &str,
                         org: Option<&str>| {
            let key = KeyPair::generate().expect("leaf key");
            let mut p = CertificateParams::new(sans).expect("leaf params");
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, cn);
            if let Some(o) = org {
                p.distinguished_name.push(DnType::OrganizationName, o);
            }
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p.use_authority_key_identifier_extension = true;
            p.not_before = not_before;
            p.not_after = not_after;
            let cert = p.signed_by(&key, &issuer).expect("leaf sign");
            LeafMaterial {
                cert_der: cert.der().to_vec(),
                key_der: key.serialize_der(),
            }
        };
        let local = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let good = make_leaf(local.clone(), now - day, now + day * 365, "localhost", None);
        let expired = make_leaf(
            local.clone(),
            now - day * 400,
            now - day * 30,
            "localhost",
            None,
        );
        let wrong_name = make_leaf(
            vec!["wrong.example.invalid".to_string()],
            now - day,
            now + day * 365,
            "wrong.example.invalid",
            None,
        );
        let hostile = make_leaf(
            local,
            now - day,
            now + day * 365,
            "evil\u{1b}]0;pwned\u{7}\u{1b}[31mred",
            Some("org\u{1b}[2J\u{1b}[H\u{7}"),
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA PEM");
        let client_key_pair = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "client.example");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.not_before = now - day;
        client_params.not_after = now + day * 365;
        let client = client_params
            .signed_by(&client_key_pair, &issuer)
            .expect("client sign");
        let client_cert = dir.path().join("client.pem");
        std::fs::write(&client_cert, client.pem()).expect("write client cert");
        let client_key = dir.path().join("client.key");
        std::fs::write(&client_key, client_key_pair.serialize_pem()).expect("write client key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&client_key, std::fs::Permissions::from_mode(0o600))
                .expect("chmod client key");
        }
        Pki {
            dir,
            ca_file,
            ca_der: ca_cert.der().to_vec(),
            good,
            expired,
            wrong_name,
            hostile,
            client_cert,
            client_key,
        }
    }

    /// `--ca-file` argument value.
    pub fn ca_arg(&self) -> String {
        self.ca_file.to_string_lossy().into_owned()
    }

    /// A rustls server config presenting `leaf` (chain: leaf, CA).
    pub fn server_config(&self, leaf: Leaf) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let m = match leaf {
            Leaf::Good => &self.good,
            Leaf::Expired => &self.expired,
            Leaf::WrongName => &self.wrong_name,
            Leaf::Hostile => &self.hostile,
        };
        let chain = vec![
            CertificateDer::from(m.cert_der.clone()),
            CertificateDer::from(self.ca_der.clone()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(m.key_der.clone()));
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
        Arc::new(cfg)
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The temp dir holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smtptui")
}

/// A headless `smtptui run` invocation.
pub struct Run {
    scenario: String,
    target: String,
    args: Vec<String>,
    password_env: Option<String>,
    file_name: String,
    dir: tempfile::TempDir,
}

/// Result of one run.
pub struct Outcome {
    /// Exit code (`None` if killed by a signal or by the hard deadline).
    pub code: Option<i32>,
    /// True if the harness had to kill the binary at [`RUN_DEADLINE`].
    pub killed: bool,
    /// Raw stdout bytes.
    pub stdout_bytes: Vec<u8>,
    /// Raw stderr bytes.
    pub stderr_bytes: Vec<u8>,
    /// Lossy stdout.
    pub stdout: String,
    /// Lossy stderr.
    pub stderr: String,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The scenario file that was run.
    pub scenario_path: PathBuf,
    /// Command line, for diagnostics.
    pub cmdline: String,
    dir: tempfile::TempDir,
}

impl Run {
    /// A run of `scenario` (file contents) against `target` (`HOST[:PORT]`).
    pub fn new(scenario: &str, target: &str) -> Run {
        Run {
            scenario: scenario.to_string(),
            target: target.to_string(),
            args: Vec::new(),
            password_env: None,
            file_name: "scenario.smtp".into(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The temp dir the binary will run in (also where the scenario is written).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds `--transcript DIR/transcript.txt` and returns the builder and that path.
    pub fn transcript(self) -> (Run, PathBuf) {
        let path = self.dir.path().join("transcript.txt");
        let run = self.arg("--transcript").arg(path.to_string_lossy());
        (run, path)
    }

    /// Appends command-line options.
    pub fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// Appends one option.
    pub fn arg(mut self, a: impl AsRef<str>) -> Run {
        self.args.push(a.as_ref().to_string());
        self
    }

    /// `--user USER` and `SMTPTUI_PASSWORD=PASSWORD`.
    pub fn creds(self) -> Run {
        self.args(["--user", USER]).password_env(PASSWORD)
    }

    /// Sets `SMTPTUI_PASSWORD`.
    pub fn password_env(mut self, pw: &str) -> Run {
        self.password_env = Some(pw.to_string());
        self
    }

    /// Scenario file name (default `scenario.smtp`).
    pub fn file_name(mut self, name: &str) -> Run {
        self.file_name = name.to_string();
        self
    }

    /// Runs the binary, bounded by [`RUN_DEADLINE`].
    pub fn run(self) -> Outcome {
        let dir = self.dir;
        let scenario_path = dir.path().join(&self.file_name);
        std::fs::write(&scenario_path, &self.scenario).expect("write scenario");

        let mut argv: Vec<String> = vec![
            "run".into(),
            scenario_path.to_string_lossy().into_owned(),
            self.target.clone(),
        ];
        argv.extend(self.args.iter().cloned());
        if !self
            .args
            .iter()
            .any(|a| a == "--timeout" || a.starts_with("--timeout="))
        {
            argv.push("--timeout".into());
            argv.push("2".into());
        }
        let cmdline = format!("smtptui {}", argv.join(" "));

        let mut cmd = Command::new(bin());
        cmd.args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("SMTPTUI_PASSWORD")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .current_dir(dir.path());
        if let Some(pw) = &self.password_env {
            cmd.env("SMTPTUI_PASSWORD", pw);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn smtptui");
        let mut out = child.stdout.take().expect("stdout pipe");
        let mut err = child.stderr.take().expect("stderr pipe");
        let t_out = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let t_err = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let mut killed = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {
                    if start.elapsed() > RUN_DEADLINE {
                        let _ = child.kill();
                        killed = true;
                        break child.wait().ok();
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break None,
            }
        };
        let elapsed = start.elapsed();
        let stdout_bytes = join_bounded(t_out);
        let stderr_bytes = join_bounded(t_err);
        let outcome = Outcome {
            code: status.and_then(|s| s.code()),
            killed,
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stderr: String::from_utf8_lossy(&stderr_bytes).into_owned(),
            stdout_bytes,
            stderr_bytes,
            elapsed,
            scenario_path,
            cmdline,
            dir,
        };
        // SMTPTUI_TEST_SHOW=1 cargo test -- --nocapture: print every run.
        if std::env::var_os("SMTPTUI_TEST_SHOW").is_some() {
            eprintln!("{}", outcome.dump());
        }
        outcome
    }
}

fn join_bounded(h: JoinHandle<Vec<u8>>) -> Vec<u8> {
    let start = Instant::now();
    while !h.is_finished() && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(10));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        b"<output pipe still open after exit>".to_vec()
    }
}

impl Outcome {
    /// stdout + stderr.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Diagnostic dump.
    pub fn dump(&self) -> String {
        format!(
            "$ {}\nexit={:?} killed={} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.cmdline, self.code, self.killed, self.elapsed, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert!(
            !self.killed,
            "smtptui hung and was killed after {RUN_DEADLINE:?}\n{}",
            self.dump()
        );
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit status\n{}",
            self.dump()
        );
        self
    }

    /// Case-insensitive search in stdout+stderr.
    pub fn has(&self, needle: &str) -> bool {
        self.combined()
            .to_lowercase()
            .contains(&needle.to_lowercase())
    }

    /// Asserts stdout+stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.has(needle),
            "output does not contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stdout+stderr does not contain `needle` (case-insensitive).
    #[track_caller]
    pub fn assert_not_contains(&self, needle: &str) -> &Self {
        assert!(
            !self.has(needle),
            "output unexpectedly contains {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stdout (and stderr) contain no form of the test credentials.
    #[track_caller]
    pub fn assert_no_credentials(&self) -> &Self {
        assert_no_credentials(&self.stdout_bytes, USER, PASSWORD, "stdout");
        assert_no_credentials(&self.stderr_bytes, USER, PASSWORD, "stderr");
        self
    }

    /// Asserts that stdout holds at least one line and that every non-blank line is a JSON
    /// object.
    #[track_caller]
    pub fn assert_json_lines(&self) -> &Self {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            !lines.is_empty(),
            "no JSON events on stdout\n{}",
            self.dump()
        );
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("stdout line is not JSON ({e}): {l:?}\n{}", self.dump())
            });
            assert!(
                v.is_object(),
                "JSON event is not an object: {l}\n{}",
                self.dump()
            );
        }
        self
    }

    /// True if the output names line `n` of the scenario: `line N`, `line: N`, `FILE:N`
    /// (N not followed by another digit).
    pub fn names_line(&self, n: usize) -> bool {
        let text = self.combined().to_lowercase();
        let file = self
            .scenario_path
            .file_name()
            .map(|f| f.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let patterns = [
            format!("line {n}"),
            format!("line: {n}"),
            format!("line:{n}"),
            format!("{file}:{n}"),
        ];
        patterns.iter().any(|p| {
            text.match_indices(p.as_str()).any(|(i, _)| {
                !text[i + p.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        })
    }

    /// True if the output names the scenario file (full path or file name).
    pub fn names_file(&self) -> bool {
        let file = self
            .scenario_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.combined().contains(&file)
    }

    /// The temp dir the binary ran in (scenario lives here; put transcripts here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------------------------------------
// A table of runs
// ---------------------------------------------------------------------------------------------

/// The server a [`Case`] runs against.
#[derive(Clone, Copy)]
pub enum Serve {
    /// The ordinary dialogue ([`Smtp`]) as the row configures it; it gets the row's [`Pki`] for
    /// its certificates.
    Script(fn(&Pki) -> Smtp),
    /// Any other server: raw bytes, a reply that never ends, a server that says nothing.
    Custom(fn() -> Server),
    /// Nothing listens: the port was bound, then released.
    Nobody,
}

impl Serve {
    /// The ordinary dialogue in cleartext (STARTTLS advertised, no certificate to offer).
    pub const PLAIN: Serve = Serve::Script(|_| Smtp::default());
    /// The ordinary dialogue with STARTTLS and the good certificate.
    pub const TLS: Serve = Serve::Script(|pki| Smtp::with_cert(pki, Leaf::Good));
}

/// How the run is told to verify the server's certificate.
#[derive(Clone, Copy)]
pub enum Verify {
    /// No TLS option at all.
    System,
    /// `--ca-file` with the row's CA, and `--servername localhost`.
    Ca,
    /// `--servername localhost` only: the row's CA is unknown to the run.
    UnknownCa,
    /// `--ca-file` with the row's CA, and `--servername NAME`.
    CaNaming(&'static str),
}

/// The credentials the run is given.
#[derive(Clone, Copy)]
pub enum Creds {
    /// Neither `--user` nor a password.
    NoUser,
    /// `--user USER` and `$SMTPTUI_PASSWORD` ([`Run::creds`]).
    EnvPassword,
    /// `--user USER` and `--password-file` naming a file that holds the password.
    PasswordFile,
    /// `--cert` and `--key` with the row's client certificate, and no password.
    ClientCert,
}

/// A fact a row checks besides its exit status, its texts and the invariants of every row.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// No AUTH line crossed, in cleartext or inside TLS, the server saw no SASL exchange, and
    /// no credential form is in any byte it received.
    NoAuth,
    /// The server received the test credentials once, inside TLS, and no AUTH in cleartext.
    AuthInsideTls,
    /// The server received these credentials (an inline blob) once, inside TLS, and no AUTH
    /// in cleartext.
    AuthInsideTlsAs(&'static str, &'static str),
    /// The server received the test credentials once, in cleartext, by AUTH PLAIN.
    AuthInCleartext,
    /// This many SASL exchanges reached the server.
    AuthAttempts(usize),
    /// The PLAIN response of the test credentials crossed inside TLS exactly once.
    PlainResponseOnceInsideTls,
    /// No TLS was started.
    NoTls,
    /// A TLS handshake completed.
    Handshake,
    /// STARTTLS crossed in cleartext.
    StarttlsInCleartext,
    /// Nothing crossed in cleartext after STARTTLS.
    NothingAfterStarttls,
    /// No EHLO in cleartext right after STARTTLS: the session did not fall back.
    NoEhloAfterStarttls,
    /// Not one byte crossed in cleartext (implicit TLS).
    NothingInCleartext,
    /// EHLO was sent inside TLS: the session went on.
    EhloInsideTls,
    /// No EHLO inside TLS: the session stopped before.
    NoEhloInsideTls,
    /// The server received exactly one message, with these lines (dot-stuffed, as received).
    Message(&'static [&'static str]),
    /// This text (any case) is in no byte the server received, cleartext or TLS.
    NotReceived(&'static str),
    /// This text (any case) is in no byte the server received in cleartext.
    NotInCleartext(&'static str),
    /// The server received exactly this line inside TLS.
    LineInsideTls(&'static str),
    /// The output holds this text, in this case.
    SaysExactly(&'static str),
    /// The output holds one of these texts (any case).
    SaysOneOf(&'static [&'static str]),
    /// The output names this line of the scenario.
    NamesLine(usize),
    /// The output names the scenario file.
    NamesFile,
    /// This byte reaches neither stdout nor stderr.
    NoRawByte(u8),
    /// The run ended within this many seconds: a limit tripped before the timeout did.
    Within(u64),
}

/// One row of a table of `smtptui run` cases: the server's behaviour, the run, and what must
/// come of it. Start from [`Case::ROW`] and name what differs; a row that forgets its exit
/// status fails.
///
/// [`Case::check`] also checks, for every row:
/// * the run ended by itself (not killed at [`RUN_DEADLINE`]) with the row's exit status;
/// * no credential form on stdout or stderr, nor in the transcript file;
/// * no credential form in the bytes the server received in cleartext, unless the row passes
///   `--allow-cleartext-auth`;
/// * no raw ESC or BEL on stdout or stderr;
/// * a `PASS` verdict printed exactly when the exit status is 0;
/// * with `--json`, every line of stdout a JSON object, and at least one;
/// * with a transcript, the file written and holding the session.
#[derive(Clone, Copy)]
pub struct Case {
    /// How the server behaves.
    pub server: Serve,
    /// The scenario file's contents.
    pub scenario: &'static str,
    /// The scenario file's name.
    pub file: &'static str,
    /// How the run verifies certificates.
    pub verify: Verify,
    /// The credentials the run is given.
    pub creds: Creds,
    /// Further command-line options.
    pub args: &'static [&'static str],
    /// Whether the run writes a transcript file (`--transcript`).
    pub transcript: bool,
    /// The exit status.
    pub exit: i32,
    /// Texts the output (stdout and stderr) must hold, in any case.
    pub says: &'static [&'static str],
    /// Texts the output must not hold, in any case.
    pub never_says: &'static [&'static str],
    /// Lines the server must never receive: no received line starts with one of these.
    pub never_sent: &'static [&'static str],
    /// Further facts about what the server received and what the output shows.
    pub checks: &'static [Check],
}

impl Case {
    /// The empty row: the ordinary cleartext server, no TLS option, no credentials, and no
    /// exit status (every row names its own).
    pub const ROW: Case = Case {
        server: Serve::PLAIN,
        scenario: "",
        file: "scenario.smtp",
        verify: Verify::System,
        creds: Creds::NoUser,
        args: &[],
        transcript: false,
        exit: -1,
        says: &[],
        never_says: &[],
        never_sent: &[],
        checks: &[],
    };

    /// Runs the row and checks it, with the invariants of every row. Returns the run and what
    /// the server recorded, for a test that checks more.
    pub fn check(self) -> (Outcome, Recorded) {
        assert!(self.exit >= 0, "the row names no exit status");
        let pki = Pki::new();
        let server = match self.server {
            Serve::Script(smtp) => Some(Server::smtp(smtp(&pki))),
            Serve::Custom(server) => Some(server()),
            Serve::Nobody => None,
        };
        let target = match &server {
            Some(server) => server.target(),
            None => {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
                format!("127.0.0.1:{}", listener.local_addr().expect("addr").port())
            }
        };
        let mut run = Run::new(self.scenario, &target).file_name(self.file);
        run = match self.verify {
            Verify::System => run,
            Verify::Ca => run.args(["--ca-file", &pki.ca_arg(), "--servername", "localhost"]),
            Verify::UnknownCa => run.args(["--servername", "localhost"]),
            Verify::CaNaming(name) => run.args(["--ca-file", &pki.ca_arg(), "--servername", name]),
        };
        run = match self.creds {
            Creds::NoUser => run,
            Creds::EnvPassword => run.creds(),
            Creds::PasswordFile => {
                let file = run.dir().join("pw.txt");
                std::fs::write(&file, format!("{PASSWORD}\n")).expect("write password file");
                run.args(["--user", USER, "--password-file", &file.to_string_lossy()])
            }
            Creds::ClientCert => run.args([
                "--cert",
                &pki.client_cert.to_string_lossy(),
                "--key",
                &pki.client_key.to_string_lossy(),
            ]),
        };
        run = run.args(self.args);
        let (run, transcript) = if self.transcript {
            let (run, path) = run.transcript();
            (run, Some(path))
        } else {
            (run, None)
        };
        let out = run.run();
        let rec = server.map(Server::finish).unwrap_or_default();

        self.check_invariants(&out, &rec, transcript.as_deref());
        for text in self.says {
            out.assert_contains(text);
        }
        for text in self.never_says {
            out.assert_not_contains(text);
        }
        for line in self.never_sent {
            assert!(
                !rec.lines.iter().any(|(_, sent)| sent.starts_with(line)),
                "{line:?} reached the server: {}",
                rec.dump()
            );
        }
        for check in self.checks {
            check.check(&out, &rec);
        }
        (out, rec)
    }

    fn check_invariants(&self, out: &Outcome, rec: &Recorded, transcript: Option<&Path>) {
        out.assert_code(self.exit).assert_no_credentials();
        if !self.args.contains(&"--allow-cleartext-auth") {
            assert_no_credentials(&rec.plain, USER, PASSWORD, "cleartext bytes");
        }
        for byte in [0x1b, 0x07] {
            Check::NoRawByte(byte).check(out, rec);
        }
        let verdict = out
            .stderr
            .lines()
            .any(|line| line.starts_with("smtptui: PASS "));
        assert_eq!(
            verdict,
            self.exit == 0,
            "a PASS verdict must come with exit 0, and only with it\n{}",
            out.dump()
        );
        if self.args.contains(&"--json") {
            out.assert_json_lines();
        }
        if let Some(path) = transcript {
            let text = std::fs::read(path)
                .unwrap_or_else(|e| panic!("transcript {path:?} not written: {e}\n{}", out.dump()));
            assert!(
                find_ci(&text, b"EHLO").is_some(),
                "transcript lacks the session: {:?}",
                String::from_utf8_lossy(&text)
            );
            assert_no_credentials(&text, USER, PASSWORD, "transcript file");
        }
    }
}

impl Check {
    /// Checks this fact about a run and what its server recorded.
    #[track_caller]
    pub fn check(self, out: &Outcome, rec: &Recorded) {
        match self {
            Check::NoAuth => rec.assert_no_auth_anywhere(),
            Check::AuthInsideTls => Check::AuthInsideTlsAs(USER, PASSWORD).check(out, rec),
            Check::AuthInsideTlsAs(user, password) => {
                assert_eq!(
                    rec.auth,
                    vec![(user.to_string(), password.to_string(), true)],
                    "{}",
                    rec.dump()
                );
                assert!(
                    find_ci(&rec.plain, b"AUTH").is_none(),
                    "AUTH crossed in cleartext: {}",
                    rec.dump()
                );
            }
            Check::AuthInCleartext => {
                assert_eq!(
                    rec.auth,
                    vec![(USER.to_string(), PASSWORD.to_string(), false)],
                    "{}",
                    rec.dump()
                );
                assert!(
                    find_ci(&rec.plain, b"AUTH PLAIN").is_some(),
                    "{}",
                    rec.dump()
                );
            }
            Check::AuthAttempts(n) => assert_eq!(rec.auth.len(), n, "{}", rec.dump()),
            Check::PlainResponseOnceInsideTls => {
                let blob = plain_response();
                assert_eq!(
                    rec.tls
                        .windows(blob.len())
                        .filter(|w| *w == blob.as_bytes())
                        .count(),
                    1,
                    "the PLAIN response must cross once, inside TLS: {}",
                    rec.dump()
                );
            }
            Check::NoTls => assert!(!rec.tls_started, "no TLS expected: {}", rec.dump()),
            Check::Handshake => assert_eq!(rec.tls_handshake, Some(Ok(())), "{}", rec.dump()),
            Check::StarttlsInCleartext => {
                assert!(find_ci(&rec.plain, b"STARTTLS").is_some(), "{}", rec.dump());
            }
            Check::NothingAfterStarttls => assert!(
                rec.plain_after_starttls().is_empty(),
                "cleartext after STARTTLS: {}",
                rec.dump()
            ),
            Check::NoEhloAfterStarttls => assert!(
                !rec.plain_after_starttls().starts_with(b"EHLO"),
                "EHLO in cleartext after STARTTLS: {}",
                rec.dump()
            ),
            Check::NothingInCleartext => assert!(
                rec.plain.is_empty(),
                "implicit TLS: nothing should be cleartext: {}",
                rec.dump()
            ),
            Check::EhloInsideTls => assert!(
                find_ci(&rec.tls, b"EHLO").is_some(),
                "session did not continue inside TLS: {}",
                rec.dump()
            ),
            Check::NoEhloInsideTls => assert!(
                find_ci(&rec.tls, b"EHLO").is_none(),
                "client continued inside TLS: {}",
                rec.dump()
            ),
            Check::Message(lines) => {
                let got: Vec<Vec<String>> = rec
                    .messages
                    .iter()
                    .map(|m| {
                        m.iter()
                            .map(|l| String::from_utf8_lossy(l).into_owned())
                            .collect()
                    })
                    .collect();
                assert_eq!(got, vec![lines.to_vec()], "{}", rec.dump());
            }
            Check::NotReceived(text) => assert!(
                find_ci(&rec.all_bytes(), text.as_bytes()).is_none(),
                "{text} reached the server: {}",
                rec.dump()
            ),
            Check::LineInsideTls(line) => assert!(
                rec.lines.contains(&(true, line.to_owned())),
                "{line:?} was not received inside TLS: {}",
                rec.dump()
            ),
            Check::NotInCleartext(text) => assert!(
                find_ci(&rec.plain, text.as_bytes()).is_none(),
                "{text} crossed in cleartext: {}",
                rec.dump()
            ),
            Check::SaysExactly(text) => assert!(
                out.combined().contains(text),
                "output does not contain {text:?} in this case\n{}",
                out.dump()
            ),
            Check::SaysOneOf(texts) => assert!(
                texts.iter().any(|text| out.has(text)),
                "output contains none of {texts:?}\n{}",
                out.dump()
            ),
            Check::NamesLine(n) => assert!(
                out.names_line(n),
                "output should name scenario line {n}\n{}",
                out.dump()
            ),
            Check::NamesFile => assert!(
                out.names_file(),
                "output should name the scenario file\n{}",
                out.dump()
            ),
            Check::NoRawByte(byte) => {
                for (name, bytes) in [("stdout", &out.stdout_bytes), ("stderr", &out.stderr_bytes)]
                {
                    assert!(
                        !bytes.contains(&byte),
                        "raw byte {byte:#04x} on {name}\n{}",
                        out.dump()
                    );
                }
            }
            Check::Within(secs) => assert!(
                out.elapsed < Duration::from_secs(secs),
                "the run should end within {secs} s\n{}",
                out.dump()
            ),
        }
    }
}

/// One `#[test]` per row of a table of [`Case`]s: `name: Case { .. };`, each row's doc
/// comments and attributes kept on its test.
#[macro_export]
macro_rules! cases {
    ($($(#[$meta:meta])* $name:ident: $case:expr;)*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                $case.check();
            }
        )*
    };
}
