//! DANE TLSA matching for SMTP (RFC 6698, RFC 7671, RFC 7672), as pure code over the chain a
//! probe recorded: records and certificates in, one outcome per record and a verdict out.
//!
//! What a DANE-enforcing SMTP client does with each record (RFC 7672 §3.1):
//! - **DANE-EE(3)**: the leaf certificate (selector 0) or its public key (selector 1) must
//!   match. Nothing else is checked: not the names, not the dates, not the issuer.
//! - **DANE-TA(2)**: some certificate the server sent (the trust anchor, which the server must
//!   include in its chain) must match; the leaf must then chain to it with valid signatures and
//!   dates, and be valid for the MX host name.
//! - **PKIX-TA(0)** and **PKIX-EE(1)** are unusable for SMTP (RFC 7672 §3.1.3), as are unknown
//!   usages, selectors and matching types, and digests of the wrong length.
//!
//! Matching types: 0 the bytes themselves, 1 their SHA-256, 2 their SHA-512. When at least one
//! record is usable, TLS is mandatory and one usable record must match; when every record is
//! unusable, TLS is still mandatory but not authenticated (RFC 7672 §2.2).

use std::fmt;
use std::sync::Arc;

use ring::digest;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::{crypto_provider, describe_certificate_error};

/// Certificate usage DANE-TA(2): a trust anchor.
pub const DANE_TA: u8 = 2;
/// Certificate usage DANE-EE(3): the server's own certificate or key.
pub const DANE_EE: u8 = 3;
/// Selector Cert(0): the whole certificate.
pub const SELECTOR_CERT: u8 = 0;
/// Selector SPKI(1): the SubjectPublicKeyInfo.
pub const SELECTOR_SPKI: u8 = 1;
/// Matching type Full(0): the selected bytes themselves.
pub const MATCH_FULL: u8 = 0;
/// Matching type SHA2-256(1).
pub const MATCH_SHA256: u8 = 1;
/// Matching type SHA2-512(2).
pub const MATCH_SHA512: u8 = 2;

/// One TLSA record's data (RFC 6698 §2.1), independent of any DNS library.
#[derive(Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 the certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// Matching type: 0 full, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record's data in zone-file form: `3 1 1 0a1b...` (lower-case hex).
    pub fn presentation(&self) -> String {
        format!(
            "{} {} {} {}",
            self.usage,
            self.selector,
            self.matching,
            hex(&self.data)
        )
    }

    /// The three numbers with RFC 7218's acronyms: `DANE-EE SPKI SHA2-256`.
    pub fn acronyms(&self) -> String {
        let usage = match self.usage {
            0 => "PKIX-TA".to_owned(),
            1 => "PKIX-EE".to_owned(),
            2 => "DANE-TA".to_owned(),
            3 => "DANE-EE".to_owned(),
            other => format!("usage {other}"),
        };
        let selector = match self.selector {
            0 => "Cert".to_owned(),
            1 => "SPKI".to_owned(),
            other => format!("selector {other}"),
        };
        let matching = match self.matching {
            0 => "Full".to_owned(),
            1 => "SHA2-256".to_owned(),
            2 => "SHA2-512".to_owned(),
            other => format!("matching {other}"),
        };
        format!("{usage} {selector} {matching}")
    }

    /// Why an SMTP client cannot use this record, or `None` when it can.
    pub fn unusable_because(&self) -> Option<String> {
        match self.usage {
            0 | 1 => {
                return Some(format!(
                    "usage {} ({}) is unusable for SMTP (RFC 7672 §3.1.3): mail servers have no \
                     agreed set of web CAs; publish DANE-EE(3) or DANE-TA(2) instead",
                    self.usage,
                    if self.usage == 0 {
                        "PKIX-TA"
                    } else {
                        "PKIX-EE"
                    }
                ));
            }
            DANE_TA | DANE_EE => {}
            other => return Some(format!("certificate usage {other} is not defined")),
        }
        if !matches!(self.selector, SELECTOR_CERT | SELECTOR_SPKI) {
            return Some(format!("selector {} is not defined", self.selector));
        }
        let expected_len = match self.matching {
            MATCH_FULL => None,
            MATCH_SHA256 => Some(32),
            MATCH_SHA512 => Some(64),
            other => return Some(format!("matching type {other} is not defined")),
        };
        match expected_len {
            Some(len) if self.data.len() != len => Some(format!(
                "a {} digest is {len} bytes, this record has {}",
                if len == 32 { "SHA-256" } else { "SHA-512" },
                self.data.len()
            )),
            None if self.data.is_empty() => Some("the association data is empty".to_owned()),
            _ => None,
        }
    }

    /// Whether the record pins the server's whole certificate (`3 0 x`), which changes at
    /// every renewal even when the key stays (RFC 7671 §5.1 prefers `3 1 1`).
    pub fn breaks_at_renewal(&self) -> bool {
        self.usage == DANE_EE && self.selector == SELECTOR_CERT
    }

    /// Whether the selected part of `cert_der` matches this record's data. A certificate that
    /// cannot be read matches nothing.
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        let selected = match self.selector {
            SELECTOR_CERT => cert_der.to_vec(),
            SELECTOR_SPKI => match spki_der(cert_der) {
                Some(spki) => spki,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            MATCH_FULL => selected == self.data,
            MATCH_SHA256 => digest::digest(&digest::SHA256, &selected).as_ref() == self.data,
            MATCH_SHA512 => digest::digest(&digest::SHA512, &selected).as_ref() == self.data,
            _ => false,
        }
    }
}

impl fmt::Debug for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.presentation())
    }
}

/// The `3 1 1` record for a certificate: DANE-EE, its public key, SHA-256. It survives
/// renewals that keep the key (RFC 7671 §5.1), which is why it is the one recommended.
pub fn record_for(cert_der: &[u8]) -> Option<Tlsa> {
    let spki = spki_der(cert_der)?;
    Some(Tlsa {
        usage: DANE_EE,
        selector: SELECTOR_SPKI,
        matching: MATCH_SHA256,
        data: digest::digest(&digest::SHA256, &spki).as_ref().to_vec(),
    })
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_der(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one record made of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The record authenticates the server: for DANE-EE the leaf matched; for DANE-TA the
    /// certificate at `cert_index` matched and the leaf chains to it, is in date and names
    /// the MX host.
    Matched {
        /// The matching certificate's place in the chain, 0 for the leaf.
        cert_index: usize,
    },
    /// No certificate the server sent matches the record.
    NoMatch,
    /// A DANE-TA record matched a certificate of the chain, but the leaf does not verify
    /// against it (signatures, dates or name).
    ChainFailed {
        /// The certificate that matched.
        cert_index: usize,
        /// Why the leaf did not verify, in words.
        why: String,
    },
    /// The record cannot be used by an SMTP client.
    Unusable {
        /// Why.
        why: String,
    },
}

/// What a DANE-enforcing client concludes from the whole TLSA RRset and the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaneVerdict {
    /// A usable record matched: TLS authenticated, mail goes.
    Authenticated,
    /// Usable records exist and none matched: the client defers mail for this host.
    Failed,
    /// Every record is unusable: TLS is still required, without authentication.
    AllUnusable,
}

/// Every record's outcome, in the RRset's order, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneCheck {
    /// Each record and what it made of the chain.
    pub records: Vec<(Tlsa, RecordOutcome)>,
    /// The conclusion.
    pub verdict: DaneVerdict,
}

/// Matches a TLSA RRset against the chain the server presented (DER, leaf first), with the
/// names a DANE-TA leaf must carry (the MX host name; RFC 7672 §3.2.2) and the time for
/// DANE-TA's date checks.
pub fn check(records: &[Tlsa], chain: &[Vec<u8>], names: &[String], now: UnixTime) -> DaneCheck {
    let outcomes: Vec<(Tlsa, RecordOutcome)> = records
        .iter()
        .map(|record| (record.clone(), check_one(record, chain, names, now)))
        .collect();
    let usable = outcomes
        .iter()
        .any(|(_, outcome)| !matches!(outcome, RecordOutcome::Unusable { .. }));
    let matched = outcomes
        .iter()
        .any(|(_, outcome)| matches!(outcome, RecordOutcome::Matched { .. }));
    let verdict = if matched {
        DaneVerdict::Authenticated
    } else if usable {
        DaneVerdict::Failed
    } else {
        DaneVerdict::AllUnusable
    };
    DaneCheck {
        records: outcomes,
        verdict,
    }
}

fn check_one(record: &Tlsa, chain: &[Vec<u8>], names: &[String], now: UnixTime) -> RecordOutcome {
    if let Some(why) = record.unusable_because() {
        return RecordOutcome::Unusable { why };
    }
    let Some(leaf) = chain.first() else {
        return RecordOutcome::NoMatch;
    };
    if record.usage == DANE_EE {
        return if record.matches(leaf) {
            RecordOutcome::Matched { cert_index: 0 }
        } else {
            RecordOutcome::NoMatch
        };
    }
    // DANE-TA: the first certificate above the leaf that matches is the trust anchor. A leaf
    // that matches a TA record is its own anchor, which a verifier cannot chain to; the
    // usual setups never do that, and it is reported as no match.
    let Some((index, anchor)) = chain
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, cert)| record.matches(cert))
    else {
        return RecordOutcome::NoMatch;
    };
    match verify_to_anchor(leaf, &chain[1..], anchor, names, now) {
        Ok(()) => RecordOutcome::Matched { cert_index: index },
        Err(why) => RecordOutcome::ChainFailed {
            cert_index: index,
            why,
        },
    }
}

/// Verifies the leaf against one trust anchor: signatures, dates, key usage and one of the
/// names, with the same verifier as every other TLS check here.
fn verify_to_anchor(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    anchor: &[u8],
    names: &[String],
    now: UnixTime,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(anchor.to_vec()))
        .map_err(|e| format!("the matching certificate is not usable as a trust anchor: {e}"))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .build()
        .map_err(|e| format!("cannot build a verifier for the trust anchor: {e}"))?;
    let leaf = CertificateDer::from(leaf.to_vec());
    let intermediates: Vec<CertificateDer<'static>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let mut last = "no name to check the certificate against".to_owned();
    for name in names {
        let Ok(server_name) = ServerName::try_from(name.clone()) else {
            continue;
        };
        match verifier.verify_server_cert(&leaf, &intermediates, &server_name, &[], now) {
            Ok(_) => return Ok(()),
            Err(error) => last = describe_certificate_error(&error, name).detail,
        }
    }
    Err(last)
}

#[cfg(test)]
#[allow(clippy::panic)] // panicking is how a test fails
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    struct Pki {
        ca: Vec<u8>,
        leaf: Vec<u8>,
        other_leaf: Vec<u8>,
    }

    fn pki(leaf_name: &str) -> Pki {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "DANE test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec![leaf_name.to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let other_key = KeyPair::generate().expect("key");
        let other_leaf = CertificateParams::new(vec![leaf_name.to_owned()])
            .expect("params")
            .signed_by(&other_key, &issuer)
            .expect("leaf");
        Pki {
            ca: ca.der().to_vec(),
            leaf: leaf.der().to_vec(),
            other_leaf: other_leaf.der().to_vec(),
        }
    }

    fn record(usage: u8, selector: u8, matching: u8, of: &[u8]) -> Tlsa {
        let selected = if selector == SELECTOR_SPKI {
            spki_der(of).expect("spki")
        } else {
            of.to_vec()
        };
        let data = match matching {
            MATCH_SHA256 => digest::digest(&digest::SHA256, &selected).as_ref().to_vec(),
            MATCH_SHA512 => digest::digest(&digest::SHA512, &selected).as_ref().to_vec(),
            _ => selected,
        };
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    fn names(name: &str) -> Vec<String> {
        vec![name.to_owned()]
    }

    /// Every DANE-EE combination of selector and matching type the RFCs define matches the
    /// leaf it was made from, and not another leaf.
    #[test]
    fn dane_ee_matches_by_certificate_or_key_with_every_matching_type() {
        let pki = pki("mx.example.test");
        let chain = vec![pki.leaf.clone(), pki.ca.clone()];
        for selector in [SELECTOR_CERT, SELECTOR_SPKI] {
            for matching in [MATCH_FULL, MATCH_SHA256, MATCH_SHA512] {
                let good = record(DANE_EE, selector, matching, &pki.leaf);
                let result = check(
                    std::slice::from_ref(&good),
                    &chain,
                    &names("mx.example.test"),
                    now(),
                );
                assert_eq!(result.verdict, DaneVerdict::Authenticated, "{good:?}");
                let other = record(DANE_EE, selector, matching, &pki.other_leaf);
                let result = check(
                    std::slice::from_ref(&other),
                    &chain,
                    &names("mx.example.test"),
                    now(),
                );
                assert_eq!(result.verdict, DaneVerdict::Failed, "{other:?}");
                assert_eq!(result.records[0].1, RecordOutcome::NoMatch);
            }
        }
    }

    /// RFC 7672 §3.1.1: with DANE-EE the name is not checked: a certificate for another
    /// name still authenticates the host its key is pinned for.
    #[test]
    fn dane_ee_ignores_the_certificate_names() {
        let pki = pki("somewhere-else.example");
        let chain = vec![pki.leaf.clone()];
        let result = check(
            &[record(DANE_EE, SELECTOR_SPKI, MATCH_SHA256, &pki.leaf)],
            &chain,
            &names("mx.example.test"),
            now(),
        );
        assert_eq!(result.verdict, DaneVerdict::Authenticated);
    }

    /// DANE-TA: the CA in the chain matches, the leaf chains to it and names the MX host.
    #[test]
    fn dane_ta_matches_the_ca_in_the_chain_and_checks_the_name() {
        let pki = pki("mx.example.test");
        let chain = vec![pki.leaf.clone(), pki.ca.clone()];
        for (selector, matching) in [(SELECTOR_SPKI, MATCH_SHA256), (SELECTOR_CERT, MATCH_SHA256)] {
            let ta = record(DANE_TA, selector, matching, &pki.ca);
            let good = check(
                std::slice::from_ref(&ta),
                &chain,
                &names("mx.example.test"),
                now(),
            );
            assert_eq!(good.verdict, DaneVerdict::Authenticated, "{good:?}");
            assert_eq!(good.records[0].1, RecordOutcome::Matched { cert_index: 1 });
            // The same chain for another MX name: the anchor matches, the name does not.
            let wrong = check(&[ta], &chain, &names("mx2.example.test"), now());
            assert_eq!(wrong.verdict, DaneVerdict::Failed);
            match &wrong.records[0].1 {
                RecordOutcome::ChainFailed { cert_index: 1, why } => {
                    assert!(why.contains("not valid for name"), "{why}");
                }
                other => panic!("expected a chain failure, got {other:?}"),
            }
        }
    }

    /// RFC 7672 §3.1.2: the server must send the trust anchor; a chain without it cannot
    /// match a DANE-TA digest.
    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain() {
        let pki = pki("mx.example.test");
        let result = check(
            &[record(DANE_TA, SELECTOR_SPKI, MATCH_SHA256, &pki.ca)],
            std::slice::from_ref(&pki.leaf),
            &names("mx.example.test"),
            now(),
        );
        assert_eq!(result.verdict, DaneVerdict::Failed);
        assert_eq!(result.records[0].1, RecordOutcome::NoMatch);
    }

    /// PKIX usages, undefined numbers and wrong digest lengths are unusable; a set of only
    /// unusable records means TLS without authentication, and one usable match wins over
    /// any number of unusable records.
    #[test]
    fn unusable_records_are_named_and_do_not_count() {
        let pki = pki("mx.example.test");
        let chain = vec![pki.leaf.clone(), pki.ca.clone()];
        let pkix_ee = record(1, SELECTOR_SPKI, MATCH_SHA256, &pki.leaf);
        let pkix_ta = record(0, SELECTOR_SPKI, MATCH_SHA256, &pki.ca);
        let short = Tlsa {
            data: vec![0xab; 20],
            ..record(DANE_EE, SELECTOR_SPKI, MATCH_SHA256, &pki.leaf)
        };
        let undefined = Tlsa {
            matching: 7,
            ..record(DANE_EE, SELECTOR_SPKI, MATCH_SHA256, &pki.leaf)
        };
        let only_unusable = [pkix_ee.clone(), pkix_ta, short, undefined];
        let result = check(&only_unusable, &chain, &names("mx.example.test"), now());
        assert_eq!(result.verdict, DaneVerdict::AllUnusable);
        assert!(
            result
                .records
                .iter()
                .all(|(_, o)| matches!(o, RecordOutcome::Unusable { .. }))
        );
        let with_good = [
            pkix_ee,
            record(DANE_EE, SELECTOR_SPKI, MATCH_SHA256, &pki.leaf),
        ];
        let result = check(&with_good, &chain, &names("mx.example.test"), now());
        assert_eq!(result.verdict, DaneVerdict::Authenticated);
    }

    /// The recommended record is `3 1 1` over the leaf's key, and it survives a renewal
    /// that keeps the key while `3 0 1` does not.
    #[test]
    fn the_recommended_record_is_3_1_1_and_full_certificate_pins_break_at_renewal() {
        let pki = pki("mx.example.test");
        let recommended = record_for(&pki.leaf).expect("record");
        assert_eq!(
            (
                recommended.usage,
                recommended.selector,
                recommended.matching
            ),
            (3, 1, 1)
        );
        assert!(recommended.presentation().starts_with("3 1 1 "));
        assert_eq!(recommended.presentation().len(), "3 1 1 ".len() + 64);
        assert!(!recommended.breaks_at_renewal());
        assert!(record(DANE_EE, SELECTOR_CERT, MATCH_SHA256, &pki.leaf).breaks_at_renewal());
        assert_eq!(recommended.acronyms(), "DANE-EE SPKI SHA2-256");
    }

    /// RFC 7671 §5.1's example of a `3 1 1` record digests the DER SubjectPublicKeyInfo:
    /// the same bytes `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`
    /// hashes, which the test environment's zone records are made with.
    #[test]
    fn spki_is_the_der_subject_public_key_info() {
        let pki = pki("mx.example.test");
        let spki = spki_der(&pki.leaf).expect("spki");
        // A SEQUENCE holding the algorithm and the key: tag 0x30.
        assert_eq!(spki[0], 0x30);
        let (_, parsed) = x509_parser::parse_x509_certificate(&pki.leaf).expect("cert");
        assert_eq!(spki, parsed.public_key().raw);
        assert!(spki_der(b"not a certificate").is_none());
        assert!(
            !record_for(&pki.leaf)
                .expect("r")
                .matches(b"not a certificate")
        );
    }
}
