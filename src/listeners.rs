//! The listening sockets: taken from systemd (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`) and validated, or bound by us when systemd passed none.
//!
//! Taking happens once, first thing, while the process is single-threaded:
//! listenfd removes the variables from the environment as it reads them.
//! Every fd is checked before we own it (a socket, a stream, listening) so
//! that an `Accept=yes` unit, which passes a connected socket, stops startup
//! with a clear error instead of a worker blocking on a non-listening fd.
//!
//! Knows no HTTP and never forks. Never shuts down or unlinks a socket that
//! systemd owns: it must outlive us and queue the next activation's clients.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, getsockopt, listen,
    setsockopt, socket, sockopt,
};
use nix::{setsockopt_impl, sockopt_impl};

use crate::config::{Listen, ListenAddr, ProxyProtocol};
use crate::reexec::InheritedListeners;

/// One listening stream socket.
pub struct Listener {
    fd: OwnedFd,
    /// `FileDescriptorName=` from the socket unit, the NAME of `--listen
    /// NAME=ADDR`, or the address we bound.
    pub name: String,
    /// What it listens on, for logs and for `SERVER_PORT`-like uses.
    pub local: LocalAddr,
}

/// The local address of a listener.
#[derive(Clone, Debug)]
pub enum LocalAddr {
    /// A TCP address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// A Unix socket, with its path unless it is unnamed or abstract.
    Unix(Option<PathBuf>),
}

impl LocalAddr {
    /// The TCP port, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            LocalAddr::Tcp(a) => Some(a.port()),
            LocalAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(a) => write!(f, "{a}"),
            LocalAddr::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            LocalAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// All listeners, and where they came from.
pub struct Listeners {
    /// In the order systemd passed them (or `--listen` named them).
    pub list: Vec<Listener>,
    /// True when systemd (or another activator) passed them.
    pub activated: bool,
    /// Unix socket files we created, removed when the master exits cleanly.
    created_paths: Vec<PathBuf>,
}

/// Why startup cannot use the sockets.
#[derive(Debug)]
pub enum ListenError {
    /// A passed fd is unusable.
    BadFd {
        /// Its number.
        fd: i32,
        /// Its `LISTEN_FDNAMES` name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// Binding an address failed.
    Bind {
        /// The address.
        addr: ListenAddr,
        /// Why.
        err: io::Error,
    },
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::BadFd { fd, name, why } => {
                write!(f, "socket-activated fd {fd} (name '{name}'): {why}")
            }
            ListenError::Bind { addr, err } => write!(f, "cannot listen on {addr}: {err}"),
        }
    }
}

impl std::error::Error for ListenError {}

/// systemd's default `Backlog=` (SOMAXCONN); std's bind would use 128.
const BACKLOG: i32 = 4096;

/// TCP_DEFER_ACCEPT for the TCP sockets spyglass binds itself (activated
/// ones carry the unit's `DeferAcceptSec=`). Short, because the header
/// timeout only starts at accept: a client that connects and stays silent
/// is handed over after about a second and then timed out as usual.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

sockopt_impl!(
    /// TCP_DEFER_ACCEPT, which nix does not name: accept(2) hands over a
    /// connection only once the client has sent data, or the given seconds
    /// after the handshake (the kernel counts them in SYN-ACK retransmits).
    TcpDeferAccept,
    SetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    libc::c_int
);

impl Listeners {
    /// Take the sockets a previous image of ours handed over on reload, or
    /// those systemd passed, or bind `addrs` if there are none.
    pub fn take_or_bind(
        addrs: &[Listen],
        inherited: Option<InheritedListeners>,
    ) -> Result<Listeners, ListenError> {
        if let Some(inh) = inherited.filter(|i| !i.fds.is_empty()) {
            let mut list = Vec::new();
            for (fd, name) in inh.fds {
                let raw = fd.as_raw_fd();
                let bad = |why: String| ListenError::BadFd {
                    fd: raw,
                    name: name.clone(),
                    why,
                };
                let local = local_addr(&fd).map_err(&bad)?;
                list.push(finish(fd, name.clone(), local).map_err(bad)?);
            }
            let created_paths = if inh.activated {
                Vec::new()
            } else {
                addrs
                    .iter()
                    .filter_map(|a| match &a.addr {
                        ListenAddr::Unix(p) => Some(p.clone()),
                        ListenAddr::Tcp(_) => None,
                    })
                    .collect()
            };
            return Ok(Listeners {
                list,
                activated: inh.activated,
                created_paths,
            });
        }
        let taken = take_activated()?;
        if !taken.is_empty() {
            return Ok(Listeners {
                list: taken,
                activated: true,
                created_paths: Vec::new(),
            });
        }
        let mut list = Vec::with_capacity(addrs.len());
        let mut created_paths = Vec::new();
        for listen in addrs {
            let bound = match &listen.addr {
                ListenAddr::Tcp(a) => {
                    // An address given more than once (and not port 0, which
                    // picks a new port each time) gets one socket per mention,
                    // all with SO_REUSEPORT: see [`Listeners::reuseport_groups`].
                    let times = addrs.iter().filter(|l| l.addr == listen.addr).count();
                    bind_tcp(*a, times > 1 && a.port() != 0)
                }
                ListenAddr::Unix(p) => bind_unix(p).inspect(|_| created_paths.push(p.clone())),
            };
            let mut l = bound.map_err(|err| ListenError::Bind {
                addr: listen.addr.clone(),
                err,
            })?;
            if let Some(name) = &listen.name {
                l.name = name.clone();
            }
            list.push(l);
        }
        Ok(Listeners {
            list,
            activated: false,
            created_paths,
        })
    }

    /// The listeners that share one TCP address through SO_REUSEPORT: a
    /// socket unit with `ReusePort=yes` that lists the address more than
    /// once, or a `--listen` address given more than once. Each group holds
    /// two or more indices into `list`. The kernel spreads a group's new
    /// connections over its sockets by a hash of the client's address, and
    /// a connection waits in its socket's queue until someone accepts it
    /// there: every member needs a worker of its own.
    pub fn reuseport_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<(SocketAddr, Vec<usize>)> = Vec::new();
        for (i, l) in self.list.iter().enumerate() {
            let LocalAddr::Tcp(addr) = l.local else {
                continue;
            };
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, members)) => members.push(i),
                None => groups.push((addr, vec![i])),
            }
        }
        groups
            .into_iter()
            .filter(|(_, members)| members.len() > 1)
            .map(|(_, members)| members)
            .collect()
    }

    /// Remove the Unix socket files we created (never systemd's).
    pub fn remove_created(&self) {
        for p in &self.created_paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What a configuration asks of the listeners by name (the `spyglass`
/// binary's `--site NAME=ROOT`), checked at startup by
/// [`check_roles`].
#[derive(Clone, Debug)]
pub struct Roles {
    /// Listener names served by a handler of their own, each with the
    /// flag that names it, for the error line: `("blog", "--site
    /// blog=/srv/blog")`.
    pub served: Vec<(String, String)>,
    /// Listeners that `served` does not name are served too.
    pub others: bool,
}

impl Default for Roles {
    /// Every listener is served alike.
    fn default() -> Roles {
        Roles {
            served: Vec::new(),
            others: true,
        }
    }
}

/// Check names against the listeners `sockets` (their names): every name
/// a role or `--proxy-protocol` gives must be a socket's, and, unless the
/// roles serve the others, every socket must have a role. The error names
/// the culprit.
pub fn check_roles(sockets: &[&str], roles: &Roles, proxy: &ProxyProtocol) -> Result<(), String> {
    let known = || {
        if sockets.is_empty() {
            "none".to_owned()
        } else {
            sockets.join(", ")
        }
    };
    let proxied = match proxy {
        ProxyProtocol::Named(names) => names
            .iter()
            .map(|n| (n.clone(), format!("--proxy-protocol {n}")))
            .collect(),
        ProxyProtocol::Off | ProxyProtocol::All => Vec::new(),
    };
    for (name, by) in roles.served.iter().chain(&proxied) {
        if !sockets.contains(&name.as_str()) {
            return Err(format!(
                "{by}: no socket is named '{name}' (sockets: {})",
                known()
            ));
        }
    }
    if !roles.others {
        if let Some(s) = sockets
            .iter()
            .find(|s| !roles.served.iter().any(|(n, _)| n == *s))
        {
            return Err(format!(
                "socket '{s}' is served by nothing: give it a --site {s}=ROOT, or a ROOT for the others"
            ));
        }
    }
    Ok(())
}

/// The names of the passed sockets (`LISTEN_FDNAMES`, in fd order from
/// fd 3), `fdN` for one whose name is empty; `None` when none are given.
pub fn passed_names() -> Option<Vec<String>> {
    let names = std::env::var("LISTEN_FDNAMES").ok()?;
    let name = |(i, n): (usize, &str)| {
        if n.is_empty() {
            format!("fd{}", 3 + i)
        } else {
            n.to_owned()
        }
    };
    Some(names.split(':').enumerate().map(name).collect())
}

fn take_activated() -> Result<Vec<Listener>, ListenError> {
    // Read the names first: listenfd neither parses nor removes them.
    let names = passed_names().unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::with_capacity(fds.len());
    for i in 0..fds.len() {
        let raw = 3 + i as i32;
        let name = names.get(i).cloned().unwrap_or_else(|| format!("fd{raw}"));
        let bad = |why: String| ListenError::BadFd {
            fd: raw,
            name: name.clone(),
            why,
        };
        // listenfd checks S_ISSOCK, SO_TYPE and the family; on a mismatch it
        // returns Err and leaves the fd in place, so we can try the other.
        let (fd, local): (OwnedFd, LocalAddr) = match fds.take_tcp_listener(i) {
            Ok(Some(l)) => {
                let local = l.local_addr().map_err(|e| bad(e.to_string()))?;
                (l.into(), LocalAddr::Tcp(local))
            }
            Ok(None) => continue,
            Err(tcp_err) => match fds.take_unix_listener(i) {
                Ok(Some(l)) => {
                    let path = l
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
                    (l.into(), LocalAddr::Unix(path))
                }
                Ok(None) => continue,
                Err(_) => {
                    return Err(bad(format!(
                        "not a TCP or Unix stream socket ({tcp_err}); \
                         spyglass needs ListenStream= sockets"
                    )));
                }
            },
        };
        out.push(finish(fd, name.clone(), local).map_err(bad)?);
    }
    // LISTEN_FDNAMES stays in our environment; exec'd children (CGI) get a
    // clean environment, so they cannot mistake our fds for theirs.
    Ok(out)
}

/// The checks and settings every listener gets, whoever created it.
fn finish(fd: OwnedFd, name: String, local: LocalAddr) -> Result<Listener, String> {
    match getsockopt(&fd, sockopt::AcceptConn) {
        Ok(true) => {}
        Ok(false) => {
            return Err("is a connected socket, not a listening one \
                 (Accept=yes in the socket unit? spyglass needs Accept=no)"
                .into());
        }
        Err(e) => return Err(format!("SO_ACCEPTCONN: {e}")),
    }
    set_nonblocking(&fd).map_err(|e| e.to_string())?;
    // Replies go out in one write, but streamed bodies are written in
    // pieces; Nagle would hold those back. Accepted sockets inherit it.
    if matches!(local, LocalAddr::Tcp(_)) {
        let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
    }
    Ok(Listener { fd, name, local })
}

/// What a stream socket is bound to (for descriptors of unknown kind).
fn local_addr(fd: &OwnedFd) -> Result<LocalAddr, String> {
    if getsockopt(fd, sockopt::SockType).map_err(|e| e.to_string())? != SockType::Stream {
        return Err("not a stream socket".into());
    }
    let addr: SockaddrStorage =
        nix::sys::socket::getsockname(fd.as_raw_fd()).map_err(|e| e.to_string())?;
    if let Some(v4) = addr.as_sockaddr_in() {
        Ok(LocalAddr::Tcp(SocketAddr::V4((*v4).into())))
    } else if let Some(v6) = addr.as_sockaddr_in6() {
        Ok(LocalAddr::Tcp(SocketAddr::V6((*v6).into())))
    } else if let Some(u) = addr.as_unix_addr() {
        Ok(LocalAddr::Unix(u.path().map(Path::to_path_buf)))
    } else {
        Err("not a TCP or Unix socket".into())
    }
}

/// `O_NONBLOCK` lives on the open file description, which systemd shares:
/// set it explicitly at every start rather than trusting `NonBlocking=`.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<Listener> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    if addr.is_ipv6() {
        // [::]:80 must not also claim 0.0.0.0:80: both may be listed.
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    // HTTP clients speak first: let accept(2) hand over a connection only
    // once its request has arrived (or DEFER_ACCEPT_SECS after the
    // handshake), so a worker does not wake, accept, read nothing and
    // register for a connection it cannot serve yet. An optimisation, not
    // a requirement: where the kernel (or a sandbox) lacks it, serve anyway.
    if let Err(e) = setsockopt(&fd, TcpDeferAccept, &DEFER_ACCEPT_SECS) {
        tracing::warn!(address = %addr, error = %e, "TCP_DEFER_ACCEPT not available");
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    let local = TcpListener::from(fd.try_clone()?).local_addr()?;
    Ok(Listener {
        fd,
        name: local.to_string(),
        local: LocalAddr::Tcp(local),
    })
}

/// Make way for a Unix socket at `path`: a socket file nobody answers on
/// is left over from a crash and is removed; one that answers belongs to a
/// live process, and is an error.
pub(crate) fn clear_stale_socket(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening there",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

fn bind_unix(path: &Path) -> io::Result<Listener> {
    clear_stale_socket(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let addr = nix::sys::socket::UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr)?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(Listener {
        fd,
        name: format!("unix:{}", path.display()),
        local: LocalAddr::Unix(Some(path.to_path_buf())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_name_sockets() {
        let site = |n: &str| (n.to_owned(), format!("--site {n}=/srv/{n}"));
        let roles = |served: Vec<(String, String)>, others| Roles { served, others };
        let off = ProxyProtocol::Off;
        let ok = |s: &[&str], r: &Roles, p: &ProxyProtocol| check_roles(s, r, p);
        assert_eq!(ok(&["a", "b"], &Roles::default(), &off), Ok(()));
        assert_eq!(
            ok(&["a", "b"], &roles(vec![site("a"), site("b")], false), &off),
            Ok(())
        );
        assert_eq!(ok(&["a", "b"], &roles(vec![site("a")], true), &off), Ok(()));
        assert_eq!(
            ok(&["a", "b"], &roles(vec![site("a")], false), &off),
            Err("socket 'b' is served by nothing: give it a --site b=ROOT, or a ROOT for the others".into())
        );
        assert_eq!(
            ok(&["a"], &roles(vec![site("a"), site("c")], true), &off),
            Err("--site c=/srv/c: no socket is named 'c' (sockets: a)".into())
        );
        let named = ProxyProtocol::Named(vec!["a".into(), "x".into()]);
        assert_eq!(
            ok(&["a", "b"], &Roles::default(), &named),
            Err("--proxy-protocol x: no socket is named 'x' (sockets: a, b)".into())
        );
        assert_eq!(ok(&["a"], &Roles::default(), &ProxyProtocol::All), Ok(()));
    }
}
