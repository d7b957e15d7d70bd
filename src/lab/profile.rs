//! The lab's server profiles: each one a configuration worth meeting once in a safe place.
//!
//! Three are honest configurations copied from Postfix (`submission`, `mx`, `implicit`), one is
//! honest but unsafe (`legacy`), three behave like an attacker or a broken middlebox
//! (`inject`, `strip`, `refuse-tls`), one is an honest MX on a bad day (`slow`: delays
//! and a dropped first attempt), and one speaks LMTP (`lmtp`: LHLO, and one reply per
//! recipient at the end of each message, as a mailbox server answers its MTA); `grade` turns
//! the tables: it grades the sender delivering to it. A profile is only data: [`Policy`] says what the server
//! state machine in [`super::server`] does, so tests and the table printed at start agree.

use std::fmt;
use std::str::FromStr;

/// The port base of the default ports: 2000 + 587 for submission, and so on.
pub const DEFAULT_PORT_BASE: u16 = 2000;

/// The largest port offset of any profile, so a port base leaves room for all of them.
pub const LARGEST_PORT_OFFSET: u16 = 605;

/// A server behaviour the lab can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Submission on port 587 done right: STARTTLS required before AUTH and mail.
    Submission,
    /// An MX on port 25: STARTTLS optional, no AUTH, mail only for the lab's own domain.
    Mx,
    /// Submission that accepts AUTH before STARTTLS (`smtpd_tls_auth_only=no`).
    Legacy,
    /// Submission over implicit TLS, as on port 465.
    Implicit,
    /// Injects a cleartext EHLO reply right after `220 Ready to start TLS`.
    Inject,
    /// Never offers STARTTLS but invites AUTH, as a stripping attacker does.
    Strip,
    /// Offers STARTTLS, then refuses it with 454, hoping the client goes on in cleartext.
    RefuseTls,
    /// An MX that answers slowly and drops the connection at the first end of each message
    /// (the retry is accepted).
    Slow,
    /// LMTP (RFC 2033), as a mailbox server speaks it to its MTA: LHLO instead of EHLO, and
    /// one reply per accepted recipient at the end of each message.
    Lmtp,
    /// The MX of a test domain that grades the sender delivering to it: one trial per
    /// session (certificates, STARTTLS stripped or refused, a 4xx), and the Postfix
    /// `smtp_tls_security_level` the sender behaved like (see [`super::grade`]).
    Grade,
}

/// What happens when the client sends STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTlsBehaviour {
    /// Not offered; the command is not recognized.
    Absent,
    /// `220 2.0.0 Ready to start TLS`, then the handshake.
    Honest,
    /// `454 4.7.0 TLS not available due to local problem`.
    Refuse,
    /// The 220 with a forged cleartext EHLO reply in the same write, then the handshake.
    Inject,
}

/// The server-side rules of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// TLS from the first byte.
    pub implicit_tls: bool,
    /// How STARTTLS is answered.
    pub starttls: StartTlsBehaviour,
    /// Whether AUTH is advertised and accepted on a cleartext connection.
    pub auth_in_cleartext: bool,
    /// Whether AUTH is advertised and accepted under TLS.
    pub auth_under_tls: bool,
    /// Whether every command but EHLO, HELO, STARTTLS, NOOP and QUIT is refused with 530
    /// until TLS is active (Postfix `smtpd_tls_security_level=encrypt`).
    pub require_tls: bool,
    /// Whether every recipient needs AUTH first, as on a submission port
    /// (`smtpd_relay_restrictions = permit_sasl_authenticated, reject`); otherwise mail for
    /// the lab's own domain is accepted from anyone, as on an MX.
    pub auth_required_for_mail: bool,
    /// Replies come late, and the first end of each message drops the connection.
    pub slow: bool,
    /// LMTP instead of SMTP: LHLO is the greeting command (EHLO and HELO are not
    /// recognized), and the end of a message is answered once per accepted recipient.
    pub lmtp: bool,
    /// The TLS handshake asks for a client certificate signed by the lab CA (one without
    /// still gets in), and AUTH EXTERNAL is offered to a client that presented one
    /// (Postfix's `smtpd_tls_ask_ccert = yes`).
    pub asks_client_certificate: bool,
}

impl Profile {
    /// Every profile, in the order the lab's table lists them.
    pub const ALL: [Profile; 10] = [
        Profile::Submission,
        Profile::Mx,
        Profile::Legacy,
        Profile::Implicit,
        Profile::Inject,
        Profile::Strip,
        Profile::RefuseTls,
        Profile::Slow,
        Profile::Lmtp,
        Profile::Grade,
    ];

    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Submission => "submission",
            Self::Mx => "mx",
            Self::Legacy => "legacy",
            Self::Implicit => "implicit",
            Self::Inject => "inject",
            Self::Strip => "strip",
            Self::RefuseTls => "refuse-tls",
            Self::Slow => "slow",
            Self::Lmtp => "lmtp",
            Self::Grade => "grade",
        }
    }

    /// Whether the profile behaves like an attacker on the path: a client falling for it is
    /// an attack that worked.
    pub fn is_attacker(self) -> bool {
        matches!(self, Self::Inject | Self::Strip | Self::RefuseTls)
    }

    /// The default loopback port: [`DEFAULT_PORT_BASE`] plus [`Profile::port_offset`].
    pub fn default_port(self) -> u16 {
        DEFAULT_PORT_BASE + self.port_offset()
    }

    /// Where the profile sits above a port base. The honest profiles sit at the real port
    /// they imitate (587, 25, 465, and LMTP's 24), so with the default base of 2000 the number
    /// reminds the student which service it is (2587, 2525, 2465, 2024); the unsafe, hostile
    /// and slow ones are grouped at 600 and above, away from them.
    pub fn port_offset(self) -> u16 {
        match self {
            Self::Submission => 587,
            Self::Mx => 25,
            Self::Implicit => 465,
            Self::Lmtp => 24,
            Self::Legacy => 600,
            Self::Inject => 601,
            Self::Strip => 602,
            Self::RefuseTls => 603,
            Self::Slow => 604,
            Self::Grade => 605,
        }
    }

    /// One line for the table: what meeting this server teaches.
    pub fn teaches(self) -> &'static str {
        match self {
            Self::Submission => {
                "port 587 done right: STARTTLS first; before it MAIL/RCPT/AUTH get 530 and AUTH is not offered; inside TLS also CRAM-MD5, OAUTHBEARER, and EXTERNAL for a client certificate"
            }
            Self::Mx => "an MX: STARTTLS optional, no AUTH, mail for lab.test only, relay denied",
            Self::Legacy => {
                "the unsafe setting: AUTH offered and accepted in cleartext (smtpd_tls_auth_only=no), CRAM-MD5 and OAUTHBEARER too"
            }
            Self::Implicit => "port 465 style: TLS from the first byte, then AUTH",
            Self::Inject => {
                "attacker: a forged cleartext EHLO reply follows the 220 to STARTTLS (response injection)"
            }
            Self::Strip => "attacker: STARTTLS stripped from EHLO, AUTH invited in cleartext",
            Self::RefuseTls => {
                "attacker: STARTTLS offered, then refused with 454 to force cleartext"
            }
            Self::Slow => {
                "an MX on a bad day: greeting after 2 s, replies after 1 s, the first end of each message dropped (retry it)"
            }
            Self::Lmtp => {
                "LMTP as a mailbox server speaks it: LHLO, not EHLO; one reply per recipient after the message"
            }
            Self::Grade => {
                "an MX grading the SENDER: one trial per session, then the smtp_tls_security_level it behaved like"
            }
        }
    }

    /// The `--tls` option a client needs here: `--tls implicit` where TLS starts with the
    /// first byte (a client that waits for a greeting there waits in silence, because such a
    /// server says nothing until it sees a TLS ClientHello), `--tls starttls` elsewhere.
    pub fn client_tls_flag(self) -> &'static str {
        if self.policy().implicit_tls {
            "--tls implicit"
        } else {
            "--tls starttls"
        }
    }

    /// The server rules of this profile.
    pub fn policy(self) -> Policy {
        // Each matches a listener of the Postfix the tests compare with (scripts/postfix-env.sh).
        let submission = Policy {
            implicit_tls: false,
            starttls: StartTlsBehaviour::Honest,
            auth_in_cleartext: false,
            auth_under_tls: true,
            require_tls: false,
            auth_required_for_mail: true,
            slow: false,
            lmtp: false,
            asks_client_certificate: false,
        };
        let mx = Policy {
            auth_under_tls: false,
            auth_required_for_mail: false,
            ..submission
        };
        match self {
            Self::Submission => Policy {
                require_tls: true,
                asks_client_certificate: true,
                ..submission
            },
            Self::Mx => mx,
            Self::Legacy => Policy {
                auth_in_cleartext: true,
                ..submission
            },
            // Wrapper mode implies encrypt in Postfix: TLS is always there anyway.
            Self::Implicit => Policy {
                implicit_tls: true,
                starttls: StartTlsBehaviour::Absent,
                require_tls: true,
                ..submission
            },
            // Honest after the handshake: AUTH only inside TLS, local mail from anyone.
            Self::Inject => Policy {
                starttls: StartTlsBehaviour::Inject,
                auth_under_tls: true,
                ..mx
            },
            Self::Strip => Policy {
                starttls: StartTlsBehaviour::Absent,
                auth_in_cleartext: true,
                ..submission
            },
            // AUTH is dangled in cleartext so that a client which "falls back" after the 454
            // has something to leak: that is the point of the attack.
            Self::RefuseTls => Policy {
                starttls: StartTlsBehaviour::Refuse,
                auth_in_cleartext: true,
                ..submission
            },
            Self::Slow => Policy { slow: true, ..mx },
            // Where an MTA hands mail to mailboxes: local mail from anyone, no AUTH.
            Self::Lmtp => Policy { lmtp: true, ..mx },
            // The trial of each session changes STARTTLS and the certificate (super::grade).
            Self::Grade => mx,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of [`Profile::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lab profile {given:?}; choose one of: {}", Profile::ALL.map(Profile::name).join(", "))]
pub struct UnknownProfile {
    /// What was given.
    pub given: String,
}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownProfile {
                given: text.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ports_are_distinct() {
        let mut ports = std::collections::HashSet::new();
        for profile in Profile::ALL {
            assert_eq!(profile.name().parse::<Profile>(), Ok(profile));
            assert!(ports.insert(profile.default_port()), "{profile}");
        }
        assert!("nope".parse::<Profile>().is_err());
        assert_eq!("REFUSE-TLS".parse::<Profile>(), Ok(Profile::RefuseTls));
        assert_eq!(
            Profile::ALL.map(Profile::port_offset).into_iter().max(),
            Some(LARGEST_PORT_OFFSET)
        );
    }

    #[test]
    fn submission_is_the_safe_one() {
        let policy = Profile::Submission.policy();
        assert!(policy.require_tls && !policy.auth_in_cleartext);
        assert!(Profile::Legacy.policy().auth_in_cleartext);
        assert_eq!(Profile::Strip.policy().starttls, StartTlsBehaviour::Absent);
        assert!(Profile::Lmtp.policy().lmtp && !Profile::Mx.policy().lmtp);
        assert_eq!(
            Profile::Lmtp.default_port(),
            2024,
            "LMTP's port 24 above the base"
        );
    }
}
