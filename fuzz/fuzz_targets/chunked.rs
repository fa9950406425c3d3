//! Fuzz the chunked decoder: no panic, the same result fed whole or byte
//! by byte, and never more data out than bytes in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::request::ChunkedDecoder;

fuzz_target!(|input: &[u8]| {
    let mut whole = ChunkedDecoder::new(1 << 16, 4096);
    let mut out_whole = Vec::new();
    let r_whole = whole.decode(input, &mut |b| out_whole.extend_from_slice(b));

    let mut bytewise = ChunkedDecoder::new(1 << 16, 4096);
    let mut out_bytes = Vec::new();
    let mut used = 0;
    let mut r_bytes = Ok(0);
    for b in input {
        if bytewise.is_done() {
            break;
        }
        match bytewise.decode(std::slice::from_ref(b), &mut |d| {
            out_bytes.extend_from_slice(d)
        }) {
            Ok(n) => used += n,
            Err(e) => {
                r_bytes = Err(e);
                break;
            }
        }
    }
    match (r_whole, r_bytes) {
        (Ok(n), Ok(_)) => {
            assert_eq!(n, used);
            assert_eq!(out_whole, out_bytes);
            assert!(out_whole.len() <= input.len());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("whole {a:?} vs bytewise {b:?}"),
    }
});
