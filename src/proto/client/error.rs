//! Why a session operation failed: the one error type of the client core and its drivers.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::guard::Refusal;
use crate::proto::command::LineError;
use crate::proto::reply::ReplyError;
use crate::proto::sasl::SaslError;
use crate::tls::{CertificateProblem, TlsSetupError};
use crate::transcript::ErrorKind;

/// Why a session operation failed.
///
/// Errors are either fatal ([`SessionError::is_fatal`]: the session is over, and the core
/// returns the same error again on every later call) or refusals of one request, after which
/// nothing was sent and the session goes on. The type is `Clone` so the first fatal error can
/// stay with the session, as rustls keeps its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// TCP connection failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The underlying error.
        source: Arc<io::Error>,
    },
    /// A deadline passed.
    #[error("timed out after {after:?} waiting for {waiting_for}{partial} ({hint})")]
    Timeout {
        /// What we were waiting for.
        waiting_for: String,
        /// The deadline.
        after: Duration,
        /// A note about bytes already received, or empty.
        partial: String,
        /// What the user can do about it.
        hint: String,
    },
    /// Reading or writing failed.
    #[error("network error: {0}")]
    Io(Arc<io::Error>),
    /// The server closed the connection.
    #[error("the server closed the connection{}", if *.mid_reply { " in the middle of a reply" } else { "" })]
    Closed {
        /// Whether a reply was partly received.
        mid_reply: bool,
    },
    /// The server's bytes are not valid SMTP.
    #[error("protocol error: {0}")]
    Protocol(#[from] ReplyError),
    /// Bytes arrived between the 220 to STARTTLS and the TLS handshake.
    #[error(
        "response injection: {bytes} byte(s) arrived in cleartext after the 220 reply to STARTTLS \
         and before the TLS handshake ({preview}); they may have been injected by an attacker \
         and must not be trusted, so the session is aborted (RFC 3207 §6, CVE-2021-22947 class)"
    )]
    Injection {
        /// How many bytes.
        bytes: usize,
        /// The first bytes, escaped.
        preview: String,
    },
    /// The server sent bytes while no command was waiting for a reply.
    #[error(
        "out of step: the server sent {what} {when}, which no command asked for; replies can no \
         longer be matched to the commands they answer, so the session is ended"
    )]
    OutOfStep {
        /// What arrived: the unasked reply summarised, or a count of bytes, escaped.
        what: String,
        /// When it arrived, in words ("while no command was outstanding", ...).
        when: String,
    },
    /// The server kept sending replies nobody asked for.
    #[error("the server sent more than {limit} replies nobody asked for; closing the connection")]
    UnaskedFlood {
        /// How many were tolerated.
        limit: usize,
    },
    /// The server announced it is closing the session without being asked (RFC 5321 §3.8).
    #[error("the server is closing the session, unasked: {reply}")]
    ServiceClosing {
        /// The 421 reply, summarised and escaped.
        reply: String,
    },
    /// The certificate failed verification and `--insecure` was not given.
    #[error(
        "TLS certificate verification failed: {0}. Nothing more was sent (use --insecure only if you accept an unverified peer)"
    )]
    Certificate(CertificateProblem),
    /// The TLS handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(HandshakeFailure),
    /// TLS could not be set up.
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    /// The credential guard refused; nothing was sent. The session can go on.
    #[error(transparent)]
    Guard(Refusal),
    /// Credentials were offered after the server had been out of step; nothing was sent.
    #[error(
        "not sent: the server sent replies nobody asked for earlier in this session, so what \
         seem to be its answers may not be; credentials are not sent on this connection \
         (reconnect to authenticate)"
    )]
    CredentialsAfterOutOfStep,
    /// The mechanism was not advertised by the server; nothing was sent.
    #[error(
        "AUTH {mechanism} not sent: {advertised}; to send it anyway, use smtptui run --force, \
         or type the AUTH line with its initial response yourself"
    )]
    NotAdvertised {
        /// The mechanism asked for.
        mechanism: String,
        /// What the server offered, in words.
        advertised: String,
    },
    /// AUTH EXTERNAL asked for without a client certificate: there is no identity for the
    /// server to take; nothing was sent.
    #[error(
        "AUTH EXTERNAL not sent: no client certificate is configured, so the server has no \
         identity to take; give --cert PEM and --key PEM (the TLS handshake presents it when \
         the server asks)"
    )]
    NoClientCertificate,
    /// A pipelined group was not sent: it breaks a rule of RFC 2920 (or the server did not
    /// offer PIPELINING); nothing was sent.
    #[error("pipelined group not sent: {reason}")]
    GroupRefused {
        /// Which rule, and how to write the group instead.
        reason: String,
    },
    /// A command that needs an extension the server did not advertise; nothing was sent.
    #[error(
        "{what} not sent: the server's EHLO did not advertise {extension}; force it to see what \
         the server does anyway"
    )]
    ExtensionNotOffered {
        /// The EHLO keyword.
        extension: &'static str,
        /// What was not sent.
        what: String,
    },
    /// MAIL FROM with REQUIRETLS on a connection that is not verified TLS; nothing was sent.
    #[error(
        "MAIL FROM with REQUIRETLS not sent: {why}. REQUIRETLS asks every server on the way to \
         pass the message on only over verified TLS (RFC 8689 §4.1), so smtptui never sends it \
         over a connection that is not verified TLS itself: send STARTTLS first (with --ca-file \
         if the server's CA is private)"
    )]
    RequireTls {
        /// What the connection is, in words.
        why: String,
    },
    /// The SASL exchange went wrong.
    #[error("AUTH exchange failed: {0}")]
    Sasl(#[from] SaslError),
    /// The line cannot be sent as one line; nothing was sent. The session can go on.
    #[error(transparent)]
    Line(#[from] LineError),
    /// Message lines were offered but no DATA was answered 354; nothing was sent.
    #[error(
        "the server is not waiting for a message (DATA was not answered 354); nothing was sent"
    )]
    NoMessage,
    /// A SASL answer was offered but the server is not waiting for one; nothing was sent.
    #[error(
        "the server is no longer waiting for a SASL answer, so the answer was not sent \
         (it would have gone out as a command)"
    )]
    NoChallenge,
    /// A request came while an earlier command still waits for its reply; nothing was sent.
    #[error("a command is still waiting for its reply; nothing was sent")]
    Busy,
    /// STARTTLS on a connection that already has TLS (RFC 3207 §4.2 forbids it).
    #[error("TLS is already active; STARTTLS is not sent twice on one connection (RFC 3207 §4.2)")]
    AlreadyTls,
    /// The session has ended (QUIT answered, or closed); nothing more can be sent.
    #[error("the session has already ended")]
    Ended,
}

impl SessionError {
    /// Whether the session can no longer be used.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::Guard(_)
                | Self::AlreadyTls
                | Self::Line(_)
                | Self::NoChallenge
                | Self::NoMessage
                | Self::Busy
                | Self::CredentialsAfterOutOfStep
                | Self::NotAdvertised { .. }
                | Self::NoClientCertificate
                | Self::GroupRefused { .. }
                | Self::ExtensionNotOffered { .. }
                | Self::RequireTls { .. }
        )
    }
}

impl SessionError {
    /// What kind of failure this is, for the transcript's [`ErrorKind`]: code that decides on
    /// a failure (the explain pane) branches on it instead of on the message's wording.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Connect,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Io(_) => ErrorKind::Network,
            Self::Closed { .. } | Self::Ended => ErrorKind::Closed,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::Injection { .. } => ErrorKind::Injection,
            Self::OutOfStep { .. } | Self::UnaskedFlood { .. } => ErrorKind::OutOfStep,
            Self::ServiceClosing { .. } => ErrorKind::ServiceClosing,
            Self::Certificate(_) => ErrorKind::Certificate,
            Self::Handshake(_) => ErrorKind::Handshake,
            Self::TlsSetup(_) => ErrorKind::TlsSetup,
            Self::Sasl(_) => ErrorKind::Authentication,
            Self::Guard(_)
            | Self::CredentialsAfterOutOfStep
            | Self::NotAdvertised { .. }
            | Self::NoClientCertificate
            | Self::GroupRefused { .. }
            | Self::ExtensionNotOffered { .. }
            | Self::RequireTls { .. }
            | Self::Line(_)
            | Self::NoMessage
            | Self::NoChallenge
            | Self::Busy
            | Self::AlreadyTls => ErrorKind::Refused,
        }
    }
}

impl From<io::Error> for SessionError {
    fn from(error: io::Error) -> Self {
        Self::Io(Arc::new(error))
    }
}

/// Why a TLS handshake failed: the user's words, and the TLS library's error where there was
/// one, for code that must branch on what happened rather than on how it was worded.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeFailure {
    /// What happened, in words.
    pub description: String,
    /// The TLS error behind it, if the TLS layer raised one.
    pub cause: Option<rustls::Error>,
}

impl HandshakeFailure {
    /// A failure with no TLS error behind it (the server closed, or spoke no TLS at all).
    pub fn said(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            cause: None,
        }
    }

    /// Whether the peer and we share no protocol version: the server offers neither TLS 1.2
    /// nor 1.3 (it alerted `protocol_version`, or offered only what we do not speak).
    pub fn no_common_version(&self) -> bool {
        use rustls::{AlertDescription, Error, PeerIncompatible};
        matches!(
            &self.cause,
            Some(Error::AlertReceived(AlertDescription::ProtocolVersion))
                | Some(Error::PeerIncompatible(
                    PeerIncompatible::ServerDoesNotSupportTls12Or13
                        | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                        | PeerIncompatible::Tls12NotOffered
                        | PeerIncompatible::Tls12NotOfferedOrEnabled
                ))
        )
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Refusal;

    /// Every error has a kind, and a refusal of one request (nothing sent, the session goes
    /// on) is never reported as a kind that says the session ended, nor the other way round.
    #[test]
    fn refusals_and_fatal_errors_have_distinct_kinds() {
        let problem = CertificateProblem {
            kind: "expired",
            detail: "certificate expired".to_owned(),
        };
        let errors = [
            SessionError::Connect {
                target: "x:25".to_owned(),
                source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
            },
            SessionError::Timeout {
                waiting_for: "the greeting".to_owned(),
                after: Duration::from_secs(1),
                partial: String::new(),
                hint: String::new(),
            },
            SessionError::from(io::Error::from(io::ErrorKind::BrokenPipe)),
            SessionError::Closed { mid_reply: false },
            SessionError::Protocol(ReplyError::Malformed {
                line: "x".to_owned(),
            }),
            SessionError::Injection {
                bytes: 1,
                preview: "x".to_owned(),
            },
            SessionError::OutOfStep {
                what: "x".to_owned(),
                when: "y".to_owned(),
            },
            SessionError::UnaskedFlood { limit: 1 },
            SessionError::ServiceClosing {
                reply: "421".to_owned(),
            },
            SessionError::Certificate(problem.clone()),
            SessionError::Handshake(HandshakeFailure::said("closed")),
            SessionError::TlsSetup(TlsSetupError::CaFile {
                path: "ca.pem".to_owned(),
                reason: "missing".to_owned(),
            }),
            SessionError::Guard(Refusal::Cleartext),
            SessionError::Guard(Refusal::Unverified(problem)),
            SessionError::CredentialsAfterOutOfStep,
            SessionError::NotAdvertised {
                mechanism: "PLAIN".to_owned(),
                advertised: "none".to_owned(),
            },
            SessionError::NoClientCertificate,
            SessionError::Sasl(SaslError::TooManyChallenges),
            SessionError::Line(LineError::LineBreak),
            SessionError::NoMessage,
            SessionError::NoChallenge,
            SessionError::Busy,
            SessionError::AlreadyTls,
            SessionError::Ended,
        ];
        for error in errors {
            assert_eq!(
                error.kind() == ErrorKind::Refused,
                !error.is_fatal(),
                "{error:?}: {:?}",
                error.kind()
            );
        }
    }
}
