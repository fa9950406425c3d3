//! The master: owns the worker table, the signals, every message to systemd
//! and the decision to exit when idle. Never touches a client connection.
//!
//! Its loop reads like a table of contents: wait for a signal, a worker
//! message or a tick; reap every child that exited; obey the queued
//! commands; then keep the pool whole, check idleness and stuck workers,
//! and tell systemd how things stand.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use crate::config::Config;
use crate::handler::{Handler, Request, Response, WorkerInfo, status_response};
use crate::listeners::Listeners;
use crate::notify::Notifier;
use crate::reexec::Reexec;
use crate::scoreboard::{Scoreboard, now_ms};
use crate::signals::{Command, Signals};
use crate::sys::{self, Forked};
use crate::worker::{self, EXIT_BOOT_FAILED, MSG_BOOTED, MSG_STOP, MakeHandler, Setup};

/// How the master ended.
#[derive(Debug)]
pub enum Exit {
    /// Stopped on request or for idleness: exit 0.
    Clean,
    /// A worker could not boot, or the pool could not be kept up.
    Failed(String),
}

/// One worker process.
struct Worker {
    pid: Pid,
    slot: Option<usize>,
    channel: UnixStream,
    booted: bool,
    /// Told to stop (retired by TTOU, draining, or replaced by a reload).
    stopping: bool,
    spawned_at: u64,
}

impl Worker {
    /// Counts toward the pool: forked by this image and not retiring.
    fn in_pool(&self) -> bool {
        self.slot.is_some() && !self.stopping
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for every worker to report that it booted.
    Booting,
    Running,
    /// Workers told to stop; exit when all are gone or at the deadline.
    Draining {
        deadline: u64,
    },
}

/// A master process.
pub struct Master<'a> {
    config: &'a Config,
    listeners: &'a Listeners,
    idle_timeout: Option<Duration>,
    scoreboard: Scoreboard,
    notifier: Notifier,
    signals: Signals,
    workers: Vec<Worker>,
    /// Workers wanted (changed by TTIN / TTOU).
    target: usize,
    phase: Phase,
    /// Requests answered by workers that have exited.
    retired_served: u64,
    /// Log events dropped by workers that have exited.
    retired_log_dropped: u64,
    /// A slot whose worker died young is refilled no sooner than this.
    respawn_after: Vec<u64>,
    reexec: Reexec,
    /// `BINARY check` running before a reload.
    checking: Option<Checking>,
    last_status: String,
    /// Why the pool answers every request 503 instead of serving: a
    /// configuration error ([`crate::server::exit_misconfigured`]), or an
    /// app whose workers cannot boot, under socket activation (a client
    /// is waiting in the socket; an exit would only start us again).
    refusing: Option<String>,
    /// A worker failed to boot (seen by the reaper, acted on in the loop).
    boot_failure: Option<String>,
    /// The run ends as failed, with this reason, however it stops.
    failed: Option<String>,
    next_status: u64,
    next_watchdog: u64,
}

/// The configuration check before a reload.
struct Checking {
    child: std::process::Child,
    deadline: u64,
}

/// How long the configuration check before a reload may take.
const CHECK_TIMEOUT_MS: u64 = 10_000;

/// How often STATUS= is refreshed (only when it changed).
const STATUS_EVERY_MS: u64 = 1000;
/// A worker that dies sooner than this after its start is respawned after
/// a pause, so a crashing app cannot turn the master into a fork loop.
const YOUNG_DEATH_MS: u64 = 1000;

impl<'a> Master<'a> {
    pub fn new(
        config: &'a Config,
        listeners: &'a Listeners,
        scoreboard: Scoreboard,
        signals: Signals,
        reexec: Reexec,
    ) -> Master<'a> {
        let notifier = Notifier::from_env();
        Master {
            config,
            listeners,
            idle_timeout: config.idle_timeout.resolve(listeners.activated),
            respawn_after: vec![0; scoreboard.capacity()],
            scoreboard,
            notifier,
            signals,
            workers: Vec::new(),
            target: config.workers.min(scoreboard.capacity()),
            phase: Phase::Booting,
            retired_served: 0,
            retired_log_dropped: 0,
            reexec,
            checking: None,
            last_status: String::new(),
            refusing: None,
            boot_failure: None,
            failed: None,
            next_status: 0,
            next_watchdog: 0,
        }
    }

    /// Say in `STATUS=` that the workers answer 503 for a configuration
    /// error, and why.
    pub fn refusing(mut self, why: Option<String>) -> Master<'a> {
        self.refusing = why;
        self
    }

    /// Run until stopped; the caller exits with the result.
    pub fn run(mut self, make: MakeHandler<'_>) -> Exit {
        let mut refuse = refuser();
        self.adopt_inherited();
        if let Some(t) = self.idle_timeout {
            tracing::info!(idle_timeout = ?t, "will exit when idle");
        }
        self.spawn_missing(self.maker(make, &mut refuse));
        loop {
            let commands = self.wait();
            self.reap_all();
            for command in commands {
                match command {
                    Command::GracefulStop => self.drain("stop requested"),
                    Command::FastStop => self.kill_all("fast stop requested"),
                    Command::Reload => self.reload(),
                    Command::AddWorker => self.add_worker(),
                    Command::RemoveWorker => self.retire_worker(),
                    Command::Reap => {} // reaped above
                }
            }
            self.read_channels();
            if let Some(why) = self.boot_failure.take() {
                self.after_boot_failure(why);
            }
            match self.phase {
                Phase::Booting => {
                    self.spawn_missing(self.maker(make, &mut refuse));
                    self.announce_ready();
                }
                Phase::Running => {
                    self.spawn_missing(self.maker(make, &mut refuse));
                    self.kill_stuck();
                    self.kill_slow_check();
                    self.check_idle();
                }
                Phase::Draining { deadline } => {
                    if self.workers.is_empty() {
                        break;
                    }
                    if now_ms() >= deadline {
                        self.kill_all("graceful timeout reached");
                    }
                }
            }
            crate::logging::retry();
            self.report_status();
            self.ping_watchdog();
        }
        match self.failed {
            Some(f) => Exit::Failed(f),
            None => Exit::Clean,
        }
    }

    /// The app's handler, or the 503 one while refusing.
    fn maker<'m>(&self, app: MakeHandler<'m>, refuse: MakeHandler<'m>) -> MakeHandler<'m> {
        if self.refusing.is_some() { refuse } else { app }
    }

    /// A worker could not boot. Under socket activation, while the pool
    /// is still booting, the pool turns to answering 503 until idle (the
    /// run then ends as failed): exiting at once would leave the waiting
    /// client in the socket, and systemd would start us again for it, in a
    /// loop. Otherwise stop now.
    fn after_boot_failure(&mut self, why: String) {
        self.failed.get_or_insert_with(|| why.clone());
        let refuse =
            self.phase == Phase::Booting && self.listeners.activated && self.refusing.is_none();
        if !refuse {
            return self.kill_all("a worker failed to boot");
        }
        tracing::error!(
            "{why}; answering 503 until idle, then exiting with status {}",
            crate::server::EXIT_FAILURE
        );
        for w in &mut self.workers {
            let _ = kill(w.pid, Signal::SIGKILL);
            w.stopping = true;
        }
        self.respawn_after.fill(0);
        self.refusing = Some(why);
    }

    /// Sleep until a signal, a worker message, or the next thing to check.
    fn wait(&mut self) -> Vec<Command> {
        let timeout = self.next_wake().saturating_sub(now_ms()).min(1000);
        let mut fds = Vec::with_capacity(1 + self.workers.len());
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        for w in &self.workers {
            fds.push(PollFd::new(w.channel.as_fd(), PollFlags::POLLIN));
        }
        match poll(
            &mut fds,
            PollTimeout::try_from(timeout as i32).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => tracing::warn!(error = %e, "poll failed"),
        }
        drop(fds);
        self.signals.drain()
    }

    /// The soonest moment something is due.
    fn next_wake(&self) -> u64 {
        let now = now_ms();
        let mut at = now + STATUS_EVERY_MS;
        if let (Phase::Running, Some(t)) = (self.phase, self.idle_timeout) {
            at = at.min(self.last_activity() + t.as_millis() as u64);
        }
        if let Phase::Draining { deadline } = self.phase {
            at = at.min(deadline);
        }
        if self.notifier.watchdog_interval().is_some() {
            at = at.min(self.next_watchdog);
        }
        at.max(now + 10)
    }

    /// Collect every child that exited, until none is left.
    fn reap_all(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(s) => s,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return;
                }
            };
            let Some(pid) = status.pid() else { continue };
            if self
                .checking
                .as_ref()
                .is_some_and(|c| c.child.id() == pid.as_raw() as u32)
            {
                self.checked(status);
                continue;
            }
            let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.swap_remove(pos);
            if let Some(slot) = w.slot {
                self.retired_served += self.scoreboard.slot(slot).served();
                self.retired_log_dropped += self.scoreboard.slot(slot).log_dropped();
                if now_ms().saturating_sub(w.spawned_at) < YOUNG_DEATH_MS {
                    self.respawn_after[slot] = now_ms() + YOUNG_DEATH_MS;
                }
            }
            let how = describe(&status);
            let expected = w.stopping || matches!(self.phase, Phase::Draining { .. });
            if !w.booted && !expected {
                let booted_fail = matches!(status, WaitStatus::Exited(_, EXIT_BOOT_FAILED));
                let why = if booted_fail {
                    "its init failed".to_owned()
                } else {
                    how.clone()
                };
                tracing::error!(pid = pid.as_raw(), "worker failed to boot: {why}");
                self.boot_failure
                    .get_or_insert(format!("worker {} failed to boot: {why}", pid.as_raw()));
            } else if expected {
                tracing::info!(pid = pid.as_raw(), "worker exited: {how}");
            } else {
                tracing::warn!(pid = pid.as_raw(), "worker died: {how}; replacing it");
            }
        }
    }

    /// Fork workers until the pool has `target` live ones.
    fn spawn_missing(&mut self, make: MakeHandler<'_>) {
        if self.boot_failure.is_some() || matches!(self.phase, Phase::Draining { .. }) {
            return;
        }
        let now = now_ms();
        while self.pool_size() < self.target {
            let used: Vec<usize> = self.workers.iter().filter_map(|w| w.slot).collect();
            let Some(slot) = (0..self.scoreboard.capacity()).find(|s| !used.contains(s)) else {
                return;
            };
            if self.respawn_after[slot] > now {
                return; // try again at the next tick
            }
            if let Err(e) = self.spawn(slot, make) {
                tracing::error!(error = %e, "cannot fork a worker");
                return;
            }
        }
    }

    fn spawn(&mut self, slot: usize, make: MakeHandler<'_>) -> std::io::Result<()> {
        let (ours, theirs) = UnixStream::pair()?;
        let now = now_ms();
        self.scoreboard.slot(slot).reset(now);
        let master = getpid();
        match sys::fork()? {
            Forked::Child => {
                drop(ours);
                let mut close: Vec<RawFd> = vec![self.signals.as_fd().as_raw_fd()];
                close.extend(self.workers.iter().map(|w| w.channel.as_raw_fd()));
                let setup = Setup {
                    index: slot,
                    listeners: &self.listeners.list,
                    channel: theirs,
                    slot: self.scoreboard.slot(slot),
                    config: self.config,
                    master,
                    close,
                };
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker::run(setup, make)
                }))
                .unwrap_or(101);
                sys::exit_now(code)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                ours.set_nonblocking(true)?;
                self.workers.push(Worker {
                    pid,
                    slot: Some(slot),
                    channel: ours,
                    booted: false,
                    stopping: false,
                    spawned_at: now,
                });
                Ok(())
            }
        }
    }

    /// Read "booted" messages; a closed channel is left to the reaper.
    fn read_channels(&mut self) {
        for w in &mut self.workers {
            let mut buf = [0u8; 16];
            while let Ok(n) = (&w.channel).read(&mut buf) {
                if n == 0 {
                    break;
                }
                if buf[..n].contains(&MSG_BOOTED) && !w.booted {
                    w.booted = true;
                    tracing::debug!(pid = w.pid.as_raw(), "worker booted");
                }
            }
        }
    }

    /// READY=1 once every wanted worker has booted, never before.
    fn announce_ready(&mut self) {
        let live: Vec<&Worker> = self.workers.iter().filter(|w| w.in_pool()).collect();
        if live.len() < self.target || !live.iter().all(|w| w.booted) {
            return;
        }
        self.phase = Phase::Running;
        let status = self.status_line();
        tracing::info!(workers = self.target, "ready");
        if let Err(e) = self.notifier.ready(&status) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
        self.last_status = status;
        // Workers of the image that re-executed us serve until now.
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.slot.is_none() && !w.stopping)
        {
            let _ = (&w.channel).write_all(&[MSG_STOP]);
            w.stopping = true;
        }
    }

    /// Stop accepting everywhere, let in-flight requests finish, then exit.
    fn drain(&mut self, why: &str) {
        if matches!(self.phase, Phase::Draining { .. }) {
            return;
        }
        let grace = self.config.graceful_timeout;
        self.phase = Phase::Draining {
            deadline: now_ms() + grace.as_millis() as u64,
        };
        let in_flight = self.in_flight();
        tracing::info!(
            workers = self.workers.len(),
            in_flight,
            "stopping gracefully: {why}"
        );
        let _ = self
            .notifier
            .stopping(&format!("stopping: {why}, {in_flight} in flight"));
        let _ = self.notifier.extend_timeout(grace + Duration::from_secs(5));
        for w in &mut self.workers {
            let _ = (&w.channel).write_all(&[MSG_STOP]);
            w.stopping = true;
        }
    }

    /// Kill every worker now and end.
    fn kill_all(&mut self, why: &str) {
        if !self.workers.is_empty() {
            tracing::warn!(workers = self.workers.len(), "killing workers: {why}");
        }
        if !matches!(self.phase, Phase::Draining { .. }) {
            let _ = self.notifier.stopping(&format!("stopping: {why}"));
        }
        for w in &self.workers {
            let _ = kill(w.pid, Signal::SIGKILL);
        }
        for w in std::mem::take(&mut self.workers) {
            let _ = waitpid(w.pid, None);
        }
        self.phase = Phase::Draining { deadline: 0 };
    }

    fn add_worker(&mut self) {
        if self.target < self.scoreboard.capacity() {
            self.target += 1;
            tracing::info!(workers = self.target, "one worker more (TTIN)");
        }
    }

    fn retire_worker(&mut self) {
        if self.target <= 1 {
            return;
        }
        self.target -= 1;
        if let Some(w) = self
            .workers
            .iter_mut()
            .filter(|w| w.in_pool())
            .max_by_key(|w| w.spawned_at)
        {
            let _ = (&w.channel).write_all(&[MSG_STOP]);
            w.stopping = true;
        }
        tracing::info!(workers = self.target, "one worker fewer (TTOU)");
    }

    /// SIGHUP: have the binary on disk check the configuration, then
    /// re-execute it in this same process ([`Master::exec_reload`]).
    fn reload(&mut self) {
        if self.phase != Phase::Running {
            tracing::warn!("reload ignored: not running");
            return;
        }
        if self.checking.is_some() {
            tracing::info!("reload already under way: checking the configuration");
            return;
        }
        match self.reexec.spawn_check() {
            None => self.exec_reload(),
            Some(Ok(child)) => {
                tracing::info!("reload: checking the configuration");
                self.checking = Some(Checking {
                    child,
                    deadline: now_ms() + CHECK_TIMEOUT_MS,
                });
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "reload refused: cannot run the configuration check")
            }
        }
    }

    /// The check before a reload ended: reload if it passed.
    fn checked(&mut self, status: WaitStatus) {
        let Some(mut check) = self.checking.take() else {
            return;
        };
        let mut said = String::new();
        if let Some(mut err) = check.child.stderr.take() {
            let _ = err.read_to_string(&mut said);
        }
        match status {
            WaitStatus::Exited(_, 0) if self.phase == Phase::Running => self.exec_reload(),
            WaitStatus::Exited(_, 0) => tracing::warn!("reload dropped: no longer running"),
            other => {
                let why = said
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .map_or_else(|| describe(&other), str::to_owned);
                tracing::error!(
                    "reload refused: the configuration check failed ({}): {why}; carrying on",
                    describe(&other)
                );
            }
        }
    }

    /// A check that outlives its time is killed (and refused when reaped).
    fn kill_slow_check(&mut self) {
        if let Some(c) = &self.checking {
            if now_ms() >= c.deadline {
                tracing::error!("reload: the configuration check takes too long; killing it");
                let _ = kill(Pid::from_raw(c.child.id() as i32), Signal::SIGKILL);
            }
        }
    }

    /// Re-execute the binary on disk in this same process, handing it the
    /// listeners and the running workers, which serve until the new
    /// image's workers have booted.
    fn exec_reload(&mut self) {
        let _ = self.notifier.reloading();
        let listeners: Vec<(std::os::fd::BorrowedFd<'_>, &str)> = self
            .listeners
            .list
            .iter()
            .map(|l| (l.as_fd(), l.name.as_str()))
            .collect();
        let workers: Vec<(i32, std::os::fd::BorrowedFd<'_>)> = self
            .workers
            .iter()
            .filter(|w| !w.stopping)
            .map(|w| (w.pid.as_raw(), w.channel.as_fd()))
            .collect();
        let err = self
            .reexec
            .exec(&listeners, self.listeners.activated, &workers);
        tracing::error!(error = %err, "reload failed; carrying on with the running workers");
        let _ = self.notifier.ready(&self.last_status);
    }

    /// Take over the workers of the image that re-executed us.
    fn adopt_inherited(&mut self) {
        for i in self.reexec.take_inherited() {
            let pid = Pid::from_raw(i.pid);
            let channel = i.into_channel();
            let _ = channel.set_nonblocking(true);
            self.workers.push(Worker {
                pid,
                slot: None,
                channel,
                booted: true,
                stopping: false,
                spawned_at: now_ms(),
            });
        }
    }

    /// Kill a worker whose event loop has not turned for `--worker-timeout`
    /// (a handler stuck in a loop); the reaper replaces it.
    fn kill_stuck(&mut self) {
        let Some(limit) = self.config.worker_timeout else {
            return;
        };
        let now = now_ms();
        for w in &self.workers {
            let Some(slot) = w.slot else { continue };
            let silent = now.saturating_sub(self.scoreboard.slot(slot).heartbeat());
            if w.booted && silent > limit.as_millis() as u64 {
                tracing::error!(
                    pid = w.pid.as_raw(),
                    silent_ms = silent,
                    "worker stuck; killing it"
                );
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    /// Exit when nothing has been in flight for the idle timeout.
    fn check_idle(&mut self) {
        let Some(limit) = self.idle_timeout else {
            return;
        };
        if self.in_flight() == 0
            && now_ms().saturating_sub(self.last_activity()) >= limit.as_millis() as u64
        {
            self.drain(&format!("idle for {}", humantime::format_duration(limit)));
        }
    }

    /// Workers of this image that are not being retired.
    fn pool_size(&self) -> usize {
        self.workers.iter().filter(|w| w.in_pool()).count()
    }

    fn slots(&self) -> impl Iterator<Item = crate::scoreboard::WorkerSlot> + '_ {
        self.workers
            .iter()
            .filter_map(|w| w.slot)
            .map(|s| self.scoreboard.slot(s))
    }

    fn in_flight(&self) -> u64 {
        // Inherited workers have no slot we can read: while any is alive,
        // count it as busy so that a reload never ends in an idle exit.
        let unknown = self.workers.iter().filter(|w| w.slot.is_none()).count() as u64;
        self.slots().map(|s| s.busy()).sum::<u64>() + unknown
    }

    fn last_activity(&self) -> u64 {
        self.slots()
            .map(|s| s.last_active())
            .max()
            .unwrap_or_else(now_ms)
    }

    fn served(&self) -> u64 {
        self.retired_served + self.slots().map(|s| s.served()).sum::<u64>()
    }

    fn status_line(&self) -> String {
        let live = self.pool_size();
        let mut s = format!(
            "{live} workers, {} requests served, {} in flight",
            self.served(),
            self.in_flight()
        );
        match (self.phase, self.idle_timeout) {
            (Phase::Draining { .. }, _) => s = format!("stopping: {} in flight", self.in_flight()),
            (Phase::Booting, _) => {
                let booted = self.workers.iter().filter(|w| w.booted).count();
                s = format!("booting: {booted}/{} workers", self.target);
            }
            (Phase::Running, Some(t)) => {
                let left =
                    (self.last_activity() + t.as_millis() as u64).saturating_sub(now_ms()) / 1000;
                if self.in_flight() == 0 {
                    s.push_str(&format!(", idle exit in {left}s"));
                }
            }
            (Phase::Running, None) => {}
        }
        if let Some(why) = &self.refusing {
            s = format!("answering 503: {why}; {s}");
        }
        let dropped = self.log_dropped();
        if dropped > 0 {
            s.push_str(&format!(
                ", {dropped} log events dropped (journald stalled)"
            ));
        }
        s
    }

    /// Log events journald did not take, from the master and every worker
    /// (those that have exited included).
    fn log_dropped(&self) -> u64 {
        crate::logging::dropped()
            + self.retired_log_dropped
            + self.slots().map(|s| s.log_dropped()).sum::<u64>()
    }

    fn report_status(&mut self) {
        let now = now_ms();
        if now < self.next_status {
            return;
        }
        self.next_status = now + STATUS_EVERY_MS;
        let status = self.status_line();
        if status != self.last_status {
            let _ = self.notifier.status(&status);
            self.last_status = status;
        }
    }

    /// WATCHDOG=1, but only while every worker's loop is turning: a wedged
    /// pool, not just a wedged master, trips `WatchdogSec=`.
    fn ping_watchdog(&mut self) {
        let Some(interval) = self.notifier.watchdog_interval() else {
            return;
        };
        let now = now_ms();
        if now < self.next_watchdog {
            return;
        }
        self.next_watchdog = now + interval.as_millis() as u64 / 3;
        let fresh = self
            .slots()
            .all(|s| now.saturating_sub(s.heartbeat()) < interval.as_millis() as u64);
        if fresh {
            let _ = self.notifier.watchdog();
        }
    }
}

/// The 503 handler of a refusing pool.
fn refuser() -> impl FnMut(WorkerInfo) -> Result<Box<dyn Handler>, Box<dyn std::error::Error>> {
    |_| {
        Ok(Box::new(|_: Request| -> Response {
            status_response(http::StatusCode::SERVICE_UNAVAILABLE)
        }))
    }
}

/// How a child ended, for the log: an exit code or a signal name.
fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit code {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "killed by {}{}",
                sig.as_str(),
                if *core { " (core dumped)" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}
