//! The lab's server session under arbitrary client bytes, in every profile, with SMTPUTF8 and
//! REQUIRETLS on and off: it never panics, and every line it logs is escaped (a projector
//! shows the log), pipelined groups included.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use smtptui::lab::Accounts;
use smtptui::lab::Profile;
use smtptui::lab::server::{Output, ServerSession, ServerSettings};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let profile = Profile::ALL[choice as usize % Profile::ALL.len()];
    let mut accounts = Accounts::empty();
    accounts.insert("u", smtptui::secret::Secret::new("fuzz-secret-password".to_owned()));
    let mut settings = ServerSettings::new("lab.test", profile, Arc::new(accounts));
    // Both ways Postfix can be configured: SMTPUTF8 (and REQUIRETLS) on or off.
    settings.smtputf8 = choice & 0x40 == 0;
    settings.requiretls = choice & 0x20 == 0;
    let settings = Arc::new(settings);
    let mut session = ServerSession::new(settings, 1, profile == Profile::Implicit);
    let mut outputs = session.greeting();
    let mut seed = choice as usize;
    let mut rest = bytes;
    while !rest.is_empty() && !session.is_closed() {
        let n = (seed % 13 + 1).min(rest.len());
        seed = seed.wrapping_mul(17).wrapping_add(3);
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        let new = session.receive(piece);
        // There is no clock: every wait is over at once.
        for output in &new {
            if matches!(output, Output::Wait(_)) {
                session.waited();
            }
        }
        outputs.extend(new);
        if choice & 0x80 != 0 && seed % 5 == 0 {
            session.tls_started();
        }
    }
    for output in &outputs {
        if let Output::Log(_, text) = output {
            assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        }
    }
    // A verdict can always be made, and never shows the password.
    let verdict = session.verdict().to_string();
    assert!(!verdict.contains("fuzz-secret-password"), "{verdict}");
});
