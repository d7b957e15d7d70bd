//! The reply parser under arbitrary bytes cut at arbitrary places: it never panics, never
//! holds more than its limits allow, and the replies it finds do not depend on the cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtptui::proto::reply::{ReplyLimits, ReplyParser};

fn parse(limits: ReplyLimits, pieces: &[&[u8]]) -> Vec<Result<String, String>> {
    let mut parser = ReplyParser::new(limits);
    let mut found = Vec::new();
    for piece in pieces {
        parser.push(piece);
        loop {
            match parser.next_reply() {
                Ok(Some(reply)) => {
                    assert!(reply.raw_lines().len() <= limits.max_lines);
                    assert!(reply.wire_len() <= limits.max_reply_bytes + 2 * limits.max_lines);
                    for line in reply.display_lines() {
                        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
                    }
                    found.push(Ok(format!("{:?}", reply)));
                }
                Ok(None) => break,
                Err(error) => {
                    found.push(Err(error.to_string()));
                    return found;
                }
            }
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, bytes)) = data.split_first() else {
        return;
    };
    let limits = ReplyLimits {
        max_line_len: 64,
        max_lines: 8,
        max_reply_bytes: 256,
    };
    let whole = parse(limits, &[bytes]);
    // Cut into pieces of 1..=8 bytes, sizes taken from the seed.
    let mut pieces = Vec::new();
    let mut rest = bytes;
    let mut seed = cut_seed as usize;
    while !rest.is_empty() {
        let n = (seed % 8 + 1).min(rest.len());
        seed = seed.wrapping_mul(31).wrapping_add(7);
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    let cut = parse(limits, &pieces);
    // An error ends parsing; what came before it must agree, and the error too when the
    // whole input was seen by both.
    assert_eq!(cut, whole);
});
