//! Fuzz the request-head parser. Properties, for any bytes:
//! - it never panics, and never claims more bytes than it was given;
//! - a complete head is `Partial` one byte short, and the same head with
//!   more bytes after it (the next request) parses to the same length;
//! - what it accepts obeys the rules it enforces: HTTP/1.0 or 1.1, one
//!   `Host` in 1.1, an absolute-form target's authority as the `Host`, no
//!   body length above the limit, never `Content-Length` with chunked;
//! - a higher `max_headers`, whose slots come from the heap rather than the
//!   stack, accepts the same head the same way;
//! - every field value is one `HeaderValue` accepts when checked from
//!   scratch (the parser takes field values without checking them again:
//!   `sys::parsed_field_value`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::http::{HeaderValue, Version, header};
use spyglass::request::{Framing, Limits, Parsed, parse_head};

const LIMITS: Limits = Limits {
    max_request_line: 256,
    max_head: 1024,
    max_headers: 16,
    max_body: 1 << 20,
};

/// The same limits with more header slots than the parser keeps on the
/// stack.
const HEAP_SLOTS: Limits = Limits {
    max_headers: 150,
    ..LIMITS
};

fuzz_target!(|data: &[u8]| {
    let Ok(Parsed::Complete(head, n)) = parse_head(data, &LIMITS) else {
        return;
    };
    assert!(n <= data.len());
    for value in head.headers.values() {
        assert!(
            HeaderValue::from_bytes(value.as_bytes()).is_ok(),
            "{value:?}"
        );
    }
    match parse_head(data, &HEAP_SLOTS) {
        Ok(Parsed::Complete(other, m)) => {
            assert_eq!(m, n);
            assert_eq!(other.headers, head.headers);
            assert_eq!(other.uri, head.uri);
        }
        other => panic!("with heap slots: {other:?}"),
    }
    assert!(matches!(
        parse_head(&data[..n - 1], &LIMITS),
        Ok(Parsed::Partial)
    ));
    let mut more = data[..n].to_vec();
    more.extend_from_slice(b"GET / HTTP/1.1\r\n");
    match parse_head(&more, &LIMITS) {
        Ok(Parsed::Complete(_, m)) => assert_eq!(m, n),
        other => panic!("with bytes after it: {other:?}"),
    }

    assert!(head.version == Version::HTTP_10 || head.version == Version::HTTP_11);
    let hosts = head.headers.get_all(header::HOST).iter().count();
    if head.version == Version::HTTP_11 {
        assert_eq!(hosts, 1);
    }
    if head.uri.scheme().is_some() {
        let authority = head
            .uri
            .authority()
            .expect("absolute-form has an authority");
        assert!(!authority.host().is_empty());
        assert!(!authority.as_str().contains('@'), "userinfo accepted");
        assert_eq!(head.headers[header::HOST], authority.as_str());
    }
    match head.framing {
        Framing::Length(len) => assert!(len > 0 && len <= LIMITS.max_body),
        Framing::Chunked => {
            assert_eq!(head.version, Version::HTTP_11);
            assert!(!head.headers.contains_key(header::CONTENT_LENGTH));
        }
        Framing::None => assert!(!head.headers.contains_key(header::TRANSFER_ENCODING)),
    }
});
