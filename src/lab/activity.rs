//! What a client did in one session, as plain facts for the classroom: who it said it was,
//! which commands it sent, which replies it got, what it pipelined and what was delivered.
//!
//! The server session fills an [`Activity`] in as it goes (next to the [`Conduct`] its verdict
//! is judged from); exercise goals are checked against it (see [`super::exercise`]). Every
//! list is bounded, so a client that sends a million commands costs no more memory here than
//! one that sends ten.
//!
//! [`Conduct`]: super::verdict::Conduct

use crate::proto::escape::escape_str;

/// The verbs the lab tells apart: the commands it knows, then its own `XEXERCISES`.
pub const VERBS: [&str; 15] = [
    "HELO",
    "EHLO",
    "LHLO",
    "STARTTLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "RSET",
    "NOOP",
    "VRFY",
    "ETRN",
    "QUIT",
    "XEXERCISES",
];

/// The index of a verb in [`VERBS`] (upper case), if the lab knows it.
pub fn verb_index(verb: &str) -> Option<usize> {
    VERBS
        .iter()
        .position(|known| known.eq_ignore_ascii_case(verb))
}

/// Most distinct replies remembered per session.
pub const REPLIES_KEPT: usize = 48;
/// Most EHLO (or HELO) names remembered per session.
pub const NAMES_KEPT: usize = 4;
/// Longest EHLO name remembered, in bytes (a DNS name is at most 255).
pub const NAME_LIMIT: usize = 255;
/// Most deliveries remembered per session.
pub const DELIVERIES_KEPT: usize = 8;
/// Most recipients remembered per delivery.
pub const RECIPIENTS_KEPT: usize = 8;

/// A reply the lab sent, with the command it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplySeen {
    /// The index in [`VERBS`] of the command it answered; `None` for the greeting and for a
    /// reply to nothing (a timeout's 421).
    pub verb: Option<usize>,
    /// The reply code.
    pub code: u16,
    /// The enhanced status code it carried (`[5, 3, 4]` for 5.3.4), if any.
    pub enhanced: Option<[u16; 3]>,
}

/// A message the lab accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The recipients (the first few), as the client gave them.
    pub recipients: Vec<String>,
    /// Whether it arrived inside TLS.
    pub tls: bool,
    /// Whether the client had authenticated.
    pub authenticated: bool,
}

/// The facts of one session that exercises are judged from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// The names given with EHLO or HELO, distinct, in order (the first few).
    pub names: Vec<String>,
    /// The account of the last successful AUTH.
    pub authenticated: Option<String>,
    /// The account whose valid credentials arrived, even where the server did not take them.
    pub credentials_for: Option<String>,
    /// Which of [`VERBS`] the client sent (bit `i` for `VERBS[i]`).
    pub verbs: u16,
    /// TLS was established with STARTTLS.
    pub starttls: bool,
    /// TLS was established (STARTTLS or implicit).
    pub tls: bool,
    /// Distinct replies sent (the first [`REPLIES_KEPT`]).
    pub replies: Vec<ReplySeen>,
    /// For each of [`VERBS`], the most commands of that verb sent in one pipelined group
    /// (sent before the reply to the one before them).
    pub pipelined: [u16; VERBS.len()],
    /// Accepted messages (the first [`DELIVERIES_KEPT`]).
    pub deliveries: Vec<Delivery>,
    /// How many times the client asked for its exercises.
    pub exercise_queries: u32,
    /// Counts every change, so a reader can tell whether anything happened since it looked.
    pub changes: u64,
}

impl Activity {
    /// Records an EHLO or HELO name.
    pub fn name(&mut self, name: &str) {
        let cut = name.get(..NAME_LIMIT.min(name.len())).unwrap_or_default();
        if self.names.len() < NAMES_KEPT && !self.names.iter().any(|n| n == cut) {
            self.names.push(cut.to_owned());
            self.changes += 1;
        }
    }

    /// Whether the session only asked for its exercises: `XEXERCISES`, and nothing beyond
    /// EHLO, HELO, NOOP, RSET and QUIT. Such a session is a look at the list, not an attempt
    /// at an exercise, and counts for none.
    pub fn is_status_check(&self) -> bool {
        let allowed = ["HELO", "EHLO", "LHLO", "NOOP", "RSET", "QUIT", "XEXERCISES"]
            .iter()
            .filter_map(|v| verb_index(v))
            .fold(0u16, |bits, i| bits | 1 << i);
        self.exercise_queries > 0 && self.verbs & !allowed == 0
    }

    /// Records a command verb (upper or lower case); unknown verbs are not kept.
    pub fn verb(&mut self, verb: &str) {
        if let Some(index) = verb_index(verb) {
            let bit = 1u16 << index;
            if self.verbs & bit == 0 {
                self.verbs |= bit;
                self.changes += 1;
            }
        }
    }

    /// Whether the client sent `verb`.
    pub fn sent(&self, verb: &str) -> bool {
        verb_index(verb).is_some_and(|index| self.verbs & (1 << index) != 0)
    }

    /// Records a reply: its code, and the enhanced code at the start of `text`, if any.
    pub fn reply(&mut self, verb: Option<usize>, code: u16, text: &str) {
        let seen = ReplySeen {
            verb,
            code,
            enhanced: enhanced_code(text),
        };
        if self.replies.len() < REPLIES_KEPT && !self.replies.contains(&seen) {
            self.replies.push(seen);
            self.changes += 1;
        }
    }

    /// Records that `count` commands of verb `index` went in one pipelined group.
    pub fn pipelined(&mut self, index: usize, count: u16) {
        if let Some(most) = self.pipelined.get_mut(index)
            && count > *most
        {
            *most = count;
            self.changes += 1;
        }
    }

    /// Records an accepted message.
    pub fn delivered(&mut self, recipients: &[String], tls: bool, authenticated: bool) {
        if self.deliveries.len() < DELIVERIES_KEPT {
            self.deliveries.push(Delivery {
                recipients: recipients
                    .iter()
                    .take(RECIPIENTS_KEPT)
                    .map(|r| escape_str(r))
                    .collect(),
                tls,
                authenticated,
            });
        }
        self.changes += 1;
    }

    /// Records a successful AUTH.
    pub fn authenticated(&mut self, account: &str) {
        self.authenticated = Some(account.to_owned());
        self.changes += 1;
    }

    /// Records valid credentials for `account` (whether or not the server took them).
    pub fn credentials_for(&mut self, account: &str) {
        if self.credentials_for.as_deref() != Some(account) {
            self.credentials_for = Some(account.to_owned());
            self.changes += 1;
        }
    }

    /// Records that TLS started, with STARTTLS or not.
    pub fn tls_started(&mut self, starttls: bool) {
        self.tls = true;
        self.starttls |= starttls;
        self.changes += 1;
    }
}

/// The enhanced status code at the start of a reply text (`5.3.4 Message size ...`).
pub fn enhanced_code(text: &str) -> Option<[u16; 3]> {
    parse_enhanced(text.split(' ').next()?)
}

/// Parses `d.d.d` (each part at most three digits).
pub fn parse_enhanced(word: &str) -> Option<[u16; 3]> {
    let mut parts = word.split('.');
    let mut code = [0u16; 3];
    for slot in &mut code {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_bounded_and_distinct() {
        let mut activity = Activity::default();
        for n in 0..100 {
            activity.name(&format!("host{n}"));
            activity.reply(Some(1), 250 + (n % 300) as u16, "2.0.0 Ok");
            activity.delivered(&["a@lab.test".to_owned()], false, false);
        }
        activity.name(&"x".repeat(10_000));
        assert_eq!(activity.names.len(), NAMES_KEPT);
        assert_eq!(activity.replies.len(), REPLIES_KEPT);
        assert_eq!(activity.deliveries.len(), DELIVERIES_KEPT);
        activity.reply(Some(4), 552, "5.3.4 Message size exceeds fixed limit");
        let before = activity.changes;
        activity.verb("ehlo");
        activity.verb("EHLO");
        activity.verb("XYZZY");
        assert_eq!(activity.changes, before + 1);
        assert!(activity.sent("EHLO") && !activity.sent("MAIL"));
    }

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced_code("5.3.4 Message size"), Some([5, 3, 4]));
        assert_eq!(enhanced_code("4.7.1 <a@b>: Greylisted"), Some([4, 7, 1]));
        assert_eq!(enhanced_code("lab.test"), None);
        assert_eq!(enhanced_code("5.3 x"), None);
        assert_eq!(enhanced_code("5.3.4.1 x"), None);
        assert_eq!(enhanced_code(""), None);
    }
}
