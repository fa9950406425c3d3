//! One connection's life, as a state machine driven by readiness events:
//! read a head, read its body, call the handler, write the response, then
//! keep the connection for the next request or close it.
//!
//! This is the one place where errors become status codes
//! ([`Failure::status`]) and where access events are logged. Everything is
//! non-blocking: a client that sends slowly, or reads slowly, costs its
//! buffers and nothing else; the worker serves others meanwhile.
//!
//! Behind a proxy, a connection may first have to bring a PROXY protocol
//! header ([`crate::proxy_protocol`]), before its first request and within
//! [`PROXY_HEADER_TIMEOUT_MS`] (or `--header-timeout`, if shorter). One
//! without a valid header is closed unanswered: its peer is not speaking
//! HTTP to us. Each request's client is then settled once, from the
//! connection's facts and, for a trusted proxy, its forwarding headers
//! ([`crate::forwarded`]).
//!
//! Knows nothing of epoll or the master: the worker asks it to [`Conn::drive`]
//! on readiness and to [`Conn::expire`] on its deadline, and registers
//! whatever it [`Wants`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use http::{Method, StatusCode, Uri, Version};
use nix::sys::socket::{Shutdown, shutdown};

use crate::buffers::{BodyStore, InBuf};
use crate::config::HttpConfig;
use crate::handler::{
    Body, BodyKind, ConnInfo, Handler, InternalRedirect, Peer, Pending, Request, RequestBody,
    Response, status_response,
};
use crate::proxy_protocol::{self, Source};
use crate::request::{self, ChunkedDecoder, Framing as BodyFraming, Head, Limits, Parsed};
use crate::response::{self, DateCache, Flush, Output, Plan};
use crate::scoreboard::now_ms;

/// What the worker shares with every connection for one call.
pub struct Ctx<'a> {
    pub handler: &'a mut dyn Handler,
    pub cfg: &'a HttpConfig,
    pub limits: Limits,
    pub date: &'a mut DateCache,
    pub now_ms: u64,
    pub access_log: bool,
    pub pid: u32,
    /// The worker's running totals, which its loop publishes.
    pub tally: &'a mut Tally,
    /// The worker is stopping: finish what is in flight, keep nothing open.
    pub stopping: bool,
}

/// What a worker's connections have done, counted here and published by the
/// worker's loop (the scoreboard's one writer).
#[derive(Debug, Default)]
pub struct Tally {
    /// Responses sent in full.
    pub served: u64,
    /// Of which by status class, 1xx to 5xx.
    pub by_class: [u64; 5],
    /// Response body bytes sent.
    pub bytes: u64,
    /// Monotonic ms of the last accept, finished response or close.
    pub last_active: u64,
}

/// What a connection waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    Read,
    Write,
    ReadWrite,
    /// The response stream's descriptor to turn readable.
    Source,
    Close,
}

/// How long a lingering close waits for the client's FIN, and how much it
/// reads meanwhile.
const LINGER_MS: u64 = 2000;
const LINGER_BYTES: usize = 1 << 20;
/// Internal redirects followed for one request at most.
const MAX_REDIRECTS: u8 = 10;
/// How long a connection to a PROXY protocol listener may take to bring
/// its header (or `--header-timeout`, if shorter). A proxy writes it as
/// soon as it connects, in the same segment as the request more often
/// than not; whoever is slower than this is not our proxy, and a silent
/// scanner should not hold a connection slot for the full header timeout.
pub const PROXY_HEADER_TIMEOUT_MS: u64 = 5000;

enum State {
    /// Waiting for the PROXY protocol header, before anything else.
    Proxy,
    /// Waiting for the first byte of a request.
    Idle,
    /// Part of a request head has arrived.
    Head,
    /// Receiving a request body.
    Body(Box<Incoming>),
    /// The handler answered with a response still to come.
    Waiting(Box<dyn Pending>, u8),
    /// Writing a response.
    Sending,
    /// Response sent and our side shut down; draining the client's input so
    /// that closing does not reset the connection under the response.
    Linger,
}

/// A request whose body is arriving.
struct Incoming {
    head: Box<Head>,
    store: BodyStore,
    left: Left,
}

enum Left {
    Bytes(u64),
    Chunked(ChunkedDecoder),
}

/// Why a request fails before or outside the handler.
#[derive(Debug)]
enum Failure {
    Codec(request::Error),
    Timeout,
    Panic,
    Storage(io::Error),
    /// A pending response failed (a CGI script without a valid head).
    BadGateway(io::Error),
    /// A pending response did not come in time.
    GatewayTimeout,
    /// Internal redirects went round too often.
    RedirectLoop,
    /// The handler answered with an interim (1xx) status, which is not an
    /// answer.
    Interim(StatusCode),
}

impl Failure {
    /// The one mapping from errors to status codes.
    fn status(&self) -> StatusCode {
        use request::Error as E;
        match self {
            Failure::Codec(E::Malformed(_)) => StatusCode::BAD_REQUEST,
            Failure::Codec(E::LineTooLong) => StatusCode::URI_TOO_LONG,
            Failure::Codec(E::HeadTooLarge) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::Codec(E::BodyTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Codec(E::UnknownCoding | E::MethodTooLong) => StatusCode::NOT_IMPLEMENTED,
            Failure::Codec(E::UnknownVersion) => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Failure::Codec(E::Expectation) => StatusCode::EXPECTATION_FAILED,
            Failure::Timeout => StatusCode::REQUEST_TIMEOUT,
            Failure::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Failure::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Panic | Failure::Storage(_) | Failure::RedirectLoop | Failure::Interim(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The request being answered, for the handler and the access log.
struct Exchange {
    /// Its client, as the connection and a trusted proxy say.
    info: ConnInfo,
    method: Option<Method>,
    uri: Option<Uri>,
    version: Version,
    head_only: bool,
    status: StatusCode,
    started: Instant,
}

/// One client connection.
pub struct Conn {
    sock: OwnedFd,
    info: ConnInfo,
    input: InBuf,
    state: State,
    out: Output,
    exchange: Option<Exchange>,
    /// Requests answered on this connection.
    served: u64,
    /// Keep the connection open after the current exchange.
    keep_alive: bool,
    /// Monotonic ms after which [`Conn::expire`] is due.
    pub deadline: u64,
    lingered: usize,
    /// Drain the client's input before closing (after an error response,
    /// when unread bytes may follow).
    linger_on_close: bool,
}

impl Conn {
    /// A newly accepted connection; `proxy_header` when its listener
    /// expects a PROXY protocol header first.
    pub fn new(
        sock: OwnedFd,
        info: ConnInfo,
        cfg: &HttpConfig,
        now_ms: u64,
        proxy_header: bool,
    ) -> Conn {
        let (state, wait) = if proxy_header {
            let wait = ms(cfg.header_timeout).min(PROXY_HEADER_TIMEOUT_MS);
            (State::Proxy, wait)
        } else {
            (State::Idle, ms(cfg.header_timeout))
        };
        Conn {
            sock,
            info,
            input: InBuf::new(),
            state,
            out: Output::new(),
            exchange: None,
            served: 0,
            keep_alive: true,
            deadline: now_ms + wait,
            lingered: 0,
            linger_on_close: false,
        }
    }

    pub fn sock(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The descriptor a pending response or a response stream waits on.
    pub fn source_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.state {
            State::Waiting(p, _) => Some(p.fd()),
            _ => self.out.source_fd(),
        }
    }

    /// Work is in progress: a new connection's first request, or any
    /// request from its first byte until its response is sent. An idle
    /// keep-alive connection is not busy (and does not keep the server
    /// from its idle exit).
    pub fn busy(&self) -> bool {
        match self.state {
            State::Proxy => true,
            State::Idle => self.served == 0,
            State::Head | State::Body(_) | State::Waiting(..) | State::Sending => true,
            State::Linger => false,
        }
    }

    /// Make progress until blocked.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Wants {
        loop {
            let step = match self.state {
                State::Proxy => self.read_proxy(ctx),
                State::Idle | State::Head => self.read_head(ctx),
                State::Body(_) => self.read_body(ctx),
                State::Waiting(..) => self.poll_pending(ctx),
                State::Sending => self.send(ctx),
                State::Linger => self.linger(),
            };
            match step {
                Step::Again => continue,
                Step::Wait(w) => return w,
            }
        }
    }

    /// The deadline passed.
    pub fn expire(&mut self, ctx: &mut Ctx<'_>) -> Wants {
        match self.state {
            State::Proxy => {
                self.refuse_proxy("timed out", ctx);
                Wants::Close
            }
            State::Idle if self.served > 0 => Wants::Close,
            State::Idle | State::Head | State::Body(_) => {
                self.fail(Failure::Timeout, ctx);
                self.drive(ctx)
            }
            State::Waiting(..) => {
                self.fail(Failure::GatewayTimeout, ctx);
                self.drive(ctx)
            }
            State::Sending | State::Linger => Wants::Close,
        }
    }

    /// The worker is stopping: true if the connection should close now;
    /// otherwise it closes after the response in progress. An idle
    /// kept-alive connection may still bring one request until
    /// `last_call` (a request already on its way is answered, with
    /// `Connection: close`, rather than cut off).
    pub fn stop(&mut self, last_call: u64) -> bool {
        self.keep_alive = false;
        match self.state {
            State::Idle if self.served > 0 => {
                self.deadline = self.deadline.min(last_call);
                false
            }
            State::Linger => true,
            State::Proxy
            | State::Idle
            | State::Head
            | State::Body(_)
            | State::Waiting(..)
            | State::Sending => false,
        }
    }

    /// Read the PROXY protocol header; then the connection is as new, its
    /// peer the client the header names.
    fn read_proxy(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if !self.input.is_empty() {
            match proxy_protocol::parse(self.input.data()) {
                Ok(proxy_protocol::Parsed::Complete(header, n)) => {
                    self.input.consume(n);
                    match header.source {
                        Some(Source::Tcp(addr)) => self.info.peer = Peer::Tcp(addr),
                        Some(Source::Unix) => self.info.peer = Peer::Unix,
                        // LOCAL, UNKNOWN, UNSPEC: the socket's peer it is.
                        None => {}
                    }
                    self.info.https = header.tls;
                    self.state = State::Idle;
                    self.deadline = ctx.now_ms + ms(ctx.cfg.header_timeout);
                    return Step::Again;
                }
                Ok(proxy_protocol::Parsed::Partial) => {}
                Err(e) => {
                    self.refuse_proxy(&e.to_string(), ctx);
                    return Step::Wait(Wants::Close);
                }
            }
        }
        match self.input.read_from(&self.sock, proxy_protocol::MAX_V2_LEN) {
            Ok(0) => self.closed_by_peer(),
            Ok(_) => Step::Again,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait(Wants::Read),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Again,
            Err(_) => Step::Wait(Wants::Close),
        }
    }

    /// A connection to a PROXY listener without a valid header is closed
    /// unanswered, and said at debug level: scanners do it all day.
    fn refuse_proxy(&self, why: &str, ctx: &Ctx<'_>) {
        tracing::debug!(
            worker = ctx.pid,
            peer = %self.info.socket_peer,
            listener = %self.info.listener,
            reason = why,
            "closed a connection without a valid PROXY header"
        );
    }

    fn read_head(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if !self.input.is_empty() {
            if matches!(self.state, State::Idle) {
                // First byte of the next request: the head timeout starts.
                self.state = State::Head;
                self.deadline = ctx.now_ms + ms(ctx.cfg.header_timeout);
            }
            match request::parse_head(self.input.data(), &ctx.limits) {
                Ok(Parsed::Complete(head, n)) => {
                    self.input.consume(n);
                    return self.begin(head, ctx);
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return self.fail(Failure::Codec(e), ctx),
            }
        }
        let max = ctx.cfg.max_head.max(ctx.cfg.max_request_line) + 1024;
        match self.input.read_from(&self.sock, max) {
            Ok(0) => self.closed_by_peer(),
            Ok(_) => Step::Again,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if matches!(self.state, State::Idle) {
                    self.input.shrink();
                }
                Step::Wait(Wants::Read)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Again,
            Err(_) => Step::Wait(Wants::Close),
        }
    }

    /// A complete head: start the exchange.
    fn begin(&mut self, head: Box<Head>, ctx: &mut Ctx<'_>) -> Step {
        let last_allowed = ctx.cfg.max_requests != 0 && self.served + 1 >= ctx.cfg.max_requests;
        self.keep_alive = head.keep_alive && !ctx.stopping && !last_allowed;
        self.exchange = Some(Exchange {
            info: crate::forwarded::resolve(&self.info, &head.headers, &ctx.cfg.trust),
            method: Some(head.method.clone()),
            uri: Some(head.uri.clone()),
            version: head.version,
            head_only: head.method == Method::HEAD,
            status: StatusCode::OK,
            started: Instant::now(),
        });
        let left = match head.framing {
            BodyFraming::None => return self.dispatch(head, RequestBody::empty(), ctx),
            BodyFraming::Length(n) => Left::Bytes(n),
            BodyFraming::Chunked => {
                Left::Chunked(ChunkedDecoder::new(ctx.cfg.max_body, ctx.cfg.max_head))
            }
        };
        if head.expect_continue && self.input.is_empty() {
            self.out.buf().extend_from_slice(response::CONTINUE);
        }
        let expected = match left {
            Left::Bytes(n) => Some(n),
            Left::Chunked(_) => None,
        };
        self.state = State::Body(Box::new(Incoming {
            head,
            store: BodyStore::new(ctx.cfg.body_buffer, expected),
            left,
        }));
        self.deadline = ctx.now_ms + ms(ctx.cfg.body_timeout);
        Step::Again
    }

    fn read_body(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if !self.out.is_empty() {
            // The 100 Continue; it is tiny, so one write nearly always does.
            match self.out.flush(self.sock.as_fd(), false) {
                Ok(_) => {}
                Err(_) => return Step::Wait(Wants::Close),
            }
        }
        let State::Body(inc) = &mut self.state else {
            unreachable!()
        };
        let mut stored = Ok(());
        let done = match &mut inc.left {
            Left::Bytes(left) => {
                let take = self
                    .input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                stored = inc.store.write(&self.input.data()[..take]);
                self.input.consume(take);
                *left -= take as u64;
                *left == 0
            }
            Left::Chunked(dec) => {
                let store = &mut inc.store;
                let used = dec.decode(self.input.data(), &mut |data| {
                    if stored.is_ok() {
                        stored = store.write(data);
                    }
                });
                match used {
                    Ok(n) => self.input.consume(n),
                    Err(e) => return self.fail(Failure::Codec(e), ctx),
                }
                dec.is_done()
            }
        };
        if let Err(e) = stored {
            return self.fail(Failure::Storage(e), ctx);
        }
        if done {
            let State::Body(inc) = std::mem::replace(&mut self.state, State::Sending) else {
                unreachable!()
            };
            let Incoming { head, store, .. } = *inc;
            return match store.finish() {
                Ok(body) => self.dispatch(head, body, ctx),
                Err(e) => self.fail(Failure::Storage(e), ctx),
            };
        }
        match self.input.read_from(&self.sock, 64 * 1024) {
            Ok(0) => self.closed_by_peer(),
            Ok(_) => {
                self.deadline = ctx.now_ms + ms(ctx.cfg.body_timeout);
                Step::Again
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.out.is_empty() {
                    Step::Wait(Wants::Read)
                } else {
                    Step::Wait(Wants::ReadWrite)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Again,
            Err(_) => Step::Wait(Wants::Close),
        }
    }

    /// Call the handler with the complete request.
    fn dispatch(&mut self, head: Box<Head>, body: RequestBody, ctx: &mut Ctx<'_>) -> Step {
        let Head {
            method,
            uri,
            version,
            headers,
            ..
        } = *head;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        req.extensions_mut().insert(self.request_info());
        self.call(req, 0, ctx)
    }

    /// Call the handler; a panic becomes a 500.
    fn call(&mut self, req: Request, hops: u8, ctx: &mut Ctx<'_>) -> Step {
        let handler = &mut *ctx.handler;
        match catch_unwind(AssertUnwindSafe(|| handler.call(req))) {
            Ok(res) => self.answer(res, hops, ctx),
            Err(_) => self.fail(Failure::Panic, ctx),
        }
    }

    /// A response from the handler or a pending one: follow an internal
    /// redirect, wait for a pending head, or start sending.
    fn answer(&mut self, mut res: Response, hops: u8, ctx: &mut Ctx<'_>) -> Step {
        if let Some(redirect) = res.extensions_mut().remove::<InternalRedirect>() {
            if hops >= MAX_REDIRECTS {
                return self.fail(Failure::RedirectLoop, ctx);
            }
            let mut req = Request::new(RequestBody::empty());
            *req.uri_mut() = redirect.uri;
            *req.headers_mut() = redirect.headers;
            if let Some(x) = &self.exchange {
                *req.version_mut() = x.version;
                if x.head_only {
                    *req.method_mut() = Method::HEAD;
                }
            }
            req.extensions_mut().insert(self.request_info());
            return self.call(req, hops + 1, ctx);
        }
        if res.status().is_informational() {
            return self.fail(Failure::Interim(res.status()), ctx);
        }
        let (parts, body) = res.into_parts();
        match body.kind {
            BodyKind::Pending(p) => {
                self.deadline = p.deadline().map_or(u64::MAX, deadline_ms);
                self.state = State::Waiting(p, hops);
            }
            kind => self.respond(Response::from_parts(parts, Body { kind }), ctx),
        }
        Step::Again
    }

    fn poll_pending(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let State::Waiting(p, hops) = &mut self.state else {
            unreachable!()
        };
        let hops = *hops;
        match p.poll() {
            Ok(Some(res)) => {
                self.state = State::Sending;
                self.answer(res, hops, ctx)
            }
            Ok(None) => Step::Wait(Wants::Source),
            Err(e) => self.fail(Failure::BadGateway(e), ctx),
        }
    }

    /// Queue a response (from the handler or an error) and start sending.
    fn respond(&mut self, res: Response, ctx: &mut Ctx<'_>) {
        let (parts, body) = res.into_parts();
        let info = &self.info;
        let exchange = self.exchange.get_or_insert_with(|| Exchange {
            info: info.clone(),
            method: None,
            uri: None,
            version: Version::HTTP_11,
            head_only: false,
            status: parts.status,
            started: Instant::now(),
        });
        exchange.status = parts.status;
        let plan = Plan::new(
            parts.status,
            body.len(),
            exchange.version,
            exchange.head_only,
            self.keep_alive,
        );
        self.keep_alive = plan.keep_alive;
        response::write_head(
            self.out.buf(),
            parts.status,
            &parts.headers,
            plan,
            exchange.version,
            ctx.date.now(),
        );
        self.out.set_body(body, plan.framing);
        self.state = State::Sending;
        self.deadline = ctx.now_ms + ms(ctx.cfg.write_timeout);
    }

    /// Answer with an error status and close afterwards.
    fn fail(&mut self, why: Failure, ctx: &mut Ctx<'_>) -> Step {
        let status = why.status();
        match &why {
            Failure::Panic => {
                let path = self
                    .exchange
                    .as_ref()
                    .and_then(|e| e.uri.as_ref())
                    .map(|u| u.path().to_owned());
                tracing::error!(
                    worker = ctx.pid,
                    path = path.as_deref().unwrap_or("-"),
                    "handler panicked; answered 500"
                );
            }
            Failure::Storage(e) => {
                tracing::error!(worker = ctx.pid, error = %e, "cannot store request body")
            }
            Failure::Codec(e) => {
                tracing::debug!(worker = ctx.pid, peer = %self.info.peer, reason = ?e, "bad request")
            }
            Failure::BadGateway(e) => {
                tracing::error!(worker = ctx.pid, error = %e, "bad gateway")
            }
            Failure::GatewayTimeout => {
                tracing::error!(worker = ctx.pid, "the response did not come in time")
            }
            Failure::RedirectLoop => {
                tracing::error!(worker = ctx.pid, "too many internal redirects")
            }
            Failure::Interim(status) => tracing::error!(
                worker = ctx.pid,
                status = status.as_u16(),
                "the handler answered with an interim status ({status}), which is not an answer; answered 500"
            ),
            Failure::Timeout => {}
        }
        // After a codec error or a timeout the framing of what follows is
        // unknown (or the body unread): never reuse the connection. Errors
        // after the whole request was read leave the next one readable.
        let request_read = matches!(
            why,
            Failure::Panic
                | Failure::BadGateway(_)
                | Failure::GatewayTimeout
                | Failure::RedirectLoop
                | Failure::Interim(_)
        );
        self.keep_alive = request_read && self.keep_alive && !ctx.stopping;
        self.linger_on_close = !request_read;
        self.out.clear();
        self.state = State::Sending;
        self.respond(status_response(status), ctx);
        Step::Again
    }

    fn send(&mut self, ctx: &mut Ctx<'_>) -> Step {
        match self.out.flush(self.sock.as_fd(), self.closes_after(ctx)) {
            Ok(Flush::Done) => self.finish(ctx),
            Ok(Flush::Blocked) => {
                self.deadline = ctx.now_ms + ms(ctx.cfg.write_timeout);
                Step::Wait(Wants::Write)
            }
            Ok(Flush::WaitSource) => {
                self.deadline = self.out.source_deadline().map_or(u64::MAX, deadline_ms);
                Step::Wait(Wants::Source)
            }
            Err(e) => {
                if !is_disconnect(&e) {
                    tracing::warn!(worker = ctx.pid, error = %e, "response aborted");
                }
                Step::Wait(Wants::Close)
            }
        }
    }

    /// The connection ends once the response in hand is sent. `send` holds
    /// the response's last bytes back for the FIN on this same answer, so
    /// the two must never disagree.
    fn closes_after(&self, ctx: &Ctx<'_>) -> bool {
        !self.keep_alive || ctx.stopping
    }

    /// The response is sent: log it, then keep the connection or close it.
    fn finish(&mut self, ctx: &mut Ctx<'_>) -> Step {
        self.served += 1;
        ctx.tally.served += 1;
        ctx.tally.bytes += self.out.body_sent();
        ctx.tally.last_active = ctx.now_ms;
        if let Some(x) = self.exchange.take() {
            let class = usize::from(x.status.as_u16() / 100).clamp(1, 5);
            ctx.tally.by_class[class - 1] += 1;
            if ctx.access_log {
                self.log_access(&x, ctx);
            }
        }
        if self.closes_after(ctx) {
            if self.input.is_empty() && !self.linger_on_close {
                return Step::Wait(Wants::Close);
            }
            // Unread input (a pipelined request, an unread body): shut our
            // side and drain theirs, so the close does not reset the
            // connection before the client has read our response.
            let _ = shutdown(std::os::fd::AsRawFd::as_raw_fd(&self.sock), Shutdown::Write);
            self.input.consume(self.input.len());
            self.state = State::Linger;
            self.deadline = ctx.now_ms + LINGER_MS;
            return Step::Again;
        }
        self.state = State::Idle;
        self.deadline = ctx.now_ms + ms(ctx.cfg.keepalive_timeout);
        if self.input.is_empty() {
            // Level-triggered epoll says when the next request arrives; do
            // not spend a read finding out it has not.
            self.input.shrink();
            Step::Wait(Wants::Read)
        } else {
            Step::Again
        }
    }

    fn linger(&mut self) -> Step {
        match self.input.read_from(&self.sock, 64 * 1024) {
            Ok(0) => Step::Wait(Wants::Close),
            Ok(n) => {
                self.lingered += n;
                self.input.consume(n);
                if self.lingered > LINGER_BYTES {
                    Step::Wait(Wants::Close)
                } else {
                    Step::Again
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait(Wants::Read),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Again,
            Err(_) => Step::Wait(Wants::Close),
        }
    }

    /// The client closed its side. Mid-request that is an aborted request;
    /// between requests it is a normal end.
    fn closed_by_peer(&mut self) -> Step {
        Step::Wait(Wants::Close)
    }

    /// The current request's connection facts, for the handler.
    fn request_info(&self) -> ConnInfo {
        match &self.exchange {
            Some(x) => x.info.clone(),
            None => self.info.clone(),
        }
    }

    /// One event per response: `peer` is the client (as a PROXY header or
    /// a trusted proxy says), `socket_peer` the socket's own peer when
    /// that differs, `listener` the socket's name.
    fn log_access(&self, x: &Exchange, ctx: &Ctx<'_>) {
        let peer = &x.info.peer;
        crate::logging::access(&crate::logging::Access {
            method: x.method.as_ref().map_or("-", Method::as_str),
            path: x.uri.as_ref().map_or("-", Uri::path),
            status: x.status.as_u16(),
            bytes: self.out.body_sent(),
            duration_us: x.started.elapsed().as_micros() as u64,
            worker: ctx.pid,
            peer,
            socket_peer: (x.info.socket_peer != *peer).then_some(&x.info.socket_peer as _),
            listener: &x.info.listener,
        });
    }
}

enum Step {
    Again,
    Wait(Wants),
}

/// A source's deadline on the engine's millisecond clock, never earlier
/// than the instant itself: the sweep must not expire a source that, by its
/// own clock, still has time (the CGI log says "timed out" only past it).
fn deadline_ms(d: Instant) -> u64 {
    let (at, now) = (Instant::now(), now_ms());
    // `now` is read after `at` and floored: it lags the true time by under
    // 1 ms; rounding the rest up and adding that 1 ms covers both.
    let left = d.saturating_duration_since(at);
    now + ms(left) + u64::from(left.subsec_nanos() % 1_000_000 != 0) + 1
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX / 2)) as u64
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}
