//! `--pid-file`: the Lookout's pid in a file, for init scripts (OpenRC's
//! `pidfile=`, `start-stop-daemon --pidfile`) and for people.
//!
//! Written atomically (a temporary file in the same directory, renamed over
//! the path), so a reader never sees it empty or half-written; removed on
//! exit, but only while it still names us. A file that names a live
//! process running the same program (by its `comm`) is another Lookout's:
//! we refuse to start. One that names a dead pid, or a pid now reused by
//! another program (after a reboot or a container restart), is stale and
//! taken over. Two Lookouts started in the same instant could both see the
//! file free; the listening address, which only one of them can bind, is
//! the real exclusion.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// A pid file we hold.
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

/// Why the pid file cannot be ours.
#[derive(Debug)]
pub enum PidFileError {
    /// Another live Lookout's pid is in it.
    Held {
        /// The file.
        path: PathBuf,
        /// The pid in it.
        pid: u32,
    },
    /// It cannot be written (a missing directory, permissions, ...).
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidFileError::Held { path, pid } => write!(
                f,
                "pid file {}: pid {pid} is running and holds it (another lookout?)",
                path.display()
            ),
            PidFileError::Io { path, err } => write!(f, "pid file {}: {err}", path.display()),
        }
    }
}

impl std::error::Error for PidFileError {}

impl PidFile {
    /// Write our pid to `path` unless another live Lookout holds it.
    pub fn claim(path: &Path) -> Result<PidFile, PidFileError> {
        let me = std::process::id();
        let io = |err: io::Error| PidFileError::Io {
            path: path.to_path_buf(),
            err,
        };
        if let Some(pid) = read_pid(path) {
            if pid != me && held_by_a_live_lookout(pid) {
                return Err(PidFileError::Held {
                    path: path.to_path_buf(),
                    pid,
                });
            }
        }
        let name = path
            .file_name()
            .ok_or_else(|| io(io::Error::other("not a file name")))?;
        let tmp = path.with_file_name(format!(".{}.{me}.tmp", name.to_string_lossy()));
        std::fs::write(&tmp, format!("{me}\n")).map_err(io)?;
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            pid: me,
        })
    }

    /// Remove the file if it still names us.
    pub fn remove(&self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Alive (a permission error still means it exists) and running the same
/// program as we do, as far as /proc can tell.
fn held_by_a_live_lookout(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match (comm(&pid.to_string()), comm("self")) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => true, // cannot tell: assume it is
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_refuse_take_over_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookout.pid");
        let me = std::process::id();

        let held = PidFile::claim(&path).unwrap();
        assert_eq!(read_pid(&path), Some(me));
        // Our own pid in it (a container restarted as PID 1 again) is ours.
        PidFile::claim(&path).unwrap();

        // A live process running another program: a stale file.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&path, format!("{}\n", other.id())).unwrap();
        PidFile::claim(&path).unwrap();
        assert_eq!(read_pid(&path), Some(me));
        // A dead pid: stale.
        other.kill().unwrap();
        other.wait().unwrap();
        std::fs::write(&path, format!("{}\n", other.id())).unwrap();
        PidFile::claim(&path).unwrap();

        // Not ours any more: left alone on removal.
        std::fs::write(&path, "1\n").unwrap();
        held.remove();
        assert!(path.exists());
        std::fs::write(&path, format!("{me}\n")).unwrap();
        held.remove();
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary left"
        );

        let missing = dir.path().join("no/such/dir/x.pid");
        assert!(matches!(
            PidFile::claim(&missing),
            Err(PidFileError::Io { .. })
        ));
    }
}
