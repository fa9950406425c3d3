//! The shipped unit files are code: they verify cleanly, the service's
//! sandbox rates well, and every directive says why it is there.
//!
//! `systemd-analyze` reads units beyond the ones it is given (the targets
//! that default dependencies name, and whatever those pull in from the
//! host's unit directories), so an unrelated broken unit on the machine
//! would fail our checks. Every run here is hermetic: the unit path names
//! only a fresh directory holding our units and stub targets
//! ([`Staged`]), and the environment is cleared.

use std::path::Path;
use std::process::{Command, Output};

use crate::sdbox::require_or_skip;
use crate::support::*;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The targets that systemd's default dependencies of a socket and a
/// service name; stubs, so that nothing is read from the host.
const STUB_TARGETS: &[&str] = &["sysinit", "basic", "sockets", "shutdown"];

/// The text of a shipped unit file.
pub fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// Units staged for `systemd-analyze`: ours with `ExecStart=` pointed at the
/// binary under test and a test site, stub targets beside them.
pub struct Staged {
    dir: tempfile::TempDir,
    _site: tempfile::TempDir,
}

impl Staged {
    /// Stage the shipped socket and `service` (a service unit's text).
    pub fn new(service: &str) -> Staged {
        let site = site();
        let dir = tempfile::tempdir().unwrap();
        let (units, stubs) = (dir.path().join("units"), dir.path().join("stubs"));
        std::fs::create_dir_all(&units).unwrap();
        std::fs::create_dir_all(&stubs).unwrap();
        let exec = "ExecStart=/usr/bin/spyglass /srv/www";
        assert!(service.contains(exec), "the shipped ExecStart= changed");
        let ours = format!(
            "ExecStart={} {}",
            spyglass().display(),
            site.path().display()
        );
        for (name, text) in [
            ("spyglass.socket", shipped("spyglass.socket")),
            ("spyglass.service", service.replace(exec, &ours)),
        ] {
            std::fs::write(units.join(name), text).unwrap();
        }
        for t in STUB_TARGETS {
            let text = format!("[Unit]\nDescription={t}.target (stub for systemd-analyze)\n");
            std::fs::write(stubs.join(format!("{t}.target")), text).unwrap();
        }
        Staged { dir, _site: site }
    }

    /// The staged file of unit `name`.
    pub fn unit(&self, name: &str) -> String {
        self.dir
            .path()
            .join("units")
            .join(name)
            .display()
            .to_string()
    }

    /// `systemd-analyze ARGS` with only the staged units on its unit path,
    /// run through `wrapper` (an argv prefix, or none).
    pub fn analyze(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("units").display(),
            self.dir.path().join("stubs").display()
        );
        let argv: Vec<&str> = [wrapper, &["systemd-analyze"], args].concat();
        Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs([("PATH", PATH), ("LANG", "C.UTF-8")])
            // No trailing ':': that would append the host's directories.
            .env("SYSTEMD_UNIT_PATH", path)
            .output()
            .expect("systemd-analyze (package systemd)")
    }

    /// `systemd-analyze verify` of both units: its complaints, empty when
    /// clean.
    pub fn verify(&self, wrapper: &[&str]) -> String {
        let (socket, service) = (self.unit("spyglass.socket"), self.unit("spyglass.service"));
        let out = self.analyze(wrapper, &["verify", &socket, &service]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.success() {
            true => text.trim().to_owned(),
            false => format!("exit {:?}\n{text}", out.status.code()),
        }
    }
}

/// What `systemd-analyze security --offline=true` says of a service unit.
#[derive(Debug)]
pub struct Exposure {
    /// The overall exposure level (0 to 10, lower is better).
    pub overall: f64,
    /// The checks that fail, each with its own exposure figure.
    pub failing: Vec<(String, f64)>,
}

impl Exposure {
    /// Rate `service` (a service unit's text) offline.
    pub fn of(service: &str) -> Exposure {
        let staged = Staged::new(service);
        let unit = staged.unit("spyglass.service");
        let out = staged.analyze(&[], &["security", "--offline=true", &unit]);
        let text = String::from_utf8_lossy(&out.stdout);
        let overall = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for spyglass.service:"))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
        let failing = text
            .lines()
            .filter_map(|l| l.strip_prefix("✗ "))
            .filter_map(|l| {
                let name = l.split_whitespace().next()?;
                let figure = l.split_whitespace().last()?.parse().ok()?;
                Some((name.to_owned(), figure))
            })
            .collect();
        Exposure { overall, failing }
    }

    /// The checks that fail here and not in `base` (or fail worse), with
    /// the difference in their exposure figure.
    pub fn worse_than(&self, base: &Exposure) -> Vec<(String, f64)> {
        self.failing
            .iter()
            .filter_map(|(name, x)| {
                let before = base
                    .failing
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0.0, |(_, b)| *b);
                (*x > before).then(|| (name.clone(), x - before))
            })
            .collect()
    }
}

#[test]
fn units_verify_cleanly() {
    let staged = Staged::new(&shipped("spyglass.service"));
    let complaints = staged.verify(&[]);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
    // The isolated verification still reads our units: a typo is reported.
    let typo = shipped("spyglass.service").replace("\nUMask=", "\nUMsak=");
    let complaints = Staged::new(&typo).verify(&[]);
    assert!(complaints.contains("UMsak"), "{complaints:?}");
}

/// Debian's `unicorn` package installs an enabled unit that
/// `systemd-analyze verify` warns about ("Invalid environment
/// assignment"); such a unit, planted in a private mount namespace over
/// /etc/systemd/system (the host's stays untouched), must not reach our
/// verification, while a verification that reads the host's unit
/// directories does see it (so the plant is effective).
#[test]
fn verification_ignores_the_hosts_units() {
    if !nix::unistd::geteuid().is_root() {
        return require_or_skip("planting a unit in a mount namespace needs root");
    }
    let plant = "mount -t tmpfs tmpfs /etc/systemd/system \
        && mkdir /etc/systemd/system/multi-user.target.wants \
        && printf '[Service]\\nEnvironment=OPTS=-E production\\nExecStart=/bin/true\\n\
[Install]\\nWantedBy=multi-user.target\\n' >/etc/systemd/system/broken.service \
        && ln -s ../broken.service /etc/systemd/system/multi-user.target.wants/ \
        && exec \"$@\"";
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation=private",
        "sh",
        "-c",
        plant,
        "sh",
    ];
    let staged = Staged::new(&shipped("spyglass.service"));
    // The control: the host's unit path (as the test used to run it).
    let host = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["systemd-analyze", "verify"])
        .args([
            staged.unit("spyglass.socket"),
            staged.unit("spyglass.service"),
        ])
        .output()
        .expect("unshare (util-linux)");
    let host = String::from_utf8_lossy(&host.stderr).into_owned();
    if host.contains("not permitted") {
        return require_or_skip(&format!("unshare --mount refused: {host}"));
    }
    assert!(
        host.contains("broken.service") && host.contains("Invalid environment assignment"),
        "the planted unit is not seen by a plain verify:\n{host}"
    );
    let complaints = staged.verify(&wrapper);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
}

#[test]
fn the_service_sandbox_rates_1_5_or_better() {
    let exposure = Exposure::of(&shipped("spyglass.service"));
    eprintln!("{exposure:?}");
    assert!(exposure.overall <= 1.5, "{exposure:?}");
}

#[test]
fn every_directive_is_commented() {
    for name in ["spyglass.socket", "spyglass.service", "cgi.conf"] {
        let text = shipped(name);
        let mut commented = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                commented = true;
            } else if line.is_empty() || line.starts_with('[') {
                commented = false;
            } else if line.starts_with("Description=") || line.starts_with("Documentation=") {
                // Self-describing.
            } else {
                // A directive: a comment must introduce it or the block of
                // directives it belongs to.
                assert!(commented, "{name}: no comment says why: {line}");
            }
        }
    }
}
