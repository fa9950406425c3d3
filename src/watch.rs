//! Watched files (`--reload-on-change PATH`): inotify tells the master a
//! file changed, and once all is quiet for [`SETTLE_MS`], it reloads in
//! place. A build that rewrites a binary in several steps, or an editor
//! that saves through a temporary file, makes one reload, not ten.
//!
//! A file is watched through its directory, by name, so that a file
//! replaced by a rename (as `cargo build` and most editors do) is still
//! watched afterwards; a directory (a CGI directory, say) is watched
//! itself, not recursively.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Quiet time after the last change before reloading.
pub const SETTLE_MS: u64 = 500;

/// What is watched.
pub struct Watch {
    inotify: Inotify,
    /// Per watch: the directory, and the one name in it that matters
    /// (`None`: any entry of a watched directory).
    watches: Vec<(WatchDescriptor, PathBuf, Option<OsString>)>,
    /// The last change and when it is due (quiet for long enough).
    pending: Option<(PathBuf, u64)>,
}

impl Watch {
    /// Watch `paths`; a path that does not exist is watched for its
    /// appearance (its directory must exist).
    pub fn new(paths: &[PathBuf]) -> io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO;
        let mut watches = Vec::new();
        for path in paths {
            let (dir, name) = if path.is_dir() {
                (path.clone(), None)
            } else {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = path.file_name().map(OsString::from).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no file name to watch")
                })?;
                (dir, Some(name))
            };
            let wd = inotify.add_watch(&dir, flags).map_err(|e| {
                io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", dir.display()))
            })?;
            watches.push((wd, dir, name));
        }
        Ok(Watch {
            inotify,
            watches,
            pending: None,
        })
    }

    /// Read what changed (non-blocking); called whenever the master wakes.
    pub fn read(&mut self) {
        let now = crate::scoreboard::now_ms();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let Some((_, dir, name)) = self.watches.iter().find(|(wd, _, _)| *wd == e.wd)
                else {
                    continue;
                };
                let matters = match (name, &e.name) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                };
                if matters {
                    let path = match &e.name {
                        Some(n) => dir.join(n),
                        None => dir.clone(),
                    };
                    self.pending = Some((path, now + SETTLE_MS));
                }
            }
        }
    }

    /// When the pending change is due, if any.
    pub fn due(&self) -> Option<u64> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// The changed path, once quiet for [`SETTLE_MS`].
    pub fn take_due(&mut self, now: u64) -> Option<PathBuf> {
        match &self.pending {
            Some((_, at)) if *at <= now => self.pending.take().map(|(p, _)| p),
            _ => None,
        }
    }

    /// The directories watched, for the log.
    pub fn describe(&self) -> Vec<&Path> {
        self.watches.iter().map(|(_, d, _)| d.as_path()).collect()
    }
}

impl AsFd for Watch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}
