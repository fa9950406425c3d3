//! Test support: run the real binaries under a fake activator, read their
//! sd_notify messages and logs, and speak raw HTTP to them.
//!
//! Everything waits on events (a datagram, a log line, a response, a pid's
//! exit) with a deadline; nothing sleeps to synchronise.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The `spyglass` binary under test.
pub fn spyglass() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spyglass"))
}

/// An example binary, built once per test run (`cargo test --test it`
/// alone would not rebuild examples, and a stale one would test old code).
pub fn example(name: &str) -> PathBuf {
    let bin = spyglass();
    let path = bin.parent().unwrap().join("examples").join(name);
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let profile = if bin.parent().unwrap().ends_with("release") {
            vec!["--release"]
        } else {
            vec![]
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .args(profile)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example");
        assert!(status.success(), "building example {name}");
        built.push(name.to_owned());
    }
    path
}

/// Poll `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A directory of test files, removed when dropped.
pub fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<h1>spyglass test</h1>\n").unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    dir
}

/// A listener on a free loopback port.
pub fn tcp_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// A loopback port that was free a moment ago, for a program that cannot
/// bind port 0 itself (another process may take it meanwhile: the caller
/// must tell "address in use" from a failure and try again). spyglass can:
/// `--listen 127.0.0.1:0` and [`Proc::listening_on`].
pub fn free_port() -> u16 {
    tcp_listener().local_addr().expect("local address").port()
}

/// The receiving end of `NOTIFY_SOCKET`.
pub struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    pub seen: Vec<String>,
}

impl Notify {
    pub fn new() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Notify {
            sock,
            path,
            _dir: dir,
            seen: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forget what has been seen: the next wait matches new messages only.
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    /// Wait for a message containing `what` (e.g. "READY=1"); returns it.
    pub fn wait_for(&mut self, what: &str, timeout: Duration) -> Option<String> {
        if let Some(m) = self.seen.iter().find(|m| m.contains(what)) {
            return Some(m.clone());
        }
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            // What has arrived already counts even with a zero timeout.
            let left = end.saturating_duration_since(Instant::now());
            self.sock.set_nonblocking(left.is_zero()).unwrap();
            if !left.is_zero() {
                self.sock.set_read_timeout(Some(left)).unwrap();
            }
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(m.clone());
                    if m.contains(what) {
                        return Some(m);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

/// Lines a child wrote to stderr, gathered by a thread.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<Lines>, Condvar)>);

/// What the thread has gathered, and whether the stream has ended (every
/// holder of the pipe's write end, the child and its children, is gone).
#[derive(Default)]
pub struct Lines {
    text: String,
    closed: bool,
}

impl Log {
    fn collect(self, stream: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            let (m, cv) = &*self.0;
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                m.lock().unwrap().text.push_str(&line);
                cv.notify_all();
                line.clear();
            }
            m.lock().unwrap().closed = true;
            cv.notify_all();
        });
    }

    pub fn text(&self) -> String {
        self.0.0.lock().unwrap().text.clone()
    }

    /// Wait until the log contains `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration) -> bool {
        self.wait(timeout, |l| l.text.contains(what))
    }

    /// Wait until the stream has ended, so that `text` holds every line the
    /// process wrote; false if something still holds the pipe open.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait(timeout, |l| l.closed)
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&Lines) -> bool) -> bool {
        let (m, cv) = &*self.0;
        let end = Instant::now() + timeout;
        let mut lines = m.lock().unwrap();
        loop {
            if done(&lines) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            lines = cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn count(&self, what: &str) -> usize {
        self.text().matches(what).count()
    }
}

/// How to start a server under test.
pub struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    fds: Vec<OwnedFd>,
    names: Option<String>,
    notify: bool,
}

impl Launch {
    pub fn new(program: impl Into<PathBuf>) -> Launch {
        Launch {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            fds: Vec::new(),
            names: None,
            notify: false,
        }
    }

    pub fn spyglass() -> Launch {
        Launch::new(spyglass())
    }

    pub fn arg(mut self, a: impl Into<String>) -> Launch {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Launch {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Launch {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Pass this socket as an activated fd (fd 3, then 4), like systemd.
    pub fn fd(mut self, fd: impl Into<OwnedFd>) -> Launch {
        self.fds.push(fd.into());
        assert!(self.fds.len() <= 2, "the shim passes at most two fds");
        self
    }

    /// `LISTEN_FDNAMES`.
    pub fn names(mut self, n: &str) -> Launch {
        self.names = Some(n.into());
        self
    }

    /// Give it a `NOTIFY_SOCKET`.
    pub fn notify(mut self) -> Launch {
        self.notify = true;
        self
    }

    pub fn start(self) -> Proc {
        let notify = self.notify.then(Notify::new);
        let n = self.fds.len();
        let mut cmd = if n == 0 {
            Command::new(&self.program)
        } else {
            // The fake activator: the sockets arrive as stdin (and stdout);
            // the shell moves them to 3 (and 4), sets LISTEN_FDS and
            // LISTEN_PID to its own pid, and execs the server in place, so
            // LISTEN_PID is the server's pid, as systemd guarantees.
            let moves = if n == 1 {
                "exec 3<&0 0</dev/null"
            } else {
                "exec 3<&0 4<&1 0</dev/null 1>/dev/null"
            };
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!(
                    r#"{moves}; export LISTEN_FDS={n} LISTEN_PID=$$; exec "$0" "$@""#
                ))
                .arg(&self.program);
            c
        };
        cmd.args(&self.args);
        let mut fds = self.fds.into_iter();
        match fds.next() {
            Some(fd) => cmd.stdin(Stdio::from(fd)),
            None => cmd.stdin(Stdio::null()),
        };
        match fds.next() {
            Some(fd) => cmd.stdout(Stdio::from(fd)),
            None => cmd.stdout(Stdio::null()),
        };
        cmd.stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(names) = &self.names {
            cmd.env("LISTEN_FDNAMES", names);
        }
        if let Some(n) = &notify {
            cmd.env("NOTIFY_SOCKET", n.path());
        }
        let mut child = cmd.spawn().expect("spawn server");
        let log = Log::default();
        log.clone().collect(child.stderr.take().unwrap());
        Proc {
            pid: child.id() as i32,
            child,
            notify,
            log,
            status: None,
        }
    }
}

/// A running server process.
pub struct Proc {
    pub pid: i32,
    child: Child,
    pub notify: Option<Notify>,
    pub log: Log,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Wait for READY=1; panics with the log if it does not come.
    pub fn ready(&mut self) -> String {
        let log = self.log.clone();
        let n = self.notify.as_mut().expect("started with .notify()");
        match n.wait_for("READY=1", Duration::from_secs(20)) {
            Some(m) => m,
            None => panic!("no READY=1; log:\n{}", log.text()),
        }
    }

    /// Wait for a notification containing `what`.
    pub fn notified(&mut self, what: &str, timeout: Duration) -> Option<String> {
        self.notify
            .as_mut()
            .expect("notify")
            .wait_for(what, timeout)
    }

    /// The TCP address spyglass logged as "listening ... address=" (the port
    /// the kernel chose for `--listen 127.0.0.1:0`); panics with the log if
    /// none comes.
    pub fn listening_on(&self) -> SocketAddr {
        let found = wait_until(Duration::from_secs(20), || {
            self.log.text().lines().any(|l| l.contains(" listening "))
        });
        let text = self.log.text();
        let addr = found
            .then(|| {
                text.lines()
                    .filter(|l| l.contains(" listening "))
                    .find_map(|l| {
                        l.split_whitespace()
                            .find_map(|w| w.strip_prefix("address="))
                    })
                    .and_then(|a| a.parse().ok())
            })
            .flatten();
        addr.unwrap_or_else(|| panic!("no TCP address logged:\n{text}"))
    }

    /// The pid's children (the workers), from /proc.
    pub fn workers(&self) -> Vec<i32> {
        children(self.pid)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).expect("kill");
    }

    /// Wait for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            let child = &mut self.child;
            let mut got = None;
            wait_until(timeout, || {
                got = child.try_wait().ok().flatten();
                got.is_some()
            });
            self.status = got;
            // Its last lines may still be in the pipe: read them before
            // anyone looks at the log (bounded: a grandchild may hold it).
            if self.status.is_some() {
                self.log.wait_closed(Duration::from_secs(5));
            }
        }
        self.status
    }

    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Live processes (zombies excluded) from /proc: pid, parent pid and
/// process group of each.
fn processes() -> Vec<(i32, i32, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        // After the command: state, ppid, pgrp, ...
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<i32>().ok());
        if let (Some(&state), Some(ppid), Some(pgrp)) = (fields.first(), num(1), num(2)) {
            if state != "Z" {
                out.push((p, ppid, pgrp));
            }
        }
    }
    out
}

/// Child pids of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = processes()
        .into_iter()
        .filter(|&(_, ppid, _)| ppid == pid)
        .map(|(p, _, _)| p)
        .collect();
    out.sort();
    out
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads responses one by one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send");
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                // A read with a timeout can end in EINTR with no handler
                // involved (signal(7): after a stop and a continue); the
                // test process's threads see such interruptions now and
                // then under the full suite. Not an end of stream.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
            }
        }
    }

    /// Read one response to a request with `method`; None on EOF.
    pub fn response_to(&mut self, method: &str) -> Option<Response> {
        let (status, headers, used) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (r.code.unwrap(), headers, n);
            }
            if !self.fill() {
                return None;
            }
        };
        self.buf.drain(..used);
        let mut res = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            return Some(res);
        }
        if method == "HEAD" || status == 204 || status == 304 {
            return Some(res);
        }
        if res
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    if !self.fill() {
                        return None;
                    }
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(),
                    16,
                )
                .unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    if !self.fill() {
                        return None;
                    }
                }
                res.body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    return Some(res);
                }
            }
        } else if let Some(len) = res
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap())
        {
            while self.buf.len() < len {
                if !self.fill() {
                    return None;
                }
            }
            res.body = self.buf.drain(..len).collect();
        } else {
            while self.fill() {}
            res.body = std::mem::take(&mut self.buf);
        }
        Some(res)
    }

    pub fn response(&mut self) -> Option<Response> {
        self.response_to("GET")
    }

    /// True once the server has closed the connection (EOF, or reset).
    pub fn closed(&mut self) -> bool {
        !self.fill()
    }
}

/// One request on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes());
    c.response().expect("a response")
}

/// Raw bytes in, everything the server sends until it closes, out.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A spyglass serving a test site on a socket it is handed (fake
/// activation), ready.
pub struct Running {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub site: tempfile::TempDir,
}

pub fn running(extra: &[&str]) -> Running {
    let site = site();
    let (proc, addr) = serve_dir(site.path(), extra);
    Running { proc, addr, site }
}

/// Start `launch` on a fresh loopback listener handed to it as fd 3 (fake
/// activation, with a notify socket) and wait for READY=1.
pub fn activated(launch: Launch) -> (Proc, SocketAddr) {
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut proc = launch.fd(l).notify().start();
    proc.ready();
    (proc, addr)
}

/// An example app on a handed socket, ready.
pub fn running_example(name: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    activated(Launch::new(example(name)).args(extra.iter().copied()))
}

impl Client {
    /// Read only the head of the next response (for a body read piece by
    /// piece with [`Client::chunk`]).
    pub fn head(&mut self) -> Option<Response> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let res = Response {
                    status: r.code.unwrap(),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                };
                self.buf.drain(..n);
                return Some(res);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Read the next chunk of a chunked body as it arrives; `Some(empty)`
    /// for the last chunk, None if the connection ends first.
    pub fn chunk(&mut self) -> Option<Vec<u8>> {
        let line_end = loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            if !self.fill() {
                return None;
            }
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).ok()?.trim(), 16)
                .ok()?;
        self.buf.drain(..line_end + 2);
        let need = if size == 0 { 2 } else { size + 2 };
        while self.buf.len() < need {
            if !self.fill() {
                return None;
            }
        }
        let data = self.buf[..size].to_vec();
        self.buf.drain(..need);
        Some(data)
    }
}

/// Write an executable file `name` into `dir`.
///
/// A helper process writes it, not this one: a test process forks all the
/// time (every test starts servers), and a child forked while this process
/// held the file open for writing would keep it so until its exec, making
/// the server's exec of the script fail with ETXTBSY.
pub fn executable(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut sh = Command::new("/bin/sh")
        .args(["-c", r#"cat > "$1" && chmod 755 "$1""#, "sh"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh");
    sh.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success(), "writing {}", path.display());
    path
}

/// Write an executable POSIX sh script `name` into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    executable(dir, name, &format!("#!/bin/sh\n{body}"))
}

/// A spyglass serving a test site whose `cgi-bin/` holds `scripts` (name,
/// sh body), mounted with `--cgi /cgi-bin=ROOT/cgi-bin`, ready.
pub fn running_cgi(scripts: &[(&str, &str)], extra: &[&str]) -> Running {
    let site = site();
    let cgi = site.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    for (name, body) in scripts {
        script(&cgi, name, body);
    }
    let (proc, addr) = activated(
        Launch::spyglass()
            .arg(site.path().to_str().unwrap())
            .arg("--cgi")
            .arg(format!("/cgi-bin={}", cgi.display()))
            .args(extra.iter().copied()),
    );
    Running { proc, addr, site }
}

/// Open a FIFO for writing once its reader (a script) has opened it;
/// None if no reader comes within `timeout`.
pub fn fifo_writer(path: &Path, timeout: Duration) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = None;
    wait_until(timeout, || {
        // Without a reader, a non-blocking open for writing fails (ENXIO).
        file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .ok();
        file.is_some()
    });
    file
}

/// Processes whose process group is `pgid` (zombies excluded), from /proc.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|&(_, _, pgrp)| pgrp == pgid)
        .map(|(p, _, _)| p)
        .collect()
}

/// A spyglass serving `root` on a socket it is handed (fake activation),
/// ready.
pub fn serve_dir(root: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    activated(
        Launch::spyglass()
            .arg(root.to_str().unwrap())
            .args(extra.iter().copied()),
    )
}

/// One request with extra header fields on a new connection, its response
/// read as `method` dictates (no body for HEAD).
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut c = Client::connect(addr);
    c.send(raw.as_bytes());
    c.response_to(method).expect("a response")
}

/// A small xorshift generator for the randomized tests: the same seed, the
/// same draws, so a failure reproduces from the seed it prints.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Close with an RST instead of a FIN.
pub fn reset(s: std::net::TcpStream) {
    let _ = nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    drop(s);
}
