//! A running script: its process group, its three pipes and the epoll set
//! that watches them, all non-blocking.
//!
//! The worker's event loop waits on one descriptor per script: a small
//! epoll instance of its own, readable whenever stdin can take more of the
//! request body, stdout or stderr has bytes (or hit EOF), or, once stdout
//! is done, the script has exited or overstayed its grace. Each call from
//! the engine does all the work that is possible without blocking
//! ([`Script::pump`]) and reports `WouldBlock` when nothing is left.
//!
//! The script leads a process group of its own ([`crate::sys::exec_clean`]).
//! Dropping a [`Script`] ends it: SIGKILL to the leader and to the group,
//! then waitpid, so neither a zombie nor a stray child outlives the request.
//! The group is always killed before the leader is reaped: while the leader
//! is unreaped its pid cannot be reused, so the signal cannot reach a
//! stranger.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::handler::RequestBody;

/// How long a script may keep running after closing its stdout before its
/// group is killed.
const GRACE: Duration = Duration::from_secs(2);
/// The longest stderr line logged as one event; longer ones are split.
const MAX_LOG_LINE: usize = 2048;
/// Bytes moved per pipe per call at most, so that one chatty script cannot
/// hold the worker.
const BUDGET: usize = 256 * 1024;

/// One running script.
pub struct Script {
    /// Its `SCRIPT_NAME`, for the log.
    name: String,
    pid: Pid,
    reaped: bool,
    epoll: Rc<Epoll>,
    stdin: Option<Feeder>,
    stdout: Option<File>,
    stderr: Option<ErrLog>,
    /// Watching for the exit once stdout is done.
    exit: Option<ExitWatch>,
    /// Body bytes read along with the header block, not yet handed on.
    unread: Vec<u8>,
    unread_pos: usize,
    deadline: Instant,
}

/// Copies the request body into the script's stdin.
struct Feeder {
    pipe: File,
    body: RequestBody,
    buf: Vec<u8>,
    pos: usize,
}

/// Logs the script's stderr line by line.
struct ErrLog {
    pipe: File,
    line: Vec<u8>,
}

/// The exit of a script whose stdout is done, and the end of its grace;
/// both descriptors sit in the script's epoll set (closing them removes
/// them).
struct ExitWatch {
    _pidfd: OwnedFd,
    _timer: TimerFd,
    until: Instant,
}

impl Script {
    /// Start `file` with `env` in its own directory, the request body on
    /// its stdin. It must be done by `deadline`.
    pub fn spawn(
        file: &Path,
        env: Vec<(OsString, OsString)>,
        body: RequestBody,
        name: &str,
        deadline: Instant,
    ) -> io::Result<Script> {
        let epoll = Rc::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
        let mut cmd = Command::new(file);
        cmd.env_clear()
            .envs(env)
            .current_dir(file.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::sys::exec_clean(&mut cmd);
        let mut child = cmd.spawn()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
        // From here on the Script owns the child: on any error below, its
        // Drop kills and reaps it.
        let mut script = Script {
            name: name.to_owned(),
            pid,
            reaped: false,
            epoll,
            stdin: None,
            stdout: None,
            stderr: None,
            exit: None,
            unread: Vec::new(),
            unread_pos: 0,
            deadline,
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("the script's pipes are missing"));
        };
        let stdout = watch(&script.epoll, OwnedFd::from(stdout), EpollFlags::EPOLLIN)?;
        script.stdout = Some(stdout);
        let stderr = watch(&script.epoll, OwnedFd::from(stderr), EpollFlags::EPOLLIN)?;
        script.stderr = Some(ErrLog {
            pipe: stderr,
            line: Vec::new(),
        });
        if !body.is_empty() {
            let pipe = watch(&script.epoll, OwnedFd::from(stdin), EpollFlags::EPOLLOUT)?;
            script.stdin = Some(Feeder {
                pipe,
                body,
                buf: Vec::new(),
                pos: 0,
            });
        } // else stdin closes here: the script reads EOF at once.
        Ok(script)
    }

    /// Its `SCRIPT_NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The epoll set, readable when there is work.
    pub fn epoll(&self) -> &Rc<Epoll> {
        &self.epoll
    }

    /// The descriptor the engine waits on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// When the script must be done; none once its stdout is done (the
    /// exit then has its own, shorter, grace).
    pub fn deadline(&self) -> Option<Instant> {
        self.stdout.is_some().then_some(self.deadline)
    }

    /// Feed stdin and drain stderr as far as they go without blocking.
    pub fn pump(&mut self) {
        if let Some(feeder) = &mut self.stdin {
            if feeder.feed(&self.name) {
                let f = self.stdin.take();
                unwatch(&self.epoll, f.map(|f| f.pipe));
            }
        }
        if let Some(log) = &mut self.stderr {
            if log.drain(&self.name, BUDGET) {
                let l = self.stderr.take();
                unwatch(&self.epoll, l.map(|l| l.pipe));
            }
        }
    }

    /// Bytes that came with the header block, to be read first.
    pub fn unread(&mut self, bytes: Vec<u8>) {
        self.unread = bytes;
        self.unread_pos = 0;
    }

    /// Read stdout: `Ok(0)` at its end, `WouldBlock` when it has nothing.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unread_pos < self.unread.len() {
            let n = buf.len().min(self.unread.len() - self.unread_pos);
            buf[..n].copy_from_slice(&self.unread[self.unread_pos..self.unread_pos + n]);
            self.unread_pos += n;
            if self.unread_pos == self.unread.len() {
                self.unread = Vec::new();
                self.unread_pos = 0;
            }
            return Ok(n);
        }
        let Some(out) = &mut self.stdout else {
            return Ok(0);
        };
        loop {
            match out.read(buf) {
                Ok(0) => {
                    let out = self.stdout.take();
                    unwatch(&self.epoll, out);
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// After stdout's end: true once the script has exited and is reaped
    /// (its group killed if it lingers past the grace); false while it
    /// may still exit by itself (the epoll set turns readable when it does).
    pub fn finished(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        if self.exit.is_none() {
            match ExitWatch::new(self.pid, &self.epoll) {
                Ok(w) => self.exit = Some(w),
                Err(e) => {
                    tracing::debug!(script = &*self.name, error = %e, "cannot watch the exit");
                    self.kill_and_reap();
                    return true;
                }
            }
        }
        if self.has_exited() {
            self.reap();
            return true;
        }
        if self.reaped {
            return true;
        }
        if self
            .exit
            .as_ref()
            .is_some_and(|w| Instant::now() >= w.until)
        {
            tracing::warn!(
                script = &*self.name,
                "script still running after its output ended; killed"
            );
            self.kill_and_reap();
            return true;
        }
        false
    }

    /// The leader has exited (and is a zombie, not yet reaped).
    fn has_exited(&mut self) -> bool {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(self.pid), flags) {
                Ok(WaitStatus::StillAlive) => return false,
                Ok(_) => return true,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    // Not our child any more: nothing left to reap, and its
                    // pid may be someone else's now, so signal nothing.
                    self.reaped = true;
                    return false;
                }
            }
        }
    }

    /// The leader has exited: kill what it left in its group, reap it, and
    /// log a failure.
    fn reap(&mut self) {
        let _ = killpg(self.pid, Signal::SIGKILL);
        match wait_for(self.pid) {
            Some(WaitStatus::Exited(_, 0)) | None => {}
            Some(WaitStatus::Exited(_, code)) => {
                tracing::warn!(
                    script = &*self.name,
                    status = code,
                    "script exited with status {code}"
                )
            }
            Some(WaitStatus::Signaled(_, sig, _)) => {
                tracing::warn!(script = &*self.name, signal = %sig, "script killed by {sig}")
            }
            Some(_) => {}
        }
        self.reaped = true;
    }

    /// End the script now: SIGKILL to the leader (it may have left the
    /// group) and to the group, then reap.
    fn kill_and_reap(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = killpg(self.pid, Signal::SIGKILL);
        wait_for(self.pid);
        self.reaped = true;
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // Close stdin first: whatever happens next, it gets no more input.
        self.stdin = None;
        if !self.reaped {
            if self.has_exited() {
                self.reap();
            } else if !self.reaped {
                if Instant::now() >= self.deadline {
                    tracing::warn!(script = &*self.name, "script timed out; killed");
                } else {
                    // The response is over early: a HEAD, a client gone.
                    tracing::debug!(script = &*self.name, "ending the script");
                }
                self.kill_and_reap();
            }
        }
        // What it wrote to stderr before it died still goes to the log.
        if let Some(log) = &mut self.stderr {
            log.drain(&self.name, BUDGET);
            log.flush(&self.name);
        }
    }
}

/// waitpid, blocking (the process has exited or was sent SIGKILL, so it
/// ends at once), retried on EINTR.
fn wait_for(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Ok(s) => return Some(s),
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

impl Feeder {
    /// Write what the pipe takes; true when done (the body is all in, or
    /// the script closed its stdin).
    fn feed(&mut self, name: &str) -> bool {
        let mut moved = 0;
        loop {
            if self.pos == self.buf.len() {
                if moved >= BUDGET {
                    return false;
                }
                self.buf.resize(64 * 1024, 0);
                self.pos = 0;
                match self.body.read(&mut self.buf) {
                    Ok(0) => return true,
                    Ok(n) => self.buf.truncate(n),
                    Err(e) => {
                        tracing::error!(script = name, error = %e, "cannot read the request body");
                        return true;
                    }
                }
            }
            match self.pipe.write(&self.buf[self.pos..]) {
                Ok(n) => {
                    self.pos += n;
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // EPIPE: the script does not want (the rest of) the body.
                Err(_) => return true,
            }
        }
    }
}

impl ErrLog {
    /// Read up to `budget` bytes and log the complete lines; true at EOF.
    fn drain(&mut self, name: &str, budget: usize) -> bool {
        let mut buf = [0u8; 8192];
        let mut moved = 0;
        while moved < budget {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.flush(name);
                    return true;
                }
                Ok(n) => {
                    moved += n;
                    for part in buf[..n].split_inclusive(|&b| b == b'\n') {
                        self.line.extend_from_slice(part);
                        if part.ends_with(b"\n") || self.line.len() >= MAX_LOG_LINE {
                            self.flush(name);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        false
    }

    /// Log the line gathered so far (at most [`MAX_LOG_LINE`] bytes each).
    fn flush(&mut self, name: &str) {
        for piece in self.line.chunks(MAX_LOG_LINE) {
            let text: String = String::from_utf8_lossy(piece)
                .trim_end_matches(['\n', '\r'])
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            if !text.is_empty() {
                tracing::warn!(script = name, "{text}");
            }
        }
        self.line.clear();
    }
}

impl ExitWatch {
    /// Watch `pid`'s exit and the grace's end in `epoll`.
    fn new(pid: Pid, epoll: &Epoll) -> io::Result<ExitWatch> {
        let pidfd = crate::sys::pidfd_open(pid)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        timer.set(
            Expiration::OneShot(TimeSpec::from_duration(GRACE)),
            TimerSetTimeFlags::empty(),
        )?;
        epoll.add(&pidfd, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        Ok(ExitWatch {
            _pidfd: pidfd,
            _timer: timer,
            until: Instant::now() + GRACE,
        })
    }
}

/// Make a pipe end non-blocking and watch it for `flags`.
fn watch(epoll: &Epoll, fd: OwnedFd, flags: EpollFlags) -> io::Result<File> {
    let fl = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    epoll.add(&fd, EpollEvent::new(flags, 0))?;
    Ok(File::from(fd))
}

/// Stop watching a pipe end and close it.
fn unwatch(epoll: &Epoll, pipe: Option<File>) {
    if let Some(p) = pipe {
        let _ = epoll.delete(&p);
    }
}
