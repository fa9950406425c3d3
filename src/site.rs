//! The `spyglass` binary's router: URLs under a CGI prefix go to that
//! mount's [`Cgi`] handler, all others to [`StaticFiles`].
//!
//! Routing reads the path the way the static handler would (percent-decoded
//! once, split on `/`, empty and `.` segments dropped), so that no spelling
//! of a script's URL (`/cgi%2Dbin/x`, `//cgi-bin/x`, `/./cgi-bin/x`) slips
//! past its mount to be served as a file. And when a CGI directory lies
//! inside the document root, the static handler is told to hide it
//! ([`StaticFiles::hide`]): a script's source is never sent as a file.

use std::borrow::Cow;

use crate::cgi::Cgi;
use crate::handler::{Handler, Request, Response};
use crate::static_files::StaticFiles;

/// Static files plus CGI mounts.
pub struct Site {
    statics: StaticFiles,
    /// Longest prefix first.
    mounts: Vec<Cgi>,
}

impl Site {
    /// Serve `statics`, and nothing else until CGI mounts are added.
    pub fn new(statics: StaticFiles) -> Site {
        Site {
            statics,
            mounts: Vec::new(),
        }
    }

    /// Add a CGI mount; the longest matching prefix wins.
    pub fn cgi(self, cgi: Cgi) -> Site {
        let Site {
            statics,
            mut mounts,
        } = self;
        let statics = statics.hide(cgi.dir());
        mounts.push(cgi);
        mounts.sort_by_key(|c| std::cmp::Reverse(c.prefix_segments().len()));
        Site { statics, mounts }
    }

    /// Answer one request.
    pub fn serve(&self, req: Request) -> Response {
        if !self.mounts.is_empty() {
            // Borrowed unless the path has escapes.
            let decoded: Cow<'_, [u8]> =
                percent_encoding::percent_decode_str(req.uri().path()).into();
            let segments = || {
                decoded
                    .split(|&b| b == b'/')
                    .filter(|s| !s.is_empty() && *s != b".")
            };
            let mount = self.mounts.iter().find(|cgi| {
                let prefix = cgi.prefix_segments();
                let mut path = segments();
                prefix.iter().all(|p| path.next() == Some(p.as_bytes()))
            });
            if let Some(cgi) = mount {
                return cgi.serve(req);
            }
        }
        self.statics.serve(&req)
    }
}

impl Handler for Site {
    fn call(&mut self, req: Request) -> Response {
        self.serve(req)
    }
}
