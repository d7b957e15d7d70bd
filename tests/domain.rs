//! `smtptui audit DOMAIN` through the binary, against the real authoritative DNS (Knot, signed
//! test root and zones), the real Postfix MX listeners and the real HTTPS policy hosts (nginx)
//! of `scripts/domain-env.sh`: good DANE (DANE-EE and DANE-TA, IPv4 and IPv6), a TLSA
//! mismatch, an unsigned zone, a null MX, no MX, a bogus delegation, a whole-certificate pin,
//! four MX hosts at once; MTA-STS in enforce with a listed and an unlisted MX and with an MX
//! whose certificate names another host, testing and none, a policy host with a bad
//! certificate, a redirect, a wrong content type, a bad id, max_age limits, wildcard
//! patterns; TLS-RPT present and malformed; a policy host of the tests' own that floods,
//! drips and paints. And how the command line tells a domain from a server.

#![allow(clippy::panic)] // panicking is how a test fails

use std::process::{Command, Stdio};

use serde_json::Value;

#[path = "support/domain.rs"]
mod support_domain;
use support_domain::{Answer, PolicyHost, domain_env};

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
                &[
                    "TLSv1.3",
                    "valid",
                    "ok (3 1 1)",
                    "enforce, listed",
                    "TLS",
                    "TLS, authenticated",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx1.good.test",
                "::1",
                &[
                    "TLSv1.3",
                    "valid",
                    "ok (3 1 1)",
                    "enforce, listed",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx2.good.test",
                "127.0.0.3",
                &[
                    "TLSv1.3",
                    "valid",
                    "ok (2 1 1)",
                    "enforce, listed",
                    "TLS, authenticated",
                ],
            ),
        ],
        says: &[
            "PASS  dnssec-mx:",
            "PASS  tlsa: mx2.good.test [127.0.0.3]: DANE authenticates this server: 2 1 1",
            "(DANE-TA SPKI SHA2-256) matches certificate 1 of the chain",
            "WARN  tlsa-rollover: mx2.good.test:",
            // The policy host answers on 127.0.0.6 and ::1; the wildcard lists both MX hosts.
            "PASS  mta-sts: policy id=",
            "from https://mta-sts.good.test/.well-known/mta-sts.txt (certificate valid for \
             mta-sts.good.test): mode enforce, mx *.good.test, max_age 604800 s (7 days)",
            "PASS  tls-rpt: senders report TLS failures with the MX hosts to \
             mailto:tls-reports@good.test (RFC 8460)",
            "0 fail",
        ],
    },
    Case {
        domain: "mismatch.test",
        code: 1,
        rows: &[(
            "mx.mismatch.test",
            "127.0.0.4",
            &[
                "TLSv1.3",
                "MISMATCH",
                "not published",
                "TLS",
                "DEFER",
                "TLS",
            ],
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
            &[
                "TLSv1.3",
                "n/a: MX unsigned",
                "not published",
                "TLS",
                "TLS",
                "TLS",
            ],
        )],
        says: &[
            "WARN  dnssec-mx: the unsigned.test zone is not signed",
            "MX records (insecure)",
            "WARN  mta-sts: no MTA-STS policy: _mta-sts.unsigned.test has no `v=STSv1` record",
            "WARN  tls-rpt: no TLS-RPT record at _smtp._tls.unsigned.test",
            "fix: publish `_smtp._tls.unsigned.test. IN TXT \"v=TLSRPTv1; \
             rua=mailto:tls-reports@unsigned.test\"`",
        ],
    },
    Case {
        domain: "nullmx.test",
        code: 0,
        rows: &[],
        says: &[
            "nullmx.test publishes a null MX (RFC 7505): it accepts no mail",
            "(no mail host to probe)",
            "INFO  mta-sts: no MTA-STS record at _mta-sts.nullmx.test (no mail host to protect)",
        ],
    },
    Case {
        domain: "nomx.test",
        code: 0,
        rows: &[(
            "nomx.test",
            "127.0.0.2",
            &["TLSv1.3", "valid", "n/a: no TLSA", "not published"],
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
                &[
                    "ok (3 1 1)",
                    "enforce, listed",
                    "TLS, authenticated",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx1.good.test",
                "::1",
                &[
                    "ok (3 1 1)",
                    "enforce, listed",
                    "TLS, authenticated",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx2.good.test",
                "127.0.0.3",
                &[
                    "ok (2 1 1)",
                    "enforce, listed",
                    "TLS, authenticated",
                    "TLS, authenticated",
                ],
            ),
            // DANE senders defer here; MTA-STS senders, whose policy lists it and whose web
            // PKI (the test CA) accepts its certificate, deliver.
            (
                "mx.mismatch.test",
                "127.0.0.4",
                &[
                    "MISMATCH",
                    "enforce, listed",
                    "TLS",
                    "DEFER",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx.unsigned.test",
                "127.0.0.5",
                &[
                    "n/a: A/AAAA unsigned",
                    "enforce, listed",
                    "TLS",
                    "TLS",
                    "TLS, authenticated",
                ],
            ),
        ],
        says: &[
            "the address records of mx.unsigned.test are not validated",
            "mode enforce, mx *.good.test, mx.mismatch.test, mx.unsigned.test",
            "PASS  tls-rpt: senders report TLS failures with the MX hosts to \
             https://reports.four.test/tlsrpt",
        ],
    },
    // MTA-STS enforce with a listed and an unlisted MX: `*.test` matches one label only, so
    // mx.unsigned.test is not listed, and MTA-STS senders defer there.
    Case {
        domain: "sts.test",
        code: 1,
        rows: &[
            (
                "mx1.good.test",
                "127.0.0.2",
                &[
                    "enforce, listed",
                    "TLS",
                    "TLS, authenticated",
                    "TLS, authenticated",
                ],
            ),
            (
                "mx.unsigned.test",
                "127.0.0.5",
                &["valid", "enforce, NOT LISTED", "TLS", "TLS", "DEFER"],
            ),
        ],
        says: &[
            "FAIL  mta-sts: mx.unsigned.test: MTA-STS senders defer mail to it: mx.unsigned.test \
             matches no `mx` line of the policy",
            "fix: add `mx: mx.unsigned.test` (or `mx: *.unsigned.test`, which matches one label \
             only) to the policy at https://mta-sts.sts.test/.well-known/mta-sts.txt next to \
             `mx: mx1.good.test`, `mx: *.test`, then publish a new id so that senders fetch it \
             again: `_mta-sts.sts.test. IN TXT \"v=STSv1; id=",
            "WARN  mta-sts: max_age 3600 s (1 hour) is short",
        ],
    },
    // Listed, but its certificate names mx2.good.test only: what MTA-STS senders check.
    Case {
        domain: "certname.test",
        code: 1,
        rows: &[(
            "mail.certname.test",
            "127.0.0.3",
            &[
                "not valid for name",
                "n/a: no TLSA",
                "enforce, listed",
                "TLS",
                "TLS",
                "DEFER",
            ],
        )],
        says: &[
            "FAIL  mta-sts: mail.certname.test [127.0.0.3]: MTA-STS senders defer mail to it: \
             the certificate is not valid for mail.certname.test in the web PKI (not valid for \
             name)",
        ],
    },
    // Testing: the unlisted MX is a warning, mail still goes; the policy host has IPv6
    // only; the TLS-RPT record has no URI scheme.
    Case {
        domain: "testing.test",
        code: 0,
        rows: &[
            (
                "mx1.good.test",
                "127.0.0.2",
                &["testing, listed", "TLS", "TLS, authenticated", "TLS"],
            ),
            (
                "mx2.good.test",
                "127.0.0.3",
                &["testing, not listed", "TLS", "TLS, authenticated", "TLS"],
            ),
        ],
        says: &[
            "WARN  mta-sts: mx2.good.test: mx2.good.test matches no `mx` line of the policy: in \
             mode testing MTA-STS senders deliver anyway and report it over TLS-RPT",
            "WARN  mta-sts: policy id=",
            "mode testing, mx mx1.good.test, max_age 86400 s (1 day): in mode testing senders \
             report TLS failures (TLS-RPT) but deliver anyway",
            "WARN  tls-rpt: the TLS-RPT record \"v=TLSRPTv1; rua=tls-reports@testing.test\" names \
             nowhere senders can report to (tls-reports@testing.test: it is not a URI: mailto: \
             or https: is missing in front)",
        ],
    },
    Case {
        domain: "none.test",
        code: 0,
        rows: &[(
            "mx1.good.test",
            "127.0.0.2",
            &["mode none", "TLS", "TLS, authenticated", "TLS"],
        )],
        says: &["mode none, max_age 86400 s (1 day): mode none withdraws the policy"],
    },
    Case {
        domain: "maxage.test",
        code: 0,
        rows: &[(
            "mx1.good.test",
            "127.0.0.2",
            &["enforce, listed", "TLS, authenticated"],
        )],
        says: &[
            "WARN  mta-sts: max_age 31557601 is above the largest RFC 8461 §3.2 allows \
             (31557600 s, a year)",
        ],
    },
    // The policy host presents the web site's certificate: no policy, so no enforcement.
    Case {
        domain: "badcert.test",
        code: 0,
        rows: &[(
            "mx1.good.test",
            "127.0.0.2",
            &["unusable", "TLS", "TLS, authenticated", "TLS"],
        )],
        says: &[
            "WARN  mta-sts: _mta-sts.badcert.test announces a policy (id=",
            "but the policy host's certificate does not verify: certificate not valid for name \
             \"mta-sts.badcert.test\"; it names www.badcert.test: senders get no policy",
            "fix: give mta-sts.badcert.test a certificate from a public CA whose names include \
             mta-sts.badcert.test",
        ],
    },
    // The redirect leads to good.test's valid policy, and is not followed.
    Case {
        domain: "redirect.test",
        code: 0,
        rows: &[("mx1.good.test", "127.0.0.2", &["unusable", "TLS"])],
        says: &["the policy URL answers 301, a redirect to \
             https://mta-sts.good.test/.well-known/mta-sts.txt, and senders do not follow \
             redirects (RFC 8461 §3.3)"],
    },
    // text/html: strict senders ignore it, lenient ones apply it; the table takes the
    // policy as applied, so that "delivers" holds for every sender.
    Case {
        domain: "ctype.test",
        code: 0,
        rows: &[(
            "mx1.good.test",
            "127.0.0.2",
            &["enforce, listed", "TLS, authenticated"],
        )],
        says: &[
            "WARN  mta-sts: the policy is served as text/html, not as text/plain: senders that \
             check the type, as RFC 8461 §3.2 says they should, ignore the policy",
            "fix: serve https://mta-sts.ctype.test/.well-known/mta-sts.txt as text/plain",
        ],
    },
    Case {
        domain: "badid.test",
        code: 0,
        rows: &[("mx1.good.test", "127.0.0.2", &["unusable", "TLS"])],
        says: &[
            "WARN  mta-sts: the record \"v=STSv1; id=2026-05-01\" is invalid: id=\"2026-05-01\" \
             is not 1 to 32 letters and digits: senders act as if badid.test had no MTA-STS \
             policy (RFC 8461 §3.1), and never apply the mode enforce policy",
            "fix: publish exactly one record: `_mta-sts.badid.test. IN TXT \"v=STSv1; id=",
        ],
    },
];

/// Every zone of the test environment, one row each: the table, the findings, the exit
/// status (1 exactly when a DANE- or MTA-STS-enforcing sender would defer mail or cannot
/// find the hosts).
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
        // Every column is checked now: no row says otherwise.
        for host_row in out
            .lines()
            .filter(|l| l.contains(" TLSv1.3 ") && !l.contains(": "))
        {
            assert!(!host_row.contains("not checked"), "{host_row}");
        }
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
    assert_eq!(
        mismatch["senders"]["mta_sts"]["channel"],
        "tls-authenticated"
    );
    assert_eq!(mismatch["mta_sts"], "enforce, listed");
    let policy = &value["tls_rpt"]["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "tlsa");
    assert_eq!(policy["summary"]["total-successful-session-count"], 4);
    assert_eq!(policy["summary"]["total-failure-session-count"], 1);
    assert_eq!(policy["failure-details"][0]["result-type"], "tlsa-invalid");
    assert_eq!(policy["failure-details"][0]["receiving-ip"], "127.0.0.4");
    // Next to it, what MTA-STS senders meet: all five addresses pass the policy.
    let sts = &value["tls_rpt"]["policies"][1];
    assert_eq!(sts["policy"]["policy-type"], "sts");
    assert_eq!(
        sts["policy"]["mx-host"],
        serde_json::json!(["*.good.test", "mx.mismatch.test", "mx.unsigned.test"])
    );
    assert_eq!(sts["policy"]["policy-string"][1], "mode: enforce");
    assert_eq!(sts["summary"]["total-successful-session-count"], 5);
    assert_eq!(sts["summary"]["total-failure-session-count"], 0);
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

/// The `sts` policy of the TLS-RPT summary: the failure MTA-STS senders would report for an
/// unlisted MX, and for a policy host whose certificate does not verify.
#[test]
fn json_tls_rpt_has_the_sts_policy_and_its_failures() {
    let Some(ran) = audit("sts.test", &["--json"]) else {
        return;
    };
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let value: Value = serde_json::from_str(&ran.stdout).expect("one JSON object");
    let unlisted = value["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["host"] == "mx.unsigned.test")
        .expect("row");
    assert_eq!(unlisted["mta_sts"], "enforce, NOT LISTED");
    assert_eq!(unlisted["senders"]["mta_sts"]["action"], "defer");
    let sts = value["tls_rpt"]["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["policy"]["policy-type"] == "sts")
        .expect("an sts policy");
    assert_eq!(sts["summary"]["total-failure-session-count"], 1);
    let failure = &sts["failure-details"][0];
    assert_eq!(failure["result-type"], "validation-failure");
    assert_eq!(failure["receiving-mx-hostname"], "mx.unsigned.test");
    assert_eq!(failure["receiving-ip"], "127.0.0.5");

    let Some(ran) = audit("badcert.test", &["--json"]) else {
        return;
    };
    let value: Value = serde_json::from_str(&ran.stdout).expect("one JSON object");
    let sts = value["tls_rpt"]["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["policy"]["policy-type"] == "sts")
        .expect("an sts policy");
    assert_eq!(
        sts["failure-details"][0]["result-type"],
        "sts-webpki-invalid"
    );
}

/// A domain without MTA-STS gets the exact TXT record and policy file to publish: every MX
/// host listed, mode testing first, the id made of the audit's date and time.
#[test]
fn the_fix_gives_the_txt_record_and_the_policy_file_to_publish() {
    let Some(ran) = audit("four.test", &[]) else {
        return;
    };
    assert!(ran.stdout.contains("PASS  mta-sts:"), "{}", ran.stdout);
    let Some(ran) = audit("mismatch.test", &[]) else {
        return;
    };
    let out = &ran.stdout;
    let start = out
        .find("fix: publish `_mta-sts.mismatch.test. IN TXT \"v=STSv1; id=")
        .unwrap_or_else(|| panic!("no MTA-STS fix in\n{out}"));
    let fix = &out[start..];
    let id: String = fix["fix: publish `_mta-sts.mismatch.test. IN TXT \"v=STSv1; id=".len()..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    assert_eq!(id.len(), 14, "a YYYYMMDDhhmmss id: {id}");
    assert!(
        fix.contains(&format!(
            "{id}\"` and serve the policy at https://mta-sts.mismatch.test/.well-known/mta-sts.txt \
             as text/plain with a certificate from a public CA valid for mta-sts.mismatch.test:\n           \
             version: STSv1\n           mode: testing\n           mx: mx.mismatch.test\n           \
             max_age: 604800\n           then, once TLS-RPT reports show no failures, change it to \
             `mode: enforce`"
        )),
        "{fix}"
    );
}

/// The policy host is trusted through the web PKI, plus --ca-file and nothing else: without
/// the test CA its certificate does not verify, and no policy applies.
#[test]
fn the_policy_host_is_verified_against_the_web_pki_and_the_ca_file_only() {
    let Some(env) = domain_env() else { return };
    let ran = smtptui(&[
        "audit".to_owned(),
        "good.test".to_owned(),
        "--resolver".to_owned(),
        env.get("DNS_RESOLVER").to_owned(),
        "--trust-anchor".to_owned(),
        env.get("TRUST_ANCHOR").to_owned(),
    ]);
    let out = &ran.stdout;
    assert!(
        out.contains("the policy host's certificate does not verify: unknown issuer"),
        "{out}"
    );
    let line = row(out, "mx1.good.test", "127.0.0.2");
    assert!(line.contains(" unusable "), "{line}");
}

/// A policy host of the tests' own, misbehaving: a policy in chunked pieces is read whole; a
/// body of 10 MB stops at the 64 KiB limit; headers dripping forever stop at the deadline;
/// escape sequences in the policy reach the terminal as visible escapes only.
#[test]
fn a_hostile_policy_host_cannot_flood_hang_or_paint_the_terminal() {
    let Some(env) = domain_env() else { return };
    let host = match PolicyHost::start(env) {
        Ok(host) => host,
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the hostile policy host is required under CI: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping: {reason}");
            return;
        }
    };
    let ca = host.ca_file.to_string_lossy().into_owned();
    let run = |answer: Answer| {
        host.set(answer);
        smtptui(&[
            "audit".to_owned(),
            "hostile.test".to_owned(),
            "--resolver".to_owned(),
            env.get("DNS_RESOLVER").to_owned(),
            "--trust-anchor".to_owned(),
            env.get("TRUST_ANCHOR").to_owned(),
            "--ca-file".to_owned(),
            ca.clone(),
            "--timeout".to_owned(),
            "5".to_owned(),
            "--mx-deadline".to_owned(),
            "2".to_owned(),
        ])
    };
    let ran = run(Answer::Chunked);
    let line = row(&ran.stdout, "mx1.good.test", "127.0.0.2");
    assert!(line.contains("enforce, listed"), "{}", ran.stdout);
    let ran = run(Answer::Huge);
    assert!(
        ran.stdout
            .contains("the answer cannot be read: the body is longer than 65536 bytes"),
        "{}",
        ran.stdout
    );
    let ran = run(Answer::Drip);
    assert!(
        ran.stdout
            .contains("but the policy host did not answer within 2s"),
        "{}",
        ran.stdout
    );
    let ran = run(Answer::Paint);
    assert!(
        ran.stdout.contains(
            "`mode: \\x1b[2J\\x1b]0;pwned\\x07enforce` is none of enforce, testing and none"
        ),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains('\x1b') && !ran.stdout.contains('\x07'));
}
