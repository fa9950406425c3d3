//! Faults injected while traffic flows: no descriptors left, a full disk
//! under a spilled request body, a worker stopped dead. Each fault costs
//! what it must (the requests it touches) and nothing else.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn out_of_descriptors_accept_pauses_without_spinning_and_recovers() {
    // One worker with 64 descriptors, and more clients than that: each
    // sends half a request, so the worker holds its connection.
    let site = site();
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(spyglass().to_str().unwrap())
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--header-timeout", "60s"])
        .fd(l)
        .notify()
        .start();
    p.ready();
    let worker = p.workers()[0];
    let mut held = Vec::new();
    for _ in 0..120 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
        held.push(s);
    }
    assert!(
        p.log
            .wait_for("accept: out of resources; pausing accept", T),
        "{}",
        p.log.text()
    );
    // Accept fails while the clients stay: the worker must not spin.
    let (cpu, wall) = (cpu_time(worker), Instant::now());
    let waiting = std::thread::spawn(move || {
        // A client queued behind the exhaustion: answered once some leave.
        let mut c = Client::connect(addr);
        c.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.response().map(|r| r.status)
    });
    std::thread::sleep(Duration::from_secs(2)); // a measured interval, not a sync
    let used = cpu_time(worker) - cpu;
    eprintln!(
        "worker CPU while out of descriptors: {used:?} in {:?}",
        wall.elapsed()
    );
    assert!(
        used < Duration::from_millis(300),
        "{used:?} of CPU in 2 s: accept spins"
    );
    assert_eq!(
        p.log.count("accept: out of resources"),
        1,
        "said once, not once per try"
    );
    // The listener is still there, and service comes back when clients go.
    drop(held);
    assert_eq!(waiting.join().unwrap(), Some(200));
    assert!(p.log.wait_for("accepting again", T), "{}", p.log.text());
    assert_eq!(get(addr, "/hello.txt").status, 200);
    assert_eq!(
        p.workers(),
        vec![worker],
        "the same worker, never restarted"
    );
}

#[test]
fn a_full_disk_under_a_spilled_body_fails_that_request_alone() {
    // Request bodies over --body-buffer spill to $TMPDIR: here a 256 KiB
    // tmpfs of the server's own (a private mount namespace).
    let site = site();
    let tmp = tempfile::tempdir().unwrap();
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::new("unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=256k tmpfs "$0" && TMPDIR="$0" exec "$@""#)
        .arg(tmp.path().to_str().unwrap())
        .arg(spyglass().to_str().unwrap())
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--body-buffer", "16K"])
        .fd(l)
        .notify()
        .start();
    p.ready();
    let post = move |size: usize| {
        let mut c = Client::connect(addr);
        c.send(
            format!(
                "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let _ = c.stream.write_all(&vec![b'x'; size]);
        c.response().map(|r| r.status)
    };
    // While a 1 MiB body fills the disk, other clients are served.
    let big = std::thread::spawn(move || post(1 << 20));
    for _ in 0..20 {
        assert_eq!(get(addr, "/hello.txt").status, 200);
    }
    assert_eq!(big.join().unwrap(), Some(500), "{}", p.log.text());
    assert!(
        p.log.wait_for("cannot store request body", T) && p.log.text().contains("No space left"),
        "{}",
        p.log.text()
    );
    // The space came back with the request: a body that fits is stored
    // (and the static handler answers the method with 405), as are small
    // ones kept in memory.
    assert_eq!(post(100 * 1024), Some(405));
    assert_eq!(post(1000), Some(405));
    assert_eq!(get(addr, "/hello.txt").status, 200);
    assert!(!p.log.text().contains("worker died"));
}

#[test]
fn a_stopped_worker_is_replaced_and_its_requests_logged_as_lost() {
    let site = site();
    let ctl = tempfile::tempdir().unwrap();
    let socket = ctl.path().join("control.sock");
    let (p, addr) = serve_dir(
        site.path(),
        &[
            "--workers",
            "2",
            "--worker-timeout",
            "1s",
            "--control-socket",
            socket.to_str().unwrap(),
        ],
    );
    // Requests in flight: half a head each.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
        held.push(s);
    }
    // The worker holding some of them (ctl status says who holds what).
    let mut victim = 0;
    assert!(wait_until(T, || {
        let out = std::process::Command::new(spyglass())
            .args([
                "ctl",
                "--json",
                "--socket",
                socket.to_str().unwrap(),
                "status",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let workers = v["result"]["workers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let total: u64 = workers.iter().filter_map(|w| w["in_flight"].as_u64()).sum();
        if let Some(w) = workers.iter().find(|w| w["in_flight"].as_u64() > Some(0)) {
            victim = w["pid"].as_i64().unwrap() as i32;
        }
        total == 8
    }));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGSTOP).unwrap();
    // The other worker serves meanwhile.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(addr, "/hello.txt").status, 200);
    }
    assert!(p.log.wait_for("killing it", T), "{}", p.log.text());
    eprintln!("stopped worker replaced after {:?}", t.elapsed());
    let log = p.log.text();
    let line = log.lines().find(|l| l.contains("killing it")).unwrap();
    assert!(
        line.contains("requests in flight lost") && line.contains(&format!("pid={victim}")),
        "{line}"
    );
    let lost: u64 = line
        .split_once("killing it: ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((1..=8).contains(&lost), "{line}");
    assert!(wait_until(T, || {
        let now = p.workers();
        now.len() == 2 && !now.contains(&victim)
    }));
    // The survivor's held requests complete normally.
    for mut s in held {
        let _ = s.write_all(b"Host: t\r\nConnection: close\r\n\r\n");
    }
    assert_eq!(get(addr, "/hello.txt").status, 200);
}

/// The binary replaced under a running server (a package upgrade renames
/// the new one over it): an idle worker drops its mappings of the code it
/// ran (see `sys::release_idle_pages`) and maps what it needs again from
/// the old file, which its mappings keep alive, so it serves on, the same
/// bytes after each release.
#[test]
fn a_deleted_binary_keeps_serving_across_idle_workers_letting_go() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("spyglass");
    std::fs::copy(spyglass(), &copy).unwrap();
    let site = site();
    let (p, addr) = activated(
        Launch::new(&copy)
            .arg(site.path().to_str().unwrap())
            .args(["--workers", "1"]),
    );
    for _ in 0..20 {
        assert_eq!(get(addr, "/hello.txt").status, 200);
    }
    let worker = p.workers()[0];
    let rss = || {
        std::fs::read_to_string(format!("/proc/{worker}/smaps_rollup"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Rss:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    std::fs::remove_file(&copy).unwrap();
    // The worker lets go once no connection is left for a quiet sweep
    // (code pages, dead stack, the heap's free pages and its pages of
    // zeros), and serves the same bytes after each time, three times over.
    for round in 0..3 {
        let busy = rss();
        assert!(
            wait_until(T, || rss() < busy),
            "round {round}: the idle worker kept its pages: {busy} KiB"
        );
        for _ in 0..20 {
            let res = get(addr, "/hello.txt");
            assert_eq!(res.status, 200);
            assert_eq!(res.text(), "hello\n", "round {round}");
        }
    }
    assert_eq!(p.workers(), vec![worker], "the same worker throughout");
}
