//! The builder a program calls from its `main`: configuration in, a running
//! server out. It takes the listening sockets, sets up logging, and hands
//! over to the master, which forks the workers.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::cli::{self, AppCli, AppCommand};
use crate::config::{Config, IdleTimeout};
use crate::control::Control;
use crate::handler::{Commands, Handler, WorkerInfo};
use crate::listeners::{ListenError, Listeners, Roles, check_roles};
use crate::lookout;
use crate::master::{Exit, Hooks, MAX_WORKERS, Master};
use crate::reexec::Reexec;
use crate::scoreboard::Scoreboard;
use crate::signals::Signals;
use crate::watch::Watch;
use crate::worker::{App, MakeHandler};

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
    /// A configuration error: answer 503 until idle, then fail with it.
    refusing: Option<String>,
    /// `BINARY check ARGS` before each reload.
    check_before_reload: bool,
    /// Application commands for `spyglass ctl app`.
    commands: Commands,
    /// Run in the master before a reload re-executes the binary.
    before_reload: Option<Box<dyn FnMut() -> Result<(), String>>>,
    /// What the handler asks of the listeners by name.
    roles: Roles,
}

/// Exit status of a run that failed (a worker could not boot, say).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for a bad flag or `SPYGLASS_*` variable.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for a configuration that cannot be served: a missing or
/// unreadable ROOT or CGI directory (`EX_CONFIG` of sysexits.h). The units
/// do not restart on it (`RestartPreventExitStatus=`).
pub const EXIT_CONFIG: i32 = 78;

/// What is wrong with a configuration that cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misconfigured {
    /// A bad flag or variable: exit [`EXIT_USAGE`].
    Usage,
    /// A flag's value cannot be served: exit [`EXIT_CONFIG`].
    Config,
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
    /// The configuration cannot be served; the server answered 503 to what
    /// systemd's socket held until it was idle.
    Config(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            Error::Listen(ListenError::BadFd { .. }) => EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Listen(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Failed(why) | Error::Config(why) => write!(f, "{why}"),
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
    /// flag prints one line naming it and exits with code 2. `APP check`
    /// prints the configuration and exits.
    ///
    /// `APP lookout` runs the Lookout instead, and never returns: it holds
    /// the sockets and starts this same program (without that word and the
    /// Lookout's own flags) on the first connection, and again after each
    /// idle exit.
    pub fn from_args() -> Server {
        let args: AppCli = cli::parse().unwrap_or_else(|e| usage_error(&e));
        match args.command {
            Some(AppCommand::Check(check)) => {
                let config = check.server.config().unwrap_or_else(|e| usage_error(&e));
                print_config(&config.describe());
                std::process::exit(0)
            }
            Some(AppCommand::Ctl(ctl)) => std::process::exit(crate::ctl::run(&ctl)),
            Some(AppCommand::Lookout(l)) => {
                let config = l.server.config().unwrap_or_else(|e| usage_error(&e));
                lookout::run_and_exit(&config, l.lookout.config(std::env::args_os()))
            }
            None => {
                let config = args.server.config().unwrap_or_else(|e| usage_error(&e));
                Server::new(config).check_before_reload(true)
            }
        }
    }

    /// Use an explicit configuration.
    pub fn new(config: Config) -> Server {
        Server {
            config,
            refusing: None,
            check_before_reload: false,
            commands: Commands::default(),
            before_reload: None,
            roles: Roles::default(),
        }
    }

    /// Say which listeners the handler serves by name (the `spyglass`
    /// binary's `--site NAME=ROOT`, routed by [`crate::ConnInfo::listener`]):
    /// once the sockets are taken, each name must be a listener's, and
    /// unless `roles.others`, every listener must have a name in it. So
    /// must each `--proxy-protocol NAME`. A mismatch is a configuration
    /// error naming it: exit 78, after answering 503 until idle under
    /// socket activation.
    pub fn listener_roles(mut self, roles: Roles) -> Server {
        self.roles = roles;
        self
    }

    /// Register an application command: `spyglass ctl app NAME [ARGS...]`
    /// runs `f(ARGS)` in every worker (or the one `--worker PID` names) and
    /// prints each worker's reply under its pid. It runs in the worker's
    /// event loop between events: answer quickly, never block. `stats` and
    /// `ping` are the engine's own; a name registered twice keeps the
    /// later. A handler can also answer commands itself
    /// ([`Handler::command`]).
    ///
    /// ```no_run
    /// use spyglass::{Body, Request, Response, Server};
    ///
    /// let server = Server::from_args().command("hello", |args| {
    ///     Ok(format!("hello, {}", args.join(" ")))
    /// });
    /// server.serve(|_req: Request| Response::new(Body::from("hi\n")))?;
    /// # Ok::<(), spyglass::Error>(())
    /// ```
    pub fn command<F>(mut self, name: &str, f: F) -> Server
    where
        F: FnMut(&[String]) -> Result<String, String> + 'static,
    {
        self.commands.add(name, Box::new(f));
        self
    }

    /// Run `f` in the master before a reload re-executes the binary (after
    /// the configuration check passed): an error refuses the reload, and
    /// the running server carries on. For work that must happen once per
    /// deployment, not once per worker: checking a migration, warming a
    /// shared cache on disk.
    pub fn before_reload<F>(mut self, f: F) -> Server
    where
        F: FnMut() -> Result<(), String> + 'static,
    {
        self.before_reload = Some(Box::new(f));
        self
    }

    /// Before a reload (SIGHUP), run `BINARY check ARGS` (the binary on
    /// disk, this process's arguments) and reload only if it exits 0, so
    /// that a broken configuration or binary never replaces a working
    /// server. On for [`Server::from_args`] and the `spyglass` binary,
    /// whose command lines have `check`; turn it on for a command line of
    /// your own only if `check` there means the same.
    pub fn check_before_reload(mut self, yes: bool) -> Server {
        self.check_before_reload = yes;
        self
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serve with a handler built once, before the workers are forked: they
    /// share it copy-on-write.
    pub fn serve<H: Handler + 'static>(self, handler: H) -> Result<(), Error> {
        self.run(&mut built_once(handler))
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
        let (mut reexec, inherited) = Reexec::capture();
        let listeners =
            Listeners::take_or_bind(&self.config.listen, inherited).map_err(Error::Listen)?;
        reexec.checkable(self.check_before_reload);
        let names: Vec<&str> = listeners.list.iter().map(|l| l.name.as_str()).collect();
        if let Err(why) = check_roles(&names, &self.roles, &self.config.proxy_protocol) {
            return self.refuse(listeners, reexec, why);
        }
        self.supervise(listeners, reexec, make)
    }

    /// The listeners do not fit the configuration: fail with `why` (exit
    /// 78); under socket activation, first answer the waiting clients 503
    /// until idle, as [`exit_misconfigured`] does.
    fn refuse(self, listeners: Listeners, reexec: Reexec, why: String) -> Result<(), Error> {
        if !listeners.activated {
            listeners.remove_created();
            return Err(Error::Config(why));
        }
        self.answer_503(listeners, reexec, why)
    }

    /// Answer every request 503 until idle, for `why`: one worker, which
    /// the master gives its own 503 handler while it is refusing.
    fn answer_503(
        mut self,
        listeners: Listeners,
        reexec: Reexec,
        why: String,
    ) -> Result<(), Error> {
        self.config.workers = 1;
        self.refusing = Some(why);
        let mut nothing = |_: WorkerInfo| -> Result<Box<dyn Handler>, Box<dyn StdError>> {
            Err("refusing: the master's 503 handler serves".into())
        };
        self.supervise(listeners, reexec, &mut nothing)
    }

    fn supervise(
        mut self,
        listeners: Listeners,
        reexec: Reexec,
        make: MakeHandler<'_>,
    ) -> Result<(), Error> {
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
        if let Some(why) = &self.refusing {
            tracing::error!(
                "configuration error: {why}; answering 503 until idle, then exiting with status {EXIT_CONFIG}"
            );
        }
        // Room for the largest pool plus the successors of recycled workers.
        let scoreboard = Scoreboard::new(2 * MAX_WORKERS)?;
        let signals = Signals::all()?;
        let control = self.open_control();
        let watch = self.open_watch();
        let hooks = Hooks {
            before_reload: self
                .before_reload
                .as_mut()
                .map(|f| &mut **f as &mut dyn FnMut() -> Result<(), String>),
        };
        let app = App {
            make,
            commands: &mut self.commands,
        };
        let exit = Master::new(&self.config, &listeners, scoreboard, signals, reexec)
            .refusing(self.refusing.clone())
            .control(control)
            .watch(watch)
            .hooks(hooks)
            .run(app);
        if !listeners.activated {
            listeners.remove_created();
        }
        let result = match (exit, self.refusing) {
            (Exit::Failed(why), _) => Err(Error::Failed(why)),
            (Exit::Clean, Some(why)) => {
                tracing::error!("stopped; exiting with status {EXIT_CONFIG}: {why}");
                Err(Error::Config(why))
            }
            (Exit::Clean, None) => {
                tracing::info!("stopped");
                Ok(())
            }
        };
        // journald files an event under our unit only while we exist.
        crate::logging::flush(Duration::from_secs(1));
        result
    }
}

impl Server {
    /// The control socket: `--control-socket`, or `control.sock` in the
    /// runtime directory systemd made for us. A failure is logged, not
    /// fatal: serving matters more than being asked about it.
    fn open_control(&self) -> Option<Control> {
        let path = self.config.control_socket.clone().or_else(|| {
            let dir = std::env::var_os("RUNTIME_DIRECTORY")?;
            let first = std::env::split_paths(&dir).next()?;
            Some(first.join("control.sock"))
        })?;
        match Control::open(&path) {
            Ok(c) => {
                tracing::info!(path = %path.display(), "control socket");
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no control socket");
                None
            }
        }
    }

    /// The files `--reload-on-change` names, watched.
    fn open_watch(&self) -> Option<Watch> {
        let paths = &self.config.reload_on_change;
        if paths.is_empty() {
            return None;
        }
        match Watch::new(paths) {
            Ok(w) => {
                tracing::info!(dirs = ?w.describe(), "reloading when watched files change");
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files for --reload-on-change");
                None
            }
        }
    }
}

/// A handler built before the fork, handed to the (one) worker `make` call
/// of each fork: every worker gets its copy-on-write copy.
fn built_once<H: Handler + 'static>(
    handler: H,
) -> impl FnMut(WorkerInfo) -> Result<Box<dyn Handler>, Box<dyn StdError>> {
    let mut handler = Some(handler);
    move |_| match handler.take() {
        Some(h) => Ok(Box::new(h)),
        None => Err("the handler was already taken".into()),
    }
}

/// One line for a bad flag, then exit 2 (see [`exit_misconfigured`]).
fn usage_error(line: &str) -> ! {
    exit_misconfigured(Misconfigured::Usage, line, None)
}

/// End a process whose flags or configuration cannot be served: one line on
/// stderr naming the problem, then exit 2 ([`Misconfigured::Usage`]) or 78
/// ([`Misconfigured::Config`]).
///
/// Under socket activation a client is already waiting in systemd's socket,
/// and an exit that leaves it there makes systemd start the service again at
/// once, for ever. So when systemd passed sockets, spyglass first serves
/// them with a handler that answers every request `503 Service Unavailable`
/// (the reason goes to the log and `STATUS=`, never to clients), as long as
/// requests keep coming, and exits with the status once idle: one start per
/// idle period instead of a restart loop, and no client left hanging.
/// `config` is the configuration if the flags themselves were valid.
pub fn exit_misconfigured(why: Misconfigured, line: &str, config: Option<Config>) -> ! {
    let (code, hint) = match why {
        Misconfigured::Usage => (EXIT_USAGE, " (try --help)"),
        Misconfigured::Config => (EXIT_CONFIG, ""),
    };
    eprintln!("{}: {line}{hint}", cli::program());
    let (reexec, inherited) = Reexec::capture();
    let listeners = match Listeners::take_or_bind(&[], inherited) {
        Ok(l) if l.activated && !l.list.is_empty() => l,
        _ => std::process::exit(code),
    };
    let server = Server::new(config.unwrap_or_else(fallback_config));
    match server.answer_503(listeners, reexec, line.to_owned()) {
        Ok(()) => std::process::exit(code),
        Err(Error::Config(_)) => std::process::exit(code),
        Err(e) => {
            eprintln!("{}: {e}", cli::program());
            std::process::exit(code)
        }
    }
}

/// The configuration to refuse with when the flags themselves are bad:
/// the defaults, with the idle timeout from the environment if it parses,
/// so that a unit's `SPYGLASS_IDLE_TIMEOUT=` still bounds the refusing run.
fn fallback_config() -> Config {
    let mut config = Config::default();
    if let Some(t) = std::env::var("SPYGLASS_IDLE_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<IdleTimeout>().ok())
    {
        config.idle_timeout = t;
    }
    config
}

/// Print `flag value` pairs, aligned.
pub fn print_config(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:width$}  {v}");
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
