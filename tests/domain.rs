//! `smtptui audit DOMAIN` through the binary, against the real authoritative DNS (Knot, signed
//! test root and zones) and the real Postfix MX listeners of `scripts/domain-env.sh`: good
//! DANE (DANE-EE and DANE-TA, IPv4 and IPv6), a TLSA mismatch, an unsigned zone, a null MX, no
//! MX, a bogus delegation, a whole-certificate pin, four MX hosts at once. And how the command
//! line tells a domain from a server.

#![allow(clippy::panic)] // panicking is how a test fails

use std::process::{Command, Stdio};

use serde_json::Value;

#[path = "support/domain.rs"]
mod support_domain;
use support_domain::domain_env;

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn smtptui(args: &[String]) -> Ran {
    let output = Command::new(env!("CARGO_BIN_EXE_smtptui"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run smtptui");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn audit(domain: &str, extra: &[&str]) -> Option<Ran> {
    let env = domain_env()?;
    let mut args = vec!["audit".to_owned(), domain.to_owned()];
    args.extend(env.audit_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Some(smtptui(&args))
}

/// The table row of an address, as printed.
fn row<'a>(out: &'a str, host: &str, address: &str) -> &'a str {
    out.lines()
        .find(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(1) == Some(&host) && cells.get(2) == Some(&address)
        })
        .unwrap_or_else(|| panic!("no row for {host} {address} in\n{out}"))
}

/// One domain, what the audit must say about it, and its exit status.
struct Case {
    domain: &'static str,
    code: i32,
    /// (host, address, texts the row must hold in order).
    rows: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// Texts the report must hold.
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        domain: "good.test",
        code: 0,
        rows: &[
            (
                "mx1.good.test",
                "127.0.0.2",
                &["TLSv1.3", "valid", "ok (3 1 1)", "TLS, authenticated"],
            ),
            (
                "mx1.good.test",
                "::1",
                &["TLSv1.3", "valid", "ok (3 1 1)", "TLS, authenticated"],
            ),
            (
                "mx2.good.test",
                "127.0.0.3",
                &["TLSv1.3", "valid", "ok (2 1 1)", "TLS, authenticated"],
            ),
        ],
        says: &[
            "PASS  dnssec-mx:",
            "PASS  tlsa: mx2.good.test [127.0.0.3]: DANE authenticates this server: 2 1 1",
            "(DANE-TA SPKI SHA2-256) matches certificate 1 of the chain",
            "WARN  tlsa-rollover: mx2.good.test:",
            "0 fail",
        ],
    },
    Case {
        domain: "mismatch.test",
        code: 1,
        rows: &[(
            "mx.mismatch.test",
            "127.0.0.4",
            &["TLSv1.3", "MISMATCH", "TLS", "DEFER"],
        )],
        says: &[
            "FAIL  tlsa: mx.mismatch.test [127.0.0.4]: DANE senders defer mail to this address",
            "matches nothing the server sent",
            "the record that matches what the server presents now: `_25._tcp.mx.mismatch.test. IN TLSA 3 1 1 ",
        ],
    },
    Case {
        domain: "unsigned.test",
        code: 0,
        rows: &[(
            "mx.unsigned.test",
            "127.0.0.5",
            &["TLSv1.3", "n/a: MX unsigned", "TLS", "TLS"],
        )],
        says: &[
            "WARN  dnssec-mx: the unsigned.test zone is not signed",
            "MX records (insecure)",
        ],
    },
    Case {
        domain: "nullmx.test",
        code: 0,
        rows: &[],
        says: &[
            "nullmx.test publishes a null MX (RFC 7505): it accepts no mail",
            "(no mail host to probe)",
        ],
    },
    Case {
        domain: "nomx.test",
        code: 0,
        rows: &[(
            "nomx.test",
            "127.0.0.2",
            &["TLSv1.3", "valid", "n/a: no TLSA"],
        )],
        says: &[
            "nomx.test has no MX records (secure): senders fall back to its own addresses as the implicit MX",
            "no TLSA records at _25._tcp.nomx.test. (validated)",
            "publish `_25._tcp.nomx.test. IN TLSA 3 1 1 ",
        ],
    },
    Case {
        domain: "bogus.test",
        code: 1,
        rows: &[],
        says: &["FAIL  dnssec-mx: the MX lookup for bogus.test does not validate"],
    },
    Case {
        domain: "renewal.test",
        code: 0,
        rows: &[(
            "mx.renewal.test",
            "127.0.0.2",
            &["ok (3 0 1)", "TLS, authenticated"],
        )],
        says: &[
            "WARN  tlsa-renewal: mx.renewal.test:",
            "pins the whole certificate",
        ],
    },
    Case {
        domain: "four.test",
        code: 1,
        rows: &[
            (
                "mx1.good.test",
                "127.0.0.2",
                &["ok (3 1 1)", "TLS, authenticated"],
            ),
            (
                "mx1.good.test",
                "::1",
                &["ok (3 1 1)", "TLS, authenticated"],
            ),
            (
                "mx2.good.test",
                "127.0.0.3",
                &["ok (2 1 1)", "TLS, authenticated"],
            ),
            ("mx.mismatch.test", "127.0.0.4", &["MISMATCH", "DEFER"]),
            (
                "mx.unsigned.test",
                "127.0.0.5",
                &["n/a: A/AAAA unsigned", "TLS"],
            ),
        ],
        says: &["the address records of mx.unsigned.test are not validated"],
    },
];

/// Every zone of the test environment, one row each: the table, the findings, the exit
/// status (1 exactly when a DANE-enforcing sender would defer mail or cannot find the hosts).
#[test]
fn every_test_zone_gets_its_table_findings_and_exit_status() {
    for case in CASES {
        let Some(ran) = audit(case.domain, &[]) else {
            return;
        };
        let out = &ran.stdout;
        assert_eq!(
            ran.code,
            Some(case.code),
            "{}: {out}\n{}",
            case.domain,
            ran.stderr
        );
        for (host, address, texts) in case.rows {
            let line = row(out, host, address);
            let mut at = 0;
            for text in *texts {
                let found = line[at..].find(text).unwrap_or_else(|| {
                    panic!("{}: {text:?} not in order in {line:?}", case.domain)
                });
                at += found + text.len();
            }
        }
        for text in case.says {
            assert!(
                out.contains(text),
                "{}: {text:?} missing from\n{out}",
                case.domain
            );
        }
        // The columns that are not checked yet say so, never a made-up result.
        for host_row in out
            .lines()
            .filter(|l| l.contains(" TLSv1.3 ") && !l.contains(": "))
        {
            assert!(host_row.ends_with("not checked"), "{host_row}");
        }
        assert!(out.contains("INFO  mta-sts: MTA-STS"), "{out}");
    }
}

/// The matching record in the fix is the one computed from the live certificate: the same
/// `3 1 1` the environment published for mx1 (nomx.test's address presents mx1's certificate).
#[test]
fn the_record_to_publish_is_computed_from_the_live_certificate() {
    let Some(env) = domain_env() else { return };
    let Some(ran) = audit("nomx.test", &[]) else {
        return;
    };
    let expected = format!("IN TLSA {}`", env.get("MX1_TLSA"));
    assert!(
        ran.stdout.contains(&expected),
        "{expected:?} not in\n{}",
        ran.stdout
    );
}

/// Without the test root's trust anchor, the built-in root anchor cannot validate the test
/// root: the answers are bogus, whatever the server says about them. The audit validates
/// itself and believes no upstream.
#[test]
fn answers_are_validated_here_from_the_anchor_not_taken_on_trust() {
    let Some(env) = domain_env() else { return };
    let ran = smtptui(&[
        "audit".to_owned(),
        "good.test".to_owned(),
        "--resolver".to_owned(),
        env.get("DNS_RESOLVER").to_owned(),
        "--ca-file".to_owned(),
        env.get("CA_FILE").to_owned(),
    ]);
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains("FAIL  dnssec-mx: the MX lookup for good.test does not validate"),
        "{}",
        ran.stdout
    );
}

/// `--json`: the same rows and findings, each sender's outcome, and what DANE senders would
/// report over TLS-RPT (RFC 8460's shape) for the failing MX.
#[test]
fn json_has_rows_findings_and_a_tls_rpt_summary() {
    let Some(ran) = audit("four.test", &["--json"]) else {
        return;
    };
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let value: Value = serde_json::from_str(&ran.stdout).expect("one JSON object");
    assert_eq!(value["domain"], "four.test");
    let rows = value["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    let mismatch = rows
        .iter()
        .find(|r| r["host"] == "mx.mismatch.test")
        .expect("mismatch row");
    assert_eq!(mismatch["senders"]["dane"]["action"], "defer");
    assert_eq!(mismatch["senders"]["opportunistic"]["channel"], "tls");
    assert_eq!(mismatch["senders"]["mta_sts"]["action"], "not-checked");
    let policy = &value["tls_rpt"]["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "tlsa");
    assert_eq!(policy["summary"]["total-successful-session-count"], 4);
    assert_eq!(policy["summary"]["total-failure-session-count"], 1);
    assert_eq!(policy["failure-details"][0]["result-type"], "tlsa-invalid");
    assert_eq!(policy["failure-details"][0]["receiving-ip"], "127.0.0.4");
    assert!(
        value["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["id"] == "tlsa"
                && f["verdict"] == "fail"
                && f["scope"]["address"] == "127.0.0.4")
    );
}

/// A name without a port is a domain; a port or an IP is a server; options of the one are
/// refused for the other with the way out.
#[test]
fn the_command_line_tells_a_domain_from_a_server() {
    let run = |args: &[&str]| smtptui(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let ran = run(&["audit", "example.test:25", "--resolver", "127.0.0.1:9"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .contains("--resolver only apply to a domain audit"),
        "{}",
        ran.stderr
    );
    let ran = run(&["audit", "127.0.0.1", "--domain"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("--domain takes a domain name"),
        "{}",
        ran.stderr
    );
    let ran = run(&["audit", "example.test", "--domain", "--role", "mx"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("--role only apply to one server"),
        "{}",
        ran.stderr
    );
    let ran = run(&["audit", "example.test", "--resolver", "nowhere"]);
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("ADDR:PORT"), "{}", ran.stderr);
    let ran = run(&[
        "audit",
        "example.test",
        "--trust-anchor",
        "/nonexistent/root.key",
        "--resolver",
        "127.0.0.1:9",
    ]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .contains("cannot use the trust anchor /nonexistent/root.key"),
        "{}",
        ran.stderr
    );
}
