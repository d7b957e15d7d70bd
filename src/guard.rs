//! The credential guard: the one place that decides whether credentials may be sent.
//!
//! It lives in the engine, under every front end, and it is pure: given what the connection
//! is, what the user allowed, and what the line is, it answers allow or refuse. RFC 4954 §4
//! and RFC 8314 §5 say credentials must not cross without TLS, and RFC 4954 §14 says PLAIN
//! must not be sent when the certificate or name was not verified; the guard enforces both
//! unless the user gave the explicit override for exactly that case.

use crate::tls::CertificateProblem;

/// What protects the connection right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// No TLS: anyone on the path can read and change the bytes.
    Cleartext,
    /// TLS with a verified certificate.
    VerifiedTls,
    /// TLS whose certificate failed verification (allowed by `--insecure`): encrypted, but the
    /// peer may not be the server the user meant.
    UnverifiedTls(CertificateProblem),
}

/// Standing overrides from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardPolicy {
    /// `--allow-cleartext-auth`: send credentials without TLS.
    pub allow_cleartext_auth: bool,
    /// `--insecure`: send credentials over TLS whose certificate failed verification.
    pub allow_unverified_auth: bool,
}

/// A one-time override for a single command (given, for example, in an interactive prompt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OneTimeOverride {
    /// No override.
    #[default]
    None,
    /// Let this one command send credentials in cleartext.
    Cleartext,
    /// Let this one command send credentials to an unverified TLS peer.
    Unverified,
}

/// Why the guard refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The connection is not encrypted.
    #[error(
        "credential guard: AUTH refused on a cleartext connection; the credentials would cross \
         the network readable by anyone on the path (base64 is an encoding, not encryption). \
         Nothing was sent. Send STARTTLS first (or use implicit TLS, --tls implicit); to send \
         them anyway, pass --allow-cleartext-auth"
    )]
    Cleartext,
    /// TLS, but the certificate was not verified.
    #[error(
        "credential guard: AUTH refused because the server certificate was not verified \
         ({0}); the peer may not be the server you meant. Nothing was sent. Fix trust with \
         --ca-file or --servername, or pass --insecure to send to this peer anyway"
    )]
    Unverified(CertificateProblem),
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Safe: TLS with a verified certificate.
    Allow,
    /// Unsafe but explicitly allowed; the transcript must say so loudly.
    AllowedByOverride(Refusal),
    /// Not sent.
    Refuse(Refusal),
}

/// Decides whether a credential-bearing line (an `AUTH` command, or any line answering a 334
/// challenge) may be sent.
pub fn decide(protection: &Protection, policy: GuardPolicy, one_time: OneTimeOverride) -> Decision {
    match protection {
        Protection::VerifiedTls => Decision::Allow,
        Protection::Cleartext => {
            if policy.allow_cleartext_auth || one_time == OneTimeOverride::Cleartext {
                Decision::AllowedByOverride(Refusal::Cleartext)
            } else {
                Decision::Refuse(Refusal::Cleartext)
            }
        }
        Protection::UnverifiedTls(problem) => {
            let refusal = Refusal::Unverified(problem.clone());
            if policy.allow_unverified_auth || one_time == OneTimeOverride::Unverified {
                Decision::AllowedByOverride(refusal)
            } else {
                Decision::Refuse(refusal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> CertificateProblem {
        CertificateProblem {
            kind: "expired",
            detail: "certificate expired".into(),
        }
    }

    #[test]
    fn cleartext_is_refused_without_override() {
        assert_eq!(
            decide(
                &Protection::Cleartext,
                GuardPolicy::default(),
                OneTimeOverride::None
            ),
            Decision::Refuse(Refusal::Cleartext)
        );
    }

    #[test]
    fn each_override_covers_only_its_own_case() {
        let cleartext_only = GuardPolicy {
            allow_cleartext_auth: true,
            allow_unverified_auth: false,
        };
        let unverified = Protection::UnverifiedTls(problem());
        assert!(matches!(
            decide(&unverified, cleartext_only, OneTimeOverride::Cleartext),
            Decision::Refuse(Refusal::Unverified(_))
        ));
        let insecure_only = GuardPolicy {
            allow_cleartext_auth: false,
            allow_unverified_auth: true,
        };
        assert_eq!(
            decide(
                &Protection::Cleartext,
                insecure_only,
                OneTimeOverride::Unverified
            ),
            Decision::Refuse(Refusal::Cleartext)
        );
        assert!(matches!(
            decide(&unverified, insecure_only, OneTimeOverride::None),
            Decision::AllowedByOverride(Refusal::Unverified(_))
        ));
        assert_eq!(
            decide(
                &Protection::Cleartext,
                GuardPolicy::default(),
                OneTimeOverride::Cleartext
            ),
            Decision::AllowedByOverride(Refusal::Cleartext)
        );
    }

    #[test]
    fn verified_tls_is_allowed() {
        assert_eq!(
            decide(
                &Protection::VerifiedTls,
                GuardPolicy::default(),
                OneTimeOverride::None
            ),
            Decision::Allow
        );
    }

    #[test]
    fn refusal_explains_how_to_proceed() {
        let text = Refusal::Cleartext.to_string();
        assert!(text.contains("STARTTLS first"));
        assert!(text.contains("--allow-cleartext-auth"));
        assert!(text.contains("Nothing was sent"));
    }
}
