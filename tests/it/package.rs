//! The Debian package (issue 13), as `cargo deb` builds it from the repository.
//!
//! It holds the binary, every unit in `systemd/`, the manual pages, the completions, the CGI
//! drop-in as an example, the README, the copyright and changelog, and nothing else. Installed
//! with apt in a real-systemd box (with private copies of everything dpkg writes:
//! [`Options::private_os`]) it enables and starts nothing; once the admin enables the socket it
//! serves and idles out; an upgrade re-executes a running spyglass in place; `apt remove` stops
//! what runs and `apt purge` leaves nothing behind. The host's files, units and package
//! database are the same afterwards.
//!
//! Building the package needs cargo-deb (`tools/debian-deps cargo test` installs it); without
//! it, or where the box cannot boot, the tests say they were skipped (a failure under
//! `SPYGLASS_REQUIRE_SYSTEMD=1`, as in CI).

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::sdbox::{Options, SdBox, require_or_skip};
use crate::support::*;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `ListenStream=` of the shipped socket unit.
const ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
const T: Duration = Duration::from_secs(30);

/// The packages `cargo deb` built for this test run: the release (`VERSION-1`) and the same
/// binary as a later revision (`VERSION-2`), for the upgrade.
struct Debs {
    first: PathBuf,
    upgrade: PathBuf,
}

/// Build the packages once per test run, or `None` after [`require_or_skip`].
fn debs() -> Option<&'static Debs> {
    static BUILT: OnceLock<Result<Debs, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(debs) => Some(debs),
        Err(why) => {
            require_or_skip(why);
            None
        }
    }
}

fn build() -> Result<Debs, String> {
    let cargo = env!("CARGO");
    let probe = Command::new(cargo).args(["deb", "--version"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err(
            "the package tests need cargo-deb (`tools/debian-deps cargo test` \
                    installs it)"
                .into(),
        );
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    let _ = fs::remove_dir_all(&dir);
    let deb = |extra: &[&str], out: &str| {
        let out_dir = dir.join(out);
        fs::create_dir_all(&out_dir).unwrap();
        let run = Command::new(cargo)
            .args(["deb", "--output"])
            .arg(&out_dir)
            .args(extra)
            .current_dir(MANIFEST_DIR)
            .output()
            .expect("run cargo deb");
        assert!(
            run.status.success(),
            "cargo deb {extra:?}:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let debs: Vec<PathBuf> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        assert_eq!(debs.len(), 1, "{debs:?}");
        debs[0].clone()
    };
    let first = deb(&[], "first");
    let upgrade = deb(
        &["--no-build", "--deb-version", &format!("{VERSION}-2")],
        "upgrade",
    );
    Ok(Debs { first, upgrade })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The unit files in the repository's `systemd/` (templates included once they land).
fn repo_units() -> BTreeSet<String> {
    fs::read_dir(Path::new(MANIFEST_DIR).join("systemd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".socket") || n.ends_with(".service"))
        .collect()
}

/// The newest glibc version `binary` asks for (`readelf -V`: its version needs on
/// libc.so.6), counting `GLIBC_ABI_DT_RELR`, which packed relative relocations need and
/// glibc 2.36 introduced; it names no symbol, so dpkg-shlibdeps misses it.
fn glibc_needed(binary: &Path) -> (u32, u32) {
    let listing = run(Command::new("readelf").arg("-V").arg("-W").arg(binary));
    let needs: Vec<(u32, u32)> = listing
        .split_whitespace()
        .filter_map(|word| match word {
            "GLIBC_ABI_DT_RELR" => Some((2, 36)),
            _ => version_pair(word.strip_prefix("GLIBC_")?),
        })
        .collect();
    assert!(!needs.is_empty(), "no glibc version needs in:\n{listing}");
    needs.into_iter().max().unwrap()
}

/// The highest `libc6 (>= X.Y)` in a Depends field; (0, 0) without one.
fn libc6_minimum(depends: &str) -> (u32, u32) {
    depends
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("libc6 (>= ")?.strip_suffix(')'))
        .filter_map(version_pair)
        .max()
        .unwrap_or((0, 0))
}

/// "2.36" (or "2.3.4", "2.36-9") as (2, 36).
fn version_pair(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The files (not directories) a package installs, as absolute paths.
fn package_files(deb: &Path) -> BTreeSet<String> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

#[test]
fn the_package_holds_the_binary_units_pages_and_completions() {
    let Some(debs) = debs() else { return };
    let deb = &debs.first;
    let size = fs::metadata(deb).unwrap().len();
    let field = |name: &str| {
        run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
            .trim()
            .to_owned()
    };
    eprintln!(
        "{}: {size} bytes, Installed-Size {} KiB, Depends: {}",
        deb.display(),
        field("Installed-Size"),
        field("Depends")
    );
    assert_eq!(field("Package"), "spyglass");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));

    // Exactly these files: nothing missing, nothing else (no fixtures, no debug files).
    let mut want: BTreeSet<String> = [
        "/usr/bin/spyglass",
        "/usr/share/doc/spyglass/README.md",
        "/usr/share/doc/spyglass/copyright",
        "/usr/share/doc/spyglass/changelog.Debian.gz",
        "/usr/share/doc/spyglass/examples/cgi.conf",
        "/usr/lib/sysusers.d/spyglass.conf",
        "/usr/share/doc/spyglass/examples/nginx.conf",
        "/usr/share/doc/spyglass/examples/Caddyfile",
        "/usr/share/bash-completion/completions/spyglass",
        "/usr/share/zsh/vendor-completions/_spyglass",
        "/usr/share/fish/vendor_completions.d/spyglass.fish",
        "/usr/share/lintian/overrides/spyglass",
    ]
    .map(str::to_owned)
    .into();
    let units = repo_units();
    assert!(units.contains("spyglass.socket") && units.contains("spyglass.service"));
    want.extend(units.iter().map(|u| format!("/usr/lib/systemd/system/{u}")));
    for page in fs::read_dir(Path::new(MANIFEST_DIR).join("doc")).unwrap() {
        let name = page.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") {
            want.insert(format!("/usr/share/man/man1/{name}.gz"));
        }
    }
    assert_eq!(package_files(deb), want);

    // What they say: the units and pages as in the repository, the units starting the
    // packaged binary, the changelog at the package's version.
    let root = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(root.path()));
    let repo = Path::new(MANIFEST_DIR);
    for unit in &units {
        let shipped = fs::read_to_string(root.path().join("usr/lib/systemd/system").join(unit));
        let text = fs::read_to_string(repo.join("systemd").join(unit)).unwrap();
        assert_eq!(shipped.unwrap(), text, "{unit}");
    }
    let sysusers = fs::read_to_string(root.path().join("usr/lib/sysusers.d/spyglass.conf"));
    let text = fs::read_to_string(repo.join("systemd/spyglass.sysusers")).unwrap();
    assert_eq!(sysusers.unwrap(), text, "sysusers.d/spyglass.conf");
    let cgi = root.path().join("usr/share/doc/spyglass/examples/cgi.conf");
    let mut execs = 0;
    for file in units
        .iter()
        .map(|u| root.path().join("usr/lib/systemd/system").join(u))
        .chain([cgi])
    {
        for line in fs::read_to_string(&file).unwrap().lines() {
            if let Some(cmd) = line.strip_prefix("ExecStart=").filter(|c| !c.is_empty()) {
                // `@BINARY ARGV0 ARGS`: the template names its process.
                let cmd = cmd.strip_prefix('@').unwrap_or(cmd);
                assert!(
                    cmd.starts_with("/usr/bin/spyglass "),
                    "{}: {line}",
                    file.display()
                );
                execs += 1;
            }
        }
    }
    assert!(execs >= 2, "ExecStart= lines: {execs}");
    let gunzip = |path: &str| run(Command::new("gzip").arg("-dc").arg(root.path().join(path)));
    let page = gunzip("usr/share/man/man1/spyglass.1.gz");
    assert_eq!(
        page,
        fs::read_to_string(repo.join("doc/spyglass.1")).unwrap()
    );
    let changelog = gunzip("usr/share/doc/spyglass/changelog.Debian.gz");
    let first = changelog.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!("spyglass ({VERSION}-1) ")),
        "debian/changelog's first entry is not this version: {first}"
    );
    let mode = fs::metadata(root.path().join("usr/bin/spyglass"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let needs = glibc_needed(&root.path().join("usr/bin/spyglass"));
    let promised = libc6_minimum(&field("Depends"));
    assert!(
        promised >= needs,
        "the binary needs glibc {needs:?}, Depends promises libc6 {promised:?}: {}",
        field("Depends")
    );

    // The maintainer scripts: cargo-deb's snippets once each, our upgrade reload, no start.
    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(control.path()));
    let script = |name: &str| {
        let path = control.path().join(name);
        run(Command::new("sh").arg("-n").arg(&path));
        fs::read_to_string(path).unwrap()
    };
    let postinst = script("postinst");
    for unit in ["spyglass.socket", "spyglass.service"] {
        let state = format!("deb-systemd-helper update-state {unit} ");
        assert_eq!(postinst.matches(&state).count(), 1, "{unit}:\n{postinst}");
    }
    assert!(postinst.contains("deb-systemd-invoke try-reload-or-restart spyglass.service "));
    assert!(
        postinst.contains("systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} spyglass.conf")
    );
    // And the running sites of the templates, which cargo-deb's snippets skip.
    assert!(units.contains("spyglass@.socket") && units.contains("spyglass@.service"));
    assert!(postinst.contains("deb-systemd-invoke try-reload-or-restart 'spyglass@*.service' "));
    let code: String = postinst
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for start in [
        "invoke start",
        "invoke restart",
        "systemctl start",
        "systemctl enable",
    ] {
        assert!(!code.contains(start), "postinst: {start}");
    }
    let prerm = script("prerm");
    assert!(prerm.contains("deb-systemd-invoke stop spyglass.service spyglass.socket "));
    assert!(prerm.contains("deb-systemd-invoke stop 'spyglass@*.socket' 'spyglass@*.service' "));
    let postrm = script("postrm");
    assert!(postrm.contains("deb-systemd-helper purge spyglass.service spyglass.socket "));
    assert!(postrm.contains("-lname '*/spyglass@.socket'"));
    for name in ["prerm", "postrm"] {
        assert_eq!(
            script(name)
                .matches("Automatically added by cargo-deb")
                .count(),
            { if name == "prerm" { 1 } else { 2 } },
            "{name}"
        );
    }
}

/// What a path on the host is: absent, or its size, change time and inode.
fn host_state(path: &str) -> Option<(u64, i64, i64, u64)> {
    fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.len(), m.mtime(), m.ctime(), m.ino()))
}

/// Everything the package would touch on the host, as it is now.
fn host_snapshot(files: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = files
        .iter()
        .map(|f| format!("{f}: {:?}", host_state(f)))
        .collect();
    for dir in [
        "/lib/systemd/system",
        "/etc/systemd/system",
        "/var/lib/dpkg/info",
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ] {
        let find = Command::new("find")
            .args([dir, "-name", "*spyglass*"])
            .output()
            .expect("find");
        for path in String::from_utf8_lossy(&find.stdout).lines() {
            out.push(format!("{path}: {:?}", host_state(path)));
        }
    }
    let dpkg = Command::new("dpkg")
        .args(["-s", "spyglass"])
        .output()
        .expect("dpkg");
    out.push(format!("dpkg -s spyglass: {dpkg:?}"));
    out
}

fn apt(sd: &SdBox, args: &str) -> String {
    sd.sh(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends {args} 2>&1"
    ))
}

/// One GET on a new connection: the status and body, or None.
fn get(sd: &SdBox, path: &str) -> Option<(u16, String)> {
    let mut s = sd.connect_tcp(SocketAddr::from(ADDR)).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.get(9..12)?.parse().ok()?, body.to_owned()))
}

/// Processes in the box whose name is `spyglass`.
fn spyglass_processes(sd: &SdBox) -> Vec<String> {
    let out = sd.exec(&["sh", "-c", "grep -lx spyglass /proc/[0-9]*/comm || true"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_quiet(sd: &SdBox, when: &str) {
    for unit in ["spyglass.socket", "spyglass.service"] {
        assert_eq!(sd.show(unit, "ActiveState"), "inactive", "{unit} {when}");
    }
    assert_eq!(spyglass_processes(sd), Vec::<String>::new(), "{when}");
    let refused = sd.connect_tcp(SocketAddr::from(ADDR));
    assert!(refused.is_err(), "something listens on :8080 {when}");
}

#[test]
fn installed_with_apt_it_starts_nothing_serves_and_purges_clean() {
    let Some(debs) = debs() else { return };
    let files = package_files(&debs.first);
    let before = host_snapshot(&files);
    let opts = Options {
        private_os: true,
        ..Options::default()
    };
    let Some(sd) = SdBox::boot_with(&[], opts)
        .map_err(|s| require_or_skip(&s.0))
        .ok()
    else {
        return;
    };
    // A container's /usr/sbin/policy-rc.d (exit 101) would keep deb-systemd-invoke from
    // stopping anything on removal; a real host has none. Box-private, like all of /usr here.
    sd.sh("rm -f /usr/sbin/policy-rc.d");
    sd.stage(&debs.first, "/run/spyglass-test/first/spyglass.deb")
        .unwrap();
    sd.stage(&debs.upgrade, "/run/spyglass-test/upgrade/spyglass.deb")
        .unwrap();

    // 1. Installed: in place, and nothing enabled, started or listening.
    apt(&sd, "install /run/spyglass-test/first/spyglass.deb");
    assert!(
        sd.sh("dpkg -s spyglass")
            .contains("Status: install ok installed")
    );
    // The service's [Install] has only Also=spyglass.socket: "indirect" is its disabled.
    for (unit, state) in [
        ("spyglass.socket", "disabled"),
        ("spyglass.service", "indirect"),
    ] {
        let enabled = sd.systemctl(&["is-enabled", unit]);
        assert_eq!(
            String::from_utf8_lossy(&enabled.stdout).trim(),
            state,
            "{unit}"
        );
    }
    assert_quiet(&sd, "after install");
    assert_eq!(sd.sh("find /etc/systemd/system -name '*spyglass*'"), "");
    assert_eq!(
        host_snapshot(&files),
        before,
        "the host sees the box's install"
    );
    assert!(
        sd.show("spyglass.service", "ExecStart")
            .contains("path=/usr/bin/spyglass ")
    );
    let version = sd.sh("spyglass --version");
    assert!(
        version.starts_with(&format!("spyglass {VERSION}")),
        "{version}"
    );
    let page = sd.sh("MANPAGER=cat MANWIDTH=80 man spyglass 2>&1");
    assert!(page.contains("EXIT STATUS"), "{page}");
    let bash = sd
        .sh("bash -c '. /usr/share/bash-completion/completions/spyglass && complete -p spyglass'");
    assert!(bash.contains("_spyglass"), "{bash}");

    // 2. The admin's part: a site, a shorter idle timeout (a drop-in), the socket enabled.
    sd.sh(
        "mkdir -p /srv/www /etc/systemd/system/spyglass.service.d && \
         printf 'hello\\n' > /srv/www/hello.txt && chmod -R a+rX /srv/www && \
         printf '[Service]\\nEnvironment=SPYGLASS_IDLE_TIMEOUT=2s\\n' \
           > /etc/systemd/system/spyglass.service.d/idle.conf && \
         systemctl daemon-reload && systemctl enable --now spyglass.socket",
    );
    assert_eq!(sd.show("spyglass.socket", "SubState"), "listening");
    assert_eq!(sd.show("spyglass.service", "ActiveState"), "inactive");
    let link = "/etc/systemd/system/sockets.target.wants/spyglass.socket";
    assert_eq!(
        sd.sh(&format!("readlink {link}")).trim(),
        "/usr/lib/systemd/system/spyglass.socket"
    );

    // 3. A request starts the packaged binary; idle, it exits and the socket stays.
    assert_eq!(get(&sd, "/hello.txt"), Some((200, "hello\n".into())));
    let main = sd.show("spyglass.service", "MainPID");
    let exe = sd.sh(&format!("readlink /proc/{main}/exe"));
    assert_eq!(exe.trim(), "/usr/bin/spyglass");
    assert!(
        wait_until(T, || sd.show("spyglass.service", "ActiveState")
            == "inactive"),
        "no idle exit"
    );
    assert_eq!(sd.show("spyglass.service", "Result"), "success");
    assert_eq!(sd.show("spyglass.socket", "SubState"), "listening");

    // A site of the templates, added as the README says, awake for good.
    sd.sh(
        "mkdir -p /srv/www/blog /etc/systemd/system/spyglass@.service.d && \
         printf 'blog\\n' > /srv/www/blog/hello.txt && chmod -R a+rX /srv/www && \
         printf '[Service]\\nEnvironment=SPYGLASS_IDLE_TIMEOUT=infinity\\n' \
           > /etc/systemd/system/spyglass@.service.d/idle.conf && \
         systemctl daemon-reload && systemctl enable --now spyglass@blog.socket",
    );
    let blog = || sd.sh("curl -sS --unix-socket /run/spyglass/blog.sock http://blog/hello.txt");
    assert_eq!(blog(), "blog\n");
    let blog_main = sd.show("spyglass@blog.service", "MainPID");

    // 4. An upgrade while it runs: the same process re-executes the new binary (SIGHUP),
    //    the socket is not restarted, and it goes on serving. The site too.
    sd.sh(
        "printf '[Service]\\nEnvironment=SPYGLASS_IDLE_TIMEOUT=infinity\\n' \
           > /etc/systemd/system/spyglass.service.d/idle.conf && systemctl daemon-reload",
    );
    assert_eq!(get(&sd, "/hello.txt"), Some((200, "hello\n".into())));
    let main = sd.show("spyglass.service", "MainPID");
    let socket_since = sd.show("spyglass.socket", "ActiveEnterTimestampMonotonic");
    apt(&sd, "install /run/spyglass-test/upgrade/spyglass.deb");
    let exe = || {
        sd.sh(&format!("readlink /proc/{main}/exe"))
            .trim()
            .to_owned()
    };
    assert!(
        wait_until(T, || exe() == "/usr/bin/spyglass"),
        "still running the replaced binary: {}",
        exe()
    );
    assert_eq!(
        sd.show("spyglass.service", "MainPID"),
        main,
        "restarted, not reloaded"
    );
    let journal = sd.journalctl(&["-u", "spyglass.service", "-o", "cat"]);
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert!(
        journal.contains("reloading: executing the binary on disk"),
        "{journal}"
    );
    assert_eq!(
        sd.show("spyglass.socket", "ActiveEnterTimestampMonotonic"),
        socket_since,
        "the socket was restarted"
    );
    assert_eq!(get(&sd, "/hello.txt"), Some((200, "hello\n".into())));
    let exe = sd.sh(&format!("readlink /proc/{blog_main}/exe"));
    assert_eq!(
        exe.trim(),
        "/usr/bin/spyglass",
        "the site runs the new binary"
    );
    assert_eq!(sd.show("spyglass@blog.service", "MainPID"), blog_main);
    let journal = sd.journalctl(&["-u", "spyglass@blog", "-o", "cat"]);
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert!(
        journal.contains("reloading: executing the binary on disk"),
        "{journal}"
    );
    assert_eq!(blog(), "blog\n");

    // 5. apt remove: what ran is stopped, the binary is gone.
    apt(&sd, "remove spyglass");
    assert_quiet(&sd, "after apt remove");
    for unit in ["spyglass@blog.socket", "spyglass@blog.service"] {
        assert_eq!(sd.show(unit, "ActiveState"), "inactive", "{unit}");
    }
    sd.sh("test ! -e /run/spyglass/blog.sock");
    sd.sh("test ! -e /usr/bin/spyglass");
    assert!(
        sd.sh("dpkg -s spyglass || true")
            .contains("Status: deinstall ok config-files")
    );

    // 6. apt purge: no enablement link, no helper state, no package record, no file.
    apt(&sd, "purge spyglass");
    let left =
        sd.sh("find /etc/systemd/system /var/lib/systemd /var/lib/dpkg/info -name '*spyglass*'");
    // Only the admin's own drop-in directories, which are theirs to keep or remove.
    let left: BTreeSet<&str> = left.lines().collect();
    assert_eq!(
        left,
        BTreeSet::from([
            "/etc/systemd/system/spyglass.service.d",
            "/etc/systemd/system/spyglass@.service.d",
        ]),
        "left after purge"
    );
    let list: Vec<String> = files.iter().map(|f| format!("'{f}'")).collect();
    let left = sd.sh(&format!(
        "for f in {}; do test ! -e \"$f\" || echo \"$f\"; done",
        list.join(" ")
    ));
    assert_eq!(left, "", "left after purge");
    let dpkg = sd.exec(&["dpkg", "-s", "spyglass"]);
    assert!(!dpkg.status.success(), "{dpkg:?}");
    assert!(String::from_utf8_lossy(&dpkg.stderr).contains("is not installed"));
    drop(sd);

    // The host saw none of it.
    assert_eq!(host_snapshot(&files), before);
}
