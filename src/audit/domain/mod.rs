//! `smtptui audit DOMAIN`: will mail to a domain stay encrypted? Where mail goes (MX, null MX,
//! the implicit MX), whether DNSSEC, DANE and MTA-STS protect each hop, where senders report
//! TLS failures (TLS-RPT), and what each kind of sender would do with each MX address.
//!
//! - [`dns`]: the lookups, DNSSEC validated in-process from a trust anchor;
//! - [`dane`]: TLSA matching over a recorded chain (pure);
//! - [`mta_sts`]: MTA-STS records, policies and MX patterns (pure), [`http`] the bounded
//!   HTTP/1.1 response reader (sans-IO) and [`fetch`] the policy fetch over it;
//! - [`tls_rpt`]: TLS-RPT records (pure);
//! - [`model`]: what was seen, as plain data, with a typed "not checked yet" state for the
//!   sending side;
//! - [`probe`]: the lookups, the policy fetch and the host audit of every MX address, in
//!   parallel, each with its own deadline;
//! - [`mod@judge`]: the table and the findings (pure);
//! - [`report`]: text and JSON.

pub mod dane;
pub mod dns;
pub mod fetch;
pub mod http;
pub mod judge;
pub mod model;
pub mod mta_sts;
pub mod probe;
pub mod report;
pub mod tls_rpt;

pub use judge::{DomainFinding, DomainFindingId, Judged, judge};
pub use model::DomainSeen;
pub use probe::{DomainConfig, run};
