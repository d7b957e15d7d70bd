//! The step player: a scenario loaded with `:load` or `--script`, sent one step per Enter
//! on an empty line (or `:next`), each reply checked against the step's expectation.
//!
//! A refused, failed or unexpected step ends step mode, because the lines after it were
//! written for a session that went differently (a SASL answer after a refused AUTH would
//! otherwise go out as a command).

use crate::proto::reply::Reply;
use crate::scenario::{Action as StepAction, Expectation, Scenario, Step};
use crate::transcript::EventKind;

/// A scenario being stepped through by hand.
#[derive(Clone)]
pub struct StepPlayer {
    /// The scenario.
    pub scenario: Scenario,
    /// Index of the next step.
    pub next: usize,
    /// The expectation to check against the next reply.
    awaiting: Option<Expectation>,
    /// Whether the latest step is still running (its reply or refusal not yet in).
    in_flight: bool,
    /// Why stepping stopped.
    halted: Option<String>,
}

impl std::fmt::Debug for StepPlayer {
    /// Without the steps: a written-out SASL answer among them is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepPlayer")
            .field("scenario", &self.scenario.name)
            .field("steps", &self.scenario.steps.len())
            .field("next", &self.next)
            .field("in_flight", &self.in_flight)
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

impl StepPlayer {
    /// A player at the first step; the greeting is checked against the scenario's first `S:`.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            awaiting: scenario.greeting.clone(),
            scenario,
            next: 0,
            in_flight: false,
            halted: None,
        }
    }

    /// What loading it says.
    pub fn loaded_message(&self) -> String {
        format!(
            "step mode: {} ({} steps); Enter on an empty line sends the next one",
            self.scenario.name,
            self.scenario.steps.len()
        )
    }

    /// The step the next Enter sends.
    pub fn next_step(&self) -> Option<&Step> {
        self.scenario.steps.get(self.next)
    }

    /// Whether the next step is the message after DATA.
    pub fn next_is_message(&self) -> bool {
        self.next_step()
            .is_some_and(|step| matches!(step.action, StepAction::Message(_)))
    }

    /// Whether the next step answers a SASL challenge.
    pub fn next_is_answer(&self) -> bool {
        self.next_step().is_some_and(|step| step.sasl_answer)
    }

    /// Whether a step was sent and its reply (or refusal) is not in yet.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Takes the next step to send, or says why there is none. `in_message` is whether the
    /// server accepted DATA: a message step without it would be read as commands, so it ends
    /// step mode instead.
    ///
    /// # Errors
    /// The message for the user when no step is sent.
    pub fn take_step(&mut self, in_message: bool) -> Result<Step, String> {
        if let Some(reason) = &self.halted {
            return Err(stopped(reason));
        }
        let Some(step) = self.next_step().cloned() else {
            return Err("the scenario is finished".to_owned());
        };
        if matches!(step.action, StepAction::Message(_)) && !in_message {
            return Err(self.halt("DATA was not accepted, so the message is not sent"));
        }
        if matches!(
            step.action,
            StepAction::Body(_) | StepAction::Group { .. } | StepAction::Chunk { .. }
        ) {
            return Err(self.halt(&format!(
                "step mode does not send line {}'s PIPELINE group, BDAT or FILE message; \
                 smtptui run replays the whole scenario",
                step.line
            )));
        }
        self.next += 1;
        self.awaiting = step.expect.clone();
        self.in_flight = true;
        Ok(step)
    }

    /// The step's action ended (replied, refused or failed); returns whether a step was in
    /// flight.
    pub fn settle(&mut self) -> bool {
        std::mem::replace(&mut self.in_flight, false)
    }

    /// The reply came: checks it against the expectation, if one waits. An unmet expectation
    /// ends step mode (its message is the second part).
    pub fn check(&mut self, reply: &Reply) -> Option<(EventKind, Option<String>)> {
        let expect = self.awaiting.take()?;
        let met = expect.matches(reply);
        let halted = (!met).then(|| {
            self.halt(&format!(
                "line {} expected {expect}, got {}",
                expect.line, reply.code
            ))
        });
        Some((
            EventKind::Expectation {
                line: expect.line,
                expected: expect.to_string(),
                met,
                got: reply.summary(),
            },
            halted,
        ))
    }

    /// The action failed: no reply will come to check.
    pub fn forget_expectation(&mut self) {
        self.awaiting = None;
    }

    /// Ends step mode with the reason; `:load` starts it again. Returns the message for the
    /// user.
    pub fn halt(&mut self, reason: &str) -> String {
        self.in_flight = false;
        self.awaiting = None;
        self.halted = Some(reason.to_owned());
        stopped(reason)
    }

    /// What Enter on an empty command line sends, in words; a SASL answer is not shown.
    pub fn describe_next(&self) -> Option<String> {
        if self.halted.is_some() {
            return Some("nothing: step mode stopped (:load starts it again)".to_owned());
        }
        let step = self.next_step()?;
        let what = match &step.action {
            // A credential: never on screen.
            StepAction::Command(_) if step.sasl_answer => {
                "its answer to a SASL challenge (hidden), sent only while the server waits for one"
                    .to_owned()
            }
            StepAction::Command(line) => format!("C: {line}"),
            StepAction::Message(lines) => {
                format!("the message ({} lines) and the final dot", lines.len())
            }
            StepAction::Body(_) | StepAction::Group { .. } | StepAction::Chunk { .. } => {
                "nothing: step mode does not send PIPELINE groups, BDAT or FILE messages".to_owned()
            }
        };
        Some(format!("send step line {}: {what}", step.line))
    }

    /// What Enter on the empty message editor sends, when the next step is the message.
    pub fn describe_message(&self) -> Option<String> {
        let step = self.next_step()?;
        let StepAction::Message(lines) = &step.action else {
            return None;
        };
        Some(format!(
            "send step line {}: the message ({} lines) and the final dot; or type your own",
            step.line,
            lines.len()
        ))
    }

    /// What Enter on the empty hidden prompt sends, when the next step is the answer.
    pub fn describe_answer(&self) -> Option<String> {
        let step = self.next_step().filter(|step| step.sasl_answer)?;
        Some(format!(
            "send step line {}: the scenario's answer to the 334 (hidden)",
            step.line
        ))
    }
}

fn stopped(reason: &str) -> String {
    format!("step mode stopped: {reason}; the rest of the scenario is not sent (:load restarts)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::{ReplyLimits, ReplyParser};

    fn reply(wire: &str) -> Reply {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.push(wire.as_bytes());
        parser
            .next_reply()
            .expect("valid reply")
            .expect("complete reply")
    }

    fn player(text: &str) -> StepPlayer {
        StepPlayer::new(Scenario::parse("t.smtp", text).expect("parses"))
    }

    #[test]
    fn an_unmet_expectation_stops_stepping() {
        let mut player = player("S: 220\nC: NOOP\nS: 250\nC: QUIT\n");
        let (event, halted) = player
            .check(&reply("220 hi\r\n"))
            .expect("greeting checked");
        assert!(matches!(event, EventKind::Expectation { met: true, .. }));
        assert!(halted.is_none());
        let step = player.take_step(false).expect("a step");
        assert!(matches!(step.action, StepAction::Command(ref line) if line == "NOOP"));
        assert!(player.settle());
        let (_, halted) = player.check(&reply("502 no\r\n")).expect("checked");
        assert!(halted.is_some_and(|m| m.contains("line 3 expected 250")));
        let refused = player.take_step(false).expect_err("stopped");
        assert!(refused.contains("step mode stopped"), "{refused}");
    }

    #[test]
    fn a_message_step_needs_an_accepted_data() {
        let mut player = player("C: DATA\nC: Subject: x\nC: .\n");
        player.take_step(false).expect("DATA");
        assert!(player.next_is_message());
        let refused = player.take_step(false).expect_err("no 354");
        assert!(refused.contains("DATA was not accepted"), "{refused}");
        let mut player = self::player("C: DATA\nC: Subject: x\nC: .\n");
        player.take_step(false).expect("DATA");
        assert!(player.take_step(true).is_ok());
        assert_eq!(
            player.take_step(true).expect_err("done"),
            "the scenario is finished"
        );
    }

    #[test]
    fn a_written_out_answer_is_never_described() {
        let mut player = player("C: AUTH DIGEST-MD5\nS: 334\nC: c2VjcmV0\nS: 235\n");
        player.take_step(false).expect("AUTH");
        player.settle();
        player.check(&reply("334 PDE+\r\n"));
        let hint = player.describe_next().expect("a step");
        assert!(!hint.contains("c2VjcmV0"), "{hint}");
        assert!(player.describe_answer().is_some());
        assert!(!format!("{player:?}").contains("c2VjcmV0"));
    }
}
