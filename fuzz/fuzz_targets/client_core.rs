//! The client core fed arbitrary server bytes and arbitrary requests, in any order (lines,
//! pipelined groups, BDAT chunks, message blocks from files): it never panics, no credential
//! byte ever leaves it without the override that allows it (nor the password spelled in the
//! xtext of an XCLIENT or XFORWARD value), REQUIRETLS never leaves without verified TLS, and
//! no event ever shows a secret.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use smtptui::guard::{GuardPolicy, OneTimeOverride};
use smtptui::proto::client::{ClientSession, ClientSettings, TlsMode, UnaskedReplies};
use smtptui::proto::reply::ReplyLimits;
use smtptui::proto::sasl::{Mechanism, credential_forms};
use smtptui::secret::{Credentials, Secret};
use smtptui::tls::TrustSettings;

const USER: &str = "alice@example.com";
const PASSWORD: &str = "Fuzz-Secret-Passw0rd";
/// The password in xtext, as an XCLIENT or XFORWARD value can spell it.
const XTEXT_PASSWORD: &str = "+46+75+7A+7A+2D+53+65+63+72+65+74+2D+50+61+73+73+77+30+72+64";

/// Lines a user or scenario might send, secrets among them.
const LINES: &[&str] = &[
    "EHLO client.example",
    "HELO client.example",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH XOAUTH2",
    "AUTH CRAM-MD5",
    "auth plain AGFsaWNlQGV4YW1wbGUuY29tAEZ1enotU2VjcmV0LVBhc3N3MHJk",
    "AUTH=PLAIN AGFsaWNlQGV4YW1wbGUuY29tAEZ1enotU2VjcmV0LVBhc3N3MHJk",
    "RnV6ei1TZWNyZXQtUGFzc3cwcmQ=",
    "Fuzz-Secret-Passw0rd",
    "MAIL FROM:<alice@example.com>",
    "MAIL FROM:<alice@example.com> REQUIRETLS",
    "MAIL FROM:<j\u{f6}rg@example.com> SIZE=99999999999 NOTIFY=SUCESS",
    "LHLO client.example",
    "BDAT 3 LAST",
    "RCPT TO:<bob@example.com>",
    "DATA",
    "Subject: hi",
    ".",
    "..dotted",
    "*",
    "NOOP",
    "RSET",
    "QUIT",
    "XCLIENT NAME=spike.example ADDR=192.0.2.66 LOGIN=bob",
    "XCLIENT LOGIN=+46+75+7A+7A+2D+53+65+63+72+65+74+2D+50+61+73+73+77+30+72+64",
    "XFORWARD IDENT=+46+75+7A+7A+2D+53+65+63+72+65+74+2D+50+61+73+73+77+30+72+64",
    "",
];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(flags) = input.byte() else {
        return;
    };
    let allow_cleartext = flags & 1 != 0;
    let (tls, verdict) = smtptui::tls::client_config(&TrustSettings {
        extra_roots: Vec::new(),
        continue_unverified: flags & 8 != 0,
        client_identity: None,
        roots: Default::default(),
    })
    .expect("client config");
    let secret = Secret::new(PASSWORD.to_owned());
    let forms = credential_forms(Some(USER), &secret);
    let settings = ClientSettings {
        target: "fuzz:25".to_owned(),
        tls_mode: if flags & 2 != 0 {
            TlsMode::Implicit
        } else {
            TlsMode::StartTls
        },
        server_name: "localhost".to_owned(),
        tls,
        verdict,
        policy: GuardPolicy {
            allow_cleartext_auth: allow_cleartext,
            allow_unverified_auth: flags & 8 != 0,
        },
        timeout: Duration::from_secs(30),
        limits: ReplyLimits::default(),
        unasked: if flags & 4 != 0 {
            UnaskedReplies::Show
        } else {
            UnaskedReplies::Fatal
        },
        known_secrets: forms.clone(),
        sasl: smtptui::proto::client::SaslOptions {
            initial_response: flags & 16 == 0,
            force: flags & 32 != 0,
        },
        client_identity: None,
        key_log: None,
        anchors: String::new(),
    };
    let start = Instant::now();
    let mut now = start;
    let mut core = ClientSession::new(settings, now, SystemTime::UNIX_EPOCH).expect("core");
    core.connected("peer".into(), "local".into(), now);
    let credentials = || Credentials {
        user: USER.to_owned(),
        secret: Secret::new(PASSWORD.to_owned()),
    };
    let mut sent = Vec::new();
    let mut used_override = false;
    // Whether arbitrary bytes the fuzzer chose (a typed line, a chunk, a message block) could
    // have spelled REQUIRETLS themselves.
    let mut typed_requiretls = false;
    let note_typed = |bytes: &[u8], flag: &mut bool| {
        *flag |= bytes
            .windows(10)
            .any(|w| w.eq_ignore_ascii_case(b"REQUIRETLS"));
    };
    let mut ops = 0;
    while let Some(op) = input.byte() {
        ops += 1;
        if ops > 200 {
            break;
        }
        let one_time = if op & 0x80 != 0 {
            OneTimeOverride::Cleartext
        } else {
            OneTimeOverride::None
        };
        let mut consent = |one_time: OneTimeOverride| {
            used_override |= one_time != OneTimeOverride::None;
            one_time
        };
        match op % 12 {
            0 | 1 => {
                let n = input.byte().unwrap_or(0) as usize;
                let bytes = input.bytes(n).to_vec();
                core.received(&bytes, now);
            }
            2 => {
                let pick = input.byte().unwrap_or(0) as usize % LINES.len();
                let _ = core.send_line(LINES[pick], consent(one_time), now);
            }
            3 => {
                let mechanism = match input.byte().unwrap_or(0) % 6 {
                    0 => Mechanism::Plain,
                    1 => Mechanism::Login,
                    2 => Mechanism::CramMd5,
                    3 => Mechanism::OAuthBearer,
                    4 => Mechanism::External,
                    _ => Mechanism::XOAuth2,
                };
                let _ = core.authenticate(mechanism, credentials(), consent(one_time), now);
            }
            4 => {
                let answer = if op & 1 == 0 { PASSWORD } else { "RnV6ei1TZWNyZXQtUGFzc3cwcmQ=" };
                let _ = core.answer_challenge(&Secret::new(answer.to_owned()), consent(one_time), now);
            }
            5 => {
                now += Duration::from_secs(u64::from(input.byte().unwrap_or(0)));
                core.handle_timeout(now);
            }
            6 => core.eof(now),
            7 => {
                let n = input.byte().unwrap_or(0) as usize % 64;
                let line = String::from_utf8_lossy(input.bytes(n)).into_owned();
                note_typed(line.as_bytes(), &mut typed_requiretls);
                let _ = core.send_line(&line, consent(one_time), now);
            }
            9 => {
                let count = 2 + input.byte().unwrap_or(0) as usize % 3;
                let lines: Vec<&str> = (0..count)
                    .map(|_| LINES[input.byte().unwrap_or(0) as usize % LINES.len()])
                    .collect();
                let _ = core.pipeline(&lines, consent(one_time), op & 0x40 != 0, now);
            }
            10 => {
                let n = input.byte().unwrap_or(0) as usize;
                let chunk = if op & 0x20 != 0 {
                    format!("x {PASSWORD} y").into_bytes()
                } else {
                    input.bytes(n).to_vec()
                };
                note_typed(&chunk, &mut typed_requiretls);
                let _ = core.bdat(&chunk, op & 0x10 != 0, op & 0x40 != 0, now);
            }
            11 => {
                let n = input.byte().unwrap_or(0) as usize;
                let block = if op & 0x20 != 0 {
                    format!("a\n{PASSWORD}\r\nb\n").into_bytes()
                } else {
                    input.bytes(n).to_vec()
                };
                note_typed(&block, &mut typed_requiretls);
                let _ = core.message_lines(&block, now);
            }
            _ => {
                let _ = match op & 1 {
                    0 => core.probe_auth(Mechanism::Login, now),
                    _ => core.cancel_exchange(now),
                };
            }
        }
        while let Some(bytes) = core.poll_transmit() {
            sent.extend_from_slice(&bytes);
        }
        while let Some(event) = core.poll_event() {
            let text = event.to_text_lines(smtptui::transcript::Palette::new(false)).join("\n");
            let json = event.to_json().to_string();
            // The xtext spelling is a secret once it has crossed; before, it is only text
            // the server happened to send.
            let xtext_sent = sent
                .windows(XTEXT_PASSWORD.len())
                .any(|w| w == XTEXT_PASSWORD.as_bytes());
            let xtext = xtext_sent.then_some(XTEXT_PASSWORD);
            for form in forms.iter().map(Secret::expose).chain(xtext) {
                assert!(!text.contains(form), "a secret in the transcript: {text}");
                assert!(!json.contains(form), "a secret in the JSON: {json}");
            }
        }
        let _ = core.take_completion(0);
    }
    // Random bytes never make a verified TLS session: REQUIRETLS never left, unless the
    // fuzzer spelled it out in bytes of its own.
    if !typed_requiretls {
        assert!(
            !sent
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"REQUIRETLS")),
            "REQUIRETLS crossed without verified TLS: {:?}",
            String::from_utf8_lossy(&sent)
        );
    }
    // Random bytes never make a verified TLS session, so without an override nothing that
    // holds a credential may have left at all.
    let overridden = allow_cleartext || used_override || flags & 8 != 0;
    if !overridden {
        for form in forms.iter().map(Secret::expose).chain([XTEXT_PASSWORD]) {
            let form = form.as_bytes();
            assert!(
                !sent.windows(form.len()).any(|w| w == form),
                "a credential crossed without TLS: {:?}",
                String::from_utf8_lossy(&sent)
            );
        }
    }
});
