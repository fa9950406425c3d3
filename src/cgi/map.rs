//! From a URL path to a script: which file runs, and what the script is
//! told its `SCRIPT_NAME` and `PATH_INFO` are. Filesystem lookups only; no
//! processes, no HTTP.
//!
//! The path is split on `/` as sent, each segment percent-decoded once. A
//! segment that decodes to a `/`, contains NUL or is `..` refuses the whole
//! request (404), wherever it is, since `PATH_INFO` often names files too.
//! Below the mount's directory the decoded segments are walked one by one;
//! the first that is a regular file is the script. Every lookup is an
//! `openat2(RESOLVE_BENEATH)` from the directory, so no path (symlinks
//! included) resolves outside it; where the kernel lacks openat2 the walk
//! goes segment by segment and refuses symlinks instead.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use http::StatusCode;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::unistd::{AccessFlags, access};

/// A script found for a URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The script's absolute path (symlinks resolved).
    pub file: PathBuf,
    /// The URL path up to and including the script, percent-decoded (RFC
    /// 3875 §4.1.13: "not URL-encoded"), with empty and `.` segments
    /// dropped.
    pub script_name: String,
    /// The rest of the URL path, percent-decoded.
    pub path_info: Vec<u8>,
}

/// One segment of the URL path.
struct Segment {
    decoded: Vec<u8>,
    /// Where the raw segment ends in the path.
    end: usize,
}

/// The URL path's segments as sent (empty and `.` ones dropped), each
/// decoded; `None` if one is unsafe.
fn segments(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw in path.split('/') {
        let end = start + raw.len();
        start = end + 1;
        if raw.is_empty() || raw == "." {
            continue;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        if decoded.contains(&b'/') || decoded.contains(&0) || decoded == b".." {
            return None;
        }
        if decoded == b"." {
            continue;
        }
        out.push(Segment { decoded, end });
    }
    Some(out)
}

/// Find the script for `path` (a request's URL path) under `dir` (an
/// absolute directory), mounted at the URL `prefix` (its segments).
pub fn resolve(dir: &Path, prefix: &[String], path: &str) -> Result<Target, StatusCode> {
    let segs = segments(path).ok_or(StatusCode::NOT_FOUND)?;
    if !mounted(prefix, &segs) {
        return Err(StatusCode::NOT_FOUND);
    }
    let root = open_dir(dir)?;
    let mut rel = PathBuf::new();
    let mut walk = Walk::Beneath;
    let mut cur: Option<OwnedFd> = None;
    for (k, seg) in segs.iter().enumerate().skip(prefix.len()) {
        if seg.decoded.starts_with(b".") {
            return Err(StatusCode::NOT_FOUND);
        }
        let name = OsStr::from_bytes(&seg.decoded);
        rel.push(name);
        let fd = walk.open_falling_back(&root, cur.as_ref(), &rel, name)?;
        let st = fstat(&fd).map_err(miss)?;
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => cur = Some(fd),
            SFlag::S_IFREG => return script(dir, &rel, &fd, &segs[..=k], &path[seg.end..]),
            _ => return Err(StatusCode::FORBIDDEN),
        }
    }
    // Only directories (or the mount itself): nothing to run.
    Err(StatusCode::NOT_FOUND)
}

/// The path's first segments are the prefix's.
fn mounted(prefix: &[String], segs: &[Segment]) -> bool {
    segs.len() >= prefix.len()
        && prefix
            .iter()
            .zip(segs)
            .all(|(p, s)| p.as_bytes() == s.decoded)
}

/// The mount's directory, for lookups beneath it.
fn open_dir(dir: &Path) -> Result<OwnedFd, StatusCode> {
    open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        tracing::error!(dir = %dir.display(), error = %e, "cannot open the CGI directory");
        StatusCode::INTERNAL_SERVER_ERROR
    })
}

/// The target for the regular file `fd`, found at `rel` under `dir` by the
/// segments `upto` (the prefix's included); `rest` is the raw path after
/// them. The script must be executable (403 otherwise).
fn script(
    dir: &Path,
    rel: &Path,
    fd: &OwnedFd,
    upto: &[Segment],
    rest: &str,
) -> Result<Target, StatusCode> {
    let file = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| dir.join(rel));
    match access(&file, AccessFlags::X_OK) {
        Ok(()) => {}
        Err(Errno::EACCES) => return Err(StatusCode::FORBIDDEN),
        Err(e) => return Err(miss(e)),
    }
    let mut script_name = String::new();
    for s in upto {
        script_name.push('/');
        script_name.push_str(&String::from_utf8_lossy(&s.decoded));
    }
    Ok(Target {
        file,
        script_name,
        path_info: percent_encoding::percent_decode_str(rest).collect(),
    })
}

/// How the walk opens the next segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// The whole relative path from the mount directory, beneath it.
    Beneath,
    /// One segment from the previous directory, symlinks refused (kernels
    /// before 5.6 have no openat2).
    NoSymlinks,
}

impl Walk {
    /// Open the next segment; where the kernel has no openat2, switch to
    /// the segment-by-segment walk for this and every later lookup.
    fn open_falling_back(
        &mut self,
        root: &OwnedFd,
        cur: Option<&OwnedFd>,
        rel: &Path,
        name: &OsStr,
    ) -> Result<OwnedFd, StatusCode> {
        match self.open(root, cur, rel, name) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOSYS) if *self == Walk::Beneath => {
                *self = Walk::NoSymlinks;
                self.open(root, cur, rel, name).map_err(miss)
            }
            Err(e) => Err(miss(e)),
        }
    }

    fn open(
        self,
        root: &OwnedFd,
        cur: Option<&OwnedFd>,
        rel: &Path,
        name: &OsStr,
    ) -> Result<OwnedFd, Errno> {
        match self {
            Walk::Beneath => openat2(
                root,
                rel,
                OpenHow::new()
                    .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS),
            ),
            Walk::NoSymlinks => {
                let fd = openat(
                    cur.unwrap_or(root),
                    name,
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                // With O_PATH, O_NOFOLLOW opens a symlink itself: refuse it.
                let st = fstat(&fd)?;
                if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() {
                    return Err(Errno::ELOOP);
                }
                Ok(fd)
            }
        }
    }
}

/// A failed lookup as a status: missing (or outside the directory) is 404,
/// not permitted is 403.
fn miss(e: Errno) -> StatusCode {
    match e {
        Errno::EACCES | Errno::EPERM => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("cgi/sub")).unwrap();
        for f in ["cgi/run.sh", "cgi/sub/deep.sh", "cgi/.hidden", "outside.sh"] {
            std::fs::write(p.join(f), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(p.join("cgi/plain.txt"), "x").unwrap();
        symlink("../outside.sh", p.join("cgi/escape.sh")).unwrap();
        symlink("sub/deep.sh", p.join("cgi/inner.sh")).unwrap();
        d
    }

    fn prefix() -> Vec<String> {
        vec!["cgi-bin".into()]
    }

    #[test]
    fn finds_the_first_file_and_splits_the_path() {
        let d = tree();
        let dir = d.path().canonicalize().unwrap().join("cgi");
        let t = resolve(&dir, &prefix(), "/cgi-bin/sub/deep.sh/a%20b//c/").unwrap();
        assert_eq!(t.file, dir.join("sub/deep.sh"));
        assert_eq!(t.script_name, "/cgi-bin/sub/deep.sh");
        assert_eq!(t.path_info, b"/a b//c/");
        let t = resolve(&dir, &prefix(), "//cgi-bin/./run%2esh").unwrap();
        assert_eq!(t.script_name, "/cgi-bin/run.sh");
        assert_eq!(t.path_info, b"");
        let t = resolve(&dir, &prefix(), "/cgi%2Dbin/run.sh/").unwrap();
        assert_eq!(t.script_name, "/cgi-bin/run.sh");
        assert_eq!(t.path_info, b"/");
        // A symlink that stays inside is followed; its target runs.
        let t = resolve(&dir, &prefix(), "/cgi-bin/inner.sh").unwrap();
        assert_eq!(t.file, dir.join("sub/deep.sh"));
    }

    #[test]
    fn refuses_what_it_must() {
        let d = tree();
        let dir = d.path().canonicalize().unwrap().join("cgi");
        let table = [
            ("/cgi-bin/missing.sh", StatusCode::NOT_FOUND),
            ("/cgi-bin/", StatusCode::NOT_FOUND),
            ("/cgi-bin/sub/", StatusCode::NOT_FOUND),
            ("/cgi-bin/.hidden", StatusCode::NOT_FOUND),
            ("/cgi-bin/../outside.sh", StatusCode::NOT_FOUND),
            ("/cgi-bin/%2e%2e/outside.sh", StatusCode::NOT_FOUND),
            ("/cgi-bin/run.sh/../x", StatusCode::NOT_FOUND),
            ("/cgi-bin/sub%2fdeep.sh", StatusCode::NOT_FOUND),
            ("/cgi-bin/run.sh%00", StatusCode::NOT_FOUND),
            ("/cgi-bin/escape.sh", StatusCode::NOT_FOUND),
            ("/other/run.sh", StatusCode::NOT_FOUND),
            ("/cgi-bin/plain.txt", StatusCode::FORBIDDEN),
        ];
        for (path, want) in table {
            assert_eq!(resolve(&dir, &prefix(), path), Err(want), "{path}");
        }
    }

    #[test]
    fn the_fallback_walk_refuses_symlinks() {
        let d = tree();
        let dir = d.path().canonicalize().unwrap().join("cgi");
        let root = open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let name = OsStr::new("inner.sh");
        assert_eq!(
            Walk::NoSymlinks
                .open(&root, None, Path::new(name), name)
                .err(),
            Some(Errno::ELOOP)
        );
        let name = OsStr::new("run.sh");
        assert!(
            Walk::NoSymlinks
                .open(&root, None, Path::new(name), name)
                .is_ok()
        );
    }
}
