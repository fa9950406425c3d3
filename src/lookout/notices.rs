//! The Lookout's end of `NOTIFY_SOCKET`: what systemd's notify socket is to
//! a service, this is to the master the Lookout starts. The master sends to
//! it with the same code it uses under systemd (`crate::notify`), so it
//! cannot tell the difference.
//!
//! An abstract Unix datagram socket, autobound (the kernel picks a unique
//! name), so it needs no writable directory (a container's root may be
//! read-only) and leaves no file behind. Anyone in the network namespace
//! can send to an abstract name, so every datagram carries its sender's
//! credentials (`SO_PASSCRED`, filled in by the kernel, not the sender) and
//! the Lookout heeds only the master's pid, as systemd does with
//! `NotifyAccess=main`.

use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, getsockname,
    recvmsg, setsockopt, socket, sockopt,
};

/// One thing the master said (sd_notify(3)); the rest is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`: every worker has booted (again, after a reload).
    Ready,
    /// `RELOADING=1`: re-executing in place (same pid).
    Reloading,
    /// `STOPPING=1`: about to exit.
    Stopping,
    /// `STATUS=`: its one-line summary.
    Status(String),
    /// `MAINPID=`: the master claims another pid is the main one.
    MainPid(i32),
    /// `EXTEND_TIMEOUT_USEC=`: asks for more time (honoured while booting).
    ExtendTimeout(Duration),
}

/// systemd reads at most this much of one message (`NOTIFY_BUFFER_MAX`).
const MAX_MESSAGE: usize = 4096;

/// The bound socket.
pub struct Notices {
    fd: OwnedFd,
    name: String,
}

impl Notices {
    /// Bind a fresh abstract socket that receives its senders' credentials.
    pub fn bind() -> io::Result<Notices> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        // An address of the family alone: the kernel autobinds a unique
        // abstract name.
        bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
        let addr: UnixAddr = getsockname(fd.as_raw_fd())?;
        let name = addr
            .as_abstract()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| !n.is_empty() && !n.contains('\0'))
            .ok_or_else(|| io::Error::other("the kernel did not autobind a name"))?;
        Ok(Notices { fd, name })
    }

    /// The value of `NOTIFY_SOCKET` for the master (`@` marks an abstract
    /// name, as in systemd).
    pub fn address(&self) -> String {
        format!("@{}", self.name)
    }

    /// The next datagram, with its sender's pid; `None` when none is queued.
    /// Truncated messages and passed descriptors are dropped (descriptors
    /// closed: a sender cannot make us keep them).
    pub fn recv(&self) -> Option<(i32, String)> {
        let mut buf = [0u8; MAX_MESSAGE];
        loop {
            let mut cmsg = nix::cmsg_space!(libc::ucred, [std::os::fd::RawFd; 16]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return None, // EAGAIN: nothing queued
            };
            let mut pid = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                        ControlMessageOwned::ScmRights(fds) => {
                            for fd in fds {
                                let _ = nix::unistd::close(fd);
                            }
                        }
                        _ => {}
                    }
                }
            }
            let truncated = msg
                .flags
                .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
                || msg.bytes > MAX_MESSAGE;
            let len = msg.bytes.min(MAX_MESSAGE);
            let (Some(pid), false) = (pid, truncated) else {
                continue;
            };
            return Some((pid, String::from_utf8_lossy(&buf[..len]).into_owned()));
        }
    }
}

impl AsFd for Notices {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The assignments in one message, newline-separated as sd_notify(3) says;
/// unknown or malformed ones are skipped.
pub fn parse(message: &str) -> Vec<Notice> {
    message
        .split('\n')
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            Some(match key {
                "READY" if value == "1" => Notice::Ready,
                "RELOADING" if value == "1" => Notice::Reloading,
                "STOPPING" if value == "1" => Notice::Stopping,
                "STATUS" => Notice::Status(value.to_owned()),
                "MAINPID" => Notice::MainPid(value.parse().ok().filter(|p| *p > 0)?),
                "EXTEND_TIMEOUT_USEC" => {
                    Notice::ExtendTimeout(Duration::from_micros(value.parse().ok()?))
                }
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            parse("READY=1\nSTATUS=2 workers, 0 requests served\n"),
            [
                Notice::Ready,
                Notice::Status("2 workers, 0 requests served".into())
            ]
        );
        assert_eq!(
            parse("STOPPING=1\nSTATUS=stopping: idle for 60s"),
            [
                Notice::Stopping,
                Notice::Status("stopping: idle for 60s".into())
            ]
        );
        assert_eq!(
            parse("RELOADING=1\nMONOTONIC_USEC=123\nMAINPID=42\nEXTEND_TIMEOUT_USEC=5000000"),
            [
                Notice::Reloading,
                Notice::MainPid(42),
                Notice::ExtendTimeout(Duration::from_secs(5))
            ]
        );
        assert_eq!(
            parse("READY=0\nMAINPID=-1\nWATCHDOG=1\ngarbage\n\nSTATUS="),
            [Notice::Status(String::new())]
        );
    }

    #[test]
    fn credentials_name_the_sender() {
        let n = Notices::bind().unwrap();
        assert!(n.address().starts_with('@'));
        assert!(n.recv().is_none());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&n.address()[1..]).unwrap();
        let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
        tx.send_to_addr(b"READY=1\n", &addr).unwrap();
        let (pid, text) = n.recv().unwrap();
        assert_eq!(pid, std::process::id() as i32);
        assert_eq!(parse(&text), [Notice::Ready]);
    }
}
