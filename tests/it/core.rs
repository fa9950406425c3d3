//! The core (issue 2): activation, readiness, idle exit, signals, worker
//! supervision, flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

const T: Duration = Duration::from_secs(10);

#[test]
fn fake_activation_reports_ready_only_with_every_worker() {
    let site = site();
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "3"])
        .fd(l)
        .names("web")
        .notify()
        .start();
    let ready = p.ready();
    // Counted at the moment READY=1 arrived: all three workers exist.
    assert_eq!(p.workers().len(), 3, "workers at READY=1");
    assert!(ready.contains("STATUS=3 workers"), "{ready}");
    let r = get(addr, "/hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        p.log.wait_for("listener=web", T),
        "fd name in the log:\n{}",
        p.log.text()
    );
}

#[test]
fn systemd_socket_activate_starts_it_on_the_first_connection() {
    let site = site();
    // systemd-socket-activate cannot bind port 0: a port that was free a
    // moment ago, and another one if some other process took it meanwhile.
    let mut activator = None;
    for _ in 0..5 {
        let notify = Notify::new();
        let port = free_port();
        let mut p = Launch::new("systemd-socket-activate")
            .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=web"])
            .args(["-E", &format!("NOTIFY_SOCKET={}", notify.path().display())])
            .arg(spyglass().to_str().unwrap())
            .arg(site.path().to_str().unwrap())
            .args(["--workers", "2"])
            .start();
        p.notify = Some(notify);
        let outcome = |t: &str| t.contains("Listening on") || t.contains("in use");
        assert!(
            wait_until(T, || outcome(&p.log.text())),
            "activator did not listen:\n{}",
            p.log.text()
        );
        if p.log.text().contains("Listening on") {
            activator = Some((p, port));
            break;
        }
    }
    let (mut p, port) = activator.expect("a free port within 5 tries");
    // The first connection makes systemd-socket-activate exec spyglass; it
    // waits in the backlog and is answered.
    let r = get(SocketAddr::from(([127, 0, 0, 1], port)), "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("spyglass test"));
    p.ready();
    assert!(p.log.wait_for("listener=web", T), "{}", p.log.text());
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn several_activated_sockets_tcp_and_unix() {
    let site = site();
    let tcp = tcp_listener();
    let addr = tcp.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let unix = UnixListener::bind(&path).unwrap();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1"])
        .fd(tcp)
        .fd(unix)
        .names("web:admin")
        .notify()
        .start();
    p.ready();
    assert_eq!(get(addr, "/hello.txt").status, 200);
    let mut u = std::os::unix::net::UnixStream::connect(&path).unwrap();
    u.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    u.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("hello\n"),
        "{out}"
    );
    assert!(p.log.wait_for("listener=admin", T));
    assert!(p.log.wait_for("peer=unix", T), "{}", p.log.text());
}

#[test]
fn binds_its_own_sockets_with_a_large_backlog_and_no_idle_exit() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.sock");
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--listen", "127.0.0.1:0"])
        .args(["--listen", &format!("unix:{}", path.display())])
        .notify()
        .start();
    let ready = p.ready();
    let port = p.listening_on().port();
    assert!(
        !ready.contains("idle exit"),
        "no idle exit when self-bound: {ready}"
    );
    assert_eq!(
        get(SocketAddr::from(([127, 0, 0, 1], port)), "/").status,
        200
    );
    let ss = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let line = String::from_utf8_lossy(&ss.stdout).into_owned();
    let send_q: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(send_q.get(2), Some(&"4096"), "backlog shown by ss: {line}");
    assert!(path.exists());
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_exit(T).and_then(|s| s.code()), Some(0));
    assert!(!path.exists(), "the socket file we created is removed");
}

/// The kernel's side of a connection to `port` from `client`, as `ss` names
/// its state ("SYN-RECV", "ESTAB", ...), if it has one.
fn server_side_state(port: u16, client: SocketAddr) -> Option<String> {
    let ss = Command::new("ss")
        .args([
            "-Htna",
            &format!("sport = :{port} and dport = :{}", client.port()),
        ])
        .output()
        .expect("ss (iproute2)");
    let out = String::from_utf8_lossy(&ss.stdout).into_owned();
    out.split_whitespace().next().map(str::to_owned)
}

#[test]
fn a_bound_tcp_socket_hands_over_connections_only_with_data() {
    let site = site();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--listen", "127.0.0.1:0"])
        .notify()
        .start();
    p.ready();
    let addr = p.listening_on();
    let port = addr.port();
    // TCP_DEFER_ACCEPT (1 s): a silent client's connection stays a request
    // in the kernel (SYN-RECV on the server side) instead of being accepted.
    // Without the option it is ESTAB before connect() returns. After about
    // a second the kernel hands it over anyway, so a look that came that
    // late proves nothing and is taken again.
    let mut silent = None;
    for _ in 0..5 {
        let t = Instant::now();
        let c = TcpStream::connect(addr).unwrap();
        let state = server_side_state(port, c.local_addr().unwrap());
        if t.elapsed() < Duration::from_millis(800) {
            silent = Some((c, state));
            break;
        }
    }
    let (mut c, state) = silent.expect("a timely look at a silent connection");
    assert_eq!(
        state.as_deref(),
        Some("SYN-RECV"),
        "a connection that has sent nothing is not accepted"
    );
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn idle_exit_sends_stopping_and_exits_zero() {
    let mut r = running(&["--workers", "2", "--idle-timeout", "1s"]);
    let status = r
        .proc
        .notified("idle exit in", T)
        .expect("STATUS with idle countdown");
    assert!(
        status.contains("STATUS=2 workers, 0 requests served, 0 in flight"),
        "{status}"
    );
    let last = Instant::now();
    assert_eq!(get(r.addr, "/").status, 200);
    let stopping = r.proc.notified("STOPPING=1", T).expect("STOPPING=1");
    assert!(
        last.elapsed() >= Duration::from_millis(950),
        "exited {:?} after the last request",
        last.elapsed()
    );
    assert!(stopping.contains("idle"), "{stopping}");
    assert_eq!(r.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn idle_exits_lose_no_connection() {
    // The test plays systemd: it owns the listening socket, starts spyglass
    // on it when a connection waits, and again after every idle exit.
    let site = site();
    let listener = tcp_listener();
    let addr = listener.local_addr().unwrap();
    let requests = 150;
    let client = std::thread::spawn(move || {
        let mut answered = 0;
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for i in 0..requests {
            // Random gaps around the 150 ms idle timeout, so that many
            // requests land while an instance is exiting.
            std::thread::sleep(Duration::from_millis(rng.next() % 300));
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(
                format!("GET /hello.txt?{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200 OK") && out.ends_with("hello\n") {
                answered += 1;
            }
        }
        answered
    });
    let mut starts = 0;
    while !client.is_finished() {
        // Start an instance only when a connection is waiting, like systemd.
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&listener),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, 50u16).unwrap_or(0) == 0 {
            continue;
        }
        let mut p = Launch::spyglass()
            .arg(site.path().to_str().unwrap())
            .args([
                "--workers",
                "2",
                "--idle-timeout",
                "150ms",
                "--access-log",
                "off",
            ])
            .fd(listener.try_clone().unwrap())
            .notify()
            .start();
        starts += 1;
        let status = p
            .wait_exit(Duration::from_secs(30))
            .expect("instance exits when idle");
        assert_eq!(status.code(), Some(0), "{}", p.log.text());
        assert!(
            p.notified("STOPPING=1", Duration::ZERO).is_some(),
            "STOPPING=1 before exit"
        );
    }
    let answered = client.join().unwrap();
    assert_eq!(
        answered, requests,
        "every request answered across {starts} activations"
    );
    assert!(
        starts >= 20,
        "only {starts} activations; the test should span many exits"
    );
}

#[test]
fn term_lets_a_request_in_flight_finish() {
    let mut r = running(&["--workers", "1"]);
    let mut c = Client::connect(r.addr);
    // The 100 Continue proves the worker has the request in hand before
    // the signal is sent.
    c.send(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(c.response().map(|r| r.status), Some(100));
    c.send(b"12345");
    r.proc.signal(Signal::SIGTERM);
    r.proc.notified("STOPPING=1", T).expect("STOPPING=1");
    c.send(b"67890");
    let res = c.response().expect("the in-flight request is answered");
    assert_eq!((res.status, res.text().as_str()), (200, "hello\n"));
    assert_eq!(res.header("connection"), Some("close"));
    assert_eq!(r.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn int_stops_at_once() {
    let mut r = running(&["--workers", "2"]);
    let mut c = Client::connect(r.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.response().map(|r| r.status), Some(100));
    r.proc.signal(Signal::SIGINT);
    assert_eq!(r.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
    assert!(r.proc.notified("STOPPING=1", Duration::ZERO).is_some());
    assert!(c.response().is_none(), "the unfinished request is dropped");
}

#[test]
fn a_killed_worker_is_replaced() {
    let r = running(&["--workers", "2"]);
    let before = r.proc.workers();
    assert_eq!(before.len(), 2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(before[0]), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(T, || {
            let now = r.proc.workers();
            now.len() == 2 && !now.contains(&before[0])
        }),
        "no replacement: {:?}",
        r.proc.workers()
    );
    assert!(
        r.proc.log.wait_for("worker died: killed by SIGKILL", T),
        "{}",
        r.proc.log.text()
    );
    for _ in 0..20 {
        assert_eq!(get(r.addr, "/hello.txt").status, 200);
    }
}

#[test]
fn a_killed_master_leaves_no_worker() {
    let mut r = running(&["--workers", "3"]);
    let workers = r.proc.workers();
    assert_eq!(workers.len(), 3);
    r.proc.signal(Signal::SIGKILL);
    r.proc.wait_exit(T);
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || workers
            .iter()
            .all(|w| !alive(*w))),
        "workers left after 1 s: {:?}",
        workers.iter().filter(|w| alive(**w)).collect::<Vec<_>>()
    );
    eprintln!("workers gone {:?} after the master", t.elapsed());
}

#[test]
fn a_connected_socket_is_refused_with_a_clear_error() {
    let l = tcp_listener();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server_side, _) = l.accept().unwrap();
    let site = site();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .fd(server_side)
        .names("web")
        .start();
    let status = p.wait_exit(T).expect("exits");
    assert_ne!(status.code(), Some(0));
    // The process is gone; its last line may still be on its way to us.
    assert!(p.log.wait_for("connected socket", T), "{}", p.log.text());
    let log = p.log.text();
    assert!(
        log.contains("fd 3") && log.contains("'web'") && log.contains("connected socket"),
        "{log}"
    );
    drop(client);
}

#[test]
fn a_failing_worker_init_stops_the_server() {
    // Not socket-activated: nobody is waiting, so it stops at once.
    let mut p = Launch::new(example("app"))
        .args(["--workers", "2", "--listen", "127.0.0.1:0"])
        .env("APP_FAIL_INIT", "1")
        .start();
    let status = p.wait_exit(T).expect("stops instead of respawning");
    assert_eq!(status.code(), Some(1));
    assert!(p.log.wait_for("app: worker", T), "{}", p.log.text());
    let log = p.log.text();
    assert!(log.contains("APP_FAIL_INIT is set"), "{log}");
    assert!(log.contains("failed to boot"), "{log}");
    assert!(
        p.log.count("worker failed to boot") <= 4,
        "no respawn storm:\n{log}"
    );
}

#[test]
fn a_failing_worker_init_under_activation_answers_503_until_idle() {
    // Socket-activated, a client is already waiting: exiting would leave it
    // in the socket and make the activator start us again at once, for
    // ever. The pool answers 503 instead, and the run ends as failed once
    // idle.
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut waiting = Client::connect(addr);
    waiting.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut p = Launch::new(example("app"))
        .args(["--workers", "2", "--idle-timeout", "1s"])
        .env("APP_FAIL_INIT", "1")
        .fd(l)
        .notify()
        .start();
    assert_eq!(waiting.response().map(|r| r.status), Some(503));
    let ready = p.ready();
    assert!(ready.contains("answering 503: worker "), "{ready}");
    assert_eq!(get(addr, "/").status, 503);
    let status = p.wait_exit(T).expect("exits once idle");
    assert_eq!(status.code(), Some(1), "{}", p.log.text());
    let log = p.log.text();
    assert!(log.contains("APP_FAIL_INIT is set"), "{log}");
    assert!(
        log.contains("answering 503 until idle, then exiting with status 1"),
        "{log}"
    );
    assert!(
        p.log.count("worker failed to boot") <= 4,
        "no respawn storm:\n{log}"
    );
    assert!(p.notified("STOPPING=1", Duration::ZERO).is_some());
}

#[test]
fn a_broken_configuration_exits_78_at_once_when_nothing_waits() {
    let site = site();
    let missing = site.path().join("missing");
    for (args, what) in [
        (
            vec![missing.to_str().unwrap().to_owned()],
            "is not a directory",
        ),
        (
            vec![
                site.path().to_str().unwrap().to_owned(),
                "--cgi".into(),
                format!("/cgi-bin={}", missing.display()),
            ],
            "--cgi /cgi-bin=",
        ),
    ] {
        let out = Command::new(spyglass())
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
}

#[test]
fn a_broken_configuration_under_activation_answers_503_then_exits_78() {
    let site = site();
    let missing = site.path().join("missing");
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut waiting = Client::connect(addr);
    waiting.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut p = Launch::spyglass()
        .arg(missing.to_str().unwrap())
        .args(["--workers", "3", "--idle-timeout", "1s"])
        .fd(l)
        .notify()
        .start();
    let res = waiting.response().expect("the waiting client is answered");
    assert_eq!(res.status, 503);
    assert!(!res.text().contains("missing"), "no detail to clients");
    let ready = p.ready();
    assert!(
        ready.contains("STATUS=answering 503: ROOT '")
            && ready.contains("' is not a directory; 1 workers"),
        "{ready}"
    );
    for _ in 0..3 {
        assert_eq!(get(addr, "/").status, 503);
    }
    let status = p.wait_exit(T).expect("exits once idle");
    assert_eq!(status.code(), Some(78), "{}", p.log.text());
    let log = p.log.text();
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.contains("exiting with status 78: ROOT '")),
        "the reason is the last line:\n{log}"
    );
}

#[test]
fn a_bad_flag_under_activation_answers_503_then_exits_2() {
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut waiting = Client::connect(addr);
    waiting.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut p = Launch::spyglass()
        .env("SPYGLASS_WORKERS", "zero")
        .env("SPYGLASS_IDLE_TIMEOUT", "1s")
        .fd(l)
        .notify()
        .start();
    assert_eq!(waiting.response().map(|r| r.status), Some(503));
    let ready = p.ready();
    assert!(
        ready.contains("answering 503: invalid value 'zero' for '--workers"),
        "{ready}"
    );
    assert_eq!(get(addr, "/").status, 503);
    let status = p.wait_exit(T).expect("exits once idle");
    assert_eq!(status.code(), Some(2), "{}", p.log.text());
}

#[test]
fn check_prints_the_configuration_and_exits_0_or_78() {
    let site = site();
    std::fs::create_dir(site.path().join("cgi-bin")).unwrap();
    let root = site.path().to_str().unwrap();
    let cgi = format!("/cgi-bin={root}/cgi-bin");
    let out = Command::new(spyglass())
        .args(["check", root, "--cgi", &cgi, "--workers", "3"])
        .env("SPYGLASS_IDLE_TIMEOUT", "90s")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::trim))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
    };
    assert_eq!(value("root"), root);
    assert_eq!(value("cgi"), cgi);
    assert_eq!(value("workers"), "3");
    assert_eq!(value("idle-timeout"), "1m 30s");
    assert_eq!(value("header-timeout"), "20s");
    assert_eq!(value("max-body"), "16777216");
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration OK"));

    // Each way the service would fail to start, with the reason.
    let missing = format!("{root}/missing");
    let bad_cgi = format!("/cgi-bin={missing}");
    for (args, code, why) in [
        (vec!["check", &missing], 78, "is not a directory"),
        (
            vec!["check", root, "--cgi", &bad_cgi],
            78,
            "--cgi /cgi-bin=",
        ),
        (vec!["check", root, "--workers", "0"], 2, "--workers"),
        (
            vec!["check", root, "--cache-control", "a\x01b"],
            2,
            "--cache-control",
        ),
    ] {
        let out = Command::new(spyglass()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "nothing printed as if valid");
    }
}

/// `check` prints every setting a flag can change: each long flag of
/// `--help` (but help and version) is a key of its output.
#[test]
fn check_describes_every_flag() {
    let site = site();
    std::fs::create_dir(site.path().join("cgi-bin")).unwrap();
    let root = site.path().to_str().unwrap();
    let help = Command::new(spyglass()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().split_once("--"))
        .filter(|(before, _)| before.is_empty() || before.ends_with(", "))
        .filter_map(|(_, rest)| rest.split([' ', '=', ',']).next())
        .filter(|f| !f.is_empty() && !["help", "version"].contains(f))
        .collect();
    assert!(flags.len() > 30, "{flags:?}");
    let out = Command::new(spyglass())
        .args(["check", root, "--cache-control", "no-cache"])
        .args(["--site", &format!("other={root}")])
        .args(["--cgi", &format!("/cgi-bin={root}/cgi-bin")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    let missing: Vec<&&str> = flags.iter().filter(|f| !keys.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "not in check's output: {missing:?}\n{text}"
    );
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    /// Arguments, environment, and what the error line must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--workers", "0"], &[], "--workers"),
        (&["--workers", "many"], &[], "--workers"),
        (&["--idle-timeout", "soon"], &[], "--idle-timeout"),
        (&["--graceful-timeout", "0"], &[], "--graceful-timeout"),
        (&["--listen", "nowhere"], &[], "--listen"),
        (&["--max-body", "lots"], &[], "--max-body"),
        (&["--access-log", "maybe"], &[], "--access-log"),
        (&["--log-target", "syslog"], &[], "--log-target"),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        (&[], &[("SPYGLASS_IDLE_TIMEOUT", "soon")], "--idle-timeout"),
        (&[], &[("SPYGLASS_WORKERS", "-1")], "--workers"),
        // The Lookout's command line goes through a parser of its own
        // first (cli::parse_cli): its mistakes read the same.
        (
            &["lookout", "--boot-timeout", "soon"],
            &[],
            "--boot-timeout",
        ),
        (&["lookout", "--no-such-flag"], &[], "--no-such-flag"),
        (&["lookout", "--workers", "0"], &[], "--workers"),
    ];
    for (args, env, flag) in cases {
        let mut cmd = Command::new(spyglass());
        cmd.args(*args).stdin(Stdio::null());
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "one line for {args:?} {env:?}: {err}"
        );
        assert!(err.contains(flag), "{args:?} {env:?} names {flag}: {err}");
    }
    let ok = Command::new(spyglass()).arg("--help").output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SPYGLASS_IDLE_TIMEOUT"));
    // The full parser's help, subcommands and all.
    assert!(String::from_utf8_lossy(&ok.stdout).contains("lookout"));
}

#[test]
fn environment_sets_flags() {
    let mut r = {
        let site = site();
        let l = tcp_listener();
        let addr = l.local_addr().unwrap();
        let mut proc = Launch::spyglass()
            .env("SPYGLASS_ROOT", site.path().to_str().unwrap())
            .env("SPYGLASS_WORKERS", "3")
            .env("SPYGLASS_IDLE_TIMEOUT", "1s")
            .fd(l)
            .notify()
            .start();
        proc.ready();
        Running { proc, addr, site }
    };
    assert_eq!(r.proc.workers().len(), 3);
    assert_eq!(get(r.addr, "/hello.txt").status, 200);
    assert!(
        r.proc.notified("STOPPING=1", T).is_some(),
        "idle timeout from the environment"
    );
}

#[test]
fn ttin_and_ttou_change_the_worker_count() {
    let mut r = running(&["--workers", "2"]);
    r.proc.signal(Signal::SIGTTIN);
    assert!(
        wait_until(T, || r.proc.workers().len() == 3),
        "{:?}",
        r.proc.workers()
    );
    // Signals of one kind coalesce: send the next only once the first acted.
    r.proc.signal(Signal::SIGTTOU);
    assert!(
        wait_until(T, || r.proc.workers().len() == 2),
        "{:?}",
        r.proc.workers()
    );
    r.proc.signal(Signal::SIGTTOU);
    assert!(
        wait_until(T, || r.proc.workers().len() == 1),
        "{:?}",
        r.proc.workers()
    );
    assert_eq!(get(r.addr, "/").status, 200);
    assert!(r.proc.notified("STATUS=1 workers", T).is_some());
}

#[test]
fn hup_reloads_in_place_without_losing_a_request() {
    let mut r = running(&["--workers", "2"]);
    let old = r.proc.workers();
    let addr = r.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let client = std::thread::spawn(move || {
        let (mut ok, mut total) = (0, 0);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            total += 1;
            let mut c = Client::connect(addr);
            c.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            if c.response().is_some_and(|r| r.status == 200) {
                ok += 1;
            }
        }
        (ok, total)
    });
    r.proc.signal(Signal::SIGHUP);
    r.proc.notified("RELOADING=1", T).expect("RELOADING=1");
    r.proc.notify.as_mut().unwrap().seen.clear();
    r.proc.ready();
    assert!(
        wait_until(T, || {
            let now = r.proc.workers();
            now.len() == 2 && now.iter().all(|w| !old.contains(w))
        }),
        "old workers retired, new ones serve: {old:?} -> {:?}",
        r.proc.workers()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, total) = client.join().unwrap();
    assert_eq!(ok, total, "requests during the reload");
    assert!(total > 0);
    assert!(!r.proc.exited(), "same master pid");
    assert_eq!(get(r.addr, "/hello.txt").status, 200);
    // The new image says what it replaced, as a journal event.
    assert!(
        r.proc.log.wait_for("reloaded: ", T),
        "{}",
        r.proc.log.text()
    );
    let log = r.proc.log.text();
    let line = log.lines().find(|l| l.contains("reloaded: ")).unwrap();
    assert!(
        line.contains("event=\"reload\"")
            && line.contains("old_image=")
            && line.contains("new_image="),
        "{line}"
    );
}

#[test]
fn a_reload_whose_configuration_check_fails_is_refused() {
    let site = site();
    let root = site.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap();
    let (mut p, addr) = serve_dir(&root, &["--workers", "2"]);
    let workers = p.workers();
    // The ROOT the command line names is gone: `spyglass check` fails, so
    // the running image carries on (its workers hold the old directory).
    let moved = site.path().join("moved");
    std::fs::rename(&root, &moved).unwrap();
    p.signal(Signal::SIGHUP);
    assert!(
        p.log
            .wait_for("reload refused: the configuration check failed", T),
        "{}",
        p.log.text()
    );
    let log = p.log.text();
    assert!(
        log.contains("(exit status 78): spyglass: ROOT '") && log.contains("is not a directory"),
        "{log}"
    );
    assert!(p.notified("RELOADING=1", Duration::ZERO).is_none());
    assert_eq!(p.workers(), workers, "the same workers serve");
    assert_eq!(get(addr, "/hello.txt").status, 200);
    // Mended, the next reload goes through.
    std::fs::rename(&moved, &root).unwrap();
    p.signal(Signal::SIGHUP);
    p.notified("RELOADING=1", T).expect("RELOADING=1");
    assert!(
        wait_until(T, || {
            let now = p.workers();
            now.len() == 2 && now.iter().all(|w| !workers.contains(w))
        }),
        "new workers: {workers:?} -> {:?}",
        p.workers()
    );
    assert_eq!(get(addr, "/hello.txt").status, 200);
}

#[test]
fn access_events_carry_fields() {
    let r = running(&["--workers", "1"]);
    assert_eq!(get(r.addr, "/missing").status, 404);
    assert!(
        r.proc.log.wait_for("status=404", T),
        "{}",
        r.proc.log.text()
    );
    let log = r.proc.log.text();
    let line = log.lines().find(|l| l.contains("status=404")).unwrap();
    for field in [
        "method=\"GET\"",
        "path=\"/missing\"",
        "bytes=",
        "duration_us=",
        "worker=",
        "peer=127.0.0.1:",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let quiet = running(&["--workers", "1", "--access-log", "off"]);
    assert_eq!(get(quiet.addr, "/missing").status, 404);
    assert_eq!(get(quiet.addr, "/").status, 200);
    // Everything the server logged is in once its last line is.
    quiet.proc.signal(Signal::SIGTERM);
    assert!(
        quiet.proc.log.wait_for("stopped", T),
        "{}",
        quiet.proc.log.text()
    );
    assert!(
        !quiet.proc.log.text().contains("status="),
        "{}",
        quiet.proc.log.text()
    );
}

#[test]
fn ipv6_sockets_activated_and_bound() {
    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        panic!("IPv6 loopback is unavailable on this machine");
    };
    let addr = v6.local_addr().unwrap();
    let site = site();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1"])
        .fd(v6)
        .names("v6")
        .notify()
        .start();
    p.ready();
    let r = get(addr, "/hello.txt");
    assert_eq!(r.status, 200);
    assert!(p.log.wait_for("peer=[::1]:", T), "{}", p.log.text());
    drop(p);

    let port = TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--listen", &format!("[::1]:{port}")])
        .notify()
        .start();
    p.ready();
    assert_eq!(
        get(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)), "/").status,
        200
    );
}
