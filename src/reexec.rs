//! Reload by re-execution (SIGHUP): the master `execve`s the binary on disk
//! in place, so the PID systemd watches stays the same. The listeners and
//! the channels to the running workers cross the exec; the new image boots
//! its own workers, and only once they are all up does it tell the old ones
//! to finish and exit. No listener is closed at any point, so no connection
//! is refused or lost, and a new binary (a package upgrade) takes over.
//!
//! The hand-over travels in three variables, honoured only by the process
//! whose pid `SPYGLASS_INHERIT_PID` names (as `LISTEN_PID` is):
//! `SPYGLASS_INHERIT_FDS` (`fd name` lines), `SPYGLASS_INHERIT_WORKERS`
//! (`pid fd` lines) and `SPYGLASS_INHERIT_ACTIVATED`.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::listeners::Listeners;

const PID: &str = "SPYGLASS_INHERIT_PID";
const FDS: &str = "SPYGLASS_INHERIT_FDS";
const WORKERS: &str = "SPYGLASS_INHERIT_WORKERS";
const ACTIVATED: &str = "SPYGLASS_INHERIT_ACTIVATED";

/// A worker adopted from the previous image, with its channel owned.
pub struct Adopted {
    pub pid: i32,
    channel: OwnedFd,
}

impl Adopted {
    pub fn into_channel(self) -> UnixStream {
        UnixStream::from(self.channel)
    }
}

/// What the previous image passed, and how to exec the next one.
pub struct Reexec {
    exe: PathBuf,
    args: Vec<OsString>,
    workers: Vec<Adopted>,
}

/// Listeners handed over by the previous image: (fd, name), and whether
/// they came from systemd originally.
pub struct InheritedListeners {
    pub fds: Vec<(OwnedFd, String)>,
    pub activated: bool,
}

impl Reexec {
    /// Record how we were started and take what a previous image passed.
    /// Call first thing, before any descriptor is opened.
    pub fn capture() -> (Reexec, Option<InheritedListeners>) {
        let exe = std::env::current_exe()
            .ok()
            .filter(|p| !p.to_string_lossy().ends_with(" (deleted)"))
            .or_else(|| std::env::args_os().next().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        let args = std::env::args_os().skip(1).collect();
        let ours = std::env::var(PID).ok() == Some(std::process::id().to_string());
        let fds = std::env::var(FDS).unwrap_or_default();
        let workers = std::env::var(WORKERS).unwrap_or_default();
        let activated = std::env::var(ACTIVATED).is_ok_and(|v| v == "1");
        for key in [PID, FDS, WORKERS, ACTIVATED] {
            crate::sys::remove_env(key);
        }
        let mut reexec = Reexec {
            exe,
            args,
            workers: Vec::new(),
        };
        if !ours {
            return (reexec, None);
        }
        let pairs = |s: &str| -> Vec<(i32, String)> {
            s.lines()
                .filter_map(|l| {
                    let (a, b) = l.split_once(' ')?;
                    Some((a.parse().ok()?, b.to_owned()))
                })
                .collect()
        };
        let mut listeners = Vec::new();
        for (fd, name) in pairs(&fds) {
            match crate::sys::adopt_inherited_socket(fd) {
                Ok(owned) => listeners.push((owned, name)),
                Err(e) => eprintln!("spyglass: reload: listener {name}: {e}"),
            }
        }
        for (pid, fd) in pairs(&workers) {
            let Ok(fd) = fd.parse() else { continue };
            if let Ok(channel) = crate::sys::adopt_inherited_socket(fd) {
                let _ = set_cloexec(channel.as_fd(), true);
                reexec.workers.push(Adopted { pid, channel });
            }
        }
        let inherited = InheritedListeners {
            fds: listeners,
            activated,
        };
        (reexec, Some(inherited))
    }

    /// The workers the previous image handed over (once).
    pub fn take_inherited(&mut self) -> Vec<Adopted> {
        std::mem::take(&mut self.workers)
    }

    /// Replace this process image. Returns only if that failed, after
    /// restoring the descriptors' close-on-exec flags.
    pub fn exec(&self, listeners: &Listeners, workers: &[(i32, BorrowedFd<'_>)]) -> io::Error {
        let keep: Vec<BorrowedFd<'_>> = listeners
            .list
            .iter()
            .map(|l| l.as_fd())
            .chain(workers.iter().map(|w| w.1))
            .collect();
        for fd in &keep {
            if let Err(e) = set_cloexec(*fd, false) {
                restore(&keep);
                return e;
            }
        }
        let fds: String = listeners
            .list
            .iter()
            .map(|l| format!("{} {}\n", l.as_fd().as_raw_fd(), l.name))
            .collect();
        let ws: String = workers
            .iter()
            .map(|(pid, fd)| format!("{pid} {}\n", fd.as_raw_fd()))
            .collect();
        tracing::info!(exe = %self.exe.display(), "reloading: executing the binary on disk");
        let err = Command::new(&self.exe)
            .args(&self.args)
            .env(PID, std::process::id().to_string())
            .env(FDS, fds)
            .env(WORKERS, ws)
            .env(ACTIVATED, if listeners.activated { "1" } else { "0" })
            .exec();
        restore(&keep);
        err
    }
}

fn restore(fds: &[BorrowedFd<'_>]) {
    for fd in fds {
        let _ = set_cloexec(*fd, true);
    }
}

fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))
        .map(drop)
        .map_err(io::Error::from)
}
