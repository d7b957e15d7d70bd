//! MTA-STS (RFC 8461) as pure code: the `_mta-sts.<domain>` TXT record, the policy host's
//! answer, the policy file, and which MX hosts a policy lists.
//!
//! Where senders disagree, the policy is read the way that makes mail least likely to get
//! through, so that a verdict of "delivers" holds for every sender: a policy that a strict
//! parser rejects but a lenient one applies is applied, and each such [`Deviation`] is
//! reported so that the strict senders are not forgotten. What every sender rejects (no
//! `version: STSv1`, no mode, no `max_age`, no `mx` outside mode `none`) is a
//! [`PolicyUnavailable::Invalid`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::http::HttpError;
use crate::proto::escape::escape_str;
use crate::tls::CertificateProblem;

/// Where senders fetch the policy from, on the policy host `mta-sts.<domain>`.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// The largest policy body read: RFC 8461 §3.3 suggests a limit of no less than 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// The largest `max_age` RFC 8461 §3.2 allows: 31557600 seconds (a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// A `max_age` below this (a day) is flagged on an enforced policy: RFC 8461 §3.2 recommends
/// weeks, and every expiry reopens the window in which an attacker who blocks the fetch
/// keeps senders in the clear.
pub const MAX_AGE_SHORT: u64 = 86_400;

/// The policy host of a domain: `mta-sts.<domain>`.
pub fn policy_host(domain: &str) -> String {
    format!("mta-sts.{domain}")
}

/// The URL of a domain's policy.
pub fn policy_url(domain: &str) -> String {
    format!("https://{}{POLICY_PATH}", policy_host(domain))
}

/// A valid `_mta-sts` TXT record (RFC 8461 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsRecord {
    /// The policy's `id`: senders fetch the policy again when it changes.
    pub id: String,
}

/// Why a domain's `_mta-sts` TXT records give senders no policy to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// No record begins with `v=STSv1;` exactly, but this one nearly does; senders discard
    /// it.
    NearMiss(String),
    /// Several records begin with `v=STSv1;`: RFC 8461 §3.1 wants exactly one.
    Several(Vec<String>),
    /// The one record does not follow RFC 8461 §3.1's syntax.
    Syntax {
        /// The record, as published.
        record: String,
        /// What is wrong with it.
        why: String,
    },
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NearMiss(record) => write!(
                f,
                "the record \"{}\" does not begin with `v=STSv1;` exactly, so senders discard it",
                escape_str(record)
            ),
            Self::Several(records) => write!(
                f,
                "{} records begin with `v=STSv1;` (\"{}\"), and RFC 8461 §3.1 wants exactly one",
                records.len(),
                records
                    .iter()
                    .map(|r| escape_str(r))
                    .collect::<Vec<_>>()
                    .join("\", \"")
            ),
            Self::Syntax { record, why } => {
                write!(f, "the record \"{}\" is invalid: {why}", escape_str(record))
            }
        }
    }
}

/// Whether a TXT record concerns MTA-STS: it begins with `v=STSv1`, in any case (senders
/// only take those beginning with `v=STSv1;` exactly; the others are near misses worth
/// reporting).
pub fn concerns(record: &str) -> bool {
    record
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("v=STSv1"))
}

/// What a domain's `_mta-sts` TXT records say: `None` when none concerns MTA-STS.
pub fn discover(records: &[String]) -> Option<Result<StsRecord, RecordProblem>> {
    // RFC 8461 §3.1: records that do not begin with "v=STSv1;" are discarded.
    let candidates: Vec<&String> = records
        .iter()
        .filter(|r| r.starts_with("v=STSv1;"))
        .collect();
    match candidates.as_slice() {
        [] => records
            .iter()
            .find(|r| concerns(r))
            .map(|r| Err(RecordProblem::NearMiss(r.clone()))),
        [record] => Some(parse_record(record).map_err(|why| RecordProblem::Syntax {
            record: (*record).clone(),
            why,
        })),
        several => Some(Err(RecordProblem::Several(
            several.iter().map(|r| (*r).clone()).collect(),
        ))),
    }
}

/// Parses one `_mta-sts` record.
///
/// # Errors
/// What breaks RFC 8461 §3.1's syntax, in words.
pub fn parse_record(text: &str) -> Result<StsRecord, String> {
    let fields = tag_fields(text, "v=STSv1", |_| false)?;
    let mut id = None;
    for (name, value) in fields {
        if name == "id" && id.is_none() {
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "id=\"{}\" is not 1 to 32 letters and digits",
                    escape_str(&value)
                ));
            }
            id = Some(value);
        }
    }
    id.map(|id| StsRecord { id })
        .ok_or_else(|| "it has no id= field".to_owned())
}

/// The fields of a DNS tag record of RFC 8461 §3.1 and RFC 8460 §3's shared form:
/// `VERSION` then `; name=value` fields, with optional whitespace around each `;` and an
/// optional final `;`. Values are printable ASCII without space or `=`, but for the fields
/// `free` names, whose own syntax the caller checks (any text without control characters).
///
/// # Errors
/// What breaks the syntax, in words.
pub fn tag_fields(
    text: &str,
    version: &str,
    free: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, String> {
    let rest = text
        .strip_prefix(version)
        .ok_or_else(|| format!("it does not begin with {version}"))?;
    let wsp: &[char] = &[' ', '\t'];
    let mut parts = rest.split(';');
    if !parts
        .next()
        .unwrap_or_default()
        .trim_matches(wsp)
        .is_empty()
    {
        return Err(format!("{version} is not followed by `;`"));
    }
    let parts: Vec<&str> = parts.map(|p| p.trim_matches(wsp)).collect();
    let count = parts.len();
    let mut fields = Vec::new();
    for (index, part) in parts.into_iter().enumerate() {
        if part.is_empty() {
            // Only the last may be empty: a final `;`.
            if index + 1 == count && index > 0 {
                continue;
            }
            return Err(
                "it has an empty field (two `;` in a row, or none after the version)".to_owned(),
            );
        }
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("the field \"{}\" is not name=value", escape_str(part)))?;
        if !is_field_name(name) {
            return Err(format!("\"{}\" is not a field name", escape_str(name)));
        }
        let plain = |b: u8| (0x21..=0x7e).contains(&b) && b != b'=';
        let free_text = |b: u8| (0x20..=0x7e).contains(&b) || b == b'\t';
        let allowed = if free(name) { free_text } else { plain };
        if value.is_empty() || !value.bytes().all(allowed) {
            return Err(format!(
                "the value of {name} (\"{}\") is empty or holds a space, `=` or a character \
                 outside printable ASCII",
                escape_str(value)
            ));
        }
        fields.push((name.to_owned(), value.to_owned()));
    }
    Ok(fields)
}

/// `(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`, RFC 8461 §3.1 and §3.2.
fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts with valid certificates.
    Enforce,
    /// Report failures (TLS-RPT), deliver anyway.
    Testing,
    /// No policy: how a published policy is withdrawn.
    None,
}

impl Mode {
    /// `enforce`, `testing`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }
}

/// One `mx` line of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxPattern {
    /// The pattern as written, escaped for display.
    pub text: String,
    /// `*.` in front: exactly one more label on the left matches.
    pub wildcard: bool,
    /// The name after any `*.`, lower case, without a final dot; `None` when the pattern
    /// is no host name at all (it matches nothing).
    pub domain: Option<String>,
}

impl MxPattern {
    fn parse(text: &str) -> (Self, Option<String>) {
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut problem = None;
        let name = match name.strip_suffix('.') {
            Some(stripped) => {
                problem = Some(format!(
                    "`mx: {}` ends in a dot, which RFC 8461 §3.2 does not allow: senders that \
                     keep the dot match no MX with it",
                    escape_str(text)
                ));
                stripped
            }
            None => name,
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            problem = Some(format!(
                "`mx: {}` is not a host name or `*.` and a host name (RFC 8461 §3.2): it \
                 matches no MX",
                escape_str(text)
            ));
        }
        (
            Self {
                text: escape_str(text),
                wildcard,
                domain: valid.then(|| name.to_ascii_lowercase()),
            },
            problem,
        )
    }

    /// Whether an MX host name matches (RFC 8461 §4.1): the same name, or for `*.name`
    /// one label and `.name`; case does not matter.
    pub fn matches(&self, host: &str) -> bool {
        let Some(domain) = &self.domain else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.wildcard {
            host.split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == domain)
        } else {
            host == *domain
        }
    }
}

/// A policy as senders apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    /// `mode`.
    pub mode: Mode,
    /// The `mx` patterns, in order.
    pub mx: Vec<MxPattern>,
    /// `max_age` in seconds, as written (capped at `u64::MAX`).
    pub max_age: u64,
    /// The policy's lines, escaped, for reports.
    pub lines: Vec<String>,
    /// What strict senders reject or read differently.
    pub deviations: Vec<Deviation>,
}

impl StsPolicy {
    /// Whether an MX host matches one of the `mx` patterns.
    pub fn lists(&self, host: &str) -> bool {
        self.mx.iter().any(|p| p.matches(host))
    }

    /// The policy as RFC 8461 §3.2 writes it: what lenient senders apply, with the patterns
    /// that are host names and `max_age` within the limit.
    pub fn canonical(&self) -> String {
        let mut text = format!("version: STSv1\nmode: {}\n", self.mode.name());
        for pattern in &self.mx {
            if let Some(domain) = &pattern.domain {
                let star = if pattern.wildcard { "*." } else { "" };
                text.push_str(&format!("mx: {star}{domain}\n"));
            }
        }
        text.push_str(&format!("max_age: {}\n", self.max_age.min(MAX_AGE_LIMIT)));
        text
    }
}

/// Something in or around a policy that not every sender reads the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// What it is, what the RFC says, and what strict senders do.
    pub why: String,
    /// Whether it is about how the policy is served (its media type) rather than its text.
    pub serving: bool,
}

/// Why senders get no policy from the policy host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyUnavailable {
    /// `mta-sts.<domain>` has no address.
    NoAddress(String),
    /// No address of it accepted a connection.
    Unreachable(String),
    /// Its certificate does not verify (RFC 8461 §3.3: web PKI, valid for the policy host).
    Certificate(CertificateProblem),
    /// The TLS handshake failed otherwise.
    Tls(String),
    /// The response could not be read.
    Http(HttpError),
    /// The fetch did not finish in time.
    TimedOut(Duration),
    /// A redirect, which senders do not follow (RFC 8461 §3.3).
    Redirect {
        /// The status code.
        status: u16,
        /// Where it pointed, escaped.
        location: Option<String>,
    },
    /// Another status than 200.
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase, escaped.
        reason: String,
    },
    /// The body is no policy every sender accepts.
    Invalid(String),
}

impl PolicyUnavailable {
    /// RFC 8460 §4.3.2.2's result type for it: `sts-webpki-invalid`, `sts-policy-invalid`
    /// or `sts-policy-fetch-error`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "sts-webpki-invalid",
            Self::Invalid(_) => "sts-policy-invalid",
            _ => "sts-policy-fetch-error",
        }
    }
}

impl fmt::Display for PolicyUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAddress(why) => write!(f, "the policy host has no address ({why})"),
            Self::Unreachable(why) => write!(f, "the policy host cannot be reached ({why})"),
            Self::Certificate(problem) => {
                // The advice on which name to connect by is for servers the user names; the
                // policy host's name is fixed (RFC 8461 §3.3).
                let detail = problem
                    .detail
                    .split("; connect by a name")
                    .next()
                    .unwrap_or(&problem.detail);
                write!(f, "the policy host's certificate does not verify: {detail}")
            }
            Self::Tls(why) => write!(f, "TLS with the policy host failed ({why})"),
            Self::Http(error) => write!(f, "the answer cannot be read: {error}"),
            Self::TimedOut(after) => write!(
                f,
                "the policy host did not answer within {}s",
                after.as_secs()
            ),
            Self::Redirect { status, location } => write!(
                f,
                "the policy URL answers {status}, a redirect{}, and senders do not follow \
                 redirects (RFC 8461 §3.3)",
                location
                    .as_deref()
                    .map(|l| format!(" to {l}"))
                    .unwrap_or_default()
            ),
            Self::Status { status, reason } => write!(
                f,
                "the policy URL answers {status} {reason}, and only a 200 carries a policy \
                 (RFC 8461 §3.3)"
            ),
            Self::Invalid(why) => write!(f, "the policy is invalid: {why}"),
        }
    }
}

/// What the policy host gave, as the fetch saw it: plain data for the judging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFetch {
    /// The fetch failed before an HTTP answer.
    Failed(PolicyUnavailable),
    /// An HTTP answer from this address.
    Answered {
        /// The address that answered.
        address: IpAddr,
        /// The status code.
        status: u16,
        /// The reason phrase, escaped.
        reason: String,
        /// `Content-Type`, as sent (not escaped).
        content_type: Option<String>,
        /// `Location`, as sent (not escaped).
        location: Option<String>,
        /// The body (at most [`MAX_BODY`] bytes).
        body: Vec<u8>,
    },
}

/// The policy senders take from what the policy host gave.
///
/// # Errors
/// [`PolicyUnavailable`] when no sender gets a policy from it.
pub fn policy_from(fetch: &PolicyFetch) -> Result<StsPolicy, PolicyUnavailable> {
    let (status, reason, content_type, location, body) = match fetch {
        PolicyFetch::Failed(why) => return Err(why.clone()),
        PolicyFetch::Answered {
            status,
            reason,
            content_type,
            location,
            body,
            ..
        } => (*status, reason, content_type, location, body),
    };
    if (300..400).contains(&status) {
        return Err(PolicyUnavailable::Redirect {
            status,
            location: location.as_deref().map(escape_str),
        });
    }
    if status != 200 {
        return Err(PolicyUnavailable::Status {
            status,
            reason: reason.clone(),
        });
    }
    let mut policy = parse_policy(body).map_err(PolicyUnavailable::Invalid)?;
    let media_type = content_type.as_deref().map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    if media_type.as_deref() != Some("text/plain") {
        policy.deviations.insert(
            0,
            Deviation {
                why: format!(
                    "the policy is served {}, not as text/plain: senders that check the type, \
                     as RFC 8461 §3.2 says they should, ignore the policy",
                    match content_type {
                        Some(t) => format!("as {}", escape_str(t)),
                        None => "without a Content-Type".to_owned(),
                    }
                ),
                serving: true,
            },
        );
    }
    Ok(policy)
}

/// Parses a policy file (RFC 8461 §3.2).
///
/// # Errors
/// Why no sender would accept it, in words.
pub fn parse_policy(body: &[u8]) -> Result<StsPolicy, String> {
    let text =
        std::str::from_utf8(body).map_err(|_| "it is not UTF-8 text (RFC 8461 §3.2)".to_owned())?;
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // The final line end ends the last field; it does not start an empty one.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut deviations = Vec::new();
    let mut deviate = |why: String| {
        deviations.push(Deviation {
            why,
            serving: false,
        });
    };
    let mut version: Option<String> = None;
    let mut mode: Option<String> = None;
    let mut max_age: Option<String> = None;
    let mut mx = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            deviate(format!(
                "line {number} is empty: RFC 8461 §3.2 has no empty lines, and strict senders \
                 reject the whole policy"
            ));
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            deviate(format!(
                "line {number} (\"{}\") has no `:`: strict senders reject the whole policy",
                escape_str(line)
            ));
            continue;
        };
        if key != key.trim_end() || !is_field_name(key.trim_end()) {
            deviate(format!(
                "line {number}: \"{}\" is not a field name followed directly by `:`: strict \
                 senders reject the whole policy",
                escape_str(key)
            ));
        }
        let key = key.trim();
        let value = value.trim_matches([' ', '\t']);
        let first = |slot: &mut Option<String>, deviate: &mut dyn FnMut(String)| {
            if slot.is_some() {
                deviate(format!(
                    "`{key}` is given more than once: senders use the first (line {number} is \
                     ignored)"
                ));
            } else {
                *slot = Some(value.to_owned());
            }
        };
        match key {
            "version" => first(&mut version, &mut deviate),
            "mode" => first(&mut mode, &mut deviate),
            "max_age" => first(&mut max_age, &mut deviate),
            "mx" => {
                let (pattern, problem) = MxPattern::parse(value);
                if let Some(problem) = problem {
                    deviate(problem);
                }
                mx.push(pattern);
            }
            // Unknown fields are ignored (RFC 8461 §3.2).
            _ => {}
        }
    }
    let version = version.ok_or("it has no `version: STSv1` line")?;
    if version != "STSv1" {
        if version.eq_ignore_ascii_case("STSv1") {
            deviate(format!(
                "`version: {}` is not written `STSv1`: the field is case-sensitive, and \
                 strict senders reject the policy",
                escape_str(&version)
            ));
        } else {
            return Err(format!("`version: {}` is not STSv1", escape_str(&version)));
        }
    }
    let mode_text = mode.ok_or("it has no `mode` line")?;
    let mode = match mode_text.to_ascii_lowercase().as_str() {
        "enforce" => Mode::Enforce,
        "testing" => Mode::Testing,
        "none" => Mode::None,
        _ => {
            return Err(format!(
                "`mode: {}` is none of enforce, testing and none",
                escape_str(&mode_text)
            ));
        }
    };
    if mode_text != mode.name() {
        deviate(format!(
            "`mode: {}` is not written in lower case: the value is case-sensitive, and strict \
             senders reject the policy",
            escape_str(&mode_text)
        ));
    }
    let max_age_text = max_age.ok_or("it has no `max_age` line")?;
    if max_age_text.is_empty() || !max_age_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`max_age: {}` is not a number of seconds",
            escape_str(&max_age_text)
        ));
    }
    if max_age_text.len() > 10 {
        deviate(format!(
            "`max_age: {max_age_text}` has more than the 10 digits RFC 8461 §3.2 allows: \
             strict senders reject the policy"
        ));
    }
    let max_age = max_age_text.parse::<u64>().unwrap_or(u64::MAX);
    if mx.is_empty() && mode != Mode::None {
        return Err(format!(
            "mode {} needs at least one `mx` line (RFC 8461 §3.2)",
            mode.name()
        ));
    }
    Ok(StsPolicy {
        mode,
        mx,
        max_age,
        lines: lines.iter().map(|l| escape_str(l)).collect(),
        deviations,
    })
}

/// The policy file to publish for these MX hosts: each listed by name, in this mode, cached
/// for a week.
pub fn policy_text(mode: Mode, mx_hosts: &[String]) -> String {
    let mut text = format!("version: STSv1\nmode: {}\n", mode.name());
    for host in mx_hosts {
        text.push_str(&format!("mx: {host}\n"));
    }
    text.push_str("max_age: 604800\n");
    text
}

/// The `_mta-sts` TXT record to publish, in zone-file form.
pub fn record_text(domain: &str, id: &str) -> String {
    format!("_mta-sts.{domain}. IN TXT \"v=STSv1; id={id}\"")
}

/// A fresh policy id from a time (seconds since the Unix epoch): `YYYYMMDDhhmmss` in UTC,
/// letters and digits as RFC 8461 §3.1 requires, and greater than any earlier one.
pub fn new_id(unix: u64) -> String {
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    i64::try_from(unix)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
#[allow(clippy::panic)] // panicking is how a test fails
mod tests {
    use super::*;

    fn records(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn records_as_rfc_8461_section_3_1_reads_them() {
        let ok = |text: &str| discover(&records(&[text])).expect("concerns MTA-STS");
        assert_eq!(
            ok("v=STSv1; id=20160831085700Z;"),
            Ok(StsRecord {
                id: "20160831085700Z".to_owned()
            })
        );
        assert_eq!(
            ok("v=STSv1;id=abc ;  ext.1=x"),
            Ok(StsRecord {
                id: "abc".to_owned()
            })
        );
        for bad in [
            "v=STSv1; id=2026-05-01",
            "v=STSv1; id=",
            "v=STSv1; id=123456789012345678901234567890123",
            "v=STSv1;",
            "v=STSv1; ext=1",
            "v=STSv1; id=a;; ext=1",
            "v=STSv1; id = a",
            "v=STSv1; id=a b",
        ] {
            assert!(
                matches!(ok(bad), Err(RecordProblem::Syntax { .. })),
                "{bad} should be invalid"
            );
        }
        // Records not beginning with "v=STSv1;" are discarded; one that nearly does is
        // said to be discarded.
        assert_eq!(discover(&records(&["v=spf1 -all"])), None);
        assert!(matches!(
            discover(&records(&["v=STSv1 ; id=a"])),
            Some(Err(RecordProblem::NearMiss(_)))
        ));
        assert_eq!(
            discover(&records(&["v=STSv1 ; id=a", "v=STSv1; id=b"])),
            Some(Ok(StsRecord { id: "b".to_owned() }))
        );
        assert!(matches!(
            discover(&records(&["v=STSv1; id=a", "v=STSv1; id=b"])),
            Some(Err(RecordProblem::Several(_)))
        ));
    }

    #[test]
    fn mx_patterns_match_as_rfc_8461_section_4_1_says() {
        let pattern = |text: &str| MxPattern::parse(text).0;
        let wildcard = pattern("*.example.com");
        assert!(wildcard.matches("mail.example.com"));
        assert!(wildcard.matches("MAIL.Example.COM."));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("a.b.example.com"));
        assert!(!wildcard.matches("mailexample.com"));
        let exact = pattern("mx1.example.com");
        assert!(exact.matches("mx1.example.com"));
        assert!(!exact.matches("mx2.example.com"));
        assert!(!exact.matches("a.mx1.example.com"));
        for broken in ["mail.*.com", "*mail.example.com", "https://mx.example", ""] {
            let (p, problem) = MxPattern::parse(broken);
            assert!(problem.is_some(), "{broken}");
            assert!(!p.matches("mail.example.com"), "{broken}");
        }
        let (dot, problem) = MxPattern::parse("mx.example.com.");
        assert!(problem.is_some());
        assert!(dot.matches("mx.example.com"));
    }

    #[test]
    fn policies_every_sender_accepts() {
        let policy = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n\
              max_age: 604800\r\nextension: anything goes\r\n",
        )
        .expect("valid");
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age, 604_800);
        assert_eq!(policy.mx.len(), 2);
        assert!(policy.lists("x.example.net"));
        assert!(policy.deviations.is_empty(), "{:?}", policy.deviations);
        let none = parse_policy(b"version: STSv1\nmode: none\nmax_age: 86400").expect("valid");
        assert_eq!(none.mode, Mode::None);
        assert!(none.deviations.is_empty());
    }

    #[test]
    fn policies_no_sender_accepts() {
        for (body, why) in [
            (
                b"mode: enforce\nmx: a.b\nmax_age: 1\n".as_slice(),
                "no `version",
            ),
            (
                b"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                "not STSv1",
            ),
            (b"version: STSv1\nmx: a.b\nmax_age: 1\n", "no `mode`"),
            (
                b"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                "none of",
            ),
            (b"version: STSv1\nmode: enforce\nmx: a.b\n", "no `max_age`"),
            (
                b"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1w\n",
                "not a number",
            ),
            (
                b"version: STSv1\nmode: testing\nmax_age: 1\n",
                "at least one `mx`",
            ),
            (b"version: STSv1\nmode: \xff\n", "not UTF-8"),
        ] {
            let error = parse_policy(body).expect_err("invalid");
            assert!(error.contains(why), "{error} should say {why}");
        }
    }

    #[test]
    fn what_strict_senders_reject_is_applied_and_reported() {
        let policy = parse_policy(
            b"version: STSv1\nmode: Enforce\n\nmx : a.example\nmode: none\nmax_age: 99999999999\n",
        )
        .expect("lenient senders apply it");
        assert_eq!(policy.mode, Mode::Enforce);
        assert!(policy.lists("a.example"));
        let all = policy
            .deviations
            .iter()
            .map(|d| d.why.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for expected in [
            "line 3 is empty",
            "\"mx \" is not a field name",
            "`mode` is given more than once",
            "`mode: Enforce` is not written in lower case",
            "more than the 10 digits",
        ] {
            assert!(all.contains(expected), "{expected} missing from\n{all}");
        }
    }

    fn answered(status: u16, content_type: Option<&str>, body: &str) -> PolicyFetch {
        PolicyFetch::Answered {
            address: IpAddr::from([127, 0, 0, 6]),
            status,
            reason: "R".to_owned(),
            content_type: content_type.map(str::to_owned),
            location: Some("https://elsewhere/\x1b[2J".to_owned()),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn what_the_policy_host_answers() {
        let good = "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400\n";
        let policy =
            policy_from(&answered(200, Some("text/plain; charset=utf-8"), good)).expect("policy");
        assert!(policy.deviations.is_empty());
        let html = policy_from(&answered(200, Some("text/html"), good)).expect("applied");
        assert!(html.deviations[0].why.contains("served as text/html"));
        let none = policy_from(&answered(200, None, good)).expect("applied");
        assert!(none.deviations[0].why.contains("without a Content-Type"));
        match policy_from(&answered(301, Some("text/html"), good)) {
            Err(PolicyUnavailable::Redirect {
                status: 301,
                location: Some(location),
            }) => assert_eq!(location, "https://elsewhere/\\x1b[2J"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            policy_from(&answered(404, Some("text/plain"), good)),
            Err(PolicyUnavailable::Status { status: 404, .. })
        ));
        assert_eq!(
            policy_from(&answered(200, Some("text/plain"), "mode: enforce"))
                .map_err(|e| e.result_type()),
            Err("sts-policy-invalid")
        );
    }

    #[test]
    fn text_to_publish() {
        assert_eq!(
            policy_text(Mode::Enforce, &["mx1.example.com".to_owned()]),
            "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n"
        );
        assert_eq!(
            record_text("example.com", "20261201120000"),
            "_mta-sts.example.com. IN TXT \"v=STSv1; id=20261201120000\""
        );
        assert_eq!(new_id(1_796_083_200), "20261201000000");
        let written = policy_text(Mode::Testing, &["a.example".to_owned()]);
        assert!(parse_policy(written.as_bytes()).is_ok());
    }
}
