//! The shipped unit files are code: they verify cleanly, the service's
//! sandbox rates well, and every directive says why it is there.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The units with `ExecStart=` pointed at the binary under test, in a
/// fresh directory.
fn staged_units(site: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for name in ["spyglass.socket", "spyglass.service"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let text = text.replace(
            "ExecStart=/usr/bin/spyglass /srv/www",
            &format!("ExecStart={} {}", spyglass().display(), site.display()),
        );
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn units_verify_cleanly() {
    let site = site();
    let dir = staged_units(site.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("spyglass.socket"))
        .arg(dir.path().join("spyglass.service"))
        .output()
        .expect("systemd-analyze (package systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_service_sandbox_rates_2_or_better() {
    let site = site();
    let dir = staged_units(site.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(dir.path().join("spyglass.service"))
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("{line}");
    assert!(level <= 2.0, "{line}");
}

#[test]
fn every_directive_is_commented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for name in ["spyglass.socket", "spyglass.service", "cgi.conf"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
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
