//! SASL client mechanisms for SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN, CRAM-MD5
//! (RFC 2195, obsolete), XOAUTH2, OAUTHBEARER (RFC 7628) and EXTERNAL (RFC 4422 appendix A,
//! with a TLS client certificate).
//!
//! Every value produced here is a [`Secret`]: the encoded forms carry the password or token
//! (base64 is an encoding, not encryption), so they get the same protection as the secret
//! itself. Exchanges are bounded: a server that keeps sending 334 challenges gets an error
//! after [`MAX_CHALLENGES`], and each mechanism answers only as many challenges as it has.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::secret::{Credentials, Secret};

/// The most 334 challenges answered in one exchange before giving up on the server.
pub const MAX_CHALLENGES: usize = 8;

/// A SASL mechanism the tool can run with the configured credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`: user and password in one base64 message.
    Plain,
    /// `LOGIN`: user, then password, each answering a 334 prompt.
    Login,
    /// `CRAM-MD5` (RFC 2195): the answer is an HMAC-MD5 of the server's challenge keyed with
    /// the password. Obsolete: MD5, no protection against a server that is not the one meant,
    /// and the server must store the password (or an equivalent key) to check it.
    CramMd5,
    /// `XOAUTH2`: user and OAuth 2.0 bearer token (Google, Microsoft).
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628): the standard form of an OAuth 2.0 bearer token; a refused
    /// token is answered by a JSON error challenge, which the client must answer with `\x01`.
    OAuthBearer,
    /// `EXTERNAL` (RFC 4422): the identity the TLS client certificate proved; nothing secret
    /// crosses in the exchange itself.
    External,
}

impl Mechanism {
    /// Parses a mechanism name, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "LOGIN" => Some(Self::Login),
            "CRAM-MD5" => Some(Self::CramMd5),
            "XOAUTH2" => Some(Self::XOAuth2),
            "OAUTHBEARER" => Some(Self::OAuthBearer),
            "EXTERNAL" => Some(Self::External),
            _ => None,
        }
    }

    /// The name as sent after `AUTH`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::CramMd5 => "CRAM-MD5",
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::External => "EXTERNAL",
        }
    }

    /// Whether the mechanism can send its first message on the AUTH line itself (RFC 4954
    /// §4, SASL-IR). LOGIN and CRAM-MD5 wait for the server's first challenge.
    pub fn has_initial_response(self) -> bool {
        !matches!(self, Self::Login | Self::CramMd5)
    }

    /// Whether the mechanism needs a password or token (EXTERNAL needs a client certificate
    /// instead).
    pub fn needs_secret(self) -> bool {
        self != Self::External
    }

    /// Whether the secret is an OAuth 2.0 access token rather than a password.
    pub fn takes_token(self) -> bool {
        matches!(self, Self::XOAuth2 | Self::OAuthBearer)
    }

    /// What the transcript and the explain pane say about the mechanism before it runs, when
    /// there is something a tester should know.
    pub fn caveat(self) -> Option<&'static str> {
        match self {
            Self::CramMd5 => Some(
                "CRAM-MD5 is obsolete (RFC 2195; the IETF moved it to Historic): it rests on \
                 MD5, shows the user name to anyone on the path, lets a captured answer be \
                 attacked offline, cannot tell a server that is not the one meant, and the \
                 server must store the password itself (or an equivalent key) to check it; \
                 prefer PLAIN inside verified TLS",
            ),
            Self::External => Some(
                "EXTERNAL sends no secret: the server takes the identity the TLS client \
                 certificate proved in the handshake (RFC 4422 appendix A)",
            ),
            _ => None,
        }
    }
}

/// Why a SASL exchange cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// More challenges than [`MAX_CHALLENGES`].
    #[error("the server sent more than {MAX_CHALLENGES} AUTH challenges; giving up")]
    TooManyChallenges,
    /// A challenge arrived after the mechanism had sent everything it has.
    #[error("unexpected extra AUTH {0} challenge")]
    UnexpectedChallenge(&'static str),
    /// A CRAM-MD5 challenge that is not base64.
    #[error("the AUTH CRAM-MD5 challenge is not base64 (RFC 2195 §2); giving up")]
    BadChallenge,
}

/// Client side of one SASL exchange.
#[derive(Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
    credentials: Credentials,
    challenges: usize,
    /// The first message went on the AUTH line (SASL-IR).
    initial_sent: bool,
    /// Messages sent in answer to challenges.
    answers: usize,
}

impl SaslClient {
    /// Starts an exchange for `mechanism` with `credentials` (for EXTERNAL, see
    /// [`external_credentials`]: the user only labels the transcript).
    pub fn new(mechanism: Mechanism, credentials: Credentials) -> Self {
        Self {
            mechanism,
            credentials,
            challenges: 0,
            initial_sent: false,
            answers: 0,
        }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name (for redacted transcripts).
    pub fn user(&self) -> &str {
        &self.credentials.user
    }

    /// The initial response to send on the AUTH line itself (RFC 4954 §4), base64-encoded,
    /// when the mechanism has one and `use_initial_response` is set; `=` is an empty one.
    /// Without it the first message answers the server's first (empty) challenge instead.
    pub fn initial_response(&mut self, use_initial_response: bool) -> Option<Secret> {
        if !use_initial_response || !self.mechanism.has_initial_response() {
            return None;
        }
        self.initial_sent = true;
        let first = self.first_message();
        Some(if first.is_empty() {
            Secret::new("=".to_owned())
        } else {
            first
        })
    }

    /// The mechanism's first message, base64 (empty for an empty message).
    fn first_message(&self) -> Secret {
        match self.mechanism {
            Mechanism::Plain => encode_plain(&self.credentials),
            Mechanism::XOAuth2 => encode_xoauth2(&self.credentials),
            Mechanism::OAuthBearer => encode_oauthbearer(&self.credentials),
            // The certificate's own identity: an empty authorization identity (RFC 4422
            // appendix A), so the server derives it from the certificate alone.
            Mechanism::External => Secret::new(String::new()),
            Mechanism::Login | Mechanism::CramMd5 => Secret::new(String::new()),
        }
    }

    /// Whether the message the exchange sent last carried the secret (so a refusal after it
    /// judged the credential).
    pub fn secret_sent(&self) -> bool {
        match self.mechanism {
            Mechanism::External => false,
            Mechanism::Login => self.answers >= 2,
            _ => self.initial_sent || self.answers > 0,
        }
    }

    /// The answer to a 334 challenge (whose text is the base64 challenge).
    ///
    /// # Errors
    /// [`SaslError`] when the server keeps challenging past what the mechanism needs.
    pub fn respond(&mut self, challenge_base64: &[u8]) -> Result<Secret, SaslError> {
        self.challenges += 1;
        if self.challenges > MAX_CHALLENGES {
            return Err(SaslError::TooManyChallenges);
        }
        let name = self.mechanism.name();
        let first_pending = !self.initial_sent && self.answers == 0;
        let answer = match self.mechanism {
            Mechanism::Login => {
                let prompt = BASE64
                    .decode(challenge_base64.trim_ascii())
                    .map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase())
                    .unwrap_or_default();
                // Servers send "Username:" then "Password:"; trust the order when the text is
                // something else, but never answer a third time.
                let wants_password = if prompt.contains("pass") {
                    true
                } else if prompt.contains("user") {
                    false
                } else {
                    self.challenges == 2
                };
                if self.challenges > 2 {
                    return Err(SaslError::UnexpectedChallenge(name));
                }
                if wants_password {
                    Secret::new(BASE64.encode(self.credentials.secret.expose()))
                } else {
                    Secret::new(BASE64.encode(&self.credentials.user))
                }
            }
            Mechanism::CramMd5 if first_pending => {
                let challenge = BASE64
                    .decode(challenge_base64.trim_ascii())
                    .map_err(|_| SaslError::BadChallenge)?;
                encode_cram_md5(&self.credentials, &challenge)
            }
            Mechanism::CramMd5 | Mechanism::External => {
                if first_pending {
                    self.first_message()
                } else {
                    return Err(SaslError::UnexpectedChallenge(name));
                }
            }
            Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer if first_pending => {
                self.first_message()
            }
            // For PLAIN a second 334 gets an empty line, which ends the exchange. For XOAUTH2
            // a 334 after the token carries an error and must be answered with an empty line
            // so the server sends its final reply; for OAUTHBEARER the answer is a single
            // %x01 (RFC 7628 §3.2.3), once.
            Mechanism::Plain | Mechanism::XOAuth2 => Secret::new(String::new()),
            Mechanism::OAuthBearer => {
                if self.answers > usize::from(!self.initial_sent) {
                    return Err(SaslError::UnexpectedChallenge(name));
                }
                Secret::new(BASE64.encode([1u8]))
            }
        };
        self.answers += 1;
        Ok(answer)
    }

    /// For XOAUTH2 and OAUTHBEARER, a 334 after the token is the server's error (a JSON
    /// object, RFC 7628 §3.2.2): its text, decoded from base64 and escaped for display.
    pub fn error_challenge(&self, challenge_base64: &[u8]) -> Option<String> {
        if !self.mechanism.takes_token() || !self.secret_sent() {
            return None;
        }
        let decoded = BASE64.decode(challenge_base64.trim_ascii()).ok()?;
        Some(crate::proto::escape::escape_bytes(&decoded))
    }
}

fn encode_plain(credentials: &Credentials) -> Secret {
    let mut raw = zeroize::Zeroizing::new(Vec::new());
    raw.push(0);
    raw.extend_from_slice(credentials.user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(credentials.secret.expose().as_bytes());
    Secret::new(BASE64.encode(&*raw))
}

fn encode_xoauth2(credentials: &Credentials) -> Secret {
    let raw = zeroize::Zeroizing::new(format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        credentials.user,
        credentials.secret.expose()
    ));
    Secret::new(BASE64.encode(raw.as_bytes()))
}

/// The credentials for an EXTERNAL exchange: `label` (the certificate's subject) names the
/// identity in transcripts; there is no secret.
pub fn external_credentials(label: String) -> Credentials {
    Credentials {
        user: label,
        secret: Secret::new(String::new()),
    }
}

/// RFC 7628 §3.1: a GS2 header naming the user as authorization identity, then the token
/// as an HTTP-style `auth` field, each key/value ended by `%x01`, the message by another.
fn encode_oauthbearer(credentials: &Credentials) -> Secret {
    let raw = Zeroizing::new(format!(
        "n,a={},\x01auth=Bearer {}\x01\x01",
        gs2_name(&credentials.user),
        credentials.secret.expose()
    ));
    Secret::new(BASE64.encode(raw.as_bytes()))
}

/// A name in a GS2 header: `,` and `=` are written `=2C` and `=3D` (RFC 5801 §4).
fn gs2_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// RFC 2195 §2: the user name, a space, and the HMAC-MD5 of the decoded challenge keyed with
/// the password, in lower-case hex; the whole base64-encoded.
fn encode_cram_md5(credentials: &Credentials, challenge: &[u8]) -> Secret {
    use hmac::{Hmac, Mac as _};
    // HMAC takes a key of any length; new_from_slice never fails for it.
    let Ok(mut mac) = Hmac::<md5::Md5>::new_from_slice(credentials.secret.expose().as_bytes())
    else {
        return Secret::new(String::new());
    };
    mac.update(challenge);
    let digest: Zeroizing<[u8; 16]> = Zeroizing::new(mac.finalize().into_bytes().into());
    let mut raw = Zeroizing::new(String::with_capacity(credentials.user.len() + 33));
    raw.push_str(&credentials.user);
    raw.push(' ');
    for byte in digest.iter() {
        raw.push_str(&format!("{byte:02x}"));
    }
    Secret::new(BASE64.encode(raw.as_bytes()))
}

/// The authentication identity inside a PLAIN initial response, when it decodes as one.
///
/// Used to label a redacted inline `AUTH PLAIN <blob>` with the user it was for.
pub fn plain_user(response_base64: &str) -> Option<String> {
    let raw = zeroize::Zeroizing::new(BASE64.decode(response_base64.trim()).ok()?);
    let mut parts = raw.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let authcid = parts.next()?;
    parts.next()?;
    String::from_utf8(authcid.to_vec()).ok()
}

/// The password inside a PLAIN initial response, when it decodes as one.
///
/// Used only so the engine can hide that password if a server echoes it back.
pub fn plain_password(response_base64: &str) -> Option<Secret> {
    let raw = zeroize::Zeroizing::new(BASE64.decode(response_base64.trim()).ok()?);
    let password = raw.split(|&b| b == 0).nth(2)?;
    std::str::from_utf8(password)
        .ok()
        .map(|p| Secret::new(p.to_owned()))
}

/// Every form in which a secret can cross in an SMTP session: the secret itself, its base64
/// (what AUTH LOGIN sends), and, when the user is known, the PLAIN responses (with and without
/// the user repeated as authorization identity) and the XOAUTH2 and OAUTHBEARER responses
/// built from it. (A CRAM-MD5 answer depends on the server's challenge; it is remembered once
/// sent.)
///
/// The session hides each form wherever it appears and treats a line that holds one as a
/// credential, so a password typed or scripted by hand is guarded like one sent by AUTH.
/// Base64 forms are given without their `=` padding, so a line holding the padded or the
/// unpadded spelling holds the form either way.
pub fn credential_forms(user: Option<&str>, secret: &Secret) -> Vec<Secret> {
    let unpadded = |encoded: String| {
        let trimmed = zeroize::Zeroizing::new(encoded);
        Secret::new(trimmed.trim_end_matches('=').to_owned())
    };
    let mut forms = vec![secret.clone(), unpadded(BASE64.encode(secret.expose()))];
    if let Some(user) = user {
        let credentials = Credentials {
            user: user.to_owned(),
            secret: secret.clone(),
        };
        let with_authzid = zeroize::Zeroizing::new(format!("{user}\0{user}\0{}", secret.expose()));
        forms.push(unpadded(encode_plain(&credentials).expose().to_owned()));
        forms.push(unpadded(BASE64.encode(with_authzid.as_bytes())));
        forms.push(unpadded(encode_xoauth2(&credentials).expose().to_owned()));
        forms.push(unpadded(
            encode_oauthbearer(&credentials).expose().to_owned(),
        ));
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Credentials {
        Credentials {
            user: "alice@lab.test".into(),
            secret: Secret::new("s3cret".into()),
        }
    }

    #[test]
    fn plain_initial_response() {
        let mut client = SaslClient::new(Mechanism::Plain, alice());
        let response = client.initial_response(true).expect("PLAIN has one");
        assert_eq!(
            BASE64.decode(response.expose()).expect("base64"),
            b"\0alice@lab.test\0s3cret"
        );
        assert_eq!(
            plain_user(response.expose()).as_deref(),
            Some("alice@lab.test")
        );
    }

    #[test]
    fn login_answers_user_then_password() {
        let mut client = SaslClient::new(Mechanism::Login, alice());
        assert!(client.initial_response(true).is_none());
        let user = client.respond(b"VXNlcm5hbWU6").expect("user");
        assert_eq!(user.expose(), BASE64.encode("alice@lab.test"));
        let pass = client.respond(b"UGFzc3dvcmQ6").expect("password");
        assert_eq!(pass.expose(), BASE64.encode("s3cret"));
        assert_eq!(
            client.respond(b"UGFzc3dvcmQ6").map(|_| ()),
            Err(SaslError::UnexpectedChallenge("LOGIN"))
        );
    }

    #[test]
    fn xoauth2_format_and_error_challenge() {
        let mut client = SaslClient::new(Mechanism::XOAuth2, alice());
        let response = client.initial_response(true).expect("has one");
        assert_eq!(
            BASE64.decode(response.expose()).expect("base64"),
            b"user=alice@lab.test\x01auth=Bearer s3cret\x01\x01"
        );
        assert_eq!(
            client
                .respond(b"eyJzdGF0dXMiOiI0MDEifQ==")
                .expect("empty")
                .expose(),
            ""
        );
    }

    #[test]
    fn endless_challenges_are_bounded() {
        let mut client = SaslClient::new(Mechanism::XOAuth2, alice());
        for _ in 0..MAX_CHALLENGES {
            client.respond(b"x").expect("within bound");
        }
        assert_eq!(
            client.respond(b"x").map(|_| ()),
            Err(SaslError::TooManyChallenges)
        );
    }

    #[test]
    fn plain_user_rejects_non_plain_blobs() {
        assert_eq!(plain_user("not base64!"), None);
        assert_eq!(plain_user(&BASE64.encode("no nul bytes")), None);
        assert_eq!(plain_user("AGFsaWNlAHNlY3JldA==").as_deref(), Some("alice"));
        assert_eq!(
            plain_password("AGFsaWNlAHNlY3JldA==")
                .map(|p| p.expose().to_owned())
                .as_deref(),
            Some("secret")
        );
    }

    #[test]
    fn cram_md5_matches_rfc_2195() {
        let mut client = SaslClient::new(
            Mechanism::CramMd5,
            Credentials {
                user: "tim".into(),
                secret: Secret::new("tanstaaftanstaaf".into()),
            },
        );
        assert!(client.initial_response(true).is_none());
        let answer = client
            .respond(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
            .expect("answers");
        assert_eq!(
            answer.expose(),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
        assert_eq!(
            client.respond(b"PDE+").map(|_| ()),
            Err(SaslError::UnexpectedChallenge("CRAM-MD5"))
        );
        let mut bad = SaslClient::new(Mechanism::CramMd5, alice());
        assert_eq!(bad.respond(b"!!").map(|_| ()), Err(SaslError::BadChallenge));
    }

    #[test]
    fn oauthbearer_format_error_challenge_and_single_x01() {
        let mut client = SaslClient::new(Mechanism::OAuthBearer, alice());
        let response = client.initial_response(true).expect("has one");
        assert_eq!(
            BASE64.decode(response.expose()).expect("base64"),
            b"n,a=alice@lab.test,\x01auth=Bearer s3cret\x01\x01"
        );
        let json = BASE64.encode(r#"{"status":"invalid_token"}"#);
        assert_eq!(
            client.error_challenge(json.as_bytes()).as_deref(),
            Some(r#"{"status":"invalid_token"}"#)
        );
        assert_eq!(
            client.respond(json.as_bytes()).expect("x01").expose(),
            "AQ=="
        );
        assert_eq!(
            client.respond(json.as_bytes()).map(|_| ()),
            Err(SaslError::UnexpectedChallenge("OAUTHBEARER"))
        );
        assert!(
            credential_forms(Some("alice@lab.test"), &Secret::new("s3cret".into()))
                .iter()
                .any(|f| response.expose().starts_with(f.expose()))
        );
    }

    #[test]
    fn without_initial_response_the_first_challenge_gets_it() {
        for mechanism in [Mechanism::Plain, Mechanism::XOAuth2, Mechanism::OAuthBearer] {
            let mut with = SaslClient::new(mechanism, alice());
            let initial = with.initial_response(true).expect("has one");
            let mut without = SaslClient::new(mechanism, alice());
            assert!(without.initial_response(false).is_none());
            assert!(!without.secret_sent());
            assert_eq!(
                without.respond(b"").expect("answer").expose(),
                initial.expose()
            );
            assert!(without.secret_sent());
        }
        let mut oauth = SaslClient::new(Mechanism::OAuthBearer, alice());
        oauth.initial_response(false);
        oauth.respond(b"").expect("token");
        assert_eq!(oauth.respond(b"e30=").expect("x01").expose(), "AQ==");
    }

    #[test]
    fn external_sends_the_authorization_identity_or_nothing() {
        let empty = Credentials {
            user: String::new(),
            secret: Secret::new(String::new()),
        };
        let mut client = SaslClient::new(Mechanism::External, empty.clone());
        assert_eq!(client.initial_response(true).expect("ir").expose(), "=");
        assert!(!client.secret_sent());
        assert_eq!(
            client.respond(b"").map(|_| ()),
            Err(SaslError::UnexpectedChallenge("EXTERNAL"))
        );
        let mut late = SaslClient::new(Mechanism::External, empty);
        assert!(late.initial_response(false).is_none());
        assert_eq!(late.respond(b"").expect("empty").expose(), "");
        // The label is for transcripts; the authorization identity stays empty.
        let mut named = SaslClient::new(
            Mechanism::External,
            external_credentials("CN=alice".to_owned()),
        );
        assert_eq!(named.initial_response(true).expect("ir").expose(), "=");
    }
}
