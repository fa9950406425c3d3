//! Tests under a real systemd 252 (PID 1 in an [`SdBox`]). Skipped without root/namespaces,
//! unless `SPYGLASS_REQUIRE_SYSTEMD=1`.
//!
//! Every box has its own network namespace, so fixed ports do not collide between tests.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sdbox::{STAND_IN_BODY, SdBox, boot_or_skip, stand_in_units};
use crate::support::wait_until;

const PORT: u16 = 18380;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The harness itself: boot, socket listening with no service yet, one activation through
/// `connect_tcp`, the journal inside, teardown.
#[test]
fn stand_in_is_socket_activated_under_real_systemd() {
    let Some(sd) = boot_or_skip(&stand_in_units(PORT)) else {
        return;
    };
    assert_eq!(
        stdout(&sd.systemctl(&["is-system-running"])).trim(),
        "running"
    );
    assert_eq!(sd.show("standin.socket", "ActiveState"), "active");
    assert_eq!(sd.show("standin.socket", "SubState"), "listening");
    assert_eq!(sd.show("standin.socket", "NAccepted"), "0");
    let instances = sd.systemctl(&["list-units", "--all", "--no-legend", "standin@*"]);
    assert_eq!(
        stdout(&instances).trim(),
        "",
        "a service ran before any connection"
    );
    // The unit path is a whitelist: none of the host's units are loaded.
    let tmpfiles = sd.show("systemd-tmpfiles-setup.service", "LoadState");
    assert_eq!(tmpfiles, "not-found");
    // Private /tmp, read-only global sysctls (the write is harmless even if it got through).
    let marker = std::env::temp_dir().join(format!("sdbox-host-marker-{}", std::process::id()));
    std::fs::write(&marker, "host").unwrap();
    let seen = sd.exec(&["test", "-e", &marker.to_string_lossy()]);
    assert!(!seen.status.success(), "the box sees the host's /tmp");
    let sysctl = sd.exec(&[
        "sh",
        "-c",
        "cat /proc/sys/fs/file-max > /proc/sys/fs/file-max",
    ]);
    assert!(!sysctl.status.success(), "/proc/sys is writable in the box");

    let t0 = Instant::now();
    let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let mut conn = sd.connect_tcp(addr).expect("connect into the box");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: box\r\nUser-Agent: sdbox\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    let cold = t0.elapsed();
    assert!(
        response.starts_with("HTTP/1.0 200 OK\r\n"),
        "response: {response:?}"
    );
    let expect = format!("Content-Length: {}\r\n", STAND_IN_BODY.len());
    assert!(response.contains(&expect), "response: {response:?}");
    assert!(
        response.ends_with(&format!("\r\n\r\n{STAND_IN_BODY}")),
        "response: {response:?}"
    );
    assert_eq!(sd.show("standin.socket", "NAccepted"), "1");

    let logged = wait_until(Duration::from_secs(10), || {
        let out = sd.journalctl(&["-u", "standin@*", "-o", "cat"]);
        stdout(&out).contains("stand-in served 127.0.0.1")
    });
    assert!(logged, "journal: {}", stdout(&sd.journalctl(&["-n", "50"])));

    let boot = sd.boot_time();
    let t1 = Instant::now();
    drop(sd);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "host",
        "host /tmp was touched"
    );
    std::fs::remove_file(&marker).unwrap();
    eprintln!(
        "sdbox: boot {boot:?}, stand-in cold start {cold:?}, teardown {:?}",
        t1.elapsed()
    );
}

/// `stage` makes files usable by a sandboxed `DynamicUser=` unit (ProtectHome hides /root).
#[test]
fn staged_files_serve_a_dynamic_user_sandboxed_unit() {
    let probe = "[Unit]\nDescription=sandboxed reader of staged files\n\n\
                 [Service]\nType=oneshot\nRemainAfterExit=yes\nDynamicUser=yes\n\
                 ProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n\
                 ExecStart=/run/spyglass-test/site/run.sh /run/spyglass-test/site/index.html\n";
    let Some(sd) = boot_or_skip(&[("probe.service", probe.to_string())]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sdbox-stage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "hello from the host\n").unwrap();
    std::fs::write(
        dir.join("run.sh"),
        "#!/bin/sh\necho \"uid=$(id -u) $(cat \"$1\")\"\n",
    )
    .unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(dir.join("run.sh"), exec).unwrap();
    sd.stage(&dir, "/run/spyglass-test/site").expect("stage");
    std::fs::remove_dir_all(&dir).unwrap();

    let out = sd.systemctl(&["start", "probe.service"]);
    assert!(
        out.status.success(),
        "start probe: {out:?}\n{}",
        stdout(&sd.journalctl(&["-n", "30"]))
    );
    let log = stdout(&sd.journalctl(&["-u", "probe.service", "-o", "cat"]));
    assert!(log.contains("hello from the host"), "journal: {log}");
    assert!(!log.contains("uid=0 "), "DynamicUser ran as root: {log}");
}

/// Drop during unwinding tears the box down: its cgroup (hence every process) is gone.
#[test]
fn box_is_torn_down_when_a_test_panics() {
    let Some(sd) = boot_or_skip(&[]) else { return };
    let (pid, cgroup) = (sd.host_pid(), sd.cgroup().to_path_buf());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _sd = sd;
        panic!("deliberate panic: the box must be torn down while unwinding");
    }));
    assert!(result.is_err());
    assert_gone(pid, &cgroup);
}

/// A killed test process closes the watchdog's pipe: the watchdog alone tears the box down.
#[test]
fn watchdog_tears_down_a_box_whose_test_process_died() {
    let Some(mut sd) = boot_or_skip(&[]) else {
        return;
    };
    let (pid, cgroup) = (sd.host_pid(), sd.cgroup().to_path_buf());
    sd.cut_lifeline();
    assert!(
        wait_until(Duration::from_secs(30), || !cgroup.exists()),
        "watchdog did nothing"
    );
    assert_gone(pid, &cgroup);
}

/// The TTL bounds a box whose test hangs.
#[test]
fn watchdog_ttl_bounds_a_box_lifetime() {
    let Some(sd) = SdBox::boot_with_ttl(&[], Duration::from_secs(8))
        .map_err(|s| crate::sdbox::require_or_skip(&s.0))
        .ok()
    else {
        return;
    };
    let (pid, cgroup) = (sd.host_pid(), sd.cgroup().to_path_buf());
    assert!(
        wait_until(Duration::from_secs(40), || !cgroup.exists()),
        "TTL did not fire"
    );
    assert_gone(pid, &cgroup);
}

fn assert_gone(pid: nix::unistd::Pid, cgroup: &Path) {
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    // The pid may be recycled, but never by a systemd in another pid namespace of ours.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "systemd", "box PID 1 ({pid}) still alive");
}
