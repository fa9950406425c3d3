//! Fuzz percent-decoding and path resolution: the static handler's and the
//! CGI mapper's, first as pure functions, then against a real ROOT with a
//! secret beside it and symlinks that point at it. The first byte picks
//! the options (hidden files shown, Accept-Encoding, HEAD); the rest is the
//! request path. Properties:
//! - a resolved path is relative and climbs nowhere: no `..`, `.` or
//!   empty segment, no NUL, nothing absolute; hidden segments only when
//!   shown (or `/.well-known/`); and it is the path decoded once
//!   (by the percent-encoding crate) with empty and `.` segments dropped;
//! - served through the real handler, no answer ever names a file outside
//!   ROOT: every `ETag` carries the inode of a file inside it, never the
//!   secret's, and no body has the secret's length; a redirect stays on
//!   this server;
//! - a CGI script found is a file inside the CGI directory, and its
//!   `PATH_INFO` has no `..` segment and no NUL.
#![no_main]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use spyglass::fuzz::{Reject, resolve_path, resolve_script};
use spyglass::http::{Method, Request, Uri, header};
use spyglass::static_files::StaticFiles;
use spyglass::{RequestBody, Response};

/// The secret's length: no file inside ROOT has it.
const SECRET_LEN: usize = 4242;

struct Tree {
    /// Plain and with hidden files shown.
    sites: [StaticFiles; 2],
    cgi_dir: PathBuf,
    inside: HashSet<u64>,
    secret_ino: u64,
}

/// BASE/secret.txt, BASE/secret.sh, and ROOT = BASE/root with files,
/// precompressed siblings, hidden files, a CGI directory and symlinks
/// both inside and out (relative, absolute, to a directory).
fn tree() -> Tree {
    {
        let base = std::env::temp_dir().join(format!("spyglass-fuzz-path-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("root");
        for d in ["dir/sub", ".well-known", ".git", "cgi/sub"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(base.join("secret.txt"), vec![b's'; SECRET_LEN]).unwrap();
        fs::write(base.join("secret.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(base.join("secret.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        for (f, text) in [
            ("index.html", "<p>hi</p>"),
            ("a.txt", "aaaa"),
            ("a.txt.gz", "gz"),
            ("a.txt.br", "br"),
            ("a b.txt", "space"),
            (".hidden", "h"),
            (".git/config", "c"),
            (".well-known/x", "wk"),
            ("dir/b.txt", "bb"),
            ("dir/index.html", "<p>dir</p>"),
            ("dir/sub/c.txt", "c"),
            ("cgi/run.sh", "#!/bin/sh\n"),
            ("cgi/sub/deep.sh", "#!/bin/sh\n"),
        ] {
            fs::write(root.join(f), text).unwrap();
        }
        for f in ["cgi/run.sh", "cgi/sub/deep.sh"] {
            fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (link, to) in [
            ("out.txt", PathBuf::from("../secret.txt")),
            ("dir/out.txt", PathBuf::from("../../secret.txt")),
            ("abs.txt", base.join("secret.txt")),
            ("up", PathBuf::from("..")),
            ("in.txt", PathBuf::from("dir/b.txt")),
            ("b.txt.gz", PathBuf::from("../secret.txt")),
            ("cgi/out.sh", PathBuf::from("../../secret.sh")),
            ("cgi/up", PathBuf::from("../..")),
        ] {
            symlink(to, root.join(link)).unwrap();
        }
        let mut inside = HashSet::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let meta = fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    stack.push(e.path());
                } else if meta.is_file() {
                    inside.insert(meta.ino());
                }
            }
        }
        let site = |shown| {
            StaticFiles::new(&root)
                .unwrap()
                .show_hidden(shown)
                .list_dirs(true)
                .hide(root.join("cgi"))
        };
        Tree {
            sites: [site(false), site(true)],
            cgi_dir: root.join("cgi").canonicalize().unwrap(),
            inside,
            secret_ino: fs::metadata(base.join("secret.txt")).unwrap().ino(),
        }
    }
}

thread_local! {
    // Built once per process; the handler holds ROOT open from then on, as
    // a worker does.
    static TREE: Tree = tree();
}

/// The path decoded once, as the reference: None when an escape is bad
/// or the result is not UTF-8 without NUL.
fn decoded(path: &str) -> Option<String> {
    let b = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return None;
        }
    }
    let s = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    (!s.contains('\0')).then(|| s.into_owned())
}

fn check_pure(path: &str, shown: bool) {
    let got = resolve_path(path, shown);
    let Some(d) = decoded(path).filter(|_| path.starts_with('/')) else {
        assert_eq!(got, Err(Reject::Malformed), "{path:?}");
        return;
    };
    let segs: Vec<&str> = d
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segs.contains(&"..") {
        assert_eq!(got, Err(Reject::Traversal), "{path:?}");
        return;
    }
    let hidden = segs
        .iter()
        .enumerate()
        .any(|(i, s)| s.starts_with('.') && !(i == 0 && *s == ".well-known"));
    if hidden && !shown {
        assert_eq!(got, Err(Reject::Hidden), "{path:?}");
        return;
    }
    let t = got.unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
    let want = if segs.is_empty() {
        ".".to_string()
    } else {
        segs.join("/")
    };
    assert_eq!(t.rel, want, "{path:?}");
    assert_eq!(t.trailing_slash, d.ends_with('/'));
    let components: Vec<Component<'_>> = Path::new(&*t.rel).components().collect();
    assert!(
        components.iter().all(|c| matches!(c, Component::Normal(_)))
            || components == [Component::CurDir],
        "{:?}",
        t.rel
    );
}

fn check_served(res: &Response, tree: &Tree) {
    if let Some(etag) = res.headers().get(header::ETAG) {
        let etag = etag.to_str().unwrap().trim_matches('"');
        let ino = etag
            .split('-')
            .nth(2)
            .and_then(|i| u64::from_str_radix(i, 16).ok())
            .unwrap();
        assert_ne!(ino, tree.secret_ino, "the secret was served");
        assert!(
            tree.inside.contains(&ino),
            "a file outside ROOT was served: inode {ino}"
        );
    }
    assert_ne!(
        res.body().len(),
        Some(SECRET_LEN as u64),
        "{}",
        res.status()
    );
    if let Some(loc) = res.headers().get(header::LOCATION) {
        let loc = loc.as_bytes();
        assert!(loc.starts_with(b"/") && !loc.starts_with(b"//"), "{loc:?}");
    }
}

fn check_script(path: &str, tree: &Tree) {
    let prefix = ["cgi-bin".to_string()];
    if let Ok(t) = resolve_script(&tree.cgi_dir, &prefix, path) {
        assert!(
            t.file.starts_with(&tree.cgi_dir),
            "{path:?} ran {:?}",
            t.file
        );
        assert!(t.script_name.starts_with("/cgi-bin/"));
        assert!(!t.path_info.contains(&0));
        assert!(
            !t.path_info.split(|&b| b == b'/').any(|s| s == b".."),
            "{path:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, raw)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(raw) else {
        return;
    };
    let shown = opts & 1 != 0;
    check_pure(path, shown);

    TREE.with(|tree| serve(path, opts, tree));
});

fn serve(path: &str, opts: u8, tree: &Tree) {
    let shown = opts & 1 != 0;
    check_script(path, tree);
    // Through the real handler, as the codec would pass it on: an
    // origin-form target of visible ASCII.
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return;
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return;
    };
    let mut req = Request::builder()
        .method(if opts & 4 != 0 {
            Method::HEAD
        } else {
            Method::GET
        })
        .uri(uri);
    if opts & 2 != 0 {
        req = req.header(header::ACCEPT_ENCODING, "br, gzip");
    }
    let req = req.body(RequestBody::empty()).unwrap();
    let res = tree.sites[usize::from(shown)].serve(&req);
    check_served(&res, tree);
}
