//! The Lookout (`spyglass lookout`): the first of the three roles, for hosts
//! where systemd does not play it (containers, OpenRC and runit systems, a
//! developer's shell).
//!
//! It binds the listening sockets (with the code and options of a server
//! that binds its own: [`crate::listeners`]) and then waits, holding nothing
//! else: no handler, no worker, no client. The first connection is not
//! accepted: poll(2) only says that a listener is readable, and the Lookout
//! starts the master exactly as systemd starts a socket-activated service:
//! fork, and exec of this same binary (the one on disk now, as `ExecStart=`
//! would) without the `lookout` word and the Lookout's own flags, with the
//! sockets as fds 3, 4, ... and `LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`, and a `NOTIFY_SOCKET` that the Lookout reads
//! (`notices`). So the master has one activation path whoever plays the
//! Lookout, takes its sockets as systemd's (never unlinking a Unix socket's
//! file) and defaults to the 60 s idle timeout of socket activation.
//!
//! While a master runs, the Lookout does not poll the listeners (the
//! workers accept): it reads the master's notifications, forwards signals
//! and waits for the master's exit. Then it goes back around the loop with
//! nothing more than it started with: everything the master allocated went
//! back to the kernel with the process. A connection that arrives while the
//! master drains waits in the listener's backlog and starts the next one.
//!
//! Why exec and not only fork (Spyglass forked, then loaded the app)? The
//! Lookout never builds the handler, so a forked child would still have to
//! parse its configuration and build everything; exec gives it a fresh
//! image, runs exactly the code systemd would run, and picks up an upgraded
//! binary at the next activation.
//!
//! Faults (`backoff`): a master that fails to boot, hangs before READY=1
//! (`--boot-timeout`) or crashes is not restarted at once; until the delay
//! is over, waiting connections get a fixed 503 (`refusal`). The master
//! gets SIGTERM if the Lookout dies (`PR_SET_PDEATHSIG`), and the Lookout
//! reaps every orphan handed to it: it is a child subreaper, or PID 1.
//!
//! Its parts: `launch` (how a master is started), `started` (the record of
//! the one running), `notices` (the notify socket), `backoff` (the policy
//! after failures), `refusal` (the 503), `pidfile`. Knows the listeners,
//! sys and signals (and the exit statuses of `crate::server`); never the
//! master's, a worker's or a connection's code.

mod backoff;
mod launch;
mod notices;
mod pidfile;
mod refusal;
mod started;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::config::{Config, LookoutConfig};
use crate::listeners::{ListenError, Listeners};
use crate::server::{EXIT_CONFIG, EXIT_FAILURE};
use crate::signals::{Command, Signals};
use crate::sys;

pub use pidfile::PidFileError;

use crate::children::{self, describe};
use backoff::{Backoff, End};
use launch::Launch;
use notices::Notices;
use pidfile::PidFile;
use refusal::Refusals;
use started::Master;

/// After a stop's own deadline (the graceful timeout for TERM), this much
/// more before the master's process group is killed.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Run the Lookout until it is stopped, then exit the process: status 0
/// after a stop; if it could not start (the error is logged), 78 for a
/// configuration that cannot work (an unwritable pid file, an unusable
/// socket), else 1 (an address in use, a pid file another Lookout holds).
pub fn run_and_exit(config: &Config, lookout: LookoutConfig) -> ! {
    if let Some(w) = crate::logging::init(config.log_target, config.log_level) {
        tracing::warn!("{w}");
    }
    let code = match Lookout::start(config, lookout) {
        Ok(l) => l.run(),
        Err(e) => {
            tracing::error!("lookout: {e}");
            e.exit_status()
        }
    };
    crate::logging::flush(Duration::from_secs(1));
    std::process::exit(code)
}

/// Why the Lookout could not start.
#[derive(Debug)]
pub enum Error {
    /// The pid file is another Lookout's, or cannot be written.
    PidFile(PidFileError),
    /// The listeners could not be bound.
    Listen(ListenError),
    /// A system call failed while setting up.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PidFile(e) => write!(f, "{e}"),
            Error::Listen(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The process exit status for this error.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::PidFile(PidFileError::Io { .. }) | Error::Listen(ListenError::BadFd { .. }) => {
                EXIT_CONFIG
            }
            _ => EXIT_FAILURE,
        }
    }
}

struct Lookout {
    listeners: Listeners,
    signals: Signals,
    notices: Notices,
    launch: Launch,
    boot_timeout: Duration,
    graceful_timeout: Duration,
    master: Option<Master>,
    backoff: Backoff,
    /// Connections get a 503 until then.
    backing_off_until: Option<Instant>,
    refusals: Refusals,
    refused: u64,
    /// Accepting for refusals failed hard (out of descriptors, say): the
    /// listeners are left alone until then rather than polled in a loop.
    accept_paused_until: Option<Instant>,
    /// Stopping: exit once no master runs; kill it at this deadline.
    stopping: Option<Instant>,
    pid_file: Option<PidFile>,
    /// [`rest`] ran since the last master was started: a wake-up that
    /// starts none (a stray notification, a signal) does not read smaps
    /// again, so that nobody can make the idle Lookout spin on it.
    rested: bool,
}

/// What woke the Lookout.
struct Woken {
    /// A listener is readable and we were watching.
    connection: bool,
    /// Per lingering refused connection: readable.
    lingering: Vec<bool>,
}

impl Lookout {
    fn start(config: &Config, lookout: LookoutConfig) -> Result<Lookout, Error> {
        let pid_file = match &lookout.pid_file {
            Some(p) => Some(PidFile::claim(p).map_err(Error::PidFile)?),
            None => None,
        };
        let release = |e: Error| {
            if let Some(p) = &pid_file {
                p.remove();
            }
            e
        };
        let listeners =
            Listeners::take_or_bind(&config.listen, None).map_err(|e| release(Error::Listen(e)))?;
        let set_up = || -> io::Result<(Signals, Notices)> {
            let signals = Signals::all()?;
            if nix::unistd::getpid().as_raw() != 1 {
                // Orphans of the master's tree come to us, not to init.
                nix::sys::prctl::set_child_subreaper(true)?;
            }
            Ok((signals, Notices::bind()?))
        };
        let (signals, notices) = set_up().map_err(|e| {
            if !listeners.activated {
                listeners.remove_created();
            }
            release(Error::Io(e))
        })?;
        let launch = Launch::new(&lookout, &listeners, &notices.address());
        for l in &listeners.list {
            tracing::info!(listener = %l.name, address = %l.local, "lookout: listening");
        }
        if nix::unistd::getpid().as_raw() == 1 {
            tracing::info!("lookout: running as PID 1: every orphan is reaped");
        }
        tracing::info!(
            exe = %launch.exe(),
            "lookout: waiting for the first connection to start the master"
        );
        Ok(Lookout {
            listeners,
            signals,
            notices,
            launch,
            boot_timeout: lookout.boot_timeout,
            graceful_timeout: config.graceful_timeout,
            master: None,
            backoff: Backoff::default(),
            backing_off_until: None,
            refusals: Refusals::default(),
            refused: 0,
            accept_paused_until: None,
            stopping: None,
            pid_file,
            rested: false,
        })
    }

    /// Wait, hear the master, reap, obey the signals; then start a master
    /// for a waiting connection, or refuse it while backing off.
    fn run(mut self) -> i32 {
        loop {
            crate::logging::retry();
            let woken = self.wait();
            self.read_notices();
            self.reap_all();
            for command in self.signals.drain() {
                match command {
                    Command::GracefulStop => self.stop(false),
                    Command::FastStop => self.stop(true),
                    Command::Reload => self.reload(),
                    Command::AddWorker | Command::RemoveWorker => self.forward(&command),
                    Command::Reap => {} // reaped above
                    // Control-socket commands; no signal means them.
                    Command::SetWorkers(_)
                    | Command::Recycle(_)
                    | Command::Status
                    | Command::App { .. } => {}
                }
            }
            if self.stopping.is_some() && self.master.is_none() {
                break;
            }
            self.kill_overdue();
            self.refusals.service(&woken.lingering);
            self.end_backoff_if_due();
            if woken.connection && self.master.is_none() && self.stopping.is_none() {
                if self.backing_off_until.is_some() {
                    self.refuse_waiting();
                } else {
                    self.start_master();
                }
            }
        }
        self.finish()
    }

    /// Sleep until a signal, a notification, a connection (only while no
    /// master runs) or the next deadline; with nothing due, indefinitely.
    fn wait(&mut self) -> Woken {
        let now = Instant::now();
        let watch = self.master.is_none()
            && self.stopping.is_none()
            && self.accept_paused_until.is_none_or(|t| now >= t);
        let mut fds = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.notices.as_fd(), PollFlags::POLLIN),
        ];
        if watch {
            fds.extend(
                self.listeners
                    .list
                    .iter()
                    .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN)),
            );
        }
        let lingering_from = fds.len();
        fds.extend(
            self.refusals
                .fds()
                .map(|fd: BorrowedFd<'_>| PollFd::new(fd, PollFlags::POLLIN)),
        );
        let timeout = match self.next_deadline() {
            None => PollTimeout::NONE,
            Some(at) => {
                // Rounded up, so that we never wake just before it.
                let ms = at.saturating_duration_since(now).as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let polled = if timeout == PollTimeout::NONE && self.master.is_none() && !self.rested {
            self.rested = true;
            rest(&mut fds)
        } else {
            poll(&mut fds, timeout)
        };
        match polled {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => tracing::warn!(error = %e, "lookout: poll failed"),
        }
        let readable = |f: &PollFd<'_>| {
            f.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP)
            })
        };
        Woken {
            connection: watch && fds[2..lingering_from].iter().any(readable),
            lingering: fds[lingering_from..].iter().map(readable).collect(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let booting = self
            .master
            .as_ref()
            .filter(|m| m.booting())
            .map(|m| m.boot_deadline);
        let stop = self
            .stopping
            .filter(|_| self.master.as_ref().is_some_and(|m| !m.killed));
        [
            booting,
            stop,
            self.backing_off_until,
            self.accept_paused_until,
            self.refusals.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Start the master on the waiting connection.
    fn start_master(&mut self) {
        self.rested = false;
        match self.launch.start(&self.listeners) {
            Ok(pid) => {
                tracing::info!(master = pid.as_raw(), "lookout: started the master");
                self.master = Some(Master::new(pid, self.boot_timeout));
            }
            Err(e) => {
                let exe = self.launch.exe();
                tracing::error!(exe = %exe, "lookout: cannot start the master: {e}");
                self.back_off(End::FailedBoot, None);
            }
        }
    }

    /// Read every queued notification; only the master's count.
    fn read_notices(&mut self) {
        while let Some((pid, text)) = self.notices.recv() {
            let Some(m) = self.master.as_mut().filter(|m| m.pid.as_raw() == pid) else {
                tracing::debug!(
                    pid,
                    "lookout: notification ignored: not from the master's pid"
                );
                continue;
            };
            m.hear(notices::parse(&text));
        }
    }

    /// Collect every child that exited, the master and orphans alike,
    /// until none is left.
    fn reap_all(&mut self) {
        while let Some(status) = children::next_exited() {
            let Some(pid) = status.pid() else { continue };
            if self.master.as_ref().is_some_and(|m| m.pid == pid) {
                self.master_exited(&status);
            } else {
                tracing::debug!(
                    pid = pid.as_raw(),
                    "lookout: reaped an orphan: {}",
                    describe(&status)
                );
            }
        }
    }

    fn master_exited(&mut self, status: &WaitStatus) {
        let Some(m) = self.master.take() else { return };
        let how = describe(status);
        let pid = m.pid.as_raw();
        if self.stopping.is_some() {
            tracing::info!(master = pid, "lookout: the master exited: {how}");
            return;
        }
        let code = match status {
            WaitStatus::Exited(_, c) => Some(*c),
            _ => None,
        };
        let end = End::of(code, m.ready_at.is_some(), m.hung);
        match end {
            End::Clean => tracing::info!(
                master = pid,
                "lookout: the master exited: {how}; waiting for the next connection"
            ),
            End::Config => tracing::error!(
                master = pid,
                "lookout: the master exited with {how}: a configuration error, which will not \
                 fix itself"
            ),
            End::FailedBoot => {
                tracing::error!(master = pid, "lookout: the master failed to boot: {how}")
            }
            End::Hung => tracing::error!(
                master = pid,
                "lookout: the master sent no READY=1 within {} and was killed",
                humantime::format_duration(self.boot_timeout)
            ),
            End::Crashed => tracing::error!(master = pid, "lookout: the master crashed: {how}"),
        }
        self.back_off(end, m.ready_at.map(|t| t.elapsed()));
    }

    /// Apply the back-off policy to how the last master ended, and say
    /// what follows.
    fn back_off(&mut self, end: End, ready_for: Option<Duration>) {
        let Some(delay) = self.backoff.after(end, ready_for) else {
            return;
        };
        self.backing_off_until = Some(Instant::now() + delay);
        self.refused = 0;
        let retry = if end == End::Config {
            " (or at SIGHUP, once it is fixed)"
        } else {
            ""
        };
        tracing::warn!(
            delay_s = delay.as_secs(),
            "lookout: backing off: connections get 503 for {}, then the next one starts the \
             master again{retry}",
            humantime::format_duration(delay)
        );
    }

    fn end_backoff_if_due(&mut self) {
        if self.backing_off_until.is_some_and(|t| Instant::now() >= t) {
            self.backing_off_until = None;
            tracing::info!(
                refused = self.refused,
                "lookout: back-off over; the next connection starts the master"
            );
        }
    }

    /// While backing off: accept what waits and answer each with the 503.
    fn refuse_waiting(&mut self) {
        let Some(until) = self.backing_off_until else {
            return;
        };
        let left = until.saturating_duration_since(Instant::now());
        for l in &self.listeners.list {
            for _ in 0..64 {
                match sys::accept(l.as_fd()) {
                    Ok((fd, _)) => {
                        if self.refused == 0 {
                            tracing::warn!(
                                "lookout: answering 503 while backing off ({}s left)",
                                left.as_secs()
                            );
                        }
                        self.refused += 1;
                        self.refusals.refuse(fd, left);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO)
                        ) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "lookout: cannot accept to refuse; pausing 1s");
                        self.accept_paused_until = Some(Instant::now() + Duration::from_secs(1));
                        return;
                    }
                }
            }
        }
        self.accept_paused_until = None;
    }

    /// TERM / QUIT: the master drains, then we exit. INT: the master stops
    /// at once. A fast stop may follow a graceful one, not the reverse.
    fn stop(&mut self, fast: bool) {
        if self.stopping.is_some() && !fast {
            return;
        }
        let grace = if fast {
            STOP_MARGIN
        } else {
            self.graceful_timeout + STOP_MARGIN
        };
        let deadline = Instant::now() + grace;
        self.stopping = Some(self.stopping.map_or(deadline, |d| d.min(deadline)));
        let (kind, sig) = if fast {
            ("fast", Signal::SIGINT)
        } else {
            ("graceful", Signal::SIGTERM)
        };
        match &self.master {
            Some(m) => {
                m.signal(sig);
                tracing::info!(
                    master = m.pid.as_raw(),
                    "lookout: {kind} stop: {} sent to the master",
                    sig.as_str()
                );
            }
            None => tracing::info!("lookout: {kind} stop"),
        }
    }

    /// HUP: the running master reloads. One still booting has just read
    /// the binary and configuration on disk: nothing to reload. Without a
    /// master, nothing either; but a back-off ends, so that a fixed
    /// configuration is tried at the next connection rather than after the
    /// delay.
    fn reload(&mut self) {
        if let Some(m) = &self.master {
            if m.ready_at.is_none() {
                tracing::info!(
                    master = m.pid.as_raw(),
                    "lookout: SIGHUP: the master is still booting from the binary and \
                     configuration on disk; nothing to reload"
                );
                return;
            }
            m.signal(Signal::SIGHUP);
            tracing::info!(
                master = m.pid.as_raw(),
                "lookout: reload: SIGHUP sent to the master"
            );
        } else if self.backing_off_until.take().is_some() {
            tracing::info!(
                "lookout: SIGHUP: back-off ended; the next connection starts the master"
            );
        } else {
            tracing::info!("lookout: SIGHUP: no master running, nothing to reload");
        }
    }

    /// TTIN / TTOU: the running master's business.
    fn forward(&self, command: &Command) {
        if let (Some(m), Some(sig)) = (&self.master, command.signal()) {
            m.signal(sig);
        }
    }

    /// Kill the master's process group (the master and its workers) when it
    /// hangs at boot or outlives a stop's deadline.
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        let Some(m) = self.master.as_mut() else {
            return;
        };
        if m.booting() && now >= m.boot_deadline && self.stopping.is_none() {
            m.hung = true;
            tracing::error!(
                master = m.pid.as_raw(),
                "lookout: no READY=1 within {}: killing the master as hung",
                humantime::format_duration(self.boot_timeout)
            );
            m.kill_group();
        }
        if self.stopping.is_some_and(|d| now >= d) && !m.killed {
            m.killed = true;
            tracing::warn!(
                master = m.pid.as_raw(),
                "lookout: the master did not stop in time: killing it"
            );
            m.kill_group();
        }
    }

    fn finish(self) -> i32 {
        if !self.listeners.activated {
            self.listeners.remove_created();
        }
        if let Some(p) = &self.pid_file {
            p.remove();
        }
        tracing::info!("lookout: stopped");
        0
    }
}

/// Wait with nothing more than the Lookout started with, for as long as
/// it takes: called for the first wait without a master and without a
/// deadline, after start-up and after each master (once each: see
/// `Lookout::rested`). The heap's free pages go back to the kernel
/// (parsing the command line, or a master's start, took more than the
/// Lookout keeps), and so do the stack that start-up's deep calls left
/// behind and its mappings of the code and read-only data of the binary
/// and its libraries (they stay in the page cache, which the next master
/// maps anyway). The release and the poll are one step
/// ([`sys::IdlePages::release_and_poll`]), so that the Lookout sleeps
/// holding only the little code that step runs.
fn rest(fds: &mut [PollFd<'_>]) -> nix::Result<libc::c_int> {
    match sys::IdlePages::find() {
        Ok(pages) => pages.release_and_poll(fds, PollTimeout::NONE),
        Err(e) => {
            tracing::debug!(error = %e, "lookout: cannot release idle pages");
            poll(fds, PollTimeout::NONE)
        }
    }
}
