//! The static file handler through the real binary: paths, types,
//! validators, preconditions, ranges, precompressed siblings, listings,
//! methods, special files, and a traversal suite in raw bytes that checks
//! no response ever carries a secret kept next to (outside) the root.

use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

const T: Duration = Duration::from_secs(10);

/// A root and, beside it, a secret that must never be served:
/// `outer/secret.txt` and `outer/root/...`.
struct Site {
    outer: tempfile::TempDir,
    root: PathBuf,
    secret: String,
    big: Vec<u8>,
    /// Keeps the socket file's listener alive.
    _sock: UnixListener,
}

fn site_with_secret() -> Site {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("TOP-SECRET-{}-{stamp}", std::process::id());
    std::fs::write(outer.path().join("secret.txt"), &secret).unwrap();
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + 7) as u8).collect();
    w("index.html", b"<h1>home</h1>\n");
    w("hello.txt", b"hello\n");
    w("big.bin", &big);
    w("app.js", b"let x = 1;\n");
    w("mod.mjs", b"export {};\n");
    w("data.json", b"{}\n");
    w("pic.svg", b"<svg/>\n");
    w("style.css", b"p{}\n");
    w("blob.zzz", b"?\n");
    w("noext", b"?\n");
    w("empty.txt", b"");
    w("back\\slash.txt", b"backslash\n");
    w("sub/index.html", b"<h1>sub</h1>\n");
    w("list/a b.txt", b"a b\n");
    w("list/<x>&.txt", b"x\n");
    w("list/c%20d.txt", b"c d\n");
    w("list/.hidden.txt", b"hidden\n");
    w("list/z-dir/inner.txt", b"inner\n");
    w(".secret-dot", b"dot\n");
    w(".git/config", b"[core]\n");
    w(".well-known/security.txt", b"Contact: x\n");
    w(".well-known/.private", b"no\n");
    w("comp.js", b"plain js\n");
    w("comp.js.br", b"BR-BYTES");
    w("comp.js.gz", b"GZ-BYTES");
    w("only.css", b"plain css\n");
    w("only.css.gz", b"GZ-CSS");
    symlink("/etc/passwd", root.join("passwd")).unwrap();
    symlink(outer.path(), root.join("outdir")).unwrap();
    symlink("../secret.txt", root.join("climb")).unwrap();
    symlink("hello.txt", root.join("inside")).unwrap();
    symlink("sub", root.join("insidedir")).unwrap();
    symlink("../hello.txt", root.join("list/up.txt")).unwrap();
    symlink("/etc/passwd", root.join("list/esc.txt")).unwrap();
    symlink("../../secret.txt", root.join("list/z-dir/climb2")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let sock = UnixListener::bind(root.join("sock")).unwrap();
    Site {
        outer,
        root,
        secret,
        big,
        _sock: sock,
    }
}

fn serve(site: &Site, extra: &[&str]) -> (Proc, SocketAddr) {
    serve_dir(&site.root, extra)
}

fn req(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, method, target, headers)
}

/// The status code of a raw exchange's first response.
fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"))
}

#[test]
fn files_carry_type_validators_and_nosniff() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    let r = get(addr, "/hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("6"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("vary"), None, "no sibling, no Vary");
    assert_eq!(r.header("cache-control"), None);
    let etag = r.header("etag").unwrap();
    let inner = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"'));
    let fields: Vec<&str> = inner.unwrap().split('-').collect();
    assert_eq!(fields.len(), 3, "{etag}");
    assert!(
        fields
            .iter()
            .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_hexdigit())),
        "{etag}"
    );
    let mtime = std::fs::metadata(site.root.join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        r.header("last-modified"),
        Some(httpdate::fmt_http_date(mtime).as_str())
    );
    // A backslash is an ordinary filename byte, raw or encoded.
    assert_eq!(get(addr, "/back\\slash.txt").text(), "backslash\n");
    assert_eq!(get(addr, "/back%5Cslash.txt").text(), "backslash\n");
    // The same file through a symlink inside the root: same bytes.
    assert_eq!(get(addr, "/inside").text(), "hello\n");
    // Binary content arrives intact.
    let r = get(addr, "/big.bin");
    assert_eq!(r.status, 200);
    assert!(r.body == site.big, "big.bin differs");
    // An empty file.
    let r = get(addr, "/empty.txt");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

#[test]
fn content_types_follow_extensions() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    let cases = [
        ("/", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/mod.mjs", "application/javascript; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/pic.svg", "image/svg+xml; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/blob.zzz", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
        ("/big.bin", "application/octet-stream"),
    ];
    for (path, want) in cases {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(want), "{path}");
    }
}

/// Headers minus `Date`, for comparing two responses.
fn headers_but_date(r: &Response) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    h.sort();
    h
}

#[test]
fn head_answers_like_get_without_a_body() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &["--list-dirs", "--cache-control", "max-age=60"]);
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/hello.txt", &[]),
        ("/big.bin", &[]),
        ("/comp.js", &[("Accept-Encoding", "br")]),
        ("/missing", &[]),
        ("/sub", &[]),
        ("/sub/", &[]),
        ("/list/", &[]),
        ("/.git/config", &[]),
    ];
    for (path, extra) in cases {
        let mut raw = String::new();
        for method in ["HEAD", "GET"] {
            raw.push_str(&format!("{method} {path} HTTP/1.1\r\nHost: t\r\n"));
            for (n, v) in *extra {
                raw.push_str(&format!("{n}: {v}\r\n"));
            }
            raw.push_str("\r\n");
        }
        // Both on one connection: had HEAD sent a body, the GET's
        // response would not parse.
        let mut c = Client::connect(addr);
        c.send(raw.as_bytes());
        let head = c.response_to("HEAD").expect("HEAD response");
        let get = c.response_to("GET").expect("GET response after HEAD");
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(headers_but_date(&head), headers_but_date(&get), "{path}");
        assert!(head.body.is_empty(), "{path}");
        assert_eq!(
            get.header("content-length")
                .map(|l| l.parse::<usize>().unwrap()),
            Some(get.body.len()),
            "{path}"
        );
    }
    // A Range applies to GET only.
    let r = req(addr, "HEAD", "/big.bin", &[("Range", "bytes=0-9")]);
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("100000"))
    );
}

#[test]
fn options_and_other_methods() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    for target in ["/hello.txt", "*", "/missing"] {
        let r = req(addr, "OPTIONS", target, &[]);
        assert_eq!(r.status, 204, "{target}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"), "{target}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "BREW"] {
        let r = req(addr, method, "/hello.txt", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"), "{method}");
        assert!(!r.text().contains("hello"), "{method}");
    }
}

#[test]
fn directories_serve_index_or_redirect() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    assert_eq!(get(addr, "/").text(), "<h1>home</h1>\n");
    assert_eq!(get(addr, "/sub/").text(), "<h1>sub</h1>\n");
    assert_eq!(get(addr, "/insidedir/").text(), "<h1>sub</h1>\n");
    let cases = [
        ("/sub", "/sub/"),
        ("/sub?x=1&y=%20", "/sub/?x=1&y=%20"),
        ("/insidedir", "/insidedir/"),
        ("/list/z-dir", "/list/z-dir/"),
        ("/list/z-dir/.", "/list/z-dir/"),
        // Never a protocol-relative Location that would leave the site.
        ("//sub", "/sub/"),
        ("/.//sub", "/sub/"),
    ];
    for (path, location) in cases {
        let r = get(addr, path);
        assert_eq!(r.status, 301, "{path}");
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
    // No index.html and no --list-dirs.
    assert_eq!(get(addr, "/list/").status, 404);
    // A file asked for as a directory.
    assert_eq!(get(addr, "/hello.txt/").status, 404);
}

#[test]
fn listings_only_with_list_dirs() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &["--list-dirs"]);
    let r = get(addr, "/list/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("content-security-policy").is_some());
    let html = r.text();
    for want in [
        "Index of /list/",
        "<a href=\"../\">../</a>",
        "<a href=\"a%20b.txt\">a b.txt</a>",
        "<a href=\"%3Cx%3E%26.txt\">&lt;x&gt;&amp;.txt</a>",
        "<a href=\"c%2520d.txt\">c%20d.txt</a>",
        "<a href=\"z-dir/\">z-dir/</a>",
        "<a href=\"up.txt\">up.txt</a>",
        "title=\"4 bytes\"",
        " GMT</td>",
    ] {
        assert!(html.contains(want), "{want} in:\n{html}");
    }
    // Hidden entries and links leading out of the root are not listed.
    for absent in [".hidden", "esc.txt", "<x>&.txt\""] {
        assert!(!html.contains(absent), "{absent} in:\n{html}");
    }
    // Sorted: directories first, then names.
    let order: Vec<usize> = ["z-dir/", "%3Cx%3E", "a%20b", "c%2520d", "up.txt"]
        .iter()
        .map(|n| html.find(&format!("href=\"{n}")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
    // The links work.
    assert_eq!(get(addr, "/list/a%20b.txt").text(), "a b\n");
    assert_eq!(get(addr, "/list/%3Cx%3E%26.txt").text(), "x\n");
    assert_eq!(get(addr, "/list/c%2520d.txt").text(), "c d\n");
    // A directory whose only entry climbs out lists nothing but itself.
    let inner = get(addr, "/list/z-dir/").text();
    assert!(
        inner.contains("inner.txt") && !inner.contains("climb2"),
        "{inner}"
    );
    // The root has an index.html: it is served, not listed.
    assert_eq!(get(addr, "/").text(), "<h1>home</h1>\n");

    let (_p, addr) = serve(&site, &["--list-dirs", "--show-hidden"]);
    let html = get(addr, "/list/").text();
    assert!(
        html.contains("<a href=\".hidden.txt\">.hidden.txt</a>"),
        "{html}"
    );
}

#[test]
fn hidden_files_only_with_show_hidden() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    for path in [
        "/.secret-dot",
        "/.git/config",
        "/.git/",
        "/list/.hidden.txt",
        "/%2esecret-dot",
        "/.well-known/.private",
    ] {
        assert_eq!(get(addr, path).status, 404, "{path}");
    }
    // RFC 8615: the root's .well-known is public.
    assert_eq!(
        get(addr, "/.well-known/security.txt").text(),
        "Contact: x\n"
    );
    let (_p, addr) = serve(&site, &["--show-hidden"]);
    assert_eq!(get(addr, "/.secret-dot").text(), "dot\n");
    assert_eq!(get(addr, "/.git/config").text(), "[core]\n");
    assert_eq!(get(addr, "/list/.hidden.txt").text(), "hidden\n");
    assert_eq!(
        get(addr, "/..").status,
        404,
        ".. is never hidden-file business"
    );
}

#[test]
fn conditional_requests_follow_rfc_9110_order() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &["--cache-control", "max-age=60"]);
    let first = get(addr, "/hello.txt");
    let etag = first.header("etag").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let lm = first.header("last-modified").unwrap().to_owned();
    let past = "Sat, 01 Jan 2000 00:00:00 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let x_or_ours = format!("\"x\", {etag}");
    let a_or_ours = format!("\"a\", {etag}");
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("If-None-Match", &etag)], 304),
        (vec![("If-None-Match", &weak)], 304),
        (vec![("If-None-Match", "*")], 304),
        (vec![("If-None-Match", &x_or_ours)], 304),
        (vec![("If-None-Match", "\"x\"")], 200),
        (vec![("If-Modified-Since", &lm)], 304),
        (vec![("If-Modified-Since", future)], 304),
        (vec![("If-Modified-Since", past)], 200),
        (vec![("If-Modified-Since", "not a date")], 200),
        (
            vec![("If-None-Match", "\"x\""), ("If-Modified-Since", &lm)],
            200,
        ),
        (vec![("If-Match", &etag)], 200),
        (vec![("If-Match", "*")], 200),
        (vec![("If-Match", &a_or_ours)], 200),
        (vec![("If-Match", "\"x\"")], 412),
        (vec![("If-Match", &weak)], 412),
        (vec![("If-Unmodified-Since", past)], 412),
        (vec![("If-Unmodified-Since", &lm)], 200),
        (vec![("If-Unmodified-Since", "garbage")], 200),
        (
            vec![("If-Match", &etag), ("If-Unmodified-Since", past)],
            200,
        ),
        (vec![("If-Match", "\"x\""), ("If-None-Match", &etag)], 412),
        (vec![("If-Match", &etag), ("If-None-Match", &etag)], 304),
    ];
    for (headers, want) in &cases {
        for method in ["GET", "HEAD"] {
            let r = req(addr, method, "/hello.txt", headers);
            assert_eq!(r.status, *want, "{method} {headers:?}");
            if r.status == 304 {
                assert_eq!(r.header("etag"), Some(etag.as_str()));
                assert_eq!(r.header("last-modified"), Some(lm.as_str()));
                assert_eq!(r.header("cache-control"), Some("max-age=60"));
                assert_eq!(r.header("content-length"), None);
            }
        }
    }
    // A 304 has no body: the next response on the connection parses.
    let mut c = Client::connect(addr);
    c.send(
        format!(
            "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n\
             GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(c.response().unwrap().status, 304);
    assert_eq!(c.response().unwrap().text(), "hello\n");
}

#[test]
fn single_ranges() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    let len = site.big.len();
    let cases = [
        ("bytes=0-9", 0, 9),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=99990-200000", 99_990, 99_999),
        ("bytes=-200000", 0, 99_999),
        ("bytes=5-5", 5, 5),
        ("bytes=0-1, 500000-", 0, 1),
    ];
    for (range, a, b) in cases {
        let r = req(addr, "GET", "/big.bin", &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/octet-stream"),
            "{range}"
        );
        assert!(r.body == site.big[a..=b], "{range}");
        assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
    }
}

/// The parts of a `multipart/byteranges` body: (headers, data).
fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let open = format!("--{boundary}\r\n");
    let close = format!("\r\n--{boundary}--\r\n");
    let sep = format!("\r\n--{boundary}\r\n");
    assert!(body.starts_with(open.as_bytes()) && body.ends_with(close.as_bytes()));
    let inner = &body[open.len()..body.len() - close.len()];
    let mut out = Vec::new();
    let mut rest = inner;
    loop {
        let end = rest
            .windows(sep.len())
            .position(|w| w == sep.as_bytes())
            .unwrap_or(rest.len());
        let part = &rest[..end];
        let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        out.push((
            String::from_utf8(part[..split].to_vec()).unwrap(),
            part[split + 4..].to_vec(),
        ));
        if end == rest.len() {
            return out;
        }
        rest = &rest[end + sep.len()..];
    }
}

#[test]
fn multiple_ranges_are_multipart_byteranges() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    let r = req(
        addr,
        "GET",
        "/big.bin",
        &[("Range", "bytes=0-4, 50000-50009,-5")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), None);
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let got = parts(&r.body, boundary);
    let want = [(0, 4), (50_000, 50_009), (99_995, 99_999)];
    assert_eq!(got.len(), want.len());
    for ((head, data), (a, b)) in got.iter().zip(want) {
        assert_eq!(
            head,
            &format!(
                "Content-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/100000"
            )
        );
        assert!(data[..] == site.big[a..=b], "{a}-{b}");
    }
    assert!(
        !site
            .big
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
    );
    // Text keeps its charset in each part.
    let r = req(addr, "GET", "/hello.txt", &[("Range", "bytes=0-0,2-2")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let got = parts(&r.body, boundary);
    assert_eq!(
        got[1].0,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 2-2/6"
    );
    assert_eq!(got[1].1, b"l");
}

#[test]
fn unsatisfiable_invalid_and_abusive_ranges() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    for range in ["bytes=100000-", "bytes=200000-300000, 100000-", "bytes=-0"] {
        let r = req(addr, "GET", "/big.bin", &[("Range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */100000"), "{range}");
    }
    let r = req(addr, "GET", "/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */0"))
    );
    // A suffix is satisfiable even on nothing (RFC 9110 §14.1.1): the
    // empty whole.
    let r = req(addr, "GET", "/empty.txt", &[("Range", "bytes=-5")]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    let seventeen = format!("bytes={}", vec!["1-2"; 17].join(","));
    let sixteen = format!("bytes={}", vec!["1-2"; 16].join(","));
    for range in [
        "bytes=5-1",
        "bytes=x-y",
        "items=0-1",
        "bytes 0-1",
        "bytes=",
        seventeen.as_str(),
        "bytes=0-99999,0-99999",
        "bytes=0-60000,40000-",
    ] {
        let r = req(addr, "GET", "/big.bin", &[("Range", range)]);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body.len(), 100_000, "{range}");
    }
    let r = req(addr, "GET", "/big.bin", &[("Range", &sixteen)]);
    assert_eq!(r.status, 206);
}

#[test]
fn if_range_needs_a_strong_match() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    let first = get(addr, "/big.bin");
    let etag = first.header("etag").unwrap().to_owned();
    let lm = first.header("last-modified").unwrap().to_owned();
    let cases = [
        (etag.clone(), 206),
        (format!("W/{etag}"), 200),
        ("\"other\"".to_owned(), 200),
        (lm, 206),
        ("Sat, 01 Jan 2000 00:00:00 GMT".to_owned(), 200),
        ("garbage".to_owned(), 200),
    ];
    for (if_range, want) in cases {
        let r = req(
            addr,
            "GET",
            "/big.bin",
            &[("Range", "bytes=0-9"), ("If-Range", &if_range)],
        );
        assert_eq!(r.status, want, "{if_range}");
        assert_eq!(r.body.len(), if want == 206 { 10 } else { 100_000 });
    }
}

#[test]
fn precompressed_siblings() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &["--cache-control", "no-cache"]);
    let plain = req(addr, "GET", "/comp.js", &[]);
    assert_eq!(plain.text(), "plain js\n");
    assert_eq!(plain.header("vary"), None, "no Accept-Encoding: no probe");
    let identity_tag = plain.header("etag").unwrap().to_owned();
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        // path, Accept-Encoding => body, Content-Encoding
        ("/comp.js", "br, gzip", "BR-BYTES", Some("br")),
        (
            "/comp.js",
            "gzip, deflate, br, zstd",
            "BR-BYTES",
            Some("br"),
        ),
        ("/comp.js", "gzip", "GZ-BYTES", Some("gzip")),
        ("/comp.js", "br;q=0, gzip", "GZ-BYTES", Some("gzip")),
        ("/comp.js", "gzip;q=0.9, br;q=0.5", "GZ-BYTES", Some("gzip")),
        ("/comp.js", "*", "BR-BYTES", Some("br")),
        ("/comp.js", "*;q=0", "plain js\n", None),
        ("/comp.js", "identity", "plain js\n", None),
        ("/comp.js", "identity;q=1, br;q=0.5", "plain js\n", None),
        ("/comp.js", "identity;q=0, gzip", "GZ-BYTES", Some("gzip")),
        ("/comp.js", "deflate", "plain js\n", None),
        ("/comp.js", "", "plain js\n", None),
        ("/only.css", "br", "plain css\n", None),
        ("/only.css", "br, gzip", "GZ-CSS", Some("gzip")),
    ];
    let mut tags = std::collections::HashSet::new();
    for (path, ae, body, coding) in cases {
        let r = req(addr, "GET", path, &[("Accept-Encoding", ae)]);
        assert_eq!((r.status, r.text().as_str()), (200, *body), "{path} {ae:?}");
        assert_eq!(r.header("content-encoding"), *coding, "{path} {ae:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{path} {ae:?}");
        let want_type = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.header("content-type"), Some(want_type), "{path} {ae:?}");
        if *path == "/comp.js" {
            tags.insert((r.header("etag").unwrap().to_owned(), *body));
        }
    }
    // One tag per representation, and they differ.
    let distinct: std::collections::HashSet<_> = tags.iter().map(|(t, _)| t).collect();
    assert_eq!(distinct.len(), 3, "{tags:?}");
    assert!(tags.contains(&(identity_tag, "plain js\n")));
    // No sibling: no Vary even when the client would take one.
    let r = req(
        addr,
        "GET",
        "/hello.txt",
        &[("Accept-Encoding", "br, gzip")],
    );
    assert_eq!(
        (r.header("vary"), r.header("content-encoding")),
        (None, None)
    );
    // Revalidating the brotli copy, and a range of it.
    let br = req(addr, "GET", "/comp.js", &[("Accept-Encoding", "br")]);
    let br_tag = br.header("etag").unwrap();
    let r = req(
        addr,
        "GET",
        "/comp.js",
        &[("Accept-Encoding", "br"), ("If-None-Match", br_tag)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("etag"), Some(br_tag));
    let r = req(
        addr,
        "GET",
        "/comp.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)],
    );
    assert_eq!(r.status, 200, "the gzip copy is another representation");
    let r = req(
        addr,
        "GET",
        "/comp.js",
        &[("Accept-Encoding", "br"), ("Range", "bytes=0-1")],
    );
    assert_eq!((r.status, r.text().as_str()), (206, "BR"));
    assert_eq!(r.header("content-range"), Some("bytes 0-1/8"));
    assert_eq!(r.header("content-encoding"), Some("br"));
}

#[test]
fn cache_control_flag_is_sent_and_validated() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &["--cache-control", "public, max-age=3600"]);
    let r = get(addr, "/hello.txt");
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    let r = req(addr, "GET", "/big.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));

    for bad in ["max-age=", "max age", "a=\"open"] {
        let mut p = Launch::spyglass()
            .arg(site.root.to_str().unwrap())
            .args(["--cache-control", bad, "--listen", "127.0.0.1:0"])
            .start();
        let status = p.wait_exit(T).expect("exits");
        assert_eq!(status.code(), Some(2), "{bad}");
        assert!(
            p.log.wait_for("--cache-control", T),
            "{bad}: {}",
            p.log.text()
        );
    }
}

#[test]
fn special_files_are_404_and_never_block() {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let site = site_with_secret();
    // A character device (/dev/null's numbers) needs CAP_MKNOD; without it
    // a FIFO stands in.
    let null = site.root.join("null");
    if mknod(
        &null,
        SFlag::S_IFCHR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        makedev(1, 3),
    )
    .is_err()
    {
        nix::unistd::mkfifo(&null, Mode::S_IRWXU).unwrap();
    }
    let (_p, addr) = serve(&site, &["--workers", "1"]);
    // One worker: were it stuck opening the FIFO, the next request on
    // the same connection would never be answered.
    let mut c = Client::connect(addr);
    c.send(
        b"GET /fifo HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /sock HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /null HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /fifo/ HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    for what in ["fifo", "socket", "device", "fifo/"] {
        assert_eq!(c.response().unwrap().status, 404, "{what}");
    }
    assert_eq!(c.response().unwrap().text(), "hello\n");
}

#[test]
fn bad_encodings_are_400() {
    let site = site_with_secret();
    let (_p, addr) = serve(&site, &[]);
    for path in [
        "/hello%zz.txt",
        "/hello.txt%",
        "/hello.txt%0",
        "/%ff",
        "/%c0%ae%c0%ae/secret.txt",
        "/%e0%80%ae%e0%80%ae/secret.txt",
        "/%ed%a0%80",
        "/hello.txt%00",
        "/hello.txt%00.html",
    ] {
        assert_eq!(get(addr, path).status, 400, "{path}");
    }
}

/// Run the test's server as `nobody`, so that permissions apply even when
/// the suite runs as root.
fn serve_unprivileged(root: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let as_root = nix::unistd::geteuid().is_root();
    let launch = if as_root {
        Launch::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(spyglass().to_str().unwrap())
    } else {
        Launch::spyglass()
    };
    let p = launch
        .arg(root.to_str().unwrap())
        .args(extra.iter().copied())
        .fd(l)
        .start();
    (p, addr)
}

#[test]
fn permission_denied_is_403() {
    let site = site_with_secret();
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // Everything readable by others, but for the cases below.
    mode(site.outer.path(), 0o755);
    mode(&site.root, 0o755);
    std::fs::write(site.root.join("locked.txt"), "locked\n").unwrap();
    mode(&site.root.join("locked.txt"), 0o600);
    // Searchable but not readable: the index is served, a listing is not.
    std::fs::create_dir(site.root.join("blind")).unwrap();
    std::fs::write(site.root.join("blind/index.html"), "blind index\n").unwrap();
    mode(&site.root.join("blind/index.html"), 0o644);
    std::fs::create_dir(site.root.join("blind2")).unwrap();
    for d in ["blind", "blind2"] {
        mode(&site.root.join(d), 0o711);
    }
    mode(&site.root.join("hello.txt"), 0o644);
    // A device the server may not open is still no file of ours: 404.
    let device = nix::sys::stat::mknod(
        &site.root.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        nix::sys::stat::makedev(1, 3),
    )
    .is_ok();
    let (_p, addr) = serve_unprivileged(&site.root, &["--list-dirs"]);
    // The first request waits in the handed socket's backlog until a
    // worker is up: no READY needed.
    assert_eq!(get(addr, "/hello.txt").text(), "hello\n");
    let r = get(addr, "/locked.txt");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("locked\n"));
    assert_eq!(get(addr, "/blind/").text(), "blind index\n");
    assert_eq!(get(addr, "/blind2/").status, 403);
    if device {
        assert_eq!(get(addr, "/null").status, 404);
    }
}

/// Every way out we know of, as raw request bytes, against a default
/// server and one that shows hidden files and lists directories.
#[test]
fn traversal_never_leaves_root() {
    let site = site_with_secret();
    // The host's /etc/passwd is a well-known target; where a host has none
    // (or an empty one), the absolute paths to the test's own secret below
    // make the same checks.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let passwd_line = passwd.lines().next().map(str::to_owned);
    let secret = site.outer.path().join("secret.txt");
    let secret = secret.to_str().unwrap();
    let own = [
        format!("/{secret}"),
        format!("/proc/self/root{secret}"),
        format!("/..{secret}"),
        format!("http://test/..{secret}"),
    ];
    // target => statuses allowed (400 where the request line itself is
    // refused, 404 where the path is).
    let fixed: &[(&str, &[u16])] = &[
        ("/../secret.txt", &[404]),
        ("/../../../../../../etc/passwd", &[404]),
        ("/sub/../../secret.txt", &[404]),
        ("/..", &[404]),
        ("/%2e%2e/secret.txt", &[404]),
        ("/%2E%2e/secret.txt", &[404]),
        ("/%2e%2E/%2e%2e/etc/passwd", &[404]),
        ("/.%2e/secret.txt", &[404]),
        ("/%2e./secret.txt", &[404]),
        ("/%2e%2e%2fsecret.txt", &[404]),
        ("/sub%2f..%2f..%2fsecret.txt", &[404]),
        ("/%252e%252e/secret.txt", &[404]),
        ("/%252e%252e%252fsecret.txt", &[404]),
        ("/..\\secret.txt", &[404]),
        ("/..\\..\\etc\\passwd", &[404]),
        ("/sub\\..\\..\\secret.txt", &[404]),
        ("/..%5csecret.txt", &[404]),
        ("/..%5c..%5cetc%5cpasswd", &[404]),
        ("/%2e%2e%5csecret.txt", &[404]),
        ("/%c0%ae%c0%ae/secret.txt", &[400]),
        ("/%c0%ae%c0%ae%c0%afsecret.txt", &[400]),
        ("/%e0%80%ae%e0%80%ae/secret.txt", &[400]),
        ("/%c1%9c", &[400]),
        ("/../secret.txt%00", &[400, 404]),
        ("/secret.txt%00.html", &[400]),
        ("/./../secret.txt", &[404]),
        ("/.//..//secret.txt", &[404]),
        ("//../secret.txt", &[404]),
        ("//etc/passwd", &[404]),
        ("/..;/secret.txt", &[404]),
        ("/sub/..;/..;/secret.txt", &[404]),
        ("http://test/../secret.txt", &[404]),
        ("http://test/%2e%2e/secret.txt", &[404]),
        ("http://test/..%2f..%2fetc/passwd", &[404]),
        ("/passwd", &[404]),
        ("/outdir/secret.txt", &[404]),
        ("/outdir/root/hello.txt", &[404]),
        ("/outdir/", &[404]),
        ("/outdir", &[404]),
        ("/climb", &[404]),
        ("/list/esc.txt", &[404]),
        ("/list/z-dir/climb2", &[404]),
        ("/insidedir/../../secret.txt", &[404]),
        ("/fifo", &[404]),
        ("/proc/self/root/etc/passwd", &[404]),
        ("/secret.txt", &[404]),
    ];
    let cases = fixed
        .iter()
        .copied()
        .chain(own.iter().map(|t| (t.as_str(), &[404][..])));
    for extra in [&[][..], &["--show-hidden", "--list-dirs"][..]] {
        let (p, addr) = serve(&site, extra);
        for (target, allowed) in cases.clone() {
            let raw = exchange(
                addr,
                format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let status = status_of(&raw);
            assert!(
                allowed.contains(&status),
                "{target} {extra:?}: {status}\n{raw}"
            );
            assert!(!raw.contains(&site.secret), "{target} leaked the secret");
            if let Some(line) = &passwd_line {
                assert!(!raw.contains(line.as_str()), "{target} leaked /etc/passwd");
            }
        }
        // A symlink inside the root still works.
        let raw = exchange(
            addr,
            b"GET /inside HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        );
        assert!(
            raw.starts_with("HTTP/1.1 200") && raw.ends_with("hello\n"),
            "{raw}"
        );
        // Escapes are logged at warn with the path.
        assert!(
            p.log.wait_for("refused a path that leaves ROOT", T),
            "{}",
            p.log.text()
        );
        assert!(p.log.wait_for("outdir/secret.txt", T), "{}", p.log.text());
        assert!(p.log.wait_for("refused a path with a .. segment", T));
    }
    // Listings never show what lies outside.
    let (_p, addr) = serve(&site, &["--show-hidden", "--list-dirs"]);
    for dir in ["/list/", "/list/z-dir/", "/sub/"] {
        let raw = exchange(
            addr,
            format!("GET {dir} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            !raw.contains(&site.secret) && !raw.contains("esc.txt"),
            "{raw}"
        );
    }
}
