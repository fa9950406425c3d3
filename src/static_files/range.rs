//! Byte ranges (RFC 9110 §14): parse `Range`, decide between 206, 416 and
//! a plain 200, and lay out a `multipart/byteranges` body as byte parts
//! around file regions, so that even a many-part answer reads nothing into
//! memory.

use std::fs::File;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use crate::handler::{Body, Part};

/// An inclusive byte range of the representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The first byte's offset.
    pub start: u64,
    /// The last byte's offset (not one past it).
    pub end: u64,
}

impl Span {
    /// How many bytes the span covers.
    // An inclusive span is never empty, so an `is_empty` would say nothing.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a `Range` header asks for, against a representation of a given
/// length.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// Not a byte range we honour (bad syntax, another unit, too many
    /// ranges, too much overlap): answer 200 with everything.
    Ignore,
    /// No range overlaps the content: 416.
    Unsatisfiable,
    /// 206 with `Content-Range`.
    One(Span),
    /// 206 `multipart/byteranges`, in the order asked.
    Many(Vec<Span>),
}

/// More ranges than this in one request get the whole file instead.
pub const MAX_RANGES: usize = 16;

#[derive(Clone, Copy)]
enum Spec {
    /// `first-last` or `first-`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Parse a `Range` value against a representation of `len` bytes.
pub fn parse(value: &[u8], len: u64) -> Ranges {
    let Some(set) = strip_prefix_ignore_case(value, b"bytes=") else {
        return Ranges::Ignore;
    };
    let mut specs = [Spec::Suffix(0); MAX_RANGES];
    let mut n = 0;
    for item in set.split(|&b| b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() {
            continue;
        }
        let Some(spec) = parse_spec(item) else {
            return Ranges::Ignore;
        };
        if n == MAX_RANGES {
            return Ranges::Ignore;
        }
        specs[n] = spec;
        n += 1;
    }
    if n == 0 {
        return Ranges::Ignore;
    }
    if len == 0 {
        // RFC 9110 §14.1.1: only a non-zero suffix is satisfiable on an
        // empty representation, and no span can say "nothing": send the
        // (empty) whole.
        let suffix = specs[..n]
            .iter()
            .any(|s| matches!(s, Spec::Suffix(k) if *k > 0));
        return if suffix {
            Ranges::Ignore
        } else {
            Ranges::Unsatisfiable
        };
    }
    let mut spans = specs[..n].iter().filter_map(|s| satisfiable(*s, len));
    let Some(first) = spans.next() else {
        return Ranges::Unsatisfiable;
    };
    let Some(second) = spans.next() else {
        return Ranges::One(first);
    };
    let many: Vec<Span> = [first, second].into_iter().chain(spans).collect();
    // Ranges that together ask for more than the whole file overlap: a
    // client (or an attacker multiplying one file into a huge body) gets
    // the file once instead.
    let asked = many.iter().fold(0u64, |acc, s| acc.saturating_add(s.len()));
    if asked > len {
        return Ranges::Ignore;
    }
    Ranges::Many(many)
}

fn strip_prefix_ignore_case<'a>(v: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = v.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &v[prefix.len()..])
}

fn parse_spec(item: &[u8]) -> Option<Spec> {
    let dash = item.iter().position(|&b| b == b'-')?;
    let (first, last) = (&item[..dash], &item[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(number(last)?));
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = number(last)?;
    (last >= first).then_some(Spec::From(first, Some(last)))
}

/// 1*DIGIT, saturating (a huge position is valid syntax, just out of
/// range).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn satisfiable(spec: Spec, len: u64) -> Option<Span> {
    match spec {
        Spec::From(first, last) if first < len => Some(Span {
            start: first,
            end: last.map_or(len - 1, |l| l.min(len - 1)),
        }),
        Spec::Suffix(n) if n > 0 && len > 0 => Some(Span {
            start: len.saturating_sub(n),
            end: len - 1,
        }),
        _ => None,
    }
}

/// `Content-Range` for one span.
pub fn content_range(span: Span, len: u64) -> HeaderValue {
    let mut buf = [0u8; 80];
    let mut w = &mut buf[..];
    let _ = write!(w, "bytes {}-{}/{len}", span.start, span.end);
    let n = 80 - w.len();
    HeaderValue::from_bytes(&buf[..n]).expect("digits")
}

/// `Content-Range` for a 416.
pub fn unsatisfied_range(len: u64) -> HeaderValue {
    let mut buf = [0u8; 40];
    let mut w = &mut buf[..];
    let _ = write!(w, "bytes */{len}");
    let n = 40 - w.len();
    HeaderValue::from_bytes(&buf[..n]).expect("digits")
}

/// A `multipart/byteranges` body over `file` (of `len` bytes), each part
/// labelled with `content_type`, and the response's `Content-Type`.
pub fn multipart(
    file: &Rc<File>,
    spans: &[Span],
    len: u64,
    content_type: &HeaderValue,
) -> (Body, HeaderValue) {
    let boundary = boundary();
    let boundary = std::str::from_utf8(&boundary).expect("ASCII");
    let mut parts = Vec::with_capacity(spans.len() * 2 + 1);
    for (i, span) in spans.iter().enumerate() {
        let mut head = Vec::with_capacity(128);
        if i > 0 {
            head.extend_from_slice(b"\r\n");
        }
        let _ = write!(head, "--{boundary}\r\nContent-Type: ");
        head.extend_from_slice(content_type.as_bytes());
        let _ = write!(
            head,
            "\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            span.start, span.end
        );
        parts.push(Part::Bytes(Bytes::from(head)));
        parts.push(Part::File {
            file: Rc::clone(file),
            offset: span.start,
            len: span.len(),
        });
    }
    parts.push(Part::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    let ct =
        HeaderValue::try_from(format!("multipart/byteranges; boundary={boundary}")).expect("ASCII");
    (Body::from_parts(parts), ct)
}

/// A boundary unlikely to occur in any file: `spyglass-` and 16 hex
/// digits mixed from the time, the pid and a counter.
fn boundary() -> [u8; 25] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let mut out = *b"spyglass-0000000000000000";
    let _ = write!(&mut out[9..], "{x:016x}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: u64, end: u64) -> Span {
        Span { start, end }
    }

    #[test]
    fn parse_table() {
        use Ranges::*;
        let many_ok = format!("bytes={}", vec!["0-0"; MAX_RANGES].join(","));
        let too_many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        let cases: Vec<(&str, u64, Ranges)> = vec![
            // header, length => ranges
            ("bytes=0-499", 1000, One(s(0, 499))),
            ("bytes=500-", 1000, One(s(500, 999))),
            ("bytes=-200", 1000, One(s(800, 999))),
            ("bytes=-2000", 1000, One(s(0, 999))),
            ("bytes=900-5000", 1000, One(s(900, 999))),
            ("BYTES=0-0", 1000, One(s(0, 0))),
            ("bytes= 0-1 , ,", 1000, One(s(0, 1))),
            ("bytes=0-1,5-9", 1000, Many(vec![s(0, 1), s(5, 9)])),
            ("bytes=5-9,0-1", 1000, Many(vec![s(5, 9), s(0, 1)])),
            ("bytes=0-1,2000-3000", 1000, One(s(0, 1))),
            ("bytes=0-1,-1", 10, Many(vec![s(0, 1), s(9, 9)])),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=1000-2000,3000-", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Ignore),
            ("bytes=-0", 0, Unsatisfiable),
            ("bytes=0-0,-1", 0, Ignore),
            ("bytes=99999999999999999999999-", 1000, Unsatisfiable),
            ("bytes=0-99999999999999999999999", 1000, One(s(0, 999))),
            // Overlap asking for more than the file: the whole file.
            ("bytes=0-999,0-999", 1000, Ignore),
            ("bytes=0-600,400-999", 1000, Ignore),
            (many_ok.as_str(), 1000, Many(vec![s(0, 0); MAX_RANGES])),
            (too_many.as_str(), 1000, Ignore),
            // Invalid syntax: ignored.
            ("bytes=5-1", 1000, Ignore),
            ("bytes=", 1000, Ignore),
            ("bytes=,", 1000, Ignore),
            ("bytes=a-b", 1000, Ignore),
            ("bytes=0-1-2", 1000, Ignore),
            ("bytes=--1", 1000, Ignore),
            ("bytes=-", 1000, Ignore),
            ("bytes=+1-2", 1000, Ignore),
            ("bytes=0-1,x", 1000, Ignore),
            ("bytes 0-1", 1000, Ignore),
            ("items=0-1", 1000, Ignore),
            ("", 1000, Ignore),
        ];
        for (header, len, want) in cases {
            assert_eq!(parse(header.as_bytes(), len), want, "{header:?} of {len}");
        }
    }

    #[test]
    fn multipart_layout() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let file = Rc::new(tmp);
        let ct = HeaderValue::from_static("text/plain");
        let (body, ct_out) = multipart(&file, &[s(0, 1), s(8, 9)], 10, &ct);
        let ct_out = ct_out.to_str().unwrap();
        let boundary = ct_out
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap();
        assert_eq!(boundary.len(), 25);
        let crate::handler::BodyKind::Parts(parts, total) = body.kind else {
            panic!("parts");
        };
        let mut text = String::new();
        for p in &parts {
            match p {
                Part::Bytes(b) => text.push_str(std::str::from_utf8(b).unwrap()),
                Part::File { offset, len, .. } => text.push_str(&format!("<{offset}+{len}>")),
            }
        }
        let want = format!(
            "--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n<0+2>\
             \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n<8+2>\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(text, want);
        assert_eq!(total as usize, want.len() - "<0+2><8+2>".len() + 4);
        assert_ne!(super::boundary(), super::boundary());
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(s(0, 0), 1), "bytes 0-0/1");
        assert_eq!(unsatisfied_range(1234), "bytes */1234");
    }
}
