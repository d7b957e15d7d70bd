//! TLS-RPT (RFC 8460) as pure code: the `_smtp._tls.<domain>` TXT record that tells senders
//! where to report the TLS failures they meet (DANE and MTA-STS alike).

use super::mta_sts::tag_fields;
use crate::proto::escape::escape_str;

/// A `_smtp._tls` record that follows RFC 8460 §3's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptRecord {
    /// The record as published.
    pub text: String,
    /// Each `rua` URI, and why senders cannot use it when they cannot.
    pub rua: Vec<(String, Option<String>)>,
}

impl TlsRptRecord {
    /// The URIs senders can send reports to.
    pub fn usable(&self) -> impl Iterator<Item = &str> {
        self.rua
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(uri, _)| uri.as_str())
    }
}

/// Why a domain's `_smtp._tls` records give senders nowhere to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// Several records begin with `v=TLSRPTv1;`: RFC 8460 §3 wants exactly one.
    Several(Vec<String>),
    /// The one record does not follow RFC 8460 §3's syntax.
    Syntax {
        /// The record, as published.
        record: String,
        /// What is wrong with it.
        why: String,
    },
}

/// What a domain's `_smtp._tls` TXT records say: `None` when none begins with
/// `v=TLSRPTv1` (RFC 8460 §3: the others are discarded).
pub fn discover(records: &[String]) -> Option<Result<TlsRptRecord, RecordProblem>> {
    let candidates: Vec<&String> = records
        .iter()
        .filter(|r| r.starts_with("v=TLSRPTv1"))
        .collect();
    match candidates.as_slice() {
        [] => None,
        [record] => Some(parse(record).map_err(|why| RecordProblem::Syntax {
            record: (*record).clone(),
            why,
        })),
        several => Some(Err(RecordProblem::Several(
            several.iter().map(|r| (*r).clone()).collect(),
        ))),
    }
}

/// Parses one `_smtp._tls` record.
///
/// # Errors
/// What breaks RFC 8460 §3's syntax, in words.
pub fn parse(text: &str) -> Result<TlsRptRecord, String> {
    // rua holds URIs separated by commas and optional whitespace (RFC 8460 §3).
    let fields = tag_fields(text, "v=TLSRPTv1", |name| name == "rua")?;
    let rua = fields
        .iter()
        .find(|(name, _)| name == "rua")
        .map(|(_, value)| value)
        .ok_or("it has no rua= field")?;
    let uris = rua
        .split(',')
        .map(|uri| {
            let uri = uri.trim();
            (escape_str(uri), uri_problem(uri))
        })
        .collect();
    Ok(TlsRptRecord {
        text: text.to_owned(),
        rua: uris,
    })
}

/// Why senders cannot report to a `rua` URI (RFC 8460 §3: `mailto:` or `https:`).
fn uri_problem(uri: &str) -> Option<String> {
    let lower = uri.to_ascii_lowercase();
    if let Some(address) = lower.strip_prefix("mailto:") {
        let address = address.split('?').next().unwrap_or_default();
        return match address.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') => None,
            _ => Some(
                "a mailto: URI needs an address, like mailto:tls-reports@example.com".to_owned(),
            ),
        };
    }
    if let Some(rest) = lower.strip_prefix("https://") {
        return if rest.split('/').next().is_some_and(|host| !host.is_empty()) {
            None
        } else {
            Some("an https: URI needs a host".to_owned())
        };
    }
    Some(if uri.contains(':') {
        "only mailto: and https: URIs receive reports (RFC 8460 §3)".to_owned()
    } else {
        "it is not a URI: mailto: or https: is missing in front".to_owned()
    })
}

/// The record to publish: reports by mail to `tls-reports@<domain>`.
pub fn record_text(domain: &str) -> String {
    format!("_smtp._tls.{domain}. IN TXT \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Option<Result<TlsRptRecord, RecordProblem>> {
        discover(&[text.to_owned()])
    }

    #[test]
    fn records_as_rfc_8460_section_3_reads_them() {
        let record = one("v=TLSRPTv1; rua=mailto:tls@example.com, https://r.example/api;")
            .expect("concerns TLS-RPT")
            .expect("valid");
        assert_eq!(
            record.usable().collect::<Vec<_>>(),
            ["mailto:tls@example.com", "https://r.example/api"]
        );
        let record = one("v=TLSRPTv1;rua=tls@example.com")
            .expect("concerns TLS-RPT")
            .expect("valid syntax");
        assert_eq!(record.usable().count(), 0);
        assert!(
            record.rua[0]
                .1
                .as_deref()
                .is_some_and(|why| why.contains("not a URI"))
        );
        let record = one("v=TLSRPTv1; rua=ftp://x.example/")
            .expect("tls-rpt")
            .expect("syntax");
        assert_eq!(record.usable().count(), 0);
        assert!(matches!(
            one("v=TLSRPTv1; ruf=mailto:a@b.example"),
            Some(Err(RecordProblem::Syntax { .. }))
        ));
        assert!(matches!(
            one("v=TLSRPTv1 rua=mailto:a@b.example"),
            Some(Err(RecordProblem::Syntax { .. }))
        ));
        assert_eq!(one("v=spf1 -all"), None);
        assert!(matches!(
            discover(&[
                "v=TLSRPTv1; rua=mailto:a@b.example".to_owned(),
                "v=TLSRPTv1; rua=mailto:c@b.example".to_owned()
            ]),
            Some(Err(RecordProblem::Several(_)))
        ));
    }

    #[test]
    fn the_record_to_publish_is_valid() {
        let text = record_text("example.com");
        let value = text
            .split_once('"')
            .and_then(|(_, v)| v.strip_suffix('"'))
            .expect("quoted");
        assert_eq!(parse(value).expect("valid").usable().count(), 1);
    }
}
