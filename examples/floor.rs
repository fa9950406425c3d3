//! The close-mode floor, for `bench/run`: the least a server can do per
//! `Connection: close` request on this kernel. One process, one epoll:
//! accept4, read the request, one send of a fixed response (with MSG_MORE,
//! so that the close's FIN leaves in the same segment), close. No
//! parsing, no logging, no timeouts, no workers: not a server anyone should
//! run, only the yardstick spyglass's CPU per request is divided by.
//!
//! `floor 127.0.0.1:PORT`. Its socket is set up as spyglass's own
//! (backlog 4096, TCP_DEFER_ACCEPT, TCP_NODELAY), so the two differ only
//! in what they do per request.
//!
//! `floor --keepalive 127.0.0.1:PORT` is the keep-alive floor: connections
//! stay open, and each read answers as many requests as it holds (it
//! counts blank lines; no parsing), with one write.
//!
//! Started by `systemd-socket-activate` (or systemd), it serves the socket
//! it is passed instead of binding one: the cold-start floor of
//! `bench/coldstart`, what starting any Rust program and answering costs.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, accept4, bind, listen, setsockopt,
    socket, sockopt,
};
use spyglass::listeners::TcpDeferAccept;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nHello, world!\n";
const KEPT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nHello, world!\n";

fn main() -> nix::Result<()> {
    let keepalive = std::env::args().any(|a| a == "--keepalive");
    let l = match passed() {
        Some(l) => l,
        None => bound()?,
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&l, EpollEvent::new(EpollFlags::EPOLLIN, u64::MAX))?;
    let mut events = [EpollEvent::empty(); 64];
    let mut buf = [0u8; 4096];
    loop {
        let n = epoll.wait(&mut events, EpollTimeout::NONE)?;
        for ev in &events[..n] {
            if ev.data() != u64::MAX {
                let fd = ev.data() as i32;
                if keepalive {
                    answer_all(fd, &mut buf);
                } else {
                    // A connection whose request had not arrived at accept.
                    serve(fd, &mut buf);
                }
                continue;
            }
            let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
            while let Ok(fd) = accept4(l.as_raw_fd(), flags) {
                if keepalive {
                    epoll.add(borrow(fd), EpollEvent::new(EpollFlags::EPOLLIN, fd as u64))?;
                    answer_all(fd, &mut buf);
                    continue;
                }
                // Read at once; only a connection whose request has not
                // arrived yet is registered (as spyglass does).
                match nix::unistd::read(borrow(fd), &mut buf) {
                    Err(nix::errno::Errno::EAGAIN) => {
                        epoll.add(borrow(fd), EpollEvent::new(EpollFlags::EPOLLIN, fd as u64))?;
                    }
                    _ => answer_and_close(fd),
                }
            }
        }
    }
}

/// Keep-alive: one response per request the read holds, in one write; a
/// closed connection is closed (which also takes it out of the epoll set).
/// The listening socket systemd's protocol passed (`LISTEN_FDS`), made
/// non-blocking for the loop below.
fn passed() -> Option<OwnedFd> {
    let l = listenfd::ListenFd::from_env().take_tcp_listener(0).ok()??;
    l.set_nonblocking(true).ok()?;
    Some(l.into())
}

/// A socket of its own, set up as spyglass sets up those it binds.
fn bound() -> nix::Result<OwnedFd> {
    let addr: SocketAddr = std::env::args()
        .skip(1)
        .find(|a| a != "--keepalive")
        .and_then(|a| a.parse().ok())
        .expect("usage: floor [--keepalive] 127.0.0.1:PORT");
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let l = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&l, sockopt::ReuseAddr, &true)?;
    setsockopt(&l, sockopt::TcpNoDelay, &true)?;
    setsockopt(&l, TcpDeferAccept, &1)?;
    bind(l.as_raw_fd(), &SockaddrIn::from(v4))?;
    listen(&l, Backlog::new(4096)?)?;
    Ok(l)
}

fn answer_all(fd: i32, buf: &mut [u8]) {
    match nix::unistd::read(borrow(fd), buf) {
        Ok(0) | Err(nix::errno::Errno::ECONNRESET) => {
            let _ = nix::unistd::close(fd);
        }
        Ok(n) => {
            let requests = buf[..n].windows(4).filter(|w| w == b"\r\n\r\n").count();
            let _ = match requests {
                1 => nix::unistd::write(borrow(fd), KEPT),
                n => nix::unistd::write(borrow(fd), &KEPT.repeat(n)),
            };
        }
        Err(_) => {}
    }
}

fn serve(fd: i32, buf: &mut [u8]) {
    let _ = nix::unistd::read(borrow(fd), buf);
    answer_and_close(fd);
}

/// The response held back (MSG_MORE) until the close, so response and FIN
/// share a segment.
fn answer_and_close(fd: i32) {
    let _ = nix::sys::socket::send(
        fd,
        RESPONSE,
        nix::sys::socket::MsgFlags::from_bits_retain(libc::MSG_MORE),
    );
    let _ = nix::unistd::close(fd);
}

fn borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: `fd` is an accepted connection this process owns until it
    // closes it right after the last use of the borrow.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
