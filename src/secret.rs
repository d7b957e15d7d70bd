//! Secrets that cannot leak by accident.
//!
//! A [`Secret`] has no `Display`, a `Debug` that prints only `<hidden>`, and its memory is
//! zeroed when dropped. Reading it requires the explicit [`Secret::expose`], which is only
//! called where bytes are encoded for the wire.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

/// A password, token or encoded credential.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret text. Use only to build wire bytes; never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The length in bytes (safe to show: it says nothing about the content).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// A user name and its secret, as used by SASL PLAIN, LOGIN and XOAUTH2.
#[derive(Clone)]
pub struct Credentials {
    /// The login name (shown in transcripts; it is not secret).
    pub user: String,
    /// The password or, for XOAUTH2, the access token.
    pub secret: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Where a secret came from, so error messages can name the place to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `--password-file PATH`.
    File,
    /// The `SMTPTUI_PASSWORD` environment variable.
    Environment,
    /// A hidden prompt on the terminal.
    Prompt,
}

/// The environment variable read for the secret when no password file is given.
pub const PASSWORD_ENV: &str = "SMTPTUI_PASSWORD";

/// Why no secret could be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The password file could not be read.
    #[error("cannot read the password file {path}: {source}")]
    File {
        /// The file named by `--password-file`.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The password file was empty.
    #[error("the password file {path} is empty")]
    EmptyFile {
        /// The file named by `--password-file`.
        path: String,
    },
    /// Nowhere to get the secret from.
    #[error(
        "no password: give --password-file PATH or set {PASSWORD_ENV}, or run on a terminal to be asked"
    )]
    Unavailable,
    /// The prompt failed.
    #[error("could not read the password from the terminal: {0}")]
    Prompt(std::io::Error),
}

/// Reads a secret from, in this order, the password file, [`PASSWORD_ENV`], or a hidden prompt
/// when `prompt_allowed` (stdin is a terminal).
///
/// Only the first line of the file counts (a trailing newline is not part of the password).
///
/// # Errors
/// [`SecretError`] when the chosen source fails or no source is available.
pub fn obtain_secret(
    password_file: Option<&Path>,
    prompt_label: &str,
    prompt_allowed: bool,
) -> Result<(Secret, SecretSource), SecretError> {
    if let Some(path) = password_file {
        let content =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        let first = content.lines().next().unwrap_or_default();
        if first.is_empty() {
            return Err(SecretError::EmptyFile {
                path: path.display().to_string(),
            });
        }
        return Ok((Secret::new(first.to_owned()), SecretSource::File));
    }
    if let Ok(value) = std::env::var(PASSWORD_ENV)
        && !value.is_empty()
    {
        return Ok((Secret::new(value), SecretSource::Environment));
    }
    if prompt_allowed {
        let value = rpassword::prompt_password(prompt_label).map_err(SecretError::Prompt)?;
        return Ok((Secret::new(value), SecretSource::Prompt));
    }
    Err(SecretError::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let creds = Credentials {
            user: "alice".into(),
            secret: Secret::new("hunter2".into()),
        };
        let shown = format!("{creds:?} {:?}", creds.secret);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn password_file_first_line_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        let (secret, source) = obtain_secret(Some(&path), "", false).expect("reads");
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(source, SecretSource::File);
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(
            obtain_secret(Some(&path), "", false),
            Err(SecretError::EmptyFile { .. })
        ));
        let missing = dir.path().join("missing");
        let err = obtain_secret(Some(&missing), "", false).expect_err("missing file");
        assert!(err.to_string().contains("missing"));
    }
}
