//! Plain, validated configuration: what the server does, with no knowledge of
//! where the values came from (clap, environment, a library user's code) and
//! no file descriptors.
//!
//! The value types here (durations, sizes, listen addresses) carry their own
//! parsers so that the CLI and library users accept the same spellings.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::forwarded::{ProxyHeaders, Trust};

/// Everything the master, the workers and the HTTP engine need to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to bind when systemd passed no sockets.
    pub listen: Vec<Listen>,
    /// Which listeners expect a PROXY protocol header on every connection.
    pub proxy_protocol: ProxyProtocol,
    /// Number of worker processes.
    pub workers: usize,
    /// Idle exit: see [`IdleTimeout`].
    pub idle_timeout: IdleTimeout,
    /// How long a graceful stop may take before the rest is killed.
    pub graceful_timeout: Duration,
    /// A worker whose event loop has not turned for this long is killed
    /// and replaced (a handler stuck in a loop); `None` disables the check.
    pub worker_timeout: Option<Duration>,
    /// Where log events go.
    pub log_target: LogTarget,
    /// The most verbose level logged.
    pub log_level: tracing::Level,
    /// One event per request.
    pub access_log: bool,
    /// Where the control socket listens (`spyglass ctl`); under systemd,
    /// `$RUNTIME_DIRECTORY/control.sock` when this is `None`.
    pub control_socket: Option<PathBuf>,
    /// When workers are replaced, gracefully, to bound what a leaking
    /// app can accumulate.
    pub recycle: Recycle,
    /// Reload in place when one of these files (or directories) changes.
    pub reload_on_change: Vec<PathBuf>,
    /// HTTP engine limits and timeouts.
    pub http: HttpConfig,
}

/// Worker recycling: a worker past any limit is replaced, its successor
/// booted before it stops accepting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recycle {
    /// After this many requests (each worker adds up to a tenth more, drawn
    /// at random, so that workers do not all go at once).
    pub max_requests: Option<u64>,
    /// After this long (with the same jitter).
    pub max_lifetime: Option<Duration>,
    /// Once its resident memory exceeds this many bytes.
    pub max_memory: Option<u64>,
}

/// What the Lookout (`spyglass lookout`) needs beyond the server's own
/// configuration.
#[derive(Clone, Debug)]
pub struct LookoutConfig {
    /// Where to write the Lookout's pid.
    pub pid_file: Option<PathBuf>,
    /// A server that has not reported READY=1 this long after its start is
    /// killed as hung.
    pub boot_timeout: Duration,
    /// The server's arguments (after the program name): the Lookout's own,
    /// less the subcommand word and the Lookout's flags.
    pub master_args: Vec<std::ffi::OsString>,
    /// Environment variables that configure the Lookout alone, removed
    /// from the server's environment.
    pub master_env_removed: Vec<String>,
}

/// Limits and timeouts of the HTTP/1.1 engine.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Longest request line (method, target, version), else 414.
    pub max_request_line: usize,
    /// Longest request head (request line and all header lines), else 431.
    pub max_head: usize,
    /// Most header fields in one request, else 431.
    pub max_headers: usize,
    /// Largest request body, else 413.
    pub max_body: u64,
    /// Bodies up to this size stay in memory; larger ones spill to an
    /// unlinked temporary file.
    pub body_buffer: usize,
    /// Time allowed to receive a whole request head, else 408.
    pub header_timeout: Duration,
    /// Longest silence while a request body is being received, else 408.
    pub body_timeout: Duration,
    /// How long an idle persistent connection is kept open.
    pub keepalive_timeout: Duration,
    /// Longest time a response write may make no progress before the client
    /// is dropped.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed (0: no limit).
    pub max_requests: u64,
    /// Most open connections per worker.
    pub max_connections: usize,
    /// Whose forwarding headers say who the client is.
    pub trust: Trust,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_request_line: 8 * 1024,
            max_head: 32 * 1024,
            max_headers: 100,
            max_body: 16 * 1024 * 1024,
            body_buffer: 64 * 1024,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            max_requests: 10_000,
            max_connections: 16_384,
            trust: Trust::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![Listen {
                name: None,
                addr: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080))),
            }],
            proxy_protocol: ProxyProtocol::Off,
            workers: default_workers(),
            idle_timeout: IdleTimeout::Auto,
            graceful_timeout: Duration::from_secs(30),
            worker_timeout: Some(Duration::from_secs(60)),
            log_target: LogTarget::Auto,
            log_level: tracing::Level::INFO,
            access_log: true,
            control_socket: None,
            recycle: Recycle::default(),
            reload_on_change: Vec::new(),
            http: HttpConfig::default(),
        }
    }
}

impl Config {
    /// The effective configuration as `flag value` pairs, in `--help`
    /// order, for `spyglass check`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let h = &self.http;
        let listen: Vec<String> = self.listen.iter().map(ToString::to_string).collect();
        vec![
            (
                "listen",
                format!("{} (when systemd passes no socket)", listen.join(", ")),
            ),
            ("workers", self.workers.to_string()),
            (
                "idle-timeout",
                match self.idle_timeout {
                    IdleTimeout::Auto => format!(
                        "{} when socket-activated, never otherwise",
                        d(IdleTimeout::ACTIVATED_DEFAULT)
                    ),
                    IdleTimeout::Never => "never".into(),
                    IdleTimeout::After(t) => d(t),
                },
            ),
            ("graceful-timeout", d(self.graceful_timeout)),
            (
                "worker-timeout",
                self.worker_timeout.map_or_else(|| "never".into(), d),
            ),
            (
                "log-target",
                format!("{:?}", self.log_target).to_lowercase(),
            ),
            ("log-level", self.log_level.to_string().to_lowercase()),
            (
                "access-log",
                if self.access_log { "on" } else { "off" }.into(),
            ),
            (
                "control-socket",
                self.control_socket.as_ref().map_or_else(
                    || "control.sock in $RUNTIME_DIRECTORY under systemd, none otherwise".into(),
                    |p| p.display().to_string(),
                ),
            ),
            (
                "worker-max-requests",
                self.recycle
                    .max_requests
                    .map_or_else(|| "never".into(), |n| n.to_string()),
            ),
            (
                "worker-max-lifetime",
                self.recycle.max_lifetime.map_or_else(|| "never".into(), d),
            ),
            (
                "worker-max-memory",
                self.recycle
                    .max_memory
                    .map_or_else(|| "never".into(), |b| format!("{b} bytes")),
            ),
            (
                "reload-on-change",
                if self.reload_on_change.is_empty() {
                    "nothing".into()
                } else {
                    let list: Vec<String> = self
                        .reload_on_change
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    list.join(", ")
                },
            ),
            ("max-request-line", h.max_request_line.to_string()),
            ("max-head", h.max_head.to_string()),
            ("max-headers", h.max_headers.to_string()),
            ("max-body", h.max_body.to_string()),
            ("body-buffer", h.body_buffer.to_string()),
            ("header-timeout", d(h.header_timeout)),
            ("body-timeout", d(h.body_timeout)),
            ("keepalive-timeout", d(h.keepalive_timeout)),
            ("write-timeout", d(h.write_timeout)),
            ("max-requests", h.max_requests.to_string()),
            ("max-connections", h.max_connections.to_string()),
            ("proxy-protocol", self.proxy_protocol.to_string()),
            (
                "trusted-proxy",
                if h.trust.proxies.is_empty() {
                    "none".into()
                } else {
                    let list: Vec<String> =
                        h.trust.proxies.iter().map(ToString::to_string).collect();
                    list.join(", ")
                },
            ),
            (
                "proxy-headers",
                match h.trust.headers {
                    ProxyHeaders::XForwarded => "x-forwarded".into(),
                    ProxyHeaders::Forwarded => "forwarded".into(),
                },
            ),
        ]
    }
}

/// The CPUs this process may run on (its affinity mask, so a
/// `CPUAffinity=` or a container limit is honoured), at least 1.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// When the master exits for lack of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleTimeout {
    /// 60 s when socket-activated, never when spyglass bound its own socket
    /// (then nothing would start it again).
    Auto,
    /// Never exit for idleness.
    Never,
    /// Exit after this long without work.
    After(Duration),
}

impl IdleTimeout {
    /// The default idle timeout under socket activation.
    pub const ACTIVATED_DEFAULT: Duration = Duration::from_secs(60);

    /// The timeout in effect, given whether the sockets came from systemd.
    pub fn resolve(self, activated: bool) -> Option<Duration> {
        match self {
            IdleTimeout::Auto if activated => Some(Self::ACTIVATED_DEFAULT),
            IdleTimeout::Auto | IdleTimeout::Never => None,
            IdleTimeout::After(d) => Some(d),
        }
    }
}

impl FromStr for IdleTimeout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match Timespan::from_str(s)?.0 {
            None => IdleTimeout::Never,
            Some(d) => IdleTimeout::After(d),
        })
    }
}

/// A systemd-style time span: a bare number is seconds (`90`), units as in
/// `30s`, `5min`, `1h 30min`, `250ms`; `0` and `infinity` mean "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timespan(pub Option<Duration>);

impl FromStr for Timespan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "infinity" {
            return Ok(Timespan(None));
        }
        let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = s.parse().map_err(|_| format!("'{s}' is too large"))?;
            Duration::from_secs(secs)
        } else {
            humantime::parse_duration(s)
                .map_err(|e| format!("'{s}' is not a time span ({e}); try 30s, 5min or infinity"))?
        };
        Ok(Timespan((!d.is_zero()).then_some(d)))
    }
}

/// Like [`Timespan`] but "never" is refused: for timeouts that must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl FromStr for Timeout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match Timespan::from_str(s)?.0 {
            Some(d) => Ok(Timeout(d)),
            None => Err(format!("'{s}': this timeout must be a positive time span")),
        }
    }
}

/// A byte size: a bare number is bytes; `K`, `M`, `G` (also `KiB`, `KB`, ...)
/// are powers of 1024, as in systemd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a size; try 64K or 16M"))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            _ => return Err(format!("'{s}': unknown unit; use K, M or G")),
        };
        n.checked_mul(1 << shift)
            .map(Size)
            .ok_or_else(|| format!("'{s}' is too large"))
    }
}

/// Where to listen when systemd passed no sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `HOST:PORT`, `[V6]:PORT`.
    Tcp(SocketAddr),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("'unix:' needs a path, as in unix:/run/site.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port.parse().map_err(|_| format!("'{s}': bad port"))?;
            return Ok(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        if let Some(port) = s.strip_prefix(':') {
            let port: u16 = port.parse().map_err(|_| format!("'{s}': bad port"))?;
            return Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
        }
        Err(format!(
            "'{s}' is not a listen address; use HOST:PORT, [::1]:PORT or unix:/path"
        ))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listen address, and the name its requests carry
/// ([`crate::handler::ConnInfo::listener`]), as in `blog=127.0.0.1:8081`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The listener's name; without one, the address is its name.
    pub name: Option<String>,
    /// Where to listen.
    pub addr: ListenAddr,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // An address never has '=' before a ':' or '/' (unix:/a=b is a
        // path), and a name has neither: the first '=' of `NAME=ADDR`
        // is unambiguous.
        if let Some((name, addr)) = s.split_once('=') {
            if !name.contains([':', '/', '[']) {
                check_socket_name(name)?;
                return Ok(Listen {
                    name: Some(name.to_owned()),
                    addr: addr.parse()?,
                });
            }
        }
        Ok(Listen {
            name: None,
            addr: s.parse()?,
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}={}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl Listen {
    /// The name its listener will have: the given one, or the address as
    /// [`crate::listeners`] names a socket it binds.
    pub fn listener_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.addr.to_string())
    }
}

/// A socket name spyglass can refer to (`--listen NAME=ADDR`, `--site
/// NAME=ROOT`, `--proxy-protocol NAME`): what systemd allows in
/// `FileDescriptorName=` (printable ASCII, no `:`), less `=`, `,` and `/`,
/// which the flags use as separators.
pub fn check_socket_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a socket name cannot be empty".into());
    }
    if name.len() > 255 {
        return Err(format!(
            "'{name}': a socket name has at most 255 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, ':' | '=' | ',' | '/'))
    {
        return Err(format!(
            "'{name}': a socket name may not contain {c:?} (printable ASCII except : = , /)"
        ));
    }
    Ok(())
}

/// Which listeners expect a PROXY protocol header (`--proxy-protocol`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// None (the default).
    #[default]
    Off,
    /// Every listener.
    All,
    /// The listeners of these names.
    Named(Vec<String>),
}

impl ProxyProtocol {
    /// Whether the listener called `name` expects the header.
    pub fn applies_to(&self, name: &str) -> bool {
        match self {
            ProxyProtocol::Off => false,
            ProxyProtocol::All => true,
            ProxyProtocol::Named(names) => names.iter().any(|n| n == name),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyProtocol::Off => f.write_str("off"),
            ProxyProtocol::All => f.write_str("all"),
            ProxyProtocol::Named(n) => f.write_str(&n.join(", ")),
        }
    }
}

/// Where log events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// journald when stderr is connected to it (`JOURNAL_STREAM`), else stderr.
    Auto,
    /// The native journal protocol, with structured fields.
    Journald,
    /// Text lines on stderr.
    Stderr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        let secs = |n| Timespan(Some(Duration::from_secs(n)));
        for (input, want) in [
            ("90", secs(90)),
            ("30s", secs(30)),
            ("5min", secs(300)),
            ("1h 30min", secs(5400)),
            ("0", Timespan(None)),
            ("infinity", Timespan(None)),
        ] {
            assert_eq!(input.parse::<Timespan>(), Ok(want), "{input}");
        }
        assert_eq!(
            "250ms".parse::<Timespan>(),
            Ok(Timespan(Some(Duration::from_millis(250))))
        );
        for bad in ["", "soon", "-1", "5 parsecs"] {
            assert!(bad.parse::<Timespan>().is_err(), "{bad}");
        }
        assert!("0".parse::<Timeout>().is_err());
    }

    #[test]
    fn sizes() {
        for (input, want) in [
            ("512", 512),
            ("64K", 65536),
            ("16MiB", 16 << 20),
            ("1g", 1 << 30),
        ] {
            assert_eq!(input.parse::<Size>(), Ok(Size(want)), "{input}");
        }
        for bad in ["", "K", "12 parsecs", "99999999999999999999G"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(
            "127.0.0.1:80".parse(),
            Ok(ListenAddr::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:8080".parse(),
            Ok(ListenAddr::Tcp("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/x.sock".parse(),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            ":8080".parse(),
            Ok(ListenAddr::Tcp("0.0.0.0:8080".parse().unwrap()))
        );
        for bad in ["8080", "unix:", "example.com", "[::1]"] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn named_listen_addrs() {
        let named = |n: &str, a: &str| Listen {
            name: Some(n.into()),
            addr: a.parse().unwrap(),
        };
        let plain = |a: &str| Listen {
            name: None,
            addr: a.parse().unwrap(),
        };
        for (input, want) in [
            ("blog=127.0.0.1:8081", named("blog", "127.0.0.1:8081")),
            ("shop=[::1]:80", named("shop", "[::1]:80")),
            (
                "api.v2=unix:/run/a=b.sock",
                named("api.v2", "unix:/run/a=b.sock"),
            ),
            ("unix:/run/a=b.sock", plain("unix:/run/a=b.sock")),
            ("127.0.0.1:8080", plain("127.0.0.1:8080")),
        ] {
            assert_eq!(input.parse::<Listen>(), Ok(want.clone()), "{input}");
            assert_eq!(want.to_string(), input);
        }
        for bad in [
            "=127.0.0.1:80",
            "a b=127.0.0.1:80",
            "blog=",
            "blog=8080",
            "x,y=:80",
        ] {
            assert!(bad.parse::<Listen>().is_err(), "{bad}");
        }
    }
}
