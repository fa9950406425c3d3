//! spyglass: a socket-activated, pre-forking, systemd-native HTTP/1.1
//! server, as a library.
//!
//! systemd holds the listening socket and starts the server on the first
//! connection; spyglass takes the socket, forks workers that each run an
//! event loop, reports `READY=1` once all have booted, logs to journald, and
//! exits when idle so that systemd starts it again on the next connection,
//! without losing one. Your program supplies a [`Handler`] over the `http`
//! crate's types and gets all of that from [`Server`]:
//!
//! ```no_run
//! use spyglass::{Body, Request, Response, Server};
//!
//! let result = Server::from_args().serve(|req: Request| {
//!     Response::new(Body::from(format!("you asked for {}\n", req.uri().path())))
//! });
//! ```
//!
//! Module map (one process role per file): [`listeners`] take or bind the
//! sockets; [`lookout`] holds them without systemd and starts the master on
//! the first connection; `master` supervises workers and speaks to systemd through
//! [`notify`]; `worker` runs the event loop; `conn` drives one connection
//! through the [`request`] codec, the handler and the `response` writer.
//! Behind a proxy, `conn` reads a [`proxy_protocol`] header first and
//! settles each request's client with [`forwarded`].
//! The `spyglass` binary's handlers: [`static_files`], [`cgi`], and the
//! [`site`] that routes between them (and between sites by listener name);
//! its commands beside serving: [`ctl`] and [`host`] (`spyglass sites`).
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod buffers;
pub mod cgi;
mod channel;
mod children;
pub mod cli;
pub mod config;
mod conn;
pub mod control;
pub mod ctl;
pub mod forwarded;
#[doc(hidden)]
pub mod fuzz;
pub mod handler;
pub mod host;
pub mod listeners;
pub mod logging;
pub mod lookout;
mod master;
pub mod notify;
pub mod proxy_protocol;
mod reexec;
pub mod request;
mod response;
mod scoreboard;
pub mod server;
pub mod signals;
pub mod site;
pub mod static_files;
#[allow(unsafe_code)]
mod sys;
mod watch;
mod worker;

pub use handler::{
    Body, ConnInfo, Handler, InternalRedirect, Part, Peer, Pending, Request, RequestBody, Response,
    Source, WorkerInfo, status_response,
};
pub use server::{Error, Server};

/// The `http` crate, re-exported so that handlers need no separate
/// dependency on a matching version.
pub use http;

/// The README's Rust examples, compiled as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
