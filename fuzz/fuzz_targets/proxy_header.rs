//! Fuzz the PROXY protocol header parser (v1 and v2): it must never panic,
//! never claim more bytes than it was given, call every strict prefix of a
//! complete header partial, and give the same header whatever follows it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::proxy_protocol::{MAX_V1_LEN, MAX_V2_LEN, Parsed, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete(header, n)) => {
            assert!(n > 0 && n <= data.len());
            assert!(n <= MAX_V1_LEN.max(MAX_V2_LEN));
            assert_eq!(parse(&data[..n - 1]), Ok(Parsed::Partial));
            let mut more = data[..n].to_vec();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse(&more), Ok(Parsed::Complete(header, n)));
        }
        // A valid beginning is never longer than the longest header.
        Ok(Parsed::Partial) => assert!(data.len() < MAX_V1_LEN.max(MAX_V2_LEN)),
        Err(_) => {}
    }
});
