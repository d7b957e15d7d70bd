//! `smtptui audit`: a server's TLS and AUTH posture, judged against the port's role, with the
//! configuration change that fixes each finding.
//!
//! - [`findings`]: the pure part: what was observed ([`findings::Observations`]), the role,
//!   and [`findings::judge`], which turns both into verdicts with reasons and fixes;
//! - [`fixes`]: which server software answered, and each fix in its terms;
//! - [`probe`]: the sessions that fill in the observations, through the engine; the AUTH
//!   probe never sends a credential (only `AUTH <MECH>` and `*`);
//! - [`injection`]: the raw-socket STARTTLS command injection probe;
//! - [`smuggling`]: the opt-in SMTP smuggling probe (`--smuggling-to`), which sends real test
//!   messages holding non-standard end-of-data sequences, on raw sockets too;
//! - [`versions`]: older-style TLS hellos, for the versions this client does not speak;
//! - [`report`]: text and JSON rendering.

pub mod domain;
pub mod findings;
pub mod fixes;
pub mod injection;
pub mod probe;
mod raw;
pub mod report;
pub mod smuggling;
pub mod versions;

pub use findings::{Finding, FindingId, Role, RoleChoice, Verdict};
pub use probe::{Audit, AuditConfig, AuditError, Recorder};

impl Audit {
    /// The judged findings, in report order.
    pub fn findings(&self) -> Vec<Finding> {
        findings::judge(&self.role, &self.observations)
    }
}

/// The exit statuses of `smtptui audit`.
pub mod exit {
    /// No finding failed.
    pub const PASSED: i32 = 0;
    /// At least one finding failed.
    pub const FAILED: i32 = 1;
    /// The command line was wrong (as for every subcommand).
    pub const USAGE: i32 = 2;
    /// The server could not be reached, did not greet, or refused or ended the session
    /// before its first EHLO was answered, so nothing was judged.
    pub const UNREACHABLE: i32 = 3;
}

/// Whether any finding failed: the audit's exit status is 1 then, 0 otherwise.
pub fn has_failure(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.verdict == Verdict::Fail)
}
