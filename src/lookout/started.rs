//! The Lookout's record of the master it started: its pid, when it
//! started and became ready, its last `STATUS=`, and what its notifications
//! mean for the Lookout. Knows nothing of the master's own code.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::notices::Notice;

/// The master the Lookout started.
pub struct Master {
    pub pid: Pid,
    pub started: Instant,
    /// When READY=1 came (the first time).
    pub ready_at: Option<Instant>,
    /// Without READY=1 by then, it is hung.
    pub boot_deadline: Instant,
    /// Killed for sending no READY=1 in time.
    pub hung: bool,
    /// Its process group was killed (a stop past its deadline).
    pub killed: bool,
    status: String,
}

impl Master {
    /// Just started.
    pub fn new(pid: Pid, boot_timeout: Duration) -> Master {
        let now = Instant::now();
        Master {
            pid,
            started: now,
            ready_at: None,
            boot_deadline: now + boot_timeout,
            hung: false,
            killed: false,
            status: String::new(),
        }
    }

    /// Waiting for READY=1 (and not yet killed for its absence).
    pub fn booting(&self) -> bool {
        self.ready_at.is_none() && !self.hung
    }

    /// Take in one message's notifications, and log what matters.
    pub fn hear(&mut self, notices: Vec<Notice>) {
        let pid = self.pid.as_raw();
        for n in &notices {
            if let Notice::Status(s) = n {
                tracing::debug!(master = pid, status = %s, "lookout: master status");
                self.status.clone_from(s);
            }
        }
        let now = Instant::now();
        let status = &self.status;
        for n in notices {
            match n {
                Notice::Ready if self.ready_at.is_none() => {
                    self.ready_at = Some(now);
                    let boot_ms = now.duration_since(self.started).as_millis() as u64;
                    tracing::info!(master = pid, boot_ms, %status, "lookout: the master is ready");
                }
                Notice::Ready => {
                    tracing::info!(master = pid, %status, "lookout: the master is ready again");
                }
                Notice::Reloading => {
                    tracing::info!(master = pid, "lookout: the master is reloading")
                }
                Notice::Stopping => {
                    tracing::info!(master = pid, %status, "lookout: the master is stopping");
                }
                Notice::ExtendTimeout(by) if self.ready_at.is_none() => {
                    self.boot_deadline = self.boot_deadline.max(now + by);
                }
                Notice::MainPid(other) => tracing::warn!(
                    master = pid,
                    other,
                    "lookout: MAINPID= ignored: the main process is the one the lookout started"
                ),
                Notice::Status(_) | Notice::ExtendTimeout(_) => {}
            }
        }
    }

    /// Send it a signal (a gone process is no error: its exit is on its way).
    pub fn signal(&self, sig: Signal) {
        let _ = kill(self.pid, sig);
    }

    /// SIGKILL to its process group (it leads its own session: the master
    /// and its workers); to the master alone if that fails.
    pub fn kill_group(&self) {
        if killpg(self.pid, Signal::SIGKILL).is_err() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}
