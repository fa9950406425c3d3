//! The master: owns the worker table, the signals, the control socket,
//! every message to systemd and the decision to exit when idle. Never
//! touches a client connection.
//!
//! Its loop reads like a table of contents: wait for a signal, a control
//! command, a worker message or a tick; reap every child that exited; obey
//! the queued commands (signals and `spyglass ctl` share one dispatcher);
//! then keep the pool whole, recycle what is due, check idleness and stuck
//! workers, and tell systemd how things stand.
//!
//! Its parts: [`pool`] (forking, reaping, growing, shrinking and
//! recycling workers), [`reload`] (re-execution in place, on SIGHUP or a
//! watched file's change), [`report`] (`STATUS=`, the watchdog and `ctl
//! status`), [`apps`] (application commands fanned out to workers).

mod apps;
mod pool;
mod reload;
mod report;

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::Config;
use crate::control::{ClientId, Control};
use crate::listeners::Listeners;
use crate::notify::Notifier;
use crate::reexec::Reexec;
use crate::scoreboard::{Scoreboard, now_ms};
use crate::signals::{Command, Signals};
use crate::watch::Watch;
use crate::worker::App;

use apps::Query;
use pool::Worker;
use reload::Checking;

/// The most workers a pool may have (`--workers`, TTIN, `ctl workers`).
pub const MAX_WORKERS: usize = 1024;

/// How the master ended.
#[derive(Debug)]
pub enum Exit {
    /// Stopped on request or for idleness: exit 0.
    Clean,
    /// A worker could not boot, or the pool could not be kept up.
    Failed(String),
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

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Booting => "booting",
            Phase::Running => "running",
            Phase::Draining { .. } => "draining",
        }
    }
}

/// Code the master runs at turning points (see [`crate::Server::before_reload`]).
#[derive(Default)]
pub struct Hooks<'a> {
    /// Before a reload re-executes the binary: an error refuses the reload.
    pub before_reload: Option<&'a mut dyn FnMut() -> Result<(), String>>,
}

/// A master process.
pub struct Master<'a> {
    config: &'a Config,
    listeners: &'a Listeners,
    idle_timeout: Option<Duration>,
    scoreboard: Scoreboard,
    notifier: Notifier,
    signals: Signals,
    control: Option<Control>,
    watch: Option<Watch>,
    hooks: Hooks<'a>,
    workers: Vec<Worker>,
    /// Workers wanted (TTIN, TTOU, `ctl workers`).
    target: usize,
    /// Listeners that share an address through SO_REUSEPORT
    /// ([`Listeners::reuseport_groups`]): each worker polls one member of
    /// each group, and the pool never has fewer workers than the largest.
    reuseport: Vec<Vec<usize>>,
    phase: Phase,
    /// When this image started (monotonic ms).
    started: u64,
    /// Requests answered by workers that have exited.
    retired_served: u64,
    /// Log events dropped by workers that have exited.
    retired_log_dropped: u64,
    /// A slot whose worker died young is refilled no sooner than this.
    respawn_after: Vec<u64>,
    /// Workers due for replacement, replaced one at a time.
    recycle_queue: VecDeque<(Pid, &'static str)>,
    /// Workers replaced so far, by reason.
    recycled: BTreeMap<&'static str, u64>,
    /// Random numbers for jitter.
    rng: u64,
    /// Application commands waiting for the workers' replies.
    queries: Vec<Query>,
    next_query: u32,
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
    /// Workers' memory is read (for --worker-max-memory) once a status
    /// period, not on every turn of the loop.
    next_memory_check: u64,
}

impl<'a> Master<'a> {
    pub fn new(
        config: &'a Config,
        listeners: &'a Listeners,
        scoreboard: Scoreboard,
        signals: Signals,
        reexec: Reexec,
    ) -> Master<'a> {
        let notifier = Notifier::from_env();
        let now = now_ms();
        let reuseport = listeners.reuseport_groups();
        let least = min_workers(&reuseport);
        if config.workers < least {
            tracing::warn!(
                workers = least,
                "{least} workers instead of {}: a listener has {least} SO_REUSEPORT sockets, \
                 and each needs a worker",
                config.workers
            );
        }
        Master {
            config,
            listeners,
            idle_timeout: config.idle_timeout.resolve(listeners.activated),
            respawn_after: vec![0; scoreboard.capacity()],
            scoreboard,
            notifier,
            signals,
            control: None,
            watch: None,
            hooks: Hooks::default(),
            workers: Vec::new(),
            target: config.workers.clamp(1, MAX_WORKERS).max(least),
            reuseport,
            phase: Phase::Booting,
            started: now,
            retired_served: 0,
            retired_log_dropped: 0,
            recycle_queue: VecDeque::new(),
            recycled: BTreeMap::new(),
            rng: now ^ (u64::from(std::process::id()) << 32) | 1,
            queries: Vec::new(),
            next_query: 1,
            reexec,
            checking: None,
            last_status: String::new(),
            refusing: None,
            boot_failure: None,
            failed: None,
            next_status: 0,
            next_watchdog: 0,
            next_memory_check: 0,
        }
    }

    /// Say in `STATUS=` that the workers answer 503 for a configuration
    /// error, and why.
    pub fn refusing(mut self, why: Option<String>) -> Master<'a> {
        self.refusing = why;
        self
    }

    /// Answer `spyglass ctl` on this socket.
    pub fn control(mut self, control: Option<Control>) -> Master<'a> {
        self.control = control;
        self
    }

    /// Reload when these files change.
    pub fn watch(mut self, watch: Option<Watch>) -> Master<'a> {
        self.watch = watch;
        self
    }

    /// Run these at their turning points.
    pub fn hooks(mut self, hooks: Hooks<'a>) -> Master<'a> {
        self.hooks = hooks;
        self
    }

    /// Run until stopped; the caller exits with the result.
    pub fn run(mut self, mut app: App<'_>) -> Exit {
        let mut refuse = pool::refuser();
        if let Some(old) = self.reexec.previous_image.take() {
            let new = report::image();
            tracing::info!(
                event = "reload",
                old_image = %old,
                new_image = %new,
                "reloaded: {old} -> {new}"
            );
        }
        self.adopt_inherited();
        if let Some(t) = self.idle_timeout {
            tracing::info!(idle_timeout = ?t, "will exit when idle");
        }
        self.spawn_missing(&mut app, &mut refuse);
        loop {
            // Commands first: a stop signalled to the whole process group
            // reaches the workers too, and their exits are then expected.
            for (command, client) in self.wait() {
                self.obey(command, client);
            }
            self.reap_all();
            self.read_channels();
            if let Some(why) = self.boot_failure.take() {
                self.after_boot_failure(why);
            }
            match self.phase {
                Phase::Booting => {
                    self.spawn_missing(&mut app, &mut refuse);
                    self.announce_ready();
                }
                Phase::Running => {
                    self.recycle_due();
                    self.spawn_missing(&mut app, &mut refuse);
                    self.retire_replaced();
                    self.kill_stuck();
                    self.kill_slow_check();
                    self.reload_on_change();
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
            self.expire_queries();
            crate::logging::retry();
            self.report_status();
            self.ping_watchdog();
        }
        self.answer_queries_now();
        match self.failed {
            Some(f) => Exit::Failed(f),
            None => Exit::Clean,
        }
    }

    /// The one dispatcher, for signals and control commands alike.
    fn obey(&mut self, command: Command, client: Option<ClientId>) {
        let answer: Option<Result<serde_json::Value, String>> = match command {
            Command::GracefulStop => {
                self.drain("stop requested");
                Some(Ok("stopping".into()))
            }
            Command::FastStop => {
                self.kill_all("fast stop requested");
                None
            }
            Command::Reload => Some(self.reload().map(Into::into)),
            Command::AddWorker => Some(self.set_workers(self.target + 1, "TTIN")),
            Command::RemoveWorker => Some(self.set_workers(self.target.saturating_sub(1), "TTOU")),
            Command::SetWorkers(n) => Some(self.set_workers(n, "ctl")),
            Command::Recycle(which) => Some(self.recycle(which).map(Into::into)),
            Command::Status => Some(Ok(self.status_json())),
            Command::App { name, args, worker } => match client {
                Some(c) => self.ask_workers(c, name, args, worker).err().map(Err),
                None => None,
            },
            Command::Reap => None, // reaped below, every turn
        };
        if let (Some(c), Some(a)) = (client, answer) {
            if let Some(control) = &mut self.control {
                control.answer(c, a);
            }
        }
    }

    /// Sleep until a signal, a control command, a worker message, or the
    /// next thing to check; the commands that came.
    fn wait(&mut self) -> Vec<(Command, Option<ClientId>)> {
        let timeout = self.next_wake().saturating_sub(now_ms()).min(1000);
        let mut fds = Vec::with_capacity(2 + self.workers.len());
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        for w in &self.workers {
            fds.push(PollFd::new(w.channel.as_fd(), PollFlags::POLLIN));
        }
        if let Some(c) = &self.control {
            fds.extend(c.poll_fds().into_iter().map(|(fd, ev)| PollFd::new(fd, ev)));
        }
        if let Some(w) = &self.watch {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
        }
        match poll(
            &mut fds,
            PollTimeout::try_from(timeout as i32).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => tracing::warn!(error = %e, "poll failed"),
        }
        drop(fds);
        let mut commands: Vec<(Command, Option<ClientId>)> = self
            .signals
            .drain()
            .into_iter()
            .map(|c| (c, None))
            .collect();
        if let Some(c) = &mut self.control {
            commands.extend(c.turn().into_iter().map(|(cmd, id)| (cmd, Some(id))));
        }
        if let Some(w) = &mut self.watch {
            w.read();
        }
        commands
    }

    /// The soonest moment something is due.
    fn next_wake(&self) -> u64 {
        let now = now_ms();
        let mut at = now + report::STATUS_EVERY_MS;
        if let (Phase::Running, Some(t)) = (self.phase, self.idle_timeout) {
            at = at.min(self.last_activity() + t.as_millis() as u64);
        }
        if let Phase::Draining { deadline } = self.phase {
            at = at.min(deadline);
        }
        if self.notifier.watchdog_interval().is_some() {
            at = at.min(self.next_watchdog);
        }
        let soonest = [
            self.control.as_ref().and_then(Control::next_deadline),
            self.watch.as_ref().and_then(Watch::due),
            self.queries.iter().map(|q| q.deadline).min(),
        ];
        at = soonest.into_iter().flatten().fold(at, u64::min);
        at.max(now + 10)
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
            w.tell_stop();
        }
        if let Some(c) = &self.checking {
            let _ = kill(Pid::from_raw(c.child.id() as i32), Signal::SIGKILL);
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
            let _ = nix::sys::wait::waitpid(w.pid, None);
        }
        self.phase = Phase::Draining { deadline: 0 };
    }

    /// Exit when nothing has been in flight for the idle timeout.
    fn check_idle(&mut self) {
        let Some(limit) = self.idle_timeout else {
            return;
        };
        if self.in_flight() == 0
            && now_ms().saturating_sub(self.last_activity()) >= limit.as_millis() as u64
        {
            let why = format!("idle for {}", humantime::format_duration(limit));
            tracing::info!(event = "idle-exit", "{why}");
            self.drain(&why);
        }
    }

    /// A random number below `n` (for jitter; not for secrets).
    fn random_below(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if n == 0 { 0 } else { self.rng % n }
    }
}

/// The fewest workers that leave no SO_REUSEPORT socket without one.
fn min_workers(reuseport: &[Vec<usize>]) -> usize {
    reuseport.iter().map(Vec::len).max().unwrap_or(1)
}
