//! The parameters of `MAIL FROM` and `RCPT TO` (RFC 5321 §4.1.2 `esmtp-param`), parsed and held
//! to the RFCs that define them.
//!
//! | parameter | on | defined by | extension |
//! |-----------|----|------------|-----------|
//! | `SIZE=n` | MAIL | RFC 1870 | SIZE |
//! | `BODY=7BIT\|8BITMIME\|BINARYMIME` | MAIL | RFC 6152, RFC 3030 | 8BITMIME, BINARYMIME |
//! | `SMTPUTF8` | MAIL | RFC 6531 | SMTPUTF8 |
//! | `RET=FULL\|HDRS`, `ENVID=xtext` | MAIL | RFC 3461 | DSN |
//! | `NOTIFY=NEVER\|SUCCESS,FAILURE,DELAY`, `ORCPT=type;xtext` | RCPT | RFC 3461 | DSN |
//! | `REQUIRETLS` | MAIL | RFC 8689 | REQUIRETLS |
//! | `MT-PRIORITY=-9..9` | MAIL | RFC 6710 | MT-PRIORITY |
//! | `BY=seconds;R\|N[T]` | MAIL | RFC 2852 | DELIVERBY |
//! | `AUTH=xtext\|<>` | MAIL | RFC 4954 | AUTH |
//!
//! Other parameters are held only to the general syntax (a keyword of letters, digits and
//! hyphens, a value without spaces, `=` or control characters), so a test can still send an
//! extension this tool does not know. Everything here is pure: a line in, a value or an error
//! that says how to write it instead.

use std::fmt;

/// Whether the line is `MAIL FROM` or `RCPT TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `MAIL FROM:<reverse-path>`.
    Mail,
    /// `RCPT TO:<forward-path>`.
    Rcpt,
}

impl Verb {
    /// The command as written in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
        }
    }
}

/// One `KEYWORD[=VALUE]` after the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The keyword as written.
    pub keyword: &'a str,
    /// The value, if the parameter has one.
    pub value: Option<&'a str>,
}

impl Param<'_> {
    /// Whether this is the parameter `keyword` (ESMTP keywords ignore case).
    pub fn is(&self, keyword: &str) -> bool {
        self.keyword.eq_ignore_ascii_case(keyword)
    }
}

/// A `MAIL FROM` or `RCPT TO` line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeCommand<'a> {
    /// Which command.
    pub verb: Verb,
    /// The address between the angle brackets (empty for the null sender `<>`).
    pub address: &'a str,
    /// The parameters after the address, in order.
    pub params: Vec<Param<'a>>,
}

impl EnvelopeCommand<'_> {
    /// The parameter `keyword`, if present.
    pub fn param(&self, keyword: &str) -> Option<&Param<'_>> {
        self.params.iter().find(|p| p.is(keyword))
    }

    /// Whether the parameter `keyword` is present.
    pub fn has(&self, keyword: &str) -> bool {
        self.param(keyword).is_some()
    }

    /// Whether the address holds anything beyond ASCII (an internationalised address, which
    /// needs SMTPUTF8, RFC 6531 §3.2).
    pub fn address_is_utf8(&self) -> bool {
        !self.address.is_ascii()
    }
}

/// Why a `MAIL` or `RCPT` line is not what its RFCs allow, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The line is not `MAIL FROM:<...>` / `RCPT TO:<...>`.
    #[error("{0}")]
    Syntax(String),
    /// A parameter given twice (RFC 5321 §4.1.2 leaves that undefined; servers refuse it).
    #[error("the parameter {0} is given twice; give it once")]
    Duplicate(String),
    /// A parameter that belongs to the other command.
    #[error("{keyword} is a parameter of {belongs}, not of {found} ({rfc})")]
    WrongCommand {
        /// The keyword.
        keyword: String,
        /// Where it belongs.
        belongs: &'static str,
        /// Where it was found.
        found: &'static str,
        /// The RFC that says so.
        rfc: &'static str,
    },
    /// A known parameter with a value its RFC does not allow.
    #[error("{keyword}: {problem}")]
    Value {
        /// The keyword.
        keyword: String,
        /// What is wrong and how to write it.
        problem: String,
    },
}

/// Takes apart a `MAIL FROM:` or `RCPT TO:` line. `None` when the line is another command.
///
/// The verb and `FROM:`/`TO:` are matched without regard to case, and a space after the
/// colon is tolerated as most servers do; the address is whatever is between `<` and the `>`
/// that closes it (a `>` inside a quoted local part does not close it).
pub fn parse(line: &str) -> Option<Result<EnvelopeCommand<'_>, ParamError>> {
    let trimmed = line.trim_start();
    let verb_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let verb = if trimmed[..verb_end].eq_ignore_ascii_case("MAIL") {
        Verb::Mail
    } else if trimmed[..verb_end].eq_ignore_ascii_case("RCPT") {
        Verb::Rcpt
    } else {
        return None;
    };
    Some(parse_after_verb(verb, trimmed[verb_end..].trim_start()))
}

fn parse_after_verb(verb: Verb, rest: &str) -> Result<EnvelopeCommand<'_>, ParamError> {
    let (prefix, example) = match verb {
        Verb::Mail => ("FROM:", "MAIL FROM:<alice@example.com>"),
        Verb::Rcpt => ("TO:", "RCPT TO:<bob@example.com>"),
    };
    let syntax = |what: &str| ParamError::Syntax(format!("{what}; write it as {example}"));
    let after = rest
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| rest[prefix.len()..].trim_start())
        .ok_or_else(|| syntax(&format!("{} needs '{prefix}' after the verb", verb.name())))?;
    let Some(inside) = after.strip_prefix('<') else {
        return Err(syntax("the address must be in angle brackets"));
    };
    let close = closing_bracket(inside).ok_or_else(|| syntax("the address has no closing '>'"))?;
    let address = &inside[..close];
    let tail = &inside[close + 1..];
    if !tail.is_empty() && !tail.starts_with([' ', '\t']) {
        return Err(syntax(
            "parameters are separated from the address by a space",
        ));
    }
    let mut params: Vec<Param<'_>> = Vec::new();
    for word in tail.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        check_keyword(keyword)?;
        if params.iter().any(|p| p.is(keyword)) {
            return Err(ParamError::Duplicate(keyword.to_ascii_uppercase()));
        }
        params.push(Param { keyword, value });
    }
    Ok(EnvelopeCommand {
        verb,
        address,
        params,
    })
}

/// Where the `>` closing an address is, skipping quoted strings and quoted pairs.
fn closing_bracket(inside: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in inside.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(index),
            _ => {}
        }
    }
    None
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
fn check_keyword(keyword: &str) -> Result<(), ParamError> {
    let valid = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
        && keyword
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ParamError::Syntax(format!(
            "{:?} is not a parameter keyword (letters, digits and '-', RFC 5321 §4.1.2); \
             parameters are KEYWORD or KEYWORD=VALUE, separated by spaces",
            keyword
        )))
    }
}

/// `esmtp-value`: printable US-ASCII other than `=` and space, or UTF-8 beyond ASCII
/// (RFC 6531 §3.3).
fn check_value(keyword: &str, value: &str) -> Result<(), ParamError> {
    if value.is_empty() {
        return Err(value_error(
            keyword,
            "the value after '=' is empty; give one, or leave out the '='",
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_ascii() && !(('!'..='~').contains(&c) && c != '='))
    {
        return Err(value_error(
            keyword,
            &format!(
                "a parameter value cannot hold {} (RFC 5321 §4.1.2); encode it as xtext, \
                 +{:02X}",
                crate::proto::escape::escape_str(&c.to_string()),
                c as u32
            ),
        ));
    }
    Ok(())
}

fn value_error(keyword: &str, problem: &str) -> ParamError {
    ParamError::Value {
        keyword: keyword.to_ascii_uppercase(),
        problem: problem.to_owned(),
    }
}

/// What a known parameter needs: the command it belongs to, the EHLO keyword that announces
/// it, and its RFC.
struct Known {
    keyword: &'static str,
    verb: Verb,
    extension: &'static str,
    rfc: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        keyword: "SIZE",
        verb: Verb::Mail,
        extension: "SIZE",
        rfc: "RFC 1870",
    },
    Known {
        keyword: "BODY",
        verb: Verb::Mail,
        extension: "8BITMIME",
        rfc: "RFC 6152",
    },
    Known {
        keyword: "SMTPUTF8",
        verb: Verb::Mail,
        extension: "SMTPUTF8",
        rfc: "RFC 6531",
    },
    Known {
        keyword: "RET",
        verb: Verb::Mail,
        extension: "DSN",
        rfc: "RFC 3461",
    },
    Known {
        keyword: "ENVID",
        verb: Verb::Mail,
        extension: "DSN",
        rfc: "RFC 3461",
    },
    Known {
        keyword: "NOTIFY",
        verb: Verb::Rcpt,
        extension: "DSN",
        rfc: "RFC 3461",
    },
    Known {
        keyword: "ORCPT",
        verb: Verb::Rcpt,
        extension: "DSN",
        rfc: "RFC 3461",
    },
    Known {
        keyword: "REQUIRETLS",
        verb: Verb::Mail,
        extension: "REQUIRETLS",
        rfc: "RFC 8689",
    },
    Known {
        keyword: "MT-PRIORITY",
        verb: Verb::Mail,
        extension: "MT-PRIORITY",
        rfc: "RFC 6710",
    },
    Known {
        keyword: "BY",
        verb: Verb::Mail,
        extension: "DELIVERBY",
        rfc: "RFC 2852",
    },
    Known {
        keyword: "AUTH",
        verb: Verb::Mail,
        extension: "AUTH",
        rfc: "RFC 4954",
    },
];

fn known(keyword: &str) -> Option<&'static Known> {
    KNOWN
        .iter()
        .find(|k| k.keyword.eq_ignore_ascii_case(keyword))
}

/// The EHLO keyword a server advertises when it takes this parameter (`BODY=BINARYMIME` needs
/// BINARYMIME, every other `BODY` 8BITMIME); `None` for parameters this tool does not know.
pub fn required_extension(param: &Param<'_>) -> Option<&'static str> {
    if param.is("BODY")
        && param
            .value
            .is_some_and(|v| v.eq_ignore_ascii_case("BINARYMIME"))
    {
        return Some("BINARYMIME");
    }
    known(param.keyword).map(|k| k.extension)
}

/// Holds every parameter of `command` to its RFC: the command it belongs to, whether it takes
/// a value, and the value's form. Parameters this tool does not know pass when their value
/// has the general form.
///
/// # Errors
/// The first [`ParamError`], saying how to write the parameter.
pub fn validate(command: &EnvelopeCommand<'_>) -> Result<(), ParamError> {
    for param in &command.params {
        if let Some(value) = param.value {
            check_value(param.keyword, value)?;
        }
        let Some(known) = known(param.keyword) else {
            continue;
        };
        if known.verb != command.verb {
            return Err(ParamError::WrongCommand {
                keyword: known.keyword.to_owned(),
                belongs: known.verb.name(),
                found: command.verb.name(),
                rfc: known.rfc,
            });
        }
        check_known(known.keyword, param.value)?;
    }
    Ok(())
}

fn check_known(keyword: &str, value: Option<&str>) -> Result<(), ParamError> {
    let bad = |problem: &str| Err(value_error(keyword, problem));
    let needs_value = |form: &str| {
        value.ok_or_else(|| value_error(keyword, &format!("needs a value: {keyword}={form}")))
    };
    match keyword {
        "SMTPUTF8" | "REQUIRETLS" if value.is_some() => {
            return bad(&format!("takes no value; write {keyword} alone"));
        }
        "SIZE" => {
            let value = needs_value("<message size in octets>")?;
            if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return bad("the size is a number of octets, up to 20 digits (RFC 1870 §5)");
            }
        }
        "BODY" => {
            let value = needs_value("8BITMIME")?;
            if !["7BIT", "8BITMIME", "BINARYMIME"]
                .iter()
                .any(|v| v.eq_ignore_ascii_case(value))
            {
                return bad(&format!(
                    "{value:?} is not a body type; use 7BIT, 8BITMIME (RFC 6152) or BINARYMIME \
                     (RFC 3030)"
                ));
            }
        }
        "RET" => {
            let value = needs_value("FULL or RET=HDRS")?;
            if !value.eq_ignore_ascii_case("FULL") && !value.eq_ignore_ascii_case("HDRS") {
                return bad(&format!(
                    "{value:?} is not a return type; use RET=FULL (the whole message in a \
                     bounce) or RET=HDRS (the headers only), RFC 3461 §4.3"
                ));
            }
        }
        "ENVID" => {
            let value = needs_value("<xtext>")?;
            let decoded = decode_xtext(value).map_err(|p| value_error(keyword, &p))?;
            if decoded.len() > 100 {
                return bad(
                    "the envelope identifier is longer than 100 characters (RFC 3461 §4.4)",
                );
            }
            printable(keyword, &decoded)?;
        }
        "NOTIFY" => check_notify(needs_value("SUCCESS,FAILURE")?)?,
        "ORCPT" => check_orcpt(needs_value("rfc822;bob@example.com")?)?,
        "MT-PRIORITY" => {
            let value = needs_value("<-9 to 9>")?;
            let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
            if digits.len() != 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("the priority is a number from -9 to 9 (RFC 6710 §3)");
            }
        }
        "BY" => check_by(needs_value("<seconds>;R")?)?,
        "AUTH" => {
            let value = needs_value("<> or AUTH=<xtext of the submitter's address>")?;
            if value != "<>" {
                decode_xtext(value).map_err(|p| value_error(keyword, &p))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_notify(value: &str) -> Result<(), ParamError> {
    let bad = |problem: String| Err(value_error("NOTIFY", &problem));
    let mut seen: Vec<String> = Vec::new();
    for item in value.split(',') {
        let upper = item.to_ascii_uppercase();
        if !["NEVER", "SUCCESS", "FAILURE", "DELAY"].contains(&upper.as_str()) {
            return bad(format!(
                "{item:?} is not a notification; use NEVER, or any of SUCCESS, FAILURE and \
                 DELAY separated by commas (RFC 3461 §4.1)"
            ));
        }
        if seen.contains(&upper) {
            return bad(format!("{upper} is given twice"));
        }
        seen.push(upper);
    }
    if seen.len() > 1 && seen.iter().any(|s| s == "NEVER") {
        return bad("NEVER cannot be combined with other notifications (RFC 3461 §4.1)".to_owned());
    }
    Ok(())
}

fn check_orcpt(value: &str) -> Result<(), ParamError> {
    let Some((addr_type, address)) = value.split_once(';') else {
        return Err(value_error(
            "ORCPT",
            "needs an address type and the address: ORCPT=rfc822;bob@example.com (RFC 3461 §4.2)",
        ));
    };
    let atom = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
    };
    if !atom(addr_type) {
        return Err(value_error(
            "ORCPT",
            &format!("{addr_type:?} is not an address type; use rfc822 (RFC 3461 §4.2)"),
        ));
    }
    if addr_type.eq_ignore_ascii_case("utf-8") {
        // RFC 6533 §3: utf-8-addr-xtext, where UTF-8 is written as is and the rest as xtext
        // or \x{HEX}: only the general value form is checked.
        return Ok(());
    }
    let decoded = decode_xtext(address).map_err(|p| value_error("ORCPT", &p))?;
    if decoded.is_empty() {
        return Err(value_error("ORCPT", "the original address is empty"));
    }
    if decoded.len() > 500 {
        return Err(value_error(
            "ORCPT",
            "the original address is longer than 500 characters (RFC 3461 §4.2)",
        ));
    }
    printable("ORCPT", &decoded)
}

fn check_by(value: &str) -> Result<(), ParamError> {
    let bad = || {
        Err(value_error(
            "BY",
            "write BY=<seconds>;<mode>, the mode R (return the message) or N (notify), with T \
             to trace: BY=120;R or BY=-60;NT (RFC 2852 §4)",
        ))
    };
    let Some((time, mode)) = value.split_once(';') else {
        return bad();
    };
    let digits = time.strip_prefix(['+', '-']).unwrap_or(time);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return bad();
    }
    let mode = mode.to_ascii_uppercase();
    if !matches!(mode.as_str(), "R" | "N" | "RT" | "NT") {
        return bad();
    }
    Ok(())
}

fn printable(keyword: &str, decoded: &[u8]) -> Result<(), ParamError> {
    if decoded.iter().all(|&b| (b' '..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(value_error(
            keyword,
            "once decoded, the value must be printable US-ASCII (RFC 3461 §4)",
        ))
    }
}

/// Decodes xtext (RFC 3461 §4): printable ASCII except `+` and `=` as is, anything else as
/// `+` and two upper-case hexadecimal digits.
///
/// # Errors
/// What is wrong, and the encoded form of the offending character.
pub fn decode_xtext(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b'+' => {
                let hex = bytes.get(index + 1..index + 3).filter(|h| {
                    h.iter()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
                });
                let Some(hex) = hex else {
                    return Err(format!(
                        "'+' at position {} starts no +XX code; in xtext a '+' is followed by \
                         two upper-case hexadecimal digits, and a '+' itself is written +2B \
                         (RFC 3461 §4)",
                        index + 1
                    ));
                };
                let text = std::str::from_utf8(hex).unwrap_or("00");
                out.push(u8::from_str_radix(text, 16).unwrap_or(0));
                index += 3;
            }
            b'!'..=b'~' if byte != b'=' => {
                out.push(byte);
                index += 1;
            }
            _ => {
                let shown = text[index..].chars().next().unwrap_or('?');
                return Err(format!(
                    "{} cannot be written as is in xtext; write {} (RFC 3461 §4)",
                    crate::proto::escape::escape_str(&shown.to_string()),
                    encode_xtext(&shown.to_string())
                ));
            }
        }
    }
    Ok(out)
}

/// Encodes `text` as xtext (RFC 3461 §4).
pub fn encode_xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

/// A parameter to add to a `MAIL` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The keyword.
    pub keyword: &'static str,
    /// The value, if any.
    pub value: Option<String>,
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.keyword),
            None => f.write_str(self.keyword),
        }
    }
}

/// `line` with `added` appended, each after a space.
pub fn with_params(line: &str, added: &[Added]) -> String {
    let mut out = line.trim_end().to_owned();
    for param in added {
        out.push(' ');
        out.push_str(&param.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> EnvelopeCommand<'_> {
        parse(line).expect("MAIL or RCPT").expect("parses")
    }

    fn invalid(line: &str) -> String {
        let command = match parse(line).expect("MAIL or RCPT") {
            Ok(command) => command,
            Err(error) => return error.to_string(),
        };
        validate(&command).expect_err(line).to_string()
    }

    #[test]
    fn addresses_and_parameters_are_taken_apart() {
        let mail = parsed("mail from: <\"a>b\"@example.com> SIZE=10 smtputf8");
        assert_eq!(mail.verb, Verb::Mail);
        assert_eq!(mail.address, "\"a>b\"@example.com");
        assert_eq!(mail.param("size").and_then(|p| p.value), Some("10"));
        assert!(mail.has("SMTPUTF8"));
        assert!(!mail.address_is_utf8());
        let rcpt = parsed("RCPT TO:<jörg@example.com> NOTIFY=SUCCESS,FAILURE");
        assert!(rcpt.address_is_utf8());
        assert_eq!(parsed("MAIL FROM:<>").address, "");
        assert!(parse("NOOP").is_none());
        assert!(parse("MAILX FROM:<a@b>").is_none());
    }

    #[test]
    fn malformed_lines_say_how_to_write_them() {
        for (line, says) in [
            ("MAIL <a@b>", "FROM:"),
            ("MAIL FROM:a@b", "angle brackets"),
            ("RCPT TO:<a@b", "closing"),
            ("MAIL FROM:<a@b>SIZE=1", "separated"),
            ("MAIL FROM:<a@b> SIZE=1 size=2", "twice"),
            ("MAIL FROM:<a@b> S_IZE=1", "keyword"),
        ] {
            let error = invalid(line);
            assert!(error.contains(says), "{line}: {error}");
        }
    }

    #[test]
    fn known_parameters_are_held_to_their_rfc() {
        for line in [
            "MAIL FROM:<a@b> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159",
            "MAIL FROM:<a@b> BODY=binarymime REQUIRETLS MT-PRIORITY=-3 BY=120;RT AUTH=<>",
            "MAIL FROM:<a@b> AUTH=e+2Bmc2@example.com XFOO=bar XBAZ",
            "RCPT TO:<a@b> NOTIFY=NEVER ORCPT=rfc822;a+2Bb@example.com",
            "RCPT TO:<a@b> NOTIFY=success,delay ORCPT=utf-8;j\u{f6}rg@example.com",
        ] {
            assert_eq!(validate(&parsed(line)), Ok(()), "{line}");
        }
        for (line, says) in [
            ("MAIL FROM:<a@b> SIZE=ten", "number of octets"),
            ("MAIL FROM:<a@b> SIZE", "needs a value"),
            ("MAIL FROM:<a@b> BODY=8BIT", "8BITMIME"),
            ("MAIL FROM:<a@b> SMTPUTF8=yes", "takes no value"),
            ("MAIL FROM:<a@b> RET=ALL", "RET=FULL"),
            ("MAIL FROM:<a@b> ENVID=a+2", "two upper-case"),
            ("MAIL FROM:<a@b> ENVID=a+2b", "two upper-case"),
            ("MAIL FROM:<a@b> NOTIFY=SUCCESS", "RCPT TO"),
            ("RCPT TO:<a@b> RET=FULL", "MAIL FROM"),
            ("RCPT TO:<a@b> NOTIFY=SUCESS", "not a notification"),
            ("RCPT TO:<a@b> NOTIFY=NEVER,DELAY", "NEVER cannot"),
            ("RCPT TO:<a@b> NOTIFY=DELAY,DELAY", "twice"),
            ("RCPT TO:<a@b> ORCPT=bob@example.com", "address type"),
            ("RCPT TO:<a@b> ORCPT=rfc822;", "empty"),
            ("RCPT TO:<a@b> ORCPT=rfc822;b\u{f6}b@example.com", "+C3"),
            ("MAIL FROM:<a@b> MT-PRIORITY=10", "-9 to 9"),
            ("MAIL FROM:<a@b> BY=10", "BY=120;R"),
            ("MAIL FROM:<a@b> BY=10;X", "BY=120;R"),
            ("MAIL FROM:<a@b> XFOO=", "empty"),
            ("MAIL FROM:<a@b> XFOO=a\u{1}b", "+01"),
        ] {
            let error = invalid(line);
            assert!(error.contains(says), "{line}: {error}");
        }
        let long = format!("MAIL FROM:<a@b> ENVID={}", "x".repeat(101));
        assert!(invalid(&long).contains("100"));
    }

    #[test]
    fn xtext_round_trips() {
        for text in ["plain", "a+b=c", "with space", "caf\u{e9}", "+2B", ""] {
            let encoded = encode_xtext(text);
            assert!(
                encoded
                    .bytes()
                    .all(|b| (b'!'..=b'~').contains(&b) && b != b'=')
            );
            assert_eq!(decode_xtext(&encoded).expect(text), text.as_bytes());
        }
        assert_eq!(encode_xtext("a+b"), "a+2Bb");
    }

    #[test]
    fn extensions_required_by_parameters() {
        let mail = parsed("MAIL FROM:<a@b> BODY=BINARYMIME BODY2=x SIZE=1 REQUIRETLS");
        let needs: Vec<Option<&str>> = mail.params.iter().map(required_extension).collect();
        assert_eq!(
            needs,
            [Some("BINARYMIME"), None, Some("SIZE"), Some("REQUIRETLS")]
        );
    }

    #[test]
    fn parameters_are_appended() {
        let added = [
            Added {
                keyword: "SIZE",
                value: Some("42".into()),
            },
            Added {
                keyword: "SMTPUTF8",
                value: None,
            },
        ];
        assert_eq!(
            with_params("MAIL FROM:<a@b> ", &added),
            "MAIL FROM:<a@b> SIZE=42 SMTPUTF8"
        );
    }
}
