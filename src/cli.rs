//! Command-line interface definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// smtptui: a safer telnet for SMTP.
///
/// Talk SMTP by hand or by script, see every reply parsed and the TLS state of every line, and
/// never send a password in cleartext by accident: AUTH is refused on a connection without
/// verified TLS unless you explicitly allow it.
#[derive(Debug, Parser)]
#[command(name = "smtptui", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Open the interactive terminal UI on HOST[:PORT] (port 25 by default), or on @NAME, a
    /// server of the config file.
    pub target: Option<String>,

    /// Connection options for the interactive UI (the same as for `smtptui run`).
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Open the UI with this scenario loaded in step mode: each Enter on an empty line sends
    /// its next line and checks the expected reply.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Leave right after the first frame is drawn (for measuring start-up time).
    #[arg(long, hide = true)]
    pub exit_after_first_frame: bool,
}

/// Arguments of `smtptui demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the scripted session as text instead of opening the UI (automatic when stdout
    /// is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Leave right after the first frame is drawn (for measuring start-up time).
    #[arg(long, hide = true)]
    pub exit_after_first_frame: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay .smtp scenarios headless and check every expected reply (for CI).
    ///
    /// One scenario: prints the transcript (one event per line, each marked plain or tls) and
    /// exits 0 when every expectation was met, 1 when one failed, 2 on a usage or scenario
    /// syntax error, 3 on a connection, TLS, timeout or protocol failure (response injection
    /// included), 4 when the credential guard refused to send credentials. Several scenarios
    /// (or a directory of them): a line each and a tally, the transcripts of those that did
    /// not pass, and the exit status of the first one (in the order given) that did not pass.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Compare two transcripts of `smtptui run` (text or --json) and show what changed in the
    /// server's behaviour: extensions added, removed or changed, TLS and certificates, reply
    /// codes and texts, commands answered on one side only. Times, queue ids, dates and
    /// session ids are ignored. Exits 0 when nothing changed, 1 when something did, 2 when a
    /// file cannot be read as a transcript.
    #[command(after_help = DIFF_EXAMPLES)]
    Diff(DiffArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff; `man -l` shows it), or write one page per command into a
    /// directory with --dir.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
    /// List the scenarios built into smtptui, or print one (to keep and edit as a file).
    ///
    /// `smtptui run NAME HOST` runs a built-in scenario by its name, or by any prefix that
    /// names only one.
    Scenarios(ScenariosArgs),
    /// Start the embedded practice server for a workshop: every profile in one process (on
    /// loopback, or every interface), one CA, a workshop account, and a session log to
    /// project that ends each session with a verdict on what the client did.
    #[command(after_help = LAB_EXAMPLES)]
    Lab(LabArgs),
    /// Show a student's exercises and progress on a lab (`smtptui lab --class`): asks the
    /// lab with its own command XEXERCISES on a short session (EHLO ID, XEXERCISES, QUIT)
    /// that carries no credential. Exits 0 with the list, 2 on a usage error, 3 when the lab
    /// cannot be reached or the server is no smtptui lab.
    #[command(name = "lab-status", after_help = LAB_STATUS_EXAMPLES)]
    LabStatus(LabStatusArgs),
    /// Start the practice server in-process and open the UI on it, to replay by hand the
    /// credential guard stopping AUTH before STARTTLS, then STARTTLS, AUTH and a message.
    /// With --headless (or when stdout is not a terminal) the same story runs scripted.
    Demo(DemoArgs),
    /// Audit a mail domain (will mail to it stay encrypted: MX, DNSSEC, DANE, what each kind
    /// of sender does), or one server's TLS and AUTH posture, judged by the port's role (MX
    /// or submission), with the configuration change that fixes each finding.
    ///
    /// A server's probes: greeting and EHLO; whether AUTH is advertised and accepted before TLS (probed
    /// with AUTH LOGIN cancelled by '*': no credential is ever sent); whether MAIL needs TLS;
    /// the STARTTLS handshake, certificate chain, name, expiry and key; EHLO inside TLS;
    /// STARTTLS command injection; implicit TLS on 465 for submission; with --smuggling-to,
    /// SMTP smuggling. Exits 0 with no failure, 1 with at least one, 2 on a usage error, 3
    /// when the server cannot be reached.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Send one message from the command line, as swaks does: the message (headers, body,
    /// attachments as MIME) and the session (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT) are
    /// built as a scenario and run as `smtptui run` runs one, with the same guard, transcript
    /// and exit codes. --print-scenario prints that scenario instead, to keep and replay.
    #[command(after_help = SEND_EXAMPLES)]
    Send(Box<SendArgs>),
    /// Put a server under load: replay one scenario in many concurrent sessions (the same
    /// engine, guard and expectations as `smtptui run`), with the rate, each step's latency
    /// percentiles (connect, greeting, TLS, AUTH, message, QUIT), a histogram and the failures
    /// grouped by reply. A live screen while it runs on a terminal (a line a second on stderr
    /// otherwise), then a summary (text, or JSON with --json). Exits 0 when every session passed, else the status `smtptui run`
    /// gives the first session that did not, 2 on a usage error, 130 when stopped by hand.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(Box<BenchArgs>),
}

const BENCH_EXAMPLES: &str = "\
Examples:
  smtptui bench submission 127.0.0.1:587 --user alice --password-file pw -c 20 -n 10000
  smtptui bench load.smtp 127.0.0.1:25 --duration 30s --json > summary.json
  smtptui bench mx-starttls mail.example.com:25 --allow-remote -c 5 -n 50
";

/// `smtptui bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The scenario: a .smtp file, `-` for standard input, or a built-in name.
    pub scenario: String,
    /// The server: HOST[:PORT], or @NAME from the config file. Loopback only unless
    /// --allow-remote is given.
    pub target: String,
    /// Connection options.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Sessions open at once (at most 1000).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// Sessions in all (at most 1,000,000; with --duration and no -n, that many at most).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sessions: Option<u64>,
    /// Start sessions for this long (at most 1h: 30s, 5m), then let those open finish.
    #[arg(long, value_name = "DURATION", value_parser = parse_bench_duration)]
    pub duration: Option<Duration>,
    /// Put load on a server that is not on this machine (not loopback): only on a server you
    /// run or have permission to load.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No live screen on a terminal: a progress line a second on stderr instead (as when
    /// stdout is not a terminal).
    #[arg(long)]
    pub no_tui: bool,
    /// Neither the live screen nor progress lines: only the summary at the end.
    #[arg(long)]
    pub quiet: bool,
}

/// A --duration for `bench`: as [`parse_timeout`], from 1 ms up to an hour.
fn parse_bench_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_timeout(text)?;
    if duration.is_zero() || duration > Duration::from_secs(3600) {
        return Err(format!(
            "{text}: give a duration from 1ms up to 1h (60m), e.g. 30s or 5m"
        ));
    }
    Ok(duration)
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  smtptui audit example.com                    # the domain: every MX, DNSSEC, DANE, senders
  smtptui audit mx.example.com:25              # one server on port 25: judged as an MX
  smtptui audit mail.example.com:587           # judged as submission; also tries 465
  smtptui audit 127.0.0.1:2600 --role submission --ca-file ca.pem --servername localhost
  smtptui audit example.test --resolver 127.0.0.1:53 --trust-anchor root.key --ca-file ca.pem
  smtptui audit mail.example.com:587 --json --transcript audit.txt
  smtptui audit mx.example.com:25 --smuggling-to postmaster@example.com   # sends 4 test messages

A name without a port is a domain (--domain says so explicitly); a port or an IP address is
one server. The domain audit resolves the MX records (a null MX, or none and the domain's own
address as the implicit MX), validates DNSSEC itself from the root's trust anchor (or
--trust-anchor), probes every MX address on port 25 at once, matches TLSA records against each
certificate chain, and prints one row per address with what an opportunistic, a DANE-enforcing
and an MTA-STS-enforcing sender would do; it exits 1 when a sender enforcing the domain's own
policy would defer mail.

The role decides the verdicts of a server audit: an MX must accept mail without TLS (STARTTLS offered, not
required), a submission port must not take AUTH or mail before TLS. Port 25 is an MX, 587 and
465 are submission; on other ports give --role, or the role is submission when the server
advertises AUTH and mx otherwise (the report says which and why).";

/// Arguments of `smtptui audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A domain (a name without a port: every MX of it), or one server: HOST:PORT, an IP
    /// address, or a name with a server option (--role, --tls, --servername,
    /// --implicit-port, --no-implicit, --smuggling-to); port 25 by default (587 with --role
    /// submission).
    pub target: String,
    /// Audit TARGET as a mail domain, even where it could be read as one server.
    #[arg(long)]
    pub domain: bool,
    /// Domain audit: send DNS queries to this resolver (ADDR:PORT, or ADDR for port 53)
    /// instead of the system's. Answers are validated here, whatever the resolver says.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_resolver)]
    pub resolver: Option<std::net::SocketAddr>,
    /// Domain audit: DNSSEC trust anchors, DNSKEY records in zone-file form, instead of the
    /// root's built-in anchor (for private or test zones).
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Domain audit: the most the whole probe of one MX address may take (each step also
    /// has --timeout): seconds, or with a unit.
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub mx_deadline: Duration,
    /// Domain audit: judge the domain's own outbound server from this grade report (written
    /// by `smtptui lab --profile grade --grade-report FILE` after the server delivered to it):
    /// which smtp_tls_security_level it behaved like.
    #[arg(long, value_name = "FILE")]
    pub sending_report: Option<PathBuf>,
    /// What the port is for; inferred from the port (25 mx; 587, 465 submission) or, on other
    /// ports, from whether the server advertises AUTH.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// How TLS starts: auto is implicit TLS on port 465 and STARTTLS elsewhere.
    #[arg(long, value_enum, default_value_t = TlsChoice::Auto)]
    pub tls: TlsChoice,
    /// Where to check implicit TLS (RFC 8314); default 465 when the server is judged as
    /// submission. Nothing listening there is information, not a failure.
    #[arg(long, value_name = "PORT", conflicts_with = "no_implicit")]
    pub implicit_port: Option<u16>,
    /// Do not check implicit TLS on another port.
    #[arg(long)]
    pub no_implicit: bool,
    /// Also probe for SMTP smuggling: send real test messages to ADDRESS, one per
    /// non-standard end-of-data sequence (<LF>.<LF>, <LF>.<CR><LF>, <CR><LF>.<LF>,
    /// <CR>.<CR>) with harmless commands behind it, and report which ones the server takes
    /// for the end of a message. Give an address this server receives mail for; no
    /// credential is sent, so a port that wants AUTH before mail cannot be probed.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_smuggling_to)]
    pub smuggling_to: Option<smtptui::audit::smuggling::Recipient>,
    /// PEM file with extra trusted CA certificates (added to the built-in web roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Name for SNI and certificate verification (default: the host you typed).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Deadline for each reply, the connection and the TLS handshake: seconds, or with a
    /// unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also write the (redacted) transcript of every probe session to this file.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,
    /// Server audit: offer only these TLS versions and suites, to learn whether the server
    /// takes them (a handshake it refuses is a finding).
    #[command(flatten)]
    pub tls_offer: TlsOfferArgs,
}

/// Parses `--smuggling-to`: a mail address, checked before anything is sent.
///
/// # Errors
/// What is wrong with the address and the form wanted.
pub fn parse_smuggling_to(text: &str) -> Result<smtptui::audit::smuggling::Recipient, String> {
    smtptui::audit::smuggling::Recipient::parse(text)
}

/// Parses `--resolver`: `ADDR:PORT`, `[V6]:PORT`, or a bare address for port 53.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_resolver(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    Err(format!(
        "{text:?} is not a resolver address; give ADDR:PORT (127.0.0.1:53, [::1]:53) or an IP \
         address for port 53"
    ))
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Receives mail from other servers: STARTTLS offered, never required.
    Mx,
    /// Receives mail from users: TLS before AUTH and mail.
    Submission,
}

const RUN_EXAMPLES: &str = "\
Examples:
  smtptui run submission mail.example.com:587 --user alice@example.com    # built in
  SMTPTUI_PASSWORD=... smtptui run submission 127.0.0.1:587 --user alice --ca-file ca.pem --servername localhost
  smtptui run implicit-tls mail.example.com:465 --user alice --password-file ~/.smtp-pass
  smtptui run check.smtp mx.example.com --json > transcript.jsonl
  smtptui run pipelining mx.example.com        # a pipelined MAIL/RCPT/DATA group
  smtptui run bdat-file mx.example.com         # a message file in BDAT chunks
  smtptui run lmtp unix:/run/dovecot/lmtp --protocol lmtp
  smtptui run scenarios/ staging.example.com -j 4 --junit report.xml   # a directory, for CI
  smtptui scenarios submission > mine.smtp     # a built-in one as a file to edit
  ... | smtptui run - mx.example.com           # a scenario on standard input

Scenario files use the notation of the RFC examples: 'C: line' sends, 'S: 250' / 'S: 2xx' /
'S: 25x some text' checks the reply to the line before. A bare 'C: AUTH PLAIN' (LOGIN,
XOAUTH2) runs the SASL exchange with --user and the password from --password-file,
$SMTPTUI_PASSWORD or a prompt; other mechanisms are written out as C: lines, whose answers
are guarded and hidden like AUTH. PIPELINE sends the C: lines after it in one write, the S:
lines after them checking each reply in order; FILE message.eml sends a message from a file
(after DATA, or after a C: BDAT line in chunks); after the end of a message, one S: per LMTP
recipient.";

const LAB_EXAMPLES: &str = "\
Examples:
  smtptui lab                                   # every profile on 127.0.0.1, ports 2000 + N
  smtptui lab --port-base 3000                  # every profile at 3000 + N (3587, 3025, ...)
  smtptui lab --all-interfaces --name 192.168.1.20 --state-dir ~/lab-state
                                                # a classroom: one CA kept across restarts
  smtptui lab --listen submission=127.0.0.1:1587 --listen mx=127.0.0.1:1025
  smtptui lab --account alice@lab.test:alice.pw --maildir ./lab-mail
  smtptui lab --class 30 --dashboard            # a workshop: 30 accounts, the instructor's view
  smtptui lab --roster students.txt --all-interfaces --name 192.168.1.20 --state-dir ~/lab-state

Profiles and their place above the port base: submission 587, mx 25, implicit 465, lmtp 24,
legacy 600, inject 601, strip 602, refuse-tls 603, slow 604, grade 605. The table printed at
start gives each address, what it teaches, and the exact smtptui, swaks and openssl s_client
command lines for it (--tls implicit for the implicit profile), the account to use and the CA
to trust.

Every profile offers PIPELINING, SIZE, 8BITMIME, DSN, SMTPUTF8 and CHUNKING (BDAT), and
REQUIRETLS inside TLS, answering them as Postfix does. The lmtp profile speaks LMTP (RFC 2033):
LHLO instead of EHLO, and one reply per recipient at the end of each message. Several commands
sent in one write show in the log as one pipelined group.

Fault triggers (any profile that takes the recipient):
  RCPT TO:<rcpt-550-5.1.1@lab.test>   that reply to RCPT (any 4xx/5xx code, enhanced code
                                      optional; 421 closes the session)
  RCPT TO:<data-554@lab.test>         accepted; that reply at the end of the message (under
                                      LMTP, to that recipient only)
  RCPT TO:<greylist@lab.test>         450 4.7.1 the first time, 250 on the retry
  EHLO no-pipelining.no-chunking.lab.test   each no-KEYWORD label turns that extension off
The slow profile answers the greeting after 2 s and every reply after 1 s, and drops the
connection at the first end of each message (the retry is accepted).

Every session ends with a VERDICT line judging what the client did, as the server saw it:
'!! ATTACK WORKED' or '!! DANGER' (credentials in cleartext, injected bytes believed,
cleartext after a refused STARTTLS), '!  warning', or 'ok'; an alarm is followed by a LESSON
line. Credentials are never shown.

The grade profile is the MX of a test domain that grades the SENDER delivering to it: each
sender (address + EHLO name) meets one trial per session (a good certificate, STARTTLS
stripped, STARTTLS refused with 454, a self-signed certificate, a wrong name, a certificate only
its TLSA record vouches for, a 450), and its log and --grade-report FILE (JSON) say which Postfix
smtp_tls_security_level it behaved like (none, may, encrypt, verify/secure, dane), or that the
evidence is incomplete or contradictory. The start table gives the TLSA record to publish.

Classroom mode: --class N (students student01 ... studentNN) or --roster FILE (one ID and
name per line) gives each student an account ID@lab.test with a random password, written only
to the class sheet (--sheet, mode 600, read back at the next start, never overwritten).
Students say EHLO with their ID; the lab checks the exercises (assets/exercises.txt, or
--exercises FILE) from what their sessions did. They see their list with
'smtptui lab-status HOST ID', ':exercises' in smtptui, or XEXERCISES in any session.
--dashboard shows the class to the room (a grid of students by exercise, live sessions, attacks
that worked); --dashboard text prints its events as lines; --export FILE.csv / FILE.json
writes the results when the lab stops ('e' in the dashboard writes them at once).
Stop with Ctrl-C.";

const LAB_STATUS_EXAMPLES: &str = "\
Examples:
  smtptui lab-status 192.168.1.20:2525 student07      # the lab's mx listener: no TLS needed
  smtptui lab-status 127.0.0.1:2465 --tls implicit --ca-file ca.pem --servername localhost alice

The same list is what the lab answers to XEXERCISES [ID] in any session (openssl s_client, nc),
and to :exercises in smtptui's UI.";

/// Arguments of `smtptui lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Run only this profile (repeatable); all of them by default.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Put a profile at an address: PROFILE=IP:PORT (repeatable; the profile runs even
    /// without --profile). A bare IP:PORT is accepted with exactly one --profile.
    #[arg(long = "listen", value_name = "PROFILE=ADDR")]
    pub listen: Vec<String>,
    /// Put every profile not placed with --listen at N plus its offset (submission N+587,
    /// mx N+25, implicit N+465, legacy N+600 ... slow N+604, grade N+605).
    #[arg(long, value_name = "N", default_value_t = smtptui::lab::profile::DEFAULT_PORT_BASE)]
    pub port_base: u16,
    /// Listen on every interface (0.0.0.0) instead of 127.0.0.1, for a room of students;
    /// give the address they use with --name so the certificate holds it.
    #[arg(long)]
    pub all_interfaces: bool,
    /// Another name or IP address for the server certificate (repeatable); the first is the
    /// one the start table's command lines connect to.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Add an account; the password is the first line of the file (never on the command line).
    /// Repeatable. The workshop account is always there.
    #[arg(long = "account", value_name = "USER:PASSWORD-FILE")]
    pub accounts: Vec<String>,
    /// Also write accepted messages into this Maildir (new/, cur/, tmp/ are created).
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<std::path::PathBuf>,
    /// Keep the lab CA and its key here (ca.pem, ca.key), so a restarted lab is still
    /// trusted by students who saved the CA. A directory another running lab uses, or with a
    /// CA this lab has no key for, is refused.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// How long the server waits for each client command before 421: seconds, or with a
    /// unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// After ten errors in a session, wait this long before each reply, as Postfix does
    /// (smtpd_error_sleep_time); 0 turns it off.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_or_zero)]
    pub error_sleep: Duration,
    /// Most simultaneous sessions per profile; further connections get 421.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_sessions: usize,
    /// Log only accepted messages and the verdicts that flag something, not every command
    /// and reply.
    #[arg(long)]
    pub quiet: bool,
    /// A class of N students: accounts student01@lab.test ... with random passwords written
    /// to the class sheet (see --sheet), and their progress through the exercises tracked.
    #[arg(long, value_name = "N", conflicts_with = "roster")]
    pub class: Option<usize>,
    /// A class from a roster file: one student per line, an ID (letters, digits, hyphens;
    /// the EHLO name and the account ID@lab.test) and optionally the name to show.
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,
    /// Where the class sheet with the students' passwords goes (mode 600; never printed,
    /// never overwritten: an existing sheet is read back). Default: class-sheet.txt in the
    /// --state-dir, else in the current directory.
    #[arg(long, value_name = "FILE")]
    pub sheet: Option<PathBuf>,
    /// The exercises to check, instead of the ones shipped (assets/exercises.txt shows the
    /// format).
    #[arg(long, value_name = "FILE")]
    pub exercises: Option<PathBuf>,
    /// The instructor's view instead of the session log: 'tui' (the default) a full-screen
    /// grid of students by exercise, live sessions and notable events; 'text' the notable
    /// events as lines, for projecting with other tools.
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "tui", value_enum)]
    pub dashboard: Option<DashboardMode>,
    /// Write the class's results here when the lab stops: CSV or JSON by the extension
    /// (repeatable; an existing file is refused at start, never overwritten).
    #[arg(long, value_name = "FILE")]
    pub export: Vec<PathBuf>,
    /// The grade profile: the MX name its certificates are for (default lab.test).
    #[arg(long, value_name = "NAME")]
    pub grade_name: Option<String>,
    /// The grade profile: sign the good and wrong-name certificates with this CA certificate
    /// (PEM), the one the graded senders trust; needs --grade-ca-key. Default: the lab CA.
    #[arg(long, value_name = "FILE", requires = "grade_ca_key")]
    pub grade_ca: Option<PathBuf>,
    /// The grade profile: the key of --grade-ca (PEM).
    #[arg(long, value_name = "FILE", requires = "grade_ca")]
    pub grade_ca_key: Option<PathBuf>,
    /// The grade profile: the MX key (PEM, PKCS#8) whose TLSA record the test domain
    /// publishes. Default: kept in --state-dir, else fresh at each start.
    #[arg(long, value_name = "FILE")]
    pub grade_key: Option<PathBuf>,
    /// The grade profile: keep every sender's grade in this JSON file, rewritten after each
    /// graded session.
    #[arg(long, value_name = "FILE")]
    pub grade_report: Option<PathBuf>,
}

/// `--dashboard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DashboardMode {
    /// Full screen, for the projector.
    Tui,
    /// Notable events as plain lines.
    Text,
}

/// Arguments of `smtptui lab-status`.
#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// The lab, HOST[:PORT]; port 2525 (the lab's mx listener) by default.
    pub target: String,
    /// The student ID from the class sheet (without it, the list without progress).
    pub student: Option<String>,
    /// How TLS starts: the lab answers XEXERCISES before STARTTLS, so only its implicit
    /// listener needs --tls implicit.
    #[arg(long, value_enum, default_value_t = TlsChoice::Auto)]
    pub tls: TlsChoice,
    /// PEM file with the lab's CA (for --tls implicit).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Name for SNI and certificate verification (default: the host you typed).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Deadline for each reply and the connection: seconds, or with a unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// Arguments of `smtptui run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenarios, then the server. A scenario is a .smtp file, a directory (every .smtp
    /// file in it, in name order), `-` for standard input, or the name of a built-in scenario
    /// (`smtptui scenarios`). The server, last, is HOST[:PORT] (port 25 by default, 465 with
    /// --tls implicit) or @NAME, a server of the config file. Options may come anywhere
    /// among them.
    // One list, split in code: clap cannot give a list of scenarios a positional after it
    // when options stand between them (`run a.smtp --user u host`).
    #[arg(required = true, num_args = 1.., value_name = "SCENARIO... TARGET")]
    pub operands: Vec<String>,
    /// Connection options.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Also write the (redacted) plain-text transcript to this file; with several scenarios,
    /// every one's, in the order given.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,
    /// Print one JSON object per event instead of text (with several scenarios, each object
    /// names its scenario).
    #[arg(long)]
    pub json: bool,
    /// Run this many scenarios at a time (each in a session of its own).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Write a JUnit XML report to FILE: one test case per scenario, each failure with its
    /// scenario line, what was expected and the reply that came (GitLab, GitHub and Jenkins
    /// render it).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The protocol the scenario must speak: smtp (EHLO or HELO), or lmtp (RFC 2033: LHLO,
    /// the end of a message answered once per accepted recipient; port 24 by default).
    /// Without it, a session is LMTP once the server accepts the scenario's LHLO.
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolChoice>,
    /// Send pipelined groups, BDAT and a bare AUTH even when the server did not advertise
    /// PIPELINING, CHUNKING or the mechanism, to see what it does with them.
    #[arg(long)]
    pub force: bool,
    /// Send MAIL FROM and RCPT TO exactly as written: no SIZE, BODY or SMTPUTF8 added, and
    /// their parameters not checked before the run (to test a server's answer to them).
    #[arg(long)]
    pub literal: bool,
}

/// `smtptui completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

const COMPLETIONS_EXAMPLES: &str = "\
Install (each shell reads the file at its next start):
  smtptui completions bash > ~/.local/share/bash-completion/completions/smtptui
  smtptui completions zsh > ~/.zfunc/_smtptui      # with fpath+=(~/.zfunc) before compinit
  smtptui completions fish > ~/.config/fish/completions/smtptui.fish
";

/// `smtptui man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write smtptui.1 and one page per command (smtptui-run.1, ...) into this directory
    /// (made if missing) instead of printing smtptui.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const MAN_EXAMPLES: &str = "\
Examples:
  smtptui man | man -l -
  smtptui man --dir ~/.local/share/man/man1 && man smtptui-run
";

/// `smtptui diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier transcript.
    pub before: PathBuf,
    /// The later transcript.
    pub after: PathBuf,
}

const DIFF_EXAMPLES: &str = "\
Examples:
  smtptui run mx mx.example.com --transcript before.txt
  # ... change the server's configuration ...
  smtptui run mx mx.example.com --transcript after.txt
  smtptui diff before.txt after.txt      # exit 1 and a line per change, or exit 0
";

/// `smtptui scenarios`.
#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// A built-in scenario to print (its name or a prefix of it); without one, the list.
    pub name: Option<String>,
}

impl RunArgs {
    /// The scenarios: every operand but the last.
    pub fn scenarios(&self) -> &[String] {
        self.operands
            .split_last()
            .map_or(&[][..], |(_, scenarios)| scenarios)
    }

    /// The server: the last operand.
    pub fn target(&self) -> &str {
        self.operands.last().map_or("", String::as_str)
    }
}

const SEND_EXAMPLES: &str = "\
Examples:
  smtptui send mx.example.com --from alice@example.com --to bob@example.com
  smtptui send mail.example.com:587 --auth --user alice --password-file ~/.smtp-pass --to bob@example.com
  smtptui send mail.example.com --tls-on-connect --auth PLAIN --user alice --to bob@example.com
  smtptui send mx.example.com --to bob@example.com --attach report.pdf --body 'See attached.'
  smtptui send mx.example.com --to bob@example.com --header 'Subject: hello' --header 'X-Test: 1'
  smtptui send @staging --to bob@example.com       # a server from the config file
  smtptui send mx.example.com --to bob@example.com --print-scenario > check.smtp

STARTTLS: --tls starttls always sends it (a refusal stops the run, exit 3); with the default
--tls auto it is sent on port 587 and whenever AUTH is (and TLS is implicit on 465);
--no-starttls never sends it. AUTH runs when --auth or --user is given (PLAIN unless named);
the password comes from --password-file or $SMTPTUI_PASSWORD, never the command line.
--body TEXT, @FILE or - (standard input); --data FILE sends a whole message file as it is.";

/// Arguments of `smtptui send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The server, HOST[:PORT] or @NAME from the config file; port 25 by default (465 with
    /// --tls implicit).
    pub target: Option<String>,
    /// The server (swaks's spelling), instead of the positional HOST[:PORT].
    #[arg(
        long,
        short = 's',
        value_name = "HOST[:PORT]",
        conflicts_with = "target"
    )]
    pub server: Option<String>,
    /// The port, when not given with the server.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// The envelope sender and From: header; '<>' (or '') is the null sender. Default:
    /// $USER@ the host's name.
    #[arg(long, short = 'f', value_name = "ADDRESS")]
    pub from: Option<String>,
    /// A recipient (repeatable, or several separated by commas); also the To: header.
    #[arg(long, short = 't', value_name = "ADDRESS", required = true)]
    pub to: Vec<String>,
    /// A recipient also named in a Cc: header (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub cc: Vec<String>,
    /// A recipient named in no header (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub bcc: Vec<String>,
    /// The EHLO name (default: the host's name).
    #[arg(long, visible_alias = "helo", value_name = "NAME")]
    pub ehlo: Option<String>,
    /// A header, 'Name: value' (repeatable): replaces the one of that name smtptui would
    /// write (Subject, From, To, Date, Message-ID), or is added.
    #[arg(long, value_name = "HEADER")]
    pub header: Vec<String>,
    /// A header added as it is, even when one of that name exists (repeatable).
    #[arg(long, visible_alias = "ah", value_name = "HEADER")]
    pub add_header: Vec<String>,
    /// The body: text, @FILE for a file's content, or - for standard input (default: 'This
    /// is a test mailing').
    #[arg(long, value_name = "TEXT|@FILE|-")]
    pub body: Option<String>,
    /// Attach a file (repeatable), base64 encoded, its type from its extension (or
    /// application/octet-stream); the message becomes multipart/mixed. An '@' before the
    /// path, as swaks writes it, is allowed.
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<String>,
    /// Send this file as the whole message (headers and body, as written; streamed, any
    /// size) instead of building one.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["header", "add_header", "body", "attach", "cc"])]
    pub data: Option<PathBuf>,
    /// Authenticate with this mechanism (PLAIN when none is named); needs --user.
    #[arg(long, short = 'a', value_name = "MECH", num_args = 0..=1, default_missing_value = "PLAIN")]
    pub auth: Option<String>,
    /// TLS from the first byte (swaks --tls-on-connect); the same as --tls implicit.
    #[arg(long, visible_alias = "tlsc")]
    pub tls_on_connect: bool,
    /// Never send STARTTLS (the credential guard still refuses AUTH in cleartext).
    #[arg(long, conflicts_with = "tls_on_connect")]
    pub no_starttls: bool,
    /// Send MAIL, RCPT and DATA as one pipelined group (RFC 2920).
    #[arg(long)]
    pub pipeline: bool,
    /// Print the scenario instead of running it (to keep it, and replay it with smtptui run).
    #[arg(long)]
    pub print_scenario: bool,
    /// Write the message built into FILE (mode 600) and send it from there, streamed, by a
    /// FILE line of the scenario: to keep it beside --print-scenario, or for a message larger
    /// than a scenario holds (16 MiB; without this option such a message waits in a temporary
    /// file during the run).
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub save_message: Option<PathBuf>,
    /// Connection options.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Also write the (redacted) plain-text transcript to this file.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolChoice {
    /// SMTP (RFC 5321): EHLO or HELO.
    Smtp,
    /// LMTP (RFC 2033): LHLO, one reply per recipient after the message; port 24 by default.
    Lmtp,
}

/// How to start TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsChoice {
    /// Implicit TLS on port 465, plain TCP (STARTTLS when sent) on any other port.
    Auto,
    /// Plain TCP; TLS starts when STARTTLS is sent and answered 220.
    Starttls,
    /// TLS from the first byte (RFC 8314), as on port 465.
    Implicit,
}

/// `--trust`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustChoice {
    /// The Mozilla roots built into smtptui.
    Webpki,
    /// The operating system's trust store.
    System,
    /// Both.
    Both,
}

/// Options shared by everything that connects to a server.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// How TLS starts.
    #[arg(long, value_enum, default_value_t = TlsChoice::Auto)]
    pub tls: TlsChoice,
    /// PEM file with extra trusted CA certificates (added to the roots --trust chooses).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Which roots verify the server's certificate: webpki (the Mozilla roots built in, the
    /// same on every machine), system (this machine's trust store, where a company CA is
    /// installed; SSL_CERT_FILE and SSL_CERT_DIR honoured), or both.
    #[arg(long, value_enum, default_value_t = TrustChoice::Webpki)]
    pub trust: TrustChoice,
    /// Name for SNI and certificate verification (default: the host you typed).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Go on when the certificate fails verification, and allow AUTH to that unverified peer.
    /// The failed verdict stays in the transcript.
    #[arg(long)]
    pub insecure: bool,
    /// Allow AUTH on a connection without TLS. The credentials can then be read by anyone on
    /// the path (base64 is not encryption); the transcript marks the moment.
    #[arg(long)]
    pub allow_cleartext_auth: bool,
    /// User name for AUTH. The password comes from --password-file, $SMTPTUI_PASSWORD, or a
    /// hidden prompt; there is deliberately no --password option (command lines are visible
    /// to other users and kept in shell history).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// File whose first line is the password (or, for XOAUTH2 and OAUTHBEARER, the OAuth
    /// 2.0 access token).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Send AUTH without an initial response (RFC 4954 §4): `AUTH PLAIN`, then the
    /// credentials only after the server's empty 334, for servers or tests that need it.
    #[arg(long)]
    pub no_sasl_ir: bool,
    /// TLS client certificate (PEM, leaf first, chain after it), presented when the server
    /// asks for one in the handshake; AUTH EXTERNAL then uses its identity.
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM; default: read from the --cert file). A key file other
    /// users can read is warned about.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Deadline for each reply, the connection and the TLS handshake: seconds, or with a
    /// unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Not an option: present only to explain, when someone tries it, why it does not exist.
    #[arg(long, hide = true, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// The config file with defaults and named servers (@NAME); default $SMTPTUI_CONFIG,
    /// else $XDG_CONFIG_HOME/smtptui/config.toml (~/.config/smtptui/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How the connection is made: address family, local address, PROXY header, key log.
    #[command(flatten)]
    pub wire: WireArgs,
    /// The TLS versions and cipher suites offered.
    #[command(flatten)]
    pub tls_offer: TlsOfferArgs,
}

/// How the connection is made under SMTP.
#[derive(Debug, Args)]
pub struct WireArgs {
    /// Connect over IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Connect over IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Connect from this local address (ADDR, or ADDR:PORT; IPv6 as [ADDR]:PORT), to test
    /// rules that depend on the client's address.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_local_addr)]
    pub local_addr: Option<std::net::SocketAddr>,
    /// Send a HAProxy PROXY protocol header (v1 text, v2 binary) before the first SMTP byte,
    /// as a load balancer in front of the server would; needs --proxy-source.
    #[arg(long, value_enum, value_name = "VERSION", requires = "proxy_source")]
    pub proxy_protocol: Option<ProxyArg>,
    /// The client address the PROXY header claims (ADDR:PORT).
    #[arg(long, value_name = "ADDR:PORT", requires = "proxy_protocol", value_parser = parse_socket_addr)]
    pub proxy_source: Option<std::net::SocketAddr>,
    /// The destination the PROXY header names (ADDR:PORT); the server's address by default.
    #[arg(long, value_name = "ADDR:PORT", requires = "proxy_protocol", value_parser = parse_socket_addr)]
    pub proxy_dest: Option<std::net::SocketAddr>,
    /// Write the TLS secrets of the session to FILE in the NSS key log format, so that a
    /// capture of it can be decrypted in Wireshark (the transcript warns loudly: with the
    /// file, a capture reveals everything, credentials included).
    #[arg(long, value_name = "FILE", conflicts_with = "keylog_from_env")]
    pub keylog: Option<PathBuf>,
    /// Write the key log to the file named by $SSLKEYLOGFILE. That variable alone is ignored,
    /// on purpose: a stray one would silently weaken every session.
    #[arg(long)]
    pub keylog_from_env: bool,
}

/// `--proxy-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyArg {
    /// Version 1: one text line, `PROXY TCP4 SRC DST SPORT DPORT`.
    V1,
    /// Version 2: the binary header.
    V2,
}

/// The TLS versions and cipher suites offered, to test what a server accepts.
#[derive(Debug, Args)]
pub struct TlsOfferArgs {
    /// The lowest TLS version offered: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", value_parser = parse_tls_version)]
    pub tls_min: Option<smtptui::tls::TlsVersion>,
    /// The highest TLS version offered: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", value_parser = parse_tls_version)]
    pub tls_max: Option<smtptui::tls::TlsVersion>,
    /// Offer only these cipher suites (repeatable, or comma-separated), by the names the
    /// transcript shows: TLS13_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384...
    /// (an unknown name gets the list).
    #[arg(long = "cipher", value_name = "SUITE", value_delimiter = ',')]
    pub ciphers: Vec<String>,
}

fn parse_tls_version(text: &str) -> Result<smtptui::tls::TlsVersion, String> {
    smtptui::tls::TlsVersion::parse(text)
}

/// Parses `ADDR:PORT` (`[V6]:PORT` for IPv6).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an address with a port; give ADDR:PORT, e.g. 192.0.2.7:40000 or \
             [2001:db8::7]:40000"
        )
    })
}

/// Parses `--local-addr`: `ADDR`, `ADDR:PORT` or `[V6]:PORT` (a bare address: any port).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_local_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    match text.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => Ok(std::net::SocketAddr::new(ip, 0)),
        Err(_) => Err(format!(
            "{text:?} is not a local address; give an IP address of this machine, optionally \
             with a port: 127.0.0.2, 127.0.0.2:40000, [::1]:40000"
        )),
    }
}

/// Parses `30`, `2.5`, `500ms`, `2s`, `1m`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    smtptui::config::parse_timeout(text)
}

/// A duration as for [`parse_timeout`], or zero (`0`, `0s`) to turn something off.
///
/// # Errors
/// The message [`parse_timeout`] gives for anything else.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let number = text
        .trim()
        .trim_end_matches("ms")
        .trim_end_matches(['s', 'm']);
    if number.trim().parse::<f64>().is_ok_and(|n| n == 0.0) {
        return Ok(Duration::ZERO);
    }
    parse_timeout(text)
}

/// The target forms every command accepts, for error messages.
const TARGET_FORMS: &str = "give the server as HOST or HOST:PORT, e.g. mail.example.com:587, \
     192.0.2.1:25, an IPv6 address in brackets, [2001:db8::1]:587, or a UNIX domain socket, \
     unix:/run/dovecot/lmtp";

/// How a target names a UNIX domain socket: `unix:/absolute/path`.
pub const UNIX_PREFIX: &str = "unix:";

/// Splits `HOST[:PORT]` (IPv6 literals in brackets, or bare without a port), or passes a
/// `unix:/path` socket through whole.
///
/// The host must be a host name or an IP address: a URL (`smtp://host:port`), a mail address
/// or anything else would only fail later as a confusing connection error. A bare IPv6 address
/// whose last group could be a port (`::1:2587`) is refused as ambiguous, with both readings
/// spelled out in brackets.
///
/// # Errors
/// A message saying what is wrong with the target and which forms are accepted.
pub fn parse_target(target: &str) -> Result<(String, Option<u16>), String> {
    let target = target.trim();
    // A UNIX domain socket (LMTP servers listen on one): the path is the whole target.
    if let Some(path) = target.strip_prefix(UNIX_PREFIX) {
        if !path.starts_with('/') {
            return Err(format!(
                "{target:?}: a UNIX domain socket is given by its absolute path, e.g. \
                 unix:/run/dovecot/lmtp"
            ));
        }
        return Ok((target.to_owned(), None));
    }
    if let Some((scheme, _)) = target.split_once("://") {
        return Err(format!(
            "{target:?} is a URL; {TARGET_FORMS} (without '{scheme}://')"
        ));
    }
    let bad_port = |port: &str| format!("{port:?} in {target:?} is not a port number (1-65535)");
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            format!("{target:?}: an IPv6 address in brackets needs the closing ']'")
        })?;
        match after.strip_prefix(':') {
            Some(port) => (host.to_owned(), Some(port)),
            None if after.is_empty() => (host.to_owned(), None),
            None => return Err(format!("{target:?}: expected ':PORT' after ']'")),
        }
    } else if target.matches(':').count() > 1 {
        // A bare IPv6 address: no port can be told apart, so none is taken.
        if let Some(hint) = ambiguous_ipv6(target) {
            return Err(hint);
        }
        (target.to_owned(), None)
    } else {
        match target.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (target.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "{target:?}: the host is missing; give HOST or HOST:PORT"
        ));
    }
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_name = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !is_ip && !is_name {
        return Err(format!(
            "{target:?} is not a server address; {TARGET_FORMS}"
        ));
    }
    let port = match port {
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad_port(port))?,
        ),
        None => None,
    };
    Ok((host, port))
}

/// For a bare IPv6 address whose last group could also be a port (`::1:2587`), the message
/// that shows both bracketed readings; `None` when there is only one reading.
fn ambiguous_ipv6(target: &str) -> Option<String> {
    let (address, port) = target.rsplit_once(':')?;
    let port_number = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    if !port.bytes().all(|b| b.is_ascii_digit()) || address.parse::<std::net::Ipv6Addr>().is_err() {
        return None;
    }
    Some(format!(
        "{target:?} is ambiguous: an IPv6 address with a port needs brackets; write \
         [{address}]:{port_number} for port {port_number}, or [{target}] for that whole address \
         on the default port"
    ))
}

/// When `word` (a target given without subcommand, or the first word of a command line that
/// did not parse) looks like a mistyped subcommand, the message that suggests the right one.
///
/// A word with a dot or a colon is a host or an address, never a typo. The suggestion says
/// how to reach a host that really has such a name (with its port).
pub fn mistyped_subcommand(word: &str) -> Option<String> {
    use clap::CommandFactory;
    if word.contains(['.', ':']) || word.starts_with(['-', '@']) {
        return None;
    }
    let typed = word.to_ascii_lowercase();
    let command = Cli::command();
    let names = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .chain(std::iter::once("help".to_owned()));
    let best = names
        // An exact name got here because something else was wrong with the command line.
        .filter(|name| name != word)
        .map(|name| (edit_distance(&typed, &name), name))
        .filter(|(distance, name)| *distance <= if name.len() > 4 { 2 } else { 1 })
        .min_by_key(|(distance, _)| *distance)?;
    Some(format!(
        "{word:?} is not a subcommand; did you mean 'smtptui {}'? (To open the UI on a host of \
         that name, give its port too: {word}:25.)",
        best.1
    ))
}

/// The first word of a command line that is neither an option nor an option's value: where
/// a subcommand would be.
pub fn first_positional(args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let takes_value = |long: &str| {
        command
            .get_arguments()
            .any(|arg| arg.get_long() == Some(long) && arg.get_action().takes_values())
    };
    let mut words = args.iter().map(|arg| arg.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            return words.next().map(|w| w.into_owned());
        }
        if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') && takes_value(long) {
                words.next();
            }
            continue;
        }
        if word.starts_with('-') && word.len() > 1 {
            continue;
        }
        return Some(word.into_owned());
    }
    None
}

/// Edit distance with adjacent transpositions (optimal string alignment), on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("mail.example.com"),
            Ok(("mail.example.com".into(), None))
        );
        assert_eq!(
            parse_target("127.0.0.1:587"),
            Ok(("127.0.0.1".into(), Some(587)))
        );
        assert_eq!(parse_target("[::1]:25"), Ok(("::1".into(), Some(25))));
        assert_eq!(parse_target("::1"), Ok(("::1".into(), None)));
        assert!(parse_target("host:0").is_err());
        assert!(parse_target("host:smtp").is_err());
        assert!(parse_target(":25").is_err());
        assert!(parse_target("[::1").is_err());
        assert_eq!(
            parse_target("[2001:db8::1]:587"),
            Ok(("2001:db8::1".into(), Some(587)))
        );
        assert_eq!(
            parse_target("2001:db8::1"),
            Ok(("2001:db8::1".into(), None))
        );
        assert_eq!(
            parse_target("mx_1.example"),
            Ok(("mx_1.example".into(), None))
        );
    }

    #[test]
    fn targets_in_other_forms_say_which_forms_work() {
        for target in [
            "smtp://127.0.0.1:2525",
            "smtps://mail.example.com",
            "user@mail.example.com",
            "mail.example.com/587",
            "mail example.com",
            "bücher.example",
        ] {
            let error = parse_target(target).expect_err(target);
            assert!(error.contains("HOST:PORT"), "{target}: {error}");
        }
        let error = parse_target("smtp://h:25").expect_err("url");
        assert!(error.contains("without 'smtp://'"), "{error}");
    }

    #[test]
    fn a_bare_ipv6_address_that_could_end_in_a_port_is_ambiguous() {
        let error = parse_target("::1:2587").expect_err("ambiguous");
        assert!(error.contains("[::1]:2587"), "{error}");
        assert!(error.contains("[::1:2587]"), "{error}");
        assert!(parse_target("fe80::1:25").is_err());
        // Only one reading: the last group cannot be a port, or the rest is no address.
        assert_eq!(parse_target("::1"), Ok(("::1".into(), None)));
        assert_eq!(
            parse_target("2001:db8::25"),
            Ok(("2001:db8::25".into(), None))
        );
        assert_eq!(
            parse_target("2001:db8::abcd"),
            Ok(("2001:db8::abcd".into(), None))
        );
    }

    #[test]
    fn mistyped_subcommands_are_recognised() {
        for (typed, meant) in [
            ("demoo", "demo"),
            ("audti", "audit"),
            ("Audit", "audit"),
            ("lba", "lab"),
            ("rnu", "run"),
            ("aduit", "audit"),
            ("hlep", "help"),
        ] {
            let hint = mistyped_subcommand(typed).unwrap_or_default();
            assert!(
                hint.contains(&format!("'smtptui {meant}'")),
                "{typed}: {hint}"
            );
            assert!(hint.contains(&format!("{typed}:25")), "{hint}");
        }
        for host in [
            "mail",
            "localhost",
            "mx",
            "relay",
            "mail.example.com",
            "lab.test",
            "::1",
            "smtp",
        ] {
            assert_eq!(mistyped_subcommand(host), None, "{host}");
        }
    }

    #[test]
    fn the_first_positional_word_skips_options_and_their_values() {
        let args =
            |words: &[&str]| -> Vec<std::ffi::OsString> { words.iter().map(Into::into).collect() };
        assert_eq!(
            first_positional(&args(&["--user", "lba", "--insecure", "audti", "x"])),
            Some("audti".into())
        );
        assert_eq!(
            first_positional(&args(&["--timeout=5", "demoo"])),
            Some("demoo".into())
        );
        assert_eq!(first_positional(&args(&["--insecure"])), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("audti", "audit"), 1);
        assert_eq!(edit_distance("demo", "demo"), 0);
        assert_eq!(edit_distance("", "lab"), 3);
        assert_eq!(edit_distance("mail", "lab"), 3);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("NaN").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
