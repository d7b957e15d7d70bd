//! Measurements of the lab as a separate process, as a workshop runs it: the `smtptui lab`
//! binary under load from clients in this test process, its CPU time and memory read from
//! `/proc`. They print numbers and check only that every session succeeded (and, for the
//! simulated class of 30, that every verdict matched what its client did), so they are
//! ignored by default:
//!
//! ```sh
//! cargo test --release --test lab_perf -- --ignored --nocapture --test-threads 1
//! ```

#![allow(clippy::panic)] // panicking is how a test fails

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtptui::guard::GuardPolicy;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::proto::reply::ReplyLimits;
use smtptui::runner::{self, Outcome};
use smtptui::scenario::Scenario;
use smtptui::secret::{Credentials, Secret};
use smtptui::session::{SessionConfig, TlsMode, UnaskedReplies};
use smtptui::tls::TrustSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FULL_SESSION: &str = "S: 220\nC: EHLO load\nS: 250 STARTTLS\nC: STARTTLS\nS: 220\n\
C: EHLO load\nS: 250 AUTH\nC: AUTH PLAIN\nS: 235\nC: MAIL FROM:<student@lab.test>\nS: 250\n\
C: RCPT TO:<bob@lab.test>\nS: 250\nC: DATA\nS: 354\nC: Subject: load\nC:\nC: hello\nC: .\n\
S: 250\nC: QUIT\nS: 221\n";

/// A `smtptui lab` process serving the submission profile on a free loopback port.
struct LabProcess {
    child: Child,
    addr: std::net::SocketAddr,
    ca: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl LabProcess {
    fn start() -> LabProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_smtptui"))
            .args([
                "lab",
                "--profile",
                "submission",
                "--listen",
                "127.0.0.1:0",
                "--quiet",
                "--state-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lab");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut all = String::new();
            let mut buf = [0u8; 4096];
            let mut sent = false;
            // Keep draining so the lab never blocks on a full pipe.
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                if !sent
                    && let Some(addr) = all.lines().find_map(|line| {
                        let mut words = line.split_whitespace();
                        (words.next() == Some("submission"))
                            .then(|| words.next().map(str::to_owned))
                            .flatten()
                    })
                {
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the lab never printed its submission address");
        };
        let pem = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem");
        let ca = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("CA PEM");
        LabProcess {
            child,
            addr: addr.parse().expect("address"),
            ca,
            _dir: dir,
        }
    }

    fn config(&self) -> SessionConfig {
        SessionConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            tls_mode: TlsMode::StartTls,
            server_name: "localhost".to_owned(),
            trust: TrustSettings {
                extra_roots: vec![self.ca.clone()],
                continue_unverified: false,
                client_identity: None,
                roots: Default::default(),
            },
            policy: GuardPolicy::default(),
            timeout: Duration::from_secs(60),
            limits: ReplyLimits::default(),
            unasked: UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            transport: Default::default(),
        }
    }

    /// CPU time (user + system) the lab process has used so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// A `VmRSS` / `VmHWM` style value from /proc/PID/status, in kB.
    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .expect("status field")
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials() -> Credentials {
    Credentials {
        user: DEFAULT_USER.to_owned(),
        secret: Secret::new(DEFAULT_PASSWORD.to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn lab_process_cpu_per_full_session() {
    let lab = LabProcess::start();
    let scenario = Arc::new(Scenario::parse("load.smtp", FULL_SESSION).expect("parses"));
    let total = 3000;
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let cpu_before = lab.cpu();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let config = lab.config();
        let scenario = scenario.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _permit = slots.acquire_owned().await.expect("semaphore");
            runner::run(&scenario, config, Some(credentials()), Box::new(|_| {})).await
        });
    }
    let mut passed = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            Outcome::Passed { .. } => passed += 1,
            other => eprintln!("session failed: {other:?}"),
        }
    }
    let wall = started.elapsed();
    let cpu = lab.cpu() - cpu_before;
    assert_eq!(passed, total);
    println!(
        "lab process: {total} full sessions (STARTTLS, AUTH, one message) in {:.2} s wall \
         ({:.0} sessions/s with the clients on the same machine); lab CPU {:.2} s = {:.0} µs \
         per session ({:.0} sessions per CPU-second); peak RSS {} kB",
        wall.as_secs_f64(),
        f64::from(total) / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / f64::from(total),
        f64::from(total) / cpu.as_secs_f64().max(1e-9),
        lab.status_kb("VmHWM"),
    );
}

/// Reads until a line starting with `code` and a space, or panics after the deadline.
async fn read_reply<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, code: &str) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = String::from_utf8_lossy(&seen);
        if text.lines().any(|l| l.starts_with(&format!("{code} "))) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => seen.extend_from_slice(&buf[..n]),
            other => panic!("no {code} reply: {other:?} after {text:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn lab_process_memory_with_200_open_tls_sessions() {
    let lab = LabProcess::start();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(lab.ca.clone()).expect("CA");
    let config = rustls::ClientConfig::builder_with_provider(smtptui::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let idle_kb = lab.status_kb("VmRSS");
    let mut open = Vec::new();
    for _ in 0..200 {
        let mut tcp = TcpStream::connect(lab.addr).await.expect("connect");
        read_reply(&mut tcp, "220").await;
        tcp.write_all(b"EHLO mem\r\n").await.expect("write");
        read_reply(&mut tcp, "250").await;
        tcp.write_all(b"STARTTLS\r\n").await.expect("write");
        read_reply(&mut tcp, "220").await;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(b"EHLO mem\r\n").await.expect("write");
        read_reply(&mut tls, "250").await;
        open.push(tls);
    }
    let busy_kb = lab.status_kb("VmRSS");
    println!(
        "lab process resident memory: {idle_kb} kB idle, {busy_kb} kB with {} open TLS \
         sessions ({:.1} kB per session)",
        open.len(),
        (busy_kb.saturating_sub(idle_kb)) as f64 / open.len() as f64
    );
}

/// What the lab's verdict on a session must say, by the way its client behaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `ok: ...`
    Ok,
    /// `!  warning: ...`
    Warning,
    /// `!! ATTACK WORKED: ...`
    AttackWorked,
}

impl Expect {
    fn marker(self) -> &'static str {
        match self {
            Self::Ok => "ok: ",
            Self::Warning => "!  warning: ",
            Self::AttackWorked => "!! ATTACK WORKED: ",
        }
    }
}

/// A `smtptui lab --class 30` process with every listener a class uses, its log kept.
struct ClassLab {
    child: Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    addrs: std::collections::HashMap<String, std::net::SocketAddr>,
    ca: rustls::pki_types::CertificateDer<'static>,
    passwords: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl ClassLab {
    fn start() -> ClassLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_smtptui"));
        command
            .args(["lab", "--class", "30", "--state-dir"])
            .arg(dir.path());
        for profile in ["submission", "mx", "strip", "refuse-tls", "inject"] {
            command.args(["--listen", &format!("{profile}=127.0.0.1:0")]);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lab");
        let stdout = child.stdout.take().expect("stdout");
        let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.starts_with("Session log"))
        {
            assert!(Instant::now() < deadline, "the lab never printed its table");
            std::thread::sleep(Duration::from_millis(20));
        }
        let addrs = log
            .lock()
            .expect("log")
            .iter()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let profile = words.next()?;
                let addr = words.next()?.parse().ok()?;
                Some((profile.to_owned(), addr))
            })
            .collect();
        let pem = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem");
        let ca = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("CA PEM");
        let passwords = std::fs::read_to_string(dir.path().join("class-sheet.txt"))
            .expect("sheet")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                (words[0].to_owned(), words[2].to_owned())
            })
            .collect();
        ClassLab {
            child,
            log,
            addrs,
            ca,
            passwords,
            _dir: dir,
        }
    }

    fn addr(&self, profile: &str) -> std::net::SocketAddr {
        self.addrs[profile]
    }

    fn config(&self, profile: &str) -> SessionConfig {
        let addr = self.addr(profile);
        SessionConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls_mode: TlsMode::StartTls,
            server_name: "localhost".to_owned(),
            trust: TrustSettings {
                extra_roots: vec![self.ca.clone()],
                continue_unverified: false,
                client_identity: None,
                roots: Default::default(),
            },
            policy: GuardPolicy::default(),
            timeout: Duration::from_secs(60),
            limits: ReplyLimits::default(),
            unasked: UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
            sasl: Default::default(),
            transport: Default::default(),
        }
    }

    fn stat(&self, field: usize) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        rest.split_whitespace()
            .nth(field)
            .and_then(|f| f.parse().ok())
            .expect("stat field")
    }

    fn cpu(&self) -> Duration {
        Duration::from_millis((self.stat(11) + self.stat(12)) * 10)
    }

    fn peak_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for ClassLab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh EHLO name for one session of `id`: the student's ID as its first label (so the lab
/// counts it for them), then a number no other session has (so the test finds its verdict).
fn ehlo_name(id: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "{id}.s{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Runs a scenario with the engine.
async fn scripted(lab: &ClassLab, profile: &str, text: &str, credentials: Option<Credentials>) {
    let scenario = Scenario::parse("student.smtp", text).expect("parses");
    runner::run(
        &scenario,
        lab.config(profile),
        credentials,
        Box::new(|_| {}),
    )
    .await;
}

/// Reads one reply (the lines up to one with `code` and a space).
async fn reply<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, code: &str) {
    read_reply(stream, code).await;
}

/// A client that falls for strip (AUTH PLAIN in cleartext, a message) or refuse-tls (the
/// same after the 454), or for inject (inside TLS it sends AUTH right behind its EHLO, as if
/// the forged reply were the answer).
async fn falls_for(lab: &ClassLab, profile: &str, name: &str, id: &str, password: &str) {
    use base64::Engine as _;
    let mut tcp = TcpStream::connect(lab.addr(profile))
        .await
        .expect("connect");
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{id}@lab.test\0{password}"));
    reply(&mut tcp, "220").await;
    tcp.write_all(format!("EHLO {name}\r\n").as_bytes())
        .await
        .expect("write");
    reply(&mut tcp, "250").await;
    if profile == "inject" {
        tcp.write_all(b"STARTTLS\r\n").await.expect("write");
        reply(&mut tcp, "220").await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(lab.ca.clone()).expect("CA");
        let config = rustls::ClientConfig::builder_with_provider(smtptui::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server, tcp)
            .await
            .expect("handshake");
        tls.write_all(format!("EHLO {name}\r\nAUTH PLAIN {plain}\r\n").as_bytes())
            .await
            .expect("write");
        reply(&mut tls, "235").await;
        tls.write_all(b"QUIT\r\n").await.expect("write");
        reply(&mut tls, "221").await;
        return;
    }
    if profile == "refuse-tls" {
        tcp.write_all(b"STARTTLS\r\n").await.expect("write");
        reply(&mut tcp, "454").await;
    }
    for (line, code) in [
        (format!("AUTH PLAIN {plain}"), "235"),
        (format!("MAIL FROM:<{id}@lab.test>"), "250"),
        ("RCPT TO:<bob@lab.test>".to_owned(), "250"),
        ("DATA".to_owned(), "354"),
        ("Subject: x\r\n\r\nhi\r\n.".to_owned(), "250"),
        ("QUIT".to_owned(), "221"),
    ] {
        tcp.write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        reply(&mut tcp, code).await;
    }
}

/// An MX delivery in cleartext with three pipelined RCPTs, as swaks --pipeline sends it.
async fn pipelined_delivery(lab: &ClassLab, name: &str, id: &str) {
    let mut tcp = TcpStream::connect(lab.addr("mx")).await.expect("connect");
    reply(&mut tcp, "220").await;
    tcp.write_all(format!("EHLO {name}\r\n").as_bytes())
        .await
        .expect("write");
    reply(&mut tcp, "250").await;
    tcp.write_all(
        format!(
            "MAIL FROM:<{id}@lab.test>\r\nRCPT TO:<a@lab.test>\r\nRCPT TO:<b@lab.test>\r\nRCPT TO:<c@lab.test>\r\nDATA\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    reply(&mut tcp, "354").await;
    tcp.write_all(b"Subject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        .await
        .expect("write");
    reply(&mut tcp, "221").await;
}

/// One student's round: five to seven sessions of what a workshop asks, each with the verdict
/// its client's behaviour must get, by the session's EHLO name.
async fn student_round(lab: Arc<ClassLab>, n: usize) -> Vec<(String, Expect)> {
    let (id, password) = lab.passwords[n - 1].clone();
    let credentials = Credentials {
        user: format!("{id}@lab.test"),
        secret: Secret::new(password.clone()),
    };
    let mut sessions = Vec::new();
    let name = ehlo_name(&id);
    let full = FULL_SESSION.replace("EHLO load", &format!("EHLO {name}"));
    scripted(&lab, "submission", &full, Some(credentials)).await;
    sessions.push((name, Expect::Ok));
    let name = ehlo_name(&id);
    let size = format!(
        "S: 220\nC: EHLO {name}\nS: 250 SIZE\nC: MAIL FROM:<{id}@lab.test> SIZE=99999999\nS: 552 5.3.4\nC: QUIT\nS: 221\n"
    );
    scripted(&lab, "mx", &size, None).await;
    sessions.push((name, Expect::Ok));
    let name = ehlo_name(&id);
    let first = format!(
        "S: 220\nC: EHLO {name}\nS: 250\nC: MAIL FROM:<{id}@lab.test>\nS: 530 5.7.0\nC: QUIT\nS: 221\n"
    );
    scripted(&lab, "submission", &first, None).await;
    sessions.push((name, Expect::Ok));
    let name = ehlo_name(&id);
    pipelined_delivery(&lab, &name, &id).await;
    sessions.push((name, Expect::Warning));
    let name = ehlo_name(&id);
    if n % 2 == 1 {
        falls_for(&lab, "strip", &name, &id, &password).await;
        sessions.push((name, Expect::AttackWorked));
    } else {
        // A client that requires STARTTLS stops at the 454.
        let resist = format!("S: 220\nC: EHLO {name}\nS: 250 STARTTLS\nC: STARTTLS\nS: 220\n");
        scripted(&lab, "refuse-tls", &resist, None).await;
        sessions.push((name, Expect::Ok));
    }
    if n.is_multiple_of(4) {
        let name = ehlo_name(&id);
        falls_for(&lab, "inject", &name, &id, &password).await;
        sessions.push((name, Expect::AttackWorked));
    }
    if n.is_multiple_of(3) {
        let name = ehlo_name(&id);
        falls_for(&lab, "refuse-tls", &name, &id, &password).await;
        sessions.push((name, Expect::AttackWorked));
    }
    sessions
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn class_of_30_simulated() {
    const ROUNDS: usize = 4;
    let lab = Arc::new(ClassLab::start());
    let cpu_before = lab.cpu();
    let started = Instant::now();
    let mut students = tokio::task::JoinSet::new();
    for n in 1..=30 {
        let lab = lab.clone();
        students.spawn(async move {
            let mut all = Vec::new();
            for _ in 0..ROUNDS {
                all.extend(student_round(lab.clone(), n).await);
            }
            all
        });
    }
    let mut expected: std::collections::HashMap<String, Expect> = std::collections::HashMap::new();
    while let Some(sessions) = students.join_next().await {
        expected.extend(sessions.expect("student task"));
    }
    let wall = started.elapsed();
    // Every verdict is in the log once its session ended.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = lab.log.lock().expect("log").clone();
        let count = log.iter().filter(|l| l.contains(" VERDICT ")).count();
        if count >= expected.len() {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "{count} verdicts of {}",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu = lab.cpu() - cpu_before;
    // Session P#N: its client by its first EHLO name, its verdict from the VERDICT line.
    let mut name_of = std::collections::HashMap::new();
    let mut verdict_of = std::collections::HashMap::new();
    for line in &log {
        let mut words = line.split_whitespace().skip(1);
        let Some(session) = words.next().filter(|w| w.contains('#')) else {
            continue;
        };
        if let Some((_, name)) = line.split_once(" C: EHLO ") {
            name_of
                .entry(session.to_owned())
                .or_insert_with(|| name.to_owned());
        } else if let Some((_, verdict)) = line.split_once(" VERDICT ") {
            verdict_of.insert(session.to_owned(), verdict.to_owned());
        }
    }
    let mut matched = std::collections::BTreeMap::<&str, usize>::new();
    for (session, verdict) in &verdict_of {
        let name = name_of.get(session).unwrap_or_else(|| {
            let lines: Vec<&String> = log
                .iter()
                .filter(|l| l.contains(&format!(" {session} ")))
                .collect();
            panic!("{session} said no EHLO: {lines:#?}")
        });
        let expect = expected[name];
        assert!(
            verdict.starts_with(expect.marker()),
            "{session} ({name}) should be {expect:?}: {verdict}"
        );
        *matched.entry(expect.marker().trim()).or_default() += 1;
    }
    assert_eq!(verdict_of.len(), expected.len());
    let attacks = log
        .iter()
        .filter(|l| l.contains("CLASS !! ") && l.contains("attack worked"))
        .count();
    assert_eq!(
        attacks,
        matched.get("!! ATTACK WORKED:").copied().unwrap_or(0),
        "feed entries"
    );
    let total = expected.len() as f64;
    println!(
        "class of 30 (lab process, {ROUNDS} rounds each): {} sessions in {:.2} s wall = {:.0} sessions/s \
         with the clients on the same machine (the inject profile holds its reply 1 s); lab CPU {:.2} s \
         = {:.0} µs per session; peak RSS {} kB; every verdict matched its client: {:?}",
        expected.len(),
        wall.as_secs_f64(),
        total / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / total,
        lab.peak_kb(),
        matched,
    );
}
