//! Build script: `SPYGLASS_VERSION` for `spyglass --version`, the package
//! version plus the git revision when built from a checkout
//! ("0.1.0 (git 0123456789ab)"), the package version alone otherwise (a
//! crate from crates.io, a tarball, no git on PATH); and, for the
//! `spyglass` binary, the unwinder linked in rather than loaded from
//! `libgcc_s.so.1` where the toolchain has it as an archive (see
//! [`static_unwinder`]), and packed relative relocations where the
//! toolchain and C library have them (see [`packed_relocations`]).
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
    if let Some(dir) = static_unwinder() {
        println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
        // The examples too: the test of a handler that panics (caught,
        // answered 500) runs one, so Rust's unwinding is tested through
        // this unwinder.
        println!("cargo:rustc-link-arg-examples=-L{}", dir.display());
    }
    if packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether to link the `spyglass` binary with `-z pack-relative-relocs`
/// (DT_RELR: GNU ld 2.38, glibc 2.36).
///
/// Why: a position-independent executable carries a relocation for every
/// pointer in its data, 24 bytes each in the classic format: 6,700 of
/// them, 157 KB of the 2.43 MB binary; packed, they take 2 KB. A
/// scale-to-zero server often starts with its binary out of the page
/// cache, and the kernel then reads the whole file on the first fault.
/// Cold start after `drop_caches` (connect to first byte under
/// `systemd-socket-activate`, 30 interleaved runs each): 8.39 ms median
/// classic, 7.97 packed; from the page cache no difference (60 runs each,
/// twice).
///
/// The cost: such a binary asks glibc for the version `GLIBC_ABI_DT_RELR`
/// (2.36) and does not start without it. That version names no symbol,
/// so dpkg-shlibdeps does not see it: the .deb states `libc6 (>= 2.36)`
/// itself (Cargo.toml), and tests/it/package.rs checks that the package's
/// `Depends` covers every glibc version the packaged binary needs.
///
/// How: only a native linux-gnu build that links with `cc` (no custom
/// linker, not `crt-static`, which the probe would not represent), and
/// only if a probe with a relative relocation links with the
/// flag (older linkers ignore an unknown `-z` option with a warning) and
/// then runs on this C library. Only the binary: applications built on
/// the library link as their own build says.
fn packed_relocations() -> bool {
    if !native_cc_build() || crt_static() {
        return false;
    }
    let dir = PathBuf::from(env("OUT_DIR")).join("packed-relocations");
    // `p` needs a relative relocation in a position-independent executable.
    let program = "static int x = 7;\nint *p = &x;\nint main(void) { return *p - 7; }\n";
    probe_runs(
        &dir,
        program,
        &["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs"],
    )
}

/// Whether `program` (C), written to `dir` and linked by `cc` with
/// `flags`, links without a word on stderr (an older linker only warns
/// about a `-z` option it does not know) and then runs successfully.
fn probe_runs(dir: &Path, program: &str, flags: &[&str]) -> bool {
    let source = dir.join("probe.c");
    let probe = dir.join("probe");
    if std::fs::create_dir_all(dir).is_err() || std::fs::write(&source, program).is_err() {
        return false;
    }
    let linked = Command::new("cc")
        .arg("-o")
        .arg(&probe)
        .arg(&source)
        .args(flags)
        .stdout(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    linked
        && Command::new(&probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// A build for the machine it runs on, for linux-gnu, linked by `cc`: the
/// only kind whose linker build.rs can probe by running what it links.
fn native_cc_build() -> bool {
    let target = env("TARGET");
    if target != env("HOST") || !target.ends_with("-linux-gnu") {
        return false;
    }
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    std::env::var_os(linker_var).is_none()
}

/// A build with `-C target-feature=+crt-static` (a static executable).
fn crt_static() -> bool {
    env("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static")
}

/// A directory that, first on the linker's search path, links the
/// `spyglass` binary with the unwinder from `libgcc_eh.a` (as gcc's
/// `-static-libgcc` does) instead of `libgcc_s.so.1`; `None` where that
/// cannot be had.
///
/// Why: a scale-to-zero server often starts with its files out of the page
/// cache, and `libgcc_s.so.1` is one more file to read then (no other
/// process on a small host maps it; the C library, which everything maps,
/// stays cached). Cold start after `drop_caches`, connect to first byte
/// under `systemd-socket-activate`, 30 interleaved runs each: 7.25 ms
/// median with `libgcc_s.so.1`, 6.42 without (and 7.43 against 6.82 in 20
/// more); from the page cache, 0.15 to 0.25 ms less from `execve` to
/// `main` (one library fewer to map and relocate). The binary grows by
/// 24 KB, the unwinder's code. GCC 12's unwinder asks glibc for
/// `_dl_find_object` (2.35), so the binary needs glibc 2.35 where it
/// needed 2.34; that is a versioned symbol, so the .deb's `Depends` says
/// so (dpkg-shlibdeps: `libc6 (>= 2.35)`), and a build from source links
/// against the host's own toolchain.
///
/// How: Rust's standard library asks for the unwinder as `-lgcc_s` on
/// linux-gnu, and the linker takes the first `libgcc_s.so` on its search
/// path (normally gcc's linker script naming `libgcc_s.so.1`). Here a
/// linker script of that name names `libgcc_eh.a`, the static unwinder
/// (`cc -print-file-name` says whether the toolchain has it). Only on a
/// native linux-gnu build that links with `cc` (no custom linker, not
/// `crt-static`, which links the unwinder statically already), and only
/// if a probe linked this way walks its own stack with
/// `_Unwind_Backtrace`. Only the binary (and the
/// examples, see below): applications built on the library link as their
/// own build says.
fn static_unwinder() -> Option<PathBuf> {
    if !native_cc_build() || crt_static() {
        return None;
    }
    let has_archive = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|p| PathBuf::from(p.trim()))
        // Not found, cc prints the bare name back.
        .is_some_and(|p| p.is_absolute() && p.is_file());
    if !has_archive {
        return None;
    }
    let dir = PathBuf::from(env("OUT_DIR")).join("static-unwinder");
    std::fs::create_dir_all(&dir).ok()?;
    // By name, not by path: the linker finds it where cc's own search
    // path says, so a compiler upgraded since this script last ran (cargo
    // keeps its output until build.rs changes) links against its own.
    let script = "/* spyglass's build.rs: the unwinder from the archive, not libgcc_s.so.1 */\nINPUT ( -lgcc_eh )\n";
    std::fs::write(dir.join("libgcc_s.so"), script).ok()?;
    // The probe: walks its own stack, linked with the directory first.
    let program = "#include <unwind.h>\n\
        static _Unwind_Reason_Code frame(struct _Unwind_Context *c, void *n)\n\
        { (void)c; ++*(int *)n; return _URC_NO_REASON; }\n\
        int main(void) { int n = 0; _Unwind_Backtrace(frame, &n); return n > 0 ? 0 : 1; }\n";
    let search = format!("-L{}", dir.display());
    probe_runs(&dir, program, &[&search, "-lgcc_s"]).then_some(dir)
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
