//! The template units (`spyglass@.socket`, `spyglass@.service`) are code
//! like the single-site ones (`units`): they verify cleanly, the service's
//! sandbox rates well, every directive says why it is there. And they stay
//! in step with `spyglass.service` by construction: its sandbox section is
//! the template's word for word, and each of its other directives is the
//! template's too, unless this file names it as one that a site changes.
//! So a change to the single-site unit that the template does not follow
//! fails here.
//!
//! The documented front proxy configurations (`examples/front/`) and the
//! socket's TCP drop-in are the README's, and what `hosting` runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::*;
use crate::units::shipped;

/// Directives of `spyglass.service` that the template sets otherwise, each
/// with the reason (the template's own comments say more).
const CHANGED: &[(&str, &str)] = &[
    ("Description", "names the site"),
    ("Requires", "the site's socket"),
    ("After", "the site's socket"),
    ("ExecStart", "the site's directory and name"),
    ("RuntimeDirectory", "the site's, for ctl --site"),
    (
        "StartLimitIntervalSec",
        "a limit above idle exits, below a start that cannot succeed",
    ),
    ("Also", "the site's socket"),
];

/// Directives only the template has.
const ADDED: &[&str] = &[
    "DynamicUser",
    "StartLimitBurst",
    "AssertPathExists",
    "SyslogIdentifier",
    "EnvironmentFile",
    "User",
    "TemporaryFileSystem",
    "BindReadOnlyPaths",
];

/// The directive lines (`Key=value`) of a unit, comments and sections
/// left out.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(str::to_owned)
        .collect()
}

fn key(line: &str) -> &str {
    line.split_once('=').map_or(line, |(k, _)| k)
}

/// The sandbox section: from its heading to the next heading or section.
fn sandbox(text: &str) -> &str {
    let start = text.find("# --- Sandbox").expect("a sandbox section");
    let rest = &text[start..];
    let end = rest[1..]
        .find("\n# ---")
        .into_iter()
        .chain(rest.find("\n["))
        .min()
        .expect("an end to the sandbox section");
    rest[..end + 1].trim_end()
}

/// The targets that default dependencies name; stubs, so that
/// systemd-analyze reads nothing from the host (as `units` does).
const STUB_TARGETS: &[&str] = &["sysinit", "basic", "sockets", "shutdown"];
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The templates in a fresh directory, `ExecStart=` pointed at the binary
/// under test (systemd-analyze checks that it exists), the service's text
/// passed through `edit`; stub targets in `stubs/` beside `units/`.
fn staged(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (units, stubs) = (dir.path().join("units"), dir.path().join("stubs"));
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(&stubs).unwrap();
    let exec = "ExecStart=@/usr/bin/spyglass ";
    let service = shipped("spyglass@.service");
    assert!(service.contains(exec), "the template's ExecStart= changed");
    let service = service.replace(exec, &format!("ExecStart=@{} ", spyglass().display()));
    std::fs::write(units.join("spyglass@.service"), edit(service)).unwrap();
    std::fs::write(units.join("spyglass@.socket"), shipped("spyglass@.socket")).unwrap();
    for t in STUB_TARGETS {
        let text = format!("[Unit]\nDescription={t}.target (stub for systemd-analyze)\n");
        std::fs::write(stubs.join(format!("{t}.target")), text).unwrap();
    }
    dir
}

/// `systemd-analyze ARGS` with only `dir`'s units and stubs on its unit
/// path and a cleared environment.
fn analyze(dir: &Path, args: &[&str]) -> std::process::Output {
    let path = format!(
        "{}:{}",
        dir.join("units").display(),
        dir.join("stubs").display()
    );
    Command::new("systemd-analyze")
        .args(args)
        .env_clear()
        .envs([("PATH", PATH), ("LANG", "C.UTF-8")])
        // No trailing ':': that would append the host's directories.
        .env("SYSTEMD_UNIT_PATH", path)
        .output()
        .expect("systemd-analyze (package systemd)")
}

fn verify(dir: &Path) -> String {
    let units = dir.join("units");
    let (socket, service) = (
        units.join("spyglass@blog.socket"),
        units.join("spyglass@blog.service"),
    );
    let out = analyze(
        dir,
        &[
            "verify",
            &socket.to_string_lossy(),
            &service.to_string_lossy(),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify:\n{text}");
    text
}

#[test]
fn templates_verify_cleanly_with_and_without_the_limits() {
    let dir = staged(|s| s);
    let text = verify(dir.path());
    assert!(text.trim().is_empty(), "systemd-analyze verify:\n{text}");
    // The commented limits, uncommented, are valid too.
    let dir = staged(|s| {
        s.replace("#MemoryMax=", "MemoryMax=")
            .replace("#CPUQuota=", "CPUQuota=")
            .replace("#TasksMax=", "TasksMax=")
    });
    let service = std::fs::read_to_string(dir.path().join("units/spyglass@.service")).unwrap();
    for k in ["MemoryMax=", "CPUQuota=", "TasksMax="] {
        assert!(service.lines().any(|l| l.starts_with(k)), "no {k} line");
    }
    let text = verify(dir.path());
    assert!(text.trim().is_empty(), "with the limits:\n{text}");
    // And verification does read the template: a bad line is reported.
    let dir = staged(|s| s.replace("NonBlocking=yes", "NonBlocking=yes\nNoSuchKey=1"));
    assert!(verify(dir.path()).contains("NoSuchKey"));
}

#[test]
fn a_site_sandbox_rates_as_well_as_the_single_site() {
    let dir = staged(|s| s);
    let unit = dir.path().join("units/spyglass@blog.service");
    let out = analyze(
        dir.path(),
        &["security", "--offline=true", &unit.to_string_lossy()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let site: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for spyglass@blog.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    let single = crate::units::Exposure::of(&shipped("spyglass.service")).overall;
    eprintln!("exposure: a site {site}, the single-site unit {single}");
    assert!(site <= 2.0, "{site}");
    assert!(
        site <= single,
        "a site {site}, the single-site unit {single}"
    );
}

#[test]
fn every_template_directive_is_commented() {
    for name in ["spyglass@.socket", "spyglass@.service"] {
        let text = shipped(name);
        let mut commented = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                commented = true;
            } else if line.is_empty() || line.starts_with('[') {
                commented = false;
            } else if !line.starts_with("Description=") && !line.starts_with("Documentation=") {
                assert!(commented, "{name}: no comment says why: {line}");
            }
        }
    }
}

#[test]
fn the_template_sandbox_is_the_single_site_sandbox() {
    let single = shipped("spyglass.service");
    let site = shipped("spyglass@.service");
    assert_eq!(
        sandbox(&site),
        sandbox(&single),
        "copy the sandbox section of systemd/spyglass.service into spyglass@.service"
    );
    assert!(sandbox(&single).contains("DynamicUser=yes"));
}

#[test]
fn the_template_has_every_single_site_directive() {
    let single = directives(&shipped("spyglass.service"));
    let site = directives(&shipped("spyglass@.service"));
    let changed: BTreeSet<&str> = CHANGED.iter().map(|(k, _)| *k).collect();
    for line in &single {
        if changed.contains(key(line)) {
            assert!(
                site.iter().any(|l| key(l) == key(line)),
                "the template has no {} (changed: {})",
                key(line),
                CHANGED.iter().find(|(k, _)| *k == key(line)).unwrap().1
            );
        } else {
            assert!(site.contains(line), "spyglass@.service lacks {line}");
        }
    }
    for line in &site {
        let known =
            single.contains(line) || changed.contains(key(line)) || ADDED.contains(&key(line));
        assert!(
            known,
            "spyglass@.service: {line} is neither spyglass.service's nor listed here"
        );
    }
    // What names the site names it.
    for line in site.iter().filter(|l| changed.contains(key(l))) {
        if key(line) != "StartLimitIntervalSec" {
            assert!(line.contains("%i"), "{line}");
        }
    }
}

#[test]
fn the_readme_documents_the_configurations_the_tests_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for name in ["nginx.conf", "Caddyfile"] {
        let text = std::fs::read_to_string(root.join("examples/front").join(name)).unwrap();
        assert!(
            readme.contains(&text),
            "README.md does not show examples/front/{name} as it is"
        );
    }
    // The TCP drop-in, as the socket unit documents it and hosting uses it.
    let tcp = crate::hosting::documented_tcp_dropin();
    assert!(
        readme.contains(&format!("```ini\n{tcp}```")),
        "README: {tcp}"
    );
    // The nginx configuration the hosting tests generate is built from it.
    let conf = crate::hosting::nginx_conf(&["blog"]);
    assert!(conf.contains("proxy_pass http://unix:/run/spyglass/blog.sock;"));
}
