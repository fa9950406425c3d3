//! Reload in place (SIGHUP, `ctl reload`, or a watched file's change):
//! the binary on disk checks the configuration (`BINARY check ARGS`, run
//! without blocking the loop), the app's `before_reload` hook runs, and
//! only then does the master re-execute itself, handing over the listeners
//! and the running workers ([`crate::reexec`]). A failed check or hook
//! refuses the reload; the running server carries on.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::{Master, Phase};
use crate::children::describe;
use crate::scoreboard::now_ms;

/// The configuration check before a reload.
pub(super) struct Checking {
    pub child: std::process::Child,
    deadline: u64,
}

/// How long the configuration check before a reload may take.
const CHECK_TIMEOUT_MS: u64 = 10_000;

impl Master<'_> {
    /// Start a reload: check the configuration first, where the binary has
    /// `check` ([`Master::checked`] goes on), else go on at once.
    pub(super) fn reload(&mut self) -> Result<&'static str, String> {
        if self.phase != Phase::Running {
            tracing::warn!("reload ignored: not running");
            return Err(format!("not running ({})", self.phase.name()));
        }
        if self.checking.is_some() {
            tracing::info!("reload already under way: checking the configuration");
            return Ok("a reload is under way");
        }
        match self.reexec.spawn_check() {
            None => {
                self.exec_reload();
                Err("the reload failed; see the log".into())
            }
            Some(Ok(child)) => {
                tracing::info!("reload: checking the configuration");
                self.checking = Some(Checking {
                    child,
                    deadline: now_ms() + CHECK_TIMEOUT_MS,
                });
                Ok("reloading: checking the configuration first")
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "reload refused: cannot run the configuration check");
                Err(format!("cannot run the configuration check: {e}"))
            }
        }
    }

    /// The check before a reload ended: reload if it passed.
    pub(super) fn checked(&mut self, status: WaitStatus) {
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
                    event = "reload",
                    reason = "check failed",
                    "reload refused: the configuration check failed ({}): {why}; carrying on",
                    describe(&other)
                );
            }
        }
    }

    /// A check that outlives its time is killed (and refused when reaped).
    pub(super) fn kill_slow_check(&mut self) {
        if let Some(c) = &self.checking {
            if now_ms() >= c.deadline {
                tracing::error!("reload: the configuration check takes too long; killing it");
                let _ = kill(Pid::from_raw(c.child.id() as i32), Signal::SIGKILL);
            }
        }
    }

    /// A watched file changed and has been quiet long enough: reload.
    pub(super) fn reload_on_change(&mut self) {
        let changed = match &mut self.watch {
            Some(w) => w.take_due(now_ms()),
            None => None,
        };
        if let Some(path) = changed {
            tracing::info!(path = %path.display(), "reloading: {} changed", path.display());
            let _ = self.reload();
        }
    }

    /// Run the app's hook, then re-execute the binary on disk in this same
    /// process, handing it the listeners and the running workers, which
    /// serve until the new image's workers have booted.
    pub(super) fn exec_reload(&mut self) {
        if let Some(hook) = self.hooks.before_reload.as_mut() {
            if let Err(why) = hook() {
                tracing::error!(
                    event = "reload",
                    reason = "hook refused",
                    "reload refused by the before-reload hook: {why}; carrying on"
                );
                return;
            }
        }
        let _ = self.notifier.reloading();
        let listeners: Vec<(BorrowedFd<'_>, &str)> = self
            .listeners
            .list
            .iter()
            .map(|l| (l.as_fd(), l.name.as_str()))
            .collect();
        let workers: Vec<(i32, BorrowedFd<'_>)> = self
            .workers
            .iter()
            .filter(|w| !w.stopping)
            .map(|w| (w.pid.as_raw(), w.channel.as_fd()))
            .collect();
        let err = self.reexec.exec(
            &listeners,
            self.listeners.activated,
            &workers,
            &super::report::image(),
        );
        tracing::error!(error = %err, "reload failed; carrying on with the running workers");
        let _ = self.notifier.ready(&self.last_status);
    }
}
