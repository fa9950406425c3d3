//! Handler: CGI scripts (RFC 3875), run without ever blocking the worker.
//!
//! A worker serves many connections from one thread, so [`Cgi::serve`]
//! only finds the script (`map`), builds its environment (`env`) and
//! starts it (`script`); it returns at once a [`Body::pending`] response.
//! The engine polls that when the script's epoll descriptor turns readable:
//! each poll feeds the request body to the script's stdin, logs its stderr
//! and reads its stdout until the header block (`output`) is complete.
//! Then the response goes out with a [`Body::stream`] body: the same
//! script, read as the client takes the bytes (chunked unless the script
//! gave a `Content-Length`), never buffered whole.
//!
//! Past `--cgi-timeout` the engine drops the response (504 if nothing was
//! sent, else a cut connection), and dropping it kills the script's whole
//! process group and reaps it. A script that prints no valid header block
//! is a 502; one that cannot be started, a 500.
//!
//! Compared with Apache's mod_cgi: no blocking reads in the server, the
//! body streamed both ways, no `argv` from the query string (the
//! php-cgi CVE-2012-1823 route), `Proxy` and `Authorization` withheld,
//! signal mask and dispositions reset, every descriptor but 0, 1, 2 closed,
//! and a timeout that kills the scripts' children too.

mod env;
pub(crate) mod map;
pub(crate) mod output;
mod script;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::{StatusCode, Uri};
use nix::sys::epoll::Epoll;

use crate::handler::{
    Body, Handler, InternalRedirect, Pending, Request, Response, Source, status_response,
};
use output::{HeadParser, Reply};
use script::Script;

/// How scripts are run, for every mount.
#[derive(Clone, Debug)]
pub struct CgiOptions {
    /// How long a script may run, from its start (`--cgi-timeout`).
    pub timeout: Duration,
    /// Pass the `Authorization` header on as `HTTP_AUTHORIZATION`
    /// (`--cgi-pass-authorization`); withheld by default, since a script
    /// could otherwise read credentials meant for the server.
    pub pass_authorization: bool,
    /// The static files' root, for `DOCUMENT_ROOT` and `PATH_TRANSLATED`
    /// (made absolute by [`Cgi::new`]).
    pub document_root: PathBuf,
}

/// Runs the scripts in one directory for the URLs under one prefix.
#[derive(Debug)]
pub struct Cgi {
    prefix: String,
    segments: Vec<String>,
    dir: PathBuf,
    opts: CgiOptions,
}

impl Cgi {
    /// Serve the scripts in `dir` under the URL path `prefix` (as in
    /// `/cgi-bin`). Fails if `dir` or the document root is not a directory.
    pub fn new(prefix: &str, dir: impl AsRef<Path>, mut opts: CgiOptions) -> io::Result<Cgi> {
        let dir = dir.as_ref().canonicalize()?;
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        // Scripts are found by name in it: a directory this user may not
        // enter would answer every request 403. A configuration error.
        nix::unistd::access(&dir, nix::unistd::AccessFlags::X_OK).map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("this user may not enter it ({})", io::Error::from(e)),
            )
        })?;
        opts.document_root = opts.document_root.canonicalize()?;
        let segments: Vec<String> = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Cgi {
            prefix: format!("/{}", segments.join("/")),
            segments,
            dir,
            opts,
        })
    }

    /// The URL prefix, normalised (`/cgi-bin`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix's path segments.
    pub fn prefix_segments(&self) -> &[String] {
        &self.segments
    }

    /// The scripts' directory, absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Answer one request: 404 when no script matches, 403 when it may not
    /// run, 500 when it cannot be started, else the script's response
    /// (pending until it has printed its header block).
    pub fn serve(&self, req: Request) -> Response {
        let target = match map::resolve(&self.dir, &self.segments, req.uri().path()) {
            Ok(t) => t,
            Err(code) => return status_response(code),
        };
        let vars = env::build(
            &req,
            &target,
            &env::Site {
                document_root: &self.opts.document_root,
                pass_authorization: self.opts.pass_authorization,
            },
        );
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
        ] {
            headers.remove(h);
        }
        let deadline = Instant::now() + self.opts.timeout;
        match Script::spawn(&target.file, vars, body, &target.script_name, deadline) {
            Ok(script) => Response::new(Body::pending(CgiPending {
                epoll: Rc::clone(script.epoll()),
                script: Some(script),
                phase: Phase::Head(HeadParser::new()),
                headers,
            })),
            Err(e) => {
                tracing::error!(
                    script = target.script_name,
                    file = %target.file.display(),
                    error = %e,
                    "cannot start the script"
                );
                status_response(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl Handler for Cgi {
    fn call(&mut self, req: Request) -> Response {
        self.serve(req)
    }
}

/// A script whose header block has not all arrived.
struct CgiPending {
    /// The script's epoll set, also held by the script: it outlives the
    /// hand-over to the stream, so the engine's registration stays valid.
    epoll: Rc<Epoll>,
    /// None once handed to the response.
    script: Option<Script>,
    phase: Phase,
    /// The request's headers, for a local redirect.
    headers: HeaderMap,
}

enum Phase {
    /// Reading the header block.
    Head(HeadParser),
    /// A local redirect: discarding the rest of the output until its end,
    /// so that the script has finished before the new request is served.
    Redirect(Uri),
}

/// Bytes of a local redirect's body thrown away per poll at most.
const DISCARD_BUDGET: usize = 256 * 1024;

/// What one poll came to.
enum Outcome {
    Wait,
    Document(StatusCode, HeaderMap, Option<u64>),
    Redirect(Uri),
}

impl Pending for CgiPending {
    fn poll(&mut self) -> io::Result<Option<Response>> {
        let Some(script) = self.script.as_mut() else {
            return Err(io::Error::other("CGI response polled after it was given"));
        };
        script.pump();
        let outcome = read_head(script, &mut self.phase).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", script.name()),
            )
        })?;
        match outcome {
            Outcome::Wait => Ok(None),
            Outcome::Redirect(uri) => {
                self.script = None; // ends and reaps it
                let mut res = Response::new(Body::empty());
                res.extensions_mut().insert(InternalRedirect {
                    uri,
                    headers: std::mem::take(&mut self.headers),
                });
                Ok(Some(res))
            }
            Outcome::Document(code, headers, len) => {
                let Some(script) = self.script.take() else {
                    return Err(io::Error::other("CGI script vanished"));
                };
                let mut res = Response::new(Body::stream(CgiStream { script, streak: 0 }, len));
                *res.status_mut() = code;
                *res.headers_mut() = headers;
                Ok(Some(res))
            }
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    fn deadline(&self) -> Option<Instant> {
        self.script.as_ref().and_then(Script::deadline)
    }
}

/// Read stdout until the header block is complete (and, for a local
/// redirect, until the output ends) or nothing is left to read now.
fn read_head(script: &mut Script, phase: &mut Phase) -> Result<Outcome, String> {
    let mut buf = [0u8; 16 * 1024];
    let mut discarded = 0;
    loop {
        if discarded > DISCARD_BUDGET {
            // A script pouring out a body it should not have: come back
            // when the loop has served others (its pipe stays readable).
            return Ok(Outcome::Wait);
        }
        let n = match script.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Outcome::Wait),
            Err(e) => return Err(format!("reading its output: {e}")),
        };
        match phase {
            Phase::Head(parser) => {
                if n == 0 {
                    return Err("output ended before the end of its header block".into());
                }
                let Some((head, rest)) = parser.push(&buf[..n]).map_err(|e| e.to_string())? else {
                    continue;
                };
                match head.reply().map_err(|e| e.to_string())? {
                    Reply::Local(uri) => *phase = Phase::Redirect(uri),
                    Reply::Document {
                        status,
                        headers,
                        len,
                    } => {
                        script.unread(rest);
                        return Ok(Outcome::Document(status, headers, len));
                    }
                }
            }
            Phase::Redirect(uri) if n == 0 => return Ok(Outcome::Redirect(uri.clone())),
            Phase::Redirect(_) => discarded += n, // a local redirect's body is ignored
        }
    }
}

/// The script's output after the header block, as a response body.
struct CgiStream {
    script: Script,
    /// Bytes handed on since the engine last waited for the script.
    streak: usize,
}

/// After this many bytes in a row, a stream says "nothing now" once, so
/// that a fast script and a fast client do not keep the worker to
/// themselves (the epoll set is still readable: the engine comes straight
/// back after serving the others).
const STREAK: usize = 1 << 20;

impl Source for CgiStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.streak >= STREAK {
            self.streak = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.script.deadline().is_some_and(|d| Instant::now() >= d) {
            // The engine checks the deadline only while it waits; a script
            // that never pauses is stopped here (dropping it logs why).
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.script.pump();
        let n = match self.script.read(buf) {
            Ok(0) if self.script.finished() => 0,
            Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => n,
            Err(e) => {
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.streak = 0;
                }
                return Err(e);
            }
        };
        self.streak += n;
        Ok(n)
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.script.fd())
    }

    fn deadline(&self) -> Option<Instant> {
        self.script.deadline()
    }
}
