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
//!
//! Before it replaces itself, the master can have the new binary check the
//! configuration (`BINARY check ARGS`, as `nginx -t`): a reload into a
//! binary or configuration that cannot start is refused, and the running
//! image carries on.
//!
//! A leaf: it knows descriptors, names and pids, not what a listener is.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

const PID: &str = "SPYGLASS_INHERIT_PID";

/// Whether an environment variable is part of the hand-over (one of
/// those below), which only a re-executed image may read.
pub fn is_handover_var(name: &str) -> bool {
    name.starts_with("SPYGLASS_INHERIT_")
}

const FDS: &str = "SPYGLASS_INHERIT_FDS";
const WORKERS: &str = "SPYGLASS_INHERIT_WORKERS";
const ACTIVATED: &str = "SPYGLASS_INHERIT_ACTIVATED";
const IMAGE: &str = "SPYGLASS_INHERIT_IMAGE";

/// A worker adopted from the previous image, with its channel owned.
pub struct Adopted {
    pub pid: i32,
    channel: OwnedFd,
}

impl Adopted {
    /// The channel's descriptor.
    pub fn into_channel(self) -> OwnedFd {
        self.channel
    }
}

/// What the previous image passed, and how to exec the next one.
pub struct Reexec {
    exe: PathBuf,
    /// The name we were started under, kept across the exec: a unit may
    /// give one (`ExecStart=@BINARY NAME ...`) that names the site in the
    /// journal and in ps.
    arg0: Option<OsString>,
    args: Vec<OsString>,
    workers: Vec<Adopted>,
    /// The binary understands `check` (its command line is spyglass's).
    checkable: bool,
    /// The image that re-executed us (binary and build), if one did.
    pub previous_image: Option<String>,
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
        let exe = crate::sys::own_binary();
        let arg0 = std::env::args_os().next();
        let args = std::env::args_os().skip(1).collect();
        let ours = std::env::var(PID).ok() == Some(std::process::id().to_string());
        let fds = std::env::var(FDS).unwrap_or_default();
        let workers = std::env::var(WORKERS).unwrap_or_default();
        let activated = std::env::var(ACTIVATED).is_ok_and(|v| v == "1");
        let image = std::env::var(IMAGE).ok();
        for key in [PID, FDS, WORKERS, ACTIVATED, IMAGE] {
            crate::sys::remove_env(key);
        }
        let mut reexec = Reexec {
            exe,
            arg0,
            args,
            workers: Vec::new(),
            checkable: false,
            previous_image: None,
        };
        if !ours {
            return (reexec, None);
        }
        reexec.previous_image = image;
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

    /// Say that the binary's command line is spyglass's, so that
    /// `BINARY check ARGS` checks the configuration before a reload.
    pub fn checkable(&mut self, yes: bool) {
        self.checkable = yes;
    }

    /// Start `BINARY check ARGS` (the binary on disk, the running image's
    /// arguments and environment), its stderr piped; None when the binary's
    /// command line is not known to have `check`.
    pub fn spawn_check(&self) -> Option<io::Result<Child>> {
        if !self.checkable {
            return None;
        }
        let mut cmd = Command::new(&self.exe);
        cmd.arg("check")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::exec_clean(&mut cmd);
        Some(cmd.spawn())
    }

    /// Replace this process image, keeping `listeners` (descriptor and
    /// name) and the channels to `workers` (pid and descriptor) open for
    /// the new one. Returns only if that failed, after restoring the
    /// descriptors' close-on-exec flags.
    pub fn exec(
        &self,
        listeners: &[(BorrowedFd<'_>, &str)],
        activated: bool,
        workers: &[(i32, BorrowedFd<'_>)],
        image: &str,
    ) -> io::Error {
        let keep: Vec<BorrowedFd<'_>> = listeners
            .iter()
            .map(|l| l.0)
            .chain(workers.iter().map(|w| w.1))
            .collect();
        for fd in &keep {
            if let Err(e) = set_cloexec(*fd, false) {
                restore(&keep);
                return e;
            }
        }
        let fds: String = listeners
            .iter()
            .map(|(fd, name)| format!("{} {name}\n", fd.as_raw_fd()))
            .collect();
        let ws: String = workers
            .iter()
            .map(|(pid, fd)| format!("{pid} {}\n", fd.as_raw_fd()))
            .collect();
        tracing::info!(exe = %self.exe.display(), "reloading: executing the binary on disk");
        let mut cmd = Command::new(&self.exe);
        if let Some(arg0) = &self.arg0 {
            cmd.arg0(arg0);
        }
        let err = cmd
            .args(&self.args)
            .env(PID, std::process::id().to_string())
            .env(FDS, fds)
            .env(WORKERS, ws)
            .env(ACTIVATED, if activated { "1" } else { "0" })
            .env(IMAGE, image)
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
