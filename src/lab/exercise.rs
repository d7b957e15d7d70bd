//! Exercises for a class: what students do, and how the lab knows they did it.
//!
//! An exercise file is plain text the instructor can read and extend (the shipped set is
//! `assets/exercises.txt`):
//!
//! ```text
//! # comments and blank lines are ignored
//! exercise size-limit
//! title: Find the size limit and provoke 552
//! goal: reply 552 5.3.4
//! hint: The EHLO reply announces SIZE; declare more: MAIL FROM:<you@lab.test> SIZE=99999999
//! ask: Why can a server refuse a message before it is sent?
//! ```
//!
//! `goal:` lists conditions, separated by commas, that one session must meet; each `then:`
//! (optional, repeatable) lists what a later session, or the same one, must meet after that,
//! in order. The conditions are checked against what the lab saw ([`Activity`] and the
//! session's verdict), never against what a student claims:
//!
//! | condition | met when the session |
//! |---|---|
//! | `profile NAME` | was on that profile's listener |
//! | `tls` / `starttls` | had TLS (STARTTLS or implicit) / started it with STARTTLS |
//! | `authenticated` / `no auth` | had a successful AUTH / sent no AUTH at all |
//! | `command VERB` | sent that command (`command STARTTLS`) |
//! | `delivered [to ADDRESS]` | had a message accepted (for a recipient matching ADDRESS, `*` for any text) |
//! | `reply CODE [ENHANCED] [to VERB]` | got that reply (`x` for any digit: `55x`, `5.7.x`), to that command (`DATA` includes the end of the message) |
//! | `pipelined N VERB` | sent N commands of VERB at once, before their replies |
//! | `ended` / `verdict ok|warning|alarm` | is over / ended with that verdict |
//!
//! Parsing is strict and every error names the file, the line and the fix.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use super::activity::{self, Activity};
use super::profile::Profile;
use super::textfile::{self, FileError};
use super::verdict::{Level, Verdict};

/// The exercises shipped with the tool.
pub const BUILTIN: &str = include_str!("../../assets/exercises.txt");
/// How the shipped set is named in messages.
pub const BUILTIN_NAME: &str = "assets/exercises.txt";
/// The largest exercise file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Most exercises in a set (the dashboard shows one column each).
pub const MAX_EXERCISES: usize = 40;
/// Most steps (`goal:` and `then:`) in one exercise.
pub const MAX_STEPS: usize = 8;
/// Most conditions in one step.
pub const MAX_CONDITIONS: usize = 12;
/// Longest exercise id.
pub const ID_LIMIT: usize = 24;
/// Longest title.
pub const TITLE_LIMIT: usize = 100;
/// Longest hint or question, all its lines joined.
pub const TEXT_LIMIT: usize = 1000;

/// A reply code pattern: each digit, or `None` for `x`.
pub type CodePattern = [Option<u8>; 3];
/// An enhanced status code pattern: each part, or `None` for `x`.
pub type EnhancedPattern = [Option<u16>; 3];

/// One thing a session must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// On that profile's listener.
    Profile(Profile),
    /// TLS was established (STARTTLS or implicit).
    Tls,
    /// TLS was established with STARTTLS.
    StartTls,
    /// A successful AUTH.
    Authenticated,
    /// No AUTH command at all.
    NoAuth,
    /// The client sent this verb (an index in [`activity::VERBS`]).
    Command(usize),
    /// A message was accepted, for a recipient matching the pattern if there is one (lower
    /// case, `*` for any text).
    Delivered(Option<String>),
    /// The lab sent a reply like this.
    Reply {
        /// The code.
        code: CodePattern,
        /// The enhanced code, when one is required.
        enhanced: Option<EnhancedPattern>,
        /// The command it answered (an index in [`activity::VERBS`]).
        to: Option<usize>,
    },
    /// At least `count` commands of the verb sent in one pipelined group.
    Pipelined {
        /// How many.
        count: u16,
        /// An index in [`activity::VERBS`].
        verb: usize,
    },
    /// The session is over.
    Ended,
    /// The session ended with this verdict level.
    Verdict(Level),
}

/// What one session showed, as the conditions read it.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    /// Its number in the lab (sessions are numbered in the order they start).
    pub number: u64,
    /// Its listener's profile.
    pub profile: Profile,
    /// What the client did.
    pub activity: &'a Activity,
    /// The verdict, once the session is over.
    pub verdict: Option<&'a Verdict>,
}

impl Condition {
    /// Whether the session meets it.
    pub fn holds(&self, facts: &SessionFacts<'_>) -> bool {
        let activity = facts.activity;
        match self {
            Self::Profile(profile) => facts.profile == *profile,
            Self::Tls => activity.tls,
            Self::StartTls => activity.starttls,
            Self::Authenticated => activity.authenticated.is_some(),
            Self::NoAuth => !activity.sent("AUTH"),
            Self::Command(verb) => activity.verbs & (1 << verb) != 0,
            Self::Delivered(pattern) => activity.deliveries.iter().any(|delivery| {
                pattern.as_deref().is_none_or(|pattern| {
                    delivery
                        .recipients
                        .iter()
                        .any(|r| glob(pattern, &r.to_ascii_lowercase()))
                })
            }),
            Self::Reply { code, enhanced, to } => activity.replies.iter().any(|seen| {
                let digits = [seen.code / 100, seen.code / 10 % 10, seen.code % 10];
                code.iter()
                    .zip(digits)
                    .all(|(want, got)| want.is_none_or(|w| u16::from(w) == got))
                    && enhanced.is_none_or(|want| {
                        seen.enhanced.is_some_and(|got| {
                            want.iter()
                                .zip(got)
                                .all(|(want, got)| want.is_none_or(|w| w == got))
                        })
                    })
                    && to.is_none_or(|verb| seen.verb == Some(verb))
            }),
            Self::Pipelined { count, verb } => activity
                .pipelined
                .get(*verb)
                .is_some_and(|most| most >= count),
            Self::Ended => facts.verdict.is_some(),
            Self::Verdict(level) => facts.verdict.is_some_and(|v| v.level == *level),
        }
    }

    /// The condition in words, for a student reading what is still missing; `port` gives a
    /// profile's port on this lab, when it runs.
    pub fn describe(&self, port: &dyn Fn(Profile) -> Option<u16>) -> String {
        match self {
            Self::Profile(profile) => match port(*profile) {
                Some(port) => format!("a session on the {profile} profile (port {port})"),
                None => format!("a session on the {profile} profile (not running on this lab)"),
            },
            Self::Tls => "TLS in that session".to_owned(),
            Self::StartTls => "TLS started with STARTTLS".to_owned(),
            Self::Authenticated => "a successful AUTH".to_owned(),
            Self::NoAuth => "no AUTH in that session".to_owned(),
            Self::Command(verb) => format!("a {} command", verb_name(*verb)),
            Self::Delivered(None) => "a message accepted".to_owned(),
            Self::Delivered(Some(pattern)) => format!("a message accepted for {pattern}"),
            Self::Reply { to, .. } => {
                let text = self.to_string();
                let pattern = text
                    .strip_prefix("reply ")
                    .unwrap_or(&text)
                    .split(" to ")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                match to {
                    Some(verb) if verb_name(*verb) == "DATA" => {
                        format!("a {pattern} reply to your DATA or your message")
                    }
                    Some(verb) => format!("a {pattern} reply to your {}", verb_name(*verb)),
                    None => format!("a {pattern} reply"),
                }
            }
            Self::Pipelined { count, verb } => format!(
                "{count} {} commands sent at once, before their replies (PIPELINING)",
                verb_name(*verb)
            ),
            Self::Ended => "the end of the session (QUIT, or a closed connection)".to_owned(),
            Self::Verdict(level) => {
                format!("a session ending with the verdict {}", level_name(*level))
            }
        }
    }
}

fn verb_name(index: usize) -> &'static str {
    activity::VERBS.get(index).copied().unwrap_or("?")
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Warning => "warning",
        Level::Alarm => "alarm",
    }
}

impl fmt::Display for Condition {
    /// The condition as it is written in an exercise file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Profile(profile) => write!(f, "profile {profile}"),
            Self::Tls => f.write_str("tls"),
            Self::StartTls => f.write_str("starttls"),
            Self::Authenticated => f.write_str("authenticated"),
            Self::NoAuth => f.write_str("no auth"),
            Self::Command(verb) => write!(f, "command {}", verb_name(*verb)),
            Self::Delivered(None) => f.write_str("delivered"),
            Self::Delivered(Some(pattern)) => write!(f, "delivered to {pattern}"),
            Self::Reply { code, enhanced, to } => {
                f.write_str("reply ")?;
                for digit in code {
                    match digit {
                        Some(d) => write!(f, "{d}")?,
                        None => f.write_str("x")?,
                    }
                }
                if let Some(enhanced) = enhanced {
                    let parts: Vec<String> = enhanced
                        .iter()
                        .map(|p| p.map_or_else(|| "x".to_owned(), |p| p.to_string()))
                        .collect();
                    write!(f, " {}", parts.join("."))?;
                }
                if let Some(verb) = to {
                    write!(f, " to {}", verb_name(*verb))?;
                }
                Ok(())
            }
            Self::Pipelined { count, verb } => write!(f, "pipelined {count} {}", verb_name(*verb)),
            Self::Ended => f.write_str("ended"),
            Self::Verdict(level) => write!(f, "verdict {}", level_name(*level)),
        }
    }
}

/// `*` matches any text (also none); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A `goal:` or `then:` line: conditions one session must meet together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The line in the exercise file.
    pub line: usize,
    /// The conditions.
    pub conditions: Vec<Condition>,
}

impl Step {
    /// The indexes of the conditions the session does not meet.
    pub fn missing(&self, facts: &SessionFacts<'_>) -> Vec<usize> {
        self.conditions
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.holds(facts))
            .map(|(i, _)| i)
            .collect()
    }

    /// The profile the step names, if any.
    pub fn profile(&self) -> Option<Profile> {
        self.conditions.iter().find_map(|c| match c {
            Condition::Profile(p) => Some(*p),
            _ => None,
        })
    }
}

/// One exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exercise {
    /// Its short name (letters, digits, hyphens).
    pub id: String,
    /// What to do, in one line.
    pub title: String,
    /// The goal, then what must follow, in order.
    pub steps: Vec<Step>,
    /// Help for the student.
    pub hint: Option<String>,
    /// A question to discuss, never checked.
    pub ask: Option<String>,
    /// The line of its `exercise` header.
    pub line: usize,
}

impl Exercise {
    /// The profile of its first step: sessions there are the ones the exercise is about (an
    /// alarm there shows on the exercise).
    pub fn profile(&self) -> Option<Profile> {
        self.steps.first().and_then(Step::profile)
    }
}

/// A set of exercises, in the order they are shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exercises {
    /// Where they came from.
    pub source: String,
    /// The exercises.
    pub list: Vec<Exercise>,
}

impl Exercises {
    /// The set shipped with the tool.
    ///
    /// # Errors
    /// Never for the shipped file (a test parses it); a [`FileError`] otherwise.
    pub fn builtin() -> Result<Self, FileError> {
        Self::parse(BUILTIN_NAME, BUILTIN)
    }

    /// Reads an exercise file.
    ///
    /// # Errors
    /// [`FileError`] naming the file and the line.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = textfile::read(path, MAX_FILE_BYTES, "the exercise file")?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses exercise text; `name` is used in error messages.
    ///
    /// # Errors
    /// [`FileError`] at the first problem.
    pub fn parse(name: &str, text: &str) -> Result<Self, FileError> {
        let error = |line: usize, message: String| FileError::at(name, line, message);
        let mut list: Vec<Exercise> = Vec::new();
        let mut current: Option<Exercise> = None;
        for (line, content) in textfile::content_lines(text) {
            if let Some(c) = textfile::control_character(content) {
                return Err(error(
                    line,
                    format!("a control character ({c:?}) in the line; remove it"),
                ));
            }
            let (word, rest) = content
                .split_once(char::is_whitespace)
                .map_or((content, ""), |(w, r)| (w, r.trim()));
            if word == "exercise" {
                if let Some(done) = current.take() {
                    list.push(finish(name, done)?);
                }
                if !textfile::is_identifier(rest, ID_LIMIT) {
                    return Err(error(
                        line,
                        format!(
                            "'exercise' needs a short id of letters, digits and hyphens (at most {ID_LIMIT}), e.g. 'exercise size-limit'; found {rest:?}"
                        ),
                    ));
                }
                if let Some(other) = list.iter().find(|e| e.id.eq_ignore_ascii_case(rest)) {
                    return Err(error(
                        line,
                        format!(
                            "the id {rest:?} is already used by the exercise on line {}; give each exercise its own",
                            other.line
                        ),
                    ));
                }
                if list.len() >= MAX_EXERCISES {
                    return Err(error(
                        line,
                        format!(
                            "more than {MAX_EXERCISES} exercises; split the set into several files"
                        ),
                    ));
                }
                current = Some(Exercise {
                    id: rest.to_owned(),
                    title: String::new(),
                    steps: Vec::new(),
                    hint: None,
                    ask: None,
                    line,
                });
                continue;
            }
            let Some((key, value)) = content.split_once(':') else {
                return Err(error(
                    line,
                    format!(
                        "expected 'exercise ID' or a field such as 'title: ...'; found {content:?}"
                    ),
                ));
            };
            let key = key.trim();
            let value = value.trim();
            let Some(exercise) = current.as_mut() else {
                return Err(error(
                    line,
                    format!(
                        "the field '{key}:' comes before any 'exercise ID' line; start the exercise first"
                    ),
                ));
            };
            match key {
                "title" => {
                    if !exercise.title.is_empty() {
                        return Err(error(
                            line,
                            "a second 'title:'; an exercise has one".to_owned(),
                        ));
                    }
                    if value.is_empty() || value.chars().count() > TITLE_LIMIT {
                        return Err(error(
                            line,
                            format!("a title is one line of 1 to {TITLE_LIMIT} characters"),
                        ));
                    }
                    exercise.title = value.to_owned();
                }
                "goal" | "then" => {
                    if key == "goal" && !exercise.steps.is_empty() {
                        return Err(error(
                            line,
                            "a second 'goal:'; what must follow the goal goes in 'then:' lines"
                                .to_owned(),
                        ));
                    }
                    if key == "then" && exercise.steps.is_empty() {
                        return Err(error(
                            line,
                            "'then:' before 'goal:'; the goal comes first".to_owned(),
                        ));
                    }
                    if exercise.steps.len() >= MAX_STEPS {
                        return Err(error(
                            line,
                            format!("more than {MAX_STEPS} steps in one exercise"),
                        ));
                    }
                    let conditions = parse_conditions(value).map_err(|m| error(line, m))?;
                    exercise.steps.push(Step { line, conditions });
                }
                "hint" | "ask" => {
                    let slot = if key == "hint" {
                        &mut exercise.hint
                    } else {
                        &mut exercise.ask
                    };
                    let text = match slot.take() {
                        Some(before) => format!("{before} {value}"),
                        None => value.to_owned(),
                    };
                    if text.chars().count() > TEXT_LIMIT {
                        return Err(error(
                            line,
                            format!("the {key} is longer than {TEXT_LIMIT} characters; shorten it"),
                        ));
                    }
                    *slot = Some(text);
                }
                other => {
                    return Err(error(
                        line,
                        format!(
                            "unknown field '{other}:'; an exercise has title:, goal:, then:, hint: and ask:"
                        ),
                    ));
                }
            }
        }
        if let Some(done) = current.take() {
            list.push(finish(name, done)?);
        }
        if list.is_empty() {
            return Err(FileError::at(
                name,
                0,
                "no exercise in the file; each starts with a line 'exercise ID'",
            ));
        }
        Ok(Self {
            source: name.to_owned(),
            list,
        })
    }
}

/// Checks that an exercise has what it needs.
fn finish(name: &str, exercise: Exercise) -> Result<Exercise, FileError> {
    if exercise.title.is_empty() {
        return Err(FileError::at(
            name,
            exercise.line,
            format!("the exercise {:?} has no 'title:'", exercise.id),
        ));
    }
    if exercise.steps.is_empty() {
        return Err(FileError::at(
            name,
            exercise.line,
            format!(
                "the exercise {:?} has no 'goal:'; without one the lab cannot tell when it is done",
                exercise.id
            ),
        ));
    }
    Ok(exercise)
}

const CONDITION_FORMS: &str = "profile NAME, tls, starttls, authenticated, no auth, command VERB, \
delivered [to ADDRESS], reply CODE [ENHANCED] [to VERB], pipelined N VERB, ended, verdict ok|warning|alarm";

/// Parses the conditions of a `goal:` or `then:` line.
fn parse_conditions(text: &str) -> Result<Vec<Condition>, String> {
    let mut conditions = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "an empty condition; give conditions separated by commas ({CONDITION_FORMS})"
            ));
        }
        if conditions.len() >= MAX_CONDITIONS {
            return Err(format!("more than {MAX_CONDITIONS} conditions in one line"));
        }
        conditions.push(parse_condition(part)?);
    }
    Ok(conditions)
}

fn parse_verb(word: &str) -> Result<usize, String> {
    activity::verb_index(word).ok_or_else(|| {
        format!(
            "unknown command {word:?}; the lab knows {}",
            activity::VERBS.join(", ")
        )
    })
}

fn parse_condition(text: &str) -> Result<Condition, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let condition = match lower.as_slice() {
        ["profile", _] => Condition::Profile(words[1].parse().map_err(|e| format!("{e}"))?),
        ["tls"] => Condition::Tls,
        ["starttls"] => Condition::StartTls,
        ["authenticated"] => Condition::Authenticated,
        ["no", "auth"] => Condition::NoAuth,
        ["command", _] => Condition::Command(parse_verb(words[1])?),
        ["delivered"] => Condition::Delivered(None),
        ["delivered", "to", pattern] => {
            if pattern
                .chars()
                .any(|c| c.is_control() || c == '<' || c == '>')
            {
                return Err(format!(
                    "a recipient pattern is an address, '*' for any text, without <>; found {pattern:?}"
                ));
            }
            Condition::Delivered(Some((*pattern).to_owned()))
        }
        ["reply", code, rest @ ..] => {
            let code = parse_code(code)?;
            let (enhanced, rest) = match rest.first() {
                Some(word) if *word != "to" => (Some(parse_enhanced_pattern(word)?), &rest[1..]),
                _ => (None, rest),
            };
            let to = match rest {
                [] => None,
                ["to", _] => Some(parse_verb(words[words.len() - 1])?),
                _ => {
                    return Err(format!(
                        "expected 'reply CODE [ENHANCED] [to VERB]', e.g. 'reply 530 5.7.0 to MAIL'; found {text:?}"
                    ));
                }
            };
            Condition::Reply { code, enhanced, to }
        }
        ["pipelined", count, _] => {
            let count: u16 = count
                .parse()
                .ok()
                .filter(|n| (2..=1000).contains(n))
                .ok_or_else(|| {
                    format!("'pipelined N VERB' needs N from 2 to 1000; found {count:?}")
                })?;
            Condition::Pipelined {
                count,
                verb: parse_verb(words[2])?,
            }
        }
        ["ended"] => Condition::Ended,
        ["verdict", level] => Condition::Verdict(match *level {
            "ok" => Level::Ok,
            "warning" => Level::Warning,
            "alarm" => Level::Alarm,
            other => {
                return Err(format!(
                    "a verdict is ok, warning or alarm; found {other:?}"
                ));
            }
        }),
        _ => {
            return Err(format!(
                "unknown condition {text:?}; the conditions are: {CONDITION_FORMS}"
            ));
        }
    };
    Ok(condition)
}

fn parse_code(word: &str) -> Result<CodePattern, String> {
    let bad = || format!("a reply code is three digits, x for any (550, 55x, 5xx); found {word:?}");
    let bytes = word.as_bytes();
    if bytes.len() != 3 {
        return Err(bad());
    }
    let mut code = [None; 3];
    for (index, byte) in bytes.iter().enumerate() {
        code[index] = match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'x' if index > 0 => None,
            _ => return Err(bad()),
        };
    }
    if !matches!(code[0], Some(2..=5)) {
        return Err(bad());
    }
    Ok(code)
}

fn parse_enhanced_pattern(word: &str) -> Result<EnhancedPattern, String> {
    let bad = || {
        format!(
            "an enhanced status code is three numbers with dots, x for any (5.7.0, 5.7.x); found {word:?}"
        )
    };
    let mut parts = word.split('.');
    let mut code = [None; 3];
    for slot in &mut code {
        let part = parts.next().ok_or_else(bad)?;
        *slot = if part == "x" {
            None
        } else if (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()) {
            Some(part.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(code)
}

/// How far one student got in one exercise. Steps are met in order; a step is met by one
/// session that meets all its conditions, no earlier than the session that met the step
/// before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Steps met.
    pub steps_done: usize,
    /// The session that met the last step met (later steps need this one or a later one).
    pub since: u64,
    /// The closest a session came to the next step: the conditions met, and the indexes of
    /// those missing.
    pub closest: Option<(usize, Vec<usize>)>,
    /// When the last step was met.
    pub done_at: Option<SystemTime>,
}

impl Progress {
    /// Whether every step is met.
    pub fn is_done(&self, exercise: &Exercise) -> bool {
        self.steps_done >= exercise.steps.len()
    }

    /// Whether anything was met at all.
    pub fn is_started(&self) -> bool {
        self.steps_done > 0 || self.closest.as_ref().is_some_and(|(met, _)| *met > 0)
    }

    /// Takes what a session showed into account; returns whether the exercise became done.
    /// Calling it again with the same (or a grown) session is harmless: progress only grows.
    pub fn advance(
        &mut self,
        exercise: &Exercise,
        facts: &SessionFacts<'_>,
        now: SystemTime,
    ) -> bool {
        let was_done = self.is_done(exercise);
        while let Some(step) = exercise.steps.get(self.steps_done) {
            if facts.number < self.since {
                break;
            }
            let missing = step.missing(facts);
            if missing.is_empty() {
                self.steps_done += 1;
                self.since = facts.number;
                self.closest = None;
                continue;
            }
            let met = step.conditions.len() - missing.len();
            // A step about one profile is only begun by a session there: any session says
            // EHLO and ends, which alone is no attempt at the strip exercise.
            let begun = step.profile().is_none_or(|p| p == facts.profile);
            if begun && met > 0 && self.closest.as_ref().is_none_or(|(best, _)| met > *best) {
                self.closest = Some((met, missing));
            }
            break;
        }
        let done = self.is_done(exercise);
        if done && !was_done {
            self.done_at = Some(now);
        }
        done && !was_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(number: u64, profile: Profile, activity: &'a Activity) -> SessionFacts<'a> {
        SessionFacts {
            number,
            profile,
            activity,
            verdict: None,
        }
    }

    #[test]
    fn the_shipped_exercises_parse_and_round_trip() {
        let exercises = Exercises::builtin().expect("the shipped exercises parse");
        assert!(exercises.list.len() >= 7);
        for exercise in &exercises.list {
            for step in &exercise.steps {
                let text: Vec<String> = step.conditions.iter().map(ToString::to_string).collect();
                let again = parse_conditions(&text.join(", ")).expect("round trip");
                assert_eq!(again, step.conditions, "{}", exercise.id);
            }
            assert!(exercise.hint.is_some(), "{} has a hint", exercise.id);
        }
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_fix() {
        let cases: &[(&str, usize, &str)] = &[
            ("title: x\n", 1, "before any 'exercise ID'"),
            ("exercise a b\n", 1, "short id"),
            ("exercise a\ngoal: tls\n", 1, "no 'title:'"),
            ("exercise a\ntitle: T\n", 1, "no 'goal:'"),
            (
                "exercise a\ntitle: T\ngoal: tls,\n",
                3,
                "an empty condition",
            ),
            (
                "exercise a\ntitle: T\ngoal: profile nope\n",
                3,
                "unknown lab profile",
            ),
            ("exercise a\ntitle: T\ngoal: reply 650\n", 3, "three digits"),
            (
                "exercise a\ntitle: T\ngoal: reply 550 5.7\n",
                3,
                "enhanced status code",
            ),
            (
                "exercise a\ntitle: T\ngoal: reply 550 to FOO\n",
                3,
                "unknown command",
            ),
            (
                "exercise a\ntitle: T\ngoal: pipelined 1 RCPT\n",
                3,
                "N from 2",
            ),
            ("exercise a\ntitle: T\ngoal: flew\n", 3, "unknown condition"),
            (
                "exercise a\ntitle: T\nthen: tls\n",
                3,
                "'then:' before 'goal:'",
            ),
            (
                "exercise a\ntitle: T\ngoal: tls\ngoal: tls\n",
                4,
                "a second 'goal:'",
            ),
            (
                "exercise a\ntitle: T\ngoal: tls\nhnit: x\n",
                4,
                "unknown field 'hnit:'",
            ),
            (
                "exercise a\ntitle: T\ngoal: tls\nexercise A\n",
                4,
                "already used",
            ),
            (
                "exercise a\ntitle: T\x1b[2J\ngoal: tls\n",
                2,
                "control character",
            ),
            ("# nothing\n", 0, "no exercise"),
        ];
        for (text, line, needle) in cases {
            let error = Exercises::parse("ex.txt", text).expect_err(text);
            assert_eq!(error.line, *line, "{text:?}: {error}");
            assert!(error.to_string().contains(needle), "{text:?}: {error}");
            assert!(error.to_string().starts_with("ex.txt"), "{error}");
        }
    }

    #[test]
    fn conditions_read_the_activity() {
        let mut activity = Activity::default();
        activity.verb("EHLO");
        activity.verb("MAIL");
        activity.reply(
            activity::verb_index("MAIL"),
            530,
            "5.7.0 Must issue a STARTTLS command first",
        );
        activity.pipelined(activity::verb_index("RCPT").expect("verb"), 3);
        activity.delivered(&["Greylist-1@Lab.test".to_owned()], false, false);
        let on_mx = facts(1, Profile::Mx, &activity);
        let holds = |text: &str| parse_condition(text).expect(text).holds(&on_mx);
        assert!(holds("profile mx") && !holds("profile submission"));
        assert!(holds("reply 530") && holds("reply 5xx 5.7.x to MAIL") && holds("reply 530 5.7.0"));
        assert!(!holds("reply 530 5.7.1") && !holds("reply 530 to RCPT") && !holds("reply 4xx"));
        assert!(holds("pipelined 3 RCPT") && !holds("pipelined 4 rcpt"));
        assert!(holds("delivered") && holds("delivered to greylist*@lab.test"));
        assert!(!holds("delivered to bob@*"));
        assert!(holds("command ehlo") && !holds("command STARTTLS") && holds("no auth"));
        assert!(!holds("tls") && !holds("authenticated") && !holds("ended"));
    }

    #[test]
    fn globs() {
        assert!(glob("*", "") && glob("a*", "abc") && glob("*c", "abc") && glob("a*c", "abc"));
        assert!(glob("a*b*c", "a-b-c") && !glob("a*b*c", "a-c") && !glob("abc", "abcd"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn steps_are_met_in_order_by_later_sessions() {
        let exercises = Exercises::parse(
            "t",
            "exercise grey\ntitle: T\ngoal: reply 450 4.7.1\nthen: delivered to greylist*\nhint: h\n",
        )
        .expect("parses");
        let exercise = &exercises.list[0];
        let mut progress = Progress::default();
        let mut delivered = Activity::default();
        delivered.delivered(&["greylist@lab.test".to_owned()], false, false);
        // A delivery before the 450 does not count.
        assert!(!progress.advance(
            exercise,
            &facts(1, Profile::Mx, &delivered),
            SystemTime::UNIX_EPOCH
        ));
        assert_eq!(progress.steps_done, 0);
        let mut greylisted = Activity::default();
        greylisted.reply(
            activity::verb_index("RCPT"),
            450,
            "4.7.1 <greylist@lab.test>: Greylisted",
        );
        assert!(!progress.advance(
            exercise,
            &facts(2, Profile::Mx, &greylisted),
            SystemTime::UNIX_EPOCH
        ));
        assert_eq!(progress.steps_done, 1);
        assert!(!progress.advance(
            exercise,
            &facts(1, Profile::Mx, &delivered),
            SystemTime::UNIX_EPOCH
        ));
        assert!(progress.advance(
            exercise,
            &facts(3, Profile::Mx, &delivered),
            SystemTime::UNIX_EPOCH
        ));
        assert!(progress.is_done(exercise));
        // Again: still done, not newly.
        assert!(!progress.advance(
            exercise,
            &facts(4, Profile::Mx, &delivered),
            SystemTime::UNIX_EPOCH
        ));
    }
}
