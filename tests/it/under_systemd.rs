//! spyglass under real systemd 252 (issue 5): the shipped, sandboxed units
//! installed in an [`SdBox`] with only `ExecStart=` pointed at the binary
//! under test and a few `Environment=` lines added, then driven with
//! `systemctl` and `journalctl` inside and HTTP from outside.
//!
//! Skipped (with a message) where the machine cannot boot systemd in
//! namespaces, unless `SPYGLASS_REQUIRE_SYSTEMD=1`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sdbox::{Options, SdBox, boot_or_skip, require_or_skip, stand_in_units};
use crate::support::*;
use crate::units::{Exposure, shipped};

/// `ListenStream=` of the shipped socket unit.
const ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
const T: Duration = Duration::from_secs(20);

struct Spy {
    sd: SdBox,
    _site: tempfile::TempDir,
}

/// Boot a box with the shipped units, the binary and a test site staged,
/// and `env` appended as `Environment=` lines.
fn boot(env: &[(&str, &str)]) -> Option<Spy> {
    boot_with(env, true)
}

/// As [`boot`]; without the sandbox section when `sandbox` is false (to
/// measure what the sandbox costs).
fn boot_with(env: &[(&str, &str)], sandbox: bool) -> Option<Spy> {
    boot_full(env, sandbox, SITE)
}

/// As [`boot`], serving `root` (in the box) instead of the staged site.
fn boot_full(env: &[(&str, &str)], sandbox: bool, root: &str) -> Option<Spy> {
    boot_site(env, sandbox, root, None)
}

/// As [`boot_full`], in a box with its own /etc/nsswitch.conf if `nsswitch`.
fn boot_site(
    env: &[(&str, &str)],
    sandbox: bool,
    root: &str,
    nsswitch: Option<String>,
) -> Option<Spy> {
    let mut service = shipped("spyglass.service");
    if !sandbox {
        service = without_sandbox(&service);
    }
    let units = site_units("spyglass", &service, ADDR.1, env, root);
    let sd = boot_units_with(&units, nsswitch)?;
    Some(Spy {
        _site: stage_site(&sd),
        sd,
    })
}

/// Where [`stage_site`] puts the test site in the box.
const SITE: &str = "/run/spyglass-test/site";

/// The shipped socket and `service` (a service unit's text) as units
/// `NAME.socket` and `NAME.service` listening on 127.0.0.1:`port`, with
/// `ExecStart=` pointed at the staged binary serving `root` (see
/// [`stage_site`]) and `env` appended as `Environment=` lines.
fn site_units(
    name: &str,
    service: &str,
    port: u16,
    env: &[(&str, &str)],
    root: &str,
) -> Vec<(String, String)> {
    let listen = format!("ListenStream=127.0.0.1:{}", ADDR.1);
    let socket = shipped("spyglass.socket");
    assert!(
        socket.contains(&listen),
        "the shipped ListenStream= changed"
    );
    let socket = socket.replace(&listen, &format!("ListenStream=127.0.0.1:{port}"));
    let exec = "ExecStart=/usr/bin/spyglass /srv/www";
    assert!(service.contains(exec), "the shipped ExecStart= changed");
    let mut extra: String = env
        .iter()
        .map(|(k, v)| format!("Environment={k}={v}\n"))
        .collect();
    extra.push_str("\n[Install]");
    let service = service
        .replace(
            exec,
            &format!("ExecStart=/run/spyglass-test/spyglass {root}"),
        )
        .replacen("\n[Install]", &format!("\n{extra}"), 1)
        .replace("spyglass.socket", &format!("{name}.socket"));
    vec![
        (format!("{name}.socket"), socket),
        (format!("{name}.service"), service),
    ]
}

/// Boot a box with `units` and the system user of the shipped
/// `spyglass.sysusers`.
fn boot_units(units: &[(String, String)]) -> Option<SdBox> {
    boot_units_with(units, None)
}

/// As [`boot_units`], with a box-private /etc/nsswitch.conf if `nsswitch`.
fn boot_units_with(units: &[(String, String)], nsswitch: Option<String>) -> Option<SdBox> {
    let units: Vec<(&str, String)> = units.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let opts = Options {
        sysusers: vec![shipped("spyglass.sysusers")],
        nsswitch,
        ..Options::default()
    };
    SdBox::boot_with(&units, opts)
        .map_err(|skip| require_or_skip(&skip.0))
        .ok()
}

/// Copy the binary under test and a test site into the box, where the
/// units of [`site_units`] find them.
fn stage_site(sd: &SdBox) -> tempfile::TempDir {
    let site = site();
    sd.stage(&spyglass(), "/run/spyglass-test/spyglass")
        .expect("stage binary");
    sd.stage(site.path(), SITE).expect("stage site");
    site
}

/// The byte range of the sandbox section of a service unit's text: from
/// its "# --- Sandbox" banner to `[Install]`.
fn sandbox_section(service: &str) -> std::ops::Range<usize> {
    let start = service.find("# --- Sandbox").expect("the sandbox banner");
    let end = service.find("[Install]").expect("[Install]");
    start..end
}

fn without_sandbox(service: &str) -> String {
    let mut service = service.to_owned();
    service.replace_range(sandbox_section(&service), "");
    service
}

impl Spy {
    fn show(&self, property: &str) -> String {
        self.sd.show("spyglass.service", property)
    }

    /// One request on a new connection; the status and body, or None if
    /// the connection ended without a complete response.
    fn request(&self, path: &str) -> Option<(u16, String)> {
        let mut s = self.sd.connect_tcp(SocketAddr::from(ADDR)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        let status = head.get(9..12)?.parse().ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))?
            .parse()
            .ok()?;
        (body.len() == len).then(|| (status, body.to_owned()))
    }

    fn main_pid(&self) -> u32 {
        self.show("MainPID").parse().unwrap_or(0)
    }

    /// Children of the main process, from /proc inside the box.
    fn workers(&self) -> Vec<u32> {
        let main = self.main_pid();
        let out = self.sd.exec(&[
            "sh",
            "-c",
            &format!("grep -l '^PPid:[[:space:]]*{main}$' /proc/[0-9]*/status"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.strip_prefix("/proc/")?
                    .strip_suffix("/status")?
                    .parse()
                    .ok()
            })
            .collect()
    }

    fn journal(&self, args: &[&str]) -> String {
        let mut all = vec!["-u", "spyglass.service", "--no-pager"];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&self.sd.journalctl(&all).stdout).into_owned()
    }

    /// The journal holds an access event for `path`.
    fn filed(&self, path: &str) -> bool {
        self.journal(&[&format!("F_PATH={path}"), "-o", "cat"])
            .contains(path)
    }

    /// Ask (requests `PREFIX/1`, `PREFIX/2`, ..., each answered 404) until
    /// one's access event is filed: after journald stalled or was gone,
    /// the first events may still be the ones dropped.
    fn events_filed_again(&self, prefix: &str) -> bool {
        let mut n = 0;
        wait_until(T, || {
            n += 1;
            let path = format!("{prefix}/{n}");
            assert_eq!(self.request(&path).map(|r| r.0), Some(404));
            self.filed(&path)
        })
    }

    fn wait_inactive(&self) -> bool {
        wait_until(T, || self.show("ActiveState") == "inactive")
    }
}

#[test]
fn activation_status_journal_and_idle_exit() {
    let Some(spy) = boot(&[("SPYGLASS_IDLE_TIMEOUT", "2s"), ("SPYGLASS_WORKERS", "2")]) else {
        return;
    };
    // 1. Before any connection: the socket listens, the service is not running.
    assert_eq!(spy.sd.show("spyglass.socket", "ActiveState"), "active");
    assert_eq!(spy.sd.show("spyglass.socket", "SubState"), "listening");
    assert_eq!(spy.show("ActiveState"), "inactive");

    // 2. The first request starts the service and is answered. A worker may
    // answer before the last one has booted, i.e. before READY=1: the unit
    // turns active soon after, not necessarily before the answer.
    assert_eq!(spy.request("/hello.txt"), Some((200, "hello\n".into())));
    assert!(
        wait_until(T, || spy.show("ActiveState") == "active"),
        "{}",
        spy.show("ActiveState")
    );
    assert_eq!(spy.show("SubState"), "running");
    let main = spy.main_pid();
    let comm = spy.sd.exec(&["cat", &format!("/proc/{main}/comm")]);
    assert_eq!(
        String::from_utf8_lossy(&comm.stdout).trim(),
        "spyglass",
        "MainPID is the master"
    );
    assert!(
        wait_until(T, || spy.workers().len() == 2),
        "workers {:?}",
        spy.workers()
    );
    let status = spy.show("StatusText");
    assert!(status.starts_with("2 workers, "), "StatusText={status}");

    // 3. The journal holds the access event, found by field.
    assert_eq!(
        spy.request("/missing"),
        Some((404, "404 Not Found\n".into()))
    );
    assert!(
        wait_until(T, || spy
            .journal(&["F_STATUS=404", "F_PATH=/missing", "-o", "cat"])
            .contains("/missing")),
        "{}",
        spy.journal(&["-o", "verbose", "-n", "20"])
    );
    let verbose = spy.journal(&["F_STATUS=200", "-o", "verbose"]);
    for field in [
        "F_METHOD=GET",
        "F_PATH=/hello.txt",
        "F_BYTES=6",
        "F_DURATION_US=",
        "F_WORKER=",
        "F_PEER=127.0.0.1:",
        // The socket's FileDescriptorName= (systemd/spyglass.socket).
        "F_LISTENER=http",
    ] {
        assert!(verbose.contains(field), "{field} in:\n{verbose}");
    }

    // 4. After the idle timeout: inactive, a clean result, the socket still
    // listening; the next request starts a new main process.
    assert!(spy.wait_inactive(), "still {}", spy.show("ActiveState"));
    assert_eq!(spy.show("Result"), "success");
    assert_eq!(spy.sd.show("spyglass.socket", "SubState"), "listening");
    assert!(
        spy.journal(&["-o", "cat"])
            .contains("stopping gracefully: idle for 2s")
    );
    assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(200));
    let second = spy.main_pid();
    assert!(
        second != 0 && second != main,
        "new MainPID: {main} -> {second}"
    );
}

#[test]
fn zero_loss_across_many_idle_exits() {
    let Some(spy) = boot(&[
        ("SPYGLASS_IDLE_TIMEOUT", "250ms"),
        ("SPYGLASS_WORKERS", "2"),
        ("SPYGLASS_KEEPALIVE_TIMEOUT", "1s"),
    ]) else {
        return;
    };
    let requests = 300;
    let mut rng = Rng(0x853c_49e6_748f_ea9b);
    let mut answered = 0;
    let mut failures = Vec::new();
    for i in 0..requests {
        // Random gaps around the idle timeout: many requests land just as an
        // instance decides to exit, or while it is exiting.
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 250));
        match spy.request(&format!("/probe/{i}")) {
            Some((404, _)) => answered += 1,
            other => failures.push((i, other)),
        }
    }
    assert!(failures.is_empty(), "unanswered: {failures:?}");
    assert_eq!(answered, requests);
    assert!(spy.wait_inactive());
    // journald writes what it has read in its own time: that the service
    // is inactive says nothing about its backlog. Wait for the events
    // themselves (filed under the unit: `-u` matches _SYSTEMD_UNIT, which
    // journald reads from the sender's /proc entry while it exists).
    let mut journal = String::new();
    let complete = wait_until(T, || {
        journal = spy.journal(&["F_STATUS=404", "-o", "cat"]);
        journal.matches("\"GET /probe/").count() >= requests
    });
    for i in 0..requests {
        let n = journal.matches(&format!("\"GET /probe/{i}\"")).count();
        assert_eq!(n, 1, "access events for request {i} (complete: {complete})");
    }
    let exits = spy
        .journal(&["-o", "cat"])
        .matches("stopping gracefully: idle")
        .count();
    eprintln!("{requests} requests over {exits} idle exits, all answered and logged once");
    assert!(exits >= 20, "only {exits} exits");
    assert_eq!(spy.show("Result"), "success");
}

/// A socket unit can pass several listeners for one address: ListenStream=
/// three times with ReusePort=yes (systemd binds each and passes three fds
/// of the same name). spyglass runs a worker per socket (three, though the
/// unit asks for one), answers every connection the kernel spreads over
/// them, exits when idle, and is started again by the next connection.
#[test]
fn a_reuseport_socket_unit_gets_a_worker_per_socket_across_idle_exits() {
    let env = [
        ("SPYGLASS_IDLE_TIMEOUT", "300ms"),
        ("SPYGLASS_WORKERS", "1"),
        ("SPYGLASS_ACCESS_LOG", "off"),
    ];
    let mut units = site_units("spyglass", &shipped("spyglass.service"), ADDR.1, &env, SITE);
    let listen = format!("ListenStream=127.0.0.1:{}", ADDR.1);
    units[0].1 = units[0].1.replace(
        &listen,
        &format!("{listen}\n{listen}\n{listen}\nReusePort=yes"),
    );
    let Some(sd) = boot_units(&units) else {
        return;
    };
    let spy = Spy {
        _site: stage_site(&sd),
        sd,
    };
    let rounds = 3;
    for round in 0..rounds {
        for i in 0..60 {
            let answer = spy
                .request(&format!("/r{round}/{i}"))
                .map(|(status, _)| status);
            assert_eq!(answer, Some(404), "round {round}, request {i}");
        }
        assert!(spy.wait_inactive(), "round {round}: no idle exit");
    }
    let journal = spy.journal(&["-o", "cat"]);
    assert_eq!(
        journal.matches("3 workers instead of 1").count(),
        rounds,
        "{journal}"
    );
    assert_eq!(
        journal.matches("stopping gracefully: idle").count(),
        rounds,
        "{journal}"
    );
    assert_eq!(spy.show("Result"), "success");
}

/// Scale to zero against the internet as it is: bursts of real requests
/// with a scanner mix between them (malformed heads, cut-off requests,
/// FIN or RST at random points, silent holds, unread responses). Every
/// real request is answered and logged exactly once, and the service
/// exits after every burst.
#[test]
fn zero_loss_and_an_idle_exit_after_every_hostile_burst() {
    let Some(spy) = boot(&[
        ("SPYGLASS_IDLE_TIMEOUT", "250ms"),
        ("SPYGLASS_WORKERS", "2"),
        ("SPYGLASS_HEADER_TIMEOUT", "1s"),
        ("SPYGLASS_BODY_TIMEOUT", "1s"),
        ("SPYGLASS_KEEPALIVE_TIMEOUT", "1s"),
        ("SPYGLASS_WRITE_TIMEOUT", "1s"),
    ]) else {
        return;
    };
    let seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    eprintln!("hostile bursts: seed {seed}");
    let mut rng = Rng(seed);
    let (bursts, mut real, mut hostile) = (20, 0, 0);
    let mut failures = Vec::new();
    for b in 0..bursts {
        let held: Vec<_> = std::thread::scope(|scope| {
            let mut threads = Vec::new();
            for _ in 0..8 {
                let shape = crate::idle::draw(&mut rng);
                let conn = spy.sd.connect_tcp(SocketAddr::from(ADDR)).unwrap();
                threads.push(scope.spawn(move || shape.play_on(conn)));
                hostile += 1;
                let i = real;
                real += 1;
                match spy.request(&format!("/probe/{i}")) {
                    Some((404, _)) => {}
                    other => failures.push((i, other)),
                }
            }
            threads
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect()
        });
        assert!(
            spy.wait_inactive(),
            "burst {b}: no idle exit; {}",
            spy.show("StatusText")
        );
        drop(held);
    }
    assert!(failures.is_empty(), "unanswered: {failures:?}");
    let mut journal = String::new();
    wait_until(T, || {
        journal = spy.journal(&["F_STATUS=404", "-o", "cat"]);
        journal.matches("\"GET /probe/").count() >= real
    });
    for i in 0..real {
        let n = journal.matches(&format!("\"GET /probe/{i}\"")).count();
        assert_eq!(n, 1, "access events for request {i}");
    }
    let exits = spy
        .journal(&["-o", "cat"])
        .matches("stopping gracefully: idle")
        .count();
    eprintln!(
        "{real} requests among {hostile} hostile connections, {bursts} bursts, {exits} idle exits"
    );
    assert!(exits >= bursts, "{exits} idle exits for {bursts} bursts");
    assert_eq!(spy.show("Result"), "success");
}

#[test]
fn stop_finishes_requests_in_flight_and_restart_loses_nothing() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "2")]) else {
        return;
    };
    assert_eq!(spy.request("/").map(|r| r.0), Some(200));
    // Two requests in flight (each has its 100 Continue, so the server holds
    // it), then `systemctl stop`.
    let mut inflight: Vec<_> = (0..2)
        .map(|_| {
            let mut s = spy.sd.connect_tcp(SocketAddr::from(ADDR)).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 25];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
            s
        })
        .collect();
    let stop = spy
        .sd
        .systemctl(&["stop", "--no-block", "spyglass.service"]);
    assert!(stop.status.success());
    assert!(
        wait_until(T, || spy.show("ActiveState") == "deactivating"),
        "{}",
        spy.show("ActiveState")
    );
    for s in &mut inflight {
        s.write_all(b"body").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("hello\n"),
            "{out}"
        );
        assert!(out.contains("Connection: close"), "{out}");
    }
    assert!(spy.wait_inactive());
    assert_eq!(spy.show("Result"), "success");

    // A steady request loop while the service restarts: nothing is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sd = &spy;
    std::thread::scope(|scope| {
        let client = scope.spawn(move || {
            let (mut ok, mut total) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                total += 1;
                if sd.request("/hello.txt") == Some((200, "hello\n".into())) {
                    ok += 1;
                }
            }
            (ok, total)
        });
        for _ in 0..3 {
            let pid = spy.main_pid();
            let out = spy.sd.systemctl(&["restart", "spyglass.service"]);
            assert!(out.status.success(), "{out:?}");
            assert!(wait_until(T, || spy.main_pid() != pid && spy.main_pid() != 0));
        }
        stop.store(true, Ordering::Relaxed);
        let (ok, total) = client.join().unwrap();
        assert_eq!(ok, total, "requests answered across restarts");
        assert!(total >= 3);
    });
}

/// The master killed with SIGKILL: its workers go at once (parent-death
/// signal, and systemd's final SIGKILL for the unit), systemd restarts the
/// service, and every request still in the socket's backlog is answered
/// by the next master. (Requests a worker had already accepted die with
/// it; to count only the backlog, the workers are stopped first, so that
/// the waiting requests cannot be accepted before the kill.)
#[test]
fn a_killed_master_loses_nothing_in_the_backlog() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "2")]) else {
        return;
    };
    assert_eq!(spy.request("/").map(|r| r.0), Some(200));
    for round in 0..3 {
        let main = spy.main_pid();
        let workers = spy.workers();
        for w in &workers {
            assert!(
                spy.sd
                    .exec(&["kill", "-STOP", &w.to_string()])
                    .status
                    .success()
            );
        }
        let answered = std::thread::scope(|scope| {
            let waiting: Vec<_> = (0..10)
                .map(|i| {
                    let sd = &spy;
                    scope.spawn(move || sd.request(&format!("/backlog/{round}/{i}")).map(|r| r.0))
                })
                .collect();
            // Every request has reached the backlog (the kernel holds the
            // connection; nobody accepts): then kill the master.
            assert!(
                wait_until(T, || {
                    let ss = spy.sd.exec(&["ss", "-Htln", "sport = :8080"]);
                    String::from_utf8_lossy(&ss.stdout)
                        .split_whitespace()
                        .nth(1)
                        .and_then(|q| q.parse::<u32>().ok())
                        == Some(10)
                }),
                "ten connections queued"
            );
            assert!(
                spy.sd
                    .exec(&["kill", "-KILL", &main.to_string()])
                    .status
                    .success()
            );
            let t = Instant::now();
            assert!(
                wait_until(T, || workers.iter().all(|w| !spy
                    .sd
                    .exec(&["test", "-d", &format!("/proc/{w}")])
                    .status
                    .success())),
                "workers outlived their master"
            );
            eprintln!("workers gone {:?} after the master's SIGKILL", t.elapsed());
            waiting
                .into_iter()
                .map(|w| w.join().unwrap())
                .filter(|r| *r == Some(404))
                .count()
        });
        assert_eq!(
            answered, 10,
            "round {round}: the backlog is answered after the restart"
        );
        assert_ne!(spy.main_pid(), main);
    }
    assert_eq!(
        spy.show("NRestarts"),
        "3",
        "restarted by Restart=on-failure"
    );
    assert!(
        wait_until(T, || spy
            .journal(&["F_STATUS=404", "-o", "cat"])
            .matches("\"GET /backlog/")
            .count()
            == 30),
        "each answered request logged once"
    );
}

#[test]
fn a_killed_worker_is_replaced_and_the_service_stays_active() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "2")]) else {
        return;
    };
    assert_eq!(spy.request("/").map(|r| r.0), Some(200));
    assert!(wait_until(T, || spy.workers().len() == 2));
    let before = spy.workers();
    let kill = spy.sd.exec(&["kill", "-KILL", &before[0].to_string()]);
    assert!(kill.status.success());
    assert!(
        wait_until(T, || {
            let now = spy.workers();
            now.len() == 2 && !now.contains(&before[0])
        }),
        "not replaced: {before:?} -> {:?}",
        spy.workers()
    );
    assert_eq!(spy.show("ActiveState"), "active");
    assert_eq!(
        spy.show("NRestarts"),
        "0",
        "the service itself did not restart"
    );
    for _ in 0..10 {
        assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(200));
    }
    assert!(
        spy.journal(&["-o", "cat"])
            .contains("worker died: killed by SIGKILL; 0 requests in flight lost; replacing it")
    );
}

/// Logging never stalls serving: with journald stopped (SIGSTOP) for 30 s,
/// requests keep being answered; what journald cannot take is dropped and
/// counted in `STATUS=`, and logging resumes when journald does.
#[test]
fn requests_keep_flowing_while_journald_is_stopped() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "2")]) else {
        return;
    };
    assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(200));
    let journald = spy.sd.show("systemd-journald.service", "MainPID");
    assert!(spy.sd.exec(&["kill", "-STOP", &journald]).status.success());
    let stopped = Instant::now();
    let (mut answered, mut slowest) = (0u64, Duration::ZERO);
    while stopped.elapsed() < Duration::from_secs(30) {
        // 100 requests pipelined on one connection: an access event each.
        let mut s = spy.sd.connect_tcp(SocketAddr::from(ADDR)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = Instant::now();
        let mut burst = "GET /hello.txt HTTP/1.1\r\nHost: b\r\n\r\n".repeat(99);
        burst.push_str("GET /hello.txt HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
        s.write_all(burst.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        slowest = slowest.max(t.elapsed());
        let ok = out.matches("HTTP/1.1 200 OK").count();
        assert_eq!(ok, 100, "after {answered} answers, with journald stopped");
        answered += ok as u64;
    }
    let status = spy.show("StatusText");
    assert!(
        status.contains("log events dropped (journald stalled)"),
        "{answered} requests: {status}"
    );
    assert!(spy.sd.exec(&["kill", "-CONT", &journald]).status.success());
    eprintln!(
        "journald stopped 30 s: {answered} requests answered, slowest burst of 100 {slowest:?}; {status}"
    );
    // Logging resumes: once the backlog is through, a new request's event
    // is filed again (while queues are full, new events are the ones
    // dropped, so ask until one arrives).
    assert!(
        spy.events_filed_again("/after-the-stall"),
        "access events resume"
    );
}

/// Workers keep a socket connected to journald's. When that socket is
/// replaced under them (its unit restarted, journald with it), the next
/// event finds the old one gone, connects anew and is filed; nothing is
/// restarted on spyglass's side.
#[test]
fn access_events_survive_journalds_socket_being_replaced() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "1"), ("SPYGLASS_IDLE_TIMEOUT", "300s")]) else {
        return;
    };
    assert_eq!(spy.request("/before").map(|r| r.0), Some(404));
    assert!(
        wait_until(T, || spy.filed("/before")),
        "event before the restart"
    );
    let pid = spy.main_pid();
    let journald = spy.sd.show("systemd-journald.service", "MainPID");
    let inode = |sd: &crate::sdbox::SdBox| {
        let out = sd.exec(&["stat", "-c", "%i", "/run/systemd/journal/socket"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let socket_before = inode(&spy.sd);
    let out = spy.sd.exec(&[
        "systemctl",
        "restart",
        "systemd-journald.socket",
        "systemd-journald.service",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(T, || spy.sd.show("systemd-journald.service", "ActiveState")
            == "active"),
        "journald back"
    );
    assert_ne!(inode(&spy.sd), socket_before, "a new socket");
    assert_ne!(spy.sd.show("systemd-journald.service", "MainPID"), journald);
    // Every request after the restart is filed: the first one's event is
    // the one that finds the old socket gone.
    for n in 0..5 {
        let path = format!("/after/{n}");
        assert_eq!(spy.request(&path).map(|r| r.0), Some(404));
        assert!(wait_until(T, || spy.filed(&path)), "{path} not filed");
    }
    assert_eq!(spy.main_pid(), pid, "the same server throughout");
    assert!(
        !spy.show("StatusText").contains("dropped"),
        "{}",
        spy.show("StatusText")
    );
}

/// With journald gone altogether (its socket unit and service stopped),
/// requests are still answered, the service still exits when idle and is
/// woken again; events it cannot hand over are dropped and counted, and
/// once journald is back they are filed again, from the next activation
/// and from the running one alike.
#[test]
fn scale_to_zero_goes_on_while_journald_is_gone() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "1"), ("SPYGLASS_IDLE_TIMEOUT", "2s")]) else {
        return;
    };
    assert_eq!(spy.request("/before").map(|r| r.0), Some(404));
    assert!(wait_until(T, || spy.filed("/before")), "event before");
    let journald = ["systemd-journald.socket", "systemd-journald.service"];
    let out = spy
        .sd
        .exec(&[&["systemctl", "stop"][..], &journald].concat());
    assert!(out.status.success(), "{out:?}");
    // The running server: answered, events dropped and counted.
    for n in 0..20 {
        let path = format!("/gone/{n}");
        assert_eq!(spy.request(&path).map(|r| r.0), Some(404), "{path}");
    }
    assert!(
        wait_until(T, || spy.show("StatusText").contains("dropped")),
        "{}",
        spy.show("StatusText")
    );
    // Idle exit, and a new activation with journald still gone.
    assert!(spy.wait_inactive(), "no idle exit without journald");
    assert_eq!(spy.show("Result"), "success");
    assert_eq!(spy.request("/woken").map(|r| r.0), Some(404));
    assert_eq!(spy.show("ActiveState"), "active");
    // journald back: the running server's events are filed again.
    let out = spy
        .sd
        .exec(&[&["systemctl", "start"][..], &journald].concat());
    assert!(out.status.success(), "{out:?}");
    assert!(
        spy.events_filed_again("/back"),
        "events of the running server not filed again"
    );
    // And the next activation's too.
    assert!(spy.wait_inactive(), "no idle exit after journald came back");
    assert_eq!(spy.show("Result"), "success");
    assert_eq!(spy.request("/next").map(|r| r.0), Some(404));
    assert!(
        wait_until(T, || spy.filed("/next")),
        "next activation's event"
    );
}

/// `spyglass ctl` against the shipped, sandboxed unit: the control socket
/// lives in the service's runtime directory; asking a stopped service says
/// so and does not wake it; the journal carries the operations' events.
#[test]
fn ctl_asks_the_sandboxed_service_and_never_wakes_it() {
    let Some(spy) = boot(&[("SPYGLASS_WORKERS", "2"), ("SPYGLASS_IDLE_TIMEOUT", "3s")]) else {
        return;
    };
    let ctl = |args: &[&str]| {
        spy.sd
            .exec(&[&["/run/spyglass-test/spyglass", "ctl"], args].concat())
    };
    let out = ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
    assert_eq!(
        spy.show("ActiveState"),
        "inactive",
        "asking did not wake it"
    );

    assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(200));
    let out = ctl(&["--json", "status"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["result"];
    assert_eq!(s["master"]["pid"], spy.main_pid());
    assert_eq!(s["listeners"][0]["name"], "http");
    assert_eq!(s["workers"].as_array().unwrap().len(), 2);
    let mode = spy
        .sd
        .exec(&["stat", "-c", "%a %U", "/run/spyglass/default/control.sock"]);
    let mode = String::from_utf8_lossy(&mode.stdout);
    assert!(mode.starts_with("600 "), "{mode}");
    let out = ctl(&["app", "stats"]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&["workers", "3"]);
    assert!(out.status.success(), "{out:?}");
    assert!(wait_until(T, || spy.workers().len() == 3));
    // Operations are journal events with fields.
    assert!(
        wait_until(T, || spy
            .journal(&["F_EVENT=worker-start", "-o", "cat"])
            .lines()
            .count()
            >= 3),
        "{}",
        spy.journal(&["-o", "verbose", "-n", "20"])
    );
    assert!(spy.wait_inactive());
    assert!(wait_until(T, || spy
        .journal(&["F_EVENT=idle-exit", "-o", "cat"])
        .contains("idle for 3s")));
    assert_eq!(ctl(&["status"]).status.code(), Some(3));
    assert_eq!(spy.show("ActiveState"), "inactive");
}

/// A broken configuration under the shipped units: the waiting client and
/// every later one get 503 while requests keep coming, the service starts
/// once for all of them (no restart loop), then fails with the status and
/// the reason where `systemctl status` shows them; the socket keeps
/// listening, so the next request starts it again (to find a fixed
/// configuration).
fn broken_configuration(env: &[(&str, &str)], root: &str, prepare: &[&str], code: &str, why: &str) {
    let mut env = env.to_vec();
    env.push(("SPYGLASS_IDLE_TIMEOUT", "2s"));
    let Some(spy) = boot_full(&env, true, root) else {
        return;
    };
    if !prepare.is_empty() {
        let out = spy.sd.exec(prepare);
        assert!(out.status.success(), "{prepare:?}: {out:?}");
    }
    // Requests for 5 s, well within the idle timeout of each other.
    let until = Instant::now() + Duration::from_secs(5);
    let mut answered = 0;
    while Instant::now() < until {
        assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(503));
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        wait_until(T, || spy.show("ActiveState") == "failed"),
        "still {}",
        spy.show("ActiveState")
    );
    assert_eq!(spy.show("Result"), "exit-code");
    assert_eq!(spy.show("ExecMainStatus"), code);
    assert_eq!(spy.show("NRestarts"), "0", "Restart= did not restart it");
    assert_eq!(spy.sd.show("spyglass.socket", "SubState"), "listening");
    let starts = spy
        .journal(&["-o", "cat"])
        .matches("answering 503 until idle")
        .count();
    assert_eq!(starts, 1, "{answered} requests, one start");
    let status = spy
        .sd
        .systemctl(&["status", "-n", "5", "spyglass.socket", "spyglass.service"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("status={code}")) && status.contains(why),
        "systemctl status explains it:\n{status}"
    );
    // The socket still starts it, and it still answers.
    assert_eq!(spy.request("/").map(|r| r.0), Some(503));
}

#[test]
fn a_missing_root_answers_503_and_fails_with_78_without_a_restart_loop() {
    broken_configuration(
        &[],
        "/run/spyglass-test/no-such-site",
        &[],
        "78",
        "is not a directory",
    );
}

#[test]
fn a_root_the_service_user_cannot_read_fails_with_78() {
    broken_configuration(
        &[],
        "/run/spyglass-test/site",
        &["chmod", "0700", "/run/spyglass-test/site"],
        "78",
        "Permission denied",
    );
}

#[test]
fn a_bad_flag_in_the_unit_answers_503_and_fails_with_2() {
    broken_configuration(
        &[("SPYGLASS_WORKERS", "zero")],
        "/run/spyglass-test/site",
        &[],
        "2",
        "--workers",
    );
}

/// The figure for a missing ROOT under the shipped units as they are (no
/// idle timeout set): starts of the service over one minute while a client
/// asks once a second. Run with
/// `cargo test --test it bad_root_starts -- --ignored --nocapture`.
#[test]
#[ignore = "a one-minute measurement; run explicitly"]
fn bad_root_starts_over_a_minute() {
    let Some(spy) = boot_full(&[], true, "/run/spyglass-test/no-such-site") else {
        return;
    };
    let t = Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    while t.elapsed() < Duration::from_secs(60) {
        let got = spy.request("/").map(|r| r.0);
        *statuses.entry(format!("{got:?}")).or_insert(0) += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let starts = spy
        .journal(&["-o", "cat"])
        .matches("answering 503 until idle")
        .count();
    eprintln!(
        "missing ROOT, one request a second for 60 s: {starts} start(s), NRestarts={}, answers {statuses:?}",
        spy.show("NRestarts")
    );
}

/// The static handler's fast path (openat2) and CGI's (pidfd_open for the
/// script's exit, close_range before exec) under the shipped unit, logging
/// at debug level: the journal shows no fallback and no refused call. (With
/// `DynamicUser=yes` it said "openat2 is unavailable": see
/// `the_shipped_sandbox_lets_spyglass_work_and_holds`.)
#[test]
fn no_fallback_and_no_refused_call_under_the_shipped_unit() {
    let Some(spy) = boot(&[
        ("SPYGLASS_WORKERS", "1"),
        ("SPYGLASS_LOG_LEVEL", "debug"),
        ("SPYGLASS_CGI", "/cgi-bin=/run/spyglass-test/site/cgi-bin"),
    ]) else {
        return;
    };
    let script = tempfile::tempdir().unwrap();
    let path = script.path().join("hi.sh");
    let text = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi from cgi\\n'\n";
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    spy.sd
        .stage(&path, "/run/spyglass-test/site/cgi-bin/hi.sh")
        .unwrap();
    assert_eq!(spy.request("/hello.txt"), Some((200, "hello\n".into())));
    // CGI output is streamed (chunked): the raw response.
    let mut c = spy.sd.connect_tcp(SocketAddr::from(ADDR)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"GET /cgi-bin/hi.sh HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.1 200 ") && raw.contains("hi from cgi"),
        "{raw}"
    );
    // The access events come after the opens, the exec and the exit watch,
    // from the same worker: once both are in, the journal is complete.
    assert!(
        wait_until(T, || {
            let events = spy.journal(&["F_STATUS=200", "-o", "cat"]);
            events.contains("/hello.txt") && events.contains("/cgi-bin/hi.sh")
        }),
        "{}",
        spy.journal(&["-o", "cat"])
    );
    let journal = spy.journal(&["-o", "cat"]);
    assert!(
        journal.contains("worker booted"),
        "not at debug level:\n{journal}"
    );
    for symptom in [
        "openat2 is unavailable",
        "cannot watch the exit",
        "Operation not permitted",
        "Function not implemented",
        "Bad system call",
    ] {
        assert!(!journal.contains(symptom), "{symptom:?} in:\n{journal}");
    }
}

/// The shipped sandbox section, verbatim, around a probe
/// (`tests/it/sandbox_probe.py`): the calls spyglass needs get through, and
/// what the sandbox stands for is refused, each by the mechanism the unit's
/// comments name (the errno tells which). A control with `DynamicUser=yes`
/// in place of `User=spyglass` shows why the unit has a static user.
#[test]
fn the_shipped_sandbox_lets_spyglass_work_and_holds() {
    if !Path::new("/usr/bin/python3").is_file() {
        return require_or_skip("the sandbox probe needs /usr/bin/python3");
    }
    let service = shipped("spyglass.service");
    let sandbox = &service[sandbox_section(&service)];
    assert!(sandbox.contains("\nUser=spyglass\n"), "{sandbox}");
    let probe = |sandbox: &str| {
        format!(
            "[Unit]\nDescription=sandbox probe\n\n[Service]\nType=oneshot\n\
             ExecStart=/usr/bin/python3 /run/spyglass-test/probe.py /dev/probe-unlisted\n\
             {sandbox}"
        )
    };
    let control = sandbox.replace("\nUser=spyglass\n", "\nDynamicUser=yes\n");
    let units = [
        ("probe.service".to_owned(), probe(sandbox)),
        ("control.service".to_owned(), probe(&control)),
    ];
    let host_accounts = || {
        std::fs::read("/etc/passwd")
            .ok()
            .zip(std::fs::read("/etc/group").ok())
    };
    let before = host_accounts();
    let Some(sd) = boot_units(&units) else {
        return;
    };
    // A device node that everyone may open by its mode but that no driver
    // answers (ENXIO), in the box's own /dev: only the cgroup device filter
    // (DevicePolicy=closed) refuses it (EPERM).
    let mknod = sd.exec(&[
        "mknod",
        "-m",
        "0444",
        "/dev/probe-unlisted",
        "c",
        "1",
        "255",
    ]);
    assert!(mknod.status.success(), "{mknod:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probe.py");
    std::fs::write(&file, include_str!("sandbox_probe.py")).unwrap();
    sd.stage(&file, "/run/spyglass-test/probe.py").unwrap();
    let run = |unit: &str| {
        let out = sd.systemctl(&["start", unit]);
        let log = sd.journalctl(&["-u", unit, "-o", "cat"]);
        let log = String::from_utf8_lossy(&log.stdout).into_owned();
        assert!(out.status.success(), "{unit}: {out:?}\n{log}");
        let results: Vec<(String, String)> = log
            .lines()
            .filter_map(|l| l.strip_prefix("PROBE ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        (results, log)
    };
    let (results, log) = run("probe.service");
    let expected = [
        // spyglass's own fast paths.
        ("openat2", "ok"),
        ("pidfd_open", "ok"),
        ("close_range", "ok"),
        ("uid", "unprivileged"),
        // DevicePolicy=closed (for PrivateDevices=, and the /dev/kmsg part
        // of ProtectKernelLogs=).
        ("dev_unlisted", "EPERM"),
        // The system call filter (for ProtectKernelLogs=).
        ("syslog", "EPERM"),
        // ProcSubset=pid (for ProtectKernelTunables=).
        ("proc_sys_write", "ENOENT"),
        // ProtectProc=invisible.
        ("proc_pid1", "hidden"),
        // Ownership and no capabilities (for ProtectControlGroups=).
        ("cgroup_write", "EACCES"),
        // ProtectSystem=strict.
        ("root_fs_create", "EROFS"),
        // ProtectHome=tmpfs.
        ("home", "empty"),
        // NoNewPrivileges=: nosuid everywhere, /dev/shm included (for
        // RestrictSUIDSGID=).
        ("tmp_nosuid", "nosuid"),
        ("dev_shm_nosuid", "nosuid"),
        // The filter and no capabilities (for ProtectHostname=,
        // ProtectKernelModules=).
        ("sethostname", "EPERM"),
        ("finit_module", "EPERM"),
        // The filter (for PrivateIPC=).
        ("shmget", "EPERM"),
        // RestrictAddressFamilies=AF_UNIX.
        ("inet_socket", "EAFNOSUPPORT"),
    ];
    for (check, want) in expected {
        let got = results.iter().find(|(k, _)| k == check).map(|(_, v)| v);
        assert_eq!(got.map(String::as_str), Some(want), "{check}:\n{log}");
    }
    assert_eq!(results.len(), expected.len(), "unchecked results:\n{log}");
    // The user exists in the box only.
    assert!(
        before == host_accounts(),
        "the host's /etc/passwd or /etc/group changed"
    );
    let (control, log) = run("control.service");
    let openat2 = control.iter().find(|(k, _)| k == "openat2");
    assert_eq!(
        openat2.map(|(_, v)| v.as_str()),
        Some("ENOSYS"),
        "DynamicUser=yes (RestrictSUIDSGID=yes) refuses openat2:\n{log}"
    );
}

/// Cold start under real systemd, spyglass and a trivial stand-in, median of
/// 20 each: a measurement for the record, not a test of speed. Run with
/// `cargo test --release --test it coldstart -- --ignored --nocapture`
/// (on a machine others load, as root under `chrt -f 1`: the box's
/// processes inherit the real-time class and no longer queue behind
/// others' compilers; see [`Sample::cpu`] for a figure load barely moves).
///
/// spyglass is measured three times: with the kernel as it booted, with
/// `favordynmods` on the cgroup hierarchy, and with
/// `/sys/kernel/rcu_expedited` set (each setting restored afterwards; see
/// [`KernelSetting`]). systemd 252 forks a service's process and then
/// writes it into the unit's cgroup, and that write waits for one RCU grace
/// period (`cgroup_procs_write` → `percpu_down_write` → `rcu_sync_enter` →
/// `synchronize_rcu`, seen with `perf record -e sched:sched_switch -g`):
/// 10 to 16 ms on this VM, whose kernel has lazy RCU, on every start of any
/// unit, sandboxed or not. `favordynmods` keeps that lock's readers on the
/// slow path for good, so the write no longer waits; an expedited grace
/// period is only shorter (mostly 0.3 to 2 ms here, seen up to 14). No
/// unit setting can remove this wait; the host can. Back-to-back starts
/// share one grace period (after a move the lock's readers stay on their
/// slow path for a grace period, and a move within it does not wait
/// again), so they understate it: with
/// `SPYGLASS_COLDSTART_GAP_MS=1000` (a pause before each start, as between
/// an idle exit and the next visit) the unsandboxed unit took 14.1 ms as
/// booted, against 4.6 ms back to back.
///
/// The favordynmods row is taken only with `SPYGLASS_BENCH_FAVORDYNMODS=1`:
/// Linux 6.18 keeps the lock mode it selects until the next boot, even
/// after the option is cleared ("per threadgroup rwsem mechanism can't be
/// disabled" in the kernel log), so after one such run the machine's "as
/// booted" row no longer shows the wait.
///
/// Under each setting the sandboxed unit is also measured on a box whose
/// /etc/nsswitch.conf has `initgroups: files`, where the host's lists
/// nss-systemd for `group` (see [`initgroups_from_files`]).
#[test]
#[ignore = "a benchmark; run explicitly"]
fn coldstart_under_systemd() {
    let mut rows = Vec::new();
    for setting in [
        KernelSetting::AsBooted,
        KernelSetting::FavorDynmods,
        KernelSetting::ExpeditedRcu,
    ] {
        if matches!(setting, KernelSetting::FavorDynmods)
            && std::env::var_os("SPYGLASS_BENCH_FAVORDYNMODS").is_none()
        {
            eprintln!(
                "(no favordynmods row: set SPYGLASS_BENCH_FAVORDYNMODS=1, see the doc comment)"
            );
            continue;
        }
        let Some(guard) = setting.set() else {
            eprintln!("({} cannot be set here: no row for it)", setting.label());
            continue;
        };
        for sandbox in [true, false] {
            let Some(spy) = boot_with(&BENCH_ENV, sandbox) else {
                return;
            };
            rows.push((
                setting.label().to_owned(),
                sandbox,
                twenty_cold_starts(&spy),
            ));
        }
        // The host's name service, for the sandboxed unit: see
        // [`initgroups_from_files`].
        if let Some(nsswitch) = initgroups_from_files() {
            let Some(spy) = boot_site(&BENCH_ENV, true, SITE, Some(nsswitch)) else {
                return;
            };
            let label = format!("{}, initgroups: files", setting.label());
            rows.push((label, true, twenty_cold_starts(&spy)));
        }
        drop(guard);
    }

    let Some(sd) = boot_or_skip(&stand_in_units(18380)) else {
        return;
    };
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut s = sd
            .connect_tcp(SocketAddr::from(([127, 0, 0, 1], 18380)))
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").unwrap();
        let mut first = [0u8; 1];
        s.read_exact(&mut first).unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    let standin = samples[samples.len() / 2];
    eprintln!("{}", load());
    eprintln!(
        "cold start under systemd, connect to first byte, median of 20 \
         (and the service's CPU time, median):"
    );
    for (setting, sandbox, m) in rows {
        let unit = if sandbox {
            "shipped sandboxed unit (2 workers)"
        } else {
            "the same unit without its sandbox "
        };
        eprintln!(
            "  spyglass, {unit}, {setting:34}: {:5.1} ms (CPU {:.1} ms)",
            ms(m.wall),
            ms(m.cpu)
        );
    }
    eprintln!(
        "  stand-in (sh per connection, Accept=yes):{:>52.1} ms",
        ms(standin)
    );
}

/// Medians of 20 cold starts of the spyglass site in `spy`'s box.
fn twenty_cold_starts(spy: &Spy) -> Sample {
    let mut samples: Vec<Sample> = (0..20)
        .map(|_| cold_start(&spy.sd, "spyglass", ADDR.1).expect("a cold start answered"))
        .collect();
    Sample::medians(&mut samples)
}

/// The host's /etc/nsswitch.conf with `initgroups: files` added, when its
/// `group` line names nss-systemd (`systemd`) and it has no `initgroups`
/// line of its own; else None. systemd 252 calls initgroups(3) for `User=`
/// in the forked child of every start, and initgroups asks every service
/// of the `group` database: with nss-systemd there, the child loads
/// libnss_systemd.so.2, asks PID 1 over varlink (io.systemd.DynamicUser)
/// and looks for userdb drop-in directories (seen with `strace -f` on the
/// box's PID 1), where `initgroups: files` reads /etc/group alone.
fn initgroups_from_files() -> Option<String> {
    let host = std::fs::read_to_string("/etc/nsswitch.conf").ok()?;
    let database = |name: &str| {
        host.lines()
            .map(str::trim)
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
    };
    let group = database("group")?;
    if database("initgroups").is_some() || !group.split_whitespace().any(|w| w == "systemd") {
        return None;
    }
    Some(format!("{host}\ninitgroups: files\n"))
}

/// What a request costs the shipped, sandboxed service with its access log
/// going to journald, the production setup, and the same without the log
/// and without the sandbox: wrk inside the box (keep-alive, 50
/// connections, 5 s, three runs each) against one worker, and the CPU time
/// of the service's cgroup (master and worker; journald's own work is in
/// its unit, shown apart) divided by the requests wrk counted. A measurement,
/// not a test of speed: run with
/// `cargo test --release --test it logged_request_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run explicitly"]
fn logged_request_cost_under_systemd() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("(needs wrk)");
        return;
    }
    let cgroup_usec = |sd: &crate::sdbox::SdBox, unit: &str| -> Option<u64> {
        let stat = sd
            .root()
            .join(format!("sys/fs/cgroup/system.slice/{unit}/cpu.stat"));
        std::fs::read_to_string(stat)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
    };
    for (sandbox, log) in [(true, "on"), (true, "off"), (false, "on"), (false, "off")] {
        let Some(spy) = boot_with(
            &[
                ("SPYGLASS_WORKERS", "1"),
                ("SPYGLASS_IDLE_TIMEOUT", "300s"),
                ("SPYGLASS_ACCESS_LOG", log),
                ("SPYGLASS_MAX_REQUESTS", "0"),
            ],
            sandbox,
        ) else {
            return;
        };
        assert_eq!(spy.request("/hello.txt").map(|r| r.0), Some(200));
        let url = format!("http://127.0.0.1:{}/hello.txt", ADDR.1);
        let mut runs = Vec::new();
        for _ in 0..3 {
            let before = cgroup_usec(&spy.sd, "spyglass.service").expect("cpu.stat");
            let journald_before = cgroup_usec(&spy.sd, "systemd-journald.service").unwrap_or(0);
            let out = spy.sd.exec(&["wrk", "-t1", "-c50", "-d5s", &url]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let requests: u64 = text
                .lines()
                .find_map(|l| l.trim().split_once(" requests in"))
                .and_then(|(n, _)| n.trim().parse().ok())
                .expect("wrk's request count");
            let used = cgroup_usec(&spy.sd, "spyglass.service").expect("cpu.stat") - before;
            let journald =
                cgroup_usec(&spy.sd, "systemd-journald.service").unwrap_or(0) - journald_before;
            runs.push((
                requests,
                used as f64 / requests as f64,
                journald as f64 / requests as f64,
            ));
        }
        let unit = if sandbox {
            "shipped unit"
        } else {
            "without its sandbox"
        };
        eprintln!("{unit}, access log {log}, one worker, wrk -c50 keep-alive in the box, 5 s:");
        for (requests, us, journald) in runs {
            eprintln!(
                "  {requests:>8} requests: spyglass {us:.2} us/request, journald {journald:.2} us/request"
            );
        }
    }
}

/// The kernel settings the cold start is measured under. Both change the
/// whole machine while they are set, and are put back as they were when
/// their guard drops (also when a panic unwinds).
#[derive(Clone, Copy)]
enum KernelSetting {
    AsBooted,
    /// The cgroup2 hierarchy's `favordynmods` option: the host setting the
    /// README recommends for a scale-to-zero host. Clearing it afterwards
    /// clears the option; Linux 6.18 keeps its lock mode until reboot.
    FavorDynmods,
    /// `/sys/kernel/rcu_expedited`: every grace period expedited.
    ExpeditedRcu,
}

impl KernelSetting {
    fn label(self) -> &'static str {
        match self {
            KernelSetting::AsBooted => "as booted",
            KernelSetting::FavorDynmods => "favordynmods",
            KernelSetting::ExpeditedRcu => "RCU expedited",
        }
    }

    fn set(self) -> Option<SettingGuard> {
        match self {
            KernelSetting::AsBooted => Some(SettingGuard::None),
            KernelSetting::FavorDynmods => {
                let before = Cgroup2Options::current()?;
                if before.0.iter().any(|o| o == "favordynmods") {
                    return Some(SettingGuard::None); // on already
                }
                let mut with = before.clone();
                with.0.push("favordynmods".into());
                with.apply().then_some(SettingGuard::Cgroup2(before))
            }
            KernelSetting::ExpeditedRcu => {
                let before = std::fs::read_to_string(RCU_EXPEDITED).ok()?;
                std::fs::write(RCU_EXPEDITED, "1").ok()?;
                Some(SettingGuard::Rcu(before.trim().to_owned()))
            }
        }
    }
}

const RCU_EXPEDITED: &str = "/sys/kernel/rcu_expedited";

/// What to put back.
enum SettingGuard {
    None,
    Cgroup2(Cgroup2Options),
    Rcu(String),
}

impl Drop for SettingGuard {
    fn drop(&mut self) {
        match self {
            SettingGuard::None => {}
            SettingGuard::Cgroup2(before) => {
                if !before.apply() {
                    eprintln!("could not restore the cgroup2 options {:?}", before.0);
                }
            }
            SettingGuard::Rcu(before) => {
                if let Err(e) = std::fs::write(RCU_EXPEDITED, before.as_bytes()) {
                    eprintln!("could not restore {RCU_EXPEDITED}: {e}");
                }
            }
        }
    }
}

/// The options of the kernel's one cgroup2 hierarchy (`nsdelegate`,
/// `favordynmods`, ...). They belong to the hierarchy, not to a mount:
/// every new cgroup2 mount made in the initial cgroup namespace sets them
/// all to what that mount names (a mount in any other cgroup namespace,
/// such as the test box's, leaves them alone).
#[derive(Clone)]
struct Cgroup2Options(Vec<String>);

impl Cgroup2Options {
    /// As a cgroup2 mount of this mount namespace shows them (a systemd
    /// host's /sys/fs/cgroup), or none where nothing mounts it here (this
    /// VM: a v1 host; the kernel's defaults then). Only the hierarchy's own
    /// options (those the kernel lists in /sys/kernel/cgroup/features)
    /// are kept, not `rw` or a security module's. (Outside the initial
    /// cgroup namespace, where a mount cannot set them, [`Self::apply`]
    /// finds them unchanged and says so.)
    fn current() -> Option<Cgroup2Options> {
        let features = std::fs::read_to_string("/sys/kernel/cgroup/features").ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let options = mountinfo
            .lines()
            .filter_map(|l| l.split_once(" - "))
            .find_map(|(_, fs)| {
                let mut f = fs.split(' ');
                (f.next() == Some("cgroup2")).then(|| f.nth(1).unwrap_or("").to_owned())
            })
            .unwrap_or_default();
        let known: Vec<&str> = features.lines().collect();
        Some(Cgroup2Options(
            options
                .split(',')
                .filter(|o| known.contains(o))
                .map(str::to_owned)
                .collect(),
        ))
    }

    /// Set the hierarchy's options to these, by mounting it on a
    /// directory of our own and unmounting it at once; true if the mount
    /// shows them all.
    fn apply(&self) -> bool {
        let dir = std::env::temp_dir().join(format!("spyglass-cgroup2-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_err() {
            return false;
        }
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "cgroup2"]);
        if !self.0.is_empty() {
            cmd.args(["-o", &self.0.join(",")]);
        }
        let mounted = cmd
            .args(["none"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        let mut shown = false;
        if mounted {
            let path = dir.to_string_lossy().into_owned();
            shown = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
                m.lines().any(|l| {
                    l.split(' ').nth(4) == Some(path.as_str())
                        && l.split_once(" - ").is_some_and(|(_, fs)| {
                            let opts: Vec<&str> =
                                fs.split(' ').nth(2).unwrap_or("").split(',').collect();
                            self.0.iter().all(|o| opts.contains(&o.as_str()))
                        })
                })
            });
            let _ = Command::new("umount").arg(&dir).status();
        }
        let _ = std::fs::remove_dir(&dir);
        shown
    }
}

/// What the cold-start benchmarks set: two workers, no access log.
const BENCH_ENV: [(&str, &str); 2] = [("SPYGLASS_WORKERS", "2"), ("SPYGLASS_ACCESS_LOG", "off")];

/// One cold start.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// Connect to the first byte of the response.
    wall: Duration,
    /// CPU time of the service's cgroup by then: systemd's set-up of the
    /// sandbox in the forked child, spyglass's start and the request. Less
    /// sensitive than `wall` to load from elsewhere on the machine (other
    /// engineers share its two cores).
    cpu: Duration,
}

impl Sample {
    /// The median of each field (each sorted on its own).
    fn medians(samples: &mut [Sample]) -> Sample {
        let mid = samples.len() / 2;
        samples.sort_by_key(|s| s.wall);
        let wall = samples[mid].wall;
        samples.sort_by_key(|s| s.cpu);
        Sample {
            wall,
            cpu: samples[mid].cpu,
        }
    }
}

/// One cold start of unit `NAME.service` (inactive, or stopped first):
/// connect to 127.0.0.1:`port` to the first byte of the response; then the
/// response is read to its end, the unit's CPU time read and the service
/// stopped. None if it did not answer.
fn cold_start(sd: &SdBox, name: &str, port: u16) -> Option<Sample> {
    let unit = format!("{name}.service");
    if !wait_until(T, || sd.show(&unit, "ActiveState") == "inactive") {
        sd.systemctl(&["stop", &unit]);
    }
    // SPYGLASS_COLDSTART_GAP_MS=N waits N ms first, as a scale-to-zero
    // site does between its idle exit and the next visit: by then the
    // kernel's deferred work for the stopped service (its namespaces torn
    // down) is over, and so is the grace period that the last cgroup move
    // opened, which back-to-back starts share (see
    // [`coldstart_under_systemd`]). A modelled pause in a benchmark, not a
    // wait for an event.
    if let Some(gap) = std::env::var("SPYGLASS_COLDSTART_GAP_MS")
        .ok()
        .and_then(|g| g.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(gap));
    }
    let t = Instant::now();
    let mut s = sd.connect_tcp(SocketAddr::from((ADDR.0, port))).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut first = [0u8; 1];
    let answered = s.read_exact(&mut first).is_ok();
    let wall = t.elapsed();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let stat = sd
        .root()
        .join(format!("sys/fs/cgroup/system.slice/{unit}/cpu.stat"));
    let usec = std::fs::read_to_string(stat).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))?
            .trim()
            .parse()
            .ok()
    });
    sd.systemctl(&["stop", &unit]);
    Some(Sample {
        wall,
        cpu: Duration::from_micros(usec?),
    })
    .filter(|_| answered)
}

/// One way to change the shipped service's sandbox, for the cost table.
struct Variant {
    /// What changed, as in "-PrivateNetwork=" (dropped) or "A -> B".
    label: String,
    service: String,
}

/// Replacements worth measuring: (line in the shipped sandbox, the line to
/// measure in its place), each tried only where the shipped unit has that
/// line: what a choice made in the unit would have cost the other way.
const ALTERNATIVES: &[(&str, &str)] = &[
    ("User=spyglass", "DynamicUser=yes"),
    ("ProtectHome=tmpfs", "ProtectHome=yes"),
    ("PrivateNetwork=yes", "IPAddressDeny=any"),
    ("IPAddressDeny=any", "PrivateNetwork=yes"),
    ("DevicePolicy=closed", "PrivateDevices=yes"),
];

/// Directives worth measuring as additions, each tried only where the
/// shipped sandbox does not set it: the ones the unit replaces with cheaper
/// mechanisms (see its comments).
const ADDITIONS: &[&str] = &[
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "PrivateIPC=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectHostname=yes",
    "RestrictSUIDSGID=yes",
];

/// The shipped service, the same without its sandbox, one variant per
/// sandbox directive without that directive (every line of it), and the
/// [`ALTERNATIVES`] and [`ADDITIONS`] that apply.
fn sandbox_variants(shipped: &str) -> Vec<Variant> {
    let section = sandbox_section(shipped);
    let mut keys: Vec<&str> = Vec::new();
    for line in shipped[section.clone()].lines().map(str::trim) {
        if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let edit = |f: &dyn Fn(&str) -> Option<String>| {
        let mut out = shipped[..section.start].to_owned();
        for line in shipped[section.clone()].lines() {
            if let Some(l) = f(line) {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out.push_str(&shipped[section.end..]);
        out
    };
    let mut variants = vec![
        Variant {
            label: "shipped".into(),
            service: shipped.to_owned(),
        },
        Variant {
            label: "no sandbox".into(),
            service: without_sandbox(shipped),
        },
    ];
    for &key in &keys {
        let service = edit(&|l| (!l.starts_with(&format!("{key}="))).then(|| l.to_owned()));
        variants.push(Variant {
            label: format!("-{key}="),
            service,
        });
    }
    for (from, to) in ALTERNATIVES {
        if shipped[section.clone()].lines().any(|l| l == *from) {
            let service = edit(&|l| Some(if l == *from { to } else { l }.to_owned()));
            variants.push(Variant {
                label: format!("{from} -> {to}"),
                service,
            });
        }
    }
    for line in ADDITIONS {
        let key = line.split_once('=').map_or(*line, |(k, _)| k);
        if !keys.contains(&key) {
            let mut service = shipped.to_owned();
            service.insert_str(section.end, &format!("{line}\n"));
            variants.push(Variant {
                label: format!("+{line}"),
                service,
            });
        }
    }
    variants
}

/// The sandbox's cost, directive by directive: one box runs the shipped
/// service and every variant of [`sandbox_variants`], each as its own
/// socket-activated site, and takes their cold starts ([`cold_start`]) in
/// 20 rounds, each in a new order, so that load from elsewhere on the
/// machine falls on all of them alike. Prints, per variant, the median (and
/// the fastest) cold start and the median CPU time, what each saves against
/// the shipped unit (the directive's cost), and what
/// `systemd-analyze security --offline=true` says of it (the directive's
/// exposure contribution: overall level and the checks that newly fail).
/// Run with
/// `cargo test --release --test it sandbox_cost_table -- --ignored --nocapture`
/// (as root under `chrt -f 1` on a loaded machine, as for
/// [`coldstart_under_systemd`]). `SPYGLASS_VARIANTS` and `SPYGLASS_ROUNDS`
/// narrow it down (see the body).
#[test]
#[ignore = "a benchmark; run explicitly"]
fn sandbox_cost_table() {
    let shipped = shipped("spyglass.service");
    let mut variants = sandbox_variants(&shipped);
    // SPYGLASS_VARIANTS=label,label,... measures only those (the shipped
    // unit always, first), SPYGLASS_ROUNDS=N takes N rounds: to settle a
    // few close figures with more rounds than the whole table affords.
    if let Ok(only) = std::env::var("SPYGLASS_VARIANTS") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        variants.retain(|v| v.label == "shipped" || only.contains(&v.label.as_str()));
    }
    let rounds = std::env::var("SPYGLASS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    run_table(&variants, rounds);
}

/// Boot one box with every variant as its own site (units `sbNN`, port
/// 8100 + NN), take `rounds` interleaved rounds of cold starts, rate each
/// variant offline, and print the table against the first variant.
fn run_table(variants: &[Variant], rounds: usize) {
    let name = |i: usize| format!("sb{i:02}");
    let port = |i: usize| 8100 + i as u16;
    let units: Vec<(String, String)> = variants
        .iter()
        .enumerate()
        .flat_map(|(i, v)| site_units(&name(i), &v.service, port(i), &BENCH_ENV, SITE))
        .collect();
    let Some(sd) = boot_units(&units) else {
        return;
    };
    let _site = stage_site(&sd);
    let before = load();
    let mut samples = vec![Vec::new(); variants.len()];
    let mut order: Vec<usize> = (0..variants.len()).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..rounds {
        // A new order each round (Fisher-Yates, fixed seed): the kernel
        // finishes tearing a stopped service's namespaces down after it is
        // gone, and that work must not always fall on the same next variant.
        for k in (1..order.len()).rev() {
            order.swap(k, rng.below(k + 1));
        }
        for &i in &order {
            match cold_start(&sd, &name(i), port(i)) {
                Some(t) => samples[i].push(t),
                None => {
                    let unit = format!("{}.service", name(i));
                    let log = sd.journalctl(&["-u", &unit, "-n", "15"]);
                    panic!(
                        "{} did not answer:\n{}",
                        variants[i].label,
                        String::from_utf8_lossy(&log.stdout)
                    );
                }
            }
        }
    }
    let after = load();
    let medians: Vec<Sample> = samples.iter_mut().map(|s| Sample::medians(s)).collect();
    let fastest: Vec<Duration> = samples
        .iter()
        .map(|s| s.iter().map(|x| x.wall).min().unwrap_or_default())
        .collect();
    let exposures: Vec<Exposure> = variants.iter().map(|v| Exposure::of(&v.service)).collect();
    eprintln!("before: {before}\nafter:  {after}");
    eprintln!(
        "cold start under systemd (connect to first byte, median of {rounds}, interleaved) \
         and the service's CPU time (median); cost = what the variant saves against \
         '{}'; exposure from systemd-analyze security --offline=true:",
        variants[0].label
    );
    eprintln!(
        "{:<40} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>6}  checks that newly fail (their figure)",
        "variant", "wall", "cost", "min", "cpu", "cost", "expo", "delta"
    );
    for (i, v) in variants.iter().enumerate() {
        let (m, e) = (medians[i], &exposures[i]);
        let checks: Vec<String> = e
            .worse_than(&exposures[0])
            .iter()
            .map(|(n, x)| format!("{n} {x:.1}"))
            .collect();
        eprintln!(
            "{:<40} {:>7.1} {:>+7.1} {:>7.1} {:>7.1} {:>+7.1} {:>5.1} {:>+6.1}  {}",
            v.label,
            ms(m.wall),
            ms(medians[0].wall) - ms(m.wall),
            ms(fastest[i]),
            ms(m.cpu),
            ms(medians[0].cpu) - ms(m.cpu),
            e.overall,
            e.overall - exposures[0].overall,
            checks.join(", ")
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The load average, for the record next to a benchmark's figures.
fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("load average {}", avg.trim())
}
