//! The request codec: bytes in, a validated head or a framing error out.
//! Pure: no sockets, no clocks, no allocation beyond the head it returns.
//!
//! httparse tokenises the head; everything that decides where a message ends
//! is ours and strict (RFC 9112 §6, §7), because a server that frames a
//! request differently from the proxy in front of it can be smuggled past
//! it: `Content-Length` is digits only and single-valued, `Transfer-Encoding`
//! must end in `chunked` and never comes with `Content-Length` or HTTP/1.0,
//! a bare LF or CR is an error rather than a line end, and chunk lines,
//! extensions and trailers are bounded.
//!
//! The request line and `Host` are held to RFC 9112 §3 and RFC 9110 §4 as
//! a strict origin server applies them: a malformed version or target is
//! 400, `HTTP/1.x` with a higher minor is served as 1.1 and any other
//! `HTTP/d.d` is 505; an absolute-form target's authority is validated
//! (no userinfo) and replaces `Host` (RFC 9112 §3.2.2), so that the handler
//! sees one authority; a number too large to represent is malformed (400),
//! not merely too large (413).
//!
//! [`parse_head`] is called again with more bytes after `Partial` (httparse
//! keeps no state); [`ChunkedDecoder`] is push-style and keeps its own.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

/// Codec limits (from [`crate::config::HttpConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// Longest head, request line included (431 beyond).
    pub max_head: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
    /// Largest body (413 beyond).
    pub max_body: u64,
}

/// The hard ceiling on `max_headers`.
pub const MAX_HEADERS_CEILING: usize = 1000;

/// Header slots [`validate`] keeps on the stack: as many as the default
/// `--max-headers` asks for. A larger limit gets its slots from the heap,
/// per head: a stack array for the ceiling (1000 slots, 32 KB) has every
/// page of it touched by the stack probe on each call, and a worker kept
/// those eight pages resident for good.
const STACK_HEADERS: usize = 100;

/// The longest method accepted. The longest registered one
/// (`UPDATEREDIRECTREF`) has 17 bytes; a longer token is refused with 501
/// as soon as it arrives, before the request line is complete.
pub const MAX_METHOD: usize = 32;

/// Why a request cannot be served. `conn` maps each to a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Syntax or framing is invalid (400). The text is for the log.
    Malformed(&'static str),
    /// The request line is longer than allowed (414).
    LineTooLong,
    /// The head has too many bytes or fields (431).
    HeadTooLarge,
    /// The body is larger than allowed (413).
    BodyTooLarge,
    /// A transfer coding we do not implement (501).
    UnknownCoding,
    /// A protocol version we do not speak (505).
    UnknownVersion,
    /// An expectation we cannot meet (417).
    Expectation,
    /// A method longer than any we implement (501, RFC 9112 §3).
    MethodTooLong,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct Head {
    /// The method (case-sensitive; `get` is not `GET`).
    pub method: Method,
    /// The request target (origin, absolute, authority or asterisk form).
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, duplicates kept in order.
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
}

/// The result of feeding bytes to [`parse_head`].
#[derive(Debug)]
pub enum Parsed {
    /// A whole head, and how many bytes it took.
    Complete(Box<Head>, usize),
    /// More bytes are needed.
    Partial,
}

/// Parse a request head from the start of `buf`.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Parsed, Error> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let skip = leading_empty_lines(buf)?;
    let rest = &buf[skip..];
    if method_too_long(rest) {
        return Err(Error::MethodTooLong);
    }
    match rest.iter().position(|&b| b == b'\n') {
        Some(eol) if eol > limits.max_request_line => return Err(Error::LineTooLong),
        None if rest.len() > limits.max_request_line => return Err(Error::LineTooLong),
        None => return Ok(Parsed::Partial),
        Some(_) => {}
    }
    let Some(end) = find_head_end(rest)? else {
        if rest.len() > limits.max_head {
            return Err(Error::HeadTooLarge);
        }
        return Ok(Parsed::Partial);
    };
    if end > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    let head_bytes = &rest[..end];
    let head = match validate(head_bytes, limits) {
        // RFC 9110 §2.5: a message of a minor version above ours is
        // processed as our highest minor; httparse knows only 1.0 and 1.1,
        // so it reads again a copy that says 1.1 (rare enough to allocate
        // for, and only looked for once httparse has refused the version).
        Err(Error::UnknownVersion) => match higher_minor(head_bytes) {
            Some(at) => validate(
                &[&head_bytes[..at], b"1", &head_bytes[at + 1..]].concat(),
                limits,
            )?,
            None => return Err(Error::UnknownVersion),
        },
        other => other?,
    };
    Ok(Parsed::Complete(head, skip + end))
}

/// Tokenise a complete head (CRLF line ends checked) with httparse and
/// apply our rules to what it found.
fn validate(head_bytes: &[u8], limits: &Limits) -> Result<Box<Head>, Error> {
    let end = head_bytes.len();
    let wanted = limits.max_headers.clamp(1, MAX_HEADERS_CEILING);
    let mut on_stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let slots = if wanted <= STACK_HEADERS {
        &mut on_stack[..wanted]
    } else {
        on_heap.resize_with(wanted, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head_bytes, slots) {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err(Error::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(head_bytes)),
        Err(httparse::Error::Token) => return Err(Error::Malformed("invalid method or target")),
        Err(httparse::Error::HeaderName) => return Err(Error::Malformed("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(Error::Malformed("invalid header value")),
        Err(_) => return Err(Error::Malformed("invalid request line")),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Error::Malformed("incomplete request line"));
    };
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| Error::Malformed("invalid method"))?;
    // One copy of the head, shared: the target and each field value below
    // are slices of it rather than allocations and copies of their own (as
    // hyper does). A value the application keeps keeps the buffer the head
    // was copied into (see `shared_head`).
    let shared = crate::buffers::shared_head(head_bytes);
    let within = |part: &[u8]| {
        let at = (part.as_ptr() as usize).wrapping_sub(head_bytes.as_ptr() as usize);
        match at.checked_add(part.len()) {
            Some(end) if end <= shared.len() => shared.slice(at..end),
            // Not a part of the head (httparse's slices always are).
            _ => Bytes::copy_from_slice(part),
        }
    };
    let uri = parse_target(&method, target, within(target.as_bytes()))?;

    let mut fields = Fields::default();
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Error::Malformed("invalid header name"))?;
        let value = crate::sys::parsed_field_value(within(h.value))
            .map_err(|_| Error::Malformed("invalid header value"))?;
        fields.note(&name, h.value)?;
        headers.append(name, value);
    }
    let framing = fields.framing(version, limits)?;
    if version == Version::HTTP_11 && fields.hosts == 0 {
        return Err(Error::Malformed("HTTP/1.1 request without Host"));
    }
    settle_host(&uri, &mut headers, fields.empty_host)?;
    let expect_continue = match fields.expect {
        None => false,
        Some(Expect::Continue) => version == Version::HTTP_11,
        Some(Expect::Other) => return Err(Error::Expectation),
    };
    let keep_alive = !fields.close && (version == Version::HTTP_11 || fields.keep_alive);
    Ok(Box::new(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// Make `Host` name the request's one authority. RFC 9112 §3.2.2: an
/// absolute-form target's authority wins over `Host`, which is replaced
/// (or added) so that nothing downstream can read another. RFC 9110
/// §4.2.1, RFC 9112 §3.3: without an authority in the target, `Host`
/// supplies it, and an http URI's host is never empty.
fn settle_host(uri: &Uri, headers: &mut HeaderMap, empty_host: bool) -> Result<(), Error> {
    match uri.authority() {
        Some(a) if uri.scheme().is_some() => {
            let host = HeaderValue::from_str(a.as_str())
                .map_err(|_| Error::Malformed("invalid target"))?;
            headers.insert(header::HOST, host);
            Ok(())
        }
        None if empty_host => Err(Error::Malformed("empty Host")),
        _ => Ok(()),
    }
}

/// RFC 9112 §3: a method longer than any we implement is 501, known as
/// soon as more token characters than [`MAX_METHOD`] have come.
fn method_too_long(line: &[u8]) -> bool {
    line.len() > MAX_METHOD && line[..=MAX_METHOD].iter().all(|&b| is_tchar(b))
}

/// `tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] by byte value: asked of every request's method, and of
/// each name in `Forwarded` and `Range`; one load instead of a search of
/// the fifteen symbols for every byte that is not a letter or digit.
const TCHAR: [bool; 256] = {
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = true;
        i += 1;
    }
    table
};

/// Where the minor digit of an `HTTP/1.x` request line with x above 1 is.
fn higher_minor(head: &[u8]) -> Option<usize> {
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = &head[..line_end];
    match line {
        [.., b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor]
            if (b'2'..=b'9').contains(minor) =>
        {
            Some(line_end - 1)
        }
        _ => None,
    }
}

/// Bytes of empty lines (CRLF) before the request line. A bare LF there is
/// an error like anywhere else in the head.
fn leading_empty_lines(buf: &[u8]) -> Result<usize, Error> {
    let mut i = 0;
    while i < buf.len() {
        match (buf[i], buf.get(i + 1)) {
            (b'\r', Some(b'\n')) => i += 2,
            (b'\r', None) => break,
            (b'\r', Some(_)) | (b'\n', _) => return Err(Error::Malformed("bare CR or LF")),
            _ => break,
        }
    }
    Ok(i)
}

/// The length of the head including its final CRLF CRLF, if complete.
///
/// Every LF must follow a CR (RFC 9112 §2.2 lets a recipient accept a bare
/// LF; we refuse it, because a front end that does not would see different
/// message boundaries): a bare LF is an error as soon as it arrives, and so
/// is a bare CR before a line's end (`\r\r\n`, which could never end the
/// head). A bare CR inside a line is httparse's to refuse.
fn find_head_end(buf: &[u8]) -> Result<Option<usize>, Error> {
    for nl in memchr::memchr_iter(b'\n', buf) {
        if nl == 0 || buf[nl - 1] != b'\r' || (nl >= 2 && buf[nl - 2] == b'\r') {
            return Err(Error::Malformed("bare CR or LF"));
        }
        if nl >= 3 && &buf[nl - 3..nl - 1] == b"\r\n" {
            return Ok(Some(nl + 1));
        }
    }
    Ok(None)
}

/// httparse reports any version other than 1.0 and 1.1 the same way, and a
/// target with a space in it as a bad version too. A request line of three
/// parts whose version is `HTTP/d.d` (RFC 9112 §2.3) is one we do not
/// speak (505); anything else is malformed (400): `HTTP/1`, `HTTP/01.1`,
/// `http/1.1`, or whitespace inside the target (RFC 9112 §3.2).
fn version_error(head: &[u8]) -> Error {
    let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
    let mut parts = head[..line_end].split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Error::Malformed("whitespace in request-target");
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Error::UnknownVersion
        }
        _ => Error::Malformed("invalid HTTP version"),
    }
}

/// The four forms of request-target (RFC 9112 §3.2), each only where it
/// belongs: `target` checked, and the URI made of `shared`, the same bytes.
fn parse_target(method: &Method, target: &str, shared: Bytes) -> Result<Uri, Error> {
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Malformed("invalid characters in target"));
    }
    if target.contains('#') {
        return Err(Error::Malformed("fragment in target"));
    }
    let form_ok = if target == "*" {
        method == Method::OPTIONS
    } else if target.starts_with('/') {
        true
    } else if method == Method::CONNECT {
        !target.contains('/')
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    };
    if !form_ok {
        return Err(Error::Malformed("request-target form not allowed here"));
    }
    if method == Method::CONNECT {
        // RFC 9112 §3.2.3: authority-form is `uri-host ":" port`.
        match authority::split(target.as_bytes()) {
            Some(a) if !a.host.is_empty() && a.port.is_some_and(|p| !p.is_empty()) => {}
            _ => return Err(Error::Malformed("invalid authority-form target")),
        }
    } else if let Some((_, rest)) = (!target.starts_with('/') && target != "*")
        .then(|| target.split_once("://"))
        .flatten()
    {
        // Absolute-form only: an origin-form target may carry "://" in its
        // path or query (`/go?to=http://user@host`), which is no authority.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let auth = &rest.as_bytes()[..end];
        if auth.contains(&b'@') {
            // RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs, and
            // a recipient should treat it as an error.
            return Err(Error::Malformed("userinfo in target"));
        }
        match authority::split(auth) {
            // RFC 9110 §4.2.1: an http URI with an empty host is invalid.
            Some(a) if !a.host.is_empty() => {}
            Some(_) => return Err(Error::Malformed("absolute target without host")),
            None => return Err(Error::Malformed("invalid authority in target")),
        }
    }
    Uri::from_maybe_shared(shared).map_err(|_| Error::Malformed("invalid target"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Continue,
    Other,
}

/// What the header fields say about framing and persistence.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    /// Codings listed by Transfer-Encoding, lower-cased, in order.
    codings: Vec<Box<str>>,
    transfer_encoding: bool,
    hosts: u32,
    /// `Host` names no host (an empty value, or only a port).
    empty_host: bool,
    close: bool,
    keep_alive: bool,
    expect: Option<Expect>,
}

impl Fields {
    fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<(), Error> {
        if name == header::CONTENT_LENGTH {
            for item in list_items(value) {
                let n = parse_length(item)?;
                match self.content_length {
                    Some(m) if m != n => {
                        return Err(Error::Malformed("conflicting Content-Length values"));
                    }
                    _ => self.content_length = Some(n),
                }
            }
            if self.content_length.is_none() {
                return Err(Error::Malformed("empty Content-Length"));
            }
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            for item in list_items(value) {
                let item = std::str::from_utf8(item)
                    .map_err(|_| Error::Malformed("invalid Transfer-Encoding"))?;
                self.codings
                    .push(item.to_ascii_lowercase().into_boxed_str());
            }
        } else if name == header::HOST {
            self.hosts += 1;
            if self.hosts > 1 {
                return Err(Error::Malformed("more than one Host"));
            }
            // RFC 9112 §3.2: an invalid Host value is 400.
            match authority::split(value) {
                Some(a) => self.empty_host = a.host.is_empty(),
                None => return Err(Error::Malformed("invalid Host")),
            }
        } else if name == header::CONNECTION {
            for item in list_items(value) {
                if item.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if item.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
            }
        } else if name == header::EXPECT {
            let e = if value.eq_ignore_ascii_case(b"100-continue") {
                Expect::Continue
            } else {
                Expect::Other
            };
            // Any expectation we cannot meet wins over one we can.
            if self.expect != Some(Expect::Other) {
                self.expect = Some(e);
            }
        }
        Ok(())
    }

    fn framing(&self, version: Version, limits: &Limits) -> Result<Framing, Error> {
        if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(Error::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if self.content_length.is_some() {
                return Err(Error::Malformed(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            let Some((last, before)) = self.codings.split_last() else {
                return Err(Error::Malformed("empty Transfer-Encoding"));
            };
            if &**last != "chunked" {
                return Err(Error::Malformed("chunked is not the final transfer coding"));
            }
            if before.iter().any(|c| &**c == "chunked") {
                return Err(Error::Malformed("chunked applied twice"));
            }
            if !before.is_empty() {
                return Err(Error::UnknownCoding);
            }
            return Ok(Framing::Chunked);
        }
        match self.content_length {
            Some(n) if n > limits.max_body => Err(Error::BodyTooLarge),
            Some(0) | None => Ok(Framing::None),
            Some(n) => Ok(Framing::Length(n)),
        }
    }
}

/// The non-empty elements of a comma-separated field value, trimmed of
/// optional whitespace (RFC 9110 §5.6.1).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|s| s.trim_ascii())
        .filter(|s| !s.is_empty())
}

/// `1*DIGIT`, nothing else: no sign, no hex, no spaces inside. A value
/// beyond 64 bits cannot be the length of anything: malformed (400), not
/// too large (413).
fn parse_length(s: &[u8]) -> Result<u64, Error> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(Error::Malformed("Content-Length is not a number"));
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Error::Malformed("Content-Length overflows"))
    })
}

/// Decodes a chunked body as bytes arrive, handing the data on and
/// validating every chunk line, extension and trailer on the way.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: Chunk,
    size: u64,
    total: u64,
    max_body: u64,
    /// Bytes of the current chunk-size or trailer line.
    line: usize,
    /// Bytes of extensions and trailers still allowed, for the whole body.
    meta_left: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    SizeStart,
    Size,
    /// Whitespace after the size: only a `;` may follow.
    SizeSpace,
    ExtName,
    ExtNameDone,
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    ExtValueDone,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Bytes a single chunk-size or trailer line may take.
const MAX_CHUNK_LINE: usize = 4096;

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` bytes whose chunk
    /// extensions and trailer fields together take at most `max_meta` bytes.
    pub fn new(max_body: u64, max_meta: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: Chunk::SizeStart,
            size: 0,
            total: 0,
            max_body,
            line: 0,
            meta_left: max_meta,
        }
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decoded body bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Consume bytes from `input`, passing chunk data to `data`. Returns how
    /// many bytes were consumed: all of them, or fewer once the body ends
    /// (what follows belongs to the next request).
    pub fn decode(&mut self, input: &[u8], data: &mut impl FnMut(&[u8])) -> Result<usize, Error> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            if self.state == Chunk::Data {
                let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(Error::Malformed("chunk line too long"));
            }
            self.state = self.step(b)?;
            if self.state.is_meta() {
                self.meta_left = self
                    .meta_left
                    .checked_sub(1)
                    .ok_or(Error::Malformed("too many chunk extensions or trailers"))?;
            }
            if matches!(self.state, Chunk::SizeStart | Chunk::TrailerStart) {
                self.line = 0;
            }
        }
        Ok(i)
    }

    fn step(&mut self, b: u8) -> Result<Chunk, Error> {
        use Chunk::*;
        const BAD: Error = Error::Malformed("invalid chunked encoding");
        let tchar = is_tchar;
        Ok(match (self.state, b) {
            (SizeStart | Size, b) if b.is_ascii_hexdigit() => {
                if self.size >> 60 != 0 {
                    // Beyond 64 bits: a malformed size, not a large one.
                    return Err(Error::Malformed("chunk size overflows"));
                }
                self.size = self.size << 4 | u64::from(hex_value(b));
                Size
            }
            (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
            (Size | SizeSpace | ExtValueDone | ExtNameDone, b';') => ExtName,
            (ExtName, b' ' | b'\t') => ExtName,
            (ExtName, b) if tchar(b) => ExtNameDone,
            (ExtNameDone, b) if tchar(b) => ExtNameDone,
            (ExtNameDone, b' ' | b'\t') => ExtNameDone,
            (ExtNameDone, b'=') => ExtValueStart,
            (ExtValueStart, b' ' | b'\t') => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtToken, b) if tchar(b) => ExtToken,
            (ExtToken, b' ' | b'\t') => ExtValueDone,
            (ExtToken, b';') => ExtName,
            (ExtQuoted, b'"') => ExtValueDone,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted, b) if b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f) => ExtQuoted,
            (ExtQuotedEscape, b) if b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f) => {
                ExtQuoted
            }
            (ExtValueDone, b' ' | b'\t') => ExtValueDone,
            (Size | ExtNameDone | ExtToken | ExtValueDone, b'\r') => SizeLf,
            (SizeLf, b'\n') => {
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.total = self
                        .total
                        .checked_add(self.size)
                        .ok_or(Error::BodyTooLarge)?;
                    if self.total > self.max_body {
                        return Err(Error::BodyTooLarge);
                    }
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerName, b) if tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b) if b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f) => {
                TrailerValue
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(BAD),
        })
    }
}

impl Chunk {
    /// States inside an extension or a trailer field.
    fn is_meta(self) -> bool {
        use Chunk::*;
        matches!(
            self,
            ExtName
                | ExtNameDone
                | ExtValueStart
                | ExtToken
                | ExtQuoted
                | ExtQuotedEscape
                | ExtValueDone
                | TrailerName
                | TrailerValue
        )
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

pub(crate) mod authority;
#[cfg(test)]
mod tests;
