//! SASL client mechanisms for SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN and XOAUTH2.
//!
//! Every value produced here is a [`Secret`]: the encoded forms carry the password (base64 is
//! an encoding, not encryption), so they get the same protection as the password itself.
//! Exchanges are bounded: a server that keeps sending 334 challenges gets an error after
//! [`MAX_CHALLENGES`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

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
    /// `XOAUTH2`: user and OAuth 2.0 bearer token (Google, Microsoft).
    XOAuth2,
}

impl Mechanism {
    /// Parses a mechanism name, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "LOGIN" => Some(Self::Login),
            "XOAUTH2" => Some(Self::XOAuth2),
            _ => None,
        }
    }

    /// The name as sent after `AUTH`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::XOAuth2 => "XOAUTH2",
        }
    }
}

/// Why a SASL exchange cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// More challenges than [`MAX_CHALLENGES`].
    #[error("the server sent more than {MAX_CHALLENGES} AUTH challenges; giving up")]
    TooManyChallenges,
    /// A LOGIN challenge arrived after both answers were sent.
    #[error("unexpected extra AUTH LOGIN challenge")]
    UnexpectedChallenge,
}

/// Client side of one SASL exchange.
#[derive(Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
    credentials: Credentials,
    challenges: usize,
}

impl SaslClient {
    /// Starts an exchange for `mechanism` with `credentials`.
    pub fn new(mechanism: Mechanism, credentials: Credentials) -> Self {
        Self {
            mechanism,
            credentials,
            challenges: 0,
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

    /// The initial response sent on the AUTH line itself (RFC 4954 §4), base64-encoded.
    /// LOGIN has none: it waits for the server's first prompt.
    pub fn initial_response(&self) -> Option<Secret> {
        match self.mechanism {
            Mechanism::Plain => Some(encode_plain(&self.credentials)),
            Mechanism::XOAuth2 => Some(encode_xoauth2(&self.credentials)),
            Mechanism::Login => None,
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
        match self.mechanism {
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
                    return Err(SaslError::UnexpectedChallenge);
                }
                let value = if wants_password {
                    BASE64.encode(self.credentials.secret.expose())
                } else {
                    BASE64.encode(&self.credentials.user)
                };
                Ok(Secret::new(value))
            }
            // For PLAIN a 334 means the server wants the response now (no initial response was
            // accepted); for XOAUTH2 a 334 carries an error and must be answered with an empty
            // line so the server sends its final reply.
            Mechanism::Plain if self.challenges == 1 => Ok(encode_plain(&self.credentials)),
            Mechanism::Plain | Mechanism::XOAuth2 => Ok(Secret::new(String::new())),
        }
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
/// the user repeated as authorization identity) and the XOAUTH2 response built from it.
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
        let client = SaslClient::new(Mechanism::Plain, alice());
        let response = client.initial_response().expect("PLAIN has one");
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
        assert!(client.initial_response().is_none());
        let user = client.respond(b"VXNlcm5hbWU6").expect("user");
        assert_eq!(user.expose(), BASE64.encode("alice@lab.test"));
        let pass = client.respond(b"UGFzc3dvcmQ6").expect("password");
        assert_eq!(pass.expose(), BASE64.encode("s3cret"));
        assert_eq!(
            client.respond(b"UGFzc3dvcmQ6").map(|_| ()),
            Err(SaslError::UnexpectedChallenge)
        );
    }

    #[test]
    fn xoauth2_format_and_error_challenge() {
        let mut client = SaslClient::new(Mechanism::XOAuth2, alice());
        let response = client.initial_response().expect("has one");
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
}
