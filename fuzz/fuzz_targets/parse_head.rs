//! Fuzz the request-head parser: it must never panic, never claim more
//! bytes than it was given, and agree with itself on every prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::request::{Limits, Parsed, parse_head};

const LIMITS: Limits = Limits {
    max_request_line: 256,
    max_head: 1024,
    max_headers: 16,
    max_body: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Complete(_, n)) = parse_head(data, &LIMITS) {
        assert!(n <= data.len());
        assert!(matches!(parse_head(&data[..n - 1], &LIMITS), Ok(Parsed::Partial)));
    }
});
