//! How things stand: the totals read from the scoreboard, the one-line
//! `STATUS=` for systemd, the watchdog ping, and the whole picture for
//! `spyglass ctl status`.

use serde_json::json;

use super::pool::rss;
use super::{Master, Phase};
use crate::scoreboard::{WorkerSlot, now_ms};

/// How often STATUS= is refreshed (only when it changed).
pub(super) const STATUS_EVERY_MS: u64 = 1000;

/// The binary and its build, as `ctl status` and the reload event name it.
pub fn image() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("{exe} ({})", crate::cli::VERSION)
}

impl Master<'_> {
    pub(super) fn slots(&self) -> impl Iterator<Item = WorkerSlot> + '_ {
        self.workers
            .iter()
            .filter_map(|w| w.slot)
            .map(|s| self.scoreboard.slot(s))
    }

    pub(super) fn in_flight(&self) -> u64 {
        // Inherited workers have no slot we can read: while any is alive,
        // count it as busy so that a reload never ends in an idle exit.
        let unknown = self.workers.iter().filter(|w| w.slot.is_none()).count() as u64;
        self.slots().map(|s| s.busy()).sum::<u64>() + unknown
    }

    pub(super) fn last_activity(&self) -> u64 {
        self.slots()
            .map(|s| s.last_active())
            .max()
            .unwrap_or_else(now_ms)
    }

    fn served(&self) -> u64 {
        self.retired_served + self.slots().map(|s| s.served()).sum::<u64>()
    }

    /// Log events journald did not take, from the master and every worker
    /// (those that have exited included).
    fn log_dropped(&self) -> u64 {
        crate::logging::dropped()
            + self.retired_log_dropped
            + self.slots().map(|s| s.log_dropped()).sum::<u64>()
    }

    /// Seconds until the idle exit, when one is due and nothing is in
    /// flight.
    fn idle_exit_in(&self) -> Option<u64> {
        match (self.phase, self.idle_timeout) {
            (Phase::Running, Some(t)) if self.in_flight() == 0 => {
                Some((self.last_activity() + t.as_millis() as u64).saturating_sub(now_ms()) / 1000)
            }
            _ => None,
        }
    }

    pub(super) fn status_line(&self) -> String {
        let live = self.pool_size();
        let mut s = format!(
            "{live} workers, {} requests served, {} in flight",
            self.served(),
            self.in_flight()
        );
        match self.phase {
            Phase::Draining { .. } => s = format!("stopping: {} in flight", self.in_flight()),
            Phase::Booting => {
                let booted = self.workers.iter().filter(|w| w.booted).count();
                s = format!("booting: {booted}/{} workers", self.target);
            }
            Phase::Running => {
                if let Some(left) = self.idle_exit_in() {
                    s.push_str(&format!(", idle exit in {left}s"));
                }
            }
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

    pub(super) fn report_status(&mut self) {
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
    pub(super) fn ping_watchdog(&mut self) {
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

    /// The whole picture, for `spyglass ctl status`.
    pub(super) fn status_json(&self) -> serde_json::Value {
        let now = now_ms();
        let secs = |ms: u64| ms as f64 / 1000.0;
        let listeners: Vec<_> = self
            .listeners
            .list
            .iter()
            .map(|l| json!({ "name": l.name, "address": l.local.to_string() }))
            .collect();
        let workers: Vec<_> = self
            .workers
            .iter()
            .map(|w| {
                let slot = w.slot.map(|s| self.scoreboard.slot(s));
                json!({
                    "pid": w.pid.as_raw(),
                    "slot": w.slot,
                    "state": w.state(),
                    "age_s": secs(now.saturating_sub(w.spawned_at)),
                    "requests": slot.map(|s| s.served()),
                    "in_flight": slot.map(|s| s.busy()),
                    "last_active_s_ago": slot.map(|s| secs(now.saturating_sub(s.last_active()))),
                    "rss_bytes": rss(w.pid),
                    "recycle_reason": w.retiring,
                })
            })
            .collect();
        json!({
            "master": {
                "pid": std::process::id(),
                "uptime_s": secs(now.saturating_sub(self.started)),
                "image": image(),
                "phase": self.phase.name(),
                "idle_exit_in_s": self.idle_exit_in(),
                "idle_timeout_s": self.idle_timeout.map(|t| t.as_secs_f64()),
                "workers_wanted": self.target,
                "requests_served": self.served(),
                "in_flight": self.in_flight(),
                "log_events_dropped": self.log_dropped(),
                "recycled": self.recycled,
                "refusing": self.refusing,
                "rss_bytes": rss(nix::unistd::getpid()),
            },
            "listeners": listeners,
            "workers": workers,
        })
    }
}
