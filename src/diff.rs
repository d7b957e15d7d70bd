//! `smtptui diff A B`: what changed in a server's behaviour between two transcripts.
//!
//! A transcript (the text `smtptui run` prints or writes with `--transcript`, or its `--json`
//! event stream) is read into the server's side of the dialog: each command with the reply
//! that answered it, the extensions each EHLO reply advertised (before and inside TLS), and
//! each TLS handshake with its certificate chain. What differs every run is ignored, so two
//! runs of an unchanged server compare equal: times, queue ids, dates, session ids, the
//! client's port, and the message lines (the client's, not the server's). The two dialogs are
//! aligned command by command (a longest common subsequence, so a command added on one side
//! does not shift every reply after it), and each difference is one line.
//!
//! The reading is streaming: a transcript of a million message lines costs the memory of its
//! commands only.

use std::fmt;
use std::io::BufRead;

/// The server's side of one transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Each command (or the greeting) with its reply, in order.
    pub exchanges: Vec<Exchange>,
    /// Each TLS handshake, in order.
    pub handshakes: Vec<Handshake>,
}

/// One command and the reply it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The command as sent, normalised (`(greeting)` for the greeting, `(end of message)` for
    /// the final dot).
    pub command: String,
    /// `cleartext` or `tls`: where the reply came.
    pub security: String,
    /// The reply's lines, normalised, without the code's separator (`250 PIPELINING`).
    pub reply: Vec<String>,
}

impl Exchange {
    /// The reply's code, if its first line starts with one.
    fn code(&self) -> &str {
        self.reply
            .first()
            .and_then(|l| l.get(..3))
            .unwrap_or_default()
    }

    /// The EHLO keywords of the reply (every line after the first), when the command was
    /// EHLO or LHLO and the reply a 250.
    fn extensions(&self) -> Option<Vec<String>> {
        let verb = self.command.split(' ').next().unwrap_or_default();
        let hello = verb.eq_ignore_ascii_case("EHLO") || verb.eq_ignore_ascii_case("LHLO");
        (hello && self.code() == "250").then(|| {
            self.reply
                .iter()
                .skip(1)
                .map(|l| l.get(4..).unwrap_or_default().to_owned())
                .collect()
        })
    }
}

/// One TLS handshake as the transcript describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handshake {
    /// Protocol version, cipher suite and key exchange (`TLSv1.3 TLS13_AES_256_GCM_SHA384
    /// X25519`).
    pub parameters: String,
    /// The verification verdict (`certificate verified for localhost`).
    pub verdict: String,
    /// Each certificate of the chain, leaf first, as one line of its fields.
    pub chain: Vec<String>,
}

/// Why a file could not be read as a transcript.
#[derive(Debug)]
pub struct NotATranscript {
    /// The file.
    pub file: String,
    /// What was wrong and what to give instead.
    pub reason: String,
}

impl fmt::Display for NotATranscript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

impl std::error::Error for NotATranscript {}

/// Reads a transcript in either form: JSON lines (each line an event object) or text.
///
/// # Errors
/// [`NotATranscript`] when the file cannot be read, or holds neither form.
pub fn read(name: &str, reader: impl BufRead) -> Result<Behaviour, NotATranscript> {
    let mut reading = Reading::default();
    let mut json = None;
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| NotATranscript {
            file: name.to_owned(),
            reason: format!("cannot read it: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let is_json = *json.get_or_insert_with(|| line.trim_start().starts_with('{'));
        if is_json {
            let event: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| NotATranscript {
                    file: name.to_owned(),
                    reason: format!(
                        "line {}: not a JSON event ({e}); give the output of smtptui run --json, \
                         or a text transcript",
                        number + 1
                    ),
                })?;
            reading.json_event(&event);
        } else {
            reading.text_line(&line);
        }
    }
    let behaviour = reading.finish();
    if behaviour.exchanges.is_empty() {
        return Err(NotATranscript {
            file: name.to_owned(),
            reason: "no reply from a server in it; give what smtptui run printed (or wrote \
                     with --transcript), or its --json output"
                .to_owned(),
        });
    }
    Ok(behaviour)
}

/// What a transcript's reading has seen so far.
#[derive(Default)]
struct Reading {
    behaviour: Behaviour,
    /// Commands sent and not answered yet, oldest first (a pipelined group sends several).
    waiting: std::collections::VecDeque<String>,
    /// The text form's reply lines read so far of a multiline reply.
    partial: Vec<String>,
    /// The security of the reply being read.
    partial_security: String,
    /// Inside a message (after a 354): C: lines are the message, up to a lone dot.
    in_message: bool,
    /// A BDAT chunk was sent: C: lines until its reply are the chunk.
    in_chunk: bool,
    greeted: bool,
}

impl Reading {
    fn command(&mut self, text: &str) {
        if self.in_message {
            if text == "." {
                self.in_message = false;
                self.waiting.push_back("(end of message)".to_owned());
            }
            return;
        }
        if self.in_chunk {
            return;
        }
        let verb = text.split(' ').next().unwrap_or_default();
        if verb.eq_ignore_ascii_case("BDAT") {
            self.in_chunk = true;
        }
        self.waiting.push_back(normalise(text));
    }

    fn reply(&mut self, security: &str, lines: Vec<String>) {
        let command = if self.greeted {
            self.waiting
                .pop_front()
                .unwrap_or_else(|| "(nothing: a reply nobody asked for)".to_owned())
        } else {
            self.greeted = true;
            "(greeting)".to_owned()
        };
        self.in_chunk = false;
        let verb = command.split(' ').next().unwrap_or_default();
        if verb.eq_ignore_ascii_case("DATA") && lines.first().is_some_and(|l| l.starts_with("354"))
        {
            self.in_message = true;
        }
        self.behaviour.exchanges.push(Exchange {
            command,
            security: security.to_owned(),
            reply: lines.iter().map(|l| normalise(l)).collect(),
        });
    }

    /// One line of the text form: `  0.017 plain S: 220 ...`, `tls   C: ...`, `== TLS
    /// established: ...`, `leaf[0]: ...`; the rest (notes, checks, `===` headers) is skipped.
    fn text_line(&mut self, line: &str) {
        let rest = line.trim_start();
        // The elapsed time, when there is one.
        let rest = match rest.split_once(' ') {
            Some((first, after)) if first.parse::<f64>().is_ok() => after.trim_start(),
            _ => rest,
        };
        let (security, body) = if let Some(body) = rest.strip_prefix("plain ") {
            ("cleartext", body.trim_start())
        } else if let Some(body) = rest.strip_prefix("tls ") {
            ("tls", body.trim_start())
        } else {
            ("", rest)
        };
        if let Some(text) = body.strip_prefix("S: ").or(body.strip_prefix("S?: ")) {
            self.partial_security = security.to_owned();
            self.partial.push(text.to_owned());
            // "250-" continues, "250 " (or a line too short to say) ends the reply.
            if text.as_bytes().get(3) != Some(&b'-') {
                let lines = std::mem::take(&mut self.partial);
                let security = std::mem::take(&mut self.partial_security);
                self.reply(&security, lines);
            }
        } else if let Some(text) = body.strip_prefix("C: ").or(body.strip_prefix("C:")) {
            self.command(text);
        } else if let Some(tls) = body.strip_prefix("== TLS established: ") {
            let (parameters, verdict) = tls.split_once(", ").unwrap_or((tls, ""));
            // The anchors the client trusted ("against web PKI roots and --ca-file") are the
            // client's choice, not the server's behaviour.
            let verdict = match verdict.split_once(" against ") {
                Some((verified, _)) if verified.starts_with("certificate verified for ") => {
                    verified
                }
                _ => verdict,
            };
            self.behaviour.handshakes.push(Handshake {
                parameters: parameters.to_owned(),
                verdict: verdict.to_owned(),
                chain: Vec::new(),
            });
        } else if (body.starts_with("leaf[") || body.starts_with("chain["))
            && let (Some(handshake), Some((_, fields))) =
                (self.behaviour.handshakes.last_mut(), body.split_once(": "))
        {
            handshake.chain.push(without_days_left(fields));
        }
    }

    fn json_event(&mut self, event: &serde_json::Value) {
        let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
        match event["event"].as_str().unwrap_or_default() {
            "sent" => match event["kind"].as_str().unwrap_or_default() {
                "message_line" => {
                    if event["text"].as_str() == Some(".") {
                        self.waiting.push_back("(end of message)".to_owned());
                    }
                }
                "chunk" | "message_file" => {}
                _ => self.waiting.push_back(normalise(&text("text"))),
            },
            "reply" => {
                let lines = event["lines"]
                    .as_array()
                    .map(|lines| {
                        lines
                            .iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                // The JSON form marks message lines itself (`message_line`), so the text
                // form's in-message state is never read on this path.
                self.reply(&text("security"), lines);
            }
            "tls" => {
                let chain = event["chain"]
                    .as_array()
                    .map(|chain| {
                        chain
                            .iter()
                            .map(|cert| {
                                let field = |k: &str| cert[k].as_str().unwrap_or_default();
                                let sans: Vec<&str> = cert["sans"]
                                    .as_array()
                                    .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
                                    .unwrap_or_default();
                                format!(
                                    "subject {}; issuer {}; {}; {}; valid until {}",
                                    field("subject"),
                                    field("issuer"),
                                    field("key"),
                                    sans.join(", "),
                                    field("not_after")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.behaviour.handshakes.push(Handshake {
                    parameters: format!(
                        "{} {} {}",
                        text("version"),
                        text("cipher_suite"),
                        text("key_exchange")
                    )
                    .trim()
                    .to_owned(),
                    // Worded as the text form words it, so either form compares with the other.
                    verdict: if event["verified"].as_bool() == Some(true) {
                        format!("certificate verified for {}", text("server_name"))
                    } else {
                        format!(
                            "certificate NOT VERIFIED ({}), continuing without verification",
                            text("verification_error")
                        )
                    },
                    chain,
                });
            }
            _ => {}
        }
    }

    fn finish(self) -> Behaviour {
        self.behaviour
    }
}

/// A certificate's fields without the days left before expiry, which change every day.
fn without_days_left(fields: &str) -> String {
    match fields.rfind(" (") {
        Some(at) if fields.ends_with(" days)") || fields.ends_with(" day)") => {
            fields[..at].to_owned()
        }
        _ => fields.to_owned(),
    }
}

/// A line with what changes every run replaced: queue ids (`queued as 28DF198C14A`, Exim's
/// `id=1t2Abc-000Xyz-0A`), dates and times, and long tokens mixing digits and letters
/// (session ids, hex ids, UUIDs). Words of letters only, numbers and codes stay, so a changed
/// text, limit or address still shows.
pub fn normalise(line: &str) -> String {
    // A reply's code and its separator ("250-", "354 ") are kept as they are.
    if let Some(code) = line.get(..4)
        && code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        && matches!(code.as_bytes()[3], b'-' | b' ')
    {
        return format!("{code}{}", normalise(&line[4..]));
    }
    let mut out: Vec<String> = Vec::new();
    let mut previous = "";
    for word in line.split(' ') {
        let replaced = if previous.eq_ignore_ascii_case("as") && out.len() >= 2 && {
            let before = out[out.len() - 2].to_ascii_lowercase();
            before.ends_with("queued")
        } {
            Some("<id>")
        } else {
            volatile(word)
        };
        out.push(replaced.map_or_else(|| word.to_owned(), str::to_owned));
        previous = word;
    }
    out.join(" ")
}

/// What a word that changes every run stands for, if it is one.
fn volatile(word: &str) -> Option<&'static str> {
    let core = word.trim_matches(|c: char| "<>()[],;\"'".contains(c));
    if let Some(value) = core.strip_prefix("id=") {
        return (!value.is_empty()).then_some("id=<id>");
    }
    let is_time = {
        let parts: Vec<&str> = core.split(':').collect();
        (parts.len() == 3 || parts.len() == 2)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            || core.len() >= 19
                && core.as_bytes().get(4) == Some(&b'-')
                && core.as_bytes().get(10) == Some(&b'T')
    };
    if is_time {
        return Some("<time>");
    }
    // An id (queue id, session id, UUID, a SASL challenge with its timestamp) mixes digits and
    // letters all through: eight characters or more of them (and '-', '.' or base64's '+',
    // '/', '='), switching between digit and letter at least three times. A keyword with a
    // number (SMTPUTF8, X25519) or a host name (smtp-in01) switches once or twice.
    let switches = core
        .as_bytes()
        .windows(2)
        .filter(|pair| {
            pair[0].is_ascii_digit() && pair[1].is_ascii_alphabetic()
                || pair[0].is_ascii_alphabetic() && pair[1].is_ascii_digit()
        })
        .count();
    let id_like = core.len() >= 8
        && switches >= 3
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+/=".contains(&b));
    id_like.then_some("<id>")
}

/// One difference between two behaviours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference(pub String);

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every difference between `before` and `after`, each as one line for a person: extensions
/// added or removed (and values like SIZE changed), TLS parameters and certificates changed,
/// replies whose code or text changed, commands answered on one side only.
pub fn compare(before: &Behaviour, after: &Behaviour) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut say = |text: String| differences.push(Difference(text));

    // Extensions, by where they were advertised (the last EHLO reply before TLS, the last in
    // TLS).
    for security in ["cleartext", "tls"] {
        let find = |b: &Behaviour| {
            b.exchanges
                .iter()
                .rev()
                .filter(|e| e.security == security)
                .find_map(Exchange::extensions)
        };
        if let (Some(old), Some(new)) = (find(before), find(after)) {
            let keyword = |e: &String| e.split(' ').next().unwrap_or_default().to_ascii_uppercase();
            let place = if security == "tls" {
                "inside TLS"
            } else {
                "before TLS"
            };
            for gone in old
                .iter()
                .filter(|o| !new.iter().any(|n| keyword(n) == keyword(o)))
            {
                say(format!("extension removed {place}: {gone}"));
            }
            for added in new
                .iter()
                .filter(|n| !old.iter().any(|o| keyword(o) == keyword(n)))
            {
                say(format!("extension added {place}: {added}"));
            }
            for o in &old {
                if let Some(n) = new.iter().find(|n| keyword(n) == keyword(o) && *n != o) {
                    say(format!("extension changed {place}: {o} -> {n}"));
                }
            }
        }
    }

    // TLS.
    let count = before.handshakes.len().max(after.handshakes.len());
    for index in 0..count {
        match (before.handshakes.get(index), after.handshakes.get(index)) {
            (Some(old), Some(new)) => {
                if old.parameters != new.parameters {
                    say(format!("TLS: {} -> {}", old.parameters, new.parameters));
                }
                if old.verdict != new.verdict {
                    say(format!(
                        "TLS verification: {} -> {}",
                        old.verdict, new.verdict
                    ));
                }
                let certificates = old.chain.len().max(new.chain.len());
                for at in 0..certificates {
                    match (old.chain.get(at), new.chain.get(at)) {
                        (Some(o), Some(n)) if o != n => {
                            say(format!("certificate [{at}] changed: {o} -> {n}"));
                        }
                        (Some(o), None) => say(format!("certificate [{at}] no longer sent: {o}")),
                        (None, Some(n)) => say(format!("certificate [{at}] now sent: {n}")),
                        _ => {}
                    }
                }
            }
            (Some(old), None) => say(format!("TLS no longer established: {}", old.parameters)),
            (None, Some(new)) => say(format!("TLS now established: {}", new.parameters)),
            (None, None) => {}
        }
    }

    // Replies, command by command.
    let key = |e: &Exchange| format!("{} ({})", e.command, e.security);
    let old: Vec<String> = before.exchanges.iter().map(key).collect();
    let new: Vec<String> = after.exchanges.iter().map(key).collect();
    for step in align(&old, &new) {
        match step {
            Aligned::Both(i, j) => {
                let (o, n) = (&before.exchanges[i], &after.exchanges[j]);
                // An EHLO reply's extensions are compared above; its first line here.
                let lines = |e: &Exchange| {
                    if e.extensions().is_some() {
                        e.reply.iter().take(1).cloned().collect::<Vec<_>>()
                    } else {
                        e.reply.clone()
                    }
                };
                if lines(o) != lines(n) {
                    say(format!(
                        "reply to {}: {} -> {}",
                        old[i],
                        lines(o).join(" / "),
                        lines(n).join(" / ")
                    ));
                }
            }
            Aligned::Before(i) => say(format!(
                "only before: {} answered {}",
                old[i],
                before.exchanges[i]
                    .reply
                    .first()
                    .cloned()
                    .unwrap_or_default()
            )),
            Aligned::After(j) => say(format!(
                "only after: {} answered {}",
                new[j],
                after.exchanges[j]
                    .reply
                    .first()
                    .cloned()
                    .unwrap_or_default()
            )),
        }
    }
    differences
}

/// One step of an alignment of two sequences.
enum Aligned {
    Both(usize, usize),
    Before(usize),
    After(usize),
}

/// The longest common subsequence alignment of `a` and `b` (quadratic; dialogs are short,
/// and a transcript's message lines are not in them). Past 4,000 commands a side, pairs by
/// position instead, to bound the work.
fn align(a: &[String], b: &[String]) -> Vec<Aligned> {
    const LIMIT: usize = 4_000;
    if a.len() > LIMIT || b.len() > LIMIT {
        let mut steps: Vec<Aligned> = (0..a.len().min(b.len()))
            .map(|i| Aligned::Both(i, i))
            .collect();
        steps.extend((b.len()..a.len()).map(Aligned::Before));
        steps.extend((a.len()..b.len()).map(Aligned::After));
        return steps;
    }
    let (n, m) = (a.len(), b.len());
    let mut table = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1].saturating_add(1)
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut steps = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            steps.push(Aligned::Both(i, j));
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            steps.push(Aligned::Before(i));
            i += 1;
        } else {
            steps.push(Aligned::After(j));
            j += 1;
        }
    }
    steps.extend((i..n).map(Aligned::Before));
    steps.extend((j..m).map(Aligned::After));
    steps
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test assertions
mod tests {
    use super::*;

    #[test]
    fn what_changes_every_run_is_ignored_and_what_a_server_says_is_kept() {
        assert_eq!(
            normalise("250 2.0.0 Ok: queued as 28DF198C14A"),
            "250 2.0.0 Ok: queued as <id>"
        );
        assert_eq!(normalise("250 OK id=1t2Abc-000Xyz-0A"), "250 OK id=<id>");
        assert_eq!(
            normalise("220 mx.example.com ESMTP Exim 4.96 Tue, 01 Dec 2026 10:02:11 +0000"),
            "220 mx.example.com ESMTP Exim 4.96 Tue, 01 Dec 2026 <time> +0000"
        );
        assert_eq!(
            normalise("250 session 5f3c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6 ok"),
            "250 session <id> ok"
        );
        // Words, numbers, limits and host names are what the server says: kept.
        for kept in [
            "250-SIZE 10240000",
            "554 5.7.1 <carol@elsewhere.example>: Relay access denied",
            "220 mx1.example.com ESMTP",
            "250 2.1.5 Ok",
            "250-SMTPUTF8",
            "250 smtp-in01.example.net",
        ] {
            assert_eq!(normalise(kept), kept);
        }
    }

    fn behaviour(text: &str) -> Behaviour {
        read("t", text.as_bytes()).unwrap()
    }

    const RUN: &str = "\
   0.000       .. connecting to 127.0.0.1:20025 (plain TCP; TLS only after STARTTLS)
   0.017 plain S: 220 localhost ESMTP Postfix
   0.018 plain C: EHLO client.example
   0.018 plain S: 250-localhost
   0.018 plain S: 250-PIPELINING
   0.018 plain S: 250-SIZE 10240000
   0.018 plain S: 250 STARTTLS
   0.018 plain C: STARTTLS
   0.018 plain S: 220 2.0.0 Ready to start TLS
   0.004 tls   == TLS established: TLSv1.3 TLS13_AES_256_GCM_SHA384 X25519, certificate verified for localhost against web PKI roots and --ca-file
   0.004          leaf[0]: subject CN=localhost; issuer CN=test CA; EC P-256; DNS:localhost; valid until 2036-11-28T21:24:21Z (3649 days)
   0.011 tls   C: EHLO client.example
   0.013 tls   S: 250-localhost
   0.013 tls   S: 250 SIZE 10240000
   0.014 tls   C: MAIL FROM:<a@example.org>
   0.014 tls   S: 250 2.1.0 Ok
   0.014 tls   C: DATA
   0.015 tls   S: 354 End data with <CR><LF>.<CR><LF>
   0.015 tls   C: Subject: hi
   0.015 tls   C: MAIL FROM:<not a command, a message line>
   0.015 tls   C: .
   0.020 tls   S: 250 2.0.0 Ok: queued as 28DF198C14A
   0.020 tls   C: QUIT
   0.020 tls   S: 221 2.0.0 Bye
";

    #[test]
    fn a_text_transcript_reads_as_commands_and_their_replies() {
        let read = behaviour(RUN);
        let commands: Vec<&str> = read.exchanges.iter().map(|e| e.command.as_str()).collect();
        assert_eq!(
            commands,
            [
                "(greeting)",
                "EHLO client.example",
                "STARTTLS",
                "EHLO client.example",
                "MAIL FROM:<a@example.org>",
                "DATA",
                "(end of message)",
                "QUIT"
            ]
        );
        assert_eq!(read.exchanges[6].reply, ["250 2.0.0 Ok: queued as <id>"]);
        assert_eq!(read.handshakes.len(), 1);
        // Which anchors the client trusted is the client's choice: not compared.
        assert_eq!(
            read.handshakes[0].verdict,
            "certificate verified for localhost"
        );
        assert!(!read.handshakes[0].chain[0].contains("days"));
    }

    #[test]
    fn the_same_behaviour_on_another_day_is_no_difference() {
        let later = RUN
            .replace("28DF198C14A", "9A1B2C3D4E5")
            .replace("(3649 days)", "(3600 days)")
            .replace("0.017", "0.519");
        assert_eq!(compare(&behaviour(RUN), &behaviour(&later)), []);
    }

    #[test]
    fn changes_in_extensions_certificates_and_replies_are_each_named() {
        let after = RUN
            .replace("   0.018 plain S: 250-PIPELINING\n", "")
            .replace(
                "   0.018 plain S: 250-SIZE 10240000",
                "   0.018 plain S: 250-SIZE 1000000\n   0.018 plain S: 250-SMTPUTF8",
            )
            .replace("subject CN=localhost", "subject CN=mail.example")
            .replace("250 2.1.0 Ok", "553 5.7.1 Sender address rejected");
        let differences: Vec<String> = compare(&behaviour(RUN), &behaviour(&after))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            differences,
            [
                "extension removed before TLS: PIPELINING",
                "extension added before TLS: SMTPUTF8",
                "extension changed before TLS: SIZE 10240000 -> SIZE 1000000",
                "certificate [0] changed: subject CN=localhost; issuer CN=test CA; EC P-256; \
                 DNS:localhost; valid until 2036-11-28T21:24:21Z -> subject CN=mail.example; \
                 issuer CN=test CA; EC P-256; DNS:localhost; valid until 2036-11-28T21:24:21Z",
                "reply to MAIL FROM:<a@example.org> (tls): 250 2.1.0 Ok -> 553 5.7.1 Sender \
                 address rejected",
            ],
        );
    }

    #[test]
    fn a_command_on_one_side_only_does_not_shift_the_others() {
        let after = RUN.replace(
            "   0.014 tls   C: DATA",
            "   0.014 tls   C: RCPT TO:<b@example.org>\n   0.014 tls   S: 250 2.1.5 Ok\n   0.014 tls   C: DATA",
        );
        let differences = compare(&behaviour(RUN), &behaviour(&after));
        assert_eq!(
            differences,
            [Difference(
                "only after: RCPT TO:<b@example.org> (tls) answered 250 2.1.5 Ok".to_owned()
            )]
        );
    }

    #[test]
    fn something_that_is_no_transcript_is_an_error_that_says_what_to_give() {
        let error = read("notes.txt", "hello\nworld\n".as_bytes()).unwrap_err();
        assert!(error.to_string().contains("notes.txt: no reply"), "{error}");
        let error = read("x.json", "{\"event\": \"reply\"\n".as_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("x.json: line 1: not a JSON event"),
            "{error}"
        );
    }
}
