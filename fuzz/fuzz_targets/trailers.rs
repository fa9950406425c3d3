//! Fuzz chunk trailers against a reference reading of their grammar (RFC
//! 9112 §7.1.2: `trailer-section = *( field-line CRLF )`, then CRLF). The
//! input is a body (its first byte says how long) sent as one chunk, then
//! the rest as the trailer section. Properties:
//! - the decoder accepts exactly the trailer sections the reference
//!   accepts, stops exactly at their end, and waits when they are
//!   incomplete;
//! - the body comes out intact, fed whole or byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyglass::request::{ChunkedDecoder, Error};

/// What the reference makes of a trailer section.
#[derive(Debug, PartialEq)]
enum Want {
    /// Complete after this many bytes.
    Ends(usize),
    /// Valid so far, not complete.
    More,
    Invalid,
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// field-line = field-name ":" field-value, the value any VCHAR, obs-text,
/// SP or HTAB (the decoder checks no more than that; lines are CRLF).
fn reference(t: &[u8]) -> Want {
    let mut i = 0;
    loop {
        match t.get(i..i + 2) {
            Some(b"\r\n") => return Want::Ends(i + 2),
            _ if t.get(i) == Some(&b'\r') && i + 1 == t.len() => return Want::More,
            _ => {}
        }
        let name = t[i..].iter().take_while(|&&b| tchar(b)).count();
        i += name;
        match t.get(i) {
            None => return Want::More,
            Some(b':') if name > 0 => i += 1,
            Some(_) => return Want::Invalid,
        }
        let value = t[i..]
            .iter()
            .take_while(|&&b| b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f))
            .count();
        i += value;
        match t.get(i..i + 2) {
            Some(b"\r\n") => i += 2,
            _ if t.len() == i || (t.len() == i + 1 && t[i] == b'\r') => return Want::More,
            _ => return Want::Invalid,
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (body, trailers) = rest.split_at(n);
    // Keep under the decoder's 4 KiB line and metadata bounds, which the
    // reference does not model.
    if trailers.len() > 2048 {
        return;
    }
    let mut wire = Vec::new();
    if !body.is_empty() {
        wire.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        wire.extend_from_slice(body);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n");
    let before = wire.len();
    wire.extend_from_slice(trailers);

    let mut d = ChunkedDecoder::new(1 << 16, 4096);
    let mut out = Vec::new();
    let got = d.decode(&wire, &mut |b| out.extend_from_slice(b));
    match (reference(trailers), got) {
        (Want::Ends(k), Ok(used)) => {
            assert!(d.is_done());
            assert_eq!(used, before + k);
            assert_eq!(out, body);
        }
        (Want::More, Ok(used)) => {
            assert!(!d.is_done());
            assert_eq!(used, wire.len());
            assert_eq!(out, body);
        }
        (Want::Invalid, Err(Error::Malformed(_))) => {}
        (want, got) => panic!("reference {want:?}, decoder {got:?}"),
    }

    let mut bytewise = ChunkedDecoder::new(1 << 16, 4096);
    let mut out2 = Vec::new();
    let mut r = Ok(0);
    for b in &wire {
        if bytewise.is_done() {
            break;
        }
        match bytewise.decode(std::slice::from_ref(b), &mut |d| out2.extend_from_slice(d)) {
            Ok(k) => r = r.map(|u| u + k),
            Err(e) => {
                r = Err(e);
                break;
            }
        }
    }
    assert_eq!(r.is_ok(), got.is_ok());
    if let (Ok(a), Ok(b)) = (got, r) {
        assert_eq!((a, &out), (b, &out2));
    }
});
