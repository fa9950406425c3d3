//! Build script: `SPYGLASS_VERSION` for `spyglass --version`, the package
//! version plus the git revision when built from a checkout
//! ("0.1.0 (git 0123456789ab)"), the package version alone otherwise (a
//! crate from crates.io, a tarball, no git on PATH); and packed relative
//! relocations for the `spyglass` binary where the toolchain and C library
//! have them (see [`packed_relocations`]).
//!
//! No build dependencies: it runs `git` when the manifest directory holds a
//! `.git` (a directory, or a worktree's file) and watches only the files a
//! new commit or checkout changes (HEAD, the branch's ref, packed-refs), so
//! cargo reruns it after a commit, not on every build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    if packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether to link the `spyglass` binary with `-z pack-relative-relocs`
/// (DT_RELR: GNU ld 2.38, glibc 2.36). A position-independent executable
/// carries a relocation for every pointer in its data, 24 bytes each in
/// the classic format (6,700 of them: 162 KB of the 2.40 MB binary);
/// packed, they take 2 KB. A scale-to-zero server is often started with
/// its binary out of the page cache, and the kernel reads the whole file
/// then: 6.5% less to read (cold start after drop_caches, 30 interleaved
/// runs: 8.67 ms median, 8.25 packed). The result needs glibc 2.36 to run
/// (the .deb's dependency on libc6 says so), so only a native build whose
/// C compiler links such a program and whose C library then runs it gets
/// the flag: the probe is a tiny C program with a relative relocation,
/// linked with the flag and run. Cross builds and custom linkers are left
/// as they are. Only the binary: applications built on the library link
/// as their own build says.
fn packed_relocations() -> bool {
    let target = env("TARGET");
    if target != env("HOST") || !target.ends_with("-linux-gnu") {
        return false;
    }
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if std::env::var_os(linker_var).is_some() {
        return false;
    }
    let out = PathBuf::from(env("OUT_DIR"));
    let source = out.join("relr-probe.c");
    let probe = out.join("relr-probe");
    // `p` needs a relative relocation in a position-independent executable.
    let program = "static int x = 7; int *p = &x; int main(void) { return *p - 7; }\n";
    if std::fs::write(&source, program).is_err() {
        return false;
    }
    let linked = Command::new("cc")
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&probe)
        .arg(&source)
        .stdout(Stdio::null())
        .output()
        // Older linkers ignore an unknown -z option with a warning.
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    linked
        && Command::new(&probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
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
