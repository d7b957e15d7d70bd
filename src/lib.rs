//! smtptui: an SMTP session tester that cannot leak a password by accident.
//!
//! The crate is layered the way the protocol is:
//! - [`proto`]: the sans-IO core (reply parser, command classification, EHLO capabilities,
//!   SASL, dot-stuffing, escaping of peer text);
//! - [`guard`]: the pure credential guard deciding whether credentials may cross;
//! - [`tls`]: rustls configuration, the recording verifier, negotiated details;
//! - [`session`]: the tokio engine that moves bytes, applies deadlines and emits
//!   [`transcript`] events;
//! - [`scenario`] and [`runner`]: `.smtp` scenario files and the headless `smtptui run`;
//! - [`send`]: `smtptui send`, a one-line message built as a scenario for the runner;
//! - [`config`]: the config file, its defaults and named servers (`smtptui @NAME`);
//! - [`explain`]: plain-language explanations of replies, extensions and TLS;
//! - [`tui`]: the interactive terminal UI (engine task, state, drawing);
//! - [`lab`]: the embedded practice server behind `smtptui lab` and `smtptui demo`;
//! - [`audit`]: `smtptui audit`, the TLS and AUTH posture of a server judged by its role.

pub mod audit;
pub mod config;
pub mod diff;
pub mod explain;
pub mod guard;
pub mod lab;
pub mod proto;
pub mod runner;
pub mod scenario;
pub mod secret;
pub mod send;
pub mod session;
pub mod tls;
pub mod transcript;
pub mod tui;
