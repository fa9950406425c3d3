//! A tour of the library API: a handler built per worker after the fork,
//! request bodies, streamed responses, and what happens when a handler
//! panics. Run it as `cargo run --example app -- --listen 127.0.0.1:8080`.
//!
//! Routes:
//! - `/`           a greeting, with the worker's pid and how many requests
//!   it has answered (state kept per worker, no lock needed)
//! - `/echo`       the request body back, whatever its framing
//! - `/stream?n=N` N lines, produced as the client reads them (chunked)
//! - `/panic`      the handler panics: the client gets 500, the worker lives
//! - `/interim`    the handler answers 103, not a final status: 500
//! - `/later?ms=N` answered after N ms by a pending response: the worker
//!   serves other clients meanwhile
//! - `/redirect`   an internal redirect: answered as `/` would be
//! - `/framing`    tries to set framing headers itself; the engine drops them
//! - `/whoami`     the connection's facts ([`ConnInfo`]): the client (as a
//!   PROXY header or a trusted proxy says), the socket's own peer, the
//!   scheme and the listener's name
//!
//! Set `APP_FAIL_INIT=1` to make the per-worker init fail: the server then
//! stops with that error rather than respawning workers in a loop.
//!
//! Lifecycle hooks and commands:
//! - each worker's handler is built after the fork (`serve_with`), and its
//!   `stop` runs after its last request of a graceful stop: here it logs
//!   how many requests the worker answered;
//! - `spyglass ctl app answered` asks every worker how many requests it
//!   answered (the handler's own command, with access to its state);
//! - `spyglass ctl app echo WORDS` is a command registered on the server
//!   (`Server::command`), the same in every worker;
//! - before a reload, the master runs a hook: it refuses the reload while
//!   the file named by `APP_HOLD_RELOADS` exists.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use spyglass::http::header::{CONTENT_TYPE, HeaderValue};
use spyglass::http::{StatusCode, Uri};
use spyglass::{
    Body, ConnInfo, Handler, InternalRedirect, Pending, Request, Response, Server, WorkerInfo,
};

/// Per-worker state: built after the fork, so each worker has its own.
struct App {
    worker: WorkerInfo,
    answered: u64,
}

impl Handler for App {
    fn command(&mut self, name: &str, _args: &[String]) -> Option<Result<String, String>> {
        (name == "answered").then(|| Ok(self.answered.to_string()))
    }

    fn stop(&mut self) {
        eprintln!(
            "app: worker {} stopping after {} requests",
            self.worker.pid, self.answered
        );
    }

    fn call(&mut self, mut req: Request) -> Response {
        self.answered += 1;
        match req.uri().path() {
            "/" => text(format!(
                "hello from worker {} (pid {}), request {} of this worker\n",
                self.worker.index, self.worker.pid, self.answered
            )),
            "/echo" => {
                let mut body = Vec::new();
                match req.body_mut().read_to_end(&mut body) {
                    Ok(_) => Response::new(Body::from(body)),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            "/stream" => {
                let n = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("n="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(10u64);
                let mut res = Response::new(Body::reader(Lines { next: 0, end: n }, None));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                res
            }
            "/panic" => panic!("the /panic route panics on purpose"),
            // An interim status is not an answer: the engine answers 500.
            "/interim" => error(StatusCode::EARLY_HINTS, "too early"),
            "/later" => {
                let ms = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(100u64);
                match Later::after(Duration::from_millis(ms)) {
                    Ok(later) => Response::new(Body::pending(later)),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            "/framing" => {
                let mut res = text("framed by the engine\n".into());
                for (name, value) in [
                    ("content-length", "999"),
                    ("transfer-encoding", "gzip"),
                    ("connection", "upgrade"),
                    ("date", "yesterday"),
                ] {
                    res.headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                res
            }
            "/redirect" => {
                let mut res = Response::new(Body::empty());
                res.extensions_mut().insert(InternalRedirect {
                    uri: Uri::from_static("/"),
                    headers: req.headers().clone(),
                });
                res
            }
            "/whoami" => match req.extensions().get::<ConnInfo>() {
                Some(c) => text(format!(
                    "peer={} socket_peer={} scheme={} listener={}\n",
                    c.peer,
                    c.socket_peer,
                    c.scheme(),
                    c.listener
                )),
                None => error(StatusCode::INTERNAL_SERVER_ERROR, "no connection info"),
            },
            _ => error(StatusCode::NOT_FOUND, "no such route"),
        }
    }
}

/// A response that is ready when a timer fires: the worker waits on the
/// timer's descriptor in its event loop instead of sleeping.
struct Later {
    timer: TimerFd,
    started: Instant,
}

impl Later {
    fn after(delay: Duration) -> io::Result<Later> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        timer.set(
            Expiration::OneShot(delay.into()),
            TimerSetTimeFlags::empty(),
        )?;
        Ok(Later {
            timer,
            started: Instant::now(),
        })
    }
}

impl Pending for Later {
    fn poll(&mut self) -> io::Result<Option<Response>> {
        match self.timer.wait() {
            Ok(()) => Ok(Some(text(format!(
                "answered after {} ms\n",
                self.started.elapsed().as_millis()
            )))),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.timer.as_fd()
    }
}

/// A body produced piece by piece as the client takes it.
struct Lines {
    next: u64,
    end: u64,
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.next == self.end {
            return Ok(0);
        }
        let line = format!("line {}\n", self.next);
        if buf.len() < line.len() {
            return Err(io::Error::other("buffer too small"));
        }
        self.next += 1;
        buf[..line.len()].copy_from_slice(line.as_bytes());
        Ok(line.len())
    }
}

fn text(s: String) -> Response {
    let mut res = Response::new(Body::from(s));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

fn error(status: StatusCode, why: &str) -> Response {
    let mut res = text(format!("{why}\n"));
    *res.status_mut() = status;
    res
}

fn main() {
    let hold = std::env::var_os("APP_HOLD_RELOADS");
    let server = Server::from_args()
        .command("echo", |args| Ok(args.join(" ")))
        .before_reload(move || match &hold {
            Some(path) if std::path::Path::new(path).exists() => {
                Err(format!("{} exists", path.to_string_lossy()))
            }
            _ => Ok(()),
        });
    let result = server.serve_with(|worker: WorkerInfo| {
        if std::env::var_os("APP_FAIL_INIT").is_some() {
            return Err(io::Error::other("APP_FAIL_INIT is set"));
        }
        Ok(App {
            worker,
            answered: 0,
        })
    });
    if let Err(e) = result {
        eprintln!("app: {e}");
        std::process::exit(1);
    }
}
