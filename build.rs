//! Build script: `SPYGLASS_VERSION` for `spyglass --version`, the package
//! version plus the git revision when built from a checkout
//! ("0.1.0 (git 0123456789ab)"), the package version alone otherwise (a
//! crate from crates.io, a tarball, no git on PATH).
//!
//! No build dependencies: it runs `git` when the manifest directory holds a
//! `.git` (a directory, or a worktree's file) and watches only the files a
//! new commit or checkout changes (HEAD, the branch's ref, packed-refs), so
//! cargo reruns it after a commit, not on every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = env("CARGO_PKG_VERSION");
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    let full = match revision(&dir) {
        Some(rev) => format!("{version} (git {rev})"),
        None => {
            // `cargo package` verifies the crate unpacked in TARGET/package/
            // and builds it in the checkout's target dir as the same units.
            // Watching this missing file there makes the checkout's next
            // build run this script again instead of keeping the packaged
            // build's version. Nowhere else: a crate from a registry must
            // not rerun its build script on every build.
            if dir.parent().is_some_and(|p| p.ends_with("package")) {
                println!("cargo:rerun-if-changed={}", dir.join(".git").display());
            }
            version
        }
    };
    println!("cargo:rustc-env=SPYGLASS_VERSION={full}");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The checked-out commit, abbreviated, after telling cargo which files
/// would change it. `None` outside a checkout or without a working `git`.
fn revision(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    // What a checkout or commit rewrites: HEAD; the branch it names (a loose
    // ref, or a line of packed-refs). Worktrees keep HEAD apart from the
    // shared refs: `--git-path` resolves each.
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) else {
            continue;
        };
        // A missing file would make cargo rerun this script on every build.
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

/// One line of `git ARGS` output in `dir`, if git ran and succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !line.is_empty()).then_some(line)
}
