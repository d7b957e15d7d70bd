//! Which TLS versions a server accepts, beyond what this client speaks.
//!
//! rustls speaks only TLS 1.2 and 1.3, so its handshake cannot tell whether a server also
//! accepts TLS 1.0 and 1.1 (deprecated by RFC 8996), nor, when the handshake fails, whether the
//! server speaks only those. This probe sends one hand-built TLS ClientHello of the older kind
//! (no `supported_versions` extension, CBC cipher suites next to the AEAD ones) offering at
//! most a given version, and reads only the first record of the answer: a ServerHello names
//! the version and cipher suite the server chose; an alert names why it refused. Nothing more
//! is sent: the connection is closed before any key exchange, so no secret of any kind is
//! involved and nothing is ever sent inside such a session.
//!
//! The hello and the answer are pure functions ([`client_hello`], [`parse_answer`]); [`probe`]
//! moves the bytes, after STARTTLS in cleartext or from the first byte for implicit TLS.

use std::fmt;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::probe::Recorder;
use super::raw::{self, Cleartext};
use crate::proto::escape::escape_bytes;
use crate::session::{SessionConfig, TlsMode, format_target};
use crate::transcript::{EventKind, Security};

/// A TLS protocol version as it appears on the wire (`0x0303` is TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TlsVersion(pub u16);

impl TlsVersion {
    /// SSL 3.0, deprecated by RFC 7568.
    pub const SSL3: Self = Self(0x0300);
    /// TLS 1.0, deprecated by RFC 8996.
    pub const TLS1_0: Self = Self(0x0301);
    /// TLS 1.1, deprecated by RFC 8996.
    pub const TLS1_1: Self = Self(0x0302);
    /// TLS 1.2.
    pub const TLS1_2: Self = Self(0x0303);

    /// Whether the version is deprecated (older than TLS 1.2).
    pub fn is_deprecated(self) -> bool {
        self < Self::TLS1_2
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SSL3 => f.write_str("SSL 3.0"),
            Self::TLS1_0 => f.write_str("TLS 1.0"),
            Self::TLS1_1 => f.write_str("TLS 1.1"),
            Self::TLS1_2 => f.write_str("TLS 1.2"),
            Self(other) => write!(f, "version 0x{other:04x}"),
        }
    }
}

/// A cipher suite code, named where this probe offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite(pub u16);

/// The suites offered, with OpenSSL's names; the first six are the TLS 1.2 ones rustls
/// (and so current clients) accept.
const SUITES: [(u16, &str); 23] = [
    (0xc02b, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (0xc02f, "ECDHE-RSA-AES128-GCM-SHA256"),
    (0xc02c, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (0xc030, "ECDHE-RSA-AES256-GCM-SHA384"),
    (0xcca9, "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (0xcca8, "ECDHE-RSA-CHACHA20-POLY1305"),
    (0x009e, "DHE-RSA-AES128-GCM-SHA256"),
    (0x009f, "DHE-RSA-AES256-GCM-SHA384"),
    (0x009c, "AES128-GCM-SHA256"),
    (0x009d, "AES256-GCM-SHA384"),
    (0xc023, "ECDHE-ECDSA-AES128-SHA256"),
    (0xc027, "ECDHE-RSA-AES128-SHA256"),
    (0x003c, "AES128-SHA256"),
    (0xc009, "ECDHE-ECDSA-AES128-SHA"),
    (0xc013, "ECDHE-RSA-AES128-SHA"),
    (0xc00a, "ECDHE-ECDSA-AES256-SHA"),
    (0xc014, "ECDHE-RSA-AES256-SHA"),
    (0x0033, "DHE-RSA-AES128-SHA"),
    (0x0039, "DHE-RSA-AES256-SHA"),
    (0x002f, "AES128-SHA"),
    (0x0035, "AES256-SHA"),
    (0x000a, "DES-CBC3-SHA"),
    (0x003d, "AES256-SHA256"),
];

/// The suites of [`SUITES`] that only exist from TLS 1.2 on (AEAD and SHA-256 ones).
const TLS12_ONLY: [u16; 14] = [
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009e, 0x009f, 0x009c, 0x009d, 0xc023, 0xc027,
    0x003c, 0x003d,
];

impl CipherSuite {
    /// Whether current clients (rustls among them) can use this suite with TLS 1.2: ECDHE
    /// key exchange with AES-GCM or ChaCha20-Poly1305.
    pub fn is_modern(self) -> bool {
        SUITES.iter().take(6).any(|(code, _)| *code == self.0)
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match SUITES.iter().find(|(code, _)| *code == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "cipher suite 0x{:04x}", self.0),
        }
    }
}

/// A TLS alert description (RFC 8446 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsAlert(pub u8);

impl fmt::Display for TlsAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            40 => "handshake_failure",
            47 => "illegal_parameter",
            50 => "decode_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            112 => "unrecognized_name",
            other => return write!(f, "alert {other}"),
        };
        write!(f, "alert {name}")
    }
}

/// What the server answered one older-style hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloAnswer {
    /// A ServerHello: the server would go on with this version and suite.
    Accepted {
        /// The version chosen.
        version: TlsVersion,
        /// The suite chosen.
        cipher: CipherSuite,
    },
    /// A TLS alert instead: the server refused the hello.
    Alert(TlsAlert),
    /// The server closed the connection without a word.
    Closed,
}

impl HelloAnswer {
    /// Whether the server took the hello.
    pub fn accepted(&self) -> Option<TlsVersion> {
        match self {
            Self::Accepted { version, .. } => Some(*version),
            _ => None,
        }
    }
}

impl fmt::Display for HelloAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted { version, cipher } => write!(f, "{version} with {cipher}"),
            Self::Alert(alert) => write!(f, "{alert}"),
            Self::Closed => f.write_str("no answer: the connection was closed"),
        }
    }
}

/// Reading the first record of the answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet.
    NeedMore,
    /// The answer.
    Answer(HelloAnswer),
    /// The bytes are not a TLS answer to a hello; what they are.
    NotTls(String),
}

/// The ClientHello offering at most `max` (TLS 1.0 to 1.2), with SNI for a DNS name.
pub fn client_hello(max: TlsVersion, server_name: Option<&str>) -> Vec<u8> {
    let tls12 = max >= TlsVersion::TLS1_2;
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(&max.0.to_be_bytes());
    // The random only needs to differ between hellos; no key is ever derived from it.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    body.extend((0..32u32).map(|i| (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151)));
    body.push(0); // no session id
    let suites: Vec<u16> = SUITES
        .iter()
        .map(|(code, _)| *code)
        .filter(|code| tls12 || !TLS12_ONLY.contains(code))
        .collect();
    push_u16(&mut body, (suites.len() * 2) as u16);
    for code in suites {
        push_u16(&mut body, code);
    }
    body.extend_from_slice(&[1, 0]); // compression: null only

    let mut extensions = Vec::new();
    if let Some(name) = server_name.filter(|n| n.parse::<std::net::IpAddr>().is_err()) {
        let name = name.trim_end_matches('.').as_bytes();
        let mut entry = vec![0u8]; // host_name
        push_u16(&mut entry, name.len() as u16);
        entry.extend_from_slice(name);
        let mut list = Vec::new();
        push_u16(&mut list, entry.len() as u16);
        list.extend(entry);
        extension(&mut extensions, 0x0000, &list);
    }
    // supported_groups: x25519, P-256, P-384, P-521.
    extension(
        &mut extensions,
        0x000a,
        &[0, 8, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, 0x00, 0x19],
    );
    extension(&mut extensions, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
    if tls12 {
        // signature_algorithms exists only from TLS 1.2 on (RFC 5246 §7.4.1.4.1).
        let schemes: [u16; 9] = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201,
        ];
        let mut list = Vec::new();
        push_u16(&mut list, (schemes.len() * 2) as u16);
        for scheme in schemes {
            push_u16(&mut list, scheme);
        }
        extension(&mut extensions, 0x000d, &list);
    }
    extension(&mut extensions, 0x0017, &[]); // extended_master_secret
    extension(&mut extensions, 0xff01, &[0]); // renegotiation_info, initial
    push_u16(&mut body, extensions.len() as u16);
    body.extend(extensions);

    let mut handshake = vec![1u8]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    push_u16(&mut record, handshake.len() as u16);
    record.extend(handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    push_u16(out, kind);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// Reads the first record the server sent after a hello: a ServerHello (version and suite) or
/// an alert. Every length is checked against what arrived; nothing is trusted.
pub fn parse_answer(bytes: &[u8]) -> Parsed {
    let not_tls = || {
        Parsed::NotTls(format!(
            "the answer is not TLS: \"{}\"",
            escape_bytes(&bytes[..bytes.len().min(40)])
        ))
    };
    let Some(header) = bytes.get(..5) else {
        return Parsed::NeedMore;
    };
    let (content_type, major, length) = (
        header[0],
        header[1],
        usize::from(u16::from_be_bytes([header[3], header[4]])),
    );
    if major != 3 || !matches!(content_type, 0x15 | 0x16) || length == 0 {
        return not_tls();
    }
    let record = &bytes[5..];
    if content_type == 0x15 {
        return match record.get(..2) {
            Some(alert) => Parsed::Answer(HelloAnswer::Alert(TlsAlert(alert[1]))),
            None => Parsed::NeedMore,
        };
    }
    // Handshake: type, 3-byte length, then the ServerHello's version, random, session id,
    // and suite. Only what the first record holds is read.
    let Some(&kind) = record.first() else {
        return Parsed::NeedMore;
    };
    if kind != 2 {
        return Parsed::NotTls(format!(
            "the server's first handshake message is of type {kind}, not a ServerHello"
        ));
    }
    const FIXED: usize = 4 + 2 + 32; // header, version, random
    let Some(&sid_len) = record.get(FIXED) else {
        return Parsed::NeedMore.or_cut(length, record.len());
    };
    let suite_at = FIXED + 1 + usize::from(sid_len);
    let (Some(version), Some(suite)) = (record.get(4..6), record.get(suite_at..suite_at + 2))
    else {
        return Parsed::NeedMore.or_cut(length, record.len());
    };
    Parsed::Answer(HelloAnswer::Accepted {
        version: TlsVersion(u16::from_be_bytes([version[0], version[1]])),
        cipher: CipherSuite(u16::from_be_bytes([suite[0], suite[1]])),
    })
}

impl Parsed {
    /// More bytes are needed, unless the record is already complete, which then is too short.
    fn or_cut(self, record_len: usize, have: usize) -> Self {
        if have >= record_len {
            Self::NotTls("the ServerHello is too short to hold a version and a suite".to_owned())
        } else {
            self
        }
    }
}

/// The longest the answer to a hello may be awaited; also capped by `--timeout`.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Sends a hello offering at most `max` on a fresh connection (after STARTTLS unless the
/// session is implicit TLS) and returns the server's answer.
///
/// # Errors
/// Why no answer could be had (no connection, no 220 to STARTTLS, no answer in time, an
/// answer that is not TLS, or a version above the one offered).
pub async fn probe(
    config: &SessionConfig,
    ehlo_name: &str,
    max: TlsVersion,
    recorder: &Recorder,
) -> Result<HelloAnswer, String> {
    recorder.push(EventKind::Note(format!(
        "TLS version probe: a hello offering at most {max}, with older cipher suites, to learn \
         what the server accepts; closed before any key exchange"
    )));
    let result = exchange(config, ehlo_name, max, recorder).await;
    match &result {
        Ok(answer) => recorder.push(EventKind::Note(format!(
            "the server answered the hello offering at most {max}: {answer}"
        ))),
        Err(why) => recorder.push(EventKind::Warning(format!("TLS version probe: {why}"))),
    }
    recorder.push(EventKind::Closed);
    result
}

async fn exchange(
    config: &SessionConfig,
    ehlo_name: &str,
    max: TlsVersion,
    recorder: &Recorder,
) -> Result<HelloAnswer, String> {
    let mut tcp = match config.tls_mode {
        TlsMode::Implicit => raw::connect(config, recorder).await?,
        TlsMode::StartTls => {
            let mut clear = Cleartext::open(config, ehlo_name, recorder).await?;
            let reply = clear.command(config, recorder, "STARTTLS").await?;
            if reply.code.value() != 220 {
                return Err(format!("STARTTLS answered {}", reply.summary()));
            }
            if !clear.parser.buffered().is_empty() {
                return Err("bytes followed the 220 to STARTTLS in cleartext".to_owned());
            }
            clear.tcp
        }
    };
    let hello = client_hello(max, Some(&config.server_name));
    raw::write(&mut tcp, &hello, config.timeout).await?;
    recorder.push(EventKind::Sent {
        security: Security::Cleartext,
        text: format!(
            "<TLS ClientHello offering at most {max}, {} bytes>",
            hello.len()
        ),
        kind: crate::transcript::SentKind::Command,
    });
    let answer = read_answer(&mut tcp, config.timeout.min(ANSWER_WAIT), config).await?;
    drop(tcp);
    match answer {
        HelloAnswer::Accepted { version, .. } if version > max => Err(format!(
            "the server answered a hello offering at most {max} with {version}, which was not \
             offered"
        )),
        answer => Ok(answer),
    }
}

async fn read_answer(
    tcp: &mut TcpStream,
    wait: Duration,
    config: &SessionConfig,
) -> Result<HelloAnswer, String> {
    let target = format_target(&config.host, config.port);
    let deadline = tokio::time::Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match parse_answer(&received) {
            Parsed::Answer(answer) => return Ok(answer),
            Parsed::NotTls(why) => return Err(why),
            Parsed::NeedMore => {}
        }
        // One TLS record is at most 16 KiB plus its header; more is not an answer to a hello.
        if received.len() > 18 * 1024 {
            return Err("no ServerHello in the first 18 KiB".to_owned());
        }
        let n = match tokio::time::timeout_at(deadline, tcp.read(&mut buffer)).await {
            Err(_) => {
                return Err(format!(
                    "{target} did not answer the hello within {} s",
                    wait.as_secs()
                ));
            }
            Ok(Ok(0)) | Ok(Err(_)) if received.is_empty() => return Ok(HelloAnswer::Closed),
            Ok(Ok(0)) => {
                return Err(format!(
                    "the connection closed after {} byte(s) of an answer",
                    received.len()
                ));
            }
            Ok(Err(error)) => return Err(format!("read failed: {error}")),
            Ok(Ok(n)) => n,
        };
        received.extend_from_slice(buffer.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_well_formed_and_offers_only_what_the_version_allows() {
        let hello = client_hello(TlsVersion::TLS1_1, Some("mail.example"));
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "client_hello");
        let body_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(body_len, record_len - 4);
        assert_eq!(&hello[9..11], &[0x03, 0x02], "at most TLS 1.1");
        let suites_len = usize::from(u16::from_be_bytes([hello[44], hello[45]]));
        let suites: Vec<u16> = hello[46..46 + suites_len]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert!(suites.contains(&0xc013));
        assert!(
            !suites.contains(&0xc02f),
            "no TLS 1.2 suite in a TLS 1.1 hello"
        );
        assert!(hello.windows(12).any(|w| w == b"mail.example"));
        // No SNI for an address, and TLS 1.2 suites when 1.2 is offered.
        let hello = client_hello(TlsVersion::TLS1_2, Some("127.0.0.1"));
        assert!(!hello.windows(9).any(|w| w == b"127.0.0.1"));
        assert!(hello.windows(2).any(|w| w == [0xc0, 0x2f]));
    }

    #[test]
    fn answers_are_read_from_the_first_record_only() {
        assert_eq!(parse_answer(&[0x16, 0x03]), Parsed::NeedMore);
        assert_eq!(
            parse_answer(&[0x15, 0x03, 0x02, 0x00, 0x02, 0x02, 0x46]),
            Parsed::Answer(HelloAnswer::Alert(TlsAlert(70)))
        );
        let mut hello = vec![
            0x16, 0x03, 0x02, 0x00, 0x2a, 0x02, 0x00, 0x00, 0x26, 0x03, 0x02,
        ];
        hello.extend([7u8; 32]);
        hello.push(0); // no session id
        hello.extend([0xc0, 0x14, 0x00]);
        assert_eq!(
            parse_answer(&hello[..hello.len() - 2]),
            Parsed::NeedMore,
            "suite not there yet"
        );
        assert_eq!(
            parse_answer(&hello),
            Parsed::Answer(HelloAnswer::Accepted {
                version: TlsVersion::TLS1_1,
                cipher: CipherSuite(0xc014),
            })
        );
        assert!(matches!(
            parse_answer(b"220 mail.example ESMTP\r\n"),
            Parsed::NotTls(_)
        ));
        // A record that claims to be complete but is too short for a ServerHello.
        assert!(matches!(
            parse_answer(&[0x16, 0x03, 0x03, 0x00, 0x03, 0x02, 0x00, 0x00]),
            Parsed::NotTls(_)
        ));
        assert_eq!(
            HelloAnswer::Accepted {
                version: TlsVersion::TLS1_0,
                cipher: CipherSuite(0xc013)
            }
            .to_string(),
            "TLS 1.0 with ECDHE-RSA-AES128-SHA"
        );
    }
}
