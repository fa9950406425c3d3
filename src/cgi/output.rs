//! The script's header block (RFC 3875 §6): a pure parser over the bytes
//! read from its stdout, and the decision it leads to (a document, a local
//! redirect, a client redirect). No descriptors, no processes.
//!
//! Lenient where scripts commonly are (LF or CRLF line ends, any case in
//! field names, folded lines), strict where a mistake would reach the
//! client: a field that is not a valid HTTP field is an error (502), as is
//! a block without `Content-Type`, `Location` or `Status`. Fields that
//! frame or route the response to the client (`Transfer-Encoding`,
//! `Connection`, ...: the engine's) are dropped here.

use std::fmt;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};

use crate::response::is_engine_owned;

/// The largest header block a script may print.
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a script's output is not a valid CGI response.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More than [`MAX_HEAD`] bytes without the blank line.
    TooLarge,
    /// A line that is not `name: value`.
    Malformed(String),
    /// A field name or value HTTP does not allow.
    InvalidField(String),
    /// `Status:` that is not a final status code.
    BadStatus(String),
    /// `Status:` or `Location:` given twice.
    Duplicate(&'static str),
    /// A local `Location:` that is not a path.
    BadLocation(String),
    /// None of `Content-Type`, `Location`, `Status`.
    NoContentType,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "header block over {MAX_HEAD} bytes"),
            HeadError::Malformed(l) => write!(f, "malformed header line {l:?}"),
            HeadError::InvalidField(l) => write!(f, "invalid header field {l:?}"),
            HeadError::BadStatus(s) => write!(f, "invalid Status {s:?}"),
            HeadError::Duplicate(n) => write!(f, "{n} given twice"),
            HeadError::BadLocation(l) => write!(f, "invalid local Location {l:?}"),
            HeadError::NoContentType => f.write_str("no Content-Type, Location or Status"),
        }
    }
}

/// The header block, read field by field.
#[derive(Debug, Default)]
pub struct Head {
    /// `Status:`, if given.
    pub status: Option<StatusCode>,
    /// `Location:`, if given.
    pub location: Option<HeaderValue>,
    /// `Content-Length:`, when given and a valid length.
    pub content_length: Option<u64>,
    /// Every other field, `Content-Type` included, in order.
    pub headers: HeaderMap,
}

/// What the script asked for (RFC 3875 §6.2).
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// A document (or a client redirect): status, fields, body length if
    /// the script announced it.
    Document {
        /// The status to answer with.
        status: StatusCode,
        /// The fields to send (`Location` included for a client redirect).
        headers: HeaderMap,
        /// The body's length, from the script's `Content-Length`.
        len: Option<u64>,
    },
    /// A local redirect: answer with a `GET` of this path instead.
    Local(Uri),
}

/// Accumulates stdout until the header block is complete.
#[derive(Default)]
pub struct HeadParser {
    buf: Vec<u8>,
    /// Bytes already searched for the blank line.
    scanned: usize,
}

impl HeadParser {
    /// A parser with nothing read yet.
    pub fn new() -> HeadParser {
        HeadParser::default()
    }

    /// Feed bytes; `Ok(Some((head, rest)))` once the blank line has come,
    /// where `rest` is what followed it (the start of the body).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<(Head, Vec<u8>)>, HeadError> {
        self.buf.extend_from_slice(bytes);
        // Resume one byte back: the previous read may have ended between
        // the two line ends of the blank line.
        let mut i = self.scanned.saturating_sub(2);
        let end = loop {
            let Some(nl) = self.buf[i..].iter().position(|&b| b == b'\n') else {
                break None;
            };
            let at = i + nl;
            let line_start = self.buf[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let line = &self.buf[line_start..at];
            if line.is_empty() || line == b"\r" {
                break Some((line_start, at + 1));
            }
            i = at + 1;
        };
        match end {
            Some((block_end, body_start)) => {
                if block_end > MAX_HEAD {
                    return Err(HeadError::TooLarge);
                }
                let head = parse_block(&self.buf[..block_end])?;
                Ok(Some((head, self.buf[body_start..].to_vec())))
            }
            None if self.buf.len() > MAX_HEAD => Err(HeadError::TooLarge),
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }
}

/// Parse the lines of a complete header block (without the blank line).
fn parse_block(block: &[u8]) -> Result<Head, HeadError> {
    // Unfold first: a line starting with SP or HTAB continues the previous
    // one (obs-fold; RFC 9112 §5.2 lets a recipient replace it with SP).
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for raw in block.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue; // the split's empty tail
        }
        if matches!(line[0], b' ' | b'\t') {
            let Some(prev) = lines.last_mut() else {
                return Err(HeadError::Malformed(lossy(line)));
            };
            prev.push(b' ');
            prev.extend_from_slice(trim(line));
            continue;
        }
        lines.push(line.to_vec());
    }
    let mut head = Head::default();
    for line in &lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(HeadError::Malformed(lossy(line)));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        let name =
            HeaderName::from_bytes(name).map_err(|_| HeadError::InvalidField(lossy(line)))?;
        if name.as_str() == "status" {
            if head.status.is_some() {
                return Err(HeadError::Duplicate("Status"));
            }
            head.status = Some(parse_status(value)?);
            continue;
        }
        let value =
            HeaderValue::from_bytes(value).map_err(|_| HeadError::InvalidField(lossy(line)))?;
        if name == header::LOCATION {
            if head.location.is_some() {
                return Err(HeadError::Duplicate("Location"));
            }
            head.location = Some(value);
        } else if name == header::CONTENT_LENGTH {
            // The engine frames the response; a valid length lets it send
            // Content-Length instead of chunks. An invalid one is ignored.
            head.content_length = value.to_str().ok().and_then(|v| {
                (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse().ok())
                    .flatten()
            });
        } else if is_engine_owned(&name) {
            // RFC 3875 §6.3: fields about the connection to the client are
            // the server's; the writer would drop them too, but a parsed
            // head should not carry what will never be sent.
            continue;
        } else {
            head.headers.append(name, value);
        }
    }
    Ok(head)
}

/// `Status: 404 Not Found` (the reason phrase is not kept: the engine
/// sends the standard one).
fn parse_status(value: &[u8]) -> Result<StatusCode, HeadError> {
    let bad = || HeadError::BadStatus(lossy(value));
    if value.len() < 3 || !value[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if value.len() > 3 && !matches!(value[3], b' ' | b'\t') {
        return Err(bad());
    }
    let code = StatusCode::from_bytes(&value[..3]).map_err(|_| bad())?;
    if !(200..=599).contains(&code.as_u16()) {
        return Err(bad());
    }
    Ok(code)
}

impl Head {
    /// Decide what the block asks for (RFC 3875 §6.2): a local redirect
    /// (a `Location` path with no `Status`, or `Status: 200`, as Apache),
    /// a client redirect (any other `Location`; 302 unless `Status` says),
    /// or a document (which must have a `Content-Type` or a `Status`).
    pub fn reply(self) -> Result<Reply, HeadError> {
        let Head {
            status,
            location,
            content_length,
            mut headers,
        } = self;
        if let Some(loc) = location {
            let local = loc.as_bytes().starts_with(b"/") && !loc.as_bytes().starts_with(b"//");
            if local && status.is_none_or(|s| s == StatusCode::OK) {
                let uri = Uri::try_from(loc.as_bytes())
                    .ok()
                    .filter(|u| u.scheme().is_none() && u.authority().is_none())
                    .ok_or_else(|| HeadError::BadLocation(lossy(loc.as_bytes())))?;
                return Ok(Reply::Local(uri));
            }
            headers.insert(header::LOCATION, loc);
            return Ok(Reply::Document {
                status: status.unwrap_or(StatusCode::FOUND),
                headers,
                len: content_length,
            });
        }
        if status.is_none() && !headers.contains_key(header::CONTENT_TYPE) {
            return Err(HeadError::NoContentType);
        }
        Ok(Reply::Document {
            status: status.unwrap_or(StatusCode::OK),
            headers,
            len: content_length,
        })
    }
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn lossy(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let mut s: String = s.chars().take(200).collect();
    if v.len() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(all: &[u8]) -> Result<Option<(Head, Vec<u8>)>, HeadError> {
        HeadParser::new().push(all)
    }

    fn reply(all: &[u8]) -> Result<Reply, HeadError> {
        parse(all)?.expect("complete").0.reply()
    }

    fn document(all: &[u8]) -> (u16, Vec<(String, String)>, Option<u64>) {
        match reply(all) {
            Ok(Reply::Document {
                status,
                headers,
                len,
            }) => (
                status.as_u16(),
                headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
                len,
            ),
            other => panic!("{other:?}"),
        }
    }

    fn h(n: &str, v: &str) -> (String, String) {
        (n.into(), v.into())
    }

    /// Script output, then the status, fields and length it leads to.
    type Case = (
        &'static [u8],
        u16,
        &'static [(&'static str, &'static str)],
        Option<u64>,
    );

    #[test]
    fn documents() {
        #[rustfmt::skip]
        let table: &[Case] = &[
            (b"Content-Type: text/plain\n\n", 200, &[("content-type", "text/plain")], None),
            (b"Content-Type: text/plain\r\n\r\n", 200, &[("content-type", "text/plain")], None),
            (b"content-type:text/html\nX-A: 1\nX-A: 2\n\n", 200,
             &[("content-type", "text/html"), ("x-a", "1"), ("x-a", "2")], None),
            (b"Status: 404 Not Found\nContent-Type: text/plain\n\n", 404,
             &[("content-type", "text/plain")], None),
            (b"STATUS: 204\n\n", 204, &[], None),
            (b"Status: 201\r\nContent-Type: a/b\r\nContent-Length: 12\r\n\r\n", 201,
             &[("content-type", "a/b")], Some(12)),
            (b"Content-Type: a/b\nContent-Length: 1x\n\n", 200, &[("content-type", "a/b")], None),
            (b"Content-Type: a/b\nX-Long: one\n two\n\n", 200,
             &[("content-type", "a/b"), ("x-long", "one two")], None),
            (b"Location: https://example.com/x\n\n", 302,
             &[("location", "https://example.com/x")], None),
            (b"Status: 301\nLocation: /moved\n\n", 301, &[("location", "/moved")], None),
            (b"Location: //evil.example/\n\n", 302, &[("location", "//evil.example/")], None),
            (b"Content-Type: a/b\nTransfer-Encoding: chunked\nConnection: close\nKeep-Alive: 5\n\
               Upgrade: h2c\nTE: trailers\nTrailer: X\nDate: now\nX: 1\n\n", 200,
             &[("content-type", "a/b"), ("x", "1")], None),
        ];
        for (input, status, headers, len) in table {
            let want: Vec<_> = headers.iter().map(|(n, v)| h(n, v)).collect();
            assert_eq!(
                document(input),
                (*status, want, *len),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn local_redirects() {
        assert_eq!(
            reply(b"Location: /x/y?z=1\n\n"),
            Ok(Reply::Local(Uri::from_static("/x/y?z=1")))
        );
        assert_eq!(
            reply(b"Status: 200\r\nLocation: /a\r\n\r\n"),
            Ok(Reply::Local(Uri::from_static("/a")))
        );
    }

    #[test]
    fn errors() {
        use HeadError as E;
        #[rustfmt::skip]
        let table: &[(&[u8], HeadError)] = &[
            (b"\n", E::NoContentType),
            (b"X-Only: 1\n\n", E::NoContentType),
            (b"no colon here\n\n", E::Malformed("no colon here".into())),
            (b" folded first\n\n", E::Malformed(" folded first".into())),
            (b"Bad Name: x\n\n", E::InvalidField("Bad Name: x".into())),
            (b"X: a\x01b\n\n", E::InvalidField("X: a\u{1}b".into())),
            (b"Status: abc\n\n", E::BadStatus("abc".into())),
            (b"Status: 1000\n\n", E::BadStatus("1000".into())),
            (b"Status: 100 Continue\n\n", E::BadStatus("100 Continue".into())),
            (b"Status: 200\nStatus: 404\n\n", E::Duplicate("Status")),
            (b"Location: /a\nLocation: /b\n\n", E::Duplicate("Location")),
        ];
        for (input, err) in table {
            let got = parse(input).and_then(|p| p.expect("complete").0.reply());
            assert_eq!(
                got.as_ref().err(),
                Some(err),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn arrives_in_pieces_and_keeps_the_body_start() {
        let all = b"Content-Type: text/plain\r\nX: 1\r\n\r\nbody\nmore";
        for split in 0..all.len() {
            let mut p = HeadParser::new();
            let first = p.push(&all[..split]).unwrap();
            let (head, rest) = match first {
                Some(done) => {
                    // Complete only once the blank line is in.
                    assert!(split >= all.len() - 9, "{split}");
                    let mut rest = done.1;
                    rest.extend_from_slice(&all[split..]);
                    (done.0, rest)
                }
                None => p.push(&all[split..]).unwrap().expect("complete"),
            };
            assert_eq!(rest, b"body\nmore", "split at {split}");
            assert_eq!(head.headers.len(), 2);
        }
    }

    #[test]
    fn the_header_block_is_bounded() {
        let mut p = HeadParser::new();
        let line = format!("X-Pad: {}\n", "a".repeat(1000));
        let mut err = None;
        for _ in 0..100 {
            match p.push(line.as_bytes()) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("no blank line was sent"),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(err, Some(HeadError::TooLarge));
    }
}
