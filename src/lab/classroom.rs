//! The class as the lab sees it: each student's progress through the exercises, the sessions
//! open now, and a feed of what is worth the room's attention.
//!
//! [`Classroom`] is pure: the listener feeds it events (a session started, what a session did
//! so far, a session ended with its verdict), with the time passed in, and it answers with the
//! feed entries they produced. Its readers are views: the `XEXERCISES` reply a student reads
//! ([`Classroom::report`]), the instructor's dashboard, the lab's log, and the CSV and JSON
//! exports. None of them shows a password: the classroom never holds one.
//!
//! [`ClassBoard`] shares a classroom between the sessions and the dashboard behind a mutex
//! held for microseconds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::activity::Activity;
use super::exercise::{Exercise, Exercises, Progress, SessionFacts};
use super::profile::Profile;
use super::roster::Roster;
use super::verdict::{Level, Verdict};
use crate::proto::escape::escape_str;

/// Most feed entries kept.
pub const FEED_KEPT: usize = 500;
/// The width the `XEXERCISES` reply is wrapped to.
pub const REPLY_WIDTH: usize = 76;

/// Where one student stands in one exercise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExerciseState {
    /// Steps met so far.
    pub progress: Progress,
    /// How many sessions on the exercise's profile ended with an alarm.
    pub fell: u32,
    /// The alarm of the latest session there, if it had one (cleared by a later session
    /// that meets the goal without one).
    pub last_alarm: Option<String>,
}

/// How an exercise cell reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Nothing met yet.
    Todo,
    /// Some conditions met.
    Started,
    /// Every step met.
    Done,
    /// The latest session on the exercise's profile ended with an alarm.
    Fell,
}

impl Cell {
    /// The word for exports and replies.
    pub fn word(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::Started => "started",
            Self::Done => "done",
            Self::Fell => "fell",
        }
    }
}

/// One student's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudentState {
    /// Sessions that ended.
    pub sessions: u32,
    /// Sessions that ended with an alarm.
    pub alarms: u32,
    /// Sessions that ended with a warning.
    pub warnings: u32,
    /// TLS was seen in one of their sessions.
    pub tls_seen: bool,
    /// Per exercise, in the set's order.
    pub exercises: Vec<ExerciseState>,
    /// When they were last seen.
    pub last_seen: Option<SystemTime>,
}

/// A session open now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Its listener's profile.
    pub profile: Profile,
    /// Who it belongs to, once known.
    pub student: Option<usize>,
}

/// Counts over every session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sessions that ended.
    pub sessions: u64,
    /// Of those, per profile (in [`Profile::ALL`] order).
    pub per_profile: [u64; Profile::ALL.len()],
    /// Ended with an alarm.
    pub alarms: u64,
    /// Of the alarms, on an attacker profile.
    pub attacks_worked: u64,
    /// Ended with a warning.
    pub warnings: u64,
    /// Belonged to no student.
    pub unidentified: u64,
}

/// What a feed entry is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedKind {
    /// An attacker profile's attack worked.
    AttackWorked {
        /// The verdict's alarms, in words.
        what: String,
        /// What to learn.
        lesson: Option<&'static str>,
    },
    /// Credentials or mail exposed on an honest profile.
    Danger {
        /// The verdict's alarms, in words.
        what: String,
        /// What to learn.
        lesson: Option<&'static str>,
    },
    /// A client met an attacker profile and did not fall for it.
    Resisted {
        /// The verdict, in words.
        what: String,
    },
    /// The student's first session with TLS.
    FirstTls {
        /// Started with STARTTLS (rather than implicit TLS).
        starttls: bool,
    },
    /// An exercise was completed.
    Completed {
        /// Its index in the set.
        exercise: usize,
        /// How many the student has done now.
        done: usize,
    },
}

/// One notable event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// When.
    pub at: SystemTime,
    /// The session.
    pub session: u64,
    /// Its profile.
    pub profile: Profile,
    /// The student, if known.
    pub student: Option<usize>,
    /// For a session that belongs to nobody: its first EHLO name (escaped, short).
    pub stranger: Option<String>,
    /// What happened.
    pub kind: FeedKind,
}

/// How loud a feed entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// An attack worked or something leaked.
    Alarm,
    /// Something done right.
    Good,
    /// Worth knowing.
    Info,
}

/// A feed entry in words: one model for the dashboard, the text mode and the lab's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedView {
    /// `!!`, `ok`, or `..`: the tone without colour.
    pub marker: &'static str,
    /// The tone.
    pub tone: Tone,
    /// Who: the student ID, or a description of an unknown client.
    pub who: String,
    /// What happened.
    pub text: String,
    /// The lesson, for an alarm.
    pub lesson: Option<&'static str>,
}

impl FeedView {
    /// One line: `!! student07: ... (lesson: ...)`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}: {}", self.marker, self.who, self.text);
        if let Some(lesson) = self.lesson {
            line.push_str(&format!(" LESSON: {lesson}"));
        }
        line
    }
}

/// The class.
#[derive(Debug, Clone)]
pub struct Classroom {
    roster: Roster,
    exercises: Exercises,
    ports: Vec<(Profile, u16)>,
    students: Vec<StudentState>,
    live: BTreeMap<u64, Live>,
    feed: VecDeque<FeedEntry>,
    totals: Totals,
}

impl Classroom {
    /// A class of `roster` doing `exercises` on a lab whose profiles listen on `ports`.
    pub fn new(roster: Roster, exercises: Exercises, ports: Vec<(Profile, u16)>) -> Self {
        let blank = StudentState {
            exercises: vec![ExerciseState::default(); exercises.list.len()],
            ..StudentState::default()
        };
        Self {
            students: vec![blank; roster.len()],
            roster,
            exercises,
            ports,
            live: BTreeMap::new(),
            feed: VecDeque::new(),
            totals: Totals::default(),
        }
    }

    /// The students.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The exercises.
    pub fn exercises(&self) -> &Exercises {
        &self.exercises
    }

    /// A student's record (by roster index).
    pub fn student(&self, index: usize) -> Option<&StudentState> {
        self.students.get(index)
    }

    /// The feed, oldest first.
    pub fn feed(&self) -> &VecDeque<FeedEntry> {
        &self.feed
    }

    /// The totals.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The port a profile listens on in this lab.
    pub fn port(&self, profile: Profile) -> Option<u16> {
        self.ports
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, port)| *port)
    }

    /// The profiles of this lab with how many sessions each has open now.
    pub fn live_per_profile(&self) -> Vec<(Profile, usize)> {
        self.ports
            .iter()
            .map(|(profile, _)| {
                (
                    *profile,
                    self.live.values().filter(|l| l.profile == *profile).count(),
                )
            })
            .collect()
    }

    /// How many sessions are open.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Which students have a session open now.
    pub fn is_live(&self, student: usize) -> bool {
        self.live.values().any(|l| l.student == Some(student))
    }

    /// How an exercise cell of a student reads.
    pub fn cell(&self, student: usize, exercise: usize) -> Cell {
        let (Some(state), Some(definition)) = (
            self.students
                .get(student)
                .and_then(|s| s.exercises.get(exercise)),
            self.exercises.list.get(exercise),
        ) else {
            return Cell::Todo;
        };
        if state.last_alarm.is_some() {
            Cell::Fell
        } else if state.progress.is_done(definition) {
            Cell::Done
        } else if state.progress.is_started() {
            Cell::Started
        } else {
            Cell::Todo
        }
    }

    /// How many exercises a student has done.
    pub fn done(&self, student: usize) -> usize {
        self.students.get(student).map_or(0, |state| {
            state
                .exercises
                .iter()
                .zip(&self.exercises.list)
                .filter(|(s, e)| s.progress.is_done(e))
                .count()
        })
    }

    /// A session opened.
    pub fn session_started(&mut self, number: u64, profile: Profile) {
        self.live.insert(
            number,
            Live {
                profile,
                student: None,
            },
        );
    }

    /// What a session did so far; returns the feed entries it produced.
    pub fn session_update(
        &mut self,
        number: u64,
        profile: Profile,
        activity: &Activity,
        now: SystemTime,
    ) -> Vec<FeedEntry> {
        let facts = SessionFacts {
            number,
            profile,
            activity,
            verdict: None,
        };
        let student = self.roster.identify(activity);
        if let Some(live) = self.live.get_mut(&number) {
            live.student = student;
        }
        let mut entries = Vec::new();
        if let Some(student) = student {
            self.advance(student, &facts, now, &mut entries);
        }
        self.publish(&entries);
        entries
    }

    /// A session ended with its verdict; returns the feed entries it produced.
    pub fn session_ended(
        &mut self,
        number: u64,
        profile: Profile,
        activity: &Activity,
        verdict: &Verdict,
        now: SystemTime,
    ) -> Vec<FeedEntry> {
        self.live.remove(&number);
        let facts = SessionFacts {
            number,
            profile,
            activity,
            verdict: Some(verdict),
        };
        let student = self.roster.identify(activity);
        let totals = &mut self.totals;
        totals.sessions += 1;
        if let Some(slot) = Profile::ALL
            .iter()
            .position(|p| *p == profile)
            .and_then(|i| totals.per_profile.get_mut(i))
        {
            *slot += 1;
        }
        match verdict.level {
            Level::Alarm => {
                totals.alarms += 1;
                if verdict.attacker {
                    totals.attacks_worked += 1;
                }
            }
            Level::Warning => totals.warnings += 1,
            Level::Ok => {}
        }
        if student.is_none() {
            totals.unidentified += 1;
        }
        let mut entries = Vec::new();
        let entry = |kind| FeedEntry {
            at: now,
            session: number,
            profile,
            student,
            stranger: student
                .is_none()
                .then(|| activity.names.first().map(|n| short(n)))
                .flatten(),
            kind,
        };
        let alarms = || {
            verdict
                .findings
                .iter()
                .filter(|f| f.level == Level::Alarm)
                .map(|f| f.text.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        match verdict.level {
            Level::Alarm if verdict.attacker => entries.push(entry(FeedKind::AttackWorked {
                what: alarms(),
                lesson: verdict.lesson,
            })),
            Level::Alarm => entries.push(entry(FeedKind::Danger {
                what: alarms(),
                lesson: verdict.lesson,
            })),
            _ if verdict.attacker && activity.sent("EHLO") && !activity.is_status_check() => {
                let what = verdict
                    .findings
                    .first()
                    .map_or_else(String::new, |f| f.text.clone());
                entries.push(entry(FeedKind::Resisted { what }));
            }
            _ => {}
        }
        if let Some(student) = student {
            if let Some(state) = self.students.get_mut(student) {
                state.sessions += 1;
                state.last_seen = Some(now);
                match verdict.level {
                    Level::Alarm => state.alarms += 1,
                    Level::Warning => state.warnings += 1,
                    Level::Ok => {}
                }
                for (definition, exercise) in self.exercises.list.iter().zip(&mut state.exercises) {
                    if definition.profile() != Some(profile) {
                        continue;
                    }
                    if verdict.level == Level::Alarm {
                        exercise.fell += 1;
                        exercise.last_alarm = Some(alarms());
                    } else if definition
                        .steps
                        .first()
                        .is_some_and(|step| step.missing(&facts).is_empty())
                    {
                        exercise.last_alarm = None;
                    }
                }
            }
            self.advance(student, &facts, now, &mut entries);
        }
        self.publish(&entries);
        entries
    }

    fn advance(
        &mut self,
        student: usize,
        facts: &SessionFacts<'_>,
        now: SystemTime,
        entries: &mut Vec<FeedEntry>,
    ) {
        let Some(state) = self.students.get_mut(student) else {
            return;
        };
        state.last_seen = Some(now);
        if facts.activity.is_status_check() {
            return;
        }
        if facts.activity.tls && !state.tls_seen {
            state.tls_seen = true;
            entries.push(FeedEntry {
                at: now,
                session: facts.number,
                profile: facts.profile,
                student: Some(student),
                stranger: None,
                kind: FeedKind::FirstTls {
                    starttls: facts.activity.starttls,
                },
            });
        }
        let mut completed = Vec::new();
        for (index, (definition, exercise)) in self
            .exercises
            .list
            .iter()
            .zip(&mut state.exercises)
            .enumerate()
        {
            if exercise.progress.advance(definition, facts, now) {
                completed.push(index);
            }
        }
        for exercise in completed {
            let done = self.done(student);
            entries.push(FeedEntry {
                at: now,
                session: facts.number,
                profile: facts.profile,
                student: Some(student),
                stranger: None,
                kind: FeedKind::Completed { exercise, done },
            });
        }
    }

    fn publish(&mut self, entries: &[FeedEntry]) {
        for entry in entries {
            if self.feed.len() >= FEED_KEPT {
                self.feed.pop_front();
            }
            self.feed.push_back(entry.clone());
        }
    }

    /// A student's name as the views show it: the ID, and the roster's name after it.
    pub fn student_label(&self, student: usize) -> String {
        match self.roster.students().get(student) {
            Some(s) => match &s.name {
                Some(name) if !self.roster.is_anonymous() => format!("{} ({name})", s.id),
                _ => s.id.clone(),
            },
            None => "?".to_owned(),
        }
    }

    /// A feed entry in words.
    pub fn view(&self, entry: &FeedEntry) -> FeedView {
        let who = match (entry.student, &entry.stranger) {
            (Some(student), _) => self
                .roster
                .students()
                .get(student)
                .map_or_else(|| "?".to_owned(), |s| s.id.clone()),
            (None, Some(name)) => format!("a client that said EHLO {name}"),
            (None, None) => "an unidentified client".to_owned(),
        };
        let at = format!("{}#{}", entry.profile, entry.session);
        let (marker, tone, text, lesson) = match &entry.kind {
            FeedKind::AttackWorked { what, lesson } => (
                "!!",
                Tone::Alarm,
                format!("the {} attack worked ({at}): {what}", entry.profile),
                *lesson,
            ),
            FeedKind::Danger { what, lesson } => {
                ("!!", Tone::Alarm, format!("{what} ({at})"), *lesson)
            }
            FeedKind::Resisted { what } => (
                "ok",
                Tone::Good,
                format!("resisted the {} attack ({at}): {what}", entry.profile),
                None,
            ),
            FeedKind::FirstTls { starttls } => (
                "ok",
                Tone::Good,
                format!(
                    "first TLS session ({at}{})",
                    if *starttls {
                        ", STARTTLS"
                    } else {
                        ", implicit TLS"
                    }
                ),
                None,
            ),
            FeedKind::Completed { exercise, done } => (
                "..",
                Tone::Info,
                format!(
                    "completed {:?} ({done} of {} done)",
                    self.exercises
                        .list
                        .get(*exercise)
                        .map_or("?", |e| e.id.as_str()),
                    self.exercises.list.len()
                ),
                None,
            ),
        };
        FeedView {
            marker,
            tone,
            who,
            text,
            lesson,
        }
    }

    /// The lines of the `XEXERCISES` reply: the exercises, and the progress of the student
    /// asked for (`asked`), or else of the student this session belongs to, with what the
    /// session did so far counted in.
    pub fn report(
        &self,
        profile: Profile,
        number: u64,
        activity: &Activity,
        asked: Option<&str>,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let count = self.exercises.list.len();
        let mine = self.roster.identify(activity);
        let student = match asked {
            Some(id) => match self.roster.find(id) {
                Some(student) => Some(student),
                None => {
                    lines.push(format!(
                        "No student {:?} in this class: check the ID on your line of the class sheet.",
                        short(id)
                    ));
                    None
                }
            },
            None => mine,
        };
        let Some(student) = student else {
            if asked.is_none() {
                lines.push(format!(
                    "The {count} exercises of this lab. To see your progress, say EHLO with your student ID first (EHLO student07), or ask: XEXERCISES student07"
                ));
            }
            for (index, exercise) in self.exercises.list.iter().enumerate() {
                lines.push(format!("{:>2}. {}", index + 1, exercise.title));
            }
            return wrap_all(lines);
        };
        // This session counts too, if it is the student's own.
        let mut progress: Vec<Progress> = self
            .students
            .get(student)
            .map(|s| s.exercises.iter().map(|e| e.progress.clone()).collect())
            .unwrap_or_default();
        if mine == Some(student) && !activity.is_status_check() {
            let facts = SessionFacts {
                number,
                profile,
                activity,
                verdict: None,
            };
            for (p, exercise) in progress.iter_mut().zip(&self.exercises.list) {
                p.advance(exercise, &facts, SystemTime::UNIX_EPOCH);
            }
        }
        let done = progress
            .iter()
            .zip(&self.exercises.list)
            .filter(|(p, e)| p.is_done(e))
            .count();
        let whose = if self.roster.is_anonymous() {
            "this lab (no class: every session counts)".to_owned()
        } else {
            self.student_label(student)
        };
        lines.push(format!("Exercises for {whose}: {done} of {count} done"));
        let port = |p: Profile| self.port(p);
        for (index, (exercise, p)) in self.exercises.list.iter().zip(&progress).enumerate() {
            let state = self
                .students
                .get(student)
                .and_then(|s| s.exercises.get(index));
            let mark = if state.is_some_and(|s| s.last_alarm.is_some()) {
                "FELL"
            } else if p.is_done(exercise) {
                "done"
            } else if p.is_started() {
                "part"
            } else {
                "todo"
            };
            lines.push(format!("{:>2}. [{mark}] {}", index + 1, exercise.title));
            if let Some(alarm) = state.and_then(|s| s.last_alarm.as_ref()) {
                lines.push(format!("      your last session there: !! {alarm}"));
            }
            if p.is_done(exercise) {
                continue;
            }
            let missing = missing(exercise, p, &port);
            if !missing.is_empty() {
                lines.push(format!("      still missing: {}", missing.join("; ")));
            }
            if let Some(hint) = &exercise.hint {
                lines.push(format!("      hint: {hint}"));
            }
        }
        wrap_all(lines)
    }

    /// The class's results as CSV: one row per student, one column per exercise (`done`,
    /// `started` or `todo`, with `fell N` when an attack worked on them there N times).
    pub fn csv(&self) -> String {
        let mut out = String::from("student,name,sessions,alarms,warnings,done");
        for exercise in &self.exercises.list {
            out.push(',');
            out.push_str(&csv_field(&exercise.id));
        }
        out.push('\n');
        for (index, student) in self.roster.students().iter().enumerate() {
            let Some(state) = self.students.get(index) else {
                continue;
            };
            out.push_str(&format!(
                "{},{},{},{},{},{}",
                csv_field(&student.id),
                csv_field(student.name.as_deref().unwrap_or("")),
                state.sessions,
                state.alarms,
                state.warnings,
                self.done(index)
            ));
            for (exercise, definition) in state.exercises.iter().zip(&self.exercises.list) {
                let mut cell = progress_word(&exercise.progress, definition).to_owned();
                if exercise.fell > 0 {
                    cell.push_str(&format!("; fell {}", exercise.fell));
                }
                out.push(',');
                out.push_str(&csv_field(&cell));
            }
            out.push('\n');
        }
        out
    }

    /// The class's results as JSON (no password, ever: the classroom holds none).
    pub fn json(&self, now: SystemTime) -> serde_json::Value {
        use serde_json::json;
        let exercises: Vec<_> = self
            .exercises
            .list
            .iter()
            .map(|e| json!({"id": e.id, "title": e.title}))
            .collect();
        let students: Vec<_> = self
            .roster
            .students()
            .iter()
            .enumerate()
            .filter_map(|(index, student)| {
                let state = self.students.get(index)?;
                let per: serde_json::Map<String, serde_json::Value> = state
                    .exercises
                    .iter()
                    .zip(&self.exercises.list)
                    .map(|(e, definition)| {
                        (
                            definition.id.clone(),
                            json!({
                                "status": progress_word(&e.progress, definition),
                                "steps_done": e.progress.steps_done,
                                "steps": definition.steps.len(),
                                "done_at": e.progress.done_at.map(rfc3339),
                                "fell": e.fell,
                                "last_alarm": e.last_alarm,
                            }),
                        )
                    })
                    .collect();
                Some(json!({
                    "id": student.id,
                    "name": student.name,
                    "account": (!self.roster.is_anonymous()).then(|| student.account()),
                    "sessions": state.sessions,
                    "alarms": state.alarms,
                    "warnings": state.warnings,
                    "done": self.done(index),
                    "last_seen": state.last_seen.map(rfc3339),
                    "exercises": per,
                }))
            })
            .collect();
        let totals = &self.totals;
        let per_profile: serde_json::Map<String, serde_json::Value> = Profile::ALL
            .iter()
            .zip(totals.per_profile)
            .filter(|(p, _)| self.port(**p).is_some())
            .map(|(p, n)| (p.name().to_owned(), json!(n)))
            .collect();
        json!({
            "generated": rfc3339(now),
            "exercise_file": self.exercises.source,
            "class": !self.roster.is_anonymous(),
            "exercises": exercises,
            "students": students,
            "totals": {
                "sessions": totals.sessions,
                "per_profile": per_profile,
                "alarms": totals.alarms,
                "attacks_worked": totals.attacks_worked,
                "warnings": totals.warnings,
                "unidentified": totals.unidentified,
            },
        })
    }
}

fn progress_word(progress: &Progress, exercise: &Exercise) -> &'static str {
    if progress.is_done(exercise) {
        "done"
    } else if progress.is_started() {
        "started"
    } else {
        "todo"
    }
}

/// What is still missing for the next step, in words.
fn missing(
    exercise: &Exercise,
    progress: &Progress,
    port: &dyn Fn(Profile) -> Option<u16>,
) -> Vec<String> {
    let Some(step) = exercise.steps.get(progress.steps_done) else {
        return Vec::new();
    };
    let indexes: Vec<usize> = match &progress.closest {
        Some((_, missing)) => missing.clone(),
        None => (0..step.conditions.len()).collect(),
    };
    let mut words: Vec<String> = indexes
        .iter()
        .filter_map(|i| step.conditions.get(*i))
        .map(|c| c.describe(port))
        .collect();
    if progress.steps_done > 0 {
        words.insert(0, "then, in this or a later session:".to_owned());
    }
    words
}

/// Client-given text made safe and short for a view.
fn short(text: &str) -> String {
    let escaped = escape_str(text);
    if escaped.chars().count() > 40 {
        let cut: String = escaped.chars().take(39).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A CSV field: quoted when needed, and a leading `=`, `+`, `-` or `@` neutralised so a
/// spreadsheet never reads it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Word-wraps every line to [`REPLY_WIDTH`], continuing with the line's indentation (and
/// six more spaces for a numbered line).
fn wrap_all(lines: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        // A numbered line goes on under its title: after `NN. ` or `NN. [mark] `.
        let numbered = line.trim_start().split_once(". ").and_then(|(n, rest)| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| {
                let mark = rest
                    .strip_prefix('[')
                    .and_then(|r| r.find("] "))
                    .map_or(0, |end| end + 3);
                indent + n.len() + 2 + mark
            })
        });
        let continuation = " ".repeat(numbered.unwrap_or(indent.max(2)));
        out.extend(wrap(&line, REPLY_WIDTH, &continuation));
    }
    out
}

/// Wraps text at spaces to `width` characters; continuation lines start with `prefix`.
pub fn wrap(text: &str, width: usize, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut current_width = 0;
    let indent: String = text.chars().take_while(|c| *c == ' ').collect();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let word_width = word.chars().count();
        if current.is_empty() {
            current = if lines.is_empty() {
                indent.clone()
            } else {
                prefix.to_owned()
            };
            current_width = current.chars().count();
            current.push_str(word);
            current_width += word_width;
        } else if current_width + 1 + word_width > width {
            lines.push(std::mem::take(&mut current));
            current = format!("{prefix}{word}");
            current_width = prefix.chars().count() + word_width;
        } else {
            current.push(' ');
            current.push_str(word);
            current_width += 1 + word_width;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// A classroom shared by the lab's sessions and its dashboard.
#[derive(Debug)]
pub struct ClassBoard {
    class: Mutex<Classroom>,
}

impl ClassBoard {
    /// Shares `class`.
    pub fn new(class: Classroom) -> Self {
        Self {
            class: Mutex::new(class),
        }
    }

    /// Reads the classroom (the lock is held while `read` runs: keep it short).
    pub fn read<R>(&self, read: impl FnOnce(&Classroom) -> R) -> R {
        read(&self.class.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<R>(&self, write: impl FnOnce(&mut Classroom) -> R) -> R {
        write(&mut self.class.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A session opened.
    pub fn session_started(&self, number: u64, profile: Profile) {
        self.write(|c| c.session_started(number, profile));
    }

    /// What a session did so far; the feed entries it produced, in words.
    pub fn session_update(
        &self,
        number: u64,
        profile: Profile,
        activity: &Activity,
    ) -> Vec<FeedView> {
        self.write(|c| {
            let entries = c.session_update(number, profile, activity, SystemTime::now());
            entries.iter().map(|e| c.view(e)).collect()
        })
    }

    /// A session ended; the feed entries it produced, in words.
    pub fn session_ended(
        &self,
        number: u64,
        profile: Profile,
        activity: &Activity,
        verdict: &Verdict,
    ) -> Vec<FeedView> {
        self.write(|c| {
            let entries = c.session_ended(number, profile, activity, verdict, SystemTime::now());
            entries.iter().map(|e| c.view(e)).collect()
        })
    }

    /// The `XEXERCISES` reply lines.
    pub fn exercises_reply(
        &self,
        profile: Profile,
        number: u64,
        activity: &Activity,
        asked: Option<&str>,
    ) -> Vec<String> {
        self.read(|c| c.report(profile, number, activity, asked))
    }

    /// Whether the feed goes into the lab's log: only for a real class.
    pub fn logs_feed(&self) -> bool {
        self.read(|c| !c.roster().is_anonymous())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::activity::verb_index;
    use crate::lab::verdict::{self, Conduct, CredentialCheck};

    fn class() -> Classroom {
        Classroom::new(
            Roster::parse("r", "alice Alice Martin\nbob\n").expect("roster"),
            Exercises::builtin().expect("exercises"),
            Profile::ALL
                .iter()
                .map(|p| (*p, 2000 + p.port_offset()))
                .collect(),
        )
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)
    }

    fn index(class: &Classroom, id: &str) -> usize {
        class
            .exercises()
            .list
            .iter()
            .position(|e| e.id == id)
            .expect("exercise")
    }

    #[test]
    fn a_submission_session_completes_its_exercise_live() {
        let mut class = class();
        let mut activity = Activity::default();
        class.session_started(1, Profile::Submission);
        activity.name("alice");
        activity.verb("EHLO");
        activity.tls_started(true);
        let entries = class.session_update(1, Profile::Submission, &activity, at(10));
        assert!(matches!(
            entries[0].kind,
            FeedKind::FirstTls { starttls: true }
        ));
        assert_eq!(class.live_per_profile()[0], (Profile::Submission, 1));
        assert!(class.is_live(0));
        activity.authenticated("alice@lab.test");
        activity.delivered(&["bob@lab.test".to_owned()], true, true);
        let entries = class.session_update(1, Profile::Submission, &activity, at(11));
        let submission = index(&class, "submission");
        assert_eq!(
            entries.last().map(|e| &e.kind),
            Some(&FeedKind::Completed {
                exercise: submission,
                done: 1
            })
        );
        assert_eq!(class.cell(0, submission), Cell::Done);
        assert_eq!(class.cell(1, submission), Cell::Todo);
        let verdict = verdict::judge(Profile::Submission, &Conduct::default());
        let entries = class.session_ended(1, Profile::Submission, &activity, &verdict, at(12));
        assert!(entries.is_empty(), "{entries:?}");
        assert_eq!(class.live_count(), 0);
        assert_eq!(class.student(0).map(|s| s.sessions), Some(1));
    }

    #[test]
    fn an_attack_that_worked_is_in_the_feed_with_its_lesson_and_on_the_exercise() {
        let mut class = class();
        let mut activity = Activity::default();
        activity.verb("EHLO");
        activity.credentials_for("bob@lab.test");
        let mut conduct = Conduct::default();
        conduct.credentials(
            "PLAIN",
            CredentialCheck::Valid("bob@lab.test".into()),
            false,
        );
        let verdict = verdict::judge(Profile::Strip, &conduct);
        class.session_started(7, Profile::Strip);
        let entries = class.session_ended(7, Profile::Strip, &activity, &verdict, at(20));
        let view = class.view(&entries[0]);
        assert_eq!(view.tone, Tone::Alarm);
        assert_eq!(view.who, "bob");
        assert!(
            view.text
                .starts_with("the strip attack worked (strip#7): sent valid credentials"),
            "{view:?}"
        );
        assert_eq!(view.lesson, Some(verdict::LESSON_STRIP));
        let strip = index(&class, "strip");
        assert_eq!(class.cell(1, strip), Cell::Fell);
        assert_eq!(class.totals().attacks_worked, 1);
        let report = class.report(Profile::Mx, 8, &Activity::default(), Some("bob"));
        assert!(
            report
                .iter()
                .any(|l| l.contains("[FELL] See the strip attack")),
            "{report:#?}"
        );
        // A later safe session clears the flag; the count stays.
        let safe = verdict::judge(Profile::Strip, &Conduct::default());
        let mut careful = Activity::default();
        careful.name("bob");
        careful.verb("EHLO");
        let entries = class.session_ended(9, Profile::Strip, &careful, &safe, at(30));
        assert_eq!(class.view(&entries[0]).tone, Tone::Good);
        assert_eq!(class.cell(1, strip), Cell::Done);
        assert!(class.csv().contains("done; fell 1"));
    }

    #[test]
    fn the_report_counts_the_asking_session_and_says_what_is_missing() {
        let class = class();
        let mut activity = Activity::default();
        activity.name("alice");
        activity.reply(
            verb_index("MAIL"),
            552,
            "5.3.4 Message size exceeds fixed limit",
        );
        let report = class.report(Profile::Mx, 3, &activity, None);
        assert!(
            report[0].starts_with("Exercises for alice (Alice Martin): 1 of 9 done"),
            "{report:#?}"
        );
        assert!(
            report
                .iter()
                .any(|l| l.contains("[done] Find the size limit"))
        );
        assert!(
            report
                .iter()
                .any(|l| l.contains("a session on the submission profile (port 2587)"))
        );
        for line in &report {
            assert!(line.chars().count() <= REPLY_WIDTH, "{line:?}");
        }
        // Someone else's progress does not include this session.
        let bob = class.report(Profile::Mx, 3, &activity, Some("bob"));
        assert!(bob[0].contains("bob: 0 of 9"), "{bob:#?}");
        let stranger = class.report(Profile::Mx, 3, &Activity::default(), None);
        assert!(
            stranger
                .join(" ")
                .contains("say EHLO with your   student ID first"),
            "{stranger:#?}"
        );
        let unknown = class.report(Profile::Mx, 3, &Activity::default(), Some("mallory\x1b"));
        assert!(
            unknown[0].contains("No student \"mallory\\\\x1b\""),
            "{unknown:#?}"
        );
    }

    #[test]
    fn exports_hold_no_secret_and_defuse_formulas() {
        let mut class = Classroom::new(
            Roster::parse("r", "eve =HYPERLINK(\"x\")\n").expect("roster"),
            Exercises::builtin().expect("exercises"),
            vec![(Profile::Mx, 2525)],
        );
        let mut activity = Activity::default();
        activity.name("eve");
        class.session_started(1, Profile::Mx);
        class.session_update(1, Profile::Mx, &activity, at(1));
        let csv = class.csv();
        assert!(csv.contains("eve,\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        let json = class.json(at(2));
        assert_eq!(json["students"][0]["account"], "eve@lab.test");
        assert_eq!(json["totals"]["per_profile"]["mx"], 0);
    }

    #[test]
    fn a_look_at_the_list_is_no_attempt_at_an_exercise() {
        let mut class = class();
        let mut look = Activity::default();
        look.name("alice");
        look.verb("EHLO");
        look.verb("XEXERCISES");
        look.exercise_queries = 1;
        look.verb("QUIT");
        class.session_started(1, Profile::Strip);
        class.session_update(1, Profile::Strip, &look, at(1));
        let verdict = verdict::judge(Profile::Strip, &Conduct::default());
        let entries = class.session_ended(1, Profile::Strip, &look, &verdict, at(2));
        assert!(entries.is_empty(), "{entries:?}");
        for exercise in 0..class.exercises().list.len() {
            assert_eq!(class.cell(0, exercise), Cell::Todo, "{exercise}");
        }
        let report = class.report(Profile::Strip, 2, &look, None);
        assert!(report[0].contains("0 of 9 done"), "{report:#?}");
        assert!(!report.iter().any(|l| l.contains("[part]")), "{report:#?}");
        // The same session trying something is an attempt.
        look.verb("MAIL");
        assert!(!look.is_status_check());
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a b c", 3, "  "), vec!["a b", "  c"]);
        assert_eq!(wrap("", 10, ""), vec![""]);
        assert_eq!(wrap("  x yy", 4, "    "), vec!["  x", "    yy"]);
    }
}
