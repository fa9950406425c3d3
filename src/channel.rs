//! The channel between the master and one worker, and the one place where
//! the messages on it become bytes and back.
//!
//! A `SOCK_SEQPACKET` socket pair: every message arrives whole or not at
//! all, so there is no framing to get wrong and no half-written message to
//! finish later. Both ends are non-blocking; a send that would block fails,
//! and the sender decides (the master never waits for a worker). A closed
//! channel means the other side is gone: a worker then stops, the master
//! leaves the rest to the reaper.
//!
//! Knows nothing of what workers or the master do with the messages.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};

/// From the master to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToWorker {
    /// Stop accepting, finish what is in flight, exit.
    Stop,
    /// Run an application command and reply with the same `id`.
    Command {
        /// Pairs the reply with the request.
        id: u32,
        /// The command's name.
        name: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// From a worker to the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToMaster {
    /// The worker's handler is built and its loop runs.
    Booted,
    /// The worker has answered as many requests as it was given: replace
    /// it (it goes on serving until its successor has booted).
    Spent,
    /// The answer to [`ToWorker::Command`] `id`.
    Reply {
        /// The request's id.
        id: u32,
        /// Whether the command succeeded.
        ok: bool,
        /// What it said.
        text: String,
    },
}

/// The largest message: the socket's buffer holds several.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// One end of a channel.
#[derive(Debug)]
pub struct Channel {
    sock: OwnedFd,
}

impl Channel {
    /// A connected pair: (the master's end, the worker's end), both
    /// non-blocking and close-on-exec.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok((Channel { sock: a }, Channel { sock: b }))
    }

    /// The end handed over by our previous image on reload. Every send and
    /// receive passes MSG_DONTWAIT, so the descriptor's own flags do not
    /// matter.
    pub fn adopt(sock: OwnedFd) -> Channel {
        Channel { sock }
    }

    /// Send to the worker; `WouldBlock` if its queue is full (a worker
    /// that does not read its channel).
    pub fn send_to_worker(&self, m: &ToWorker) -> io::Result<()> {
        let mut buf = Vec::new();
        match m {
            ToWorker::Stop => buf.push(b'S'),
            ToWorker::Command { id, name, args } => {
                buf.push(b'C');
                buf.extend_from_slice(&id.to_le_bytes());
                buf.extend_from_slice(name.as_bytes());
                for a in args {
                    buf.push(0);
                    buf.extend_from_slice(a.as_bytes());
                }
            }
        }
        self.send(&buf)
    }

    /// Send to the master.
    pub fn send_to_master(&self, m: &ToMaster) -> io::Result<()> {
        let mut buf = Vec::new();
        match m {
            ToMaster::Booted => buf.push(b'B'),
            ToMaster::Spent => buf.push(b'X'),
            ToMaster::Reply { id, ok, text } => {
                buf.push(b'R');
                buf.extend_from_slice(&id.to_le_bytes());
                buf.push(u8::from(*ok));
                let mut end = text.len().min(MAX_MESSAGE - 16);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                buf.extend_from_slice(&text.as_bytes()[..end]);
            }
        }
        self.send(&buf)
    }

    /// The next message from the master: `Ok(None)` when none is waiting,
    /// `Err(UnexpectedEof)` once the master is gone.
    pub fn recv_from_master(&self) -> io::Result<Option<ToWorker>> {
        let Some(buf) = self.recv()? else {
            return Ok(None);
        };
        let m = &buf[..];
        Ok(Some(match m.first() {
            Some(b'S') => ToWorker::Stop,
            Some(b'C') if m.len() >= 5 => {
                let id = u32::from_le_bytes([m[1], m[2], m[3], m[4]]);
                let mut parts = m[5..]
                    .split(|&b| b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                let name = parts.next().unwrap_or_default();
                ToWorker::Command {
                    id,
                    name,
                    args: parts.collect(),
                }
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad message")),
        }))
    }

    /// The next message from a worker, as [`Channel::recv_from_master`].
    pub fn recv_from_worker(&self) -> io::Result<Option<ToMaster>> {
        let Some(buf) = self.recv()? else {
            return Ok(None);
        };
        let m = &buf[..];
        Ok(Some(match m.first() {
            Some(b'B') => ToMaster::Booted,
            Some(b'X') => ToMaster::Spent,
            Some(b'R') if m.len() >= 6 => ToMaster::Reply {
                id: u32::from_le_bytes([m[1], m[2], m[3], m[4]]),
                ok: m[5] != 0,
                text: String::from_utf8_lossy(&m[6..]).into_owned(),
            },
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad message")),
        }))
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        loop {
            match send(std::os::fd::AsRawFd::as_raw_fd(&self.sock), buf, flags) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, if one is waiting. Its size is asked first
    /// (MSG_PEEK | MSG_TRUNC), so that the common answer, none waiting,
    /// costs one call and no buffer.
    fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let Some(size) = self.recv_into(&mut [], MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; size.min(MAX_MESSAGE)];
        let Some(n) = self.recv_into(&mut buf, MsgFlags::empty())? else {
            return Ok(None);
        };
        buf.truncate(n);
        Ok(Some(buf))
    }

    fn recv_into(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<Option<usize>> {
        loop {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.sock),
                buf,
                flags | MsgFlags::MSG_DONTWAIT,
            ) {
                // Messages are never empty: a zero read is the end.
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => return Ok(Some(n)),
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_whole() {
        let (master, worker) = Channel::pair().unwrap();
        assert_eq!(worker.recv_from_master().unwrap(), None);
        let cmd = ToWorker::Command {
            id: 7,
            name: "flush-cache".into(),
            args: vec!["a b".into(), String::new(), "ü".into()],
        };
        master.send_to_worker(&cmd).unwrap();
        master.send_to_worker(&ToWorker::Stop).unwrap();
        assert_eq!(worker.recv_from_master().unwrap(), Some(cmd));
        assert_eq!(worker.recv_from_master().unwrap(), Some(ToWorker::Stop));
        let reply = ToMaster::Reply {
            id: 7,
            ok: false,
            text: "x".repeat(MAX_MESSAGE * 2),
        };
        worker.send_to_master(&ToMaster::Booted).unwrap();
        worker.send_to_master(&reply).unwrap();
        assert_eq!(master.recv_from_worker().unwrap(), Some(ToMaster::Booted));
        match master.recv_from_worker().unwrap() {
            Some(ToMaster::Reply {
                id: 7,
                ok: false,
                text,
            }) => {
                assert!(text.len() < MAX_MESSAGE && text.len() > MAX_MESSAGE / 2)
            }
            other => panic!("{other:?}"),
        }
        drop(worker);
        assert_eq!(
            master.recv_from_worker().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
