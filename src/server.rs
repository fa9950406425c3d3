//! The builder a program calls from its `main`: configuration in, a running
//! server out. It takes the listening sockets, sets up logging, and hands
//! over to the master, which forks the workers.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::cli::{self, AppCli};
use crate::config::Config;
use crate::handler::{Handler, WorkerInfo};
use crate::listeners::{ListenError, Listeners};
use crate::master::{Exit, Master};
use crate::reexec::Reexec;
use crate::scoreboard::Scoreboard;
use crate::signals::Signals;
use crate::worker::MakeHandler;

/// A spyglass server: socket activation, prefork, idle exit and journald
/// logging around your [`Handler`].
///
/// ```no_run
/// use spyglass::{Body, Request, Response, Server};
///
/// fn main() {
///     let server = Server::from_args();
///     let result = server.serve(|_req: Request| Response::new(Body::from("Hello, world!\n")));
///     if let Err(e) = result {
///         eprintln!("hello: {e}");
///         std::process::exit(1);
///     }
/// }
/// ```
///
/// Call it early in `main`, before starting any thread: the master forks
/// its workers, and only a single-threaded process forks safely.
pub struct Server {
    config: Config,
}

/// Why a server could not start or did not end cleanly.
#[derive(Debug)]
pub enum Error {
    /// The listening sockets are unusable.
    Listen(ListenError),
    /// An operating-system call failed during startup.
    Io(io::Error),
    /// A worker failed to boot, so the server stopped.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Listen(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Failed(why) => write!(f, "{why}"),
        }
    }
}

impl StdError for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl Server {
    /// Configure from the command line and `SPYGLASS_*` variables, with the
    /// same flags as the `spyglass` binary (less its site flags). A bad
    /// flag prints one line naming it and exits with code 2.
    pub fn from_args() -> Server {
        let args: AppCli = cli::parse_or_exit();
        match args.server.config() {
            Ok(config) => Server::new(config),
            Err(e) => cli::usage_error(&e),
        }
    }

    /// Use an explicit configuration.
    pub fn new(config: Config) -> Server {
        Server { config }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serve with a handler built once, before the workers are forked: they
    /// share it copy-on-write.
    pub fn serve<H: Handler + 'static>(self, handler: H) -> Result<(), Error> {
        let mut handler = Some(handler);
        let mut make = move |_: WorkerInfo| -> Result<Box<dyn Handler>, Box<dyn StdError>> {
            match handler.take() {
                Some(h) => Ok(Box::new(h)),
                None => Err("the handler was already taken".into()),
            }
        };
        self.run(&mut make)
    }

    /// Serve with a handler built in each worker after the fork (to open a
    /// database connection per worker, say). If `init` fails, the server
    /// stops with its error instead of respawning the worker in a loop.
    pub fn serve_with<F, H, E>(self, mut init: F) -> Result<(), Error>
    where
        F: FnMut(WorkerInfo) -> Result<H, E>,
        H: Handler + 'static,
        E: Into<Box<dyn StdError>>,
    {
        let mut make = move |info: WorkerInfo| -> Result<Box<dyn Handler>, Box<dyn StdError>> {
            init(info)
                .map(|h| Box::new(h) as Box<dyn Handler>)
                .map_err(Into::into)
        };
        self.run(&mut make)
    }

    fn run(self, make: MakeHandler<'_>) -> Result<(), Error> {
        // First the sockets, while nothing else has opened a descriptor.
        let (reexec, inherited) = Reexec::capture();
        let listeners =
            Listeners::take_or_bind(&self.config.listen, inherited).map_err(Error::Listen)?;
        let warning = crate::logging::init(self.config.log_target, self.config.log_level);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        raise_fd_limit();
        for l in &listeners.list {
            tracing::info!(
                listener = %l.name,
                address = %l.local,
                activated = listeners.activated,
                "listening"
            );
        }
        let scoreboard = Scoreboard::new(self.config.workers.max(1024))?;
        let signals = Signals::for_master()?;
        let exit = Master::new(&self.config, &listeners, scoreboard, signals, reexec).run(make);
        if !listeners.activated {
            listeners.remove_created();
        }
        match exit {
            Exit::Clean => {
                tracing::info!("stopped");
                Ok(())
            }
            Exit::Failed(why) => Err(Error::Failed(why)),
        }
    }
}

/// systemd's default soft limit on open files is 1024; a server with many
/// idle keep-alive clients needs the hard limit.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
