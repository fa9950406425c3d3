//! The served directory, held open, and the one way to open anything under
//! it.
//!
//! Every open is `openat2` relative to the root's descriptor with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel refuses, during
//! the walk itself, any symlink or `..` that would leave the root, and any
//! `/proc` magic link, so there is no window between checking a path and
//! opening it. Symlinks that stay inside the root resolve normally.
//!
//! Kernels before 5.6 answer `ENOSYS` (and the seccomp filters of some
//! container runtimes `EPERM`, which a probe at start tells from a real
//! refusal). Then, as strictly: canonicalise the path, check that the real
//! path lies under the root's real path, open that real path with
//! `O_NOFOLLOW`, and check the opened descriptor's path again through
//! `/proc/self/fd`, which closes the race a rename could open in between.
//!
//! Files are opened `O_NONBLOCK`, so a FIFO or a device planted under the
//! root cannot block a worker; callers serve regular files only.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::{FileStat, Mode, fstat};
use nix::unistd::{AccessFlags, faccessat};

/// Why a path could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing there (or nothing openable: a socket, a name too long).
    NotFound,
    /// The path leads out of the root, or through a magic link.
    Escape,
    /// The permissions say no.
    Denied,
    /// Out of descriptors.
    Busy,
    /// Anything else; worth an error log.
    Other(Errno),
}

impl OpenError {
    fn from_errno(e: Errno) -> OpenError {
        match e {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG | Errno::ENXIO | Errno::ENODEV => {
                OpenError::NotFound
            }
            Errno::EXDEV | Errno::ELOOP => OpenError::Escape,
            Errno::EACCES | Errno::EPERM => OpenError::Denied,
            Errno::EMFILE | Errno::ENFILE => OpenError::Busy,
            e => OpenError::Other(e),
        }
    }
}

/// How to open: for reading the contents, or only to stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Stat,
}

impl Access {
    fn flags(self) -> OFlag {
        match self {
            Access::Read => {
                OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY
            }
            Access::Stat => OFlag::O_PATH | OFlag::O_CLOEXEC,
        }
    }
}

/// The root directory, open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Its canonical path, for the fallback.
    real: PathBuf,
    /// Canonical directories beneath it that are never served.
    hidden: Vec<PathBuf>,
    /// Whether openat2 is available (probed at start, cleared on ENOSYS).
    openat2: Cell<bool>,
    /// Whether this process has said that it uses the fallback.
    announced: Cell<bool>,
}

/// How often a resolution that lost a race with a rename is retried.
const RETRIES: usize = 3;

impl Root {
    /// Open `path` as the root (`O_PATH | O_DIRECTORY`).
    pub fn open_dir(path: &Path) -> io::Result<Root> {
        let fd = open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // Every file is opened beneath the root by name: without search
        // permission on it (a ROOT the service's user may not enter) every
        // request would be 403. That is a configuration error: say so now.
        faccessat(&fd, ".", AccessFlags::X_OK, AtFlags::AT_EACCESS).map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("this user may not enter it ({})", io::Error::from(e)),
            )
        })?;
        let real = std::fs::canonicalize(path)?;
        // Probe once: a kernel before 5.6 answers ENOSYS, and the seccomp
        // filters of older container runtimes answer EPERM for a call they
        // do not know; either way every later open would fail.
        let probe = OpenHow::new()
            .flags(Access::Stat.flags())
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let usable = match openat2(fd.as_fd(), ".", probe) {
            Ok(_) => true,
            Err(Errno::ENOSYS | Errno::EPERM) => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Root {
            fd,
            real,
            hidden: Vec::new(),
            openat2: Cell::new(usable),
            announced: Cell::new(false),
        })
    }

    /// Never open anything under `dir` (if it lies beneath the root),
    /// whatever path or symlink leads there: such opens are `NotFound`.
    pub fn hide(&mut self, dir: &Path) {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if dir.starts_with(&self.real) {
            self.hidden.push(dir);
        }
    }

    /// Open `rel` (a path from `path::resolve`, or one built from it) beneath
    /// the root.
    pub fn open(&self, rel: &str, how: Access) -> Result<File, OpenError> {
        let file = self.open_beneath(rel, how)?;
        if !self.hidden.is_empty() {
            // Where the kernel actually arrived: one readlink, and only
            // when something is hidden.
            let opened = fd_path(&file)?;
            if self.hidden.iter().any(|h| opened.starts_with(h)) {
                return Err(OpenError::NotFound);
            }
        }
        Ok(file)
    }

    fn open_beneath(&self, rel: &str, how: Access) -> Result<File, OpenError> {
        if self.openat2.get() {
            let spec = OpenHow::new()
                .flags(how.flags())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            for _ in 0..RETRIES {
                match openat2(self.fd.as_fd(), rel, spec) {
                    Ok(fd) => return Ok(File::from(fd)),
                    // The kernel could not rule out an escape through a
                    // concurrent rename; the walk may be retried.
                    Err(Errno::EAGAIN | Errno::EINTR) => continue,
                    Err(Errno::ENOSYS) => {
                        self.openat2.set(false);
                        return self.open_checked(rel, how);
                    }
                    Err(e) => return Err(OpenError::from_errno(e)),
                }
            }
            return Err(OpenError::Other(Errno::EAGAIN));
        }
        self.open_checked(rel, how)
    }

    /// `rel`'s metadata, following symlinks only while they stay beneath
    /// the root.
    pub fn stat(&self, rel: &str) -> Result<FileStat, OpenError> {
        let file = self.open(rel, Access::Stat)?;
        fstat(file.as_fd()).map_err(OpenError::from_errno)
    }

    /// The fallback: real path under the root's real path, opened without
    /// following a final symlink, and checked again once open.
    fn open_checked(&self, rel: &str, how: Access) -> Result<File, OpenError> {
        if !self.announced.replace(true) {
            // Said here, not at the probe: logging starts after the root
            // is opened.
            tracing::warn!("openat2 is unavailable; checking real paths under ROOT instead");
        }
        let real = std::fs::canonicalize(self.real.join(rel)).map_err(io_error)?;
        if !real.starts_with(&self.real) {
            return Err(OpenError::Escape);
        }
        let file = File::from(
            open(&real, how.flags() | OFlag::O_NOFOLLOW, Mode::empty())
                .map_err(OpenError::from_errno)?,
        );
        if !fd_path(&file)?.starts_with(&self.real) {
            return Err(OpenError::Escape);
        }
        Ok(file)
    }

    /// Force the fallback (tests).
    #[cfg(test)]
    pub fn without_openat2(self) -> Root {
        self.openat2.set(false);
        self.announced.set(true);
        self
    }
}

/// The path an open descriptor refers to, from `/proc/self/fd`.
fn fd_path(file: &File) -> Result<PathBuf, OpenError> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(io_error)
}

fn io_error(e: io::Error) -> OpenError {
    OpenError::from_errno(Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// outer/{secret.txt, root/{a.txt, sub/b.txt, links...}}
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(outer.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        symlink("/etc/passwd", root.join("abs")).unwrap();
        symlink("../secret.txt", root.join("climb")).unwrap();
        symlink(outer.path(), root.join("outdir")).unwrap();
        symlink("../a.txt", root.join("sub/up")).unwrap();
        symlink("sub", root.join("subl")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
        (outer, root)
    }

    fn read(root: &Root, rel: &str) -> Result<String, OpenError> {
        let mut s = String::new();
        root.open(rel, Access::Read)?
            .read_to_string(&mut s)
            .unwrap();
        Ok(s)
    }

    #[test]
    fn beneath_both_ways() {
        let (_outer, dir) = tree();
        for root in [
            Root::open_dir(&dir).unwrap(),
            Root::open_dir(&dir).unwrap().without_openat2(),
        ] {
            let cases: &[(&str, Result<&str, OpenError>)] = &[
                ("a.txt", Ok("a")),
                ("sub/b.txt", Ok("b")),
                ("sub/up", Ok("a")),
                ("subl/b.txt", Ok("b")),
                ("subl/up", Ok("a")),
                ("abs", Err(OpenError::Escape)),
                ("climb", Err(OpenError::Escape)),
                ("outdir/secret.txt", Err(OpenError::Escape)),
                ("magic", Err(OpenError::Escape)),
                ("../secret.txt", Err(OpenError::Escape)),
                ("missing", Err(OpenError::NotFound)),
                ("a.txt/x", Err(OpenError::NotFound)),
            ];
            for (rel, want) in cases {
                let got = read(&root, rel);
                assert_eq!(got.as_deref().map_err(|e| *e), *want, "{rel} {root:?}");
            }
        }
    }

    #[test]
    fn hidden_directories_whatever_the_way_in() {
        let (_outer, dir) = tree();
        for mut root in [
            Root::open_dir(&dir).unwrap(),
            Root::open_dir(&dir).unwrap().without_openat2(),
        ] {
            root.hide(&dir.join("sub"));
            let cases: &[(&str, Result<&str, OpenError>)] = &[
                ("a.txt", Ok("a")),
                ("sub/b.txt", Err(OpenError::NotFound)),
                ("subl/b.txt", Err(OpenError::NotFound)),
                // A link inside the hidden directory that leads out of it.
                ("sub/up", Ok("a")),
            ];
            for (rel, want) in cases {
                let got = read(&root, rel);
                assert_eq!(got.as_deref().map_err(|e| *e), *want, "{rel} {root:?}");
            }
            assert_eq!(root.stat("sub").err(), Some(OpenError::NotFound));
        }
    }
}
