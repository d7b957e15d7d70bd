//! The lab's accounts: who may AUTH, with passwords read from files, never from the command line.

use std::collections::BTreeMap;
use std::path::Path;

use crate::secret::Secret;

/// The workshop account every lab has, printed in the table at start.
pub const DEFAULT_USER: &str = "student@lab.test";
/// Its password. It is printed on purpose: the lab listens on loopback and holds no real mail,
/// and a password everyone in the room can read off the projector is what a workshop needs.
pub const DEFAULT_PASSWORD: &str = "practice-only";

/// User names, their passwords, and OAuth 2.0 access tokens (for OAUTHBEARER).
#[derive(Clone, Default)]
pub struct Accounts {
    users: BTreeMap<String, Secret>,
    tokens: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the names: the passwords are Secrets, but there is no reason to list them at all.
        f.debug_set().entries(self.users.keys()).finish()
    }
}

/// Why an `--account USER:PASSWORD-FILE` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The argument has no colon or an empty part.
    #[error(
        "--account {0:?}: expected USER:PASSWORD-FILE (the password is read from the file, never given on the command line)"
    )]
    Syntax(String),
    /// The password file could not be read.
    #[error("--account {user}: cannot read the password file {path}: {source}")]
    File {
        /// The user.
        user: String,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The password file is empty.
    #[error("--account {user}: the first line of {path} is empty; put the password there")]
    Empty {
        /// The user.
        user: String,
        /// The file.
        path: String,
    },
}

impl Accounts {
    /// No accounts at all (AUTH always fails).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Only the default workshop account, with a fresh access token for OAUTHBEARER (printed
    /// at start, like the practice password).
    pub fn with_default() -> Self {
        let mut accounts = Self::empty();
        accounts.insert(DEFAULT_USER, Secret::new(DEFAULT_PASSWORD.to_owned()));
        accounts.insert_token(DEFAULT_USER, fresh_token());
        accounts
    }

    /// Gives `user` an OAuth 2.0 access token the lab accepts with OAUTHBEARER.
    pub fn insert_token(&mut self, user: &str, token: Secret) {
        self.tokens.insert(user.to_owned(), token);
    }

    /// The access token of `user`, if it has one (to print at start).
    pub fn token(&self, user: &str) -> Option<&Secret> {
        self.tokens.get(user)
    }

    /// The password of `user`: CRAM-MD5 needs the password itself on the server, which is
    /// one of the lessons of that mechanism.
    pub fn password(&self, user: &str) -> Option<&Secret> {
        self.users.get(user)
    }

    /// Whether `token` is the access token of `user`, compared in constant time.
    pub fn check_token(&self, user: &str, token: &[u8]) -> bool {
        self.tokens
            .get(user)
            .is_some_and(|expected| same_bytes(expected.expose().as_bytes(), token))
    }

    /// Adds or replaces an account.
    pub fn insert(&mut self, user: &str, password: Secret) {
        self.users.insert(user.to_owned(), password);
    }

    /// Adds an account from `USER:PASSWORD-FILE`; the password is the file's first line.
    ///
    /// # Errors
    /// [`AccountError`] naming what to fix.
    pub fn add_from_spec(&mut self, spec: &str) -> Result<(), AccountError> {
        // Split at the first colon: user names have none, while a path may.
        let (user, path) = spec
            .split_once(':')
            .filter(|(u, p)| !u.is_empty() && !p.is_empty())
            .ok_or_else(|| AccountError::Syntax(spec.to_owned()))?;
        let text =
            std::fs::read_to_string(Path::new(path)).map_err(|source| AccountError::File {
                user: user.to_owned(),
                path: path.to_owned(),
                source,
            })?;
        let text = zeroize::Zeroizing::new(text);
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.is_empty() {
            return Err(AccountError::Empty {
                user: user.to_owned(),
                path: path.to_owned(),
            });
        }
        self.insert(user, Secret::new(password.to_owned()));
        Ok(())
    }

    /// The user names, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether `user` exists and `password` is theirs. The comparison looks at every byte so
    /// its duration does not tell how much of a guess was right.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        let Some(expected) = self.users.get(user) else {
            return false;
        };
        same_bytes(expected.expose().as_bytes(), password)
    }
}

/// Whether `given` equals `expected`, looking at every byte of `expected` so the duration does
/// not tell how much of a guess was right.
pub fn same_bytes(expected: &[u8], given: &[u8]) -> bool {
    let mut difference = expected.len() ^ given.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(!byte));
    }
    difference == 0
}

/// A random access token: `lab-token-` and 32 hex digits.
fn fresh_token() -> Secret {
    use ring::rand::SecureRandom as _;
    let mut bytes = zeroize::Zeroizing::new([0u8; 16]);
    // The system's random source; should it fail, a fixed token still lets the lab run.
    if ring::rand::SystemRandom::new().fill(&mut *bytes).is_err() {
        return Secret::new("lab-token-practice-only".to_owned());
    }
    let mut token = String::from("lab-token-");
    for byte in bytes.iter() {
        token.push_str(&format!("{byte:02x}"));
    }
    Secret::new(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_passwords_exactly() {
        let accounts = Accounts::with_default();
        assert!(accounts.check(DEFAULT_USER, DEFAULT_PASSWORD.as_bytes()));
        assert!(!accounts.check(DEFAULT_USER, b"practice-onl"));
        assert!(!accounts.check(DEFAULT_USER, b"practice-only!"));
        assert!(!accounts.check(DEFAULT_USER, b""));
        assert!(!accounts.check("nobody", DEFAULT_PASSWORD.as_bytes()));
        assert!(!format!("{accounts:?}").contains(DEFAULT_PASSWORD));
        let token = accounts.token(DEFAULT_USER).expect("a token").clone();
        assert!(token.expose().starts_with("lab-token-") && token.len() == 42);
        assert!(accounts.check_token(DEFAULT_USER, token.expose().as_bytes()));
        assert!(!accounts.check_token(DEFAULT_USER, b"lab-token-"));
        assert!(!accounts.check_token("nobody", token.expose().as_bytes()));
        assert!(!format!("{accounts:?}").contains(token.expose()));
    }

    #[test]
    fn accounts_come_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        let mut accounts = Accounts::empty();
        accounts
            .add_from_spec(&format!("bob@lab.test:{}", path.display()))
            .expect("account");
        assert!(accounts.check("bob@lab.test", b"s3cret"));
        assert!(accounts.add_from_spec("bob").is_err());
        assert!(accounts.add_from_spec("bob:/nonexistent/pw").is_err());
        std::fs::write(&path, "\n").expect("write");
        assert!(
            accounts
                .add_from_spec(&format!("eve:{}", path.display()))
                .is_err()
        );
    }
}
