//! Many sites on one host (issue 12), under real systemd 252: the shipped
//! template units, verbatim, in an [`SdBox`] with private /etc, /srv and
//! /usr ([`Options::private_os`]), the binary under test copied to
//! /usr/bin/spyglass there, sites in /srv/www/NAME and their flags in
//! /etc/spyglass/NAME.env, added with `systemctl enable --now
//! spyglass@NAME.socket`; Debian's nginx in front of them as a unit of its
//! own, with a configuration generated here and every path it writes in
//! the box's /run.
//!
//! Skipped (with a message) where the machine cannot boot systemd in
//! namespaces or has no nginx, unless `SPYGLASS_REQUIRE_SYSTEMD=1`.

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sdbox::{Options, SdBox, require_or_skip};
use crate::support::*;
use crate::units::shipped;

const T: Duration = Duration::from_secs(30);
/// Where the front proxy listens, in the box.
const FRONT: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
const NGINX: &str = "/usr/sbin/nginx";

/// A box with the template units installed and the binary in /usr/bin.
pub struct Host {
    pub sd: SdBox,
}

impl Host {
    /// Boot a box with the shipped templates and `extra` units; `None`
    /// after [`require_or_skip`].
    pub fn boot(extra: Vec<(&str, String)>, ttl: Duration) -> Option<Host> {
        let mut units = vec![
            ("spyglass@.socket", shipped("spyglass@.socket")),
            ("spyglass@.service", shipped("spyglass@.service")),
        ];
        units.extend(extra);
        let opts = Options {
            ttl,
            private_os: true,
            ..Options::default()
        };
        let sd = SdBox::boot_with(&units, opts)
            .map_err(|s| require_or_skip(&s.0))
            .ok()?;
        let host = Host { sd };
        // Everything written below lands in the box's own overlays: prove
        // it before the first write.
        let mounts = format!("/proc/{}/mountinfo", host.sd.host_pid());
        let mounts = fs::read_to_string(mounts).unwrap();
        for dir in ["/etc", "/srv", "/usr"] {
            let overlay = mounts.lines().any(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.get(4) == Some(&dir) && l.contains(" - overlay ")
            });
            assert!(overlay, "{dir} is not the box's own overlay:\n{mounts}");
        }
        host.sd
            .stage(&spyglass(), "/run/spyglass-test/spyglass")
            .expect("stage binary");
        host.sh("install -m 755 /run/spyglass-test/spyglass /usr/bin/spyglass");
        Some(host)
    }

    /// `sh -c SCRIPT` in the box; its stdout, after asserting success.
    pub fn sh(&self, script: &str) -> String {
        self.sd.sh(script)
    }

    /// A path in the box, seen from here.
    pub fn path(&self, box_path: &str) -> PathBuf {
        self.sd.root().join(box_path.trim_start_matches('/'))
    }

    /// Write a file in the box (its private /etc, /srv or /run), mode `mode`.
    pub fn write(&self, box_path: &str, text: &str, mode: u32) {
        let ok = [
            "/etc/spyglass/",
            "/etc/systemd/system/",
            "/srv/www/",
            "/run/",
        ]
        .iter()
        .any(|p| box_path.starts_with(p));
        assert!(ok && !box_path.contains(".."), "{box_path}");
        let path = self.path(box_path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A site: /srv/www/NAME with an index.html naming it, and its flags.
    pub fn site(&self, name: &str, env: &[(&str, &str)]) {
        self.write(
            &format!("/srv/www/{name}/index.html"),
            &format!("site {name}\n"),
            0o644,
        );
        if !env.is_empty() {
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            self.write(&format!("/etc/spyglass/{name}.env"), &text, 0o600);
        }
    }

    /// `systemctl show -p PROPERTY --value spyglass@NAME.service`.
    pub fn service(&self, name: &str, property: &str) -> String {
        self.sd.show(&format!("spyglass@{name}.service"), property)
    }

    /// `systemctl show -p PROPERTY --value spyglass@NAME.socket`.
    pub fn socket(&self, name: &str, property: &str) -> String {
        self.sd.show(&format!("spyglass@{name}.socket"), property)
    }

    pub fn wait_asleep(&self, name: &str) -> bool {
        wait_until(T, || self.service(name, "ActiveState") == "inactive")
    }

    /// Processes in the box whose name is `spyglass`.
    pub fn spyglass_processes(&self) -> usize {
        let out = self
            .sd
            .exec(&["sh", "-c", "grep -lx spyglass /proc/[0-9]*/comm || true"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// One GET straight to the site's Unix socket.
    pub fn get_site(&self, name: &str, path: &str) -> Option<(u16, String)> {
        let sock = self.path(&format!("/run/spyglass/{name}.sock"));
        let s = UnixStream::connect(sock).ok()?;
        exchange(s, "site", path)
    }

    /// One GET through the front proxy, for virtual host `host`.
    pub fn get_front(&self, host: &str, path: &str) -> Option<(u16, String)> {
        let s = self.sd.connect_tcp(SocketAddr::from(FRONT)).ok()?;
        exchange(s, host, path)
    }

    /// `journalctl -u UNIT ARGS -o cat`.
    pub fn journal(&self, unit: &str, args: &[&str]) -> String {
        let all = [&["-u", unit, "-o", "cat"], args].concat();
        String::from_utf8_lossy(&self.sd.journalctl(&all).stdout).into_owned()
    }
}

/// One request on a fresh connection: the status and body, or None if the
/// connection ended without a complete response.
pub fn exchange<S: Read + Write + Timeouts>(
    mut s: S,
    host: &str,
    path: &str,
) -> Option<(u16, String)> {
    s.timeouts(T);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    let field = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Some((status, dechunk(body)?));
    }
    let len: usize = field("content-length")?.parse().ok()?;
    (body.len() == len).then(|| (status, body.to_owned()))
}

/// A complete chunked body, decoded; None if it was cut short.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Read and write timeouts on either kind of stream.
pub trait Timeouts {
    fn timeouts(&mut self, t: Duration);
}

impl Timeouts for UnixStream {
    fn timeouts(&mut self, t: Duration) {
        let _ = self.set_read_timeout(Some(t));
        let _ = self.set_write_timeout(Some(t));
    }
}

impl Timeouts for std::net::TcpStream {
    fn timeouts(&mut self, t: Duration) {
        let _ = self.set_read_timeout(Some(t));
        let _ = self.set_write_timeout(Some(t));
    }
}

/// The documented nginx configuration (examples/front/nginx.conf).
pub fn documented_nginx() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/front/nginx.conf");
    fs::read_to_string(path).unwrap()
}

/// nginx in front of `sites`: the documented server block once per site
/// (its name, `NAME.example.com`, its socket), listening on [`FRONT`]
/// instead of port 80, in a main configuration whose every path (pid file,
/// temporary files) is in the box's /run/front and whose log is stderr.
pub fn nginx_conf(sites: &[&str]) -> String {
    let doc = documented_nginx();
    let block = &doc[doc.find("server {").expect("a server block")..];
    let listen = "    listen 80;\n    listen [::]:80;\n";
    assert!(
        block.contains(listen),
        "the documented listen lines changed"
    );
    for needle in ["blog.example.com", "/run/spyglass/blog.sock"] {
        assert!(block.contains(needle), "the documented {needle} changed");
    }
    let servers: String = sites
        .iter()
        .map(|name| {
            block
                .replace(listen, &format!("    listen 127.0.0.1:{};\n", FRONT.1))
                .replace("blog.example.com", &format!("{name}.example.com"))
                .replace(
                    "/run/spyglass/blog.sock",
                    &format!("/run/spyglass/{name}.sock"),
                )
        })
        .collect();
    format!(
        "# tests/it/hosting.rs: the sites' front proxy, every path in /run/front.\n\
         daemon off;\npid /run/front/nginx.pid;\nerror_log stderr notice;\n\
         worker_processes 1;\nevents {{ worker_connections 512; }}\n\
         http {{\n    access_log off;\n\
         client_body_temp_path /run/front/client_body;\n\
         proxy_temp_path /run/front/proxy;\nfastcgi_temp_path /run/front/fastcgi;\n\
         uwsgi_temp_path /run/front/uwsgi;\nscgi_temp_path /run/front/scgi;\n\
         # A host name no site has.\n\
         server {{ listen 127.0.0.1:{port} default_server; return 421; }}\n\
         {servers}}}\n",
        port = FRONT.1
    )
}

/// The front proxy's unit: nginx as www-data (the group the sites'
/// sockets admit), its configuration in /run/front-conf, and nothing it
/// may write but its runtime directory.
pub fn front_unit() -> (&'static str, String) {
    let text = format!(
        "[Unit]\nDescription=nginx in front of the sites (tests/it/hosting.rs)\n\n\
         [Service]\nExecStart={NGINX} -e stderr -c /run/front-conf/nginx.conf\n\
         User=www-data\nGroup=www-data\nRuntimeDirectory=front\n\
         ProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n"
    );
    ("front.service", text)
}

/// nginx is installed (tools/debian-deps installs it for `cargo test`);
/// else a skip, or a failure under `SPYGLASS_REQUIRE_SYSTEMD=1`.
pub fn have_nginx() -> bool {
    if Path::new(NGINX).is_file() {
        return true;
    }
    require_or_skip("no nginx (`tools/debian-deps cargo test` installs it)");
    false
}

impl Host {
    /// Write nginx's configuration for `sites`, start it and wait until it
    /// listens.
    pub fn start_front(&self, sites: &[&str]) {
        self.write("/run/front-conf/nginx.conf", &nginx_conf(sites), 0o644);
        self.sh("systemctl start front.service");
        let up = wait_until(T, || self.sd.connect_tcp(SocketAddr::from(FRONT)).is_ok());
        assert!(
            up,
            "nginx does not listen: {}",
            self.journal("front.service", &[])
        );
    }

    /// `systemctl enable --now` the sockets of `sites`: the whole of adding
    /// them.
    pub fn enable(&self, sites: &[&str]) {
        let units: Vec<String> = sites
            .iter()
            .map(|s| format!("spyglass@{s}.socket"))
            .collect();
        self.sh(&format!("systemctl enable --now {}", units.join(" ")));
    }
}

/// Point 2: three template instances behind a real nginx under real
/// systemd. Each site wakes on its own first request, answers through the
/// proxy, goes back to zero; requests to one never wake another; each
/// site's journal holds its own events alone.
#[test]
fn three_sites_behind_nginx_wake_alone_and_sleep_again() {
    if !have_nginx() {
        return;
    }
    let Some(h) = Host::boot(vec![front_unit()], crate::sdbox::DEFAULT_TTL) else {
        return;
    };
    let sites = ["alpha", "bravo", "charlie"];
    for s in sites {
        let mut env = vec![("SPYGLASS_IDLE_TIMEOUT", "2s"), ("SPYGLASS_WORKERS", "1")];
        if s == "alpha" {
            // As the README says: the client's address from nginx's
            // X-Forwarded-For, believed from the socket's peers.
            env.push(("SPYGLASS_TRUSTED_PROXY", "unix"));
        }
        h.site(s, &env);
    }
    h.enable(&sites);
    h.start_front(&sites);
    for s in sites {
        assert_eq!(h.socket(s, "SubState"), "listening", "{s}");
        assert_eq!(h.service(s, "ActiveState"), "inactive", "{s}");
        let mode = h.sh(&format!("stat -c '%a %U %G' /run/spyglass/{s}.sock"));
        assert_eq!(mode.trim(), "660 root www-data", "{s}");
    }
    assert_eq!(h.spyglass_processes(), 0, "asleep before any request");

    // Each site wakes on its own first request; the others sleep on.
    for (i, s) in sites.iter().enumerate() {
        let host = format!("{s}.example.com");
        let got = h.get_front(&host, "/");
        assert_eq!(got, Some((200, format!("site {s}\n"))), "{s}");
        // Its workers answer as soon as they boot, so the answer may come
        // before systemd has READY=1 (the site is "activating" until then).
        assert!(
            wait_until(T, || h.service(s, "ActiveState") == "active"),
            "{s} never became active"
        );
        // Later sites must never have started (earlier ones may still be
        // awake: 2 s idle timeout).
        for other in &sites[i + 1..] {
            let state = h.service(other, "ActiveState");
            assert_eq!(state, "inactive", "after a request to {s}: {other}");
        }
        assert!(h.wait_asleep(s), "{s} did not go back to sleep");
    }
    // Back to zero: no spyglass process at all, every socket listening.
    assert!(
        wait_until(T, || h.spyglass_processes() == 0),
        "spyglass processes left"
    );
    for s in sites {
        assert_eq!(h.socket(s, "SubState"), "listening", "{s}");
        assert_eq!(h.service(s, "Result"), "success", "{s}");
    }

    // Many requests to alpha: bravo and charlie never start.
    let since: Vec<String> = sites
        .iter()
        .map(|s| h.service(s, "ExecMainStartTimestampMonotonic"))
        .collect();
    for i in 0..20 {
        let got = h.get_front("alpha.example.com", &format!("/only-alpha/{i}"));
        assert_eq!(got.map(|r| r.0), Some(404));
    }
    assert_ne!(
        h.service("alpha", "ExecMainStartTimestampMonotonic"),
        since[0]
    );
    for (s, before) in sites.iter().zip(&since).skip(1) {
        assert_eq!(h.service(s, "ActiveState"), "inactive", "{s}");
        assert_eq!(
            &h.service(s, "ExecMainStartTimestampMonotonic"),
            before,
            "{s} was started by requests to alpha"
        );
    }
    // A host name that no site has: nginx answers, no site wakes.
    assert_eq!(
        h.get_front("nobody.example.com", "/").map(|r| r.0),
        Some(421)
    );

    // Each site's journal: its events, and only its events, under its name.
    let mut journal = String::new();
    let complete = wait_until(T, || {
        journal = h.journal("spyglass@alpha", &[]);
        journal.matches("/only-alpha/").count() == 20
    });
    assert!(complete, "{journal}");
    assert_eq!(journal.matches("\"GET /\" 200").count(), 1, "{journal}");
    for other in ["bravo", "charlie"] {
        assert!(!journal.contains(other), "alpha's journal: {journal}");
        let theirs = h.journal(&format!("spyglass@{other}"), &[]);
        assert_eq!(theirs.matches("\"GET /\" 200").count(), 1, "{theirs}");
        assert!(!theirs.contains("alpha"), "{other}'s journal: {theirs}");
    }
    let ids = h.journal("spyglass@alpha", &["F_PATH=/only-alpha/0", "-o", "verbose"]);
    assert!(ids.contains("SYSLOG_IDENTIFIER=spyglass@alpha"), "{ids}");
    // Alpha believes nginx about the client; bravo, not told to, logs the
    // socket's peer.
    assert!(ids.contains("F_PEER=127.0.0.1\n"), "{ids}");
    assert!(ids.contains("F_SOCKET_PEER=unix"), "{ids}");
    let theirs = h.journal("spyglass@bravo", &["-o", "verbose"]);
    assert!(theirs.contains("F_PEER=unix"), "{theirs}");
    let tagged = h.sd.journalctl(&["-t", "spyglass@bravo", "-o", "cat"]);
    let tagged = String::from_utf8_lossy(&tagged.stdout);
    assert!(
        tagged.contains("\"GET /\" 200"),
        "journalctl -t spyglass@bravo: {tagged}"
    );
    assert!(
        !tagged.contains("only-alpha"),
        "journalctl -t spyglass@bravo: {tagged}"
    );
    // nginx wrote nothing but its runtime directory (ProtectSystem=strict
    // would have failed it) and logged no error.
    let front = h.journal("front.service", &[]);
    assert!(
        !front.contains("[emerg]") && !front.contains("[error]"),
        "{front}"
    );
}

/// The CGI script that tries, from inside one site, everything another
/// site's isolation must refuse; each line says what it got. QUERY_STRING
/// names the neighbour and its master's pid (`NAME+PID`).
const PEEK: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
them=${QUERY_STRING%+*}
pid=${QUERY_STRING#*+}
echo "uid: $(id -u)"
echo "own: $(cat "$DOCUMENT_ROOT/index.html" 2>&1)"
echo "read: $(cat "/srv/www/$them/secret.txt" 2>&1)"
echo "list: $(ls /srv/www 2>&1 | tr '\n' ' ')"
curl -s -o /dev/null --unix-socket "/run/spyglass/$them.sock" http://x/ 2>/dev/null
echo "connect: $?"
/usr/bin/spyglass ctl --site "$them" status >/dev/null 2>&1
echo "ctl: $?"
kill -0 "$pid" 2>/dev/null && echo "signal: sent" || echo "signal: refused"
test -e "/proc/$pid" && echo "proc: seen" || echo "proc: hidden"
echo "root: $(cat "/proc/$pid/root/srv/www/$them/secret.txt" 2>&1)"
echo "environ: $(tr '\0' '\n' < "/proc/$pid/environ" 2>&1 | grep -c SECRET_TOKEN)"
"#;

/// A site cannot read another's files (by a CGI script or a symlink),
/// connect to its socket or its control socket, signal or see its
/// processes; each runs as a user of its own. The same script, asking
/// about its own site, gets everything (so each refusal is the sandbox's).
#[test]
fn a_site_cannot_reach_another() {
    let Some(h) = Host::boot(vec![], crate::sdbox::DEFAULT_TTL) else {
        return;
    };
    for s in ["red", "blue"] {
        let cgi = format!("SPYGLASS_CGI=/cgi-bin=/srv/www/{s}/cgi-bin");
        let (k, v) = cgi.split_once('=').unwrap();
        let token = format!("{s}-token");
        h.site(
            s,
            &[(k, v), ("SPYGLASS_WORKERS", "1"), ("SECRET_TOKEN", &token)],
        );
        h.write(
            &format!("/srv/www/{s}/secret.txt"),
            &format!("{s}'s secret\n"),
            0o644,
        );
        h.write(&format!("/srv/www/{s}/cgi-bin/peek.sh"), PEEK, 0o755);
    }
    // A symlink in red's files to blue's secret.
    h.sh("ln -s /srv/www/blue/secret.txt /srv/www/red/blue-secret.txt");
    h.enable(&["red", "blue"]);

    // Blue is awake (its control socket exists, its master has a pid).
    assert_eq!(h.get_site("blue", "/").map(|r| r.0), Some(200));
    let blue_pid = h.service("blue", "MainPID");
    assert_eq!(h.get_site("red", "/").map(|r| r.0), Some(200));
    let red_pid = h.service("red", "MainPID");
    let red_self = h.get_site("red", &format!("/cgi-bin/peek.sh?red+{red_pid}"));
    let (status, red_self) = red_self.expect("red's script answers");
    assert_eq!(status, 200, "{red_self}");
    let (status, peek) = h
        .get_site("red", &format!("/cgi-bin/peek.sh?blue+{blue_pid}"))
        .expect("red's script answers");
    assert_eq!(status, 200, "{peek}");
    eprintln!("red about itself:\n{red_self}red about blue:\n{peek}");
    let line = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    // About itself: everything works (the script and the tools are fine).
    assert_eq!(line(&red_self, "own"), "site red");
    assert_eq!(line(&red_self, "read"), "red's secret");
    assert_eq!(line(&red_self, "ctl"), "0");
    assert_eq!(line(&red_self, "signal"), "sent");
    assert_eq!(line(&red_self, "proc"), "seen");
    assert_eq!(line(&red_self, "root"), "red's secret");
    assert_eq!(line(&red_self, "environ"), "1");
    // About blue: nothing.
    assert_eq!(line(&peek, "own"), "site red");
    assert!(
        line(&peek, "read").contains("No such file or directory"),
        "{peek}"
    );
    assert_eq!(line(&peek, "list").trim(), "red", "{peek}");
    // Sites' sockets admit root and the proxy's group only (a site's own
    // script may not connect to its own site either); curl itself works.
    assert_eq!(
        line(&peek, "connect"),
        "7",
        "curl: could not connect\n{peek}"
    );
    assert_eq!(line(&red_self, "connect"), "7", "{red_self}");
    h.sh("curl -sf -o /dev/null --unix-socket /run/spyglass/blue.sock http://x/");
    assert_eq!(line(&peek, "ctl"), "4", "ctl: not allowed\n{peek}");
    assert_eq!(line(&peek, "signal"), "refused", "{peek}");
    assert_eq!(line(&peek, "proc"), "hidden", "{peek}");
    // Not through its /proc entry either (a user shared by the sites would
    // have it: its mount namespace's files, its environment).
    assert!(
        line(&peek, "root").contains("No such file or directory"),
        "{peek}"
    );
    assert_ne!(line(&peek, "environ"), "1", "{peek}");
    // Two users, neither root.
    let blue_uid = h.sh(&format!("stat -c %u /proc/{blue_pid}"));
    let red_uid = line(&peek, "uid");
    assert_ne!(red_uid, blue_uid.trim());
    assert_ne!(red_uid, "0");
    let users = h.sh(&format!("ps -o user= -p {blue_pid},{red_pid}"));
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>().len(),
        2,
        "{users}"
    );
    // The symlink: spyglass answers 404, as to any path outside the root.
    assert_eq!(
        h.get_site("red", "/blue-secret.txt").map(|r| r.0),
        Some(404)
    );
    assert_eq!(
        h.get_site("blue", "/secret.txt"),
        Some((200, "blue's secret\n".into()))
    );
}

/// The drop-in the socket template's header documents for a site on a TCP
/// address of its own (the comment lines after "systemctl edit").
pub fn documented_tcp_dropin() -> String {
    let unit = shipped("spyglass@.socket");
    let start = unit
        .find("`systemctl edit spyglass@blog.socket`:\n")
        .unwrap();
    let text: String = unit[start..]
        .lines()
        .skip(1)
        .map_while(|l| l.strip_prefix("#   "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(text.starts_with("[Socket]\nListenStream=\n"), "{text}");
    text
}

/// Running sites: stopping one removes its runtime directory and never a
/// socket file; `ctl --site` finds a running site's control socket; a
/// start that would take another site's socket for its runtime directory
/// (`systemctl start spyglass@NAME.sock`, a typo for the socket) is
/// refused and harms nothing; a crashed site restarts; a site on TCP with
/// the documented drop-in; the limits shown commented take effect; a site
/// whose name cannot be a user name fails, with its socket, instead of
/// retrying forever.
#[test]
fn sites_stop_restart_and_fail_apart() {
    let Some(h) = Host::boot(vec![], crate::sdbox::DEFAULT_TTL) else {
        return;
    };
    let sites = ["one", "two"];
    for s in sites {
        h.site(s, &[("SPYGLASS_WORKERS", "1")]);
    }
    h.enable(&sites);
    let sockets = || h.sh("ls /run/spyglass");
    assert_eq!(sockets(), "one.sock\ntwo.sock\n");

    // Both awake, then one stopped: its runtime directory goes, every
    // socket file stays, and it wakes again.
    for s in sites {
        assert_eq!(h.get_site(s, "/"), Some((200, format!("site {s}\n"))));
    }
    assert_eq!(sockets(), "one\none.sock\ntwo\ntwo.sock\n");
    let ctl =
        h.sd.exec(&["spyglass", "ctl", "--site", "one", "--json", "status"]);
    assert!(ctl.status.success(), "{ctl:?}");
    let status: serde_json::Value = serde_json::from_slice(&ctl.stdout).unwrap();
    assert_eq!(
        status["result"]["master"]["pid"].to_string(),
        h.service("one", "MainPID")
    );
    h.sh("systemctl stop spyglass@one.service");
    assert_eq!(sockets(), "one.sock\ntwo\ntwo.sock\n");
    assert_eq!(h.socket("one", "SubState"), "listening");
    let ctl = h.sd.exec(&["spyglass", "ctl", "--site", "one", "status"]);
    assert_eq!(ctl.status.code(), Some(3), "not running: {ctl:?}");
    assert_eq!(h.get_site("one", "/").map(|r| r.0), Some(200));

    // The typo: refused before anything is touched.
    let typo = h.sd.exec(&["systemctl", "start", "spyglass@one.sock"]);
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("Assertion failed"),
        "{typo:?}"
    );
    let one_sock = h.sh("stat -c '%F %a %U %G' /run/spyglass/one.sock");
    assert_eq!(one_sock.trim(), "socket 660 root www-data");
    assert_eq!(h.get_site("one", "/").map(|r| r.0), Some(200));
    h.sh("systemctl stop spyglass@one.sock.socket");

    // A crash (the master killed) restarts the site: the runtime directory
    // it left was removed, so the start is not refused.
    let main = h.service("two", "MainPID");
    h.sh(&format!("kill -KILL {main}"));
    assert!(
        wait_until(T, || h.service("two", "NRestarts") == "1"
            && h.service("two", "ActiveState") == "active"),
        "{}",
        h.journal("spyglass@two", &[])
    );
    assert_eq!(h.get_site("two", "/"), Some((200, "site two\n".into())));

    // A reload re-executes the binary in place and keeps the site's name
    // (argv[0]) for the journal and ps.
    let main = h.service("two", "MainPID");
    h.sh("systemctl reload spyglass@two.service");
    assert!(
        wait_until(T, || h
            .journal("spyglass@two", &["F_EVENT=reload"])
            .contains("reload")),
        "{}",
        h.journal("spyglass@two", &[])
    );
    assert_eq!(h.service("two", "MainPID"), main);
    assert_eq!(h.get_site("two", "/after-reload").map(|r| r.0), Some(404));
    let mut event = String::new();
    assert!(wait_until(T, || {
        event = h.journal("spyglass@two", &["F_PATH=/after-reload", "-o", "verbose"]);
        event.contains("SYSLOG_IDENTIFIER=")
    }));
    assert!(
        event.contains("SYSLOG_IDENTIFIER=spyglass@two\n"),
        "{event}"
    );
    let args = h.sh(&format!("ps -o args= -p {main}"));
    assert!(args.starts_with("spyglass@two /srv/www/two"), "{args}");

    // A site on TCP, with the drop-in the socket unit documents.
    h.site("tcp", &[]);
    h.write(
        "/etc/systemd/system/spyglass@tcp.socket.d/tcp.conf",
        &documented_tcp_dropin(),
        0o644,
    );
    h.enable(&["tcp"]);
    assert_eq!(h.socket("tcp", "Listen"), "127.0.0.1:8081 (Stream)");
    let s =
        h.sd.connect_tcp(SocketAddr::from(([127, 0, 0, 1], 8081)))
            .unwrap();
    assert_eq!(exchange(s, "tcp", "/"), Some((200, "site tcp\n".into())));

    // The limits, uncommented in a drop-in for every site.
    let unit = shipped("spyglass@.service");
    let limits: String = ["MemoryMax=", "CPUQuota=", "TasksMax="]
        .iter()
        .map(|k| {
            let line = unit
                .lines()
                .find_map(|l| l.strip_prefix('#').filter(|l| l.starts_with(k)))
                .unwrap_or_else(|| panic!("no commented {k}"));
            format!("{line}\n")
        })
        .collect();
    h.write(
        "/etc/systemd/system/spyglass@.service.d/limits.conf",
        &format!("[Service]\n{limits}"),
        0o644,
    );
    h.sh("systemctl daemon-reload && systemctl restart spyglass@two.service");
    for (property, value) in [
        ("MemoryMax", "268435456"),
        ("CPUQuotaPerSecUSec", "500ms"),
        ("TasksMax", "64"),
    ] {
        assert_eq!(h.service("two", property), value, "{limits}");
    }
    // Enforced where the box's cgroup tree has the memory controller (not
    // on a host whose controllers are bound to cgroup v1).
    let group = h.service("two", "ControlGroup");
    if h.sh("cat /sys/fs/cgroup/cgroup.controllers")
        .contains("memory")
    {
        let max = h.sh(&format!("cat /sys/fs/cgroup{group}/memory.max"));
        assert_eq!(max.trim(), "268435456");
    } else {
        eprintln!("no memory controller in the box: MemoryMax= set, not enforced");
    }
    assert_eq!(h.get_site("two", "/").map(|r| r.0), Some(200));

    // A name that is no user name: its first request finds it failing;
    // the start limit ends the retries, and its socket goes too.
    h.site("bad.name", &[]);
    h.enable(&["bad.name"]);
    assert_eq!(h.get_site("bad.name", "/"), None);
    assert!(
        wait_until(T, || h.socket("bad.name", "ActiveState") == "failed"),
        "{}",
        h.socket("bad.name", "ActiveState")
    );
    assert_eq!(h.socket("bad.name", "Result"), "service-start-limit-hit");
    let tries = h
        .journal("spyglass@bad.name.service", &[])
        .matches("Scheduled restart job")
        .count();
    assert!((20..=30).contains(&tries), "{tries} restarts");
    assert!(!sockets().contains("bad.name"), "no file of a failed site");
    // The others are unaffected.
    for s in sites {
        assert_eq!(h.get_site(s, "/").map(|r| r.0), Some(200), "{s}");
    }
}

/// Point 5: `spyglass sites` reads systemd. Four sites: one awake, one
/// asleep after two wakes, one listening that never woke, one enabled but
/// not started; the table and the JSON say so, with the times and counts
/// systemd and its journal have.
#[test]
fn spyglass_sites_shows_what_systemd_knows() {
    let Some(h) = Host::boot(vec![], crate::sdbox::DEFAULT_TTL) else {
        return;
    };
    h.site("awake", &[("SPYGLASS_WORKERS", "1")]);
    h.site(
        "asleep",
        &[("SPYGLASS_WORKERS", "1"), ("SPYGLASS_IDLE_TIMEOUT", "1s")],
    );
    h.site("never", &[]);
    h.site("off", &[]);
    let out = h.sd.exec(&["spyglass", "sites"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("none"),
        "{out:?}"
    );
    h.enable(&["awake", "asleep", "never"]);
    h.sh("systemctl enable spyglass@off.socket");
    for _ in 0..2 {
        assert_eq!(h.get_site("asleep", "/").map(|r| r.0), Some(200));
        assert!(h.wait_asleep("asleep"));
    }
    assert_eq!(h.get_site("awake", "/").map(|r| r.0), Some(200));

    let out = h.sd.exec(&["spyglass", "sites"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{table}");
    let row = |site: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(site))
            .unwrap_or_else(|| panic!("no {site} in\n{table}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert!(table.starts_with("SITE "), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    let awake = row("awake");
    assert_eq!(&awake[1..3], ["listening", "awake"], "{table}");
    assert_eq!(awake[4], "1");
    assert_eq!(awake[5], "/run/spyglass/awake.sock");
    let asleep = row("asleep");
    assert_eq!(&asleep[1..3], ["listening", "asleep"], "{table}");
    assert_eq!(asleep[4], "2", "{table}");
    assert_eq!(
        row("never")[1..5],
        ["listening", "asleep", "never", "0"],
        "{table}"
    );
    assert_eq!(
        row("off")[1..5],
        ["inactive", "asleep", "never", "0"],
        "{table}"
    );

    let out = h.sd.exec(&["spyglass", "sites", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let site = |name: &str| {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == name)
            .unwrap_or_else(|| panic!("{name} in {v:#}"))
            .clone()
    };
    let awake = site("awake");
    assert_eq!(awake["service"]["state"], "awake");
    assert_eq!(
        awake["service"]["main_pid"].to_string(),
        h.service("awake", "MainPID")
    );
    assert_eq!(
        awake["service"]["status"]
            .as_str()
            .map(|s| s.contains("1 workers")),
        Some(true),
        "{awake:#}"
    );
    let asleep = site("asleep");
    assert_eq!(asleep["service"]["wakes"], 2);
    assert_eq!(asleep["service"]["main_pid"], serde_json::Value::Null);
    let started = h.sh(
        "systemctl show --timestamp=unix -p ExecMainStartTimestamp --value spyglass@asleep.service",
    );
    assert_eq!(
        format!("@{}", asleep["service"]["last_woke"]["unix"]),
        started.trim()
    );
    assert!(
        asleep["service"]["asleep_since"]["unix"].as_u64()
            >= asleep["service"]["last_woke"]["unix"].as_u64()
    );
    assert_eq!(asleep["socket"]["enabled"], "enabled");
    assert_eq!(site("off")["socket"]["state"], "inactive");
    assert_eq!(
        site("never")["service"]["last_woke"],
        serde_json::Value::Null
    );

    // Where systemd cannot be asked (no bus for this user here): one line
    // and exit status 1.
    let out = h.sd.exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "spyglass",
        "sites",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("spyglass sites: systemctl: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Memory of a process from its /proc directory's smaps_rollup: Rss, Pss
/// and Private_Dirty, in KiB.
fn memory_kib(proc_dir: impl std::fmt::Display) -> [u64; 3] {
    let text = fs::read_to_string(format!("{proc_dir}/smaps_rollup")).unwrap_or_default();
    ["Rss:", "Pss:", "Private_Dirty:"].map(|k| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// One cold start, timed from `start` to the response's first byte; the
/// whole response must be the site's page.
fn timed<S: Read + Write + Timeouts>(
    mut s: S,
    host: &str,
    start: std::time::Instant,
) -> Result<Duration, String> {
    s.timeouts(T);
    let req = format!("GET / HTTP/1.1\r\nHost: {host}.example.com\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut first = [0u8; 1];
    s.read_exact(&mut first).map_err(|e| e.to_string())?;
    let took = start.elapsed();
    let mut rest = String::new();
    s.read_to_string(&mut rest).map_err(|e| e.to_string())?;
    let want = format!("site {host}\n");
    if rest.starts_with("TTP/1.1 200") && rest.ends_with(&want) {
        Ok(took)
    } else {
        Err(format!("H{rest}"))
    }
}

/// Median and worst of `samples`, sorted in place.
fn median_and_worst(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// Point 6, the figures: 200 sites configured and idle (no spyglass
/// process; systemd's own memory per configured site, from its PID 1's
/// smaps_rollup before and after enabling 200 sockets, each after a
/// daemon-reload), then 20 of them woken at once straight on their
/// sockets and 20 others at once through nginx: every request answered,
/// median and worst cold start; then all back to zero. A measurement,
/// not a test of speed. Run with
/// `cargo test --release --test it hosting::figures -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; run explicitly"]
fn figures_two_hundred_sites_then_twenty_cold_starts_at_once() {
    const SITES: usize = 200;
    const BURST: usize = 20;
    if !have_nginx() {
        return;
    }
    let Some(h) = Host::boot(vec![front_unit()], Duration::from_secs(900)) else {
        return;
    };
    let names: Vec<String> = (1..=SITES).map(|i| format!("s{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for n in &names {
        h.site(n, &[]);
    }
    // The shipped units as they are, but a short idle timeout for every
    // site (a drop-in), so that the run ends with all of them asleep.
    h.write(
        "/etc/systemd/system/spyglass@.service.d/idle.conf",
        "[Service]\nEnvironment=SPYGLASS_IDLE_TIMEOUT=5s\n",
        0o644,
    );
    h.sh("systemctl daemon-reload");
    let pid1 = format!("/proc/{}", h.sd.host_pid());
    let before = memory_kib(&pid1);
    let t = std::time::Instant::now();
    h.enable(&names);
    let enable_took = t.elapsed();
    h.sh("systemctl daemon-reload");
    let after = memory_kib(&pid1);
    let listening = h.sh(
        "systemctl list-units --plain --no-legend --state=listening 'spyglass@*.socket' | wc -l",
    );
    assert_eq!(listening.trim(), SITES.to_string());
    assert_eq!(h.spyglass_processes(), 0, "all idle: no spyglass process");
    let units = h.sh("systemctl list-units --all --plain --no-legend | wc -l");
    h.start_front(&names);

    let per_site = |i: usize| (after[i] as f64 - before[i] as f64) / SITES as f64;
    eprintln!(
        "{SITES} sites configured, all idle: 0 spyglass processes, {} units loaded",
        units.trim()
    );
    eprintln!("  `systemctl enable --now` of {SITES} sockets took {enable_took:?}");
    eprintln!(
        "  systemd (PID 1) before: Rss {} KiB, Pss {} KiB, Private_Dirty {} KiB",
        before[0], before[1], before[2]
    );
    eprintln!(
        "  systemd (PID 1) after:  Rss {} KiB, Pss {} KiB, Private_Dirty {} KiB",
        after[0], after[1], after[2]
    );
    eprintln!(
        "  per configured site:    Rss {:.1} KiB, Pss {:.1} KiB, Private_Dirty {:.1} KiB",
        per_site(0),
        per_site(1),
        per_site(2)
    );

    // 20 sites woken at once, straight on their sockets; then 20 others
    // through nginx.
    let burst = |via_front: bool, sites: &[&str]| -> Vec<Result<Duration, String>> {
        let barrier = std::sync::Barrier::new(sites.len());
        std::thread::scope(|scope| {
            let threads: Vec<_> = sites
                .iter()
                .map(|name| {
                    let (h, barrier) = (&h, &barrier);
                    scope.spawn(move || {
                        if via_front {
                            let s =
                                h.sd.connect_tcp(SocketAddr::from(FRONT))
                                    .map_err(|e| e.to_string())?;
                            barrier.wait();
                            timed(s, name, std::time::Instant::now())
                        } else {
                            let path = h.path(&format!("/run/spyglass/{name}.sock"));
                            barrier.wait();
                            let start = std::time::Instant::now();
                            let s = UnixStream::connect(path).map_err(|e| e.to_string())?;
                            timed(s, name, start)
                        }
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    };
    for (label, via_front, sites) in [
        (
            "straight on their sockets (connect to first byte)",
            false,
            &names[..BURST],
        ),
        (
            "through nginx (request to first byte)",
            true,
            &names[BURST..2 * BURST],
        ),
    ] {
        let results = burst(via_front, sites);
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{label}: {failed:?}");
        let mut samples: Vec<Duration> = results.into_iter().map(Result::unwrap).collect();
        let (median, worst) = median_and_worst(&mut samples);
        eprintln!(
            "{BURST} sites woken at once {label}: {BURST}/{BURST} answered, median {median:?}, worst {worst:?}"
        );
    }
    // For scale: one site woken alone, ten times over (stopped between).
    let mut alone = Vec::new();
    for n in &names[2 * BURST..2 * BURST + 10] {
        let start = std::time::Instant::now();
        let s = UnixStream::connect(h.path(&format!("/run/spyglass/{n}.sock"))).unwrap();
        alone.push(timed(s, n, start).unwrap());
        h.sh(&format!("systemctl stop spyglass@{n}.service"));
    }
    let (median, worst) = median_and_worst(&mut alone);
    eprintln!(
        "one site woken alone (connect to first byte), 10 sites: median {median:?}, worst {worst:?}"
    );
    eprintln!(
        "load average while measuring: {}",
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let awake: Vec<&str> = names[..2 * BURST].to_vec();
    for n in &awake {
        // Answered as soon as a worker booted; "active" once systemd has
        // the READY=1 that follows.
        assert!(
            wait_until(T, || h.service(n, "ActiveState") == "active"),
            "{n} never became active"
        );
    }
    assert_eq!(
        h.sh(
            "systemctl list-units --plain --no-legend --state=active 'spyglass@*.service' | wc -l"
        )
        .trim(),
        (2 * BURST).to_string(),
        "only the woken sites are awake"
    );
    // What an awake site costs: its processes' Pss, summed per site.
    let pss: u64 = awake
        .iter()
        .map(|n| {
            let main = h.service(n, "MainPID");
            let pids = h.sh(&format!("pgrep -P {main}; echo {main}"));
            pids.lines()
                // Box pids: read through the box's /proc.
                .map(|p| memory_kib(h.path(&format!("/proc/{p}")).display())[1])
                .sum::<u64>()
        })
        .sum();
    eprintln!(
        "awake: {} sites, {} KiB Pss per site (master and {} workers)",
        awake.len(),
        pss / awake.len() as u64,
        h.sh(&format!("pgrep -c -P {}", h.service(awake[0], "MainPID")))
            .trim()
    );
    // And back to zero.
    let t = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || h.spyglass_processes() == 0),
        "still {} spyglass processes",
        h.spyglass_processes()
    );
    eprintln!(
        "all {SITES} asleep again {:?} after the bursts (idle timeout 5 s)",
        t.elapsed()
    );
}
