//! Postfix's XCLIENT and XFORWARD commands (XCLIENT_README, XFORWARD_README): an authorized
//! client, such as a test program or a content filter, tells the server who the real client
//! was.
//!
//! `XCLIENT NAME=... ADDR=... LOGIN=...` replaces the server's idea of the client for the rest
//! of the session: the server starts over as if that client had just connected, answers with
//! a new 220 greeting, and the client must say EHLO again (a TLS layer under the session
//! stays). `XFORWARD` only changes what is logged for the next message and is answered 250.
//! Neither is allowed inside a mail transaction. Attribute values are xtext (RFC 3461 §4):
//! `+XX` stands for the byte with that hex value.
//!
//! Pure: lines in, attributes and warnings out.

use super::command::split_verb;
use super::ehlo::Capabilities;
use super::escape::escape_str;

/// Which of the two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// `XCLIENT`: the session starts over as the named client.
    Xclient,
    /// `XFORWARD`: what is logged for the next message.
    Xforward,
}

impl Forwarding {
    /// The command's verb, which is also its EHLO keyword.
    pub const fn verb(self) -> &'static str {
        match self {
            Self::Xclient => "XCLIENT",
            Self::Xforward => "XFORWARD",
        }
    }

    /// The attributes Postfix defines for the command.
    pub const fn attributes(self) -> &'static [&'static str] {
        match self {
            Self::Xclient => &[
                "NAME",
                "REVERSE_NAME",
                "ADDR",
                "PORT",
                "PROTO",
                "HELO",
                "LOGIN",
                "DESTADDR",
                "DESTPORT",
            ],
            Self::Xforward => &["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"],
        }
    }
}

/// One `NAME=value` of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// The name, upper-cased.
    pub name: String,
    /// The value as written (xtext).
    pub raw: &'a str,
    /// The value decoded, or `None` where the xtext is malformed.
    pub decoded: Option<String>,
}

/// The command a line holds, with its attributes; `None` for any other line. A word without
/// `=` is kept as an attribute with an empty value, for the warnings to name.
pub fn parse(line: &str) -> Option<(Forwarding, Vec<Attribute<'_>>)> {
    let (verb, rest) = split_verb(line);
    let forwarding = match verb.as_str() {
        "XCLIENT" => Forwarding::Xclient,
        "XFORWARD" => Forwarding::Xforward,
        _ => return None,
    };
    let attributes = rest
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let (name, raw) = word.split_once('=').unwrap_or((word, ""));
            Attribute {
                name: name.to_ascii_uppercase(),
                raw,
                decoded: xtext_decode(raw),
            }
        })
        .collect();
    Some((forwarding, attributes))
}

/// Decodes xtext (RFC 3461 §4): `+XX` is the byte of hex value XX. `None` when a `+` is not
/// followed by two hex digits or the bytes are not UTF-8.
pub fn xtext_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What the line's reply will likely be, said before it is sent: the command not advertised
/// (Postfix answers 550 to a client it does not authorize), attributes the server did not list
/// or Postfix does not know, no attribute at all, malformed xtext.
pub fn warnings(
    forwarding: Forwarding,
    attributes: &[Attribute<'_>],
    capabilities: Option<&Capabilities>,
) -> Vec<String> {
    let verb = forwarding.verb();
    let mut warnings = Vec::new();
    let advertised = capabilities.and_then(|c| c.get(verb));
    match (capabilities, advertised) {
        (None, _) => warnings.push(format!(
            "no EHLO on this connection has said whether the server offers {verb} (send EHLO \
             first); sent as typed"
        )),
        (Some(_), None) => warnings.push(format!(
            "the server's EHLO did not advertise {verb}: it does not authorize this client for \
             it (Postfix: smtpd_authorized_{}_hosts), so expect 550 5.7.0; sent as typed",
            verb.to_ascii_lowercase()
        )),
        (Some(_), Some(_)) => {}
    }
    if attributes.is_empty() {
        warnings.push(format!(
            "{verb} without any NAME=value attribute: expect 501"
        ));
    }
    for attribute in attributes {
        let name = escape_str(&attribute.name);
        if attribute.raw.is_empty() {
            warnings.push(format!(
                "{name} has no value: {verb} takes NAME=value (xtext; [UNAVAILABLE] for none)"
            ));
        } else if attribute.decoded.is_none() {
            warnings.push(format!(
                "the value of {name} is not valid xtext: a '+' must be followed by two hex \
                 digits (+2B for '+' itself)"
            ));
        }
        let known = forwarding.attributes().contains(&attribute.name.as_str());
        let listed = advertised.is_none_or(|ext| {
            ext.params
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&attribute.name))
        });
        if !known {
            warnings.push(format!(
                "{name} is not an attribute of {verb} (it has {}): expect 501",
                forwarding.attributes().join(", ")
            ));
        } else if !listed {
            warnings.push(format!(
                "the server's {verb} line does not list {name}: expect 501"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_into_decoded_attributes() {
        let (forwarding, attributes) =
            parse("xclient NAME=spike.example ADDR=192.0.2.7 LOGIN=al+2Bice")
                .unwrap_or_else(|| (Forwarding::Xforward, Vec::new()));
        assert_eq!(forwarding, Forwarding::Xclient);
        let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["NAME", "ADDR", "LOGIN"]);
        assert_eq!(attributes[2].decoded.as_deref(), Some("al+ice"));
        assert!(parse("XFORWARD ADDR=1.2.3.4").is_some());
        assert!(parse("EHLO x").is_none());
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("a+3Db").as_deref(), Some("a=b"));
        assert_eq!(
            xtext_decode("[UNAVAILABLE]").as_deref(),
            Some("[UNAVAILABLE]")
        );
        assert_eq!(xtext_decode("a+3"), None);
        assert_eq!(xtext_decode("a+zz"), None);
        assert_eq!(xtext_decode("+FF"), None);
    }

    #[test]
    fn warnings_name_what_the_server_will_refuse() {
        let mut parser =
            crate::proto::reply::ReplyParser::new(crate::proto::reply::ReplyLimits::default());
        parser.push(b"250-mail.example\r\n250 XCLIENT NAME ADDR\r\n");
        let reply = parser.next_reply().ok().flatten();
        let caps = reply.as_ref().and_then(Capabilities::from_ehlo_reply);
        assert!(caps.is_some());
        let (forwarding, attributes) = parse("XCLIENT ADDR=192.0.2.7 LOGIN=alice BOGUS=1")
            .unwrap_or((Forwarding::Xclient, Vec::new()));
        let warnings = warnings(forwarding, &attributes, caps.as_ref());
        assert!(
            warnings.iter().any(|w| w.contains("does not list LOGIN")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("BOGUS is not an attribute")),
            "{warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("list ADDR")),
            "{warnings:?}"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
