//! The client core against the lab's server in memory, TLS included, with fuzzed requests,
//! fuzzed cuts of the server's bytes and fuzzed bytes injected on the path: it never panics,
//! no credential reaches the server outside TLS without an override, and no event shows one.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smtptui::guard::OneTimeOverride;
use smtptui::lab::accounts::{DEFAULT_PASSWORD, DEFAULT_USER};
use smtptui::lab::pair::{Pair, workshop_credentials};
use smtptui::lab::{LabPki, Profile};
use smtptui::proto::client::UnaskedReplies;
use smtptui::proto::sasl::{Mechanism, credential_forms};
use smtptui::secret::Secret;

const LINES: &[&str] = &[
    "EHLO client.example",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "MAIL FROM:<student@lab.test>",
    "RCPT TO:<bob@lab.test>",
    "DATA",
    "Subject: hi",
    ".",
    "*",
    "NOOP",
    "QUIT",
    DEFAULT_PASSWORD,
];

fn pki() -> &'static LabPki {
    static PKI: OnceLock<LabPki> = OnceLock::new();
    PKI.get_or_init(|| LabPki::generate().expect("lab PKI"))
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let Some(flags) = bytes.next() else {
        return;
    };
    let profile = Profile::ALL[flags as usize % Profile::ALL.len()];
    let secret = Secret::new(DEFAULT_PASSWORD.to_owned());
    let forms = credential_forms(Some(DEFAULT_USER), &secret);
    let allow_cleartext = flags & 0x40 != 0;
    let Ok(mut pair) = Pair::new(pki(), profile, |settings| {
        settings.policy.allow_cleartext_auth = allow_cleartext;
        settings.known_secrets = forms.clone();
        if flags & 0x80 != 0 {
            settings.unasked = UnaskedReplies::Show;
        }
    }) else {
        return;
    };
    pair.cuts = (0..4)
        .map(|_| usize::from(bytes.next().unwrap_or(0)) % 64 + 1)
        .collect();
    pair.connect();
    let mut used_override = false;
    for _ in 0..64 {
        let Some(op) = bytes.next() else {
            break;
        };
        let one_time = if op & 0x80 != 0 {
            used_override = true;
            OneTimeOverride::Cleartext
        } else {
            OneTimeOverride::None
        };
        let now = pair.now;
        match op % 7 {
            0 | 1 => {
                let pick = usize::from(bytes.next().unwrap_or(0)) % LINES.len();
                let _ = pair.client.send_line(LINES[pick], one_time, now);
            }
            2 => {
                let mechanism = if op & 1 == 0 {
                    Mechanism::Plain
                } else {
                    Mechanism::Login
                };
                let _ = pair
                    .client
                    .authenticate(mechanism, workshop_credentials(), one_time, now);
            }
            3 => {
                let _ = pair.client.starttls(now);
            }
            4 => {
                let n = usize::from(bytes.next().unwrap_or(0)) % 32;
                let injected: Vec<u8> = bytes.by_ref().take(n).collect();
                pair.inject_to_client(&injected);
            }
            5 => {
                pair.now += Duration::from_secs(u64::from(bytes.next().unwrap_or(0)));
                pair.client.handle_timeout(pair.now);
            }
            _ => pair.deliver = !pair.deliver,
        }
        pair.drive();
        let _ = pair.client.take_completion(0);
    }
    pair.deliver = true;
    pair.drive();
    for event in &pair.events {
        let text = event
            .to_text_lines(smtptui::transcript::Palette::new(false))
            .join("\n");
        for form in &forms {
            assert!(!text.contains(form.expose()), "a secret in the transcript: {text}");
        }
    }
    if !allow_cleartext && !used_override {
        for form in &forms {
            let form = form.expose().as_bytes();
            assert!(
                !pair.cleartext_to_server.windows(form.len()).any(|w| w == form),
                "a credential crossed in cleartext: {:?}",
                String::from_utf8_lossy(&pair.cleartext_to_server)
            );
        }
    }
});
