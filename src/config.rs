//! The config file: defaults for every connection and named servers (`smtptui @staging`).
//!
//! ```toml
//! [defaults]
//! timeout = "20s"
//! ehlo = "client.example.com"
//!
//! [server.staging]
//! host = "mail.staging.example.com"
//! port = 587
//! tls = "starttls"                  # auto, starttls or implicit
//! trust = "system"                  # webpki, system or both
//! ca_file = "staging-ca.pem"        # relative to this file's directory; ~/ is the home
//! servername = "mail.staging.example.com"
//! user = "alice@example.com"
//! password_file = "~/.config/smtptui/staging.pass"
//! ```
//!
//! The file is found at `--config FILE`, else `$SMTPTUI_CONFIG`, else
//! `$XDG_CONFIG_HOME/smtptui/config.toml` (`~/.config/smtptui/config.toml`). A server's keys
//! win over `[defaults]`, and options on the command line win over both. Parsing is strict:
//! an unknown key or a value of the wrong kind is an error naming the file and the line, and
//! a password in the file is refused with the fix (`password_file`): secrets are only ever
//! named by a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "SMTPTUI_CONFIG";

/// A config file that cannot be used, naming the file, the line when there is one, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(file, *line))]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The 1-based line; 0 when the whole file is the problem.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// `FILE:LINE: `, `FILE: ` or nothing, before a message.
fn place(file: &str, line: usize) -> String {
    match (file.is_empty(), line) {
        (true, _) => String::new(),
        (false, 0) => format!("{file}: "),
        (false, line) => format!("{file}:{line}: "),
    }
}

/// How TLS starts, as the config file spells it (the values of `--tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsSetting {
    /// Implicit TLS on port 465, STARTTLS when sent elsewhere.
    Auto,
    /// Plain TCP; TLS after STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// Which roots verify a certificate, as the config file spells it (the values of `--trust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustSetting {
    /// The Mozilla roots built in.
    Webpki,
    /// The operating system's trust store.
    System,
    /// Both.
    Both,
}

/// A timeout as written: seconds, or text with a unit (`"500ms"`, `"2s"`, `"1m"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum TimeoutValue {
    Seconds(f64),
    Text(String),
}

/// One table of the file, `[defaults]` or `[server.NAME]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    tls: Option<TlsSetting>,
    trust: Option<TrustSetting>,
    ca_file: Option<String>,
    servername: Option<String>,
    user: Option<String>,
    password_file: Option<String>,
    timeout: Option<Spanned<TimeoutValue>>,
    ehlo: Option<String>,
    from: Option<String>,
}

/// Keys that would hold a secret: refused with the fix rather than as unknown keys.
const SECRET_KEYS: [&str; 5] = ["password", "pass", "passwd", "secret", "token"];

/// The keys a table takes, for messages.
const TABLE_KEYS: &str =
    "host, port, tls, trust, ca_file, servername, user, password_file, timeout, ehlo and from";

/// The message for a refused secret.
const SECRET_REFUSED: &str = "a password is never kept in the config file (whoever reads \
     the file, or a backup of it, has it): put the password alone in a file only you can read \
     (chmod 600) and name it here with password_file = \"PATH\"";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayout {
    #[serde(default)]
    defaults: Option<Spanned<Table>>,
    #[serde(default)]
    server: BTreeMap<String, Spanned<Table>>,
}

/// The settings a connection takes from the file: each `None` where neither the server nor
/// `[defaults]` says anything. Paths are resolved (`~/`, relative to the file's directory).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `tls`.
    pub tls: Option<TlsSetting>,
    /// `trust`.
    pub trust: Option<TrustSetting>,
    /// `ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `servername`.
    pub servername: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password_file`: the only way the file names a secret.
    pub password_file: Option<PathBuf>,
    /// `timeout`, read as `--timeout` reads it.
    pub timeout: Option<std::time::Duration>,
    /// `ehlo`, the EHLO name of `smtptui send`.
    pub ehlo: Option<String>,
    /// `from`, the sender of `smtptui send`.
    pub from: Option<String>,
}

impl Settings {
    /// `self`, with `fallback` where `self` says nothing.
    fn or(self, fallback: &Settings) -> Settings {
        let fallback = fallback.clone();
        Settings {
            tls: self.tls.or(fallback.tls),
            trust: self.trust.or(fallback.trust),
            ca_file: self.ca_file.or(fallback.ca_file),
            servername: self.servername.or(fallback.servername),
            user: self.user.or(fallback.user),
            password_file: self.password_file.or(fallback.password_file),
            timeout: self.timeout.or(fallback.timeout),
            ehlo: self.ehlo.or(fallback.ehlo),
            from: self.from.or(fallback.from),
        }
    }
}

/// A named server.
#[derive(Debug, Clone, PartialEq)]
struct ServerEntry {
    host: String,
    port: Option<u16>,
    settings: Settings,
}

/// A parsed config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Where it was read from (for messages); empty when there is no file.
    pub path: String,
    defaults: Settings,
    servers: BTreeMap<String, ServerEntry>,
}

/// What a target on the command line resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// `HOST[:PORT]` to connect to: the target as given, or a server entry's host and port.
    pub target: String,
    /// The settings from the file for it: the entry's over `[defaults]`, or `[defaults]` alone.
    pub settings: Settings,
}

/// Where the config file is: `--config`, else `$SMTPTUI_CONFIG`, else
/// `$XDG_CONFIG_HOME/smtptui/config.toml` (with `$HOME/.config` when XDG_CONFIG_HOME is unset
/// or empty). The flag says whether the user named it (a named file must exist; the default
/// one may be absent).
pub fn locate(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<(PathBuf, bool)> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(path) = flag {
        return Some((path.to_owned(), true));
    }
    if let Some(path) = set(CONFIG_ENV) {
        return Some((PathBuf::from(path), true));
    }
    let base = match set("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME")?).join(".config"),
    };
    Some((base.join("smtptui").join("config.toml"), false))
}

/// The line of a byte offset in `text`, from 1.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text
        .as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
}

/// A server entry's host: a name, an IP address (IPv6 with or without brackets) or a
/// `unix:/path` socket; a port goes in its own key.
fn check_host(host: &str) -> Result<(), String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.starts_with("unix:/") || bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains("://") {
        return Err(format!(
            "host = {host:?} is a URL; give the host name alone (and port = N)"
        ));
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        return Err(format!(
            "host = {host:?}: write the port as its own key: host = {name:?} and port = {port}"
        ));
    }
    let fine = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "host = {host:?} is not a host name or an IP address (e.g. host = \"mail.example.com\")"
        ))
    }
}

/// Parses a duration as `--timeout` takes it: `30`, `2.5`, `500ms`, `2s`, `1m`; above 0 and
/// at most a day.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a duration; use seconds (30, 2.5) or a unit (500ms, 2s, 1m)")
    })?;
    let seconds = value * scale;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "{text:?} is out of range; the timeout must be above 0 and at most a day"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// The largest config file read: a few servers fit in a few kilobytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// Reads the file at `path`; a missing file is no config unless `required`.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or invalid file, or a required one that is missing.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        use std::io::Read as _;
        let name = path.display().to_string();
        let fail = |message: String| ConfigError {
            file: name.clone(),
            line: 0,
            message,
        };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(fail(format!(
                    "cannot read the config file: {e} (it is named by --config or ${CONFIG_ENV})"
                )));
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(fail(
                "the file is larger than 1 MiB; check that this is the config file you meant"
                    .to_owned(),
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| fail("the config file is not valid UTF-8; save it as UTF-8".to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Config::parse(&name, &text, base, home.as_deref())
    }

    /// Parses config text; `name` is used in messages, relative paths are relative to `base`,
    /// and `~/` is `home`.
    ///
    /// # Errors
    /// [`ConfigError`] at the first problem, with its line.
    pub fn parse(
        name: &str,
        text: &str,
        base: &Path,
        home: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let at = |offset: usize, message: String| ConfigError {
            file: name.to_owned(),
            line: line_of(text, offset),
            message,
        };
        let layout: FileLayout = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let raw = e.message().trim().replace('\n', "; ");
            // serde names the unknown key between backticks; say it in our terms.
            let unknown = raw
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| key.to_owned());
            let message = match unknown {
                Some(key) if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) => {
                    format!("{key}: {SECRET_REFUSED}")
                }
                Some(key) if raw.contains("`defaults`") => {
                    format!("unknown key `{key}`: the top level takes [defaults] and [server.NAME]")
                }
                Some(key) => format!("unknown key `{key}`: a table takes {TABLE_KEYS}"),
                None => raw,
            };
            ConfigError {
                file: name.to_owned(),
                line: if e.span().is_some() {
                    line_of(text, offset)
                } else {
                    0
                },
                message,
            }
        })?;
        let path = |written: &str| -> PathBuf {
            match (written.strip_prefix("~/"), home) {
                (Some(rest), Some(home)) => home.join(rest),
                _ => base.join(written),
            }
        };
        let settings = |table: &Table| -> Result<Settings, ConfigError> {
            let timeout = match &table.timeout {
                Some(written) => {
                    let text = match written.get_ref() {
                        TimeoutValue::Seconds(n) => n.to_string(),
                        TimeoutValue::Text(text) => text.clone(),
                    };
                    let duration = parse_timeout(&text)
                        .map_err(|m| at(written.span().start, format!("timeout: {m}")))?;
                    Some(duration)
                }
                None => None,
            };
            Ok(Settings {
                tls: table.tls,
                trust: table.trust,
                ca_file: table.ca_file.as_deref().map(path),
                servername: table.servername.clone(),
                user: table.user.clone(),
                password_file: table.password_file.as_deref().map(path),
                timeout,
                ehlo: table.ehlo.clone(),
                from: table.from.clone(),
            })
        };
        let defaults = match &layout.defaults {
            Some(table) => {
                let table = table.get_ref();
                for (key, span) in [
                    ("host", table.host.as_ref().map(|h| h.span().start)),
                    ("port", table.port.as_ref().map(|p| p.span().start)),
                ] {
                    if let Some(offset) = span {
                        return Err(at(
                            offset,
                            format!(
                                "{key} belongs to a named server, not to [defaults]: put it \
                                 under [server.NAME] and connect with smtptui @NAME"
                            ),
                        ));
                    }
                }
                settings(table)?
            }
            None => Settings::default(),
        };
        let mut servers = BTreeMap::new();
        for (server, table) in &layout.server {
            let start = table.span().start;
            let table = table.get_ref();
            let host = table.host.as_ref().ok_or_else(|| {
                at(
                    start,
                    format!(
                        "[server.{server}] has no host: add host = \"mail.example.com\" (and \
                         port, tls, ... as needed)"
                    ),
                )
            })?;
            check_host(host.get_ref()).map_err(|m| at(host.span().start, m))?;
            if table.port.as_ref().is_some_and(|p| *p.get_ref() == 0) {
                return Err(at(
                    table.port.as_ref().map_or(start, |p| p.span().start),
                    "port 0 is not a port number (1-65535)".to_owned(),
                ));
            }
            servers.insert(
                server.clone(),
                ServerEntry {
                    host: host.get_ref().clone(),
                    port: table.port.as_ref().map(|p| *p.get_ref()),
                    settings: settings(table)?.or(&defaults),
                },
            );
        }
        Ok(Config {
            path: name.to_owned(),
            defaults,
            servers,
        })
    }

    /// The target and settings for a target on the command line: `@NAME` is a server of the
    /// file, anything else is taken as it is, with `[defaults]`.
    ///
    /// # Errors
    /// [`ConfigError`] for an `@NAME` the file does not have (naming those it has), or when
    /// there is no file.
    pub fn resolve(&self, target: &str) -> Result<Resolved, ConfigError> {
        let Some(name) = target.strip_prefix('@') else {
            return Ok(Resolved {
                target: target.to_owned(),
                settings: self.defaults.clone(),
            });
        };
        let Some(entry) = self.servers.get(name) else {
            let message = if self.path.is_empty() {
                format!(
                    "{target} names a server of the config file, and there is none: write \
                     [server.{name}] with its host into $XDG_CONFIG_HOME/smtptui/config.toml \
                     (~/.config/smtptui/config.toml), or name a file with --config or \
                     ${CONFIG_ENV}"
                )
            } else if self.servers.is_empty() {
                format!(
                    "{target}: the config file names no server; add [server.{name}] with its host"
                )
            } else {
                let names: Vec<String> = self.servers.keys().map(|n| format!("@{n}")).collect();
                format!(
                    "{target}: no [server.{name}] in the config file; it has {}",
                    names.join(", ")
                )
            };
            return Err(ConfigError {
                file: self.path.clone(),
                line: 0,
                message,
            });
        };
        let host = if entry.host.contains(':')
            && !entry.host.starts_with('[')
            && !entry.host.starts_with("unix:")
        {
            format!("[{}]", entry.host)
        } else {
            entry.host.clone()
        };
        let target = match entry.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Ok(Resolved {
            target,
            settings: entry.settings.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            "config.toml",
            text,
            Path::new("/etc/smtptui"),
            Some(Path::new("/home/alice")),
        )
    }

    const EXAMPLE: &str = r#"
[defaults]
timeout = "20s"
ehlo = "client.example"
user = "default-user"

[server.staging]
host = "mail.staging.example"
port = 587
tls = "starttls"
ca_file = "staging-ca.pem"
servername = "mail.staging.example"
user = "alice@example.com"
password_file = "~/.config/smtptui/staging.pass"

[server.v6]
host = "2001:db8::25"
"#;

    #[test]
    fn a_server_takes_its_keys_over_the_defaults() {
        let config = parse(EXAMPLE).unwrap();
        let staging = config.resolve("@staging").unwrap();
        assert_eq!(staging.target, "mail.staging.example:587");
        let s = &staging.settings;
        assert_eq!(s.tls, Some(TlsSetting::Starttls));
        assert_eq!(s.user.as_deref(), Some("alice@example.com"));
        assert_eq!(s.ehlo.as_deref(), Some("client.example"));
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(20)));
        assert_eq!(
            s.ca_file.as_deref(),
            Some(Path::new("/etc/smtptui/staging-ca.pem"))
        );
        assert_eq!(
            s.password_file.as_deref(),
            Some(Path::new("/home/alice/.config/smtptui/staging.pass"))
        );
        assert_eq!(config.resolve("@v6").unwrap().target, "[2001:db8::25]");
        // A target that is no @NAME gets the defaults alone.
        let plain = config.resolve("mx.example.com:25").unwrap();
        assert_eq!(plain.target, "mx.example.com:25");
        assert_eq!(plain.settings.user.as_deref(), Some("default-user"));
        assert_eq!(plain.settings.tls, None);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let error = parse(EXAMPLE).unwrap().resolve("@stagign").unwrap_err();
        assert!(error.message.contains("@staging, @v6"), "{error}");
        let error = Config::default().resolve("@staging").unwrap_err();
        assert!(error.message.contains("[server.staging]"), "{error}");
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, says) in [
            (
                "[server.a]\nhost = \"h\"\npasword_file = \"x\"\n",
                3,
                "unknown key `pasword_file`",
            ),
            (
                "[server.a]\nhost = \"h\"\npassword = \"hunter2\"\n",
                3,
                "password_file",
            ),
            ("[defaults]\n\ntoken = \"abc\"\n", 3, "password_file"),
            (
                "[server.a]\nhost = \"h\"\ntls = \"startls\"\n",
                3,
                "starttls",
            ),
            ("[server.a]\nhost = \"h\"\nport = 70000\n", 3, ""),
            ("[server.a]\nhost = \"h:587\"\n", 2, "port = 587"),
            ("[defaults]\nhost = \"h\"\n", 2, "[server.NAME]"),
            ("[server.a]\nport = 25\n", 1, "has no host"),
            ("[server.a]\nhost = \"h\n", 2, ""),
            (
                "[servers.a]\nhost = \"h\"\n",
                1,
                "unknown key `servers`: the top level",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.message.contains(says), "{text}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("config.toml:{line}: "))
            );
        }
    }

    #[test]
    fn the_file_is_found_by_flag_env_or_xdg() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let flag = Path::new("/x/flag.toml");
        assert_eq!(
            locate(Some(flag), env(&[(CONFIG_ENV, "/x/env.toml")])),
            Some((flag.to_owned(), true))
        );
        assert_eq!(
            locate(None, env(&[(CONFIG_ENV, "/x/env.toml"), ("HOME", "/h")])),
            Some((PathBuf::from("/x/env.toml"), true))
        );
        assert_eq!(
            locate(None, env(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/h")])),
            Some((PathBuf::from("/xdg/smtptui/config.toml"), false))
        );
        assert_eq!(
            locate(None, env(&[("XDG_CONFIG_HOME", ""), ("HOME", "/h")])),
            Some((PathBuf::from("/h/.config/smtptui/config.toml"), false))
        );
        assert_eq!(locate(None, env(&[])), None);
    }
}
