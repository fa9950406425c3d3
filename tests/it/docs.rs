//! The manual pages, the shell completions and `--version` (issue 13).
//!
//! The pages and completions come from the clap definitions `--help`
//! prints (`spyglass man`, `spyglass completions SHELL`); the Debian package
//! ships copies from `doc/`. These tests hold the copies equal to what the
//! binary prints (`SPYGLASS_BLESS=1 cargo test --test it docs::` rewrites
//! them), check that every flag `--help` lists is in the pages and that man
//! renders them without a warning (as lintian runs it), and drive the bash
//! completion the way bash does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

fn doc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("doc")
}

fn run(args: &[&str]) -> Output {
    Command::new(spyglass())
        .args(args)
        .output()
        .expect("run spyglass")
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "spyglass {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommands `spyglass --help` lists under "Commands:".
fn subcommands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Each packaged file under doc/ and the arguments that print it.
fn generated() -> Vec<(String, Vec<String>)> {
    let mut files = vec![("spyglass.1".to_owned(), vec!["man".to_owned()])];
    for sub in subcommands() {
        files.push((format!("spyglass-{sub}.1"), vec!["man".into(), sub]));
    }
    for (file, shell) in [
        ("completions/spyglass.bash", "bash"),
        ("completions/_spyglass", "zsh"),
        ("completions/spyglass.fish", "fish"),
    ] {
        files.push((file.into(), vec!["completions".into(), shell.into()]));
    }
    files
}

#[test]
fn packaged_pages_and_completions_are_what_the_binary_prints() {
    let bless = std::env::var_os("SPYGLASS_BLESS").is_some_and(|v| v == "1");
    let files = generated();
    let mut stale = Vec::new();
    for (file, args) in &files {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = stdout_of(&args);
        let path = doc_dir().join(file);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&want) {
            stale.push(format!("doc/{file} (spyglass {})", args.join(" ")));
        }
    }
    // No page for a subcommand that is gone.
    let pages: BTreeSet<String> = files
        .iter()
        .filter(|(f, _)| f.ends_with(".1"))
        .map(|(f, _)| f.clone())
        .collect();
    for entry in std::fs::read_dir(doc_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") && !pages.contains(&name) {
            if bless {
                std::fs::remove_file(doc_dir().join(&name)).unwrap();
            } else {
                stale.push(format!("doc/{name} (no such subcommand)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; rewrite them with \
         `SPYGLASS_BLESS=1 cargo test --test it docs::` and commit them"
    );
}

/// The roff source as text: `\-` is a hyphen, font changes are dropped.
fn roff_text(page: &str) -> String {
    page.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
}

/// `word` occurs in `text` with no option character right after it
/// (`--max-head` is not found in `--max-headers`).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let next = text[at + word.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// What `--help` names: each flag (`-w`, `--workers`), each positional
/// (`ROOT`) and each environment variable (`SPYGLASS_WORKERS`).
fn help_names(help: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in help.lines().map(str::trim_start) {
        if line.starts_with('-') {
            let spec = line.split("  ").next().unwrap_or(line);
            for word in spec.split([',', ' ']) {
                if word.starts_with('-') && word.len() > 1 {
                    names.insert(word.to_owned());
                }
            }
        } else if let Some(pos) = line.strip_prefix('[').or_else(|| line.strip_prefix('<')) {
            if let Some(name) = pos.split([']', '>']).next() {
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase()) {
                    names.insert(name.to_owned());
                }
            }
        }
        if let Some(env) = line.strip_prefix("[env: ") {
            names.insert(env.split('=').next().unwrap_or("").to_owned());
        }
    }
    names
}

#[test]
fn every_flag_in_help_is_in_the_manual() {
    let mut pages = vec![(vec!["man"], vec!["--help"])];
    let subs = subcommands();
    assert!(subs.iter().any(|s| s == "completions"), "{subs:?}");
    for sub in &subs {
        pages.push((vec!["man", sub], vec![sub, "--help"]));
    }
    for (man_args, help_args) in pages {
        let page = roff_text(&stdout_of(&man_args));
        let names = help_names(&stdout_of(&help_args));
        assert!(
            names.contains("--help") && names.len() > 2,
            "{help_args:?}: {names:?}"
        );
        let missing: Vec<&String> = names.iter().filter(|n| !has_word(&page, n)).collect();
        assert!(
            missing.is_empty(),
            "spyglass {man_args:?} lacks {missing:?}"
        );
    }
    // The main page lists every subcommand, and holds the hand-written
    // sections.
    let main = roff_text(&stdout_of(&["man"]));
    for sub in &subs {
        assert!(has_word(&main, &format!("spyglass-{sub}(1)")), "{sub}");
    }
    for section in [
        "SOCKET ACTIVATION",
        "IDLE EXIT",
        "SIGNALS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            main.contains(&format!(".SH \"{section}\""))
                || main.contains(&format!(".SH {section}\n")),
            "{section}"
        );
    }
    for status in ["0", "1", "2", "78"] {
        assert!(
            main.contains(&format!(".B {status}\n")),
            "exit status {status}"
        );
    }
}

#[test]
fn man_renders_the_pages_without_warnings() {
    for (file, args) in generated().iter().filter(|(f, _)| f.ends_with(".1")) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let page = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(page.path(), stdout_of(&args)).unwrap();
        // As lintian's groff-message check runs it.
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(page.path())
            .env("LC_ALL", "C.UTF-8")
            .env("MANROFFSEQ", "")
            .env("MANWIDTH", "80")
            .output()
            .expect("man (package man-db)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "{file}: {err}"
        );
        assert!(!out.stdout.is_empty(), "{file} rendered nothing");
    }
}

/// What bash completes for `words` (the last one being completed), with
/// the script `spyglass completions bash` prints.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), stdout_of(&["completions", "bash"])).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}' && COMP_WORDS=({}) && COMP_CWORD={cword} && \
         _spyglass spyglass '{}' '{prev}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display(),
        quoted.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_flags_subcommands_and_values() {
    assert_eq!(bash_completes(&["spyglass", "--idle"]), ["--idle-timeout"]);
    assert_eq!(bash_completes(&["spyglass", "comp"]), ["completions"]);
    let shells = bash_completes(&["spyglass", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
    assert_eq!(
        bash_completes(&["spyglass", "--log-target", ""]),
        ["auto", "journald", "stderr"]
    );
    // zsh and fish: their scripts name every long flag too.
    let help = help_names(&stdout_of(&["--help"]));
    for shell in ["zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for flag in help.iter().filter(|n| n.starts_with("--")) {
            let bare = flag.trim_start_matches('-');
            assert!(has_word(&script, bare), "{shell} completion lacks {flag}");
        }
    }
}

#[test]
fn bad_subcommand_arguments_exit_2_with_one_line() {
    for (args, names) in [
        (&["completions"][..], "<SHELL>"),
        (&["completions", "tcsh"], "tcsh"),
        (&["man", "nope"], "nope"),
        (&["completions", "bash", "--workers", "2"], "--workers"),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(names), "{args:?} names {names}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A reader that went away is not an error (`spyglass man | head -1`):
    // stdout is a pipe whose read end is already closed.
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(spyglass())
        .arg("man")
        .stdout(std::process::Stdio::from(write))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn version_names_the_git_revision_of_a_checkout() {
    let pkg = env!("CARGO_PKG_VERSION");
    let dir = env!("CARGO_MANIFEST_DIR");
    let rev = Path::new(dir)
        .join(".git")
        .exists()
        .then(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(dir)
                .output()
                .ok()
                .filter(|o| o.status.success())
        })
        .flatten()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let want = match &rev {
        Some(rev) => format!("spyglass {pkg} (git {rev})\n"),
        None => format!("spyglass {pkg}\n"),
    };
    eprintln!("expecting {want:?}");
    for flag in ["--version", "-V"] {
        assert_eq!(stdout_of(&[flag]), want);
    }
    // The pages carry the release, not the commit.
    let page = stdout_of(&["man"]);
    assert!(page.contains(&format!("\"spyglass {pkg}\"")), "{page}");
    assert!(!page.contains("(git "), "the page names a commit");
}
