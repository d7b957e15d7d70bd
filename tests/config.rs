//! The config file through the binary: `@NAME` servers for the UI, `smtptui run` and
//! `smtptui send`, where the file is found (`--config`, `$SMTPTUI_CONFIG`,
//! `$XDG_CONFIG_HOME`), which value wins (the command line over the server entry over
//! `[defaults]`), and the file refused with its line: malformed, an unknown key, a secret.
//! Connections go to the scripted server of `tests/support`.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::program::Ran;
use support::{Leaf, PASSWORD, Pki, Server, Smtp, USER};

/// Runs smtptui in `dir` with `env` set and any config of the machine hidden: HOME and
/// XDG_CONFIG_HOME point into `dir`, $SMTPTUI_CONFIG is unset unless `env` sets it.
fn smtptui(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(support::bin());
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SMTPTUI_PASSWORD")
        .env_remove("SMTPTUI_CONFIG")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"));
    for (name, value) in env {
        command.env(name, value);
    }
    support::program::run(command, b"", Duration::from_secs(30))
}

const SCENARIO: &str = "S: 220\nC: EHLO client.example\nS: 250\nC: QUIT\nS: 221\n";

/// A server entry gives host, port, TLS mode, CA file and server name: `smtptui run FILE
/// @NAME` reaches an implicit-TLS server with it. An option on the command line wins over
/// the entry: `--tls starttls` against a plain server passes where the entry's implicit TLS
/// fails.
#[test]
fn a_server_entry_connects_and_the_command_line_wins_over_it() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("check.smtp"), SCENARIO).unwrap();
    let implicit = Server::smtp(Smtp {
        tls: Some(pki.server_config(Leaf::Good)),
        implicit_tls: true,
        ..Smtp::default()
    });
    let plain = Server::smtp(Smtp::default());
    let config = format!(
        "[defaults]\ntimeout = \"10s\"\n\n[server.secure]\nhost = \"127.0.0.1\"\nport = {}\n\
         tls = \"implicit\"\nca_file = \"{}\"\nservername = \"localhost\"\n\n\
         [server.plain]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\n",
        implicit.addr.port(),
        pki.ca_arg(),
        plain.addr.port()
    );
    std::fs::write(dir.path().join("smtptui.toml"), config).unwrap();
    let ran = smtptui(
        dir.path(),
        &["run", "check.smtp", "@secure", "--config", "smtptui.toml"],
        &[],
    );
    implicit.finish();
    ran.assert_code(0).assert_contains("tls   S: 220");
    let ran = smtptui(
        dir.path(),
        &[
            "run",
            "check.smtp",
            "@plain",
            "--config",
            "smtptui.toml",
            "--tls",
            "starttls",
        ],
        &[],
    );
    plain.finish();
    ran.assert_code(0).assert_contains("plain S: 220");
    // Without the flag the entry's implicit TLS meets a plain server: no pass.
    let plain = Server::smtp(Smtp::default());
    let config = format!(
        "[server.plain]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\n",
        plain.addr.port()
    );
    std::fs::write(dir.path().join("smtptui.toml"), config).unwrap();
    let ran = smtptui(
        dir.path(),
        &[
            "run",
            "check.smtp",
            "@plain",
            "--config",
            "smtptui.toml",
            "--timeout",
            "5",
        ],
        &[],
    );
    plain.finish();
    ran.assert_code(3);
}

/// The user and the password file come from the entry: `smtptui send @NAME` authenticates
/// inside TLS with them, and the password never shows.
#[test]
fn user_and_password_file_come_from_the_entry() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    std::fs::write(dir.path().join("pass"), format!("{PASSWORD}\n")).unwrap();
    let config = format!(
        "[server.sub]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\n\
         servername = \"localhost\"\nuser = \"{USER}\"\npassword_file = \"pass\"\n",
        server.addr.port(),
        pki.ca_arg()
    );
    std::fs::create_dir_all(dir.path().join("xdg/smtptui")).unwrap();
    // Found where XDG says, with the password file relative to it.
    std::fs::write(dir.path().join("xdg/smtptui/config.toml"), config).unwrap();
    std::fs::write(dir.path().join("xdg/smtptui/pass"), format!("{PASSWORD}\n")).unwrap();
    let ran = smtptui(
        dir.path(),
        &["send", "@sub", "--to", "bob@lab.test", "--timeout", "10"],
        &[],
    );
    let rec = server.finish();
    ran.assert_code(0).assert_contains("235");
    assert_eq!(rec.auth.len(), 1, "{}", rec.dump());
    assert!(rec.auth[0].2, "inside TLS");
    support::assert_no_credentials(ran.stdout.as_bytes(), USER, PASSWORD, "stdout");
}

/// Which value wins, seen in the scenario `send` prints: the command line, then the server
/// entry, then [defaults]; `$SMTPTUI_CONFIG` names the file when --config does not, and
/// --config wins over it.
#[test]
fn the_command_line_wins_over_the_entry_which_wins_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[defaults]\nehlo = \"from-defaults\"\nfrom = \"defaults@example.com\"\n\n\
         [server.a]\nhost = \"127.0.0.1\"\nport = 2525\nehlo = \"from-entry\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[server.a]\nhost = \"127.0.0.1\"\nehlo = \"from-b\"\n",
    )
    .unwrap();
    let print = |target: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["send", target, "--to", "bob@lab.test", "--print-scenario"];
        args.extend(extra);
        let ran = smtptui(dir.path(), &args, env);
        ran.assert_code(0);
        ran.stdout
    };
    let env = [("SMTPTUI_CONFIG", "a.toml")];
    let entry = print("@a", &[], &env);
    assert!(entry.contains("C: EHLO from-entry\n"), "{entry}");
    assert!(
        entry.contains("MAIL FROM:<defaults@example.com>"),
        "{entry}"
    );
    assert!(entry.contains("127.0.0.1:2525"), "{entry}");
    let flag = print("@a", &["--ehlo", "from-flag"], &env);
    assert!(flag.contains("C: EHLO from-flag\n"), "{flag}");
    let defaults = print("127.0.0.1:2525", &[], &env);
    assert!(defaults.contains("C: EHLO from-defaults\n"), "{defaults}");
    let other = print("@a", &["--config", "b.toml"], &env);
    assert!(other.contains("C: EHLO from-b\n"), "{other}");
}

/// A malformed file, an unknown key and a secret are refused with the file and the line
/// (exit 2, before any connection), and the secret is never repeated.
#[test]
fn a_bad_config_file_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line, says) in [
        ("[server.a]\nhost = \"h\nport = 25\n", 2, ""),
        (
            "[server.a]\nhost = \"h\"\n\nhots = \"x\"\n",
            4,
            "unknown key `hots`",
        ),
        (
            "[server.a]\nhost = \"h\"\npassword = \"s3cret-Value\"\n",
            3,
            "password_file = \"PATH\"",
        ),
        ("[server.a]\nhost = \"h\"\ntls = \"ssl\"\n", 3, "implicit"),
        (
            "[server.a]\nhost = \"h\"\ntimeout = \"soon\"\n",
            3,
            "not a duration",
        ),
        ("[server.a]\nhost = \"h:587\"\n", 2, "port = 587"),
    ] {
        std::fs::write(dir.path().join("c.toml"), text).unwrap();
        for args in [
            vec!["send", "@a", "--to", "b@x", "--config", "c.toml"],
            vec!["run", "x.smtp", "127.0.0.1:9", "--config", "c.toml"],
            vec!["--config", "c.toml", "@a"],
        ] {
            let ran = smtptui(dir.path(), &args, &[]);
            ran.assert_code(2)
                .assert_contains(&format!("c.toml:{line}: "));
            ran.assert_contains(says);
            assert!(!ran.stderr.contains("s3cret-Value"), "{}", ran.dump());
            assert!(!ran.stdout.contains("connecting"), "{}", ran.dump());
        }
    }
    // A named file must exist; the default one may be absent.
    let ran = smtptui(
        dir.path(),
        &[
            "send",
            "127.0.0.1:9",
            "--to",
            "b@x",
            "--config",
            "none.toml",
            "--print-scenario",
        ],
        &[],
    );
    ran.assert_code(2).assert_contains("none.toml");
    let ran = smtptui(
        dir.path(),
        &["send", "127.0.0.1:9", "--to", "b@x", "--print-scenario"],
        &[],
    );
    ran.assert_code(0);
}

/// `smtptui @NAME` (the UI) resolves the entry before anything else: an unknown name lists
/// the known ones, a known one gets as far as needing a terminal.
#[test]
fn the_ui_takes_a_server_entry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server.staging]\nhost = \"127.0.0.1\"\nport = 2525\n",
    )
    .unwrap();
    let env = [("SMTPTUI_CONFIG", "c.toml")];
    smtptui(dir.path(), &["@stagign"], &env)
        .assert_code(2)
        .assert_contains("it has @staging");
    smtptui(dir.path(), &["@staging"], &env)
        .assert_code(2)
        .assert_contains("needs a terminal");
}
