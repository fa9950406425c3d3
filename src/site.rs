//! The `spyglass` binary's router: URLs under a CGI prefix go to that
//! mount's [`Cgi`] handler, all others to [`StaticFiles`].
//!
//! Routing reads the path the way the static handler would (percent-decoded
//! once, split on `/`, empty and `.` segments dropped), so that no spelling
//! of a script's URL (`/cgi%2Dbin/x`, `//cgi-bin/x`, `/./cgi-bin/x`) slips
//! past its mount to be served as a file. And when a CGI directory lies
//! inside the document root, a static request that resolves into it is
//! refused (404): a script's source is never sent as a file.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use http::StatusCode;

use crate::cgi::Cgi;
use crate::handler::{Handler, Request, Response, status_response};
use crate::static_files::StaticFiles;

/// Static files plus CGI mounts.
pub struct Site {
    statics: StaticFiles,
    /// The document root, absolute, if it resolves.
    root: Option<PathBuf>,
    /// Longest prefix first.
    mounts: Vec<Cgi>,
    /// CGI directories inside the root.
    hidden: Vec<PathBuf>,
}

impl Site {
    /// Serve `statics`, whose files are under `root`.
    pub fn new(root: impl AsRef<Path>, statics: StaticFiles) -> Site {
        Site {
            statics,
            root: root.as_ref().canonicalize().ok(),
            mounts: Vec::new(),
            hidden: Vec::new(),
        }
    }

    /// Add a CGI mount; the longest matching prefix wins.
    pub fn cgi(mut self, cgi: Cgi) -> Site {
        if self.root.as_ref().is_some_and(|r| cgi.dir().starts_with(r)) {
            self.hidden.push(cgi.dir().to_path_buf());
        }
        self.mounts.push(cgi);
        self.mounts
            .sort_by_key(|c| std::cmp::Reverse(c.prefix_segments().len()));
        self
    }

    /// Answer one request.
    pub fn serve(&self, req: Request) -> Response {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(req.uri().path()).collect();
        let segments: Vec<&[u8]> = decoded
            .split(|&b| b == b'/')
            .filter(|s| !s.is_empty() && *s != b".")
            .collect();
        for cgi in &self.mounts {
            let prefix = cgi.prefix_segments();
            let under = segments.len() >= prefix.len()
                && prefix
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.as_bytes() == *s);
            if under {
                return cgi.serve(req);
            }
        }
        if self.is_hidden(&segments) {
            return status_response(StatusCode::NOT_FOUND);
        }
        self.statics.serve(&req)
    }

    /// The static path falls inside a CGI directory.
    fn is_hidden(&self, segments: &[&[u8]]) -> bool {
        let (Some(root), false) = (&self.root, self.hidden.is_empty()) else {
            return false;
        };
        let mut path = root.clone();
        for s in segments {
            if *s == b".." {
                return false; // the static handler refuses it
            }
            path.push(OsStr::from_bytes(s));
        }
        path.canonicalize()
            .is_ok_and(|p| self.hidden.iter().any(|h| p.starts_with(h)))
    }
}

impl Handler for Site {
    fn call(&mut self, req: Request) -> Response {
        self.serve(req)
    }
}
