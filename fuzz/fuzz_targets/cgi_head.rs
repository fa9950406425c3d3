//! Fuzz the parser of a CGI script's header block (RFC 3875 §6), the bytes
//! an untrusted script prints. The first input byte chooses where the
//! output is split in two reads. Properties:
//! - the same result whether the output arrives whole or in two reads;
//! - a complete block hands on exactly the bytes after its blank line
//!   (the first empty line, LF or CRLF), and never completes without one;
//! - the block is bounded (`CGI_MAX_HEAD`);
//! - what it yields is sendable: a final status (200-599), no framing or
//!   hop-by-hop field (the engine's), `Content-Length`, `Status` and
//!   `Location` taken out of the fields; a local redirect is a path on
//!   this server, never `//host` or a URI with a scheme.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::fuzz::{CGI_MAX_HEAD, CgiHead, CgiHeadError, CgiHeadParser, CgiReply, ENGINE_OWNED};
use spyglass::http::header;

type Outcome = Result<Option<(CgiHead, Vec<u8>)>, CgiHeadError>;

/// Where the body starts: after the first line that is empty or `\r`.
fn body_start(out: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            if matches!(&out[line_start..i], b"" | b"\r") {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn in_two(out: &[u8], split: usize) -> Outcome {
    let mut p = CgiHeadParser::new();
    match p.push(&out[..split])? {
        Some((head, mut rest)) => {
            rest.extend_from_slice(&out[split..]);
            Ok(Some((head, rest)))
        }
        None => p.push(&out[split..]),
    }
}

fn check_head(head: &CgiHead) {
    for name in [
        header::CONTENT_LENGTH,
        header::LOCATION,
        header::HeaderName::from_static("status"),
    ] {
        assert!(
            !head.headers.contains_key(&name),
            "{name} left among the fields"
        );
    }
    for name in &ENGINE_OWNED {
        assert!(!head.headers.contains_key(name), "{name} kept");
    }
    if let Some(s) = head.status {
        assert!((200..=599).contains(&s.as_u16()));
    }
}

fn check_reply(reply: CgiReply) {
    match reply {
        CgiReply::Document {
            status, headers, ..
        } => {
            assert!((200..=599).contains(&status.as_u16()));
            for name in ENGINE_OWNED.iter().chain([&header::CONTENT_LENGTH]) {
                assert!(!headers.contains_key(name), "{name} in a document");
            }
            assert!(headers.get_all(header::LOCATION).iter().count() <= 1);
        }
        CgiReply::Local(uri) => {
            assert!(uri.scheme().is_none() && uri.authority().is_none());
            assert!(uri.path().starts_with('/') && !uri.path().starts_with("//"));
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, out)) = input.split_first() else {
        return;
    };
    let split = usize::from(split).min(out.len());
    let whole: Outcome = CgiHeadParser::new().push(out);
    let two = in_two(out, split);
    assert_eq!(
        format!("{whole:?}"),
        format!("{two:?}"),
        "whole vs split at {split}"
    );
    match whole {
        Ok(Some((head, rest))) => {
            let start = body_start(out).expect("complete without a blank line");
            assert_eq!(rest, &out[start..]);
            assert!(start <= CGI_MAX_HEAD + 2);
            check_head(&head);
            if let Ok(reply) = head.reply() {
                check_reply(reply);
            }
        }
        Ok(None) => {
            assert!(body_start(out).is_none(), "a blank line went unseen");
            assert!(out.len() <= CGI_MAX_HEAD);
        }
        Err(_) => {}
    }
});
