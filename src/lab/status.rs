//! A student asking the lab for their exercises and progress: `smtptui lab-status` and the
//! UI's `:exercises`.
//!
//! The lab answers its own command `XEXERCISES [STUDENT-ID]` on every listener, in any state
//! of a session (it is not mail, so a submission listener answers it before STARTTLS too).
//! Any client can send it (`openssl s_client`, `nc`, a line typed in smtptui); [`fetch`]
//! does it on a short session of its own, `EHLO STUDENT-ID`, `XEXERCISES`, `QUIT`, which
//! carries no credential and so needs no TLS.

use crate::guard::OneTimeOverride;
use crate::lab::server::EXERCISES_VERB;
use crate::lab::textfile;
use crate::proto::reply::Reply;
use crate::session::{Session, SessionConfig, SessionError, Step};
use crate::transcript::EventKind;

/// Why the exercises could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The student ID cannot be an EHLO name.
    #[error(
        "{0:?} is not a student ID: give the ID from your line of the class sheet (letters, digits, hyphens), e.g. student07"
    )]
    BadId(String),
    /// The session failed.
    #[error("cannot ask the lab: {0}")]
    Session(#[from] SessionError),
    /// The server does not know the command: not a smtptui lab.
    #[error(
        "the server does not answer XEXERCISES ({0}): it is not a smtptui lab; give the address of the lab's mx or submission listener"
    )]
    NotALab(String),
}

/// Connects with `config`, says `EHLO` with the student's ID (`student`, or a neutral name
/// without one), asks `XEXERCISES` and says `QUIT`; returns the lines of the answer.
///
/// # Errors
/// [`StatusError`] when the ID is not one, the session fails, or the server is no lab.
pub async fn fetch(
    config: SessionConfig,
    student: Option<&str>,
) -> Result<Vec<String>, StatusError> {
    if let Some(id) = student
        && !textfile::is_identifier(id, 64)
    {
        return Err(StatusError::BadId(id.to_owned()));
    }
    let (mut session, greeting) = Session::connect(config, Box::new(|_| {})).await?;
    let result = ask(&mut session, &greeting, student).await;
    session.quit().await;
    result
}

async fn ask(
    session: &mut Session,
    greeting: &Reply,
    student: Option<&str>,
) -> Result<Vec<String>, StatusError> {
    if greeting.code.value() != 220 {
        return Err(StatusError::NotALab(greeting.summary()));
    }
    let ehlo = format!("EHLO {}", student.unwrap_or("smtptui-lab-status"));
    send(session, &ehlo).await?;
    let reply = send(session, EXERCISES_VERB).await?;
    if reply.code.value() != 250 {
        return Err(StatusError::NotALab(reply.summary()));
    }
    // Each line as the lab wrote it, escaped (a hostile server reaches no terminal raw).
    Ok(reply
        .texts()
        .map(crate::proto::escape::escape_bytes)
        .collect())
}

async fn send(session: &mut Session, line: &str) -> Result<Reply, StatusError> {
    match session.send_line(line, OneTimeOverride::None).await? {
        Step::Reply(reply) => Ok(reply),
        Step::Queued | Step::Replies(_) => Err(StatusError::NotALab(format!("no reply to {line}"))),
    }
}

/// Whom `:exercises` asks about: the ID typed after it, else the local part of the lab
/// account the session authenticated as (or was given with `--user`).
pub fn student_to_ask(
    typed: &str,
    authenticated: Option<&str>,
    user: Option<&str>,
) -> Option<String> {
    let typed = typed.trim();
    if !typed.is_empty() {
        return Some(typed.to_owned());
    }
    authenticated.or(user).and_then(|account| {
        let (local, domain) = account.rsplit_once('@')?;
        (domain.eq_ignore_ascii_case(crate::lab::server::LOCAL_DOMAIN)
            && textfile::is_identifier(local, 64))
        .then(|| local.to_owned())
    })
}

/// The answer as transcript notes (or the reason as a warning), for the UI.
pub fn notes(answer: Result<Vec<String>, StatusError>) -> Vec<EventKind> {
    match answer {
        Ok(lines) => {
            let mut notes = vec![EventKind::Note(format!(
                "The lab's exercises (asked with {EXERCISES_VERB} on a session of its own):"
            ))];
            notes.extend(lines.into_iter().map(EventKind::Note));
            notes
        }
        Err(error) => vec![EventKind::Warning(format!(":exercises: {error}"))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_student_is_the_typed_id_else_the_lab_account() {
        assert_eq!(
            student_to_ask(" bob ", Some("alice@lab.test"), None),
            Some("bob".into())
        );
        assert_eq!(
            student_to_ask("", Some("alice@lab.test"), Some("x@lab.test")),
            Some("alice".into())
        );
        assert_eq!(
            student_to_ask("", None, Some("carol@LAB.test")),
            Some("carol".into())
        );
        assert_eq!(student_to_ask("", Some("alice@example.com"), None), None);
        assert_eq!(student_to_ask("", None, None), None);
    }
}
