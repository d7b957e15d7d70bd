//! `:record FILE`: the session so far as a scenario that `smtptui run` replays.
//!
//! Every command becomes a `C:` line and the reply to it an `S:` line with its code.
//! Credentials never reach the file: any AUTH becomes a bare `C: AUTH <MECH>` (which `run`
//! performs with `--user` and the password from its usual sources), the 334 challenges and
//! the answers to them are left out, and only the final reply of the exchange is expected.

use crate::proto::command::{CommandKind, classify};
use crate::proto::data::unstuff_line;
use crate::transcript::{Event, EventKind, SentKind};

/// Builds the scenario text from the transcript events, in order.
pub fn scenario(events: &[Event]) -> String {
    let mut out = String::from(
        "# recorded by smtptui; credentials are not in this file: AUTH runs with --user and\n\
         # the password from --password-file, $SMTPTUI_PASSWORD or a prompt\n",
    );
    let mut in_auth = false;
    for event in events {
        match &event.kind {
            EventKind::Sent { text, kind, .. } => match kind {
                SentKind::Command => match classify(text) {
                    CommandKind::Auth { mechanism, .. } => {
                        in_auth = true;
                        out.push_str(&format!("C: AUTH {mechanism}\n"));
                    }
                    _ if text == "*" && in_auth => {}
                    _ => {
                        in_auth = false;
                        out.push_str(&format!("C: {text}\n"));
                    }
                },
                SentKind::Credentials => {
                    // An AUTH with an inline response shows as "AUTH PLAIN <... hidden>"; an
                    // answer to a challenge continues the exchange already written.
                    if let CommandKind::Auth { mechanism, .. } = classify(text)
                        && !in_auth
                    {
                        out.push_str(&format!("C: AUTH {mechanism}\n"));
                    }
                    in_auth = true;
                }
                SentKind::MessageLine => {
                    let line = if text == "." { "." } else { unstuff_line(text) };
                    out.push_str(&format!("C: {line}\n"));
                }
            },
            EventKind::Received { reply, .. } => {
                let code = reply.code.value();
                if in_auth && code == 334 {
                    continue;
                }
                in_auth = false;
                out.push_str(&format!("S: {code}\n"));
            }
            _ => {}
        }
    }
    out
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
}
