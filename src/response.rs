//! The response writer: the one place that decides how a response is framed
//! and writes the status line, `Date`, `Content-Length` or
//! `Transfer-Encoding: chunked`, and `Connection`.
//!
//! Handlers cannot set framing: the headers listed in [`ENGINE_OWNED`] are
//! dropped from what they return. HEAD, 1xx, 204 and 304 responses carry no
//! body; a body of unknown length goes chunked to HTTP/1.1 clients and
//! close-delimited to HTTP/1.0 ones.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName};
use http::{StatusCode, Version};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use crate::handler::{Body, BodyKind, Part, Source};

/// Headers only the engine may set (framing, persistence, hop-by-hop).
pub const ENGINE_OWNED: [HeaderName; 8] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::DATE,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// Whether `name` is in [`ENGINE_OWNED`], asked of every header of every
/// response: by name, which the compiler turns into a switch on the length
/// and one comparison, where a search of the list compares with each of
/// the eight in turn.
pub fn is_engine_owned(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "date"
            | "te"
            | "trailer"
            | "upgrade"
            | "keep-alive"
    )
}

/// How the body of a response is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304); a `Content-Length` may
    /// still describe the body a GET would have had.
    NoBody { content_length: Option<u64> },
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No length: the body ends when the connection closes (HTTP/1.0).
    UntilClose,
}

/// The framing decision for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub framing: Framing,
    /// Keep the connection open after this response.
    pub keep_alive: bool,
}

impl Plan {
    /// Decide framing for a response with `status` and a body of `len`
    /// (None: unknown) to a request with `version`, `head` (HEAD method)
    /// and `keep_alive` (what the client asked for, and the server allows).
    pub fn new(
        status: StatusCode,
        len: Option<u64>,
        version: Version,
        head: bool,
        keep_alive: bool,
    ) -> Plan {
        let no_body = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let framing = if no_body {
            Framing::NoBody {
                content_length: None,
            }
        } else if head {
            Framing::NoBody {
                content_length: len,
            }
        } else {
            match len {
                Some(n) => Framing::Length(n),
                None if version == Version::HTTP_11 => Framing::Chunked,
                None => Framing::UntilClose,
            }
        };
        Plan {
            framing,
            keep_alive: keep_alive && framing != Framing::UntilClose,
        }
    }
}

/// Serialise the head of a response into `out`.
pub fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    plan: Plan,
    request_version: Version,
    date: &[u8],
) {
    // One allocation for the whole head, nearly always.
    out.reserve(192 + headers.len() * 48);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if is_engine_owned(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match plan.framing {
        Framing::Length(n)
        | Framing::NoBody {
            content_length: Some(n),
        } => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::NoBody {
            content_length: None,
        }
        | Framing::UntilClose => {}
    }
    if !plan.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if request_version == Version::HTTP_10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The interim response sent before reading a body the client is waiting
/// to send (`Expect: 100-continue`).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The line that starts a chunk of `len` bytes.
pub fn chunk_start(len: usize, out: &mut Vec<u8>) {
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A response on its way out: buffered bytes (the head, small bodies, chunk
/// framing), then body parts (bytes by writev, file regions by sendfile) or
/// a stream read only as fast as the client takes it.
pub struct Output {
    buf: Vec<u8>,
    pos: usize,
    parts: VecDeque<Part>,
    /// Bytes of the front part already sent.
    part_off: u64,
    stream: Option<Stream>,
    body_sent: u64,
}

struct Stream {
    src: Box<dyn Source>,
    chunked: bool,
    /// Bytes still owed when the length was announced.
    left: Option<u64>,
    done: bool,
}

/// What [`Output::flush`] achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything is sent.
    Done,
    /// The socket is full: wait until it is writable.
    Blocked,
    /// The stream has nothing yet: wait until its descriptor is readable.
    WaitSource,
}

/// Bodies smaller than this are copied next to the head: one write.
const COALESCE: usize = 16 * 1024;
/// The most bytes read from a stream at a time.
const STREAM_PIECE: usize = 16 * 1024;
/// At most this many iovecs per writev.
const MAX_IOV: usize = 8;
/// A head is held back (MSG_MORE) to share its segment with a file region
/// this long or shorter. For longer files the saving is nil, and holding
/// the head made a 1 MiB sendfile cost 3-5x the CPU on a kernel pacing
/// TCP itself (BBR without the fq qdisc): measured, bench/run --static.
const CORK_FILE_MAX: u64 = 64 * 1024;

impl Output {
    pub fn new() -> Output {
        Output {
            buf: crate::buffers::output_buffer(),
            pos: 0,
            parts: VecDeque::new(),
            part_off: 0,
            stream: None,
            body_sent: 0,
        }
    }

    /// Nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && self.parts.is_empty() && self.stream.is_none()
    }

    /// Where a head is serialised, after anything already queued (a 100
    /// Continue, say).
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Queue `body`, framed as `framing` says (call after the head).
    pub fn set_body(&mut self, body: Body, framing: Framing) {
        self.body_sent = 0;
        if matches!(framing, Framing::NoBody { .. }) {
            return;
        }
        match body.kind {
            BodyKind::One(Part::Bytes(b)) if b.len() <= COALESCE => {
                self.buf.extend_from_slice(&b);
                self.body_sent += b.len() as u64;
            }
            BodyKind::One(part) => {
                // As for several parts below, but the queue (empty after the
                // last response) keeps its capacity: nothing to allocate.
                self.parts.clear();
                self.parts.push_back(part);
                self.part_off = 0;
            }
            BodyKind::Parts(mut parts, total) => {
                if total as usize <= COALESCE {
                    while let Some(Part::Bytes(b)) = parts.front() {
                        self.buf.extend_from_slice(b);
                        self.body_sent += b.len() as u64;
                        parts.pop_front();
                    }
                }
                self.parts = parts;
                self.part_off = 0;
            }
            // The engine resolves pending bodies before sending; one that
            // reaches the writer sends nothing.
            BodyKind::Pending(_) => {}
            BodyKind::Stream(src, len) => {
                self.stream = Some(Stream {
                    src,
                    chunked: framing == Framing::Chunked,
                    left: len,
                    done: len == Some(0),
                });
            }
        }
    }

    /// Drop whatever is still queued (the connection is being closed).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.parts.clear();
        self.stream = None;
    }

    /// Body bytes handed on so far (for the access log).
    pub fn body_sent(&self) -> u64 {
        self.body_sent
    }

    /// The stream's descriptor, while waiting on it.
    pub fn source_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().and_then(|s| s.src.fd())
    }

    /// When the stream must be complete, if it says.
    pub fn source_deadline(&self) -> Option<Instant> {
        self.stream.as_ref().and_then(|s| s.src.deadline())
    }

    /// Send as much as the socket takes. `last`: the connection is closed
    /// (or shut for writing) as soon as this output is sent, so its final
    /// bytes are held back for the FIN to ride in the same segment.
    pub fn flush(&mut self, sock: BorrowedFd<'_>, last: bool) -> io::Result<Flush> {
        loop {
            let front_is_bytes = matches!(self.parts.front(), Some(Part::Bytes(_)));
            if self.pos < self.buf.len() || front_is_bytes {
                match self.write_buffered(sock, last)? {
                    Some(_) => continue,
                    None => return Ok(Flush::Blocked),
                }
            }
            if matches!(self.parts.front(), Some(Part::File { .. })) {
                match self.send_file_part(sock)? {
                    true => continue,
                    false => return Ok(Flush::Blocked),
                }
            }
            let Some(stream) = &mut self.stream else {
                self.buf.clear();
                self.pos = 0;
                return Ok(Flush::Done);
            };
            if stream.done {
                self.stream = None;
                continue;
            }
            if let Some(wait) = self.fill_from_stream()? {
                return Ok(wait);
            }
        }
    }

    /// One sendfile of the front part, a file region; false when the
    /// socket is full.
    fn send_file_part(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        let Some(Part::File { file, offset, len }) = self.parts.front() else {
            return Ok(true);
        };
        let mut off = i64::try_from(offset + self.part_off).map_err(io::Error::other)?;
        let count = usize::try_from(len - self.part_off)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let n = match nix::sys::sendfile::sendfile(sock, file.as_fd(), Some(&mut off), count) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return Ok(false),
            Err(Errno::EINTR) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        self.part_off += n as u64;
        self.body_sent += n as u64;
        if self.part_off == *len {
            self.parts.pop_front();
            self.part_off = 0;
        }
        Ok(true)
    }

    /// Refill the (sent, hence empty) buffer with the stream's next piece,
    /// framed as a chunk when chunked, or the last chunk at its end.
    /// `Some(WaitSource)` when the stream has nothing now.
    fn fill_from_stream(&mut self) -> io::Result<Option<Flush>> {
        let Some(stream) = &mut self.stream else {
            return Ok(None);
        };
        self.buf.clear();
        self.pos = 0;
        let want = stream
            .left
            .map_or(STREAM_PIECE, |l| l.min(STREAM_PIECE as u64) as usize);
        let mut piece = [0u8; STREAM_PIECE];
        match stream.src.read(&mut piece[..want]) {
            Ok(0) => {
                if stream.left.is_some_and(|l| l > 0) {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body shorter than its length",
                    ));
                }
                if stream.chunked {
                    self.buf.extend_from_slice(LAST_CHUNK);
                }
                stream.done = true;
            }
            Ok(n) => {
                let n = n.min(want);
                if stream.chunked {
                    chunk_start(n, &mut self.buf);
                    self.buf.extend_from_slice(&piece[..n]);
                    self.buf.extend_from_slice(b"\r\n");
                } else {
                    self.buf.extend_from_slice(&piece[..n]);
                }
                self.body_sent += n as u64;
                if let Some(l) = &mut stream.left {
                    *l -= n as u64;
                    stream.done = *l == 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && stream.src.fd().is_some() => {
                return Ok(Some(Flush::WaitSource));
            }
            Err(e) => return Err(e),
        }
        Ok(None)
    }

    /// One write of the buffer and leading byte parts: a writev, or a send
    /// with MSG_MORE when a small file follows (the head rides in the same
    /// segment as the file) or when these bytes end the output of a `last`
    /// response (the close that follows sends them with the FIN: one segment
    /// fewer per connection). `None` when the socket is full.
    fn write_buffered(&mut self, sock: BorrowedFd<'_>, last: bool) -> io::Result<Option<usize>> {
        let pending = &self.buf[self.pos..];
        let small_file_next = matches!(
            self.parts.front(),
            Some(Part::File { len, .. }) if *len <= CORK_FILE_MAX
        );
        let ends_output = last && self.stream.is_none() && self.parts.is_empty();
        let result = if small_file_next || ends_output {
            nix::sys::socket::send(
                sock.as_raw_fd(),
                pending,
                MsgFlags::from_bits_retain(libc::MSG_MORE),
            )
        } else {
            let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            if !pending.is_empty() {
                iov[0] = IoSlice::new(pending);
                n = 1;
            }
            for (i, part) in self.parts.iter().enumerate() {
                let Part::Bytes(b) = part else { break };
                if n == MAX_IOV {
                    break;
                }
                let skip = if i == 0 { self.part_off as usize } else { 0 };
                iov[n] = IoSlice::new(&b[skip..]);
                n += 1;
            }
            nix::sys::uio::writev(sock, &iov[..n])
        };
        let mut written = match result {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => return Ok(Some(0)),
            Err(e) => return Err(e.into()),
        };
        let total = written;
        let from_buf = written.min(self.buf.len() - self.pos);
        self.pos += from_buf;
        written -= from_buf;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        while written > 0 {
            let Some(Part::Bytes(b)) = self.parts.front() else {
                break;
            };
            let left = b.len() - self.part_off as usize;
            let take = written.min(left);
            self.part_off += take as u64;
            self.body_sent += take as u64;
            written -= take;
            if take == left {
                self.parts.pop_front();
                self.part_off = 0;
            }
        }
        Ok(Some(total))
    }
}

impl Default for Output {
    fn default() -> Self {
        Output::new()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        crate::buffers::return_output_buffer(std::mem::take(&mut self.buf));
    }
}

/// `Date:` values, formatted once per second.
pub struct DateCache {
    second: u64,
    value: String,
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            second: u64::MAX,
            value: String::new(),
        }
    }

    /// The IMF-fixdate for now.
    pub fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.value = httpdate::fmt_http_date(now);
        }
        self.value.as_bytes()
    }
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The fast check and the list agree: every name in the list, and no
    /// other among the standard headers `http` knows and a few of our own
    /// (case does not matter: header names are lower-cased on parsing).
    #[test]
    fn engine_owned_by_name_matches_the_list() {
        for name in &ENGINE_OWNED {
            assert!(is_engine_owned(name), "{name}");
        }
        let others = [
            "content-type",
            "content-encoding",
            "content-range",
            "content-location",
            "transfer",
            "connect",
            "dates",
            "t",
            "tes",
            "trailers",
            "upgrade-insecure-requests",
            "keep-alive2",
            "x-keep-alive",
            "set-cookie",
            "location",
            "etag",
            "server",
            "proxy-connection",
            "host",
            "age",
            "via",
            "vary",
            "link",
        ];
        for other in others {
            let name = HeaderName::from_static(other);
            assert!(!is_engine_owned(&name), "{other}");
            assert!(!ENGINE_OWNED.contains(&name), "{other}");
        }
        for spelled in ["Content-Length", "KEEP-ALIVE", "Te", "DATE"] {
            let name = HeaderName::from_bytes(spelled.as_bytes()).unwrap();
            assert!(is_engine_owned(&name), "{spelled}");
        }
    }

    fn head(
        status: u16,
        len: Option<u64>,
        version: Version,
        is_head: bool,
        ka: bool,
        h: &HeaderMap,
    ) -> String {
        let status = StatusCode::from_u16(status).unwrap();
        let plan = Plan::new(status, len, version, is_head, ka);
        let mut out = Vec::new();
        write_head(
            &mut out,
            status,
            h,
            plan,
            version,
            b"Thu, 01 Jan 1970 00:00:00 GMT",
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn framing_table() {
        use Framing::*;
        let v11 = Version::HTTP_11;
        let v10 = Version::HTTP_10;
        let cases = [
            // status, len, version, HEAD, keep-alive => framing, keep-alive
            (200, Some(5), v11, false, true, Length(5), true),
            (200, None, v11, false, true, Chunked, true),
            (200, None, v10, false, true, UntilClose, false),
            (
                200,
                Some(5),
                v11,
                true,
                true,
                NoBody {
                    content_length: Some(5),
                },
                true,
            ),
            (
                200,
                None,
                v11,
                true,
                true,
                NoBody {
                    content_length: None,
                },
                true,
            ),
            (
                204,
                Some(5),
                v11,
                false,
                true,
                NoBody {
                    content_length: None,
                },
                true,
            ),
            (
                304,
                Some(5),
                v11,
                false,
                true,
                NoBody {
                    content_length: None,
                },
                true,
            ),
            (404, Some(5), v11, false, false, Length(5), false),
        ];
        for (status, len, version, is_head, ka, framing, keep) in cases {
            let plan = Plan::new(
                StatusCode::from_u16(status).unwrap(),
                len,
                version,
                is_head,
                ka,
            );
            assert_eq!(
                (plan.framing, plan.keep_alive),
                (framing, keep),
                "{status} {len:?} {version:?} {is_head}"
            );
        }
    }

    #[test]
    fn handlers_cannot_set_framing() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::DATE, HeaderValue::from_static("yesterday"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let s = head(200, Some(2), Version::HTTP_11, false, false, &h);
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-type: text/plain\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http10_keep_alive_is_explicit() {
        let s = head(
            200,
            Some(0),
            Version::HTTP_10,
            false,
            true,
            &HeaderMap::new(),
        );
        assert!(
            s.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            "{s}"
        );
        let s = head(599, None, Version::HTTP_11, false, true, &HeaderMap::new());
        assert!(s.starts_with("HTTP/1.1 599 \r\n"), "{s}");
    }
}
