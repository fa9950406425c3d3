//! Operating a running server: `spyglass ctl` over the control socket
//! (status, reload, workers, stop, recycle, application commands), worker
//! recycling by requests, age and memory, the lifecycle hooks, reload on a
//! watched file's change, and a control socket that no client can use to
//! stall or crash the master.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

/// A server with a control socket in a private directory.
struct Ctl {
    proc: Proc,
    addr: std::net::SocketAddr,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    _site: Option<tempfile::TempDir>,
}

impl Ctl {
    /// Wait until every one of these workers has been replaced.
    fn all_replaced(&self, first: &[i32]) -> bool {
        wait_until(T, || self.proc.workers().iter().all(|p| !first.contains(p)))
    }

    /// Workers recycled for this reason, as `ctl status` counts them.
    fn recycled(&self, reason: &str) -> u64 {
        self.status()["master"]["recycled"][reason]
            .as_u64()
            .expect("a count")
    }

    fn spyglass(extra: &[&str]) -> Ctl {
        let site = site();
        let launch = Launch::spyglass().arg(site.path().to_str().unwrap());
        Ctl::start(launch, extra, Some(site))
    }

    fn app(extra: &[&str]) -> Ctl {
        Ctl::start(Launch::new(example("app")), extra, None)
    }

    fn start(launch: Launch, extra: &[&str], site: Option<tempfile::TempDir>) -> Ctl {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let (proc, addr) = activated(
            launch
                .args(["--control-socket", socket.to_str().unwrap()])
                .args(extra.iter().copied()),
        );
        Ctl {
            proc,
            addr,
            socket,
            _dir: dir,
            _site: site,
        }
    }

    /// `spyglass ctl --json WORDS`: exit status and the JSON printed.
    fn ctl(&self, words: &[&str]) -> (i32, Value) {
        ctl_at(&self.socket, words)
    }

    fn status(&self) -> Value {
        let (code, v) = self.ctl(&["status"]);
        assert_eq!(code, 0, "{v}");
        v["result"].clone()
    }

    fn worker_pids(&self) -> Vec<i64> {
        self.status()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["state"] == "serving")
            .map(|w| w["pid"].as_i64().unwrap())
            .collect()
    }
}

fn ctl_at(socket: &Path, words: &[&str]) -> (i32, Value) {
    let out = Command::new(spyglass())
        .args(["ctl", "--json", "--socket", socket.to_str().unwrap()])
        .args(words)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

/// Send raw bytes to the control socket, read its whole answer.
fn raw(socket: &Path, bytes: &[u8]) -> Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn status_shows_the_master_the_listeners_and_every_worker() {
    let c = Ctl::spyglass(&["--workers", "2", "--idle-timeout", "1h"]);
    for _ in 0..3 {
        assert_eq!(get(c.addr, "/hello.txt").status, 200);
    }
    // A worker publishes its counts as its loop turns after a response.
    assert!(wait_until(T, || c.status()["master"]["requests_served"] == 3));
    let s = c.status();
    let m = &s["master"];
    assert_eq!(m["pid"], c.proc.pid);
    assert_eq!(m["phase"], "running");
    assert!(m["uptime_s"].as_f64().unwrap() >= 0.0);
    assert!(m["image"].as_str().unwrap().contains("spyglass ("), "{m}");
    assert_eq!(m["workers_wanted"], 2);
    assert_eq!(m["requests_served"], 3);
    assert_eq!(m["in_flight"], 0);
    assert!(m["idle_exit_in_s"].as_u64().unwrap() > 3000, "{m}");
    assert_eq!(s["listeners"][0]["address"], c.addr.to_string());
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let mut pids: Vec<i64> = workers.iter().map(|w| w["pid"].as_i64().unwrap()).collect();
    pids.sort();
    let mut real: Vec<i64> = c.proc.workers().into_iter().map(i64::from).collect();
    real.sort();
    assert_eq!(pids, real);
    let served: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(served, 3);
    for w in workers {
        assert_eq!(w["state"], "serving");
        assert!(w["rss_bytes"].as_u64().unwrap() > 100_000, "{w}");
        for field in ["slot", "age_s", "in_flight", "last_active_s_ago"] {
            assert!(!w[field].is_null(), "{field} in {w}");
        }
    }
    // The table for people names the same things.
    let out = Command::new(spyglass())
        .args(["ctl", "--socket", c.socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(table.contains(&format!("pid {}", c.proc.pid)), "{table}");
    assert!(table.contains("3 served"), "{table}");
    for pid in real {
        assert!(table.contains(&pid.to_string()), "{table}");
    }
    // The socket is the server's user's alone.
    let mode = std::fs::metadata(&c.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn ctl_says_when_nothing_runs_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let (code, _) = ctl_at(&socket, &["status"]);
    assert_eq!(code, 3);
    let out = Command::new(spyglass())
        .args(["ctl", "--socket", socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
    assert!(!socket.exists());
    // After a server has stopped, its socket is gone too.
    let mut c = Ctl::spyglass(&["--workers", "1"]);
    assert_eq!(c.ctl(&["stop"]).0, 0);
    assert_eq!(c.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
    assert!(!c.socket.exists());
    assert_eq!(c.ctl(&["status"]).0, 3);
}

#[test]
fn workers_reload_and_stop_by_command() {
    // The command line asks for one worker.
    let mut c = Ctl::spyglass(&["--workers", "1"]);
    let (code, v) = c.ctl(&["workers", "3"]);
    assert_eq!((code, &v["result"]["workers"]), (0, &Value::from(3)), "{v}");
    assert!(wait_until(T, || c.worker_pids().len() == 3));
    let before = c.worker_pids();
    assert_eq!(c.ctl(&["workers", "2"]).0, 0);
    assert!(wait_until(T, || c.proc.workers().len() == 2));
    // Bad numbers are refused with a reason.
    for bad in [&["workers", "0"][..], &["workers", "many"], &["workers"]] {
        let (code, v) = c.ctl(bad);
        assert_eq!(code, 1, "{bad:?}: {v}");
        assert!(v["error"].as_str().is_some(), "{v}");
    }
    // Reload: same master, new workers, as many as the (re-read)
    // configuration says: a reload applies the configuration.
    let (code, v) = c.ctl(&["reload"]);
    assert_eq!(code, 0, "{v}");
    c.proc.notified("RELOADING=1", T).expect("RELOADING=1");
    assert!(
        wait_until(T, || {
            let now = c.proc.workers();
            now.len() == 1 && now.iter().all(|p| !before.contains(&i64::from(*p)))
        }),
        "new workers after the reload: {before:?} -> {:?}",
        c.proc.workers()
    );
    assert!(wait_until(T, || c.status()["master"]["phase"] == "running"));
    assert_eq!(get(c.addr, "/hello.txt").status, 200);
    let (code, _) = c.ctl(&["stop"]);
    assert_eq!(code, 0);
    assert_eq!(c.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn recycle_replaces_workers_one_by_one_without_losing_a_request() {
    let c = Ctl::spyglass(&["--workers", "2"]);
    let first = c.worker_pids();
    // One by pid.
    let (code, v) = c.ctl(&["recycle", &first[0].to_string()]);
    assert_eq!(code, 0, "{v}");
    assert!(
        wait_until(T, || {
            let now = c.worker_pids();
            now.len() == 2 && !now.contains(&first[0]) && now.contains(&first[1])
        }),
        "{:?}",
        c.worker_pids()
    );
    assert_eq!(c.status()["master"]["recycled"]["ctl"], 1);
    // All of them, while a client keeps asking.
    let addr = c.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let client = std::thread::spawn(move || {
        // A well-behaved keep-alive client: it opens a new connection when
        // the server says this one closes.
        let mut c = Client::connect(addr);
        let (mut ok, mut total) = (0, 0);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            total += 1;
            c.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
            let res = c.response();
            if res.as_ref().is_some_and(|r| r.status == 200) {
                ok += 1;
            }
            if res.is_none_or(|r| r.header("connection") == Some("close")) {
                c = Client::connect(addr);
            }
        }
        (ok, total)
    });
    let second = c.worker_pids();
    assert_eq!(c.ctl(&["recycle", "all"]).0, 0);
    assert!(
        wait_until(T, || {
            let now = c.worker_pids();
            now.len() == 2 && now.iter().all(|p| !second.contains(p))
        }),
        "{second:?} -> {:?}",
        c.worker_pids()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, total) = client.join().unwrap();
    assert_eq!(ok, total, "every request answered 200 while recycling");
    assert_eq!(c.status()["master"]["recycled"]["ctl"], 3);
    // Not a worker of ours.
    let (code, v) = c.ctl(&["recycle", "1"]);
    assert_eq!(code, 1, "{v}");
}

#[test]
fn app_commands_reach_every_worker_or_one() {
    let c = Ctl::app(&["--workers", "2"]);
    for _ in 0..4 {
        assert_eq!(get(c.addr, "/").status, 200);
    }
    // A command registered on the server.
    let (code, v) = c.ctl(&["app", "echo", "hello", "a b"]);
    assert_eq!(code, 0, "{v}");
    let replies = v["result"]["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    for r in replies {
        assert_eq!(r["ok"], true);
        assert_eq!(r["reply"], "hello a b");
    }
    // The handler's own, with its per-worker state.
    let (code, v) = c.ctl(&["app", "answered"]);
    assert_eq!(code, 0, "{v}");
    let total: u64 = v["result"]["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reply"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4);
    // The engine's: counters by status class.
    assert_eq!(get(c.addr, "/nope").status, 404);
    let (code, v) = c.ctl(&["app", "stats"]);
    assert_eq!(code, 0);
    let mut by_class = [0u64; 5];
    let mut requests = 0;
    for r in v["result"]["replies"].as_array().unwrap() {
        let s: Value = serde_json::from_str(r["reply"].as_str().unwrap()).unwrap();
        requests += s["requests"].as_u64().unwrap();
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            by_class[i] += s["by_class"][class].as_u64().unwrap();
        }
        assert!(s["bytes_sent"].as_u64().is_some());
        assert!(s["open_connections"].as_u64().is_some());
    }
    assert_eq!((requests, by_class), (5, [0, 4, 0, 1, 0]));
    // One worker only.
    let pid = c.worker_pids()[0];
    let (code, v) = c.ctl(&["app", "--worker", &pid.to_string(), "echo", "x"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["replies"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"]["replies"][0]["pid"], pid);
    // A command no worker knows fails, clearly, in each.
    let (code, v) = c.ctl(&["app", "frobnicate"]);
    assert_eq!(code, 1);
    for r in v["result"]["replies"].as_array().unwrap() {
        assert_eq!(r["ok"], false);
        assert_eq!(r["reply"], "unknown command 'frobnicate'");
    }
    let (code, v) = c.ctl(&["app", "--worker", "1", "echo"]);
    assert_eq!(code, 1, "{v}");
}

#[test]
fn a_hostile_control_client_never_stalls_or_crashes_the_master() {
    let c = Ctl::spyglass(&["--workers", "1"]);
    // Clients that connect and say nothing, up to the limit and beyond.
    let silent: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&c.socket).unwrap())
        .collect();
    // The master still answers, reaps and replaces a killed worker.
    let t = Instant::now();
    let worker = c.proc.workers()[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    assert!(wait_until(T, || {
        let now = c.proc.workers();
        now.len() == 1 && now[0] != worker
    }));
    assert_eq!(get(c.addr, "/hello.txt").status, 200);
    eprintln!(
        "worker replaced {:?} after the kill, 20 silent clients",
        t.elapsed()
    );
    drop(silent);
    assert_eq!(c.ctl(&["status"]).0, 0);
    // Malformed and oversized commands get an error line.
    let cases: &[&[u8]] = &[
        b"\n",
        b"frobnicate\n",
        b"workers 0\n",
        b"[\"status\"\n",
        b"[1,2]\n",
        b"\xff\xfe\n",
        b"status extra\n",
    ];
    for bytes in cases {
        let v = raw(&c.socket, bytes);
        assert_eq!(v["ok"], false, "{:?}: {v}", String::from_utf8_lossy(bytes));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let long = vec![b'x'; 64 * 1024];
    let v = raw(&c.socket, &long);
    assert!(v["error"].as_str().unwrap().contains("longer than"), "{v}");
    // A line without its newline, then a hang-up: still answered or
    // closed, and the master lives on.
    let mut s = UnixStream::connect(&c.socket).unwrap();
    s.write_all(b"status").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.contains("\"ok\":true"), "{out}");
    let (code, v) = c.ctl(&["status"]);
    assert_eq!(
        (code, &v["result"]["master"]["pid"]),
        (0, &Value::from(c.proc.pid))
    );
}

#[test]
fn only_root_and_the_servers_user_may_ask() {
    let c = Ctl::spyglass(&["--workers", "1"]);
    // Open the file to everyone: the master still checks who connects.
    std::fs::set_permissions(&c.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        c.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(spyglass())
        .args([
            "ctl",
            "--json",
            "--socket",
            c.socket.to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(1), "{v} {out:?}");
    assert_eq!(v["ok"], false, "{out:?}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("permission denied for uid 65534"),
        "{v}"
    );
    // With the shipped mode (0600), such a user cannot even connect.
    std::fs::set_permissions(&c.socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(spyglass())
        .args(["ctl", "--socket", c.socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

/// Requests on fresh connections until one fails; how many were answered.
fn hammer(addr: std::net::SocketAddr, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let mut c = Client::connect(addr);
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            c.response().is_some_and(|r| r.status == 200)
        })
        .count()
}

#[test]
fn workers_are_recycled_after_their_requests_gracefully() {
    let c = Ctl::app(&["--workers", "2", "--worker-max-requests", "20"]);
    let first = c.proc.workers();
    assert_eq!(hammer(c.addr, 200), 200, "every request answered");
    assert!(
        c.all_replaced(&first),
        "{first:?} -> {:?}",
        c.proc.workers()
    );
    assert!(c.recycled("max-requests") >= 2, "{}", c.status());
    // Each replaced worker ran its handler's stop hook after its last
    // request, having answered at least its share (a worker due for
    // replacement serves on until its successor has booted).
    assert!(
        c.proc.log.wait_for("reason=\"max-requests\"", T)
            && wait_until(T, || c.proc.log.count(" stopping after ") >= 2),
        "{}",
        c.proc.log.text()
    );
    let log = c.proc.log.text();
    assert!(log.contains("event=\"recycle\""), "{log}");
    let stopped: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            l.split_once(" stopping after ")?
                .1
                .strip_suffix(" requests")
        })
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(stopped.len() >= 2, "{log}");
    assert!(stopped.iter().all(|n| *n >= 20), "{stopped:?}");
}

#[test]
fn workers_are_recycled_by_age_and_by_memory() {
    let c = Ctl::spyglass(&["--workers", "1", "--worker-max-lifetime", "1s"]);
    let first = c.proc.workers();
    assert!(c.all_replaced(&first));
    assert!(c.recycled("max-lifetime") >= 1);
    assert_eq!(get(c.addr, "/hello.txt").status, 200);

    // Any worker is bigger than 64 KiB: each is replaced as soon as the
    // master looks, one at a time, while requests keep being answered.
    let c = Ctl::spyglass(&["--workers", "1", "--worker-max-memory", "64K"]);
    let first = c.proc.workers();
    assert!(c.all_replaced(&first));
    assert!(c.recycled("max-memory") >= 1);
    assert_eq!(hammer(c.addr, 50), 50);
    assert!(
        c.proc.log.wait_for("reason=\"max-memory\"", T),
        "{}",
        c.proc.log.text()
    );
}

#[test]
fn the_before_reload_hook_can_refuse_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::new(example("app"))
        .args(["--workers", "1"])
        .env("APP_HOLD_RELOADS", hold.to_str().unwrap())
        .fd(l)
        .notify()
        .start();
    p.ready();
    let workers = p.workers();
    p.signal(Signal::SIGHUP);
    assert!(
        p.log
            .wait_for("reload refused by the before-reload hook", T),
        "{}",
        p.log.text()
    );
    assert!(p.log.text().contains("hold exists"));
    assert_eq!(p.workers(), workers);
    std::fs::remove_file(&hold).unwrap();
    p.signal(Signal::SIGHUP);
    p.notified("RELOADING=1", T).expect("the reload goes on");
    assert!(wait_until(T, || {
        let now = p.workers();
        now.len() == 1 && now != workers
    }));
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn a_changed_watched_file_reloads_once() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("app.conf");
    std::fs::write(&watched, "a").unwrap();
    let site = site();
    let (mut p, addr) = serve_dir(
        site.path(),
        &[
            "--workers",
            "1",
            "--reload-on-change",
            watched.to_str().unwrap(),
        ],
    );
    let workers = p.workers();
    // A burst of writes, and a replace by rename, as editors and builds do.
    for i in 0..5 {
        std::fs::write(&watched, format!("{i}")).unwrap();
    }
    let tmp = dir.path().join("app.conf.tmp");
    std::fs::write(&tmp, "new").unwrap();
    std::fs::rename(&tmp, &watched).unwrap();
    p.notified("RELOADING=1", T).expect("a reload");
    p.notify.as_mut().unwrap().clear();
    p.ready();
    assert!(wait_until(T, || {
        let now = p.workers();
        now.len() == 1 && now != workers
    }));
    assert_eq!(get(addr, "/hello.txt").status, 200);
    // One reload for the burst: no second one follows.
    assert!(
        p.notified("RELOADING=1", Duration::from_secs(2)).is_none(),
        "a second reload"
    );
    // The replaced file is still watched.
    let reloaded = p.workers();
    std::fs::write(&watched, "again").unwrap();
    p.notified("RELOADING=1", T)
        .expect("a reload after the rename");
    assert!(wait_until(T, || {
        let now = p.workers();
        now.len() == 1 && now != reloaded
    }));
    // Files beside it do not count.
    p.notify.as_mut().unwrap().clear();
    let _ = p.notified("READY=1", T);
    std::fs::write(dir.path().join("other"), "x").unwrap();
    assert!(p.notified("RELOADING=1", Duration::from_secs(2)).is_none());
}

/// An address given to `--listen` three times: three SO_REUSEPORT sockets,
/// each with a worker of its own (the pool grows to three), and none left
/// without one through recycling, growing and shrinking: every one of
/// hundreds of fresh connections, spread over the sockets by the kernel,
/// is answered. Fewer workers than sockets is refused.
#[test]
fn every_reuseport_socket_keeps_a_worker() {
    let c = Ctl::reuseport(3);
    let sockets = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex_port = format!(":{:04X} 00000000:0000 0A", c.addr.port());
    assert_eq!(
        sockets.matches(&hex_port).count(),
        3,
        "three listening sockets"
    );
    assert_eq!(c.status()["master"]["workers_wanted"], 3);
    assert!(c.proc.log.wait_for("3 workers instead of 1", T));
    assert_eq!(
        fresh_connections(c.addr, 300),
        300,
        "every socket has a worker"
    );

    let first = c.proc.workers();
    assert_eq!(c.ctl(&["recycle", "all"]).0, 0);
    assert!(c.all_replaced(&first));
    assert_eq!(fresh_connections(c.addr, 300), 300, "after recycling");

    let (code, v) = c.ctl(&["workers", "2"]);
    assert_eq!(code, 1, "{v}");
    assert!(v.to_string().contains("at least 3 workers"), "{v}");
    assert_eq!(c.ctl(&["workers", "5"]).0, 0);
    assert!(wait_until(T, || c.worker_pids().len() == 5));
    // Recycle the oldest three, so that the newest no longer match the
    // order the sockets were handed out in; then shrink.
    for pid in &c.worker_pids()[..3] {
        assert_eq!(c.ctl(&["recycle", &pid.to_string()]).0, 0);
    }
    assert!(wait_until(T, || c.worker_pids().len() == 5
        && c.status()["master"]["recycled"]["ctl"] == 6));
    assert_eq!(c.ctl(&["workers", "3"]).0, 0);
    assert!(wait_until(T, || c.proc.workers().len() == 3));
    assert_eq!(
        fresh_connections(c.addr, 300),
        300,
        "after growing and shrinking"
    );
}

/// A worker killed at once: the connections the kernel puts in its
/// SO_REUSEPORT socket's queue meanwhile wait there (the master holds the
/// socket open) until the successor that takes over that socket accepts
/// them. None is lost.
#[test]
fn a_killed_workers_reuseport_socket_passes_to_its_successor() {
    let c = Ctl::reuseport(2);
    assert_eq!(fresh_connections(c.addr, 100), 100);
    for round in 0..3 {
        let before = c.proc.workers();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(before[0]), Signal::SIGKILL).unwrap();
        assert_eq!(
            fresh_connections(c.addr, 100),
            100,
            "round {round}: connections while and after the worker was replaced"
        );
        assert!(wait_until(T, || {
            let now = c.proc.workers();
            now.len() == 2 && !now.contains(&before[0])
        }));
    }
}

/// A stopped worker (SIGSTOP: it neither serves nor exits) strands its
/// SO_REUSEPORT socket's queue only until `--worker-timeout`: the master
/// kills it, the successor takes the socket over, and every connection
/// queued there meanwhile is answered.
#[test]
fn a_stopped_workers_reuseport_socket_is_rescued_by_the_worker_timeout() {
    let c = Ctl::reuseport_with(2, &["--worker-timeout", "1s"]);
    assert_eq!(fresh_connections(c.addr, 50), 50);
    let stopped = c.proc.workers()[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stopped), Signal::SIGSTOP).unwrap();
    assert_eq!(
        fresh_connections(c.addr, 100),
        100,
        "connections while a worker was stopped, and after"
    );
    assert!(c.proc.log.wait_for("worker stuck for", T));
    assert!(wait_until(T, || {
        let now = c.proc.workers();
        now.len() == 2 && !now.contains(&stopped)
    }));
}

impl Ctl {
    /// spyglass with `--listen ADDR` `times` times (a free loopback port),
    /// `--workers 1`, ready.
    fn reuseport(times: usize) -> Ctl {
        Ctl::reuseport_with(times, &[])
    }

    /// The same, with `extra` flags.
    fn reuseport_with(times: usize, extra: &[&str]) -> Ctl {
        let site = site();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut proc = Launch::spyglass()
            .args((0..times).flat_map(|_| ["--listen", listen.as_str()]))
            .args(["--workers", "1", "--access-log", "off"])
            .args(["--control-socket", socket.to_str().unwrap()])
            .args(extra.iter().copied())
            .arg(site.path().to_str().unwrap())
            .notify()
            .start();
        proc.ready();
        Ctl {
            proc,
            addr: listen.parse().unwrap(),
            socket,
            _dir: dir,
            _site: Some(site),
        }
    }
}

/// Requests on fresh connections (each from a new port, so the kernel's
/// hash spreads them over an address's SO_REUSEPORT sockets), until one
/// is not answered within 5 s; how many were answered.
fn fresh_connections(addr: std::net::SocketAddr, n: usize) -> usize {
    (0..n)
        .take_while(|_| {
            let mut c = Client::connect(addr);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            c.response().is_some_and(|r| r.status == 200)
        })
        .count()
}
