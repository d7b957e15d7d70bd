//! Deterministic fault triggers: replies a student provokes on purpose, chosen by what the
//! client itself sends, so that every reply worth learning can be met on demand.
//!
//! - A recipient's local part selects the reply to RCPT or to the end of the message:
//!   `rcpt-550-5.1.1@lab.test`, `rcpt-452@lab.test`, `data-554@lab.test`, `data-451-4.3.0@…`.
//!   A `421` closes the session, as a real 421 does.
//! - `greylist@lab.test` (or `greylist-anything@`) is answered `450 4.7.1` the first time a
//!   client address, sender and recipient meet, and accepted on the retry.
//! - The EHLO name turns extensions off: every label `no-KEYWORD` of
//!   `no-pipelining.no-chunking.lab.test` removes that keyword from the EHLO reply, and the
//!   server then treats the extension as not offered.
//!
//! Everything here is pure parsing and a bounded shared memory; the server session decides.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The ESMTP extensions the lab can offer, in the order of Postfix's EHLO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// RFC 2920.
    Pipelining,
    /// RFC 1870.
    Size,
    /// VRFY (RFC 5321).
    Vrfy,
    /// RFC 1985.
    Etrn,
    /// RFC 3207.
    StartTls,
    /// RFC 4954.
    Auth,
    /// RFC 2034.
    EnhancedStatusCodes,
    /// RFC 6152.
    EightBitMime,
    /// RFC 3461.
    Dsn,
    /// RFC 6531: UTF-8 addresses (advertised when the lab's SMTPUTF8 support is on).
    SmtpUtf8,
    /// RFC 3030 (BDAT).
    Chunking,
    /// RFC 8689: a message may demand TLS on every hop (advertised inside TLS only, when the
    /// lab's REQUIRETLS support is on).
    RequireTls,
}

impl Extension {
    /// Every extension, in EHLO order.
    pub const ALL: [Extension; 12] = [
        Extension::Pipelining,
        Extension::Size,
        Extension::Vrfy,
        Extension::Etrn,
        Extension::StartTls,
        Extension::Auth,
        Extension::EnhancedStatusCodes,
        Extension::EightBitMime,
        Extension::Dsn,
        Extension::SmtpUtf8,
        Extension::Chunking,
        Extension::RequireTls,
    ];

    /// The EHLO keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Pipelining => "PIPELINING",
            Self::Size => "SIZE",
            Self::Vrfy => "VRFY",
            Self::Etrn => "ETRN",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Self::EightBitMime => "8BITMIME",
            Self::Dsn => "DSN",
            Self::SmtpUtf8 => "SMTPUTF8",
            Self::Chunking => "CHUNKING",
            Self::RequireTls => "REQUIRETLS",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of extensions (the ones a client turned off with its EHLO name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions(u16);

impl Extensions {
    /// Whether `extension` is in the set.
    pub fn contains(self, extension: Extension) -> bool {
        self.0 & extension.bit() != 0
    }

    /// Adds `extension`.
    pub fn insert(&mut self, extension: Extension) {
        self.0 |= extension.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The extensions an EHLO name turns off: each dot-separated label `no-KEYWORD`, in any case.
/// Unknown keywords are ignored, as a server ignores names it does not understand.
pub fn extensions_turned_off(ehlo_name: &str) -> Extensions {
    let mut off = Extensions::default();
    for label in ehlo_name.split('.') {
        let Some(keyword) = label
            .get(..3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("no-"))
            .and(label.get(3..))
        else {
            continue;
        };
        if let Some(extension) = Extension::ALL
            .into_iter()
            .find(|e| e.keyword().eq_ignore_ascii_case(keyword))
        {
            off.insert(extension);
        }
    }
    off
}

/// A reply chosen by a recipient's local part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenReply {
    /// The reply code, 400 to 599.
    pub code: u16,
    /// The enhanced status code, `class.subject.detail`, its class agreeing with the code.
    pub enhanced: String,
}

/// What a recipient's local part asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Answer RCPT with this reply.
    Rcpt(ChosenReply),
    /// Accept the recipient; answer the end of the message with this reply.
    Data(ChosenReply),
    /// `450 4.7.1` the first time, accepted on the retry.
    Greylist,
}

/// The trigger in a recipient address, if its local part names one. A malformed one
/// (`rcpt-200`, `rcpt-550-4.1.1`, `data-9x9`) is an ordinary address.
pub fn trigger(address: &str) -> Option<Trigger> {
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    let lower = local.to_ascii_lowercase();
    if lower == "greylist" || lower.starts_with("greylist-") || lower.starts_with("greylist+") {
        return Some(Trigger::Greylist);
    }
    if let Some(rest) = lower.strip_prefix("rcpt-") {
        return chosen_reply(rest).map(Trigger::Rcpt);
    }
    if let Some(rest) = lower.strip_prefix("data-") {
        return chosen_reply(rest).map(Trigger::Data);
    }
    None
}

/// `550`, `550-5.1.1`: a code from 400 to 599 and an optional enhanced code of the same class.
fn chosen_reply(text: &str) -> Option<ChosenReply> {
    let (code_text, enhanced) = match text.split_once('-') {
        Some((code, enhanced)) => (code, Some(enhanced)),
        None => (text, None),
    };
    if code_text.len() != 3 || !code_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code_text.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let class = code / 100;
    let enhanced = match enhanced {
        Some(enhanced) => {
            let parts: Vec<&str> = enhanced.split('.').collect();
            let valid = parts.len() == 3
                && parts[0] == class.to_string()
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                return None;
            }
            enhanced.to_owned()
        }
        None => default_enhanced(code).to_owned(),
    };
    Some(ChosenReply { code, enhanced })
}

/// The enhanced code a reply code usually comes with.
fn default_enhanced(code: u16) -> &'static str {
    match code {
        421 => "4.3.0",
        450 => "4.2.0",
        451 => "4.3.0",
        452 => "4.2.2",
        550 => "5.1.1",
        551 => "5.1.6",
        552 => "5.2.2",
        553 => "5.1.3",
        554 => "5.7.1",
        400..=499 => "4.0.0",
        _ => "5.0.0",
    }
}

/// The words a server would use for an enhanced code (RFC 3463), in Postfix's style.
pub fn meaning(enhanced: &str) -> &'static str {
    let mut parts = enhanced.splitn(2, '.');
    let _class = parts.next();
    match parts.next().unwrap_or("") {
        "1.1" => "User unknown in local recipient table",
        "1.2" => "Domain not found",
        "1.3" => "Bad recipient address syntax",
        "1.6" => "User has moved",
        "2.0" => "Mailbox unavailable",
        "2.1" => "Mailbox disabled",
        "2.2" => "Mailbox full",
        "3.0" => "Mail system problem",
        "3.4" => "Message too big",
        "4.1" | "4.2" | "4.3" | "4.4" | "4.5" | "4.7" => "Network or routing problem",
        "5.3" => "Too many recipients",
        "6.0" => "Message content problem",
        "7.0" => "Access denied",
        "7.1" => "Access denied",
        _ => "Rejected",
    }
}

/// Keys seen before, for greylisting and the `slow` profile's dropped first attempts: shared
/// by every session of a lab, bounded (the oldest keys are forgotten first).
#[derive(Debug, Default)]
pub struct SeenOnce {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// How many keys [`SeenOnce`] keeps.
const SEEN_CAPACITY: usize = 10_000;

impl SeenOnce {
    /// True the first time `key` is offered (and remembers it), false afterwards.
    pub fn first_time(&self, key: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.contains(key) {
            return false;
        }
        set.insert(key.to_owned());
        order.push_back(key.to_owned());
        while order.len() > SEEN_CAPACITY {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_parts_choose_replies() {
        assert_eq!(
            trigger("rcpt-550-5.1.1@lab.test"),
            Some(Trigger::Rcpt(ChosenReply {
                code: 550,
                enhanced: "5.1.1".into()
            }))
        );
        assert_eq!(
            trigger("RCPT-452@lab.test"),
            Some(Trigger::Rcpt(ChosenReply {
                code: 452,
                enhanced: "4.2.2".into()
            }))
        );
        assert_eq!(
            trigger("data-554@example.com"),
            Some(Trigger::Data(ChosenReply {
                code: 554,
                enhanced: "5.7.1".into()
            }))
        );
        assert_eq!(trigger("greylist@lab.test"), Some(Trigger::Greylist));
        assert_eq!(trigger("greylist-2@lab.test"), Some(Trigger::Greylist));
        for ordinary in [
            "bob@lab.test",
            "rcpt-250@lab.test",
            "rcpt-550-4.1.1@lab.test",
            "rcpt-55@lab.test",
            "data-5500@lab.test",
            "rcpt-550-5.1@lab.test",
            "rcpt-550-5.1.1234@lab.test",
            "greylisted@lab.test",
        ] {
            assert_eq!(trigger(ordinary), None, "{ordinary}");
        }
    }

    #[test]
    fn ehlo_names_turn_extensions_off() {
        let off = extensions_turned_off("no-pipelining.No-CHUNKING.no-such.lab.test");
        assert!(off.contains(Extension::Pipelining));
        assert!(off.contains(Extension::Chunking));
        assert!(!off.contains(Extension::StartTls));
        assert!(extensions_turned_off("client.example").is_empty());
        assert!(extensions_turned_off("no-").is_empty());
    }

    #[test]
    fn seen_once_is_bounded() {
        let seen = SeenOnce::default();
        assert!(seen.first_time("a"));
        assert!(!seen.first_time("a"));
        for i in 0..SEEN_CAPACITY {
            seen.first_time(&i.to_string());
        }
        assert!(seen.first_time("a"), "the oldest key was forgotten");
    }
}
