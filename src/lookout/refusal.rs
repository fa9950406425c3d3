//! The one place the Lookout touches a client, and only on a failure path:
//! while it backs off after a master failed, a waiting connection is
//! accepted and answered with a fixed `503 Service Unavailable` and a
//! `Retry-After` (RFC 9110 §15.6.4, §10.2.3), then closed.
//!
//! Why answer rather than close: a client (or a proxy in front, over a Unix
//! socket) learns that the server is there but unavailable, and when to try
//! again; a bare close reads as a network failure, which some clients retry
//! at once. The master's own degraded mode answers a broken configuration
//! the same way.
//!
//! The request is never read as HTTP: the response is the same whatever
//! was sent, so it has no body (`Content-Length: 0` is right for any
//! method, HEAD included) and closes the connection. After it, our side is
//! shut for writing and what the client sends is read and discarded for a
//! moment (a "lingering close"): closing with unread data would make the
//! kernel send a reset, which can destroy the 503 before the client reads
//! it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, Shutdown, recv, send, shutdown};

/// How long a refused connection may keep sending before it is closed.
const LINGER: Duration = Duration::from_secs(2);
/// How much of what it sends is read (and discarded) at most.
const LINGER_BYTES: usize = 64 * 1024;
/// Refused connections lingering at once at most; beyond, closed at once.
const MAX_LINGERING: usize = 64;

struct Lingering {
    fd: OwnedFd,
    until: Instant,
    read: usize,
}

/// Connections answered and waiting for their client to finish.
#[derive(Default)]
pub struct Refusals {
    lingering: Vec<Lingering>,
}

/// The fixed response, with the seconds until the next attempt.
fn response(retry_after: Duration) -> String {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
         Retry-After: {}\r\nConnection: close\r\n\r\n",
        secs.max(1)
    )
}

impl Refusals {
    /// Answer a freshly accepted connection with the 503 and start its
    /// lingering close.
    pub fn refuse(&mut self, fd: OwnedFd, retry_after: Duration) {
        // A new socket's send buffer takes the whole response at once; if
        // not, the client gets a close, which is still an answer.
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        let _ = send(fd_raw(&fd), response(retry_after).as_bytes(), flags);
        let _ = shutdown(fd_raw(&fd), Shutdown::Write);
        let mut l = Lingering {
            fd,
            until: Instant::now() + LINGER,
            read: 0,
        };
        if discard(&mut l) && self.lingering.len() < MAX_LINGERING {
            self.lingering.push(l);
        }
    }

    /// The lingering connections, to poll for input.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.lingering.iter().map(|l| l.fd.as_fd())
    }

    /// The soonest moment one must be closed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lingering.iter().map(|l| l.until).min()
    }

    /// Read what the readable ones sent (`readable[i]` for the i-th of
    /// [`Refusals::fds`]) and close those that are done or out of time.
    pub fn service(&mut self, readable: &[bool]) {
        let now = Instant::now();
        let mut i = 0;
        self.lingering.retain_mut(|l| {
            let ready = readable.get(i).copied().unwrap_or(false);
            i += 1;
            (!ready || discard(l)) && now < l.until
        });
    }

    /// How many are lingering.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lingering.len()
    }
}

/// Read and drop what has arrived; false once the client has closed, an
/// error occurred, or it sent more than we care to read.
fn discard(l: &mut Lingering) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match recv(fd_raw(&l.fd), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return false,
            Ok(n) => {
                l.read += n;
                if l.read > LINGER_BYTES {
                    return false;
                }
            }
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

fn fd_raw(fd: &OwnedFd) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn answers_without_reading_and_lingers() {
        assert!(response(Duration::from_millis(1500)).contains("Retry-After: 2\r\n"));
        assert!(response(Duration::ZERO).contains("Retry-After: 1\r\n"));

        let mut refusals = Refusals::default();
        let (mut client, server) = UnixStream::pair().unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        refusals.refuse(OwnedFd::from(server), Duration::from_secs(60));
        assert_eq!(refusals.len(), 1, "lingers until the client closes");
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert_eq!(
            got,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
             Retry-After: 60\r\nConnection: close\r\n\r\n"
        );
        client.write_all(b"more").unwrap();
        drop(client);
        refusals.service(&[true]);
        assert_eq!(refusals.len(), 0);
    }
}
