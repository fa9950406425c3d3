//! The worker table: forking workers into scoreboard slots, reaping them,
//! growing and shrinking the pool, replacing stuck ones, and recycling
//! those past a limit, gracefully: a worker due for replacement serves
//! until its successor has booted, then finishes what it has in flight, so
//! the pool never dips below its size.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::{Pid, getpid};

use super::{MAX_WORKERS, Master, Phase};
use crate::channel::{Channel, ToMaster, ToWorker};
use crate::children::{self, describe};
use crate::handler::{Handler, Request, Response, WorkerInfo, status_response};
use crate::scoreboard::now_ms;
use crate::sys::{self, Forked};
use crate::worker::{self, App, EXIT_BOOT_FAILED, MakeHandler, Setup};

/// A worker that dies sooner than this after its start is respawned after
/// a pause, so a crashing app cannot turn the master into a fork loop.
const YOUNG_DEATH_MS: u64 = 1000;

/// One worker process.
pub(super) struct Worker {
    pub pid: Pid,
    /// Its scoreboard slot; `None` for a worker of the image that
    /// re-executed us (it serves until our own have booted).
    pub slot: Option<usize>,
    pub channel: Channel,
    pub booted: bool,
    /// Told to stop (retired, draining, or replaced).
    pub stopping: bool,
    /// Due for replacement, and why: it serves until its successor booted.
    pub retiring: Option<&'static str>,
    pub spawned_at: u64,
    /// Recycle at this age in ms (jitter included).
    pub max_age: Option<u64>,
    /// The listener it polls in each SO_REUSEPORT group (see
    /// [`Master::reuseport`]), in the groups' order.
    pub members: Vec<usize>,
}

impl Worker {
    /// Counts toward the pool: forked by this image, neither stopping nor
    /// due for replacement.
    pub fn in_pool(&self) -> bool {
        self.slot.is_some() && !self.stopping && self.retiring.is_none()
    }

    /// Tell it to stop (once).
    pub fn tell_stop(&mut self) {
        if !self.stopping {
            let _ = self.channel.send_to_worker(&ToWorker::Stop);
            self.stopping = true;
        }
    }

    /// What `ctl status` calls its state.
    pub fn state(&self) -> &'static str {
        if self.stopping {
            "draining"
        } else if !self.booted {
            "booting"
        } else if self.retiring.is_some() {
            "retiring"
        } else {
            "serving"
        }
    }
}

impl Master<'_> {
    /// Fork workers until the pool has `target` live ones.
    pub(super) fn spawn_missing(&mut self, app: &mut App<'_>, refuse: MakeHandler<'_>) {
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
            let make: MakeHandler<'_> = if self.refusing.is_some() {
                &mut *refuse
            } else {
                &mut *app.make
            };
            let app = App {
                make,
                commands: &mut *app.commands,
            };
            if let Err(e) = self.spawn(slot, app) {
                tracing::error!(error = %e, "cannot fork a worker");
                return;
            }
        }
    }

    fn spawn(&mut self, slot: usize, app: App<'_>) -> std::io::Result<()> {
        let (ours, theirs) = Channel::pair()?;
        let now = now_ms();
        self.scoreboard.slot(slot).reset(now);
        let master = getpid();
        let recycle = &self.config.recycle;
        let max_requests = recycle
            .max_requests
            .map(|n| n + self.random_below(n / 10 + 1));
        let max_age = recycle.max_lifetime.map(|d| {
            let ms = d.as_millis() as u64;
            ms + self.random_below(ms / 10 + 1)
        });
        // In each SO_REUSEPORT group, the socket the fewest staying workers
        // poll: a successor takes over its predecessor's, a larger pool
        // shares them out evenly.
        let members: Vec<usize> = self
            .reuseport
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let fewest = group.iter().min_by_key(|&&i| self.polling(g, i));
                fewest.copied().unwrap_or(group[0])
            })
            .collect();
        match sys::fork()? {
            Forked::Child => {
                drop(ours);
                let mut close: Vec<RawFd> = vec![self.signals.as_fd().as_raw_fd()];
                close.extend(self.workers.iter().map(|w| w.channel.as_fd().as_raw_fd()));
                if let Some(c) = &self.control {
                    close.extend(c.poll_fds().iter().map(|(fd, _)| fd.as_raw_fd()));
                }
                if let Some(w) = &self.watch {
                    close.push(w.as_fd().as_raw_fd());
                }
                let setup = Setup {
                    index: slot,
                    listeners: &self.listeners.list,
                    skip: self
                        .reuseport
                        .iter()
                        .zip(&members)
                        .flat_map(|(group, own)| group.iter().filter(move |i| *i != own))
                        .copied()
                        .collect(),
                    channel: theirs,
                    slot: self.scoreboard.slot(slot),
                    config: self.config,
                    master,
                    close,
                    max_requests,
                };
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker::run(setup, app)
                }))
                .unwrap_or(101);
                sys::exit_now(code)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                // Let the new worker run now if the scheduler put it on
                // this CPU (it does for the first of a pool, seen with
                // ftrace): otherwise it waits until the master sleeps,
                // after forking the rest. On a cold start that worker is
                // the one the waiting connection needs (from the fork to
                // its accept, 30 starts: 0.21-0.27 ms, 0.14-0.16 with this).
                let _ = nix::sched::sched_yield();
                tracing::info!(
                    event = "worker-start",
                    pid = pid.as_raw(),
                    slot,
                    "worker started"
                );
                self.workers.push(Worker {
                    pid,
                    slot: Some(slot),
                    channel: ours,
                    booted: false,
                    stopping: false,
                    retiring: None,
                    spawned_at: now,
                    max_age,
                    members,
                });
                Ok(())
            }
        }
    }

    /// Collect every child that exited, until none is left.
    pub(super) fn reap_all(&mut self) {
        while let Some(status) = children::next_exited() {
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
            self.forget_in_queries(pid);
            let how = describe(&status);
            let expected = w.stopping || matches!(self.phase, Phase::Draining { .. });
            // What it had in flight when it died is lost (a worker that
            // stops normally finishes first, so this is 0 then).
            let lost = w.slot.map_or(0, |s| self.scoreboard.slot(s).busy());
            if let Some(slot) = w.slot {
                self.retired_served += self.scoreboard.slot(slot).served();
                self.retired_log_dropped += self.scoreboard.slot(slot).log_dropped();
                let young = now_ms().saturating_sub(w.spawned_at) < YOUNG_DEATH_MS;
                if young && !expected {
                    self.respawn_after[slot] = now_ms() + YOUNG_DEATH_MS;
                }
            }
            let pid = pid.as_raw();
            if !w.booted && !expected {
                let booted_fail = matches!(status, WaitStatus::Exited(_, EXIT_BOOT_FAILED));
                let why = if booted_fail {
                    "its init failed".to_owned()
                } else {
                    how.clone()
                };
                tracing::error!(event = "worker-exit", pid, reason = %why, "worker failed to boot: {why}");
                self.boot_failure
                    .get_or_insert(format!("worker {pid} failed to boot: {why}"));
            } else if expected && lost == 0 {
                tracing::info!(event = "worker-exit", pid, reason = %how, "worker exited: {how}");
            } else {
                tracing::warn!(
                    event = "worker-exit",
                    pid,
                    reason = %how,
                    lost,
                    "worker died: {how}; {lost} requests in flight lost; replacing it"
                );
            }
        }
    }

    /// Read what workers say; a closed channel is left to the reaper.
    pub(super) fn read_channels(&mut self) {
        let mut replies = Vec::new();
        let mut spent = Vec::new();
        for w in &mut self.workers {
            while let Ok(Some(m)) = w.channel.recv_from_worker() {
                match m {
                    ToMaster::Booted if !w.booted => {
                        w.booted = true;
                        tracing::debug!(pid = w.pid.as_raw(), "worker booted");
                    }
                    ToMaster::Booted => {}
                    ToMaster::Spent => spent.push(w.pid),
                    ToMaster::Reply { id, ok, text } => replies.push((w.pid, id, ok, text)),
                }
            }
        }
        for pid in spent {
            self.queue_recycle(pid, "max-requests");
        }
        for (pid, id, ok, text) in replies {
            self.reply_from(pid, id, ok, text);
        }
    }

    /// READY=1 once every wanted worker has booted, never before.
    pub(super) fn announce_ready(&mut self) {
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
        // What the master needed to start (parsing flags, building the
        // handler, forking) it will not need again: let its code pages (its
        // own and its libraries'), the stack its start-up used and the
        // heap's free pages go, so that an idle master holds only what its
        // loop touches. After READY=1, which this must not delay.
        match crate::sys::release_idle_pages() {
            Ok(r) => tracing::debug!(
                code_kib = r.code >> 10,
                stack_kib = r.stack >> 10,
                zero_kib = r.zero >> 10,
                "released the pages start-up used"
            ),
            Err(e) => tracing::debug!(error = %e, "cannot release idle pages"),
        }
        // Workers of the image that re-executed us serve until now.
        for w in self.workers.iter_mut().filter(|w| w.slot.is_none()) {
            w.tell_stop();
        }
    }

    /// A worker could not boot. Under socket activation, while the pool
    /// is still booting, the pool turns to answering 503 until idle (the
    /// run then ends as failed): exiting at once would leave the waiting
    /// client in the socket, and systemd would start us again for it, in a
    /// loop. Otherwise stop now.
    pub(super) fn after_boot_failure(&mut self, why: String) {
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

    /// Set the pool size (TTIN, TTOU, `ctl workers N`); the newest workers
    /// go first when it shrinks.
    pub(super) fn set_workers(&mut self, n: usize, by: &str) -> Result<serde_json::Value, String> {
        let n = n.min(MAX_WORKERS);
        if n == 0 {
            return Err("a pool has at least one worker".into());
        }
        let least = super::min_workers(&self.reuseport);
        if n < least {
            return Err(format!(
                "at least {least} workers: a listener has {least} SO_REUSEPORT sockets, \
                 and each needs a worker"
            ));
        }
        if matches!(self.phase, Phase::Draining { .. }) {
            return Err("stopping".into());
        }
        let was = self.target;
        self.target = n;
        while self.pool_size() > self.target {
            // The newest of those whose SO_REUSEPORT sockets others poll too.
            let shared =
                |w: &Worker| (w.members.iter().enumerate()).all(|(g, &i)| self.polling(g, i) > 1);
            let Some(pid) = self
                .workers
                .iter()
                .filter(|w| w.in_pool() && shared(w))
                .max_by_key(|w| w.spawned_at)
                .map(|w| w.pid)
            else {
                break;
            };
            if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
                w.tell_stop();
            }
        }
        if n != was {
            tracing::info!(workers = n, "{n} workers ({by})");
        }
        Ok(serde_json::json!({ "workers": n }))
    }

    /// `ctl recycle [PID|all]`: queue workers for graceful replacement.
    pub(super) fn recycle(&mut self, which: Option<i32>) -> Result<String, String> {
        if self.phase != Phase::Running {
            return Err(format!("not running ({})", self.phase.name()));
        }
        let pids: Vec<Pid> = match which {
            None => self
                .workers
                .iter()
                .filter(|w| w.in_pool())
                .map(|w| w.pid)
                .collect(),
            Some(p) => match self.workers.iter().find(|w| w.pid.as_raw() == p) {
                Some(w) if w.in_pool() => vec![w.pid],
                Some(w) => return Err(format!("worker {p} is {} already", w.state())),
                None => return Err(format!("no worker {p}")),
            },
        };
        for pid in &pids {
            self.queue_recycle(*pid, "ctl");
        }
        Ok(format!("recycling {} worker(s), one at a time", pids.len()))
    }

    fn queue_recycle(&mut self, pid: Pid, reason: &'static str) {
        if !self.recycle_queue.iter().any(|(p, _)| *p == pid) {
            self.recycle_queue.push_back((pid, reason));
        }
    }

    /// Queue workers past their age or memory limit; start replacing the
    /// next one in the queue when none is being replaced.
    pub(super) fn recycle_due(&mut self) {
        let now = now_ms();
        let mut max_memory = None;
        if now >= self.next_memory_check {
            self.next_memory_check = now + super::report::STATUS_EVERY_MS;
            max_memory = self.config.recycle.max_memory;
        }
        let mut due = Vec::new();
        // Requests are counted by the worker itself, which says when it is
        // spent (ToMaster::Spent): the master need not poll for them.
        for w in self.workers.iter().filter(|w| w.in_pool() && w.booted) {
            if w.max_age
                .is_some_and(|a| now.saturating_sub(w.spawned_at) >= a)
            {
                due.push((w.pid, "max-lifetime"));
            } else if max_memory.is_some_and(|m| rss(w.pid).is_some_and(|r| r > m)) {
                due.push((w.pid, "max-memory"));
            }
        }
        for (pid, reason) in due {
            self.queue_recycle(pid, reason);
        }
        if self
            .workers
            .iter()
            .any(|w| w.retiring.is_some() && !w.stopping)
        {
            return; // one at a time
        }
        while let Some((pid, reason)) = self.recycle_queue.pop_front() {
            if let Some(w) = self
                .workers
                .iter_mut()
                .find(|w| w.pid == pid && w.in_pool())
            {
                w.retiring = Some(reason);
                return;
            }
        }
    }

    /// A worker due for replacement stops once the pool is whole without it.
    pub(super) fn retire_replaced(&mut self) {
        let ready = self
            .workers
            .iter()
            .filter(|w| w.in_pool() && w.booted)
            .count();
        if ready < self.target {
            return;
        }
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.retiring.is_some() && !w.stopping)
        {
            let reason = w.retiring.unwrap_or("recycle");
            let served = w.slot.map_or(0, |s| self.scoreboard.slot(s).served());
            tracing::info!(
                event = "recycle",
                pid = w.pid.as_raw(),
                reason,
                requests = served,
                "recycling worker {}: {reason}",
                w.pid.as_raw()
            );
            *self.recycled.entry(reason).or_insert(0) += 1;
            w.tell_stop();
        }
    }

    /// Take over the workers of the image that re-executed us.
    pub(super) fn adopt_inherited(&mut self) {
        for i in self.reexec.take_inherited() {
            let pid = Pid::from_raw(i.pid);
            let channel = Channel::adopt(i.into_channel());
            self.workers.push(Worker {
                pid,
                slot: None,
                channel,
                booted: true,
                stopping: false,
                retiring: None,
                spawned_at: now_ms(),
                max_age: None,
                members: Vec::new(),
            });
        }
    }

    /// Kill a worker whose event loop has not turned for `--worker-timeout`
    /// (a handler stuck in a loop); the reaper replaces it.
    pub(super) fn kill_stuck(&mut self) {
        let Some(limit) = self.config.worker_timeout else {
            return;
        };
        let now = now_ms();
        for w in &self.workers {
            let Some(slot) = w.slot else { continue };
            let silent = now.saturating_sub(self.scoreboard.slot(slot).heartbeat());
            if w.booted && silent > limit.as_millis() as u64 {
                let lost = self.scoreboard.slot(slot).busy();
                tracing::error!(
                    pid = w.pid.as_raw(),
                    silent_ms = silent,
                    lost,
                    "worker stuck for {silent} ms; killing it: {lost} requests in flight lost"
                );
                let _ = kill(w.pid, Signal::SIGKILL);
            }
        }
    }

    /// How many workers of the pool poll listener `i` as their member of
    /// SO_REUSEPORT group `g`.
    fn polling(&self, g: usize, i: usize) -> usize {
        let polls = |w: &&Worker| w.in_pool() && w.members.get(g) == Some(&i);
        self.workers.iter().filter(polls).count()
    }

    /// Workers of this image that are neither stopping nor being replaced.
    pub(super) fn pool_size(&self) -> usize {
        self.workers.iter().filter(|w| w.in_pool()).count()
    }
}

/// A process's resident memory in bytes (`/proc/PID/statm`).
pub(super) fn rss(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    Some(pages * page)
}

/// The 503 handler of a refusing pool.
pub(super) fn refuser()
-> impl FnMut(WorkerInfo) -> Result<Box<dyn Handler>, Box<dyn std::error::Error>> {
    |_| {
        Ok(Box::new(|_: Request| -> Response {
            status_response(http::StatusCode::SERVICE_UNAVAILABLE)
        }))
    }
}
