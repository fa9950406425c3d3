//! The control socket: a Unix stream socket the master listens on (in its
//! runtime directory under systemd) for `spyglass ctl`. Each connection
//! carries one command line and gets one answer, a JSON object on one line:
//! `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`.
//!
//! This file turns command lines into the same [`Command`]s that signals
//! produce, so the master's loop stays the one dispatcher, and writes the
//! answers the master gives. It never blocks the master: the socket and
//! every connection are non-blocking, a command line is at most
//! [`MAX_LINE`] bytes, a client that says nothing (or does not read its
//! answer) is dropped after [`CLIENT_TIMEOUT_MS`], and at most
//! [`MAX_CLIENTS`] are served at once. Only root and the server's own user
//! may connect (`SO_PEERCRED`); the socket file is mode 0600.
//!
//! A command line is either words separated by blanks (`workers 4`), for
//! a person at `socat`, or a JSON array of strings (`["app","say","a b"]`),
//! which is what `spyglass ctl` sends so that arguments may hold blanks.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::poll::PollFlags;
use nix::sys::socket::{getsockopt, sockopt};

use crate::scoreboard::now_ms;
use crate::signals::Command;

/// The longest command line accepted.
pub const MAX_LINE: usize = 4096;
/// Connections served at once, at most.
pub const MAX_CLIENTS: usize = 16;
/// A client has this long to send its line, and again to read its answer.
pub const CLIENT_TIMEOUT_MS: u64 = 5000;

/// Which connection an answer is for.
pub type ClientId = u64;

/// The master's end of the control socket.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    next_id: ClientId,
    owner: u32,
}

struct Client {
    id: ClientId,
    sock: UnixStream,
    input: Vec<u8>,
    /// The command was read; the answer is awaited or being written.
    asked: bool,
    output: Vec<u8>,
    written: usize,
    deadline: u64,
}

impl Control {
    /// Listen at `path` (mode 0600). A socket file nobody answers on is
    /// left from a crash and replaced; one that answers belongs to a live
    /// server and is an error.
    pub fn open(path: &Path) -> io::Result<Control> {
        crate::listeners::clear_stale_socket(path)?;
        // Bound under a umask that leaves it ours alone, so that no other
        // user can connect between bind and chmod.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Control {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            next_id: 1,
            owner: nix::unistd::geteuid().as_raw(),
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What to poll, and for which events.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut out = vec![(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in &self.clients {
            if !c.asked {
                out.push((c.sock.as_fd(), PollFlags::POLLIN));
            } else if c.written < c.output.len() {
                out.push((c.sock.as_fd(), PollFlags::POLLOUT));
            }
        }
        out
    }

    /// The soonest client deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Accept, read, write and expire; the commands that arrived, each
    /// with the connection to answer.
    pub fn turn(&mut self) -> Vec<(Command, ClientId)> {
        let now = now_ms();
        self.accept(now);
        let mut commands = Vec::new();
        for c in &mut self.clients {
            if !c.asked {
                if let Some(line) = c.read_line() {
                    c.asked = true;
                    c.deadline = now + CLIENT_TIMEOUT_MS;
                    match line.and_then(|l| parse(&l)) {
                        Ok(cmd) => commands.push((cmd, c.id)),
                        Err(e) => c.queue(&error_json(&e)),
                    }
                }
            }
            c.flush();
        }
        self.clients.retain(|c| !c.done() && c.deadline > now);
        commands
    }

    /// Answer connection `id` (gone already: nothing happens).
    pub fn answer(&mut self, id: ClientId, result: Result<serde_json::Value, String>) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            let text = match result {
                Ok(v) => serde_json::json!({ "ok": true, "result": v }).to_string(),
                Err(e) => error_json(&e),
            };
            c.queue(&text);
            c.flush();
        }
        self.clients.retain(|c| !c.done());
    }

    fn accept(&mut self, now: u64) {
        loop {
            let sock = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or out of descriptors: next turn
            };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let mut c = Client {
                id: self.next_id,
                sock,
                input: Vec::new(),
                asked: false,
                output: Vec::new(),
                written: 0,
                deadline: now + CLIENT_TIMEOUT_MS,
            };
            self.next_id += 1;
            let uid = getsockopt(&c.sock, sockopt::PeerCredentials).map(|cred| cred.uid());
            let refusal = match uid {
                Ok(0) => None,
                Ok(u) if u == self.owner => None,
                Ok(u) => Some(format!("permission denied for uid {u}")),
                Err(e) => Some(format!("cannot tell who is asking: {e}")),
            };
            let busy = self.clients.len() >= MAX_CLIENTS;
            if let Some(why) = refusal.or_else(|| busy.then(|| "busy: try again".to_owned())) {
                c.asked = true;
                c.queue(&error_json(&why));
                c.flush();
                if !c.done() && !busy {
                    self.clients.push(c);
                }
                continue;
            }
            self.clients.push(c);
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    /// The command line once complete: `Some(Ok)`, `Some(Err)` when it is
    /// too long or the client hung up mid-line, `None` while it arrives.
    fn read_line(&mut self) -> Option<Result<Vec<u8>, String>> {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                let mut line = self.input[..end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(Ok(line));
            }
            if self.input.len() > MAX_LINE {
                return Some(Err(format!("command line longer than {MAX_LINE} bytes")));
            }
            match self.sock.read(&mut buf) {
                Ok(0) if self.input.is_empty() => return Some(Err("no command".into())),
                Ok(0) => return Some(Ok(std::mem::take(&mut self.input))),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    fn queue(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
        self.output.push(b'\n');
    }

    fn flush(&mut self) {
        while self.written < self.output.len() {
            match self.sock.write(&self.output[self.written..]) {
                Ok(0) => return self.written = self.output.len(),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The client is gone: nothing more to say to it.
                Err(_) => return self.written = self.output.len(),
            }
        }
    }

    fn done(&self) -> bool {
        !self.output.is_empty() && self.written >= self.output.len()
    }
}

impl Drop for Client {
    /// Read what the client sent and we did not (the rest of an oversized
    /// line): a Unix socket closed with unread input resets the peer,
    /// which could then lose the answer it has not read yet.
    fn drop(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..64 {
            match self.sock.read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

fn error_json(e: &str) -> String {
    serde_json::json!({ "ok": false, "error": e }).to_string()
}

/// A command line as words: a JSON array of strings, or words separated by
/// blanks.
pub fn words(line: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the command is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.starts_with('[') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("bad JSON command: {e}"))?;
        let items = v
            .as_array()
            .ok_or("a JSON command is an array of strings")?;
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "a JSON command is an array of strings".to_owned())
            })
            .collect()
    } else {
        Ok(text.split_ascii_whitespace().map(str::to_owned).collect())
    }
}

/// The commands, for error messages and `spyglass ctl --help`.
pub const COMMANDS: &str = "status, reload, stop, workers N, recycle [PID|all], \
app [--worker PID] NAME [ARGS...]";

/// Parse one command line into the command it asks for.
pub fn parse(line: &[u8]) -> Result<Command, String> {
    let words = words(line)?;
    let mut w = words.iter().map(String::as_str);
    let verb = w
        .next()
        .ok_or_else(|| format!("no command; one of: {COMMANDS}"))?;
    let rest: Vec<&str> = w.collect();
    let none = |cmd: Command| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("'{verb}' takes no arguments"))
        }
    };
    let pid = |s: &str| {
        s.parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{s}' is not a process id"))
    };
    match verb {
        "status" => none(Command::Status),
        "reload" => none(Command::Reload),
        "stop" => none(Command::GracefulStop),
        "workers" => match rest.as_slice() {
            [n] => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=crate::master::MAX_WORKERS).contains(n))
                .map(Command::SetWorkers)
                .ok_or_else(|| {
                    format!(
                        "'{n}': the number of workers is 1 to {}",
                        crate::master::MAX_WORKERS
                    )
                }),
            _ => Err("usage: workers N".into()),
        },
        "recycle" => match rest.as_slice() {
            [] | ["all"] => Ok(Command::Recycle(None)),
            [p] => Ok(Command::Recycle(Some(pid(p)?))),
            _ => Err("usage: recycle [PID|all]".into()),
        },
        "app" => {
            let (worker, rest) = match rest.as_slice() {
                ["--worker", p, rest @ ..] => (Some(pid(p)?), rest),
                rest => (None, rest),
            };
            let (name, args) = rest
                .split_first()
                .ok_or("usage: app [--worker PID] NAME [ARGS...]")?;
            if name.is_empty() || name.starts_with('-') {
                return Err(format!("'{name}' is not a command name"));
            }
            Ok(Command::App {
                name: (*name).to_owned(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                worker,
            })
        }
        other => Err(format!("unknown command '{other}'; one of: {COMMANDS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let ok: &[(&[u8], Command)] = &[
            (b"status", Command::Status),
            (b"  status \r", Command::Status),
            (b"[\"status\"]", Command::Status),
            (b"reload", Command::Reload),
            (b"stop", Command::GracefulStop),
            (b"workers 4", Command::SetWorkers(4)),
            (b"recycle", Command::Recycle(None)),
            (b"recycle all", Command::Recycle(None)),
            (b"recycle 123", Command::Recycle(Some(123))),
            (
                b"[\"app\",\"--worker\",\"9\",\"say\",\"a b\",\"\"]",
                Command::App {
                    name: "say".into(),
                    args: vec!["a b".into(), String::new()],
                    worker: Some(9),
                },
            ),
            (
                b"app stats",
                Command::App {
                    name: "stats".into(),
                    args: vec![],
                    worker: None,
                },
            ),
        ];
        for (line, want) in ok {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"status now",
            b"workers",
            b"workers 0",
            b"workers -1",
            b"workers 99999999999999999999",
            b"workers 4 5",
            b"recycle 0",
            b"recycle me",
            b"app",
            b"app --worker",
            b"app --worker x say",
            b"app --flag",
            b"frobnicate",
            b"[\"status\"",
            b"[1, 2]",
            b"{\"status\": 1}",
            b"\xff\xfe",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{:?}", String::from_utf8_lossy(line));
        }
    }
}
