//! The lab's server session under arbitrary client bytes, in every profile: it never panics,
//! and every line it logs is escaped (a projector shows the log).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use smtptui::lab::Accounts;
use smtptui::lab::Profile;
use smtptui::lab::server::{Output, ServerSession, ServerSettings, SIZE_LIMIT};

const PROFILES: [Profile; 7] = [
    Profile::Submission,
    Profile::Mx,
    Profile::Legacy,
    Profile::Implicit,
    Profile::Inject,
    Profile::Strip,
    Profile::RefuseTls,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let profile = PROFILES[choice as usize % PROFILES.len()];
    let mut accounts = Accounts::empty();
    accounts.insert("u", smtptui::secret::Secret::new("fuzz-secret-password".to_owned()));
    let settings = Arc::new(ServerSettings {
        host: "lab.test".to_owned(),
        profile,
        accounts: Arc::new(accounts),
        size_limit: SIZE_LIMIT,
    });
    let mut session = ServerSession::new(settings, 1, profile == Profile::Implicit);
    let mut outputs = session.greeting();
    let mut seed = choice as usize;
    let mut rest = bytes;
    while !rest.is_empty() && !session.is_closed() {
        let n = (seed % 13 + 1).min(rest.len());
        seed = seed.wrapping_mul(17).wrapping_add(3);
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        outputs.extend(session.receive(piece));
        if choice & 0x80 != 0 && seed % 5 == 0 {
            session.tls_started();
        }
    }
    for output in &outputs {
        if let Output::Log(_, text) = output {
            assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        }
    }
});
