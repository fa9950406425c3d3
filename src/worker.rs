//! A worker process: after-fork setup, then one epoll event loop over the
//! shared listeners, the worker's connections, its signals and its pipe to
//! the master.
//!
//! Listeners are registered with `EPOLLEXCLUSIVE`, so a new connection wakes
//! one worker, not all. Connections are level-triggered: a read that finds
//! the request incomplete simply waits for the next event. Deadlines are
//! coarse (a sweep a few times a second), which is all HTTP timeouts need.
//!
//! The worker obeys the master between events: a stop message, or EOF on
//! the channel (the master is gone), makes it stop accepting, close idle
//! connections and exit once the busy ones are answered. It knows nothing
//! about handlers beyond calling them through [`crate::conn`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::SockaddrStorage;
use nix::unistd::{Pid, getppid};

use crate::channel::{Channel, ToMaster, ToWorker};
use crate::config::Config;
use crate::conn::{Conn, Ctx, Tally, Wants};
use crate::handler::{Commands, ConnInfo, Handler, Peer, WorkerInfo};
use crate::listeners::Listener;
use crate::request::{Limits, MAX_HEADERS_CEILING};
use crate::response::DateCache;
use crate::scoreboard::{Published, WorkerSlot, now_ms};
use crate::signals::{Command, Signals};

/// Exit code of a worker that could not boot (its init hook failed): the
/// master does not respawn it but stops with an error.
pub const EXIT_BOOT_FAILED: i32 = 3;

/// Builds the handler in a worker, after the fork.
pub type MakeHandler<'a> =
    &'a mut dyn FnMut(WorkerInfo) -> Result<Box<dyn Handler>, Box<dyn std::error::Error>>;

/// What a worker runs: how it builds its handler after the fork, and the
/// application's commands.
pub struct App<'a> {
    /// Builds the handler.
    pub make: MakeHandler<'a>,
    /// Commands for `spyglass ctl app` (each worker has its own copy).
    pub commands: &'a mut Commands,
}

/// How long an idle kept-alive connection of a stopping worker may still
/// bring one request (answered with `Connection: close`): closing it at
/// once would race a request already on its way, which the client would
/// see as an error.
const LAST_CALL_MS: u64 = 500;

/// What a freshly forked worker is given.
pub struct Setup<'a> {
    pub index: usize,
    pub listeners: &'a [Listener],
    /// Listeners this worker leaves to others: the SO_REUSEPORT sockets
    /// other than its own (see `Listeners::reuseport_groups`).
    pub skip: Vec<usize>,
    pub channel: Channel,
    pub slot: WorkerSlot,
    pub config: &'a Config,
    pub master: Pid,
    /// Master-only descriptors inherited through fork, closed first thing.
    pub close: Vec<RawFd>,
    /// After this many requests, ask to be replaced.
    pub max_requests: Option<u64>,
}

/// Run a worker to its end; returns the process exit code.
pub fn run(setup: Setup<'_>, app: App<'_>) -> i32 {
    // Clean up first: nothing of the master's may leak into this process's
    // lifetime, and the inherited signal mask must be this worker's own.
    for fd in &setup.close {
        let _ = nix::unistd::close(*fd);
    }
    crate::logging::after_fork();
    let signals = match Signals::for_worker() {
        Ok(s) => s,
        Err(e) => return boot_failed(setup.index, &format!("signal setup: {e}")),
    };
    if nix::sys::prctl::set_pdeathsig(Signals::PARENT_DEATH).is_err() || getppid() != setup.master {
        return 0; // the master died before we were armed
    }
    let _ = nix::sys::prctl::set_name(c"spyglass:worker");
    let pid = std::process::id();
    let info = WorkerInfo {
        index: setup.index,
        pid,
    };
    let handler = match (app.make)(info) {
        Ok(h) => h,
        Err(e) => return boot_failed(setup.index, &e.to_string()),
    };
    let mut event_loop = match EventLoop::new(setup, signals, handler, app.commands) {
        Ok(l) => l,
        Err(e) => return boot_failed(info.index, &format!("event loop: {e}")),
    };
    if event_loop
        .channel
        .send_to_master(&ToMaster::Booted)
        .is_err()
    {
        return 0;
    }
    let ended = event_loop.run();
    if ended == Ended::Graceful {
        event_loop.handler.stop();
    }
    crate::logging::flush_lines();
    crate::logging::flush(LOG_FLUSH);
    match ended {
        Ended::Graceful | Ended::Fast => 0,
        Ended::Broken => 1,
    }
}

/// How a worker's event loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Told to stop (or its master is gone): everything answered.
    Graceful,
    /// SIGINT: at once.
    Fast,
    /// The loop itself failed.
    Broken,
}

/// How long an exiting worker waits for journald to read its last events.
const LOG_FLUSH: Duration = Duration::from_millis(500);

fn boot_failed(index: usize, why: &str) -> i32 {
    tracing::error!(
        worker = std::process::id(),
        index,
        "worker failed to boot: {why}"
    );
    crate::logging::flush(LOG_FLUSH);
    EXIT_BOOT_FAILED
}

const SIGNALS: u64 = 1 << 62;
const CHANNEL: u64 = SIGNALS | 1;
/// Set on events from a connection's response stream.
const SOURCE: u64 = 1 << 61;
const LISTENER_LIMIT: u64 = 1 << 16;

/// Connections accepted per wakeup at most, so one worker does not take a
/// burst that others could share.
const ACCEPT_BATCH: usize = 8;

struct Entry {
    conn: Conn,
    generation: u32,
    /// Whether this connection is in [`InFlight`]'s total.
    counted: bool,
    /// What the socket is registered for; None until it first waits.
    interest: Option<EpollFlags>,
    /// The stream descriptor registered for this connection, if any.
    source: Option<RawFd>,
}

struct EventLoop<'a> {
    epoll: Epoll,
    listeners: &'a [Listener],
    /// Listeners not polled here (another worker's SO_REUSEPORT socket).
    skip: Vec<usize>,
    listener_names: Vec<Arc<str>>,
    /// Which listeners expect a PROXY protocol header.
    listener_proxy: Vec<bool>,
    accepting: bool,
    /// When accepting resumes after running out of descriptors.
    accept_pause_until: u64,
    /// accept() last failed for want of descriptors or memory (logged once
    /// per episode, not once per try).
    starved: bool,
    conns: Vec<Option<Entry>>,
    free: Vec<usize>,
    generation: u32,
    open: usize,
    in_flight: InFlight,
    tally: Tally,
    signals: Signals,
    channel: Channel,
    handler: Box<dyn Handler>,
    commands: &'a mut Commands,
    config: &'a Config,
    limits: Limits,
    date: DateCache,
    slot: WorkerSlot,
    pid: u32,
    stopping: bool,
    stop_deadline: u64,
    /// Ask to be replaced after this many requests (asked once).
    max_requests: Option<u64>,
    sweep_every: u64,
}

impl<'a> EventLoop<'a> {
    fn new(
        setup: Setup<'a>,
        signals: Signals,
        handler: Box<dyn Handler>,
        commands: &'a mut Commands,
    ) -> io::Result<EventLoop<'a>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&signals, EpollEvent::new(EpollFlags::EPOLLIN, SIGNALS))?;
        epoll.add(
            &setup.channel,
            EpollEvent::new(EpollFlags::EPOLLIN, CHANNEL),
        )?;
        let http = &setup.config.http;
        let shortest = [
            http.header_timeout,
            http.body_timeout,
            http.keepalive_timeout,
            http.write_timeout,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1));
        let mut l = EventLoop {
            epoll,
            listeners: setup.listeners,
            skip: setup.skip,
            listener_names: setup
                .listeners
                .iter()
                .map(|l| Arc::from(l.name.as_str()))
                .collect(),
            listener_proxy: setup
                .listeners
                .iter()
                .map(|l| setup.config.proxy_protocol.applies_to(&l.name))
                .collect(),
            accepting: false,
            accept_pause_until: 0,
            starved: false,
            conns: Vec::new(),
            free: Vec::new(),
            generation: 0,
            open: 0,
            in_flight: InFlight::default(),
            tally: Tally::default(),
            signals,
            channel: setup.channel,
            handler,
            commands,
            config: setup.config,
            limits: Limits {
                max_request_line: http.max_request_line,
                max_head: http.max_head,
                max_headers: http.max_headers.min(MAX_HEADERS_CEILING),
                max_body: http.max_body,
            },
            date: DateCache::new(),
            slot: setup.slot,
            pid: std::process::id(),
            stopping: false,
            stop_deadline: u64::MAX,
            max_requests: setup.max_requests,
            sweep_every: (shortest.as_millis() as u64 / 4).clamp(50, 1000),
        };
        l.set_accepting(true)?;
        Ok(l)
    }

    fn set_accepting(&mut self, on: bool) -> io::Result<()> {
        if on == self.accepting {
            return Ok(());
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if self.skip.contains(&i) {
                continue;
            }
            if on {
                let ev =
                    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, i as u64);
                self.epoll.add(l, ev)?;
            } else {
                self.epoll.delete(l)?;
            }
        }
        self.accepting = on;
        Ok(())
    }

    fn run(&mut self) -> Ended {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut next_sweep = now_ms() + self.sweep_every;
        loop {
            let now = now_ms();
            let wait = next_sweep.saturating_sub(now).min(1000) as u16;
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(wait)) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    tracing::error!(worker = self.pid, error = %e, "epoll_wait failed");
                    return Ended::Broken;
                }
            };
            let now = now_ms();
            for ev in &events[..n] {
                match ev.data() {
                    SIGNALS => {
                        for cmd in self.signals.drain() {
                            match cmd {
                                Command::FastStop => return Ended::Fast,
                                _ => self.stop(now),
                            }
                        }
                    }
                    CHANNEL => self.read_channel(now),
                    t if t < LISTENER_LIMIT => self.accept(t as usize, now),
                    t => self.ready(t, now),
                }
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + self.sweep_every;
                if !self.accepting
                    && !self.stopping
                    && now >= self.accept_pause_until
                    && self.open < self.max_open()
                {
                    let _ = self.set_accepting(true);
                }
            }
            crate::logging::flush_lines();
            crate::logging::retry();
            self.publish(now);
            if self.max_requests.is_some_and(|n| self.tally.served >= n) {
                self.max_requests = None;
                let _ = self.channel.send_to_master(&ToMaster::Spent);
            }
            if self.stopping && (self.open == 0 || now >= self.stop_deadline) {
                return Ended::Graceful;
            }
        }
    }

    /// Write this loop turn's figures to the worker's scoreboard slot: the
    /// only place a worker writes shared memory.
    fn publish(&self, now: u64) {
        self.slot.publish(&Published {
            heartbeat: now,
            busy: self.in_flight.total() as u64,
            open: self.open as u64,
            log_dropped: crate::logging::dropped(),
            tally: &self.tally,
        });
    }

    fn max_open(&self) -> usize {
        self.config.http.max_connections
    }

    /// Stop accepting; close idle connections; finish the rest.
    fn stop(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = now + self.config.graceful_timeout.as_millis() as u64;
        let _ = self.set_accepting(false);
        for i in 0..self.conns.len() {
            let close = match &mut self.conns[i] {
                Some(e) => e.conn.stop(now + LAST_CALL_MS),
                None => false,
            };
            if close {
                self.remove(i, now);
            }
        }
    }

    fn read_channel(&mut self, now: u64) {
        loop {
            match self.channel.recv_from_master() {
                Ok(None) => return,
                Ok(Some(ToWorker::Stop)) => self.stop(now),
                Ok(Some(ToWorker::Command { id, name, args })) => self.command(id, &name, &args),
                // The master is gone (or speaks nonsense): finish and exit.
                Err(_) => return self.stop(now),
            }
        }
    }

    /// An application command from the master: the engine's own (`stats`,
    /// `ping`), then the app's registered ones, then its handler's.
    fn command(&mut self, id: u32, name: &str, args: &[String]) {
        let result = match name {
            "stats" => Ok(self.stats()),
            "ping" => Ok("pong".to_owned()),
            _ => self
                .commands
                .run(name, args)
                .or_else(|| {
                    let handler = &mut self.handler;
                    catch_unwind(AssertUnwindSafe(|| handler.command(name, args)))
                        .unwrap_or_else(|_| Some(Err(format!("command '{name}' panicked"))))
                })
                .unwrap_or_else(|| Err(format!("unknown command '{name}'"))),
        };
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        let _ = self
            .channel
            .send_to_master(&ToMaster::Reply { id, ok, text });
    }

    /// This worker's counters, as JSON.
    fn stats(&self) -> String {
        let t = &self.tally;
        let classes: serde_json::Map<String, serde_json::Value> = t
            .by_class
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{}xx", i + 1), (*n).into()))
            .collect();
        serde_json::json!({
            "requests": t.served,
            "by_class": classes,
            "bytes_sent": t.bytes,
            "open_connections": self.open,
            "in_flight": self.in_flight.total(),
            "log_events_dropped": crate::logging::dropped(),
        })
        .to_string()
    }

    fn accept(&mut self, index: usize, now: u64) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        for _ in 0..ACCEPT_BATCH {
            if !self.accepting || self.open >= self.max_open() {
                let _ = self.set_accepting(false);
                return;
            }
            match crate::sys::accept(listener.as_fd()) {
                Ok((fd, addr)) => {
                    if self.starved {
                        self.starved = false;
                        tracing::info!(worker = self.pid, "accepting again");
                    }
                    self.admit(fd, addr, index, now)
                }
                Err(e) => match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                    Errno::EAGAIN => return,
                    Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM => continue,
                    // The connection stays queued in the listener; retrying
                    // at once would spin. Stop watching the listener until
                    // the next sweep after a pause, and say so once.
                    Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => {
                        if !self.starved {
                            self.starved = true;
                            tracing::warn!(
                                worker = self.pid,
                                open = self.open,
                                error = %e,
                                "accept: out of resources; pausing accept until some are free"
                            );
                        }
                        self.accept_pause_until = now + 100;
                        let _ = self.set_accepting(false);
                        return;
                    }
                    _ => {
                        tracing::warn!(worker = self.pid, error = %e, "accept failed");
                        return;
                    }
                },
            }
        }
    }

    fn admit(&mut self, fd: OwnedFd, addr: Option<SockaddrStorage>, index: usize, now: u64) {
        let peer = match addr.as_ref() {
            Some(a) => match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => Peer::Tcp(std::net::SocketAddr::V4((*v4).into())),
                (_, Some(v6)) => Peer::Tcp(std::net::SocketAddr::V6((*v6).into())),
                _ => Peer::Unix,
            },
            None => Peer::Unix,
        };
        let info = ConnInfo::new(
            peer,
            self.listeners[index].local.port(),
            self.listener_names[index].clone(),
        );
        let proxy_header = self.listener_proxy[index];
        let conn = Conn::new(fd, info, &self.config.http, now, proxy_header);
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        // Never 0: a connection token must not look like a listener's.
        self.generation = (self.generation % 0x1fff_fffe) + 1;
        self.conns[i] = Some(Entry {
            conn,
            generation: self.generation,
            counted: false,
            interest: None,
            source: None,
        });
        self.open += 1;
        self.tally.last_active = now;
        // Read at once rather than register and wait: by the time a loaded
        // server accepts, the request has usually arrived, and a request
        // answered on the spot (a `Connection: close` one, say) never costs
        // an epoll_ctl. Only a connection that must wait is registered.
        self.with_conn(i, now, |conn, ctx| conn.drive(ctx));
    }

    /// A readiness event for a connection (its socket or its stream).
    fn ready(&mut self, token: u64, now: u64) {
        let i = (token & 0xffff_ffff) as usize;
        let generation = ((token >> 32) & 0x1fff_ffff) as u32;
        match self.conns.get(i) {
            Some(Some(e)) if e.generation == generation => {}
            _ => return, // closed earlier in this batch
        }
        self.with_conn(i, now, |conn, ctx| conn.drive(ctx));
    }

    /// Run `f` on connection `i` with a fresh context, then bring its
    /// in-flight count up to date and apply what it wants next.
    fn with_conn(&mut self, i: usize, now: u64, f: impl FnOnce(&mut Conn, &mut Ctx<'_>) -> Wants) {
        let Some(entry) = self.conns[i].as_mut() else {
            return;
        };
        let mut ctx = Ctx {
            handler: &mut *self.handler,
            cfg: &self.config.http,
            limits: self.limits,
            date: &mut self.date,
            now_ms: now,
            access_log: self.config.access_log,
            pid: self.pid,
            tally: &mut self.tally,
            stopping: self.stopping,
        };
        let wants = f(&mut entry.conn, &mut ctx);
        if wants == Wants::Close {
            return self.remove(i, now);
        }
        self.in_flight.set(&mut entry.counted, entry.conn.busy());
        let token = (u64::from(entry.generation) << 32) | i as u64;
        if apply(&self.epoll, entry, wants, token).is_err() {
            self.remove(i, now);
        }
    }

    fn remove(&mut self, i: usize, now: u64) {
        let Some(entry) = self.conns[i].as_mut() else {
            return;
        };
        self.in_flight.set(&mut entry.counted, false);
        self.open -= 1;
        self.free.push(i);
        self.tally.last_active = now;
        // Dropped where it lies (`take()` would copy its 550 bytes out
        // first). Closing the socket (and the stream, if any) removes them
        // from the epoll set: nothing else holds them.
        self.conns[i] = None;
    }

    fn sweep(&mut self, now: u64) {
        debug_assert_eq!(
            self.in_flight.total(),
            self.conns.iter().flatten().filter(|e| e.counted).count(),
            "the in-flight total drifted from the connections it counts"
        );
        for i in 0..self.conns.len() {
            let due = matches!(&self.conns[i], Some(e) if e.conn.deadline <= now);
            if due {
                self.with_conn(i, now, |conn, ctx| conn.expire(ctx));
            }
        }
        // Idle for a whole sweep, not between two connections of a burst.
        let quiet = now.saturating_sub(self.tally.last_active) >= self.sweep_every;
        if self.open == 0 && quiet && !self.conns.is_empty() {
            self.let_go();
        }
    }

    /// No connection is left: give back what the last burst of them held
    /// (the connection table, spare buffers, freed heap, the code and data
    /// pages it touched), so that an idle worker is as small as a fresh
    /// one. The next request after the quiet period maps the code it needs
    /// again, from the page cache.
    fn let_go(&mut self) {
        self.conns = Vec::new();
        self.free = Vec::new();
        crate::buffers::drop_spares();
        let _ = crate::sys::release_idle_pages();
    }
}

/// Connections with a request in flight ([`Conn::busy`]). The total
/// changes in [`InFlight::set`] alone, against each connection's own
/// `counted` flag, so no sequence of states that one call passes through
/// (a new connection answered and closed, a lingering close that ends, a
/// kept-alive connection that sends half a request and hangs up) can count a
/// connection twice or subtract one that was never added.
#[derive(Default)]
struct InFlight {
    total: usize,
}

impl InFlight {
    /// Make `counted` (whether the connection is in the total) say `busy`.
    fn set(&mut self, counted: &mut bool, busy: bool) {
        match (*counted, busy) {
            (false, true) => self.total += 1,
            (true, false) => {
                debug_assert!(self.total > 0, "in-flight count below zero");
                self.total = self.total.saturating_sub(1);
            }
            _ => return,
        }
        *counted = busy;
    }

    fn total(&self) -> usize {
        self.total
    }
}

/// Register what a connection waits for: its socket for reading or
/// writing, or (while a response stream has nothing to give) the stream's
/// descriptor, with the socket quiet so it cannot spin the loop.
fn apply(epoll: &Epoll, entry: &mut Entry, wants: Wants, token: u64) -> io::Result<()> {
    let sock_interest = match wants {
        Wants::Read => EpollFlags::EPOLLIN,
        Wants::Write => EpollFlags::EPOLLOUT,
        Wants::ReadWrite => EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
        Wants::Source | Wants::Close => EpollFlags::empty(),
    };
    match entry.interest {
        Some(i) if i == sock_interest => {}
        Some(_) => {
            let mut ev = EpollEvent::new(sock_interest, token);
            epoll.modify(entry.conn.sock(), &mut ev)?;
        }
        None => epoll.add(entry.conn.sock(), EpollEvent::new(sock_interest, token))?,
    }
    entry.interest = Some(sock_interest);
    let source: Option<BorrowedFd<'_>> = entry.conn.source_fd();
    let want_source = wants == Wants::Source;
    match (entry.source, source) {
        // The stream that was registered is gone (closing it unregistered it).
        (Some(old), now) if now.map(|f| f.as_raw_fd()) != Some(old) => entry.source = None,
        _ => {}
    }
    if let Some(fd) = source {
        let flags = if want_source {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::empty()
        };
        let mut ev = EpollEvent::new(flags, token | SOURCE);
        if entry.source.is_some() {
            if epoll.modify(fd, &mut ev).is_err() {
                epoll.add(fd, ev)?;
            }
        } else if want_source {
            epoll.add(fd, ev)?;
            entry.source = Some(fd.as_raw_fd());
        }
    } else if want_source {
        return Err(io::Error::other("stream waits without a descriptor"));
    }
    Ok(())
}
