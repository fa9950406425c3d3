//! The Lookout (issue 11): `spyglass lookout` holds the sockets without
//! systemd and starts the master on the first connection, as systemd
//! would. Every test runs the real binary; the fault tests put a small
//! script in place of the binary on disk, which the Lookout executes at its
//! next start as it would an upgraded binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

/// A running Lookout on a fresh loopback port.
struct Lookout {
    proc: Proc,
    addr: SocketAddr,
}

impl Lookout {
    /// `program lookout --listen 127.0.0.1:0 --log-target stderr EXTRA...`,
    /// listening (on the port the kernel chose, read from its log).
    fn start(program: &Path, extra: &[&str]) -> Lookout {
        Lookout::start_env(program, extra, &[])
    }

    /// The same, with these variables in the Lookout's environment.
    fn start_env(program: &Path, extra: &[&str], env: &[(&str, &str)]) -> Lookout {
        let mut launch = Launch::new(program)
            .args(["lookout", "--listen", "127.0.0.1:0"])
            .args(["--log-target", "stderr"])
            .args(extra.iter().copied());
        for (k, v) in env {
            launch = launch.env(k, v);
        }
        let proc = launch.start();
        let addr = proc.listening_on();
        let l = Lookout { proc, addr };
        l.wait_log("lookout: waiting for the first connection");
        l
    }

    /// The address the Lookout bound for the listener named `name`.
    fn address_of(&self, name: &str) -> SocketAddr {
        self.wait_log(&format!("listener={name} "));
        let want = format!("listener={name}");
        self.log()
            .lines()
            .filter(|l| l.contains("lookout: listening") && l.split_whitespace().any(|w| w == want))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
                    .and_then(|a| a.parse().ok())
            })
            .unwrap_or_else(|| panic!("no address for {name}:\n{}", self.log()))
    }

    fn pid(&self) -> i32 {
        self.proc.pid
    }

    fn log(&self) -> String {
        self.proc.log.text()
    }

    fn wait_log(&self, what: &str) {
        assert!(
            self.proc.log.wait_for(what, T),
            "no '{what}' in the log:\n{}",
            self.log()
        );
    }

    /// Wait until `what` appears `n` times in the log.
    fn wait_count(&self, what: &str, n: usize) {
        assert!(
            wait_until(T, || self.proc.log.count(what) >= n),
            "'{what}' not {n} times in the log:\n{}",
            self.log()
        );
    }

    /// The master: the Lookout's one live child.
    fn master(&self) -> i32 {
        let mut kids = Vec::new();
        assert!(
            wait_until(T, || {
                kids = children(self.pid());
                kids.len() == 1
            }),
            "children {kids:?}"
        );
        kids[0]
    }

    /// Wait until the master has gone and the Lookout waits again.
    fn wait_idle(&self) {
        assert!(
            wait_until(T, || children(self.pid()).is_empty()),
            "children {:?}",
            children(self.pid())
        );
    }

    fn signal(&self, sig: Signal) {
        self.proc.signal(sig);
    }

    /// Stop it (TERM) and return the whole log, read to its last line.
    fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        self.wait_log("lookout: stopped");
        assert_eq!(self.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
        self.log()
    }
}

/// One request on a new connection: the status and body, None when the
/// connection ended without a complete response.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut c = Client::connect(addr);
    c.stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    c.response().map(|r| (r.status, r.text()))
}

/// The raw answer to one request: everything until the server closes.
fn raw_answer(addr: SocketAddr) -> String {
    exchange(
        addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
}

/// NUL-separated strings of a /proc file.
fn proc_strings(pid: i32, file: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Field `n` (1-based as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// Zombie children of `pid`: exited, never reaped.
fn zombies_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            stat_field(*p, 3).as_deref() == Some("Z")
                && stat_field(*p, 4).as_deref() == Some(&pid.to_string())
        })
        .collect()
}

/// The process whose command line contains `marker`.
fn find_process(marker: &str) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| proc_strings(*p, "cmdline").iter().any(|a| a == marker))
}

/// Sockets among a process's descriptors.
fn sockets_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// A copy of the binary in a directory of its own, so that a test can put
/// something else in its place.
struct Binary {
    dir: tempfile::TempDir,
}

impl Binary {
    fn copy() -> Binary {
        let dir = tempfile::tempdir().unwrap();
        // cp, not std::fs::copy: see support::executable (ETXTBSY).
        let ok = Command::new("cp")
            .arg(spyglass())
            .arg(dir.path().join("spyglass"))
            .status()
            .unwrap();
        assert!(ok.success());
        Binary { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("spyglass")
    }

    /// Put a sh script where the binary was (renamed over it, as a package
    /// upgrade does, so the running Lookout keeps its own image).
    fn replace_with_script(&self, body: &str) {
        let next = script(self.dir.path(), "next", body);
        std::fs::rename(next, self.path()).unwrap();
    }
}

/// The time of day, in seconds, of each log line that contains `what`
/// (the text format starts with an RFC 3339 timestamp).
fn log_times(log: &str, what: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            let t = l.get(11..26)?;
            let (h, rest) = t.split_once(':')?;
            let (m, s) = rest.split_once(':')?;
            Some(
                h.parse::<f64>().ok()? * 3600.0
                    + m.parse::<f64>().ok()? * 60.0
                    + s.parse::<f64>().ok()?,
            )
        })
        .collect()
}

/// Activation variables in the Lookout's own environment (from whatever
/// started it) never reach the master: it finds its sockets at fd 3, and
/// its notifications go to the Lookout.
#[test]
fn a_supervisors_activation_variables_do_not_reach_the_master() {
    let site = site();
    let l = Lookout::start_env(
        &spyglass(),
        &[site.path().to_str().unwrap()],
        &[
            ("LISTEN_FDS", "1"),
            ("LISTEN_PID", "1"),
            ("LISTEN_FDS_FIRST_FD", "10"),
            ("LISTEN_FDNAMES", "elsewhere"),
            ("WATCHDOG_USEC", "1000"),
        ],
    );
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));
    l.wait_log("lookout: the master is ready");
    let env = proc_strings(l.master(), "environ");
    for gone in ["LISTEN_FDS_FIRST_FD=", "WATCHDOG_USEC="] {
        assert!(
            !env.iter().any(|e| e.starts_with(gone)),
            "{gone} in {env:?}"
        );
    }
}

#[test]
fn the_first_connection_starts_the_master_as_systemd_would() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("site.sock");
    let pid_file = dir.path().join("lookout.pid");
    let l = Lookout::start(
        &spyglass(),
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--boot-timeout",
            "15s",
            "--workers",
            "2",
            site.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", l.pid())
    );
    assert!(
        children(l.pid()).is_empty(),
        "a master before any connection"
    );
    // The listeners and the notify socket: nothing else.
    assert_eq!(sockets_of(l.pid()), 3);

    // The first connection waits in the backlog and is served by the master.
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));
    let master = l.master();
    l.wait_log("lookout: the master is ready");

    // Started exactly as systemd would start it.
    let env = proc_strings(master, "environ");
    let var = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
    };
    assert_eq!(var("LISTEN_FDS").as_deref(), Some("2"));
    assert_eq!(var("LISTEN_PID"), Some(master.to_string()));
    assert_eq!(
        var("LISTEN_FDNAMES"),
        Some(format!(
            "127.0.0.1_{}:unix_{}",
            l.addr.port(),
            sock.display()
        ))
    );
    assert!(var("NOTIFY_SOCKET").is_some_and(|s| s.starts_with('@')));
    assert_eq!(var("SPYGLASS_PID_FILE"), None);
    let argv = proc_strings(master, "cmdline");
    assert!(
        !argv
            .iter()
            .any(|a| a == "lookout" || a.contains("pid-file") || a.contains("boot-timeout")),
        "{argv:?}"
    );
    assert!(argv.iter().any(|a| a == "--workers"), "{argv:?}");
    // Its own session, like a service.
    assert_eq!(stat_field(master, 6), Some(master.to_string()));
    // It took the sockets as activated ones, with the activated default.
    l.wait_log("activated=true");
    l.wait_log("will exit when idle idle_timeout=60s");
    assert_eq!(children(master).len(), 2, "workers");

    // Over the Unix socket too.
    let mut u = UnixStream::connect(&sock).unwrap();
    u.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    u.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("hello\n"),
        "{out}"
    );

    // The Lookout accepted nothing: still the same three sockets.
    assert_eq!(sockets_of(l.pid()), 3);

    // TERM: the master drains, the Lookout exits 0 and cleans up its files.
    l.signal(Signal::SIGTERM);
    let mut l = l;
    assert_eq!(l.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
    assert!(wait_until(T, || !alive(master)));
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(!sock.exists(), "socket file left behind");
    l.wait_log("lookout: graceful stop: SIGTERM sent to the master");
}

#[test]
fn zero_loss_across_many_idle_exits() {
    let site = site();
    let l = Lookout::start(
        &spyglass(),
        &[
            "--idle-timeout",
            "250ms",
            "--workers",
            "2",
            "--keepalive-timeout",
            "1s",
            site.path().to_str().unwrap(),
        ],
    );
    let requests = 300;
    let mut rng = Rng(0x853c_49e6_748f_ea9b);
    let mut failures = Vec::new();
    for i in 0..requests {
        // Random gaps around the idle timeout: many requests land just as a
        // master decides to exit, or while it is exiting.
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 250));
        match try_get(l.addr, &format!("/probe/{i}")) {
            Some((404, _)) => {}
            other => failures.push((i, other)),
        }
    }
    assert!(failures.is_empty(), "unanswered: {failures:?}\n{}", l.log());
    // Let the last master exit, then stop, so that the log is complete.
    l.wait_idle();
    let log = l.stop();
    for i in 0..requests {
        let n = log.matches(&format!("\"GET /probe/{i}\"")).count();
        assert_eq!(n, 1, "access events for request {i}");
    }
    let exits = log.matches("stopping gracefully: idle").count();
    let starts = log.matches("lookout: started the master").count();
    eprintln!(
        "{requests} requests over {exits} idle exits ({starts} starts), all answered and logged once"
    );
    assert!(exits >= 20, "only {exits} exits");
    assert_eq!(starts, exits, "every master started ended idle");
    assert!(!log.contains("backing off"), "{log}");
}

#[test]
fn a_configuration_error_is_backed_off_and_sighup_retries_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    let l = Lookout::start(
        &spyglass(),
        &["--idle-timeout", "1s", root.to_str().unwrap()],
    );
    // The first connection starts a master, which finds no ROOT: socket-
    // activated, it answers 503 until idle, then exits 78. The Lookout then
    // backs off: no new master for a minute, a 503 to each connection.
    let first = raw_answer(l.addr);
    assert!(
        first.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{first:?}\n{}",
        l.log()
    );
    l.wait_log("is not a directory");
    l.wait_log("the master exited with exit status 78: a configuration error");
    l.wait_log("connections get 503 for 1m");
    // While backing off, no other master: answered at once.
    for _ in 0..3 {
        let again = raw_answer(l.addr);
        assert!(again.starts_with("HTTP/1.1 503"), "{again:?}");
        let secs: u64 = again
            .split("Retry-After: ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
    }
    // Fixed, and told: the next connection starts a master that serves it.
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap();
    l.signal(Signal::SIGHUP);
    l.wait_log("lookout: SIGHUP: back-off ended");
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));
    let log = l.stop();
    assert_eq!(
        log.matches("lookout: started the master").count(),
        2,
        "{log}"
    );
}

#[test]
fn a_crashing_master_is_restarted_with_growing_delays() {
    let bin = Binary::copy();
    let l = Lookout::start(&bin.path(), &["--workers", "1"]);
    bin.replace_with_script("kill -SEGV $$\n");
    // A client that keeps coming: every connection gets a 503 (or a close,
    // never a hang), and masters start only as the delays allow.
    let mut answers = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while l.proc.log.count("lookout: started the master") < 4 {
        assert!(Instant::now() < end, "{}", l.log());
        let a = raw_answer(l.addr);
        assert!(
            a.is_empty() || a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{a:?}"
        );
        answers += 1;
        std::thread::sleep(Duration::from_millis(50)); // a client's pace, not a wait
    }
    l.wait_count("the master failed to boot: killed by SIGSEGV", 4);
    let log = l.log();
    for delay in ["for 1s,", "for 2s,", "for 4s,"] {
        assert!(
            log.contains(&format!("connections get 503 {delay}")),
            "{delay}\n{log}"
        );
    }
    let starts = log_times(&log, "lookout: started the master");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{answers} connections answered; gaps between starts: {gaps:?}");
    for (gap, least) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= least,
            "started again after {gap}s, before the {least}s delay"
        );
    }
    assert!(zombies_of(l.pid()).is_empty());
}

#[test]
fn a_master_that_crashes_after_ready_is_replaced_after_a_pause() {
    let site = site();
    let l = Lookout::start(
        &spyglass(),
        &["--workers", "2", site.path().to_str().unwrap()],
    );
    assert_eq!(try_get(l.addr, "/hello.txt").map(|r| r.0), Some(200));
    let master = l.master();
    // READY=1 comes once every worker has booted.
    l.wait_log("lookout: the master is ready");
    let workers = children(master);
    assert_eq!(workers.len(), 2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), Signal::SIGKILL).unwrap();
    l.wait_log("lookout: the master crashed: killed by SIGKILL");
    l.wait_log("connections get 503 for 1s");
    // Its workers, orphaned, come to the Lookout (a subreaper), end on
    // their parent-death signal and are reaped.
    assert!(wait_until(T, || workers.iter().all(|w| !alive(*w))));
    assert!(
        wait_until(T, || zombies_of(l.pid()).is_empty()),
        "{:?}",
        zombies_of(l.pid())
    );
    l.wait_log("lookout: back-off over");
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));
    assert_ne!(l.master(), master);
}

#[test]
fn a_master_that_hangs_at_boot_is_killed_and_its_connection_answered() {
    let bin = Binary::copy();
    let l = Lookout::start(
        &bin.path(),
        &["--boot-timeout", "1s", "--log-level", "debug"],
    );
    // READY=1 from a grandchild (systemd-notify's parent is not the master)
    // does not count: NotifyAccess=main. Then the "master" hangs, with a
    // child of its own in its process group.
    bin.replace_with_script(
        "sh -c 'systemd-notify --ready --no-block'\nsleep 1000.5 &\nexec sleep 1000.25\n",
    );
    let t = Instant::now();
    let addr = l.addr;
    let client = std::thread::spawn(move || raw_answer(addr));
    // A HUP while it boots: it already runs what is on disk.
    l.wait_log("lookout: started the master");
    l.signal(Signal::SIGHUP);
    l.wait_log("lookout: SIGHUP: the master is still booting");
    let answer = client.join().unwrap();
    let waited = t.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "{answer:?}\n{}",
        l.log()
    );
    l.wait_log("notification ignored: not from the master's pid");
    l.wait_log("lookout: no READY=1 within 1s: killing the master as hung");
    l.wait_log("lookout: the master sent no READY=1 within 1s and was killed");
    assert!(!l.log().contains("lookout: the master is ready"));
    // The whole group went, and nothing is left unreaped.
    assert!(wait_until(T, || find_process("1000.5").is_none()
        && find_process("1000.25").is_none()));
    assert!(wait_until(T, || zombies_of(l.pid()).is_empty()));
    eprintln!("the waiting connection was answered after {waited:?}");
}

#[test]
fn exit_78_after_ready_still_backs_off() {
    // The master's degraded mode: READY=1, 503s for a while, then exit 78.
    let bin = Binary::copy();
    let l = Lookout::start(&bin.path(), &[]);
    bin.replace_with_script("systemd-notify --ready --no-block --status=degraded\nexit 78\n");
    let answer = raw_answer(l.addr);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer:?}"
    );
    l.wait_log("lookout: the master is ready");
    l.wait_log("exit status 78: a configuration error");
    l.wait_log("connections get 503 for 1m");
    assert!(raw_answer(l.addr).starts_with("HTTP/1.1 503"));
    let log = l.stop();
    assert_eq!(
        log.matches("lookout: started the master").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_killed_lookout_takes_its_master_down() {
    let site = site();
    let mut l = Lookout::start(
        &spyglass(),
        &["--workers", "2", site.path().to_str().unwrap()],
    );
    assert_eq!(try_get(l.addr, "/").map(|r| r.0), Some(200));
    let master = l.master();
    // READY=1 comes once every worker has booted.
    l.wait_log("lookout: the master is ready");
    let mut family = children(master);
    family.push(master);
    assert_eq!(family.len(), 3);
    l.signal(Signal::SIGKILL);
    assert!(l.proc.wait_exit(T).is_some());
    assert!(
        wait_until(T, || family.iter().all(|p| !alive(*p))),
        "left running: {:?}",
        family.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
}

/// The Lookout's notification socket has an abstract name, which any
/// process in the network namespace can send to. While no master runs,
/// datagrams from anyone else are dropped, and they must stay cheap: the
/// Lookout gives back its pages once per master, not on every wake-up, or
/// each stray datagram would cost a read of smaps and the refaulting of
/// every code page the loop touches (85 minor faults a datagram, and 0.6 s
/// of CPU for 20,000 in a release build, when 211f738 did that; 0 faults
/// and 0.03 s since). Counted in minor page faults, which do not depend on
/// the machine's speed.
#[test]
fn stray_notifications_cost_the_idle_lookout_nothing_like_a_rest() {
    use std::os::linux::net::SocketAddrExt;
    const STRAY: usize = 100;
    let site = site();
    let l = Lookout::start(
        &spyglass(),
        &["--log-level", "debug", site.path().to_str().unwrap()],
    );
    let name = abstract_socket_of(l.pid()).expect("the Lookout's notification socket");
    let to = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let stray = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let faults = |pid| {
        stat_field(pid, 10)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap()
    };
    // One round first, so that what the loop touches is mapped.
    stray.send_to_addr(b"READY=1", &to).unwrap();
    l.wait_count("notification ignored", 1);
    let before = faults(l.pid());
    // One at a time, each heard before the next: a wake-up each.
    for n in 2..=STRAY + 1 {
        stray.send_to_addr(b"READY=1", &to).unwrap();
        l.wait_count("notification ignored", n);
    }
    let after = faults(l.pid());
    eprintln!(
        "{} minor faults for {STRAY} stray datagrams",
        after - before
    );
    assert!(
        after - before < STRAY as u64 / 2,
        "{} minor faults for {STRAY} stray datagrams",
        after - before
    );
    assert!(children(l.pid()).is_empty(), "a master started");
    // And it still serves.
    assert_eq!(try_get(l.addr, "/").map(|r| r.0), Some(200));
}

/// The connection that wakes a resting Lookout (its pages given back, see
/// `sys::IdlePages::release_and_poll`) may be hostile: reset at once, a
/// half-sent request and a FIN, garbage then a reset, or a connect and a
/// FIN alone. Each wakes it and starts a master that idles out; the
/// Lookout rests again each time, never backs off, and the next ordinary
/// request is answered.
#[test]
fn a_hostile_first_connection_to_a_resting_lookout_costs_nothing_after() {
    let site = site();
    let l = Lookout::start(
        &spyglass(),
        &["--idle-timeout", "200ms", site.path().to_str().unwrap()],
    );
    type Hostile = (&'static str, fn(TcpStream));
    let shapes: [Hostile; 4] = [
        ("reset", reset),
        ("half request, FIN", |mut s| {
            let _ = s.write_all(b"GET /hello.txt HT");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }),
        ("garbage, reset", |mut s| {
            let _ = s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
            reset(s);
        }),
        ("FIN alone", |s| {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }),
    ];
    for round in 0..2 {
        for (name, shape) in &shapes {
            l.wait_idle();
            shape(TcpStream::connect(l.addr).unwrap());
            assert_eq!(
                try_get(l.addr, "/hello.txt"),
                Some((200, "hello\n".to_owned())),
                "round {round}, after '{name}':\n{}",
                l.log()
            );
        }
    }
    l.wait_idle();
    let log = l.stop();
    assert!(!log.contains("backing off"), "{log}");
    assert!(
        log.matches("lookout: started the master").count() >= shapes.len(),
        "{log}"
    );
}

/// The abstract name (without its `@`) of a Unix socket `pid` holds.
fn abstract_socket_of(pid: i32) -> Option<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (inode, path) = (f.get(6)?, f.get(7)?);
        inodes
            .iter()
            .any(|i| i == inode)
            .then(|| path.strip_prefix('@').map(str::to_owned))
            .flatten()
    })
}

#[test]
fn int_stops_fast_and_hup_reloads_the_running_master_only() {
    let site = site();
    let mut l = Lookout::start(
        &spyglass(),
        &["--workers", "1", site.path().to_str().unwrap()],
    );
    // No master: HUP does nothing.
    l.signal(Signal::SIGHUP);
    l.wait_log("lookout: SIGHUP: no master running, nothing to reload");
    assert!(children(l.pid()).is_empty());

    assert_eq!(try_get(l.addr, "/").map(|r| r.0), Some(200));
    let master = l.master();
    l.wait_log("lookout: the master is ready");
    l.signal(Signal::SIGHUP);
    l.wait_log("lookout: reload: SIGHUP sent to the master");
    l.wait_log("lookout: the master is reloading");
    l.wait_log("lookout: the master is ready again");
    assert_eq!(l.master(), master, "reloaded in place");
    // TTIN reaches the master too.
    l.signal(Signal::SIGTTIN);
    assert!(
        wait_until(T, || children(master).len() == 2),
        "{:?}",
        children(master)
    );
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));

    l.signal(Signal::SIGINT);
    assert_eq!(l.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
    l.wait_log("lookout: fast stop: SIGINT sent to the master");
    assert!(wait_until(T, || !alive(master)));
}

#[test]
fn term_lets_requests_in_flight_finish() {
    let site = site();
    let mut l = Lookout::start(
        &spyglass(),
        &["--workers", "1", site.path().to_str().unwrap()],
    );
    // A request in flight: the server holds it after its 100 Continue.
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut cont = [0u8; 25];
    s.read_exact(&mut cont).unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    let master = l.master();
    l.signal(Signal::SIGTERM);
    l.wait_log("stopping gracefully: stop requested");
    assert!(alive(master), "the master drains, it is not killed");
    s.write_all(b"body").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("hello\n"),
        "{out}"
    );
    assert_eq!(l.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_pid_file_held_by_a_live_lookout_is_refused() {
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("l.pid");
    let pf = pid_file.to_str().unwrap();
    let mut first = Lookout::start(
        &spyglass(),
        &["--pid-file", pf, site.path().to_str().unwrap()],
    );
    let mut second = Launch::spyglass()
        .args(["lookout", "--listen", "127.0.0.1:0"])
        .args(["--log-target", "stderr", "--pid-file", pf])
        .start();
    assert_eq!(second.wait_exit(T).and_then(|s| s.code()), Some(1));
    let want = format!("pid {} is running and holds it", first.pid());
    assert!(second.log.wait_for(&want, T), "{}", second.log.text());
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", first.pid())
    );
    // A pid file that cannot be written is a configuration error.
    let mut unwritable = Launch::spyglass()
        .args(["lookout", "--listen", "127.0.0.1:0"])
        .args(["--log-target", "stderr", "--pid-file"])
        .arg(dir.path().join("no/such/dir/l.pid").to_str().unwrap())
        .start();
    assert_eq!(unwritable.wait_exit(T).and_then(|s| s.code()), Some(78));
    // Bad flags are refused before anything starts.
    let mut bad = Launch::spyglass()
        .args(["lookout", "--boot-timeout", "soon"])
        .start();
    assert_eq!(bad.wait_exit(T).and_then(|s| s.code()), Some(2));
    // TERM to the first, asleep with no master (its pages given back in
    // the same step as its poll): it wakes, exits 0, removes its pid file.
    first.signal(Signal::SIGTERM);
    assert_eq!(first.proc.wait_exit(T).and_then(|s| s.code()), Some(0));
    assert!(!pid_file.exists(), "pid file left behind");
}

#[test]
fn as_pid_1_it_reaps_every_orphan() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the PID 1 test needs root for unshare --pid");
        return;
    }
    let site = site();
    let cgi = site.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    // A CGI script that leaves a helper behind, as a daemonizing one does:
    // in a session of its own (so the worker's kill of the script's group
    // misses it), detached before the script exits, after which it is an
    // orphan, handed to the namespace's init.
    let scratch = tempfile::tempdir().unwrap();
    let detached = scratch.path().join("detached");
    script(
        &cgi,
        "orphan.sh",
        &format!(
            "setsid sh -c 'echo $$ > {0}; exec sleep 600 0.4242' </dev/null >/dev/null 2>&1 &\n\
             while [ ! -s {0} ]; do sleep 0.01; done\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nleft one\\n'\n",
            detached.display()
        ),
    );
    let mut unshare = Launch::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(spyglass().to_str().unwrap())
        .args([
            "lookout",
            "--listen",
            "127.0.0.1:0",
            "--log-target",
            "stderr",
        ])
        .args(["--log-level", "debug", "--workers", "1"])
        .arg(site.path().to_str().unwrap())
        .arg("--cgi")
        .arg(format!("/cgi-bin={}", cgi.display()))
        .start();
    assert!(
        unshare.log.wait_for("lookout: running as PID 1", T),
        "{}",
        unshare.log.text()
    );
    let mut lookout = Vec::new();
    assert!(wait_until(T, || {
        lookout = children(unshare.pid);
        lookout.len() == 1
    }));
    let lookout = lookout[0];
    let addr = unshare.listening_on();
    assert!(
        unshare
            .log
            .wait_for("lookout: waiting for the first connection", T)
    );

    assert_eq!(
        try_get(addr, "/cgi-bin/orphan.sh"),
        Some((200, "left one\n".into()))
    );
    let mut orphan = None;
    assert!(wait_until(T, || {
        orphan = find_process("0.4242");
        orphan.is_some()
    }));
    let orphan = orphan.unwrap();
    // Reparented to the Lookout, PID 1 of the namespace ...
    assert!(
        wait_until(T, || stat_field(orphan, 4) == Some(lookout.to_string())),
        "ppid {:?}",
        stat_field(orphan, 4)
    );
    // ... which reaps it when it ends: no zombie remains.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(T, || !Path::new(&format!("/proc/{orphan}")).exists()),
        "orphan {orphan} not reaped: state {:?}",
        stat_field(orphan, 3)
    );
    assert!(unshare.log.wait_for("lookout: reaped an orphan", T));
    assert!(zombies_of(lookout).is_empty());

    // Blocked signals reach PID 1: TERM stops it cleanly.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(lookout), Signal::SIGTERM).unwrap();
    assert_eq!(
        unshare.wait_exit(T).and_then(|s| s.code()),
        Some(0),
        "{}",
        unshare.log.text()
    );
    assert!(unshare.log.wait_for("lookout: stopped", T));
}

#[test]
fn from_args_gives_a_library_app_the_lookout() {
    let app = example("hello");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let unix = format!("unix:{}", sock.display());
    let l = Lookout::start(
        &app,
        &[
            "--listen",
            &unix,
            "--workers",
            "1",
            "--idle-timeout",
            "300ms",
        ],
    );
    let r = try_get(l.addr, "/");
    assert_eq!(r.as_ref().map(|r| r.0), Some(200), "{}", l.log());
    let first = l.master();
    let argv = proc_strings(first, "cmdline");
    assert!(argv.iter().all(|a| a != "lookout"), "{argv:?}");
    l.wait_log("lookout: the master exited: exit status 0; waiting for the next connection");
    l.wait_idle();
    // The master took the Unix socket as an activated one: its exit left
    // the file to the Lookout, and the next connection through it starts
    // the next master.
    assert!(
        sock.exists(),
        "the master removed the Lookout's socket file"
    );
    let mut u = UnixStream::connect(&sock).unwrap();
    u.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    u.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert_ne!(l.master(), first);
    l.stop();
    assert!(!sock.exists(), "the Lookout left its socket file behind");
}

/// Cold start through the Lookout next to systemd-socket-activate's, for
/// the same binary and flags: connect to first byte of the response when
/// no server runs, median of 20 each, taken in turns. A measurement for the
/// record, not a test of speed; run it with
/// `cargo test --release --test it coldstart_through -- --ignored --nocapture`
/// (bench/lookout measures the Lookout's memory).
#[test]
#[ignore = "a benchmark; run explicitly"]
fn coldstart_through_the_lookout_next_to_systemd_socket_activate() {
    let site = site();
    let root = site.path().to_str().unwrap();
    let flags = ["--workers", "2", "--access-log", "off"];
    let first_byte = |addr: SocketAddr| {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 1];
        s.read_exact(&mut first).unwrap();
        let took = t.elapsed();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        took
    };
    let l = Lookout::start(
        &spyglass(),
        &[
            root,
            flags[0],
            flags[1],
            flags[2],
            flags[3],
            "--idle-timeout",
            "100ms",
        ],
    );
    let (mut ssa, mut look) = (Vec::new(), Vec::new());
    for i in 1..=20 {
        // In turns, each right after the other's server has exited.
        look.push(first_byte(l.addr));
        l.wait_count("exit status 0; waiting for the next connection", i);
        let port = free_port();
        let mut p = Launch::new("systemd-socket-activate")
            .args(["-l", &format!("127.0.0.1:{port}")])
            .arg(spyglass().to_str().unwrap())
            .arg(root)
            .args(flags)
            .args(["--idle-timeout", "0"])
            .start();
        assert!(p.log.wait_for("Listening on", T), "{}", p.log.text());
        ssa.push(first_byte(SocketAddr::from(([127, 0, 0, 1], port))));
        p.signal(Signal::SIGTERM);
        assert!(p.wait_exit(T).is_some());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    eprintln!("cold start, connect to first byte, 20 each (median, min, max):");
    eprintln!("  systemd-socket-activate: {:?}", median(&mut ssa));
    eprintln!("  spyglass lookout:        {:?}", median(&mut look));
}

#[test]
fn named_sockets_keep_their_names_through_the_lookout() {
    let site = site();
    let blog = tempfile::tempdir().unwrap();
    std::fs::write(blog.path().join("hello.txt"), "blog\n").unwrap();
    let l = Lookout::start(
        &spyglass(),
        &[
            "--listen",
            "blog=127.0.0.1:0",
            "--site",
            &format!("blog={}", blog.path().display()),
            site.path().to_str().unwrap(),
        ],
    );
    let blog_addr = l.address_of("blog");
    // `--site blog=...` routes by the name the Lookout passes in
    // LISTEN_FDNAMES; the unnamed socket keeps its address, ':' as '_'.
    assert_eq!(
        try_get(blog_addr, "/hello.txt"),
        Some((200, "blog\n".into()))
    );
    assert_eq!(try_get(l.addr, "/hello.txt"), Some((200, "hello\n".into())));
    let names = proc_strings(l.master(), "environ")
        .into_iter()
        .find_map(|e| e.strip_prefix("LISTEN_FDNAMES=").map(str::to_owned));
    assert_eq!(names, Some(format!("127.0.0.1_{}:blog", l.addr.port())));
}

/// One address given twice to `--listen`: the Lookout binds two
/// SO_REUSEPORT sockets and hands both over; each master it starts runs a
/// worker on each (two, though one was asked for), and every connection
/// the kernel spreads over them is answered, across idle exits.
#[test]
fn reuseport_sockets_pass_through_the_lookout() {
    let site = site();
    let listen = format!("127.0.0.1:{}", free_port());
    let l = Lookout::start(
        &spyglass(),
        &[
            "--listen",
            &listen,
            "--listen",
            &listen,
            "--workers",
            "1",
            "--idle-timeout",
            "300ms",
            "--access-log",
            "off",
            site.path().to_str().unwrap(),
        ],
    );
    let addr: SocketAddr = listen.parse().unwrap();
    for round in 1..=2 {
        for i in 0..100 {
            let status = try_get(addr, "/hello.txt").map(|(status, _)| status);
            assert_eq!(status, Some(200), "round {round}, request {i}");
        }
        l.wait_count("2 workers instead of 1", round);
        l.wait_idle();
    }
    l.stop();
}
