//! Logging: the native journal protocol when spyglass runs under systemd
//! (events keep their fields, so `journalctl -u spyglass F_STATUS=404`
//! works), plain text on stderr otherwise.
//!
//! Set up once in the master before the first fork; nothing here starts a
//! thread, so workers inherit a working logger (and each opens its own
//! journal socket after the fork, [`after_fork`]).
//!
//! Logging must never stall serving. An event is one datagram to journald's
//! socket, sent without blocking. When journald does not keep up (stopped,
//! or busy), events wait in a small queue that the event loops retry every
//! turn ([`retry`]); past that bound they are dropped and counted
//! ([`dropped`]), and the master shows the count in `STATUS=`. Before a
//! process exits it gives journald a moment to take what it has sent
//! ([`flush`]): journald learns which unit an event belongs to from the
//! sender's `/proc` entry, so an event still unread when its sender is gone
//! would be filed under no unit, invisible to `journalctl -u`.
//!
//! The record format is tracing-journald's (whose layer this replaces
//! because its socket blocks): `MESSAGE`, `PRIORITY`, `TARGET`,
//! `CODE_FILE`, `CODE_LINE`, `SYSLOG_IDENTIFIER`, and every field of the
//! event as `F_NAME`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

use crate::config::LogTarget;

/// The `tracing` target of access events.
pub const ACCESS: &str = "spyglass::access";

/// journald's native protocol socket.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Events held while journald does not take them, at most (bytes).
const QUEUE_BYTES: usize = 256 * 1024;

/// The journal connection of this process, once logging goes there.
static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);
/// Events are waiting in the queue (so that [`retry`] costs nothing when
/// none is).
static PENDING: AtomicBool = AtomicBool::new(false);
/// Events this process could not hand to journald.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Where access events go ([`access`]): the busiest events by far, so they
/// skip tracing's generic formatting when our own subscriber would only
/// have written them to the journal or to stderr anyway.
static ACCESS_SINK: AtomicU8 = AtomicU8::new(SINK_TRACING);
/// Through `tracing` (a library user's own subscriber, or none yet).
const SINK_TRACING: u8 = 0;
/// Straight to the journal, as a record with fields.
const SINK_JOURNAL: u8 = 1;
/// As a text line on stderr, written with the others of its loop turn.
const SINK_TEXT: u8 = 2;
/// Not at all: the level is below INFO.
const SINK_NONE: u8 = 3;
/// Text access lines waiting for the end of the loop turn ([`flush_lines`]).
static LINES: Mutex<Lines> = Mutex::new(Lines {
    buf: Vec::new(),
    stamp: [0; 20],
    second: u64::MAX,
});
/// Write the waiting lines before they pass this size, whatever the turn.
const LINES_MAX: usize = 64 * 1024;

struct Journal {
    socket: UnixDatagram,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    identifier: String,
    /// Where access records are built, kept from one to the next.
    scratch: Vec<u8>,
}

/// Install the global subscriber. Returns a warning to log once logging
/// works, if the requested target was not available.
pub fn init(target: LogTarget, level: Level) -> Option<String> {
    let mut warning = None;
    let want_journal = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        // A service whose stderr is /dev/null: systemd could not reach
        // journald as it started us (the stream it would have connected is
        // journald's). The journal it is, from when journald is back.
        LogTarget::Auto => {
            stderr_is_journal() || (std::env::var_os("INVOCATION_ID").is_some() && stderr_is_null())
        }
    };
    let journal = want_journal
        .then(|| match open_journal() {
            Ok(j) => Some(j),
            // Nowhere else to write: keep to journald, whose socket the
            // first event sent after it is back connects to; until then
            // events are dropped and counted (STATUS=).
            Err(e) if stderr_is_null() => {
                warning = Some(format!(
                    "journald unavailable ({e}); events are dropped until it is back"
                ));
                unconnected().ok().map(Journal::new)
            }
            Err(e) => {
                warning = Some(format!("journald unavailable ({e}); logging to stderr"));
                None
            }
        })
        .flatten()
        .map(|j| {
            *lock() = Some(j);
            JournalLayer
        });
    let text = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    let sink = match (level < Level::INFO, journal.is_some()) {
        (true, _) => SINK_NONE,
        (false, true) => SINK_JOURNAL,
        (false, false) => SINK_TEXT,
    };
    let installed = tracing_subscriber::registry()
        .with(LevelFilter::from_level(level))
        .with(journal)
        .with(text)
        .try_init();
    if installed.is_err() {
        // A library user installed their own subscriber: theirs wins, and
        // gets the access events too.
        warning = None;
    } else {
        ACCESS_SINK.store(sink, Relaxed);
    }
    warning
}

/// One answered request, for the access log.
pub struct Access<'a> {
    /// The request method (`-` when the head never parsed).
    pub method: &'a str,
    /// The request path.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the head's arrival to the last byte handed to the kernel.
    pub duration_us: u64,
    /// The worker's pid.
    pub worker: u32,
    /// The client (behind a trusted proxy, the one it names).
    pub peer: &'a crate::handler::Peer,
    /// The socket's own peer, when it differs from `peer`.
    pub socket_peer: Option<&'a dyn std::fmt::Display>,
    /// The listener's name.
    pub listener: &'a str,
}

/// Log an access event: a journal record with its fields, or a text line
/// with them, or through `tracing` when the subscriber is not ours. Its
/// fields are those the README lists (`F_METHOD`, `F_PATH`, ...).
pub fn access(a: &Access<'_>) {
    match ACCESS_SINK.load(Relaxed) {
        SINK_JOURNAL => access_record(a),
        SINK_TEXT => access_line(a),
        SINK_NONE => {}
        _ => {
            let (peer, method, path, status, bytes) = (a.peer, a.method, a.path, a.status, a.bytes);
            tracing::info!(
                target: ACCESS,
                method,
                path,
                status,
                bytes,
                duration_us = a.duration_us,
                worker = a.worker,
                peer = %peer,
                socket_peer = a.socket_peer.map(tracing::field::display),
                listener = a.listener,
                "{peer} \"{method} {path}\" {status} {bytes}"
            );
        }
    }
}

/// The journal record of an access event, sent as any other (built in a
/// buffer the journal keeps: a worker sends one per request).
fn access_record(a: &Access<'_>) {
    let mut journal = lock();
    let Some(j) = journal.as_mut() else {
        return;
    };
    let mut r = std::mem::take(&mut j.scratch);
    r.clear();
    build_access_record(&mut r, &j.identifier, a);
    j.submit(&r);
    j.scratch = r;
}

/// The fields of an access record, in the native protocol, after `r`'s
/// contents.
fn build_access_record(r: &mut Vec<u8>, identifier: &str, a: &Access<'_>) {
    put(r, "PRIORITY", b"6");
    put(r, "TARGET", ACCESS.as_bytes());
    put(r, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    // F_PEER is the peer at the start of the message, written once.
    let mut text = Vec::with_capacity(96 + a.path.len());
    let peer = write_message(&mut text, a);
    let mut digits = itoa::Buffer::new();
    put(r, "MESSAGE", &text);
    put(r, "F_METHOD", a.method.as_bytes());
    put(r, "F_PATH", a.path.as_bytes());
    put(r, "F_STATUS", digits.format(a.status).as_bytes());
    put(r, "F_BYTES", digits.format(a.bytes).as_bytes());
    put(r, "F_DURATION_US", digits.format(a.duration_us).as_bytes());
    put(r, "F_WORKER", digits.format(a.worker).as_bytes());
    put(r, "F_PEER", &text[peer]);
    if let Some(sp) = a.socket_peer {
        text.clear();
        let _ = write!(Writer(&mut text), "{sp}");
        put(r, "F_SOCKET_PEER", &text);
    }
    put(r, "F_LISTENER", a.listener.as_bytes());
}

/// The text line of an access event, as the text subscriber writes events
/// (time, level, message, fields), kept until the end of the loop turn.
/// Written piece by piece rather than through `format!`: a worker writes
/// one per request (the timestamp's date and time are formatted once a
/// second, the numbers with `itoa`, the peer once for its two places).
fn access_line(a: &Access<'_>) {
    let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    lines.access(a, std::time::SystemTime::now());
    if lines.buf.len() > LINES_MAX {
        let _ = std::io::stderr().write_all(&lines.buf);
        lines.buf.clear();
    }
}

/// An access event's message, `{peer} "{method} {path}" {status}
/// {bytes}`, after `out`'s contents; returns where the peer is in `out`.
fn write_message(out: &mut Vec<u8>, a: &Access<'_>) -> std::ops::Range<usize> {
    let start = out.len();
    write_peer(out, a.peer);
    let peer = start..out.len();
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b" \"");
    out.extend_from_slice(a.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(a.path.as_bytes());
    out.extend_from_slice(b"\" ");
    out.extend_from_slice(digits.format(a.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(digits.format(a.bytes).as_bytes());
    peer
}

/// A peer as its `Display` writes it; an IPv4 client and port (the
/// common case, once per request) without the formatting machinery.
fn write_peer(out: &mut Vec<u8>, peer: &crate::handler::Peer) {
    use crate::handler::Peer;
    use std::net::SocketAddr;
    let mut digits = itoa::Buffer::new();
    match peer {
        Peer::Tcp(SocketAddr::V4(a)) => {
            let [b0, b1, b2, b3] = a.ip().octets();
            for (i, b) in [b0, b1, b2, b3].into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(b).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(digits.format(a.port()).as_bytes());
        }
        other => {
            let _ = write!(Writer(out), "{other}");
        }
    }
}

/// The access lines of this loop turn, and the second their timestamps'
/// date and time were last formatted for.
struct Lines {
    buf: Vec<u8>,
    /// `YYYY-MM-DDTHH:MM:SS.` of `second`.
    stamp: [u8; 20],
    second: u64,
}

impl Lines {
    /// Add the line of an access event at `now`.
    fn access(&mut self, a: &Access<'_>, now: std::time::SystemTime) {
        self.timestamp(now);
        let out = &mut self.buf;
        out.reserve(256 + a.path.len() * 2);
        out.extend_from_slice(b"  INFO ");
        let peer = write_message(out, a);
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(b" method=");
        quoted(out, a.method);
        out.extend_from_slice(b" path=");
        quoted(out, a.path);
        out.extend_from_slice(b" status=");
        out.extend_from_slice(digits.format(a.status).as_bytes());
        out.extend_from_slice(b" bytes=");
        out.extend_from_slice(digits.format(a.bytes).as_bytes());
        out.extend_from_slice(b" duration_us=");
        out.extend_from_slice(digits.format(a.duration_us).as_bytes());
        out.extend_from_slice(b" worker=");
        out.extend_from_slice(digits.format(a.worker).as_bytes());
        out.extend_from_slice(b" peer=");
        out.extend_from_within(peer);
        if let Some(sp) = a.socket_peer {
            let _ = write!(Writer(out), " socket_peer={sp}");
        }
        out.extend_from_slice(b" listener=");
        quoted(out, a.listener);
        out.push(b'\n');
    }

    /// `now` as the text subscriber writes it (RFC 3339, UTC,
    /// microseconds: `2026-12-01T23:52:48.123456Z`).
    fn timestamp(&mut self, now: std::time::SystemTime) {
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let second = since.as_secs();
        if second != self.second {
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(second);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            let Some(date_time) = text.as_bytes().get(..19) else {
                // Not a four-digit year: the long way, every time.
                let _ = write!(
                    Writer(&mut self.buf),
                    "{}",
                    humantime::format_rfc3339_micros(now)
                );
                return;
            };
            self.stamp[..19].copy_from_slice(date_time);
            self.stamp[19] = b'.';
            self.second = second;
        }
        self.buf.extend_from_slice(&self.stamp);
        let mut micros = since.subsec_micros();
        let mut six = [b'0'; 6];
        for d in six.iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        self.buf.extend_from_slice(&six);
        self.buf.push(b'Z');
    }
}

/// A string in double quotes, escaped as `{:?}` would when it has to be
/// (a request path is printable ASCII nearly always).
fn quoted(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(Writer(out), "{s:?}");
    }
}

/// Write the access lines of this loop turn (one write for all of them):
/// the worker calls it at the end of every turn, and before it exits.
pub fn flush_lines() {
    let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    if !lines.buf.is_empty() {
        let _ = std::io::stderr().write_all(&lines.buf);
        lines.buf.clear();
    }
}

/// `fmt::Write` into a byte buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A socket connected to journald's. Connected once, each record skips
/// the path lookup that sending to an address costs (a 300-byte datagram:
/// 2.2 against 1.7 us, measured). journald's socket belongs to systemd and
/// outlives journald's own restarts; should it be replaced, [`Journal::send`]
/// connects again.
fn journal_socket() -> io::Result<UnixDatagram> {
    let socket = unconnected()?;
    socket.connect(JOURNAL_SOCKET)?;
    Ok(socket)
}

/// A socket of our own, not connected yet: [`Journal::send`] connects it.
fn unconnected() -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn open_journal() -> io::Result<Journal> {
    let socket = journal_socket()?;
    // An empty datagram, which journald discards: is anyone there?
    socket.send(&[])?;
    Ok(Journal::new(socket))
}

fn lock() -> std::sync::MutexGuard<'static, Option<Journal>> {
    // Nothing panics while holding it; if something did, keep logging.
    JOURNAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// In a forked child, first thing: a socket of its own (so that [`flush`]
/// waits for this process's events alone) and none of the parent's queue
/// (the parent still holds those events and sends them itself).
pub fn after_fork() {
    LINES.lock().unwrap_or_else(|e| e.into_inner()).buf.clear();
    let mut journal = lock();
    if let Some(j) = journal.as_mut() {
        // Unconnected if journald cannot be reached now: the first send
        // then tries to connect again.
        if let Ok(socket) = journal_socket().or_else(|_| unconnected()) {
            j.socket = socket;
        }
        j.queue.clear();
        j.queued = 0;
    }
    PENDING.store(false, Relaxed);
    DROPPED.store(0, Relaxed);
}

/// Send what waits in the queue, if journald takes it now. Cheap when
/// nothing waits: event loops call it every turn.
pub fn retry() {
    if PENDING.load(Relaxed) {
        if let Some(j) = lock().as_mut() {
            j.drain();
        }
    }
}

/// Events this process could not hand to journald so far.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// Before exiting: wait (at most `limit`) until journald has read every
/// event this process sent, so that each is filed under our unit. Returns
/// false if some were still unread (journald stalled).
pub fn flush(limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        let done = match lock().as_mut() {
            None => return true,
            Some(j) => {
                j.drain();
                j.queue.is_empty()
                    && crate::sys::unread_by_peer(j.socket.as_fd()).map_or(true, |n| n == 0)
            }
        };
        if done {
            return true;
        }
        if Instant::now() >= end {
            if let Some(j) = lock().as_mut() {
                DROPPED.fetch_add(j.queue.len() as u64, Relaxed);
                j.queue.clear();
                j.queued = 0;
            }
            return false;
        }
        // journald gives no event for "read your datagram": look again
        // shortly (only at exit, and bounded by `limit`).
        let _ = nix::poll::poll(&mut [], nix::poll::PollTimeout::from(1u8));
    }
}

impl Journal {
    fn new(socket: UnixDatagram) -> Journal {
        let identifier = std::env::args_os()
            .next()
            .as_ref()
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Journal {
            socket,
            queue: VecDeque::new(),
            queued: 0,
            identifier,
            scratch: Vec::new(),
        }
    }

    /// Send one record, or queue a copy of it behind those journald has
    /// not taken yet (the common case, journald keeping up, copies
    /// nothing).
    fn submit(&mut self, record: &[u8]) {
        if self.queue.is_empty() {
            match self.send(record) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    DROPPED.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        if self.queued + record.len() > QUEUE_BYTES {
            DROPPED.fetch_add(1, Relaxed);
            return;
        }
        self.queued += record.len();
        self.queue.push_back(record.to_vec());
        PENDING.store(true, Relaxed);
    }

    /// Send queued records until journald stops taking them.
    fn drain(&mut self) {
        while let Some(record) = self.queue.pop_front() {
            match self.send(&record) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.queue.push_front(record);
                    return;
                }
                Ok(()) => {}
                Err(_) => {
                    DROPPED.fetch_add(1, Relaxed);
                }
            }
            self.queued -= record.len();
        }
        PENDING.store(false, Relaxed);
    }

    fn send(&mut self, record: &[u8]) -> io::Result<()> {
        match self.socket.send(record) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => self.send_large(record),
            // The socket we connected to is gone (its unit was restarted,
            // or a fork's reconnect failed): connect anew, once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOTCONN)) => {
                self.socket = journal_socket()?;
                self.socket.send(record).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// A record too large for one datagram travels in a sealed memfd, as
    /// the native protocol allows.
    fn send_large(&self, record: &[u8]) -> io::Result<()> {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        use nix::sys::memfd::{MFdFlags, memfd_create};
        use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
        use std::os::fd::AsRawFd;
        let fd = memfd_create(
            c"spyglass-log",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        std::fs::File::from(fd.try_clone()?).write_all(record)?;
        let seals = SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SEAL;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))?;
        let fds = [fd.as_raw_fd()];
        let addr = UnixAddr::new(JOURNAL_SOCKET)?;
        sendmsg(
            self.socket.as_fd().as_raw_fd(),
            &[],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_DONTWAIT,
            Some(&addr),
        )?;
        Ok(())
    }
}

/// The layer that turns events into journal records.
struct JournalLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut journal = lock();
        let Some(j) = journal.as_mut() else {
            return;
        };
        let meta = event.metadata();
        let mut record = Vec::with_capacity(256);
        let priority = match *meta.level() {
            Level::ERROR => "3",
            Level::WARN => "4",
            Level::INFO => "6",
            Level::DEBUG | Level::TRACE => "7",
        };
        put(&mut record, "PRIORITY", priority.as_bytes());
        put(&mut record, "TARGET", meta.target().as_bytes());
        if let Some(file) = meta.file() {
            put(&mut record, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            put(&mut record, "CODE_LINE", line.to_string().as_bytes());
        }
        put(&mut record, "SYSLOG_IDENTIFIER", j.identifier.as_bytes());
        event.record(&mut Fields {
            record: &mut record,
            text: String::new(),
        });
        j.submit(&record);
    }
}

/// Writes each field of an event into the record.
struct Fields<'a> {
    record: &'a mut Vec<u8>,
    text: String,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_field(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.put_field(field, &text);
        self.text = text;
    }
}

impl Fields<'_> {
    fn put_field(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return put(self.record, "MESSAGE", value.as_bytes());
        }
        let mut name = String::with_capacity(field.name().len() + 2);
        name.push_str("F_");
        // journald field names: upper-case letters, digits and underscores.
        name.extend(field.name().chars().map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        }));
        name.truncate(64);
        put(self.record, &name, value.as_bytes());
    }
}

/// One field in the native protocol: `NAME=value\n`, or, when the value
/// holds a newline, the name, a newline, its length as 64-bit
/// little-endian, the bytes and a newline.
fn put(record: &mut Vec<u8>, name: &str, value: &[u8]) {
    record.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        record.push(b'\n');
        record.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        record.push(b'=');
    }
    record.extend_from_slice(value);
    record.push(b'\n');
}

/// systemd connects stderr to journald and says so in `JOURNAL_STREAM`
/// (`device:inode` of that stream): trust it only if stderr is that stream.
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr().as_fd())
        .is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// stderr is /dev/null (the character device, by its device number).
fn stderr_is_null() -> bool {
    let (Ok(err), Ok(null)) = (
        nix::sys::stat::fstat(std::io::stderr().as_fd()),
        nix::sys::stat::stat("/dev/null"),
    ) else {
        return false;
    };
    err.st_mode & libc::S_IFMT == libc::S_IFCHR && err.st_rdev == null.st_rdev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_the_native_protocol() {
        let mut r = Vec::new();
        put(&mut r, "F_PATH", b"/a b");
        put(&mut r, "MESSAGE", b"two\nlines");
        let mut want = b"F_PATH=/a b\nMESSAGE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(r, want);
    }

    /// The line as `format!` wrote it before the piecewise writing: the
    /// two must never differ.
    fn formatted(a: &Access<'_>, now: std::time::SystemTime) -> String {
        let peer = a.peer.to_string();
        let mut line = format!(
            "{}  INFO {peer} \"{} {}\" {} {} method={:?} path={:?} status={} bytes={} \
             duration_us={} worker={} peer={peer}",
            humantime::format_rfc3339_micros(now),
            a.method,
            a.path,
            a.status,
            a.bytes,
            a.method,
            a.path,
            a.status,
            a.bytes,
            a.duration_us,
            a.worker,
        );
        if let Some(sp) = a.socket_peer {
            line.push_str(&format!(" socket_peer={sp}"));
        }
        line.push_str(&format!(" listener={:?}\n", a.listener));
        line
    }

    /// Peers of every kind, as the access tests write them.
    fn peers() -> Vec<crate::handler::Peer> {
        use crate::handler::Peer;
        vec![
            Peer::Tcp("127.0.0.1:54321".parse().unwrap()),
            Peer::Tcp("255.0.10.1:1".parse().unwrap()),
            Peer::Tcp("[2001:db8::1%7]:443".parse().unwrap()),
            Peer::Tcp("[::1]:8".parse().unwrap()),
            Peer::Ip("10.0.0.1".parse().unwrap()),
            Peer::Ip("2001:db8::2".parse().unwrap()),
            Peer::Unix,
        ]
    }

    #[test]
    fn access_records_as_before() {
        use crate::handler::Peer;
        let peers = peers();
        let proxy = Peer::Unix;
        for (i, peer) in peers.iter().enumerate() {
            let a = Access {
                method: ["GET", "PROPFIND"][i % 2],
                path: ["/", "/x\ny", "/a\"b"][i % 3],
                status: [200, 404, 599][i % 3],
                bytes: [0, 7, u64::MAX][i % 3],
                duration_us: 12_345,
                worker: 77,
                peer,
                socket_peer: (i % 2 == 0).then_some(&proxy as _),
                listener: "web",
            };
            // As the record was built with format! and to_string.
            let mut want = Vec::new();
            put(&mut want, "PRIORITY", b"6");
            put(&mut want, "TARGET", ACCESS.as_bytes());
            put(&mut want, "SYSLOG_IDENTIFIER", b"spy");
            let p = peer.to_string();
            let message = format!("{p} \"{} {}\" {} {}", a.method, a.path, a.status, a.bytes);
            put(&mut want, "MESSAGE", message.as_bytes());
            put(&mut want, "F_METHOD", a.method.as_bytes());
            put(&mut want, "F_PATH", a.path.as_bytes());
            put(&mut want, "F_STATUS", a.status.to_string().as_bytes());
            put(&mut want, "F_BYTES", a.bytes.to_string().as_bytes());
            put(&mut want, "F_DURATION_US", b"12345");
            put(&mut want, "F_WORKER", b"77");
            put(&mut want, "F_PEER", p.as_bytes());
            if i % 2 == 0 {
                put(&mut want, "F_SOCKET_PEER", b"unix");
            }
            put(&mut want, "F_LISTENER", b"web");
            let mut got = b"kept".to_vec();
            build_access_record(&mut got, "spy", &a);
            assert_eq!(&got[..4], b"kept");
            assert_eq!(
                String::from_utf8_lossy(&got[4..]),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn access_lines_as_format_writes_them() {
        use crate::handler::Peer;
        use std::time::{Duration, UNIX_EPOCH};
        let peers = peers();
        let proxy = Peer::Unix;
        // Within one second, across a second, a minute, a year, and the
        // first and last microsecond of a second.
        let times = [
            1_796_169_168_000_001u64,
            1_796_169_168_999_999,
            1_796_169_169_000_000,
            1_796_169_199_123_456,
            1_798_761_599_999_999,
            1_798_761_600_000_000,
            0,
        ];
        let mut lines = Lines {
            buf: Vec::new(),
            stamp: [0; 20],
            second: u64::MAX,
        };
        for (i, peer) in peers.iter().enumerate() {
            for (j, us) in times.iter().enumerate() {
                let now = UNIX_EPOCH + Duration::from_micros(*us);
                let a = Access {
                    method: ["GET", "DELETE"][j % 2],
                    path: ["/", "/a b/\"q\"", "/caf\u{e9}"][(i + j) % 3],
                    status: [200, 404, 503][j % 3],
                    bytes: [0, 14, u64::MAX][i % 3],
                    duration_us: *us % 1000,
                    worker: 4_194_304,
                    peer,
                    socket_peer: (i % 2 == 1).then_some(&proxy as _),
                    listener: ["127.0.0.1:8080", "we\"b"][i % 2],
                };
                lines.buf.clear();
                lines.access(&a, now);
                assert_eq!(
                    String::from_utf8_lossy(&lines.buf),
                    formatted(&a, now),
                    "peer {i}, time {j}"
                );
            }
        }
    }
}
