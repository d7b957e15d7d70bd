//! Measurements of the lab as a separate process, as a workshop runs it: the `smtptui lab`
//! binary under load from clients in this test process, its CPU time and memory read from
//! `/proc`. They print numbers and check only that every session succeeded, so they are
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
            },
            policy: GuardPolicy::default(),
            timeout: Duration::from_secs(60),
            limits: ReplyLimits::default(),
            unasked: UnaskedReplies::Fatal,
            known_secrets: Vec::new(),
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
