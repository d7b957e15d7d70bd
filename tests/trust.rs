//! `--trust webpki|system|both` through the binary, against the scripted STARTTLS server of
//! `tests/support` whose certificate comes from a private CA: the system store (read from
//! `SSL_CERT_FILE` or `SSL_CERT_DIR`, as OpenSSL reads them) verifies it where the built-in
//! web PKI roots do not; the transcript and its JSON say which anchors verified it; a store
//! that cannot be read is a usage error before any connection.

#![allow(clippy::unwrap_used, clippy::panic)] // test assertions

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::program::Ran;
use support::{Leaf, Pki, Server, Smtp};

const SCENARIO: &str = "S: 220\nC: EHLO client.example\nS: 250\nC: STARTTLS\nS: 220\nC: EHLO client.example\nS: 250\nC: QUIT\nS: 221\n";

/// `smtptui run scenario.smtp TARGET ARGS` in `dir`, with exactly the SSL_CERT_* variables
/// given (those of the machine removed).
fn run(dir: &Path, target: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    std::fs::write(dir.join("scenario.smtp"), SCENARIO).unwrap();
    let mut command = Command::new(support::bin());
    command
        .args(["run", "scenario.smtp", target, "--servername", "localhost"])
        .args(["--timeout", "10"])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("SMTPTUI_CONFIG")
        .env("XDG_CONFIG_HOME", dir.join("no-config"));
    for (name, value) in env {
        command.env(name, value);
    }
    support::program::run(command, b"", Duration::from_secs(60))
}

/// The server's CA named by SSL_CERT_FILE verifies the server with `--trust system`; the
/// default web PKI roots do not know it (exit 3, nothing sent after the handshake).
#[test]
fn the_system_store_from_ssl_cert_file_verifies_where_web_pki_does_not() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.ca_arg();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let ran = run(
        dir.path(),
        &server.target(),
        &["--trust", "system"],
        &[("SSL_CERT_FILE", &ca)],
    );
    server.finish();
    ran.assert_code(0)
        .assert_contains("certificate verified for localhost against the system trust store");

    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let ran = run(dir.path(), &server.target(), &[], &[("SSL_CERT_FILE", &ca)]);
    let rec = server.finish();
    ran.assert_code(3).assert_contains("unknown issuer");
    assert!(rec.tls.is_empty(), "nothing sent inside unverified TLS");
}

/// SSL_CERT_DIR is read too, and `--trust both` with `--ca-file` says every source; the JSON
/// carries the anchors and each certificate's SHA-256 fingerprint.
#[test]
fn both_stores_from_ssl_cert_dir_and_the_json_names_the_anchors() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(pki.ca_arg(), certs.join("test-ca.pem")).unwrap();
    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let ran = run(
        dir.path(),
        &server.target(),
        &["--trust", "both", "--json"],
        &[("SSL_CERT_DIR", certs.to_str().unwrap())],
    );
    server.finish();
    ran.assert_code(0)
        .assert_contains("\"trust\":\"the system trust store and web PKI roots\"");
    let tls: serde_json::Value = ran
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["event"] == "tls")
        .unwrap_or_else(|| panic!("no tls event in {}", ran.stdout));
    let fingerprint = tls["chain"][0]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    assert!(fingerprint.split(':').all(|pair| pair.len() == 2));

    let server = Server::smtp(Smtp::with_cert(&pki, Leaf::Good));
    let ca = pki.ca_arg();
    let ran = run(
        dir.path(),
        &server.target(),
        &["--trust", "webpki", "--ca-file", &ca],
        &[],
    );
    server.finish();
    ran.assert_code(0)
        .assert_contains("against web PKI roots and --ca-file");
}

/// A system store that cannot be read (a mistyped SSL_CERT_FILE) is a usage error naming the
/// file and the fix, before any connection; the default web PKI never reads it.
#[test]
fn an_unreadable_system_store_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let ran = run(
        dir.path(),
        "127.0.0.1:9",
        &["--trust", "system"],
        &[("SSL_CERT_FILE", missing)],
    );
    ran.assert_code(2)
        .assert_contains(missing)
        .assert_contains("--trust webpki");
    assert!(!ran.stdout.contains("connecting"), "{}", ran.stdout);
}
