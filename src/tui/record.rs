//! `:record FILE`: the session as a scenario that `smtptui run` replays, written as it
//! happens, from the start of the connection until `:record stop` (or a reconnection, which a
//! scenario cannot express); `:save FILE` writes the transcript. Neither replaces a file that
//! exists unless told with `!`, and `~` is the home directory.
//!
//! Every command becomes a `C:` line and the reply to it an `S:` line with its code.
//! Credentials never reach the file: any AUTH becomes a bare `C: AUTH <MECH>` (which `run`
//! performs with `--user` and the password from its usual sources), the 334 challenges and
//! the answers to them are left out, and only the final reply of the exchange is expected.
//! A pasted group sent as one write is written command by command, each with its reply, after
//! a comment saying it was pipelined; a message sent with `:send-file` is its `FILE` line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::proto::command::{CommandKind, classify};
use crate::proto::data::unstuff_line;
use crate::transcript::{Event, EventKind, SentKind};

/// What a recorded file begins with.
const HEADER: &str = "# recorded by smtptui; credentials are not in this file: AUTH runs with --user and\n\
                      # the password from --password-file, $SMTPTUI_PASSWORD or a prompt\n";

/// Turns events into scenario lines, one event at a time, remembering whether an AUTH
/// exchange is under way (its challenges and answers are left out).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    in_auth: bool,
    /// DATA was answered 354 and the final dot has not been sent.
    in_message: bool,
    /// A command holding credentials was left out; its reply is left out with it.
    skip_reply: bool,
    /// Commands of a pipelined group still to come: each is held until its reply, so the
    /// file pairs them (the replies come after the whole group).
    group: usize,
    /// The scenario lines of group commands waiting for their replies, oldest first.
    held: VecDeque<String>,
    /// The message being sent comes from this file (`:send-file`): its final dot is written
    /// after a `FILE` line instead of message lines.
    file: Option<String>,
}

impl Recorder {
    /// The scenario lines `event` adds (possibly none).
    pub fn lines(&mut self, event: &Event) -> String {
        let in_group = matches!(
            &event.kind,
            EventKind::Sent {
                kind: SentKind::Command | SentKind::Credentials,
                ..
            }
        ) && self.group > 0;
        if in_group {
            self.group -= 1;
            let line = self.event_lines(event);
            self.held.push_back(line);
            return String::new();
        }
        let mut out = match &event.kind {
            EventKind::Received { .. } => self.held.pop_front().unwrap_or_default(),
            EventKind::Sent {
                text,
                kind: SentKind::MessageLine,
                ..
            } if text == "." => match self.file.take() {
                Some(path) => format!("FILE {path}\n"),
                None => String::new(),
            },
            _ => String::new(),
        };
        out.push_str(&self.event_lines(event));
        out
    }

    /// The next `count` commands went as one pipelined group.
    pub fn expect_group(&mut self, count: usize) {
        self.group = count;
    }

    /// The message about to be sent comes from `path`.
    pub fn expect_file(&mut self, path: String) {
        self.file = Some(path);
    }

    /// The action the group or the file belonged to has finished: whatever of them did not
    /// happen (a refused group, a file not sent) is forgotten.
    pub fn settled(&mut self) -> String {
        self.group = 0;
        self.file = None;
        self.held.drain(..).collect()
    }

    fn event_lines(&mut self, event: &Event) -> String {
        let mut out = String::new();
        match &event.kind {
            EventKind::Sent { text, kind, .. } => match kind {
                SentKind::Command => match classify(text) {
                    CommandKind::Auth { mechanism, .. } => {
                        self.in_auth = true;
                        out.push_str(&format!("C: AUTH {mechanism}\n"));
                    }
                    _ if text == "*" && self.in_auth => {}
                    _ => {
                        self.in_auth = false;
                        out.push_str(&format!("C: {text}\n"));
                    }
                },
                SentKind::Credentials => match classify(text) {
                    // An AUTH with an inline response shows as "AUTH PLAIN <... hidden>".
                    CommandKind::Auth { mechanism, .. } => {
                        if !self.in_auth {
                            out.push_str(&format!("C: AUTH {mechanism}\n"));
                        }
                        self.in_auth = true;
                    }
                    // An answer to a challenge continues the exchange already written.
                    _ if self.in_auth => {}
                    // Any other line that held a credential (the configured password typed
                    // into a command or a message) cannot be replayed without it: it is left
                    // out where it stood, and a command's reply with it, so the steps that
                    // follow stay paired.
                    _ if self.in_message => out.push_str(
                        "# a message line holding credentials was sent here and is left out\n",
                    ),
                    _ => {
                        out.push_str(
                            "# a command holding credentials was sent here; it and its reply \
                             are left out\n",
                        );
                        self.skip_reply = true;
                    }
                },
                SentKind::MessageLine => {
                    let line = if text == "." { "." } else { unstuff_line(text) };
                    if line == "." {
                        self.in_message = false;
                    }
                    out.push_str(&format!("C: {line}\n"));
                }
            },
            EventKind::Received { reply, .. } => {
                let code = reply.code.value();
                if std::mem::take(&mut self.skip_reply) {
                    return out;
                }
                if code == 354 {
                    self.in_message = true;
                }
                if !(self.in_auth && code == 334) {
                    self.in_auth = false;
                    out.push_str(&format!("S: {code}\n"));
                }
            }
            _ => {}
        }
        out
    }
}

/// Builds the scenario text from the transcript events, in order.
pub fn scenario(events: &[Event]) -> String {
    let mut recorder = Recorder::default();
    let mut out = String::from(HEADER);
    for event in events {
        out.push_str(&recorder.lines(event));
    }
    out
}

/// A file name as typed: `~` and `~/...` are in the home directory, as in a shell.
pub fn expand_home(typed: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").filter(|home| !home.is_empty());
    if typed == "~" {
        if let Some(home) = home() {
            return PathBuf::from(home);
        }
    } else if let Some(rest) = typed.strip_prefix("~/")
        && let Some(home) = home()
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(typed)
}

/// Creates a file readable by its owner only. One that exists is never replaced unless
/// `force` (`:save!`): the error then says how to replace it.
///
/// # Errors
/// What creating the file returned, with the way to overwrite when it exists.
pub fn create(path: &Path, typed: &str, force: bool, command: &str) -> io::Result<File> {
    if force {
        return crate::transcript::create_private_file(path);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(file) => {
            crate::transcript::make_private(&file)?;
            Ok(file)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::new(
            error.kind(),
            format!("it exists and was left as it is; :{command}! {typed} replaces it"),
        )),
        Err(error) => Err(error),
    }
}

/// `:save FILE`: writes `text` into a new file (or over one with `force`) and says what
/// happened, in words for the user.
pub fn write_new(typed: &str, force: bool, text: &str, what: &str) -> String {
    let path = expand_home(typed);
    let written =
        create(&path, typed, force, "save").and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => format!("{what} written to {}", path.display()),
        Err(error) => format!("cannot write {}: {error}", path.display()),
    }
}

/// A recording in progress: every scenario line goes into the file as its event happens.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    file: File,
    recorder: Recorder,
    lines: usize,
}

impl Recording {
    /// Starts recording into `typed` (a new file, or over one with `force`), with the events
    /// of the current connection so far, so the scenario replays from its start.
    ///
    /// # Errors
    /// Creating or writing the file.
    pub fn start(typed: &str, force: bool, so_far: &[Event]) -> io::Result<Self> {
        let path = expand_home(typed);
        let file = create(&path, typed, force, "record")?;
        let mut recording = Self {
            path,
            file,
            recorder: Recorder::default(),
            lines: 0,
        };
        recording.file.write_all(HEADER.as_bytes())?;
        for event in so_far {
            recording.add(event)?;
        }
        Ok(recording)
    }

    /// Adds an event's lines to the file.
    ///
    /// # Errors
    /// Writing the file.
    pub fn add(&mut self, event: &Event) -> io::Result<()> {
        let lines = self.recorder.lines(event);
        self.write(&lines)
    }

    /// The next `count` commands go as one pipelined group: the file says so, and pairs each
    /// with its reply.
    ///
    /// # Errors
    /// Writing the file.
    pub fn expect_group(&mut self, count: usize) -> io::Result<()> {
        self.recorder.expect_group(count);
        self.write(&format!(
            "# the next {count} commands went as one pipelined group (RFC 2920)\n"
        ))
    }

    /// The message about to be sent comes from `path` (`:send-file`).
    pub fn expect_file(&mut self, path: &Path) {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.recorder.expect_file(path.display().to_string());
    }

    /// The action in flight finished (see [`Recorder::settled`]).
    ///
    /// # Errors
    /// Writing the file.
    pub fn settled(&mut self) -> io::Result<()> {
        let rest = self.recorder.settled();
        self.write(&rest)
    }

    fn write(&mut self, lines: &str) -> io::Result<()> {
        if !lines.is_empty() {
            self.lines += lines.lines().count();
            self.file.write_all(lines.as_bytes())?;
        }
        Ok(())
    }

    /// Where it goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many scenario lines are written so far.
    pub fn lines(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::proto::reply::{Reply, ReplyLimits, ReplyParser};
    use crate::scenario::Scenario;
    use crate::transcript::Security;

    fn event(kind: EventKind) -> Event {
        Event {
            time: SystemTime::UNIX_EPOCH,
            elapsed: Duration::ZERO,
            kind,
        }
    }

    fn sent(text: &str, kind: SentKind) -> Event {
        event(EventKind::Sent {
            security: Security::Tls,
            text: text.to_owned(),
            kind,
        })
    }

    fn received(wire: &str) -> Event {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.push(wire.as_bytes());
        let reply: Reply = parser.next_reply().expect("valid").expect("complete");
        event(EventKind::Received {
            security: Security::Tls,
            reply,
        })
    }

    #[test]
    fn recording_replays_and_holds_no_secret() {
        let events = vec![
            received("220 lab.test ESMTP\r\n"),
            sent("EHLO me", SentKind::Command),
            received("250-lab.test\r\n250 AUTH PLAIN LOGIN\r\n"),
            sent("AUTH LOGIN", SentKind::Command),
            received("334 VXNlcm5hbWU6\r\n"),
            sent("<credentials for alice hidden>", SentKind::Credentials),
            received("334 UGFzc3dvcmQ6\r\n"),
            sent("<credentials for alice hidden>", SentKind::Credentials),
            received("235 2.7.0 ok\r\n"),
            sent(
                "AUTH PLAIN <credentials for alice hidden>",
                SentKind::Credentials,
            ),
            received("503 already\r\n"),
            sent("DATA", SentKind::Command),
            received("354 go\r\n"),
            sent("..leading dot", SentKind::MessageLine),
            sent(".", SentKind::MessageLine),
            received("250 queued\r\n"),
        ];
        let text = scenario(&events);
        assert!(!text.contains("hidden"), "{text}");
        assert!(
            text.contains("C: AUTH LOGIN\nS: 235\nC: AUTH PLAIN\nS: 503\n"),
            "{text}"
        );
        assert!(text.contains("C: .leading dot\nC: .\nS: 250\n"), "{text}");
        let parsed = Scenario::parse("recorded", &text).expect("replayable");
        assert_eq!(parsed.auth_steps().count(), 2);
        assert!(parsed.greeting.is_some());
    }

    /// A line that held the configured password outside an AUTH exchange is left out with a
    /// comment, and a command's reply with it, so the recorded steps stay paired.
    #[test]
    fn lines_holding_credentials_outside_an_exchange_are_left_out_in_step() {
        let events = vec![
            sent("EHLO x", SentKind::Command),
            received("250 ok\r\n"),
            sent("XPASS <hidden>", SentKind::Credentials),
            received("500 unknown\r\n"),
            sent("DATA", SentKind::Command),
            received("354 go\r\n"),
            sent("the password is <hidden>", SentKind::Credentials),
            sent(".", SentKind::MessageLine),
            received("250 queued\r\n"),
            sent("QUIT", SentKind::Command),
            received("221 bye\r\n"),
        ];
        let text = scenario(&events);
        assert!(!text.contains("hidden"), "{text}");
        assert!(!text.contains("S: 500"), "{text}");
        assert!(
            text.contains("C: EHLO x\nS: 250\n# a command holding credentials"),
            "{text}"
        );
        assert!(
            text.contains("C: DATA\nS: 354\n# a message line holding credentials"),
            "{text}"
        );
        assert!(text.contains("C: .\nS: 250\nC: QUIT\nS: 221\n"), "{text}");
        let parsed = Scenario::parse("recorded.smtp", &text);
        assert!(parsed.is_ok(), "{parsed:?}\n{text}");
    }
}
