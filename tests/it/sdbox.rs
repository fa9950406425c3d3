//! `SdBox`: a throwaway, real systemd (`/lib/systemd/systemd --system`, PID 1) booted in fresh
//! namespaces, so tests can drive socket-activated units on a host that does not run systemd.
//!
//! Where it sits: test-only harness of the `it` binary. It knows systemd, namespaces and cgroups;
//! it knows nothing about spyglass (tests hand it unit texts and files to stage).
//!
//! # Recipe
//!
//! 1. Preflight: root, systemd and journald binaries, util-linux tools, a cgroup2 hierarchy, a
//!    host `/etc/machine-id`. Anything missing is a [`Skip`], never a failure (unless CI sets
//!    `SPYGLASS_REQUIRE_SYSTEMD=1`, see [`require_or_skip`]).
//! 2. `mkdir <cgroup2>/spyglass-sdbox-<pid>-<n>`: one cgroup subtree per box.
//! 3. Start the watchdog (below) before anything can leak.
//! 4. Launch `sh` (joins the box cgroup) → `unshare --pid --mount --net --uts --ipc --cgroup
//!    --fork --kill-child --mount-proc --propagation private` → box PID 1, a `sh` that prints
//!    `ready` and blocks reading a `go` line from a pipe. The launcher itself is moved back out of
//!    the box cgroup, so only the box lives there.
//! 5. A short-lived thread of the test process does `unshare(CLONE_FS)` and `setns` into the
//!    box's net, uts, ipc, cgroup and mount namespaces, proves it is inside (`/proc/1/ns/mnt` is
//!    the box's), and builds the box's mounts, writes the units and the stub targets.
//! 6. `go`: the box's sh execs `setpriv --bounding-set -sys_module,-sys_time systemd --system`.
//! 7. Wait (on events, bounded) for `/run/systemd/private` and then for
//!    `systemctl is-system-running --wait`.
//!
//! # Pitfalls (each one can damage the host or make tests flaky)
//!
//! - **Unit path is a whitelist.** `SYSTEMD_UNIT_PATH` (no trailing `:`, which would append the
//!   defaults) names only box-private dirs: the caller's units in `/run/systemd/system`, stub
//!   targets and our own journald units in `/run/spyglass-sdbox/lib`. With the host's units,
//!   `sysinit.target` pulls `systemd-tmpfiles-setup.service`, whose `D /tmp` empties the host's
//!   /tmp, plus timers, udev, ... Generators are pointed at an empty dir too
//!   (`SYSTEMD_GENERATOR_PATH`, `SYSTEMD_ENVIRONMENT_GENERATOR_PATH`).
//! - **Namespaces before mounts.** Every namespace of the box is compared with ours before the
//!   first mount, and the setup thread proves it entered the box's mount namespace; a mount in
//!   the host's namespace would cover the host's /run or /tmp. The `ready` line comes after
//!   unshare's `--mount-proc`: binding /proc/sys read-only any earlier would be covered by the
//!   fresh /proc and leave the box's sysctls writable. `setns(CLONE_NEWNS)` fails (EINVAL) in a
//!   thread sharing its fs struct, hence `unshare(CLONE_FS)` in a thread used for nothing else.
//! - **Packages** ([`Options::private_os`]): dpkg and apt write /usr, /etc, /var (and a
//!   package's files anywhere under them), so a box that installs a package gets overlays of
//!   the host's /etc, /opt, /srv, /usr and /var with box-private tmpfs upper layers (built
//!   before any other mount, which then land on top), and an empty tmpfs over
//!   /usr/lib/systemd/system added to its unit path: the box's systemd loads the units a
//!   package installs there and still none of the host's. Host mounts below those
//!   directories are not seen in the box (an overlay's lower layer is one file system). A
//!   host without all five directories, or without merged /usr (a real /bin, /lib or /sbin
//!   would be written through), fails the box's setup.
//! - **Private state everywhere systemd writes:** tmpfs on /run, /tmp, /var/tmp,
//!   /var/log/journal, /var/lib/systemd, /etc/systemd; a minimal private /dev (no host devtmpfs
//!   writes such as /dev/log); per-box /etc/machine-id and /etc/hostname bind mounts; a fresh
//!   /proc with /proc/sys (and /proc/sysrq-trigger) read-only (sysctls are global: PID 1 would
//!   retune `fs.nr_open` and friends on the host; /proc/sys/net stays writable, it is per-netns);
//!   a fresh read-only /sys (only the box's devices) with cgroup2 mounted from inside the box's
//!   cgroup namespace, so its root is the box's subtree. The host's /proc, /sys and /dev trees
//!   that these cover are detached in the box (best effort), so that its mount table is a booted
//!   host's and not twice that: a unit's sandbox copies and re-reads every entry. The rest of
//!   the host fs is shared.
//! - **Users:** the box reads the host's /etc/passwd and /etc/group, and must never write them
//!   (no `systemd-sysusers` inside a box without private /etc). A unit that runs as a static
//!   user gets it from [`Options::sysusers`]: box-private copies with the user added, made by
//!   `systemd-sysusers --root` in a scratch directory and bound read-only over the host's files
//!   in the box's mount namespace.
//! - **Capabilities:** PID 1 runs without `CAP_SYS_MODULE` and `CAP_SYS_TIME`: no module loads,
//!   no clock changes on the host.
//! - **journald:** `Storage=volatile`, rate limiting off (tests that count lines are exact),
//!   `ReadKMsg=no`, no console/wall forwarding.
//! - **Loopback:** systemd brings `lo` up itself in the new netns (checked at boot).
//! - **Parallel boxes:** name, hostname and cgroup are `spyglass-sdbox-<test pid>-<n>`; all
//!   other state lives inside the box's own mount namespace. No fixed host paths are shared.
//! - **Teardown never uses SIGTERM on PID 1** (systemd re-executes on it). `Drop` SIGKILLs
//!   systemd's host PID (after checking it is still the launcher's child) and everything left in
//!   the box cgroup (`cgroup.kill`, immune to PID reuse), waits for the launcher to exit (the
//!   kernel reaps the whole pid namespace first), then removes the cgroup subtree. Mounts die
//!   with the mount namespace. `Drop` runs on panics too (unwinding).
//! - **Killed test process:** a watchdog `sh` in its own process group reads a pipe whose only
//!   writer is the test process; EOF (the test process died, however) or the TTL (default 600 s)
//!   makes it `cgroup.kill` the box and remove the cgroup. Ctrl-C also kills the launcher, whose
//!   `--kill-child` SIGKILLs the box.
//! - **Console:** a pty; its slave is the box's /dev/console and the launcher's stderr, a thread
//!   keeps the last 256 KiB for failure messages. The test process holds a slave fd while the box
//!   lives, so the reader never sees a hangup and the box never blocks on a full console.
//! - **Caller's business:** units that idle-exit need `StartLimitIntervalSec=0` (or a limit they
//!   cannot trip) in `[Unit]`, else the service fails after 5 activations in 10 s; an
//!   `Accept=no` socket activated more than 20 times in 2 s fails too (`TriggerLimitBurst=`,
//!   `TriggerLimitIntervalSec=` in `[Socket]`). Units with
//!   `[Install] WantedBy=`/`RequiredBy=` are enabled (linked) before boot. `StateDirectory=`,
//!   `LogsDirectory=`, `CacheDirectory=` land in the host's /var: avoid them. Files for
//!   `DynamicUser=`/`ProtectSystem=strict`/`ProtectHome=` units go through [`SdBox::stage`] into a
//!   box-private dir such as /run/spyglass-test (the checkout may be under /root).
//! - **No sleeps as synchronisation:** every wait is a bounded poll of a condition
//!   ([`wait_until`]) or a blocking read of an event (the `ready` line, `--wait`). A command
//!   run with [`SdBox::exec`] is bounded by the box: it lives in the box's pid namespace and dies
//!   with it (teardown or TTL).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use std::{env, thread};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::support::wait_until;

/// How long a box may live at most, unless [`SdBox::boot_with_ttl`] says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15);
const SYSTEMD_DIR: &str = "/lib/systemd";
/// Box paths (inside the box's private /run).
const LIB: &str = "/run/spyglass-sdbox/lib";
const EMPTY: &str = "/run/spyglass-sdbox/empty";
const UNIT_PATH: &str = "/etc/systemd/system.control:/run/systemd/system.control:\
/run/systemd/transient:/etc/systemd/system:/run/systemd/system:/run/spyglass-sdbox/lib";
/// Where packages install units; on the unit path (box-private, empty at boot) only with
/// [`Options::private_os`].
const PACKAGE_UNITS: &str = "/usr/lib/systemd/system";
/// The directories a package manager writes, overlaid with [`Options::private_os`].
const OS_DIRS: [&str; 5] = ["/etc", "/opt", "/srv", "/usr", "/var"];
/// Holds the overlays' upper and work directories (box path).
const OS_LAYERS: &str = "/run/spyglass-sdbox/os";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CONSOLE_KEEP: usize = 256 * 1024;
const LAUNCH: &str = "unshare --pid --mount --net --uts --ipc --cgroup --fork \
--kill-child=SIGKILL --mount-proc --propagation=private -- /bin/sh -c";
const SAFE: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const SAFE_NOEXEC: MsFlags = SAFE.union(MsFlags::MS_NOEXEC);
const RO: MsFlags = MsFlags::MS_RDONLY;
/// Volatile (the box's /run), no rate limits (tests that count lines are exact), no kmsg.
const JOURNALD_CONF: &str = "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\n\
RateLimitBurst=0\nReadKMsg=no\nForwardToConsole=no\nForwardToWall=no\nRuntimeMaxUse=32M\n";

/// Why real-systemd tests cannot run here (not root, no cgroup2, unshare not permitted, ...).
#[derive(Debug)]
pub struct Skip(pub String);

/// Report a skip, or fail when `SPYGLASS_REQUIRE_SYSTEMD=1` (CI: a skip must not pass silently).
pub fn require_or_skip(reason: &str) {
    if env::var_os("SPYGLASS_REQUIRE_SYSTEMD").is_some_and(|v| v == "1") {
        panic!("SPYGLASS_REQUIRE_SYSTEMD=1 but real-systemd tests cannot run: {reason}");
    }
    // Straight to stderr, past libtest's capture, so a skip is always visible.
    let _ = writeln!(io::stderr(), "SKIPPED: real-systemd tests: {reason}");
}

/// [`SdBox::boot`], or `None` after [`require_or_skip`].
pub fn boot_or_skip(units: &[(&str, String)]) -> Option<SdBox> {
    SdBox::boot(units)
        .map_err(|Skip(r)| require_or_skip(&r))
        .ok()
}

/// The trivial socket-activated stand-in: `Accept=yes` on 127.0.0.1:`port`, one `sh` per
/// connection that reads the request head up to the blank line, logs one line to the journal
/// and answers `HTTP/1.0 200` with [`STAND_IN_BODY`]. Only sh and printf: its cold start is
/// systemd's own share of a socket activation.
pub fn stand_in_units(port: u16) -> Vec<(&'static str, String)> {
    let socket = format!(
        "[Unit]\nDescription=sdbox stand-in responder (socket)\n\n\
         [Socket]\nListenStream=127.0.0.1:{port}\nAccept=yes\n\n\
         [Install]\nWantedBy=sockets.target\n"
    );
    // `$$` and `%%` are systemd's escapes for `$` and `%`; `\\r` reaches printf as `\r`.
    let len = STAND_IN_BODY.len();
    let service = format!(
        "[Unit]\nDescription=sdbox stand-in responder (one connection)\n\n\
         [Service]\nStandardInput=socket\nStandardError=journal\n\
         ExecStart=/bin/sh -c 'cr=$$(printf \"\\\\r\"); \
         while IFS= read -r l; do [ -n \"$${{l%%\"$$cr\"}}\" ] || break; done; \
         echo \"stand-in served $$REMOTE_ADDR\" >&2; \
         printf \"HTTP/1.0 200 OK\\\\r\\\\nContent-Type: text/plain\\\\r\\\\n\
         Content-Length: {len}\\\\r\\\\nConnection: close\\\\r\\\\n\\\\r\\\\n%%s\" \"{body}\"'\n",
        body = STAND_IN_BODY.trim_end(),
    );
    vec![("standin.socket", socket), ("standin@.service", service)]
}

/// The stand-in's response body, sent as is (printf "%s", no newline added).
pub const STAND_IN_BODY: &str = "stand-in ok";

/// How a box is booted, beyond its units.
#[derive(Clone, Debug)]
pub struct Options {
    /// The box's longest life (the watchdog kills it then).
    pub ttl: Duration,
    /// Box-private /etc, /opt, /srv, /usr and /var, and [`PACKAGE_UNITS`] on the unit path
    /// (see the header): for tests that install packages with dpkg or apt.
    pub private_os: bool,
    /// sysusers.d(5) texts whose users and groups the box has (see the header).
    pub sysusers: Vec<String>,
    /// A box-private /etc/nsswitch.conf, bound read-only over the host's: to measure what
    /// the name service configuration costs a service's start.
    pub nsswitch: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ttl: DEFAULT_TTL,
            private_os: false,
            sysusers: Vec::new(),
            nsswitch: None,
        }
    }
}

impl Options {
    fn unit_path(&self) -> String {
        if self.private_os {
            format!("{UNIT_PATH}:{PACKAGE_UNITS}")
        } else {
            UNIT_PATH.to_owned()
        }
    }
}

/// A booted box. Dropping it tears it down (also while a test panics).
pub struct SdBox {
    name: String,
    cgroup: PathBuf,
    /// Host pid of the box's PID 1 (systemd).
    pid: Option<Pid>,
    launcher: Option<Child>,
    /// Its stdin is the lifeline: EOF makes it kill the box.
    watchdog: Option<Child>,
    netns: Option<File>,
    console: Arc<Mutex<Vec<u8>>>,
    console_slave: Option<OwnedFd>,
    boot_time: Duration,
    unit_path: String,
}

struct Host {
    cg2: PathBuf,
    our_cgroup: PathBuf,
    systemd: PathBuf,
    journald: PathBuf,
}

impl SdBox {
    /// Boot a box with exactly `units` (file name, text) plus stub targets and journald, with the
    /// default TTL. Units with `[Install] WantedBy=` are enabled. Panics on a genuine failure.
    pub fn boot(units: &[(&str, String)]) -> Result<SdBox, Skip> {
        Self::boot_with_ttl(units, DEFAULT_TTL)
    }

    /// [`SdBox::boot`] with a lifetime bound other than [`DEFAULT_TTL`].
    pub fn boot_with_ttl(units: &[(&str, String)], ttl: Duration) -> Result<SdBox, Skip> {
        let opts = Options {
            ttl,
            ..Options::default()
        };
        Self::boot_with(units, opts)
    }

    /// [`SdBox::boot`] with `opts`.
    pub fn boot_with(units: &[(&str, String)], opts: Options) -> Result<SdBox, Skip> {
        let ttl = opts.ttl;
        let started = Instant::now();
        for (name, _) in units {
            assert!(
                !name.is_empty() && !name.contains('/') && name.contains('.'),
                "bad unit file name {name:?}"
            );
        }
        let host = preflight()?;
        let accounts = match opts.sysusers.as_slice() {
            [] => None,
            files => Some(accounts_with(files)?),
        };
        let (name, cgroup) = make_cgroup(&host.cg2)?;
        let mut sd = SdBox {
            name,
            cgroup,
            pid: None,
            launcher: None,
            watchdog: None,
            netns: None,
            console: Arc::default(),
            console_slave: None,
            boot_time: Duration::ZERO,
            unit_path: opts.unit_path(),
        };
        sd.watchdog = Some(spawn_watchdog(&sd.cgroup, ttl));

        let (master, slave, slave_path) = open_console_pty().expect("open a pty for the console");
        spawn_console_reader(master, Arc::clone(&sd.console));
        // sh joins the box cgroup, then unshare; the box's PID 1 (sh) says "ready", waits for
        // "go" and execs systemd without CAP_SYS_MODULE and CAP_SYS_TIME.
        let mut launcher = Command::new("/bin/sh")
            .args(["-c", r#"echo 0 > "$0/cgroup.procs" && exec "$@""#])
            .arg(&sd.cgroup)
            .args(LAUNCH.split(' '))
            .arg(r#"echo ready && read -r go && exec "$@" </dev/null >&2"#)
            .args("sh setpriv --bounding-set=-sys_module,-sys_time --".split(' '))
            .arg(&host.systemd)
            .args(["--system", "--unit=multi-user.target"])
            .env_clear()
            .envs([("PATH", PATH), ("LANG", "C.UTF-8"), ("TERM", "dumb")])
            .envs([("container", "spyglass-sdbox")])
            .envs([("SYSTEMD_UNIT_PATH", &sd.unit_path)])
            .envs([("SYSTEMD_GENERATOR_PATH", EMPTY)])
            .envs([("SYSTEMD_ENVIRONMENT_GENERATOR_PATH", EMPTY)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(slave.try_clone().expect("dup pty slave"))
            .spawn()
            .expect("spawn the box launcher (sh + unshare)");
        sd.console_slave = Some(slave.into());
        let mut go = launcher.stdin.take().expect("launcher stdin");
        let ready = launcher.stdout.take().expect("launcher stdout");
        let launcher_pid = launcher.id() as i32;
        sd.launcher = Some(launcher);

        // Event: the box's PID 1 has passed unshare and --mount-proc and waits for "go".
        let mut line = String::new();
        let _ = BufReader::new(ready).read_line(&mut line);
        if line.trim_end() != "ready" {
            let _ = wait_until(Duration::from_secs(5), || !sd.launcher_running());
            // Its error message may still be on its way through the pty, in pieces.
            let _ = wait_until(Duration::from_secs(2), || sd.console().contains('\n'));
            let console = sd.console();
            let denied = "not permitted|Permission denied|Read-only file system";
            if denied.split('|').any(|d| console.contains(d)) {
                let why = console.trim();
                return Err(Skip(format!("cannot create namespaces/cgroup: {why}")));
            }
            panic!("sdbox {}: launcher failed; console:\n{console}", sd.name);
        }
        let pid = child_of(launcher_pid).expect("box PID 1 (child of unshare) not found");
        sd.pid = Some(pid);
        // Only the box belongs in the box cgroup, not the launcher outside its pid namespace.
        let ours = host.our_cgroup.join("cgroup.procs");
        if let Err(e) = fs::write(ours, launcher_pid.to_string()) {
            eprintln!("sdbox {}: launcher stays in the box cgroup: {e}", sd.name);
        }
        let mnt_ino = assert_new_namespaces(pid);
        sd.netns = Some(File::open(format!("/proc/{pid}/ns/net")).expect("open box netns"));

        let setup = Setup {
            pid,
            mnt_ino,
            name: sd.name.clone(),
            console: slave_path,
            journald: host.journald,
            units,
            private_os: opts.private_os,
            accounts,
            nsswitch: opts.nsswitch.clone(),
        };
        let setup = thread::scope(|s| s.spawn(|| setup.run()).join());
        match setup.expect("setup thread panicked") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Skip(format!("box mounts not permitted: {e}")));
            }
            Err(e) => panic!("sdbox {}: setting up the box failed: {e}", sd.name),
        }

        go.write_all(b"go\n").expect("release the box's PID 1");
        drop(go);
        let private = sd.root().join("run/systemd/private");
        let up = wait_until(BOOT_TIMEOUT, || private.exists() || !sd.launcher_running());
        assert!(
            up && private.exists(),
            "sdbox {}: systemd did not come up; console:\n{}",
            sd.name,
            sd.console()
        );
        let out = sd.exec(&["timeout", "60", "systemctl", "is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match state.as_str() {
            "running" => {}
            "degraded" => {
                let failed = sd.systemctl(&["--failed", "--no-legend"]);
                eprintln!(
                    "sdbox {}: degraded; failed units:\n{}",
                    sd.name,
                    String::from_utf8_lossy(&failed.stdout)
                );
            }
            _ => panic!(
                "sdbox {}: boot did not finish (state {state:?}, {}); console:\n{}\njournal:\n{}",
                sd.name,
                String::from_utf8_lossy(&out.stderr).trim(),
                sd.console(),
                String::from_utf8_lossy(&sd.journalctl(&["-b", "-n", "100"]).stdout),
            ),
        }
        // systemd brings up loopback in the new netns itself; tests rely on it.
        let lo = fs::read_to_string(sd.root().join("sys/class/net/lo/flags")).unwrap_or_default();
        let up =
            u32::from_str_radix(lo.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 == 1);
        assert!(
            up,
            "sdbox {}: loopback is down in the box (flags {lo:?})",
            sd.name
        );
        sd.boot_time = started.elapsed();
        Ok(sd)
    }

    /// From spawning the launcher to `is-system-running` answering `running`.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Host pid of the box's PID 1.
    pub fn host_pid(&self) -> Pid {
        self.pid.expect("box has no PID 1")
    }

    /// The box's cgroup subtree on the host.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The box's `/`, seen from the host (its private mounts included).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.host_pid()))
    }

    /// What the box wrote to /dev/console (systemd's log before journald, launcher errors).
    pub fn console(&self) -> String {
        let buf = self.console.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).replace('\r', "")
    }

    /// Run `argv` inside the box: all its namespaces (`nsenter`), a clean environment.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.host_pid()))
            .args("--mount --uts --ipc --net --pid --cgroup --".split(' '))
            .args(argv)
            .env_clear()
            .envs([("PATH", PATH), ("LANG", "C.UTF-8"), ("TERM", "dumb")])
            .envs([("SYSTEMD_PAGER", "cat"), ("PAGER", "cat")])
            .envs([("SYSTEMD_COLORS", "0")])
            .envs([("SYSTEMD_UNIT_PATH", &self.unit_path)])
            .stdin(Stdio::null())
            .output()
            .expect("spawn nsenter")
    }

    /// `sh -c SCRIPT` inside the box; its stdout, after asserting it succeeded.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "in the box: {script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl ARGS` inside the box.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["systemctl", "--no-pager"], args].concat())
    }

    /// `journalctl ARGS` inside the box.
    pub fn journalctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["journalctl", "--no-pager"], args].concat())
    }

    /// `systemctl show -p PROPERTY --value UNIT`, trimmed.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        assert!(out.status.success(), "systemctl show {unit}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A TCP connection from the test process into the box's network namespace: a fresh thread
    /// enters the netns (setns affects only the calling thread) and connects; the socket keeps
    /// its namespace after the thread is gone.
    pub fn connect_tcp(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let netns = self.netns.as_ref().expect("box has no netns");
        thread::scope(|s| {
            s.spawn(|| {
                setns(netns, CloneFlags::CLONE_NEWNET)?;
                TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            })
            .join()
            .expect("connect thread panicked")
        })
    }

    /// Copy a host file or directory tree to `box_path`, which must lie in a box-private tmpfs
    /// (/run, /tmp, /var/tmp). Dirs become 0755, files 0755 or 0644 (by their x bit), so a
    /// `DynamicUser=` unit can exec and read them even with `ProtectHome=`/`ProtectSystem=strict`.
    pub fn stage(&self, host_path: &Path, box_path: &str) -> io::Result<()> {
        let private = "/run/ /tmp/ /var/tmp/"
            .split(' ')
            .any(|p| box_path.starts_with(p));
        assert!(
            private && !box_path.split('/').any(|c| c == ".."),
            "stage only into a box-private tmpfs: {box_path}"
        );
        let root = self.root();
        let mut dir = root.clone();
        let rel = Path::new(&box_path[1..]);
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(c);
            if !dir.exists() {
                fs::DirBuilder::new().mode(0o755).create(&dir)?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
            }
        }
        copy_tree(host_path, &root.join(rel))
    }

    fn launcher_running(&mut self) -> bool {
        self.launcher
            .as_mut()
            .is_some_and(|l| matches!(l.try_wait(), Ok(None)))
    }

    /// Test hook: behave as if the test process had been killed (its end of the watchdog's
    /// pipe closes), so the watchdog alone must tear the box down.
    pub fn cut_lifeline(&mut self) {
        drop(self.watchdog.as_mut().and_then(|w| w.stdin.take()));
    }
}

impl Drop for SdBox {
    fn drop(&mut self) {
        // 1. The watchdog (sh, timeout, cat share its process group) must not act on a later box.
        if let Some(mut w) = self.watchdog.take() {
            let _ = killpg(Pid::from_raw(w.id() as i32), Signal::SIGKILL);
            let _ = w.wait();
        }
        // 2. SIGKILL (never TERM: PID 1 re-executes on it) systemd, if it is still the
        //    launcher's child, i.e. not a recycled pid; then the rest of the cgroup.
        if let (Some(pid), Some(l)) = (self.pid, self.launcher.as_ref()) {
            if parent_of(pid) == Some(l.id() as i32) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        let _ = fs::write(self.cgroup.join("cgroup.kill"), "1");
        // 3. The launcher exits once the kernel has reaped the whole pid namespace.
        let name = self.name.clone();
        if self.launcher.is_some() && !wait_until(TEARDOWN_TIMEOUT, || !self.launcher_running()) {
            eprintln!("sdbox {name}: launcher still running after SIGKILL of the box");
        }
        if let Some(mut l) = self.launcher.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        // 4. The cgroup subtree, once nothing is left in it.
        let events = self.cgroup.join("cgroup.events");
        let empty = || fs::read_to_string(&events).map_or(true, |e| e.contains("populated 0"));
        if !wait_until(TEARDOWN_TIMEOUT, empty) || !remove_cgroup_tree(&self.cgroup) {
            eprintln!("sdbox {name}: could not remove {}", self.cgroup.display());
        }
        // 5. netns and pty fds close with the fields; the console reader then sees a hangup.
    }
}

/// Everything the setup thread does inside the box's namespaces (see the recipe, step 5).
struct Setup<'a> {
    pid: Pid,
    mnt_ino: u64,
    name: String,
    console: PathBuf,
    journald: PathBuf,
    units: &'a [(&'a str, String)],
    private_os: bool,
    /// Box-private /etc/passwd and /etc/group texts, if any ([`Options::sysusers`]).
    accounts: Option<(String, String)>,
    /// A box-private /etc/nsswitch.conf text ([`Options::nsswitch`]).
    nsswitch: Option<String>,
}

impl Setup<'_> {
    fn run(&self) -> io::Result<()> {
        unshare(CloneFlags::CLONE_FS).map_err(|e| ctx("unshare(CLONE_FS)", e))?;
        let namespaces = [
            ("net", CloneFlags::CLONE_NEWNET),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ];
        for (ns, flag) in namespaces {
            let f = File::open(format!("/proc/{}/ns/{ns}", self.pid))?;
            setns(&f, flag).map_err(|e| ctx(&format!("setns {ns}"), e))?;
        }
        // Proof before the first mount: /proc is now the box's procfs, whose PID 1 is the box's
        // PID 1, living in the mount namespace we are in.
        let ino = fs::metadata("/proc/1/ns/mnt")?.ino();
        if ino != self.mnt_ino {
            return Err(io::Error::other(
                "setup thread is not in the box's mount ns",
            ));
        }
        self.mounts()?;
        self.write_units()
    }

    fn mounts(&self) -> io::Result<()> {
        // /run first: the box's own tmpfs, where the host's /proc can be set aside.
        mount_fs("tmpfs", "/run", SAFE, "mode=755,size=256m")?;
        self.drop_hidden_host_mounts()?;
        bind("/proc/sys", "/proc/sys", Some(RO | SAFE_NOEXEC))?;
        // A bind copies the source's read-only flag: remount explicitly without it.
        bind("/proc/sys/net", "/proc/sys/net", Some(SAFE_NOEXEC))?;
        if Path::new("/proc/sysrq-trigger").exists() {
            bind("/proc/sysrq-trigger", "/proc/sysrq-trigger", Some(RO))?;
        }
        detach("/sys");
        mount_fs("sysfs", "/sys", RO | SAFE_NOEXEC, "")?;
        mount_fs("cgroup2", "/sys/fs/cgroup", SAFE_NOEXEC, "")?;
        for d in [
            "/run/systemd/system",
            LIB,
            EMPTY,
            "/run/spyglass-sdbox/dev",
            "/run/lock",
        ] {
            fs::create_dir_all(d)?;
        }
        fs::set_permissions("/run/lock", fs::Permissions::from_mode(0o1777))?;
        if self.private_os {
            self.private_os()?;
        }
        self.dev()?;
        mount_fs("tmpfs", "/tmp", SAFE, "mode=1777")?;
        mount_fs("tmpfs", "/var/tmp", SAFE, "mode=1777")?;
        for (dir, mode) in [
            ("/var/log/journal", "mode=2755"),
            ("/var/lib/systemd", "mode=755"),
        ] {
            if Path::new(dir).is_dir() {
                mount_fs("tmpfs", dir, SAFE, mode)?;
            }
        }
        mount_fs("tmpfs", "/etc/systemd", SAFE, "mode=755")?;
        fs::create_dir_all("/etc/systemd/system")?;
        fs::write("/etc/systemd/journald.conf", JOURNALD_CONF)?;
        let hostname = "/run/spyglass-sdbox/hostname";
        fs::write(hostname, format!("{}\n", self.name))?;
        if Path::new("/etc/hostname").exists() {
            bind(hostname, "/etc/hostname", Some(RO))?;
        }
        let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid")?;
        let machine_id = "/run/spyglass-sdbox/machine-id";
        fs::write(machine_id, format!("{}\n", uuid.trim().replace('-', "")))?;
        bind(machine_id, "/etc/machine-id", Some(RO))?;
        let accounts = self
            .accounts
            .iter()
            .flat_map(|(passwd, group)| [("passwd", passwd), ("group", group)]);
        for (name, text) in accounts.chain(self.nsswitch.iter().map(|t| ("nsswitch.conf", t))) {
            let private = format!("/run/spyglass-sdbox/{name}");
            fs::write(&private, text)?;
            fs::set_permissions(&private, fs::Permissions::from_mode(0o644))?;
            bind(&private, &format!("/etc/{name}"), Some(RO))?;
        }
        Ok(())
    }

    /// Detach the host's /proc (and what is mounted below it) that the box's fresh /proc covers.
    /// Hidden mounts still count: every mount namespace a unit's sandbox makes copies them, and
    /// systemd 252 reads /proc/self/mountinfo again for each mount it makes there, so a box
    /// whose table holds the host's covered /proc, /sys and /dev trees (18 extra entries here,
    /// among them the host's ten cgroup v1 mounts) makes every sandboxed start dearer than it
    /// is on a booted host, where nothing lies under /proc, /sys or /dev.
    fn drop_hidden_host_mounts(&self) -> io::Result<()> {
        let aside = "/run/spyglass-sdbox/proc";
        fs::create_dir_all(aside)?;
        let none = None::<&str>;
        if mount(Some("/proc"), aside, none, MsFlags::MS_MOVE, none).is_err() {
            return Ok(()); // nothing moved: the box's /proc stays over the host's
        }
        detach("/proc");
        // Back on top, whether the host's went or (where the kernel refuses) stayed.
        mount(Some(aside), "/proc", none, MsFlags::MS_MOVE, none).map_err(|e| ctx("/proc", e))?;
        // The proof of setup() again: /proc is still the box's procfs.
        if fs::metadata("/proc/1/ns/mnt")?.ino() != self.mnt_ino {
            return Err(io::Error::other("/proc is not the box's after the move"));
        }
        Ok(())
    }

    /// Overlays of the host's [`OS_DIRS`] whose upper layers live in a tmpfs of the box, and an
    /// empty [`PACKAGE_UNITS`] (see the header). Runs before the mounts that belong on top.
    fn private_os(&self) -> io::Result<()> {
        // Whatever a package writes must land in an overlay: each of OS_DIRS a directory, and
        // /bin, /lib, /sbin links into /usr (merged /usr, as on Debian 12), never the host's.
        let kind = |p: &str| fs::symlink_metadata(p).map(|m| m.file_type());
        for dir in OS_DIRS {
            if !kind(dir).is_ok_and(|t| t.is_dir()) {
                return Err(io::Error::other(format!(
                    "{dir} is not a directory on the host"
                )));
            }
        }
        for link in ["/bin", "/lib", "/sbin"] {
            if kind(link).is_ok_and(|t| t.is_dir()) {
                return Err(io::Error::other(format!(
                    "{link} is not in /usr (merged /usr)"
                )));
            }
        }
        fs::create_dir_all(OS_LAYERS)?;
        mount_fs("tmpfs", OS_LAYERS, SAFE, "mode=755,size=2g")?;
        for dir in OS_DIRS {
            let layers = format!("{OS_LAYERS}/{}", dir.trim_start_matches('/'));
            let (upper, work) = (format!("{layers}/upper"), format!("{layers}/work"));
            fs::create_dir_all(&upper)?;
            fs::create_dir_all(&work)?;
            // The host directory is both the lower layer and the mount point: the box sees
            // it, and its own writes land in `upper`. No MS_NOSUID: /usr holds setuid tools.
            let opts = format!("lowerdir={dir},upperdir={upper},workdir={work}");
            mount_fs("overlay", dir, MsFlags::MS_NODEV, &opts)?;
        }
        let units = fs::canonicalize(PACKAGE_UNITS)?;
        mount_fs("tmpfs", &units.to_string_lossy(), SAFE_NOEXEC, "mode=755")
    }

    /// A minimal /dev, built aside and moved over the host's devtmpfs (seen only in the box).
    fn dev(&self) -> io::Result<()> {
        let d = "/run/spyglass-sdbox/dev";
        mount_fs("tmpfs", d, MsFlags::MS_NOSUID, "mode=755,size=4m")?;
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            File::create(format!("{d}/{n}"))?;
            bind(&format!("/dev/{n}"), &format!("{d}/{n}"), None)?;
        }
        File::create(format!("{d}/console"))?;
        bind(
            &self.console.to_string_lossy(),
            &format!("{d}/console"),
            None,
        )?;
        for sub in ["pts", "shm", "mqueue"] {
            fs::create_dir(format!("{d}/{sub}"))?;
        }
        let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        let pts_opts = "newinstance,ptmxmode=0666,mode=620,gid=5";
        mount_fs("devpts", &format!("{d}/pts"), pts_flags, pts_opts)?;
        mount_fs("tmpfs", &format!("{d}/shm"), SAFE, "mode=1777")?;
        mount_fs("mqueue", &format!("{d}/mqueue"), SAFE_NOEXEC, "")?;
        let links = [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ];
        for (name, target) in links {
            std::os::unix::fs::symlink(target, format!("{d}/{name}"))?;
        }
        let none = None::<&str>;
        // The host's devtmpfs (and its shm, pts, ...) would only lie hidden below.
        detach("/dev");
        mount(Some(d), "/dev", none, MsFlags::MS_MOVE, none).map_err(|e| ctx("/dev", e))
    }

    fn write_units(&self) -> io::Result<()> {
        let sys = Path::new("/run/systemd/system");
        for (name, text) in self.units {
            fs::write(sys.join(name), text)?;
            if name.contains("@.") {
                continue; // a template is enabled per instance, not here
            }
            for target in install_targets(text) {
                let wants = sys.join(target);
                fs::create_dir_all(&wants)?;
                std::os::unix::fs::symlink(sys.join(name), wants.join(name))?;
            }
        }
        let lib = Path::new(LIB);
        for (name, text) in lib_units(&self.journald) {
            fs::write(lib.join(name), text)?;
        }
        std::os::unix::fs::symlink("multi-user.target", lib.join("default.target"))?;
        let wants = [
            ("sockets.target.wants", "systemd-journald.socket"),
            ("sockets.target.wants", "systemd-journald-dev-log.socket"),
            ("sysinit.target.wants", "systemd-journald.service"),
        ];
        for (dir, unit) in wants {
            fs::create_dir_all(lib.join(dir))?;
            std::os::unix::fs::symlink(lib.join(unit), lib.join(dir).join(unit))?;
        }
        Ok(())
    }
}

/// `<target>.wants`/`.requires` dirs for the `[Install]` section's `WantedBy=`/`RequiredBy=`.
fn install_targets(text: &str) -> Vec<String> {
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Install]" {
            let (key, value) = line.split_once('=').unwrap_or(("", ""));
            let suffix = match key.trim() {
                "WantedBy" => ".wants",
                "RequiredBy" => ".requires",
                _ => continue,
            };
            out.extend(value.split_whitespace().map(|t| format!("{t}{suffix}")));
        }
    }
    out
}

/// Stub targets (just enough for default dependencies) and our own minimal journald units.
fn lib_units(journald: &Path) -> Vec<(String, String)> {
    let stub = |name: &str, extra: &str| {
        let text = format!("[Unit]\nDescription={name} (sdbox stub)\n{extra}");
        (name.to_string(), text)
    };
    let early = "DefaultDependencies=no\nRefuseManualStart=yes\n";
    let basic = "Requires=sysinit.target\n\
                 Wants=sockets.target timers.target paths.target slices.target\n\
                 After=sysinit.target sockets.target timers.target paths.target slices.target\n";
    let multi = "Requires=basic.target\nAfter=basic.target\n";
    let mut units = vec![
        stub("sysinit.target", ""),
        stub("basic.target", basic),
        stub("multi-user.target", multi),
        stub("shutdown.target", early),
        stub("umount.target", early),
    ];
    let plain = "sockets timers paths slices local-fs swap network network-online nss-lookup \
                 nss-user-lookup remote-fs time-set time-sync";
    for t in plain.split_whitespace() {
        units.push(stub(&format!("{t}.target"), ""));
    }
    let socket = |desc: &str, listen: &str| {
        format!(
            "[Unit]\nDescription={desc} (sdbox)\nDefaultDependencies=no\nBefore=sockets.target\n\n\
             [Socket]\n{listen}SocketMode=0666\nPassCredentials=yes\nPassSecurity=yes\n\
             ReceiveBuffer=8M\nTimestamping=us\nService=systemd-journald.service\n"
        )
    };
    let listen = "ListenDatagram=/run/systemd/journal/socket\n\
                  ListenStream=/run/systemd/journal/stdout\n";
    let dev_log = "ListenDatagram=/run/systemd/journal/dev-log\nSymlinks=/dev/log\n";
    units.push(("systemd-journald.socket".into(), socket("Journal", listen)));
    let dev_log = socket("/dev/log", dev_log);
    units.push(("systemd-journald-dev-log.socket".into(), dev_log));
    let service = format!(
        "[Unit]\nDescription=Journal Service (sdbox)\nDefaultDependencies=no\n\
         Requires=systemd-journald.socket\n\
         After=systemd-journald.socket systemd-journald-dev-log.socket\nBefore=sysinit.target\n\n\
         [Service]\nType=notify\nExecStart={}\n\
         Sockets=systemd-journald.socket systemd-journald-dev-log.socket\n\
         Restart=always\nRestartSec=0\nStandardOutput=null\nFileDescriptorStoreMax=4224\n\
         RuntimeDirectory=systemd/journal\nRuntimeDirectoryPreserve=yes\n",
        journald.display()
    );
    units.push(("systemd-journald.service".into(), service));
    units
}

fn preflight() -> Result<Host, Skip> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Skip("not root".into()));
    }
    let systemd = Path::new(SYSTEMD_DIR).join("systemd");
    let journald = Path::new(SYSTEMD_DIR).join("systemd-journald");
    for bin in [&systemd, &journald] {
        if !bin.is_file() {
            return Err(Skip(format!("{} not installed", bin.display())));
        }
    }
    for tool in "unshare nsenter setpriv timeout cat find rmdir".split(' ') {
        let found = PATH.split(':').any(|d| Path::new(d).join(tool).is_file());
        if !found {
            return Err(Skip(format!("{tool} not found in {PATH}")));
        }
    }
    if !Path::new("/etc/machine-id").is_file() {
        // systemd would create one on the host's /etc.
        return Err(Skip("the host has no /etc/machine-id".into()));
    }
    // The cgroup2 mount whose root is the hierarchy's root (mountinfo: root field "/").
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| Skip(e.to_string()))?;
    let cg2 = mountinfo.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (f.get(dash + 1) == Some(&"cgroup2") && f[3] == "/").then(|| PathBuf::from(f[4]))
    });
    let cg2 = cg2.ok_or_else(|| Skip("no cgroup2 hierarchy mounted".into()))?;
    let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| Skip(e.to_string()))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let our_cgroup = cg2.join(own.trim_start_matches('/'));
    Ok(Host {
        cg2,
        our_cgroup,
        systemd,
        journald,
    })
}

fn make_cgroup(cg2: &Path) -> Result<(String, PathBuf), Skip> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("spyglass-sdbox-{}-{n}", std::process::id());
        let path = cg2.join(&name);
        match fs::create_dir(&path) {
            Ok(()) => return Ok((name, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Skip(format!("cannot create cgroup {name}: {e}"))),
        }
    }
}

/// The host's /etc/passwd and /etc/group with the users and groups of `sysusers` added, made by
/// `systemd-sysusers --root` in a scratch directory (the host's files are only read).
fn accounts_with(sysusers: &[String]) -> Result<(String, String), Skip> {
    let root = tempfile::tempdir().map_err(|e| Skip(format!("tempdir: {e}")))?;
    let etc = root.path().join("etc");
    let conf = root.path().join("conf");
    let mut files = Vec::new();
    let made = fs::create_dir_all(&etc)
        .and_then(|()| fs::create_dir_all(&conf))
        .and_then(|()| fs::copy("/etc/passwd", etc.join("passwd")))
        .and_then(|_| fs::copy("/etc/group", etc.join("group")))
        .and_then(|_| {
            for (i, text) in sysusers.iter().enumerate() {
                let file = conf.join(format!("{i}.conf"));
                fs::write(&file, text)?;
                files.push(file);
            }
            Ok(())
        });
    made.map_err(|e| Skip(format!("staging sysusers files: {e}")))?;
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .args(&files)
        .env_clear()
        .env("PATH", PATH)
        .output()
        .map_err(|e| Skip(format!("systemd-sysusers: {e}")))?;
    assert!(
        out.status.success(),
        "systemd-sysusers refused the sysusers files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| fs::read_to_string(etc.join(name)).expect("sysusers output");
    Ok((read("passwd"), read("group")))
}

/// Detached watchdog in its own process group: on EOF of its stdin (the test process is gone)
/// or after `ttl`, kill everything in the box cgroup and remove the subtree.
fn spawn_watchdog(cgroup: &Path, ttl: Duration) -> Child {
    let script = r#"cg=$1
timeout --foreground "$2" cat >/dev/null
echo 1 > "$cg/cgroup.kill" || find "$cg" -name cgroup.procs -exec cat {} + | xargs -r kill -9
i=0
while [ $i -lt 300 ] && grep -q 'populated 1' "$cg/cgroup.events"; do sleep 0.05; i=$((i+1)); done
find "$cg" -depth -type d -exec rmdir {} +
"#;
    Command::new("/bin/sh")
        .args(["-c", script, "sdbox-watchdog"])
        .arg(cgroup)
        .arg(ttl.as_secs().max(1).to_string())
        .env_clear()
        .env("PATH", PATH)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the sdbox watchdog")
}

/// A pty whose fds are close-on-exec from the start (other threads spawn processes meanwhile).
fn open_console_pty() -> nix::Result<(PtyMaster, File, PathBuf)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let path = PathBuf::from(ptsname_r(&master)?);
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok((master, slave, path))
}

fn spawn_console_reader(mut master: PtyMaster, sink: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once no slave fd is open (the box is gone and Drop closed ours).
        while let Ok(n @ 1..) = master.read(&mut buf) {
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            s.extend_from_slice(&buf[..n]);
            if s.len() > CONSOLE_KEEP {
                let cut = s.len() - CONSOLE_KEEP;
                s.drain(..cut);
            }
        }
    });
}

/// Fields after "pid (comm) " of /proc/PID/stat: state, ppid, ...
fn parent_of(pid: Pid) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

fn child_of(parent: i32) -> Option<Pid> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = Pid::from_raw(e.file_name().to_str()?.parse().ok()?);
        (parent_of(pid) == Some(parent)).then_some(pid)
    })
}

/// Panics unless the box's PID 1 sits in namespaces other than ours; returns its mnt ns inode.
fn assert_new_namespaces(pid: Pid) -> u64 {
    let ino = |p: String| {
        fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .ino()
    };
    for ns in ["mnt", "net", "uts", "ipc", "cgroup", "pid"] {
        let ours = ino(format!("/proc/self/ns/{ns}"));
        let theirs = ino(format!("/proc/{pid}/ns/{ns}"));
        assert_ne!(
            ours, theirs,
            "box PID 1 {pid} shares our {ns} namespace: stop"
        );
    }
    ino(format!("/proc/{pid}/ns/mnt"))
}

fn remove_cgroup_tree(root: &Path) -> bool {
    fn dirs(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs(&e.path(), out);
            }
        }
        out.push(d.to_path_buf());
    }
    if !root.exists() {
        return true;
    }
    let mut all = Vec::new();
    dirs(root, &mut all); // children before parents
    for d in all {
        let _ = fs::remove_dir(d);
    }
    !root.exists()
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let md = fs::metadata(src)?;
    if md.is_dir() {
        fs::create_dir_all(dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else if md.mode() & 0o111 != 0 {
        // An executable is copied by `cp`, never through a descriptor of this process: a
        // child that another test thread forks meanwhile would inherit that descriptor until
        // its exec, and the file's exec would fail with ETXTBSY ("Text file busy").
        let out = Command::new("cp").arg("--").arg(src).arg(dst).output()?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(io::Error::other(format!("cp {}: {why}", src.display())));
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(0o755))
    } else {
        fs::copy(src, dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o644))
    }
}

fn ctx(what: &str, e: nix::Error) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// Mount a fresh `fstype` filesystem (source name = type) with `opts` ("" for none).
fn mount_fs(fstype: &str, target: &str, flags: MsFlags, opts: &str) -> io::Result<()> {
    let data = (!opts.is_empty()).then_some(opts);
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|e| ctx(target, e))
}

/// Lazily unmount `target` and everything below it, in the box's mount namespace only (it was
/// made with private propagation: nothing reaches the host's). Best effort: where the kernel
/// refuses (mounts locked by a container's user namespace), the box's own mount goes on top of
/// the host's, as it did before, and only the sandbox's cost is higher.
fn detach(target: &str) {
    if let Err(e) = umount2(target, MntFlags::MNT_DETACH) {
        eprintln!("sdbox: the host's {target} stays below the box's: {e}");
    }
}

/// Bind `src` on `target`; `Some(flags)` then remounts the bind with exactly those flags.
fn bind(src: &str, target: &str, remount: Option<MsFlags>) -> io::Result<()> {
    let none = None::<&str>;
    mount(Some(src), target, none, MsFlags::MS_BIND, none).map_err(|e| ctx(target, e))?;
    let Some(flags) = remount else { return Ok(()) };
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    mount(none, target, none, flags, none).map_err(|e| ctx(target, e))
}
