//! Command-line flags, and nothing else: clap lives here only.
//!
//! [`ServerArgs`] holds the flags every spyglass server takes, the `spyglass`
//! binary and any library user's binary alike; a library user may flatten it
//! into a clap parser of their own. [`SiteArgs`] adds the built-in handlers'
//! flags for the `spyglass` binary. Every flag can also be set from the
//! environment as `SPYGLASS_<FLAG>` (so a unit can use `Environment=`); list
//! flags take comma-separated values there.
//!
//! [`parse`] turns a bad value into one line naming the flag; the caller
//! exits with code 2 ([`crate::server::exit_misconfigured`]). Subcommands
//! ([`Command`], [`AppCommand`]) come first on the command line; a ROOT
//! with a subcommand's name is written `./check`. `lookout` takes the
//! server's flags and its own ([`LookoutArgs`]), and starts the server (the
//! same binary, without the subcommand word and without the Lookout's own
//! flags: [`LookoutArgs::config`]).
//!
//! The same definitions make the manual pages and the shell completions
//! (`spyglass man`, `spyglass completions SHELL`: [`docs`]), so `--help`,
//! `man spyglass` and tab completion cannot disagree.

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    Config, HttpConfig, IdleTimeout, Listen, LogTarget, LookoutConfig, ProxyProtocol, Size,
    Timeout, Timespan, check_socket_name,
};
use crate::forwarded::{ProxyHeaders, Trust, TrustedProxy};

pub mod docs;

/// `--version`: the package version, and the git revision when built from
/// a checkout ("0.1.0 (git 0123456789ab)"; see build.rs).
pub const VERSION: &str = env!("SPYGLASS_VERSION");

/// Flags shared by every spyglass server.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on when systemd passes no socket: HOST:PORT,
    /// `[::1]:PORT` or unix:/PATH (repeatable); NAME=ADDR names the
    /// socket, as FileDescriptorName= does (for --site, --proxy-protocol).
    /// A TCP address given N times gets N SO_REUSEPORT sockets, each
    /// polled by its own worker (at least N workers).
    #[arg(
        long,
        value_name = "[NAME=]ADDR",
        env = "SPYGLASS_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub listen: Vec<Listen>,

    /// Worker processes [default: the CPUs available]
    #[arg(short = 'w', long, value_name = "N", env = "SPYGLASS_WORKERS")]
    pub workers: Option<NonZeroUsize>,

    /// Exit after this long without work (30s, 5min, 0 or infinity = never)
    /// [default: 60s when socket-activated, never otherwise]
    #[arg(long, value_name = "DURATION", env = "SPYGLASS_IDLE_TIMEOUT")]
    pub idle_timeout: Option<IdleTimeout>,

    /// Time a graceful stop may take before what is left is killed.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_GRACEFUL_TIMEOUT",
        default_value = "30s"
    )]
    pub graceful_timeout: Timeout,

    /// Replace a worker whose event loop has been stuck this long
    /// (0 = never).
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_WORKER_TIMEOUT",
        default_value = "60s"
    )]
    pub worker_timeout: Timespan,

    /// Where logs go: journald when stderr is connected to it, else stderr.
    #[arg(
        long,
        value_enum,
        value_name = "TARGET",
        env = "SPYGLASS_LOG_TARGET",
        default_value = "auto"
    )]
    pub log_target: LogTargetArg,

    /// The most verbose level logged.
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        env = "SPYGLASS_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: LogLevelArg,

    /// One log event per request (on or off).
    #[arg(long, value_name = "on|off", env = "SPYGLASS_ACCESS_LOG", default_value = "on",
          value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// The control socket for `spyglass ctl` [default: control.sock in
    /// $RUNTIME_DIRECTORY under systemd, none otherwise]
    #[arg(long, value_name = "PATH", env = "SPYGLASS_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,

    /// Replace a worker, gracefully, after this many requests (plus up to a
    /// tenth, at random, so that workers do not all go at once).
    #[arg(long, value_name = "N", env = "SPYGLASS_WORKER_MAX_REQUESTS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub worker_max_requests: Option<u64>,

    /// Replace a worker, gracefully, after this long (plus up to a tenth).
    #[arg(long, value_name = "DURATION", env = "SPYGLASS_WORKER_MAX_LIFETIME")]
    pub worker_max_lifetime: Option<Timeout>,

    /// Replace a worker, gracefully, once its resident memory exceeds this.
    #[arg(long, value_name = "SIZE", env = "SPYGLASS_WORKER_MAX_MEMORY")]
    pub worker_max_memory: Option<Size>,

    /// Reload in place when this file or directory changes (repeatable),
    /// after it has been quiet for half a second.
    #[arg(
        long,
        value_name = "PATH",
        env = "SPYGLASS_RELOAD_ON_CHANGE",
        value_delimiter = ','
    )]
    pub reload_on_change: Vec<PathBuf>,

    /// Longest request line, else 414.
    #[arg(
        long,
        value_name = "SIZE",
        env = "SPYGLASS_MAX_REQUEST_LINE",
        default_value = "8K"
    )]
    pub max_request_line: Size,

    /// Largest request head, else 431.
    #[arg(
        long,
        value_name = "SIZE",
        env = "SPYGLASS_MAX_HEAD",
        default_value = "32K"
    )]
    pub max_head: Size,

    /// Most header fields in a request, else 431.
    #[arg(long, value_name = "N", env = "SPYGLASS_MAX_HEADERS", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_headers: u16,

    /// Largest request body, else 413.
    #[arg(
        long,
        value_name = "SIZE",
        env = "SPYGLASS_MAX_BODY",
        default_value = "16M"
    )]
    pub max_body: Size,

    /// Request bodies larger than this are kept in a temporary file, not in
    /// memory.
    #[arg(
        long,
        value_name = "SIZE",
        env = "SPYGLASS_BODY_BUFFER",
        default_value = "64K"
    )]
    pub body_buffer: Size,

    /// Time to receive a request head, else 408.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_HEADER_TIMEOUT",
        default_value = "20s"
    )]
    pub header_timeout: Timeout,

    /// Longest silence while receiving a request body, else 408.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_BODY_TIMEOUT",
        default_value = "30s"
    )]
    pub body_timeout: Timeout,

    /// How long an idle keep-alive connection stays open.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_KEEPALIVE_TIMEOUT",
        default_value = "15s"
    )]
    pub keepalive_timeout: Timeout,

    /// Drop a client that accepts no response bytes for this long.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_WRITE_TIMEOUT",
        default_value = "30s"
    )]
    pub write_timeout: Timeout,

    /// Requests served on one connection before it is closed (0 = no limit).
    #[arg(
        long,
        value_name = "N",
        env = "SPYGLASS_MAX_REQUESTS",
        default_value_t = 10_000
    )]
    pub max_requests: u64,

    /// Most open connections per worker.
    #[arg(long, value_name = "N", env = "SPYGLASS_MAX_CONNECTIONS", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Expect a PROXY protocol header (v1 or v2) first on every connection
    /// to the socket NAME, or to all sockets (repeatable). Its address
    /// becomes the client's; a connection without a valid header within
    /// 5 s (or --header-timeout, if shorter) is closed unanswered. Only
    /// the proxy may be able to reach such a socket.
    #[arg(long, value_name = "NAME|all", env = "SPYGLASS_PROXY_PROTOCOL",
          value_delimiter = ',', value_parser = parse_proxy_protocol)]
    pub proxy_protocol: Vec<String>,

    /// Believe this proxy's forwarding headers about the client (see
    /// --proxy-headers): an address, a CIDR range, or unix for the Unix
    /// socket's peers (repeatable). Walking the list from the right, the
    /// first address that is not a trusted proxy is the client. Applied
    /// after the PROXY header: the peer it names is the one checked.
    #[arg(
        long,
        value_name = "CIDR|unix",
        env = "SPYGLASS_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<TrustedProxy>,

    /// The headers trusted proxies maintain; the other kind is ignored, so
    /// that a client cannot pass its own through: x-forwarded
    /// (X-Forwarded-For and X-Forwarded-Proto) or forwarded (RFC 7239).
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        env = "SPYGLASS_PROXY_HEADERS",
        default_value = "x-forwarded"
    )]
    pub proxy_headers: ProxyHeadersArg,
}

/// The built-in handlers' flags (the `spyglass` binary).
#[derive(Args, Clone, Debug)]
pub struct SiteArgs {
    /// Directory of files to serve (on the sockets no --site names)
    /// [default: . when no --site is given]
    #[arg(value_name = "ROOT", env = "SPYGLASS_ROOT",
          value_hint = clap::ValueHint::DirPath)]
    pub root: Option<PathBuf>,

    /// Serve the socket NAME (FileDescriptorName=, or --listen NAME=ADDR)
    /// from its own ROOT (repeatable). Sockets no --site names are served
    /// from the positional ROOT; without one, each socket needs a --site.
    #[arg(long, value_name = "NAME=ROOT", env = "SPYGLASS_SITE", value_delimiter = ',',
          value_parser = parse_site)]
    pub site: Vec<(String, PathBuf)>,

    /// Run CGI scripts from DIR for URLs under PREFIX, as in
    /// /cgi-bin=./cgi-bin (repeatable); NAME:PREFIX=DIR mounts them in the
    /// --site NAME only, else they serve ROOT's sockets.
    #[arg(long, value_name = "[NAME:]PREFIX=DIR", env = "SPYGLASS_CGI", value_delimiter = ',',
          value_parser = parse_cgi_mount)]
    pub cgi: Vec<CgiMount>,

    /// Time a CGI script may run; then its process group is killed (504).
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_CGI_TIMEOUT",
        default_value = "60s"
    )]
    pub cgi_timeout: Timeout,

    /// Pass the Authorization header to CGI scripts (as HTTP_AUTHORIZATION).
    #[arg(long, env = "SPYGLASS_CGI_PASS_AUTHORIZATION")]
    pub cgi_pass_authorization: bool,

    /// Serve files and directories whose names start with a dot.
    #[arg(long, env = "SPYGLASS_SHOW_HIDDEN")]
    pub show_hidden: bool,

    /// List the contents of directories that have no index.html.
    #[arg(long, env = "SPYGLASS_LIST_DIRS")]
    pub list_dirs: bool,

    /// Cache-Control header for static files, as in "max-age=3600".
    #[arg(long, value_name = "VALUE", env = "SPYGLASS_CACHE_CONTROL")]
    pub cache_control: Option<String>,
}

/// The `spyglass` binary's command line.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "spyglass",
    version = VERSION,
    about = "A socket-activated, pre-forking HTTP/1.1 server",
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Something other than serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// What to serve.
    #[command(flatten)]
    pub site: SiteArgs,
    /// How to serve it.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The `spyglass` binary's subcommands.
#[derive(Subcommand, Clone, Debug)]
// Built once per process: `check` carrying every flag costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Check the configuration as the service would load it (flags,
    /// SPYGLASS_* variables, ROOT and CGI directories opened), print it,
    /// and exit 0, or 78 with the reason.
    Check(SiteCheck),
    /// Ask a running server (over its control socket) or tell it what to
    /// do; never starts one.
    Ctl(CtlArgs),
    /// The sites of the template units (spyglass@NAME.socket and .service),
    /// as systemd sees them: socket listening, awake or asleep, when each
    /// last woke and how many times. Starts nothing.
    Sites(SitesArgs),
    /// Hold the listening sockets without systemd: start the server on the
    /// first connection, and again after each idle exit.
    ///
    /// The Lookout binds the --listen addresses and holds nothing else. On
    /// the first connection (left waiting in the backlog) it starts the
    /// server as systemd would: this binary, without `lookout` and the
    /// Lookout's own options, with the sockets as descriptors 3, 4, ...,
    /// LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES and a NOTIFY_SOCKET that the
    /// Lookout reads. The server then behaves as under socket activation (a
    /// 60 s idle timeout by default); after it exits, the Lookout waits
    /// again.
    ///
    /// A server that exits with status 2 or 78 is not started again for
    /// 60 s (or until SIGHUP); one that crashes, exits before READY=1 or
    /// sends none within --boot-timeout, after 1 s, then 2, 4, ... up to
    /// 60 s. Meanwhile each connection is answered 503 with Retry-After and
    /// closed.
    ///
    /// TERM and QUIT stop the server gracefully, then the Lookout; INT
    /// stops both at once; HUP reloads the running server; TTIN and TTOU are
    /// passed on. If the Lookout dies, the server gets SIGTERM. It reaps
    /// every orphan handed to it, also as PID 1 of a container.
    Lookout(SiteLookoutArgs),
    /// Print a completion script for SHELL to stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Print a manual page (roff) to stdout: spyglass(1), or COMMAND's.
    Man {
        /// The subcommand whose page to print.
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// `spyglass ctl`.
#[derive(Args, Clone, Debug)]
#[command(after_help = "Commands:
  status                        the master, the listeners and every worker
  reload                        check the configuration, then reload in place
  stop                          stop gracefully
  workers N                     run N workers
  recycle [PID|all]             replace workers gracefully, one at a time
  app [--worker PID] NAME ARGS  an application command, to every worker
                                (stats and ping are built in)

Exit status: 0 done, 1 failed, 2 bad usage, 3 not running, 4 not allowed.")]
pub struct CtlArgs {
    /// The server's control socket [default: /run/spyglass/default/control.sock,
    /// or /run/spyglass/SITE/control.sock with --site]
    #[arg(long, value_name = "PATH", env = "SPYGLASS_CONTROL_SOCKET")]
    pub socket: Option<PathBuf>,
    /// The site of a template unit (spyglass@SITE.service) to ask.
    #[arg(long, value_name = "SITE", conflicts_with = "socket")]
    pub site: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments.
    #[arg(value_name = "COMMAND", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `spyglass sites`.
#[derive(Args, Clone, Debug)]
#[command(
    after_help = "Columns: SITE (the instance name), SOCKET (listening, inactive, failed), \
STATE (awake, asleep, failed), LAST WOKE (the service's last start), WAKES (its starts in this \
boot's journal), LISTEN (the socket's addresses).

Exit status: 0 listed, 1 systemd could not be asked."
)]
pub struct SitesArgs {
    /// Print the sites as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `spyglass check`: the same flags as serving.
#[derive(Args, Clone, Debug)]
pub struct SiteCheck {
    /// What would be served.
    #[command(flatten)]
    pub site: SiteArgs,
    /// How.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The command line of a library user's server: the shared flags only.
#[derive(Parser, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct AppCli {
    /// Something other than serving.
    #[command(subcommand)]
    pub command: Option<AppCommand>,
    /// The shared flags.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A library user's server's subcommands.
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Clone, Debug)]
pub enum AppCommand {
    /// Check the flags and SPYGLASS_* variables, print the configuration,
    /// and exit 0, or 2 with the reason.
    Check(AppCheck),
    /// Ask a running server (over its control socket) or tell it what to
    /// do; never starts one.
    Ctl(CtlArgs),
    /// Hold the listening sockets without systemd: start the server on the
    /// first connection, and again after each idle exit.
    Lookout(AppLookoutArgs),
}

/// `check` for a library user's server.
#[derive(Args, Clone, Debug)]
pub struct AppCheck {
    /// The shared flags.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A `--cgi` mount: `[NAME:]PREFIX=DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgiMount {
    /// The `--site` it belongs to; `None` for ROOT's.
    pub site: Option<String>,
    /// The URL prefix, without a trailing slash.
    pub prefix: String,
    /// The scripts' directory.
    pub dir: PathBuf,
}

impl std::fmt::Display for CgiMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(site) = &self.site {
            write!(f, "{site}:")?;
        }
        write!(f, "{}={}", self.prefix, self.dir.display())
    }
}

/// `--proxy-headers`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ProxyHeadersArg {
    /// X-Forwarded-For and X-Forwarded-Proto (nginx, Caddy, HAProxy's
    /// option forwardfor).
    XForwarded,
    /// Forwarded, RFC 7239 (HAProxy's option forwarded).
    Forwarded,
}

/// The Lookout's own flags (`spyglass lookout`), never passed to the
/// server it starts.
#[derive(Args, Clone, Debug)]
pub struct LookoutArgs {
    /// Write the Lookout's pid to this file (atomically), remove it on exit;
    /// refuse to start while another live Lookout's pid is in it.
    #[arg(long, value_name = "PATH", env = "SPYGLASS_PID_FILE")]
    pub pid_file: Option<PathBuf>,

    /// A server that has not reported READY=1 this long after its start is
    /// killed as hung.
    #[arg(
        long,
        value_name = "DURATION",
        env = "SPYGLASS_BOOT_TIMEOUT",
        default_value = "30s"
    )]
    pub boot_timeout: Timeout,
}

/// `spyglass lookout`: the Lookout's flags, and the flags of the server it
/// starts (checked now, passed on as given).
#[derive(Args, Clone, Debug)]
pub struct SiteLookoutArgs {
    /// The Lookout's own flags.
    #[command(flatten)]
    pub lookout: LookoutArgs,
    /// What the server serves.
    #[command(flatten)]
    pub site: SiteArgs,
    /// How it serves it.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `lookout` in a library user's binary: the Lookout's flags and the
/// shared server flags.
#[derive(Args, Clone, Debug)]
pub struct AppLookoutArgs {
    /// The Lookout's own flags.
    #[command(flatten)]
    pub lookout: LookoutArgs,
    /// The server's flags.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `--log-target`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogTargetArg {
    /// journald when stderr is connected to it, else stderr.
    Auto,
    /// The native journal protocol, with structured fields.
    Journald,
    /// Text lines on stderr.
    Stderr,
}

/// `--log-level`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogLevelArg {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Startup, stops, worker deaths and access events.
    Info,
    /// More detail (worker boots, rejected requests).
    Debug,
    /// Everything.
    Trace,
}

impl ServerArgs {
    /// The validated configuration these flags describe.
    pub fn config(&self) -> Result<Config, String> {
        let size = |flag: &str, s: Size| {
            usize::try_from(s.0).map_err(|_| format!("--{flag}: {} is too large", s.0))
        };
        let http = HttpConfig {
            max_request_line: size("max-request-line", self.max_request_line)?,
            max_head: size("max-head", self.max_head)?,
            max_headers: usize::from(self.max_headers),
            max_body: self.max_body.0,
            body_buffer: size("body-buffer", self.body_buffer)?,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
            keepalive_timeout: self.keepalive_timeout.0,
            write_timeout: self.write_timeout.0,
            max_requests: self.max_requests,
            max_connections: self.max_connections as usize,
            trust: Trust {
                proxies: self.trusted_proxy.clone(),
                headers: match self.proxy_headers {
                    ProxyHeadersArg::XForwarded => ProxyHeaders::XForwarded,
                    ProxyHeadersArg::Forwarded => ProxyHeaders::Forwarded,
                },
            },
        };
        if http.max_request_line < 64 {
            return Err("--max-request-line: must be at least 64 bytes".into());
        }
        if http.max_head < http.max_request_line {
            return Err("--max-head: must be at least --max-request-line".into());
        }
        let proxy_protocol = if self.proxy_protocol.is_empty() {
            ProxyProtocol::Off
        } else if self.proxy_protocol.iter().any(|n| n == "all") {
            ProxyProtocol::All
        } else {
            let mut names = self.proxy_protocol.clone();
            names.dedup();
            ProxyProtocol::Named(names)
        };
        Ok(Config {
            listen: self.listen.clone(),
            proxy_protocol,
            workers: self
                .workers
                .map_or_else(crate::config::default_workers, NonZeroUsize::get),
            idle_timeout: self.idle_timeout.unwrap_or(IdleTimeout::Auto),
            graceful_timeout: self.graceful_timeout.0,
            worker_timeout: self.worker_timeout.0,
            log_target: match self.log_target {
                LogTargetArg::Auto => LogTarget::Auto,
                LogTargetArg::Journald => LogTarget::Journald,
                LogTargetArg::Stderr => LogTarget::Stderr,
            },
            log_level: match self.log_level {
                LogLevelArg::Error => tracing::Level::ERROR,
                LogLevelArg::Warn => tracing::Level::WARN,
                LogLevelArg::Info => tracing::Level::INFO,
                LogLevelArg::Debug => tracing::Level::DEBUG,
                LogLevelArg::Trace => tracing::Level::TRACE,
            },
            access_log: self.access_log,
            control_socket: self.control_socket.clone(),
            recycle: crate::config::Recycle {
                max_requests: self.worker_max_requests,
                max_lifetime: self.worker_max_lifetime.map(|t| t.0),
                max_memory: self.worker_max_memory.map(|s| s.0),
            },
            reload_on_change: self.reload_on_change.clone(),
            http,
        })
    }
}

impl LookoutArgs {
    /// The Lookout's settings, with the server's command line: `args` (our
    /// own, `std::env::args_os()`) less the subcommand word and the
    /// Lookout's flags.
    pub fn config(&self, args: impl IntoIterator<Item = OsString>) -> LookoutConfig {
        let own = Self::own_flags();
        LookoutConfig {
            pid_file: self.pid_file.clone(),
            boot_timeout: self.boot_timeout.0,
            master_args: Self::master_argv(args, &own),
            master_env_removed: own.into_iter().filter_map(|f| f.env).collect(),
        }
    }

    /// The long names and environment twins of the Lookout's own flags,
    /// from clap's own description of them (so they cannot drift).
    fn own_flags() -> Vec<OwnFlag> {
        LookoutArgs::augment_args(clap::Command::new("lookout"))
            .get_arguments()
            .filter_map(|a| {
                Some(OwnFlag {
                    long: a.get_long()?.to_owned(),
                    env: a.get_env().and_then(|e| e.to_str()).map(str::to_owned),
                })
            })
            .collect()
    }

    /// `argv` less the program name, the subcommand word (the first
    /// argument: clap takes no flag before a subcommand) and the Lookout's
    /// own flags (`--flag VALUE` and `--flag=VALUE`); whatever follows `--`
    /// is positional and kept. Every flag of ours takes a value, and clap
    /// refuses a value that starts with `--`, so in a command line it
    /// accepted a `--pid-file` word is always the flag.
    fn master_argv(args: impl IntoIterator<Item = OsString>, own: &[OwnFlag]) -> Vec<OsString> {
        let mut out = Vec::new();
        let mut args = args.into_iter().skip(1).peekable();
        if args.peek().is_some_and(|a| a == "lookout") {
            args.next();
        }
        let mut positional_only = false;
        while let Some(a) = args.next() {
            if positional_only {
                out.push(a);
                continue;
            }
            let text = a.to_string_lossy();
            if text == "--" {
                positional_only = true;
                out.push(a);
                continue;
            }
            let ours = text.strip_prefix("--").and_then(|rest| {
                own.iter().find_map(|f| {
                    let tail = rest.strip_prefix(f.long.as_str())?;
                    if tail.is_empty() {
                        Some(true) // the value is the next word
                    } else {
                        tail.starts_with('=').then_some(false)
                    }
                })
            });
            match ours {
                Some(true) => {
                    args.next();
                }
                Some(false) => {}
                None => out.push(a),
            }
        }
        out
    }
}

struct OwnFlag {
    long: String,
    env: Option<String>,
}

/// Parse the command line. `--help` and `--version` print and exit 0; a bad
/// flag is `Err` with one line naming it (the caller exits 2, see
/// [`crate::server::exit_misconfigured`]).
pub fn parse<P: Parser>() -> Result<P, String> {
    use clap::error::ErrorKind;
    match P::try_parse() {
        Ok(p) => Ok(p),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            // clap's message up to its usage block, on one line: "the
            // following required arguments were not provided: <SHELL>".
            let text = e.to_string();
            let words: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = words.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            Err(if line.is_empty() {
                "bad arguments"
            } else {
                line
            }
            .to_owned())
        }
    }
}

/// The `spyglass` binary's command line: [`parse`] for [`Cli`], without
/// building the subcommands' parsers when the first argument names none of
/// them (the server's own start, which a scale-to-zero site makes on every
/// wake-up), and with only the Lookout's when it names `lookout` (whose
/// heap keeps the holes that parsing leaves: 24 KiB less resident,
/// `bench/lookout`). clap builds the parser of every subcommand before it
/// reads an argument: 244,000 of the 490,000 instructions of a server's
/// parse, and most of a 188 KB heap peak whose fresh pages each cost a
/// fault (from `main` to the site opened, ftrace, 15 cold starts each:
/// 0.49-0.57 ms, 0.34-0.36 without them). What the shorter parser accepts,
/// the full one reads the same: the first argument names no other
/// subcommand, and after any other argument a subcommand is not allowed
/// (`args_conflicts_with_subcommands`;
/// `cli::tests::the_server_parser_reads_as_the_full_one`). What it does
/// not accept (a bad flag, `--help`, `--version`) goes to the full parser,
/// so messages and help are the full parser's own.
pub fn parse_cli() -> Result<Cli, String> {
    parse_cli_from(std::env::args_os()).map_or_else(parse::<Cli>, Ok)
}

/// [`Cli`] from `args` by the parser without subcommands (or with only
/// `lookout`); `None` where the full parser must answer instead.
pub fn parse_cli_from(args: impl IntoIterator<Item = OsString>) -> Option<Cli> {
    let args: Vec<OsString> = args.into_iter().collect();
    let first = args.get(1).and_then(|a| a.to_str());
    let lookout = first == Some("lookout");
    if !lookout && first.is_some_and(<Command as Subcommand>::has_subcommand) {
        return None;
    }
    // The settings of `Cli`'s `#[command]` that bear on parsing.
    let server = clap::Command::new("spyglass")
        .version(VERSION)
        .args_conflicts_with_subcommands(true)
        .disable_help_subcommand(true);
    let mut server = <ServerArgs as Args>::augment_args(<SiteArgs as Args>::augment_args(server));
    if lookout {
        server = server.subcommand(<SiteLookoutArgs as Args>::augment_args(clap::Command::new(
            "lookout",
        )));
    }
    let mut m = server.try_get_matches_from(args).ok()?;
    let command = match m.remove_subcommand() {
        Some((_, mut sub)) => Some(Command::Lookout(
            <SiteLookoutArgs as clap::FromArgMatches>::from_arg_matches_mut(&mut sub).ok()?,
        )),
        None if lookout => return None,
        None => None,
    };
    Some(Cli {
        command,
        site: <SiteArgs as clap::FromArgMatches>::from_arg_matches_mut(&mut m).ok()?,
        server: <ServerArgs as clap::FromArgMatches>::from_arg_matches_mut(&mut m).ok()?,
    })
}

/// The program's name as invoked, for error lines.
pub fn program() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "spyglass".into())
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("'{s}': expected on or off")),
    }
}

/// `[NAME:]PREFIX=DIR`. A PREFIX starts with `/` and a NAME has no `:`,
/// `/` or `=`, so the first `:` before the first `/` ends the NAME.
fn parse_cgi_mount(s: &str) -> Result<CgiMount, String> {
    let (site, mount) = match s.split_once(':') {
        Some((name, rest)) if !name.contains(['/', '=']) => {
            check_socket_name(name)?;
            (Some(name.to_owned()), rest)
        }
        _ => (None, s),
    };
    let (prefix, dir) = mount.split_once('=').ok_or_else(|| {
        format!(
            "'{s}': expected [NAME:]PREFIX=DIR, as in /cgi-bin=./cgi-bin or blog:/cgi-bin=./cgi-bin"
        )
    })?;
    if !prefix.starts_with('/') {
        return Err(format!("'{prefix}': the URL prefix must start with /"));
    }
    if dir.is_empty() {
        return Err(format!("'{s}': the directory is empty"));
    }
    let prefix = prefix.trim_end_matches('/');
    Ok(CgiMount {
        site,
        prefix: prefix.to_owned(),
        dir: PathBuf::from(dir),
    })
}

/// `NAME=ROOT`.
fn parse_site(s: &str) -> Result<(String, PathBuf), String> {
    let (name, root) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected NAME=ROOT, as in blog=/srv/blog"))?;
    check_socket_name(name)?;
    if root.is_empty() {
        return Err(format!("'{s}': the directory is empty"));
    }
    Ok((name.to_owned(), PathBuf::from(root)))
}

/// A socket name, or `all`.
fn parse_proxy_protocol(s: &str) -> Result<String, String> {
    check_socket_name(s)?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        AppCli::command().debug_assert();
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// A Lookout's command line with its own flags, a server flag and,
    /// after `--`, a ROOT that looks like a flag.
    const LOOKOUT_ARGV: [&str; 9] = [
        "spyglass",
        "lookout",
        "--pid-file",
        "/run/s.pid",
        "--workers",
        "2",
        "--boot-timeout=5s",
        "--",
        "--pid-file",
    ];

    #[test]
    fn lookout_subcommand_and_master_argv() {
        let argv = LOOKOUT_ARGV;
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Lookout(l)) = cli.command else {
            panic!("no lookout subcommand");
        };
        assert_eq!(l.lookout.pid_file, Some(PathBuf::from("/run/s.pid")));
        assert_eq!(l.lookout.boot_timeout.0, std::time::Duration::from_secs(5));
        let config = l.lookout.config(os(&argv));
        assert_eq!(
            config.master_args,
            os(&["--workers", "2", "--", "--pid-file"])
        );
        assert_eq!(
            config.master_env_removed,
            ["SPYGLASS_PID_FILE", "SPYGLASS_BOOT_TIMEOUT"]
        );
        // After a server flag, `lookout` is ROOT (a directory of that name
        // can also be given as ./lookout).
        let plain = Cli::try_parse_from(["spyglass", "--workers", "2", "lookout"]).unwrap();
        assert!(plain.command.is_none());
        assert_eq!(plain.site.root, Some(PathBuf::from("lookout")));
        // The Lookout's flags belong to it alone.
        assert!(Cli::try_parse_from(["spyglass", "--pid-file", "x"]).is_err());
        let app = AppCli::try_parse_from(["app", "lookout", "--listen", "unix:/s"]).unwrap();
        assert!(matches!(app.command, Some(AppCommand::Lookout(_))));
    }

    #[test]
    fn the_server_parser_reads_as_the_full_one() {
        let full = |argv: &[&str]| format!("{:?}", Cli::try_parse_from(argv).unwrap());
        for argv in [
            &["spyglass"][..],
            &["spyglass", "./site"],
            &["spyglass", "--workers", "2", "lookout"],
            &["spyglass", "--", "check"],
            &[
                "spyglass",
                "--listen",
                "127.0.0.1:8080",
                "--listen=[::1]:80",
                "/srv/www",
            ],
            &[
                "spyglass",
                "--cgi",
                "/cgi-bin=./cgi",
                "--cgi=/x=/a:b",
                "site",
            ],
            &[
                "spyglass",
                "--site",
                "a=/srv/a,b=/srv/b",
                "--idle-timeout",
                "5s",
            ],
            &[
                "spyglass",
                "--access-log",
                "off",
                "--max-headers",
                "20",
                "-w",
                "3",
            ],
            &[
                "spyglass",
                "--cache-control",
                "max-age=60",
                "--log-level",
                "debug",
            ],
            &[
                "spyglass",
                "lookout",
                "--listen",
                "127.0.0.1:80",
                "/srv/www",
            ],
            &LOOKOUT_ARGV,
        ] {
            let fast = parse_cli_from(os(argv)).unwrap_or_else(|| panic!("{argv:?}"));
            assert_eq!(format!("{fast:?}"), full(argv), "{argv:?}");
        }
        // Left to the full parser: subcommands, help, version, mistakes.
        for argv in [
            &["spyglass", "check", "./site"][..],
            &["spyglass", "ctl", "status"],
            &["spyglass", "man"],
            &["spyglass", "lookout", "--bogus"],
            &["spyglass", "lookout", "--help"],
            &["spyglass", "--help"],
            &["spyglass", "./site", "-h"],
            &["spyglass", "-V"],
            &["spyglass", "--bogus"],
            &["spyglass", "--workers", "none"],
            &["spyglass", "--pid-file", "x"],
            &["spyglass", "a", "b"],
        ] {
            assert!(parse_cli_from(os(argv)).is_none(), "{argv:?}");
        }
    }

    #[test]
    fn cgi_mounts() {
        let mount = |site: Option<&str>, prefix: &str, dir: &str| CgiMount {
            site: site.map(Into::into),
            prefix: prefix.into(),
            dir: PathBuf::from(dir),
        };
        for (input, want) in [
            ("/cgi-bin/=./cgi", mount(None, "/cgi-bin", "./cgi")),
            ("/x=/a:b", mount(None, "/x", "/a:b")),
            ("/x=a:b=c", mount(None, "/x", "a:b=c")),
            (
                "blog:/cgi-bin=/srv/cgi",
                mount(Some("blog"), "/cgi-bin", "/srv/cgi"),
            ),
            ("blog:/=./c:d", mount(Some("blog"), "", "./c:d")),
        ] {
            assert_eq!(parse_cgi_mount(input), Ok(want), "{input}");
        }
        for bad in [
            "cgi-bin=./cgi",
            "/cgi-bin",
            "blog:cgi-bin=./cgi",
            ":/cgi-bin=./cgi",
            "a b:/cgi-bin=./cgi",
            "blog:/cgi-bin=",
        ] {
            assert!(parse_cgi_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sites() {
        assert_eq!(
            parse_site("blog=/srv/blog=1"),
            Ok(("blog".into(), PathBuf::from("/srv/blog=1")))
        );
        for bad in ["blog", "=/srv", "blog=", "a:b=/srv", "a,b=/srv"] {
            assert!(parse_site(bad).is_err(), "{bad}");
        }
    }
}
