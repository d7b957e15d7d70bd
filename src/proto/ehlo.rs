//! EHLO capabilities (RFC 5321 §4.1.1.1): what the server says it can do.
//!
//! Every advertised line is kept, including keywords this tool does not know, so a front end
//! can show and explain the server's full answer. Lines that are empty or only whitespace are
//! kept as they are rather than trusted to have a keyword.

use super::escape::{escape_bytes, escape_str};
use super::reply::Reply;

/// One advertised extension: a keyword and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The keyword, upper-cased (`AUTH`, `SIZE`, `STARTTLS`...).
    pub keyword: String,
    /// The parameters after the keyword, as sent (escaped for display).
    pub params: Vec<String>,
}

/// The capabilities from one EHLO reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The domain and greeting text on the first line.
    pub greeting: String,
    /// The extensions, one per following line, in the order received.
    pub extensions: Vec<Extension>,
}

impl Capabilities {
    /// Reads capabilities from a 250 reply to EHLO. Returns `None` for any other reply.
    pub fn from_ehlo_reply(reply: &Reply) -> Option<Self> {
        if reply.code.value() != 250 {
            return None;
        }
        let mut texts = reply.texts();
        let greeting = texts.next().map(escape_bytes).unwrap_or_default();
        let extensions = texts
            .filter_map(|text| {
                // Split on the raw text first so that tabs separate words, then escape each word.
                let text = String::from_utf8_lossy(text);
                let mut words = text.split_ascii_whitespace().map(escape_str);
                let first = words.next()?;
                // The obsolete `AUTH=PLAIN LOGIN` form some servers still send for old clients.
                let (keyword, inline) = match first.split_once('=') {
                    Some((keyword, value)) => (keyword.to_owned(), Some(value.to_owned())),
                    None => (first, None),
                };
                let params = inline.into_iter().chain(words).collect();
                Some(Extension {
                    keyword: keyword.to_ascii_uppercase(),
                    params,
                })
            })
            .collect();
        Some(Self {
            greeting,
            extensions,
        })
    }

    /// The extension with this keyword, if advertised.
    pub fn get(&self, keyword: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|ext| ext.keyword.eq_ignore_ascii_case(keyword))
    }

    /// Whether the keyword was advertised.
    pub fn has(&self, keyword: &str) -> bool {
        self.get(keyword).is_some()
    }

    /// The SASL mechanisms advertised with AUTH, upper-cased, merged across `AUTH` lines.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ext in self.extensions.iter().filter(|e| e.keyword == "AUTH") {
            for mech in &ext.params {
                let mech = mech.to_ascii_uppercase();
                if !out.contains(&mech) {
                    out.push(mech);
                }
            }
        }
        out
    }

    /// The SIZE limit in bytes, when advertised with a value (0 means no fixed limit).
    pub fn size_limit(&self) -> Option<u64> {
        self.get("SIZE")?.params.first()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::ReplyParser;

    fn reply(bytes: &[u8]) -> Reply {
        let mut parser = ReplyParser::default();
        parser.push(bytes);
        parser.next_reply().expect("parses").expect("complete")
    }

    #[test]
    fn postfix_style_ehlo() {
        let caps = Capabilities::from_ehlo_reply(&reply(
            b"250-mail.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n\
              250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n",
        ))
        .expect("250");
        assert_eq!(caps.greeting, "mail.example");
        assert!(caps.has("starttls"));
        assert_eq!(caps.auth_mechanisms(), vec!["PLAIN", "LOGIN"]);
        assert_eq!(caps.size_limit(), Some(10_240_000));
        assert_eq!(caps.extensions.len(), 7);
    }

    #[test]
    fn whitespace_only_lines_do_not_panic() {
        let caps =
            Capabilities::from_ehlo_reply(&reply(b"250-x\r\n250-   \r\n250- \t\r\n250 \r\n"))
                .expect("250");
        assert!(caps.extensions.is_empty());
    }

    #[test]
    fn not_a_250() {
        assert_eq!(
            Capabilities::from_ehlo_reply(&reply(b"502 5.5.2 Error\r\n")),
            None
        );
    }
}
