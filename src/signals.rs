//! The one signal table: which signal means which [`Command`]. Decides
//! nothing else. The control socket ([`crate::control`]) turns its command
//! lines into the same [`Command`]s, so the master has one dispatcher. The
//! Lookout passes them on to the master it started ([`Command::signal`]).
//!
//! No signal handler runs, ever: the signals are blocked and read from a
//! signalfd in the event loop, so handling them is ordinary code (it may
//! log, allocate, fork). The master blocks them before its first fork so
//! that no SIGCHLD is lost; a worker narrows the mask to the few it obeys.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Work a signal or a control command asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// TERM, QUIT: stop accepting, finish in-flight requests, exit 0.
    GracefulStop,
    /// INT: stop now.
    FastStop,
    /// HUP: new workers from the binary on disk, same PID.
    Reload,
    /// TTIN: one worker more.
    AddWorker,
    /// TTOU: one worker fewer.
    RemoveWorker,
    /// CHLD: reap and respawn.
    Reap,
    /// `ctl workers N`: this many workers.
    SetWorkers(usize),
    /// `ctl recycle [PID|all]`: replace workers gracefully, one by one.
    Recycle(Option<i32>),
    /// `ctl status`: report.
    Status,
    /// `ctl app NAME [ARGS]`: an application command for the workers (or
    /// the one with this pid).
    App {
        /// The command's name.
        name: String,
        /// Its arguments.
        args: Vec<String>,
        /// Only this worker.
        worker: Option<i32>,
    },
}

/// The table, mirrored in the README.
const TABLE: [(Signal, Command); 7] = [
    (Signal::SIGTERM, Command::GracefulStop),
    (Signal::SIGQUIT, Command::GracefulStop),
    (Signal::SIGINT, Command::FastStop),
    (Signal::SIGHUP, Command::Reload),
    (Signal::SIGTTIN, Command::AddWorker),
    (Signal::SIGTTOU, Command::RemoveWorker),
    (Signal::SIGCHLD, Command::Reap),
];

impl Command {
    /// The signal that asks for this command (the first in the table), if
    /// one does.
    pub fn signal(&self) -> Option<Signal> {
        TABLE.iter().find(|(_, c)| c == self).map(|(s, _)| *s)
    }
}

/// The commands a worker obeys from signals sent to it directly (or as its
/// parent-death signal); everything else is the master's.
const WORKER: [Command; 2] = [Command::GracefulStop, Command::FastStop];

/// Blocked signals, read through a signalfd.
///
/// Blocked is not ignored: even as PID 1 of a pid namespace, where the
/// kernel drops signals that have no handler, a blocked signal is queued
/// and read here.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// The master's and the Lookout's: every signal in the table (the
    /// Lookout forwards what it does not act on, and reaps on CHLD).
    pub fn all() -> io::Result<Signals> {
        Self::block(|_| true)
    }

    /// A worker's, right after fork: only stop signals stay blocked (read
    /// through a new signalfd); all others are unblocked.
    pub fn for_worker() -> io::Result<Signals> {
        Self::block(|c| WORKER.contains(c))
    }

    /// The signal a worker receives when the master dies.
    pub const PARENT_DEATH: Signal = Signal::SIGTERM;

    fn block(keep: impl Fn(&Command) -> bool) -> io::Result<Signals> {
        let mut mask = SigSet::empty();
        for (sig, cmd) in &TABLE {
            if keep(cmd) {
                mask.add(*sig);
            }
        }
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Signals { fd })
    }

    /// Every command queued since the last call, in arrival order. Signals
    /// of one kind coalesce (two SIGCHLDs may read as one): callers reap
    /// until none is left rather than count.
    pub fn drain(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if let Some((_, cmd)) = TABLE.iter().find(|(s, _)| *s == sig) {
                out.push(cmd.clone());
            }
        }
        out
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
