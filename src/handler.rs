//! The public app API: a [`Handler`] turns an [`http::Request`] into an
//! [`http::Response`], using the `http` crate's types so that handlers read
//! like those of hyper, axum or tower.
//!
//! A handler runs inline in a worker's event loop once the whole request,
//! body included, has arrived; it returns a response whose [`Body`] is one
//! of three kinds: bytes in memory, regions of files (sent with sendfile,
//! never read into memory), or a stream read as the client accepts it (sent
//! chunked when its length is unknown). The engine alone frames the
//! response: `Content-Length`, `Transfer-Encoding`, `Connection` and `Date`
//! set by a handler are dropped.
//!
//! A panic in a handler becomes a 500 for that request; the worker and its
//! other connections carry on.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// A request as a handler sees it.
pub type Request = http::Request<RequestBody>;

/// A response as a handler returns it.
pub type Response = http::Response<Body>;

/// A short plain-text response for `status`: its code and reason phrase
/// (`404 Not Found`) as the body, `text/plain; charset=utf-8`. What the
/// engine itself answers errors with; handlers may use it too.
pub fn status_response(status: http::StatusCode) -> Response {
    let mut res = Response::new(Body::from(format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// An application: called once per request, in a worker process.
///
/// Any `FnMut(Request) -> Response` is a handler. Each worker has its own
/// copy (built before the fork and shared copy-on-write, or built in the
/// worker by [`crate::Server::serve_with`]), so `&mut self` needs no lock.
pub trait Handler {
    /// Answer one request.
    fn call(&mut self, req: Request) -> Response;

    /// An application command, sent with `spyglass ctl app NAME [ARGS...]`
    /// to every worker (or one): `Some(Ok(reply))`, `Some(Err(why))`, or
    /// `None` if this handler has no such command. It runs in the worker's
    /// event loop between events, so it must answer quickly and never
    /// block. Commands registered with [`crate::Server::command`] are
    /// tried first.
    fn command(&mut self, name: &str, args: &[String]) -> Option<Result<String, String>> {
        let _ = (name, args);
        None
    }

    /// The worker is stopping gracefully (a stop, an idle exit, a reload,
    /// recycling) and has answered its last request: flush what is
    /// buffered, close pools. Not called when a worker is killed.
    fn stop(&mut self) {}
}

impl<F: FnMut(Request) -> Response> Handler for F {
    fn call(&mut self, req: Request) -> Response {
        self(req)
    }
}

/// An application command's implementation (see [`crate::Server::command`]).
pub type CommandFn = Box<dyn FnMut(&[String]) -> Result<String, String>>;

/// Application commands by name, registered before the fork; each worker
/// runs its own copy.
#[derive(Default)]
pub struct Commands {
    list: Vec<(String, CommandFn)>,
}

impl Commands {
    /// Register `name` (a later registration of the same name replaces an
    /// earlier one).
    pub fn add(&mut self, name: &str, f: CommandFn) {
        self.list.retain(|(n, _)| n != name);
        self.list.push((name.to_owned(), f));
    }

    /// Run `name` if registered.
    pub fn run(&mut self, name: &str, args: &[String]) -> Option<Result<String, String>> {
        self.list
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f(args))
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|(n, _)| n.as_str())
    }
}

/// Which worker a per-worker init hook runs in.
#[derive(Clone, Copy, Debug)]
pub struct WorkerInfo {
    /// 0-based slot of this worker (stable across respawns of that slot).
    pub index: usize,
    /// Its process id.
    pub pid: u32,
}

/// Facts about the connection a request arrived on; every request carries
/// one in its extensions (`req.extensions().get::<ConnInfo>()`).
///
/// Behind a proxy, [`ConnInfo::peer`] is the client the proxy speaks for:
/// the address a PROXY protocol header carried (`--proxy-protocol`), then,
/// if that peer is a `--trusted-proxy`, the client its forwarding headers
/// name ([`crate::forwarded`]). [`ConnInfo::socket_peer`] is always the
/// other end of the socket itself.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client: the socket's peer, or whom a PROXY header or a trusted
    /// proxy says it speaks for.
    pub peer: Peer,
    /// The other end of the socket (the proxy, when one is in front).
    pub socket_peer: Peer,
    /// The client used `https`: a trusted proxy said so
    /// (`X-Forwarded-Proto`, `Forwarded: proto=`), or the PROXY header's
    /// SSL TLV did. spyglass itself speaks plain HTTP.
    pub https: bool,
    /// The local TCP port the connection came in on, if TCP.
    pub local_port: Option<u16>,
    /// The listener's name (`FileDescriptorName=`, `--listen NAME=ADDR`,
    /// or its address).
    pub listener: Arc<str>,
}

impl ConnInfo {
    /// Facts about a connection from `peer` on `listener`, before any
    /// proxy has spoken.
    pub fn new(peer: Peer, local_port: Option<u16>, listener: Arc<str>) -> ConnInfo {
        ConnInfo {
            socket_peer: peer.clone(),
            peer,
            https: false,
            local_port,
            listener,
        }
    }

    /// `https` or `http`: the scheme the client used.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// A client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A client known by its address alone (a proxy's `X-Forwarded-For`
    /// names no port).
    Ip(IpAddr),
    /// A client on a Unix socket.
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "{a}"),
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A request body, complete: small ones in memory, large ones in an
/// unlinked temporary file. Read it with [`std::io::Read`].
pub struct RequestBody {
    inner: Stored,
    len: u64,
}

enum Stored {
    Memory(io::Cursor<Vec<u8>>),
    File(io::BufReader<File>),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> RequestBody {
        RequestBody::from_vec(Vec::new())
    }

    /// A body held in memory.
    pub fn from_vec(v: Vec<u8>) -> RequestBody {
        RequestBody {
            len: v.len() as u64,
            inner: Stored::Memory(io::Cursor::new(v)),
        }
    }

    /// A body stored in `file` (positioned at its start), `len` bytes long.
    pub(crate) fn from_file(file: File, len: u64) -> RequestBody {
        RequestBody {
            inner: Stored::File(io::BufReader::new(file)),
            len,
        }
    }

    /// Its length in bytes (chunked bodies included, once de-chunked).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the request had no body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole body in memory (reads a spilled body back from its file).
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self.inner {
            Stored::Memory(c) => Ok(c.into_inner()),
            Stored::File(mut f) => {
                let mut v = Vec::with_capacity(self.len as usize);
                f.read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }
}

impl Read for RequestBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Stored::Memory(c) => c.read(buf),
            Stored::File(f) => f.read(buf),
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("len", &self.len)
            .finish()
    }
}

/// A source of response bytes produced while the response is being sent:
/// a pipe from a CGI script, a generator, a reader.
///
/// The engine calls [`Source::read`] only when the client has taken the
/// previous bytes, so a slow client never makes the worker buffer the whole
/// body. A source with a descriptor ([`Source::fd`]) may return
/// [`io::ErrorKind::WouldBlock`]; the engine then waits until the
/// descriptor is readable, serving other connections meanwhile. A source
/// without one is read as a blocking reader.
pub trait Source {
    /// Read the next bytes into `buf`; `Ok(0)` ends the body.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// A descriptor that turns readable when `read` can make progress.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// A time by which the body must be complete; past it the engine drops
    /// the source and closes the connection (the client sees a truncated
    /// body, never a complete-looking one).
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// A response whose head is not known yet: a CGI script that has not
/// printed its headers, say. Return it as `Response::new(Body::pending(p))`;
/// the engine serves other connections until [`Pending::fd`] turns
/// readable, then calls [`Pending::poll`], and sends the response it yields
/// in place of the one that carried it. Past [`Pending::deadline`] the
/// engine answers 504 and drops it; an error from `poll` answers 502.
pub trait Pending {
    /// Make progress; `Ok(Some(response))` once the head is known.
    fn poll(&mut self) -> io::Result<Option<Response>>;

    /// A descriptor that turns readable when `poll` can make progress.
    fn fd(&self) -> BorrowedFd<'_>;

    /// When to give up.
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// Put this in a response's extensions to have the engine answer instead
/// with what the handler returns for a `GET` of `uri` (a CGI local
/// redirect, RFC 3875 §6.2.2). At most 10 hops; more is a 500.
#[derive(Clone, Debug)]
pub struct InternalRedirect {
    /// Where to: a path and query.
    pub uri: http::Uri,
    /// The headers of the new request.
    pub headers: http::HeaderMap,
}

struct ReadSource<R>(R);

impl<R: Read> Source for ReadSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A piece of a body made of parts.
pub enum Part {
    /// Bytes in memory.
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, sent with sendfile.
    File {
        /// The file (shared by several parts of one body, e.g. byte ranges).
        file: Rc<File>,
        /// Where the region starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        }
    }
}

/// A response body.
pub struct Body {
    pub(crate) kind: BodyKind,
}

pub(crate) enum BodyKind {
    /// One run of bytes or one file region (the usual body): no queue to
    /// allocate for it.
    One(Part),
    /// Bytes and file regions, total length known.
    Parts(VecDeque<Part>, u64),
    /// Produced on demand; length known or not.
    Stream(Box<dyn Source>, Option<u64>),
    /// The whole response is still to come.
    Pending(Box<dyn Pending>),
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body {
            kind: BodyKind::Parts(VecDeque::new(), 0),
        }
    }

    /// Bytes in memory.
    pub fn bytes(b: impl Into<Bytes>) -> Body {
        Body::from_parts([Part::Bytes(b.into())])
    }

    /// A whole file, sent with sendfile from its current length.
    pub fn file(file: File) -> io::Result<Body> {
        let len = file.metadata()?.len();
        Ok(Body::file_region(Rc::new(file), 0, len))
    }

    /// `len` bytes of `file` starting at `offset`.
    pub fn file_region(file: Rc<File>, offset: u64, len: u64) -> Body {
        Body::from_parts([Part::File { file, offset, len }])
    }

    /// Bytes and file regions, sent in order.
    pub fn from_parts(parts: impl IntoIterator<Item = Part>) -> Body {
        let mut parts = parts.into_iter().filter(|p| p.len() > 0);
        let Some(first) = parts.next() else {
            return Body::empty();
        };
        let Some(second) = parts.next() else {
            return Body {
                kind: BodyKind::One(first),
            };
        };
        let parts: VecDeque<Part> = [first, second].into_iter().chain(parts).collect();
        let total = parts.iter().map(Part::len).sum();
        Body {
            kind: BodyKind::Parts(parts, total),
        }
    }

    /// A blocking reader, read as the client takes the bytes; `len` if
    /// known (else the body is sent chunked, or close-delimited to
    /// HTTP/1.0 clients). It must yield exactly `len` bytes when given.
    pub fn reader(r: impl Read + 'static, len: Option<u64>) -> Body {
        Body::stream(ReadSource(r), len)
    }

    /// A [`Source`], read as the client takes the bytes; `len` as for
    /// [`Body::reader`].
    pub fn stream(s: impl Source + 'static, len: Option<u64>) -> Body {
        Body {
            kind: BodyKind::Stream(Box::new(s), len),
        }
    }

    /// A response still to come; see [`Pending`].
    pub fn pending(p: impl Pending + 'static) -> Body {
        Body {
            kind: BodyKind::Pending(Box::new(p)),
        }
    }

    /// The length, when known before sending.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::One(p) => Some(p.len()),
            BodyKind::Parts(_, n) => Some(*n),
            BodyKind::Stream(_, n) => *n,
            BodyKind::Pending(_) => None,
        }
    }

    /// True for a body known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::One(p) => write!(f, "Body(1 part, {} bytes)", p.len()),
            BodyKind::Parts(p, n) => write!(f, "Body({} parts, {n} bytes)", p.len()),
            BodyKind::Stream(_, n) => write!(f, "Body(stream, {n:?} bytes)"),
            BodyKind::Pending(_) => f.write_str("Body(pending)"),
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::bytes(Bytes::from_static(s))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::bytes(s)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::bytes(v)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::bytes(b)
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}
