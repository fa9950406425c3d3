//! Children that have ended: collecting them without waiting, and saying
//! how each ended. The master reaps its workers (and its reload check) and
//! the Lookout its master (and, as PID 1, orphans) the same way.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The next child that has ended, if one has; `None` once none is left
/// (a failing `waitpid` is logged and ends the round too).
pub fn next_exited() -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid failed");
                return None;
            }
            Ok(status) => return Some(status),
        }
    }
}

/// How a child ended, for the log: an exit status or a signal name.
pub fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, core) => format!(
            "killed by {}{}",
            sig.as_str(),
            if *core { " (core dumped)" } else { "" }
        ),
        other => format!("{other:?}"),
    }
}
