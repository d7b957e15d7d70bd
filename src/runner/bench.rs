//! Load mode, behind `smtptui bench`: one scenario replayed in many concurrent sessions, each
//! with the same engine, guard and expectations as `smtptui run`, timed step by step.
//!
//! Each session's transcript is read as it happens, never kept or printed: the events give
//! the time of each step (connect, the greeting, the STARTTLS handshake, AUTH, the message,
//! QUIT). Times go into fixed log-scale histograms ([`Histogram`]), so memory stays the same
//! whatever the number of sessions; sessions that did not pass are counted by what went
//! wrong (the unmet expectation with the reply that came, or the error), in a bounded number
//! of groups.
//!
//! A run is bounded by construction: a number of sessions ([`MAX_SESSIONS`] at most), a
//! duration ([`MAX_DURATION`] at most) after which no session starts, and each session is
//! bounded by the session's own timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Outcome, RunOptions, run_with};
use crate::scenario::Scenario;
use crate::secret::Credentials;
use crate::session::SessionConfig;
use crate::transcript::{Event, EventKind, SentKind};

/// The most sessions open at once.
pub const MAX_CONCURRENCY: u32 = 1000;
/// The most sessions in one run.
pub const MAX_SESSIONS: u64 = 1_000_000;
/// The longest a run starts sessions.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most distinct failure groups kept; the rest are counted together.
const MAX_GROUPS: usize = 32;

/// The steps of a session that are timed, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// From starting to connect to the TCP connection being up.
    Connect,
    /// From the connection being up to the server's greeting.
    Greeting,
    /// The TLS handshake: from the STARTTLS command (or, for implicit TLS, the connection) to
    /// the handshake's end.
    Tls,
    /// From the AUTH command to the server's final answer (challenges included).
    Auth,
    /// From the server's 354 to its reply to the end of the message.
    Message,
    /// From QUIT to its reply.
    Quit,
    /// The whole session, from starting to connect to its end.
    Session,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 7] = [
        Step::Connect,
        Step::Greeting,
        Step::Tls,
        Step::Auth,
        Step::Message,
        Step::Quit,
        Step::Session,
    ];

    /// Its name in the summary and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Greeting => "greeting",
            Step::Tls => "tls",
            Step::Auth => "auth",
            Step::Message => "message",
            Step::Quit => "quit",
            Step::Session => "session",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Buckets per doubling: a percentile is within about 4.4 % of the true value.
const PER_OCTAVE: f64 = 16.0;
/// Buckets: microseconds from 1 to 2^32 (over an hour).
const BUCKETS: usize = 32 * 16 + 1;

/// Durations in fixed log-scale buckets, with the exact count, sum, minimum and maximum.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum_micros: u128,
    min_micros: u64,
    max_micros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum_micros: 0,
            min_micros: u64::MAX,
            max_micros: 0,
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros <= 1 {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((micros as f64).log2() * PER_OCTAVE).ceil() as usize;
    index.min(BUCKETS - 1)
}

fn bucket_upper(index: usize) -> u64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let value = 2f64.powf(index as f64 / PER_OCTAVE).floor() as u64;
    value
}

impl Histogram {
    /// Adds one duration.
    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)] += 1;
        self.count += 1;
        self.sum_micros += u128::from(micros);
        self.min_micros = self.min_micros.min(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    /// Adds every duration of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_micros += other.sum_micros;
        self.min_micros = self.min_micros.min(other.min_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest duration recorded (zero when none was).
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    /// The mean (zero when nothing was recorded).
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(u64::try_from(self.sum_micros / u128::from(self.count)).unwrap_or(0))
    }

    /// The duration at or below which `fraction` (0 to 1) of the recorded ones fall, to the
    /// bucket's precision, never above the maximum nor below the minimum.
    pub fn percentile(&self, fraction: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((self.count as f64) * fraction.clamp(0.0, 1.0))
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let value = bucket_upper(index).clamp(self.min_micros, self.max_micros);
                return Duration::from_micros(value);
            }
        }
        self.max()
    }

    /// The histogram in `rows` bars between the minimum and the maximum: each row's upper
    /// bound and how many durations fall in it.
    pub fn bars(&self, rows: usize) -> Vec<(Duration, u64)> {
        if self.count == 0 || rows == 0 {
            return Vec::new();
        }
        let low = bucket_of(self.min_micros);
        let high = bucket_of(self.max_micros);
        let span = high - low + 1;
        let rows = rows.min(span);
        let mut bars = Vec::with_capacity(rows);
        for row in 0..rows {
            let from = low + span * row / rows;
            let to = low + span * (row + 1) / rows;
            let count = self.buckets[from..to].iter().sum();
            let upper = bucket_upper(to - 1).clamp(self.min_micros, self.max_micros);
            bars.push((Duration::from_micros(upper), count));
        }
        bars
    }
}

/// What a run has measured so far.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Sessions that ended.
    pub finished: u64,
    /// Sessions in which every expectation held.
    pub passed: u64,
    /// One histogram per [`Step`], in [`Step::ALL`] order.
    pub steps: Vec<Histogram>,
    /// Sessions that did not pass, by what went wrong.
    pub failures: HashMap<String, u64>,
    /// The exit status of the first session that did not pass.
    pub first_failure_code: Option<i32>,
}

impl Stats {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self {
            steps: vec![Histogram::default(); Step::ALL.len()],
            ..Self::default()
        }
    }

    /// The histogram of `step`.
    pub fn step(&self, step: Step) -> &Histogram {
        &self.steps[step.index()]
    }

    /// Sessions that did not pass.
    pub fn failed(&self) -> u64 {
        self.finished - self.passed
    }

    /// The failure groups, the most frequent first.
    pub fn failure_groups(&self) -> Vec<(&str, u64)> {
        let mut groups: Vec<(&str, u64)> = self
            .failures
            .iter()
            .map(|(k, &v)| (k.as_str(), v))
            .collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        groups
    }

    /// Counts one session that did not pass, in the group `key` (escaped here: it can quote
    /// the server).
    pub fn add_failure(&mut self, key: &str) {
        let key = crate::proto::escape::escape_str(key);
        if self.failures.len() >= MAX_GROUPS && !self.failures.contains_key(&key) {
            *self
                .failures
                .entry("(other failures)".to_owned())
                .or_default() += 1;
        } else {
            *self.failures.entry(key).or_default() += 1;
        }
    }
}

/// How many sessions, how many at once, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Sessions open at once (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: u32,
    /// Sessions in all (1 to [`MAX_SESSIONS`]).
    pub sessions: u64,
    /// No session starts after this long.
    pub duration: Option<Duration>,
}

/// A run in progress, shared between the sessions and whoever watches it.
#[derive(Debug)]
pub struct Bench {
    stats: Mutex<Stats>,
    started: Instant,
    stop: AtomicBool,
    next: AtomicU64,
    in_flight: AtomicU64,
}

impl Bench {
    /// A run that starts now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            stats: Mutex::new(Stats::new()),
            started: Instant::now(),
            stop: AtomicBool::new(false),
            next: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        })
    }

    /// A copy of what has been measured so far.
    pub fn snapshot(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sessions open now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Starts no more sessions; those open finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether [`Bench::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The next session's number, or `None` when the run should start no more.
    fn ticket(&self, plan: &Plan) -> Option<u64> {
        if self.stopped() || plan.duration.is_some_and(|d| self.started.elapsed() >= d) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < plan.sessions).then_some(n)
    }
}

/// The times of one session's steps, read from its events.
#[derive(Debug, Default)]
struct Timer {
    times: [Option<Duration>; 7],
    connecting: Option<Duration>,
    connected: Option<Duration>,
    tls_from: Option<Duration>,
    auth_from: Option<Duration>,
    data_sent: bool,
    message_from: Option<Duration>,
    quit_from: Option<Duration>,
    failed_check: Option<String>,
}

fn set(slot: &mut Option<Duration>, from: Option<Duration>, to: Duration) {
    if slot.is_none()
        && let Some(from) = from
    {
        *slot = Some(to.saturating_sub(from));
    }
}

impl Timer {
    fn event(&mut self, event: &Event) {
        let at = event.elapsed;
        match &event.kind {
            EventKind::Connecting { .. } => self.connecting = Some(at),
            EventKind::Connected { .. } => {
                self.connected = Some(at);
                self.tls_from = Some(at);
                set(&mut self.times[Step::Connect.index()], self.connecting, at);
            }
            EventKind::TlsEstablished(_) => {
                set(&mut self.times[Step::Tls.index()], self.tls_from, at);
            }
            EventKind::Sent { text, kind, .. } => {
                if *kind == SentKind::MessageLine {
                    return;
                }
                let verb = text
                    .split_ascii_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match verb.as_str() {
                    "STARTTLS" => self.tls_from = Some(at),
                    "AUTH" if self.auth_from.is_none() => self.auth_from = Some(at),
                    "DATA" => self.data_sent = true,
                    "QUIT" => self.quit_from = Some(at),
                    _ => {}
                }
            }
            EventKind::Received { reply, .. } => {
                let code = reply.code.value();
                set(&mut self.times[Step::Greeting.index()], self.connected, at);
                if code != 334 {
                    set(&mut self.times[Step::Auth.index()], self.auth_from, at);
                }
                if self.data_sent && code == 354 && self.message_from.is_none() {
                    self.message_from = Some(at);
                } else if self.message_from.is_some() {
                    set(
                        &mut self.times[Step::Message.index()],
                        self.message_from,
                        at,
                    );
                }
                set(&mut self.times[Step::Quit.index()], self.quit_from, at);
            }
            EventKind::Expectation {
                line,
                expected,
                met: false,
                got,
            } if self.failed_check.is_none() => {
                self.failed_check = Some(format!(
                    "line {line}: expected {expected}, got {}",
                    mask_unique(got)
                ));
            }
            _ => {}
        }
    }
}

/// The reply text with what differs from session to session (queue ids, session ids,
/// times) masked, so that the same failure in many sessions is one group.
fn mask_unique(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    first
        .split(' ')
        .map(|word| {
            let digits = word.bytes().filter(u8::is_ascii_digit).count();
            if word.len() >= 6 && digits > 0 {
                "*"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What went wrong in a session that did not pass, as a group name.
fn failure_key(outcome: &Outcome, failed_check: Option<String>) -> String {
    match outcome {
        Outcome::Passed { .. } => String::new(),
        Outcome::ExpectationFailed { line } => {
            failed_check.unwrap_or_else(|| format!("line {line}: expectation not met"))
        }
        Outcome::StepFailed { line, reason } => format!("line {line}: {reason}"),
        Outcome::Failure {
            line: Some(line),
            reason,
        } => format!("line {line}: {reason}"),
        Outcome::Failure { line: None, reason } => reason.clone(),
        Outcome::GuardRefused { line, reason } => format!("line {line}: refused: {reason}"),
    }
}

/// Runs one session and adds what it measured to `bench`.
async fn one(
    bench: &Bench,
    scenario: &Scenario,
    config: SessionConfig,
    credentials: Option<Credentials>,
    options: RunOptions,
) {
    let timer = Arc::new(Mutex::new(Timer::default()));
    let sink_timer = timer.clone();
    let sink = Box::new(move |event: Event| {
        if let Ok(mut timer) = sink_timer.lock() {
            timer.event(&event);
        }
    });
    let started = Instant::now();
    let outcome = run_with(scenario, config, credentials, options, sink).await;
    let total = started.elapsed();
    let timer = std::mem::take(&mut *timer.lock().unwrap_or_else(|e| e.into_inner()));
    let mut stats = bench.stats.lock().unwrap_or_else(|e| e.into_inner());
    stats.finished += 1;
    for step in Step::ALL {
        if let Some(time) = timer.times[step.index()] {
            stats.steps[step.index()].record(time);
        }
    }
    stats.steps[Step::Session.index()].record(total);
    if matches!(outcome, Outcome::Passed { .. }) {
        stats.passed += 1;
    } else {
        let code = outcome.exit_code();
        stats.first_failure_code.get_or_insert(code);
        stats.add_failure(&failure_key(&outcome, timer.failed_check));
    }
}

/// Replays `scenario` against the server in `config` as `plan` says, `plan.concurrency`
/// sessions at a time, until the sessions are done, the duration has passed or
/// [`Bench::stop`] is called; returns when every session has ended.
pub async fn run(
    bench: Arc<Bench>,
    scenario: Arc<Scenario>,
    config: SessionConfig,
    credentials: Option<Credentials>,
    options: RunOptions,
    plan: Plan,
) {
    let workers = u64::from(plan.concurrency.clamp(1, MAX_CONCURRENCY)).min(plan.sessions.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let bench = bench.clone();
        let scenario = scenario.clone();
        let config = config.clone();
        let credentials = credentials.clone();
        tasks.spawn(async move {
            while bench.ticket(&plan).is_some() {
                bench.in_flight.fetch_add(1, Ordering::Relaxed);
                one(
                    &bench,
                    &scenario,
                    config.clone(),
                    credentials.clone(),
                    options,
                )
                .await;
                bench.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Sessions per second over `elapsed`.
#[allow(clippy::cast_precision_loss)]
pub fn rate(sessions: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        sessions as f64 / seconds
    } else {
        0.0
    }
}

/// The summary for a reader: the tally, the rate, each step's percentiles, the histogram of
/// whole sessions, and the failures by what went wrong.
pub fn text_summary(stats: &Stats, elapsed: Duration, plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} sessions in {:.2} s ({:.1} sessions/s, {} at a time): {} passed, {} failed",
        stats.finished,
        elapsed.as_secs_f64(),
        rate(stats.finished, elapsed),
        plan.concurrency,
        stats.passed,
        stats.failed()
    );
    let _ = writeln!(
        out,
        "\n{:<9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "step (ms)", "count", "mean", "p50", "p90", "p99", "max"
    );
    for step in Step::ALL {
        let h = stats.step(step);
        if h.count() == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<9} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            step.name(),
            h.count(),
            millis(h.mean()),
            millis(h.percentile(0.5)),
            millis(h.percentile(0.9)),
            millis(h.percentile(0.99)),
            millis(h.max()),
        );
    }
    let session = stats.step(Step::Session);
    let bars = session.bars(10);
    let widest = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    if !bars.is_empty() {
        let _ = writeln!(out, "\nsession time histogram (ms, upper bound):");
        for (upper, count) in bars {
            let width = usize::try_from(count * 40 / widest).unwrap_or(40);
            let _ = writeln!(
                out,
                "  {:>9.2} [{count:>7}] {}",
                millis(upper),
                "■".repeat(width)
            );
        }
    }
    let groups = stats.failure_groups();
    if !groups.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for (reason, count) in groups {
            let _ = writeln!(out, "  {count:>7} {reason}");
        }
    }
    out
}

/// The summary as one JSON object: `sessions`, `passed`, `failed`, `elapsed_s`,
/// `sessions_per_second`, `concurrency`, `steps` (each step's `count`, `mean_ms`, `p50_ms`,
/// `p90_ms`, `p99_ms`, `max_ms`), `histogram` (whole sessions: `le_ms` and `count`) and
/// `failures` (`reason` and `count`, the most frequent first).
pub fn json_summary(stats: &Stats, elapsed: Duration, plan: &Plan) -> serde_json::Value {
    use serde_json::json;
    let mut steps = serde_json::Map::new();
    for step in Step::ALL {
        let h = stats.step(step);
        if h.count() == 0 {
            continue;
        }
        steps.insert(
            step.name().to_owned(),
            json!({
                "count": h.count(),
                "mean_ms": millis(h.mean()),
                "p50_ms": millis(h.percentile(0.5)),
                "p90_ms": millis(h.percentile(0.9)),
                "p99_ms": millis(h.percentile(0.99)),
                "max_ms": millis(h.max()),
            }),
        );
    }
    let histogram: Vec<serde_json::Value> = stats
        .step(Step::Session)
        .bars(20)
        .into_iter()
        .map(|(upper, count)| json!({"le_ms": millis(upper), "count": count}))
        .collect();
    let failures: Vec<serde_json::Value> = stats
        .failure_groups()
        .into_iter()
        .map(|(reason, count)| json!({"reason": reason, "count": count}))
        .collect();
    json!({
        "sessions": stats.finished,
        "passed": stats.passed,
        "failed": stats.failed(),
        "elapsed_s": elapsed.as_secs_f64(),
        "sessions_per_second": rate(stats.finished, elapsed),
        "concurrency": plan.concurrency,
        "steps": steps,
        "histogram": histogram,
        "failures": failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (fraction, truth) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.percentile(fraction).as_secs_f64() * 1000.0;
            assert!((got - truth).abs() / truth < 0.05, "{fraction}: {got}");
        }
        assert_eq!(h.percentile(1.0), Duration::from_millis(1000));
        assert_eq!(h.max(), Duration::from_millis(1000));
        let bars = h.bars(10);
        assert_eq!(bars.iter().map(|b| b.1).sum::<u64>(), 1000);
    }

    #[test]
    fn queue_ids_are_masked_but_codes_kept() {
        assert_eq!(
            mask_unique("250 2.0.0 Ok: queued as 4Fq2xY7Kz"),
            "250 2.0.0 Ok: queued as *"
        );
        assert_eq!(
            mask_unique("554 5.7.1 <bob@lab.test>: Relay access denied"),
            "554 5.7.1 <bob@lab.test>: Relay access denied"
        );
    }
}
