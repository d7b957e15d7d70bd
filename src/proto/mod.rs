//! The sans-IO protocol core: bytes in, values out; no sockets, no clocks.
//!
//! Everything here is deterministic and can be tested (and fuzzed) without a network. The
//! tokio layer in [`crate::session`] only moves bytes between these functions and the wire.

pub mod client;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod escape;
pub mod message;
pub mod params;
pub mod proxy;
pub mod reply;
pub mod sasl;
pub mod xclient;
