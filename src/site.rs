//! The `spyglass` binary's router: URLs under a CGI prefix go to that
//! mount's [`Cgi`] handler, all others to [`StaticFiles`].
//!
//! Routing reads the path the way the static handler would (percent-decoded
//! once, split on `/`, empty and `.` segments dropped), so that no spelling
//! of a script's URL (`/cgi%2Dbin/x`, `//cgi-bin/x`, `/./cgi-bin/x`) slips
//! past its mount to be served as a file. And when a CGI directory lies
//! inside the document root, the static handler is told to hide it
//! ([`StaticFiles::hide`]): a script's source is never sent as a file.
//!
//! [`Sites`] serves several sites from one process, one per named socket
//! (`--site NAME=ROOT`): a request goes to the site of the listener it
//! arrived on ([`ConnInfo::listener`]), others to ROOT's. That every name
//! is a socket's, and every socket has a site, is settled at startup
//! ([`crate::Server::listener_roles`]), not per request.

use std::borrow::Cow;

use crate::cgi::Cgi;
use crate::handler::{ConnInfo, Handler, Request, Response, status_response};
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

/// One [`Site`] per listener name, and one for the other listeners.
pub struct Sites {
    named: Vec<(String, Site)>,
    others: Option<Site>,
}

impl Sites {
    /// Serve every listener from `others` (ROOT), if given, until named
    /// sites are added.
    pub fn new(others: Option<Site>) -> Sites {
        Sites {
            named: Vec::new(),
            others,
        }
    }

    /// Serve the listener called `name` from `site` (a later site of the
    /// same name replaces it).
    pub fn add(mut self, name: &str, site: Site) -> Sites {
        self.named.retain(|(n, _)| n != name);
        self.named.push((name.to_owned(), site));
        self
    }

    /// The listener names served by a site of their own.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.iter().map(|(n, _)| n.as_str())
    }

    /// Whether listeners no site names are served (from ROOT).
    pub fn serves_others(&self) -> bool {
        self.others.is_some()
    }

    /// Answer one request from its listener's site. A listener with no
    /// site (impossible once startup has checked the names) is answered
    /// 421 Misdirected Request.
    pub fn serve(&self, req: Request) -> Response {
        let listener = req.extensions().get::<ConnInfo>().map(|c| &*c.listener);
        let site = listener
            .and_then(|l| self.named.iter().find(|(n, _)| n == l))
            .map(|(_, s)| s)
            .or(self.others.as_ref());
        match site {
            Some(site) => site.serve(req),
            None => status_response(http::StatusCode::MISDIRECTED_REQUEST),
        }
    }
}

impl Handler for Sites {
    fn call(&mut self, req: Request) -> Response {
        self.serve(req)
    }
}
