//! CGI (RFC 3875): the real binary running POSIX sh scripts written into a
//! temporary site. Scripts that must wait for the test read a FIFO the test
//! writes; nothing sleeps to synchronise.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

const T: Duration = Duration::from_secs(10);

/// A script that prints its environment, its working directory last.
const ENV_SH: &str = "printf 'Content-Type: text/plain\\n\\n'\nenv\necho \"CWD=$(pwd)\"\n";

fn env_of(res: &Response) -> HashMap<String, String> {
    assert_eq!(res.status, 200, "{}", res.text());
    res.text()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn request(addr: std::net::SocketAddr, raw: &str) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw.as_bytes());
    c.response().expect("a response")
}

#[test]
fn cgi_environment_follows_rfc3875() {
    let r = running_cgi(&[("env.sh", ENV_SH)], &[]);
    let root = r.site.path().canonicalize().unwrap();
    let mut c = Client::connect(r.addr);
    let client_port = c.stream.local_addr().unwrap().port();
    c.send(
        b"GET /cgi-bin/env.sh/some%20where/x?a=%20b&c=%2F HTTP/1.1\r\n\
          Host: example.test:1234\r\n\
          Proxy: http://attacker.example:3128/\r\n\
          Authorization: Basic dXNlcjpwYXNz\r\n\
          X-Multi: one\r\nX-Multi: two\r\n\
          X_Under_Score: sneaky\r\n\
          Connection: close\r\n\r\n",
    );
    let v = env_of(&c.response().expect("a response"));
    let want = [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        (
            "SERVER_SOFTWARE",
            concat!("spyglass/", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("REQUEST_METHOD", "GET".into()),
        ("SCRIPT_NAME", "/cgi-bin/env.sh".into()),
        ("PATH_INFO", "/some where/x".into()),
        (
            "PATH_TRANSLATED",
            format!("{}/some where/x", root.display()),
        ),
        ("QUERY_STRING", "a=%20b&c=%2F".into()),
        (
            "REQUEST_URI",
            "/cgi-bin/env.sh/some%20where/x?a=%20b&c=%2F".into(),
        ),
        ("SERVER_NAME", "example.test".into()),
        // Our port, not the one in Host, not the client's.
        ("SERVER_PORT", r.addr.port().to_string()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REMOTE_PORT", client_port.to_string()),
        ("REQUEST_SCHEME", "http".into()),
        ("AUTH_TYPE", "Basic".into()),
        ("DOCUMENT_ROOT", root.display().to_string()),
        (
            "SCRIPT_FILENAME",
            root.join("cgi-bin/env.sh").display().to_string(),
        ),
        ("REDIRECT_STATUS", "200".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("HTTP_HOST", "example.test:1234".into()),
        ("HTTP_X_MULTI", "one, two".into()),
        ("CWD", root.join("cgi-bin").display().to_string()),
    ];
    for (k, val) in &want {
        assert_eq!(v.get(*k), Some(val), "{k} in {v:#?}");
    }
    for k in [
        "HTTP_PROXY",
        "HTTP_AUTHORIZATION",
        "HTTP_X_UNDER_SCORE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTPS",
    ] {
        assert!(!v.contains_key(k), "{k} must not be set: {v:#?}");
    }
    // Nothing of the server's own environment; the shell adds PWD.
    for k in v.keys() {
        let ours = want.iter().any(|(w, _)| w == k)
            || k.starts_with("HTTP_")
            || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&k.as_str());
        assert!(ours, "unexpected variable {k}");
    }

    // No PATH_INFO: neither it nor PATH_TRANSLATED; QUERY_STRING empty.
    let v = env_of(&request(
        r.addr,
        "GET /cgi-bin/env.sh HTTP/1.0\r\nHost: h\r\n\r\n",
    ));
    assert_eq!(v.get("QUERY_STRING").map(String::as_str), Some(""));
    assert_eq!(
        v.get("SERVER_PROTOCOL").map(String::as_str),
        Some("HTTP/1.0")
    );
    assert!(!v.contains_key("PATH_INFO") && !v.contains_key("PATH_TRANSLATED"));

    // A body: CONTENT_LENGTH and CONTENT_TYPE, also when it came chunked.
    let v = env_of(&request(
        r.addr,
        "POST /cgi-bin/env.sh HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    ));
    assert_eq!(v.get("CONTENT_LENGTH").map(String::as_str), Some("5"));
    assert_eq!(
        v.get("CONTENT_TYPE").map(String::as_str),
        Some("text/plain")
    );
    assert_eq!(v.get("REQUEST_METHOD").map(String::as_str), Some("POST"));
    let v = env_of(&request(
        r.addr,
        "POST /cgi-bin/env.sh HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
    ));
    assert_eq!(v.get("CONTENT_LENGTH").map(String::as_str), Some("7"));
    assert!(!v.contains_key("HTTP_TRANSFER_ENCODING"), "{v:#?}");
}

/// RFC 9112 §3.2.2: with an absolute-form target, the script is told the
/// target's authority, in `HTTP_HOST` as in `SERVER_NAME`, never the `Host`
/// the client also sent; RFC 9110 §2.5: `HTTP/1.2` is served as 1.1.
#[test]
fn cgi_sees_the_absolute_target_authority_and_protocol_1_1() {
    let r = running_cgi(&[("env.sh", ENV_SH)], &[]);
    let v = env_of(&request(
        r.addr,
        "GET http://example.test:81/cgi-bin/env.sh HTTP/1.2\r\nHost: other.test\r\n\
         Connection: close\r\n\r\n",
    ));
    assert_eq!(
        v.get("HTTP_HOST").map(String::as_str),
        Some("example.test:81")
    );
    assert_eq!(
        v.get("SERVER_NAME").map(String::as_str),
        Some("example.test")
    );
    assert_eq!(
        v.get("SERVER_PROTOCOL").map(String::as_str),
        Some("HTTP/1.1")
    );
}

#[test]
fn cgi_passes_authorization_only_when_told() {
    let r = running_cgi(&[("env.sh", ENV_SH)], &["--cgi-pass-authorization"]);
    let v = env_of(&request(
        r.addr,
        "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k3n\r\n\
         Proxy: http://attacker.example/\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(
        v.get("HTTP_AUTHORIZATION").map(String::as_str),
        Some("Bearer t0k3n")
    );
    assert_eq!(v.get("AUTH_TYPE").map(String::as_str), Some("Bearer"));
    assert!(!v.contains_key("HTTP_PROXY"));
}

#[test]
fn cgi_post_is_echoed_through_stdin_and_the_connection_is_kept() {
    let echo = "printf 'Content-Type: application/octet-stream\\n\\n'\nexec cat\n";
    let r = running_cgi(&[("echo.sh", echo)], &[]);
    // Larger than the in-memory body buffer: it comes from a spilled file.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut c = Client::connect(r.addr);
    c.send(
        format!(
            "POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let res = c.response().expect("a response");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("transfer-encoding"), Some("chunked"));
    assert!(res.body == body, "echoed body differs");
    // Same connection, a chunked upload this time.
    c.send(
        b"POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let res = c.response().expect("a second response on the connection");
    assert_eq!((res.status, res.text().as_str()), (200, "hello world"));
}

#[test]
fn cgi_script_that_ignores_a_large_body_is_answered() {
    let ignore = "printf 'Content-Type: text/plain\\n\\nnot reading it\\n'\n";
    let r = running_cgi(&[("ignore.sh", ignore)], &[]);
    let body = vec![b'x'; 5 << 20];
    let mut c = Client::connect(r.addr);
    c.send(
        format!(
            "POST /cgi-bin/ignore.sh HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let res = c.response().expect("a response");
    assert_eq!((res.status, res.text().as_str()), (200, "not reading it\n"));
    // The worker is free: the next request is answered too.
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().expect("next").text(), "hello\n");
}

#[test]
fn cgi_status_location_and_lf_only_headers() {
    let scripts = [
        (
            "status.sh",
            "printf 'Status: 404 Not Here\\r\\nContent-Type: text/plain\\r\\n\\r\\nmissing\\n'\n",
        ),
        ("local.sh", "printf 'Location: /hello.txt\\n\\n'\n"),
        (
            "to-env.sh",
            "printf 'Location: /cgi-bin/env.sh?from=redirect\\n\\n'\n",
        ),
        ("env.sh", ENV_SH),
        (
            "away.sh",
            "printf 'Location: https://example.com/elsewhere\\n\\n'\n",
        ),
        (
            "moved.sh",
            "printf 'Status: 301 Moved Permanently\\nLocation: /new/place\\n\\n'\n",
        ),
        (
            "lf.sh",
            "printf 'Content-Type: text/plain\\nX-Test: yes\\nContent-Length: 5\\n\\nbody\\n'\n",
        ),
        ("nocontent.sh", "printf 'Status: 204\\n\\n'\n"),
    ];
    let r = running_cgi(&scripts, &[]);

    let res = get(r.addr, "/cgi-bin/status.sh");
    assert_eq!((res.status, res.text().as_str()), (404, "missing\n"));

    // A local redirect is served from the same request, here a static file.
    let res = get(r.addr, "/cgi-bin/local.sh");
    assert_eq!((res.status, res.text().as_str()), (200, "hello\n"));
    assert_eq!(res.header("location"), None);

    // ... or another script, as a GET with the original headers but no body.
    let v = env_of(&request(
        r.addr,
        "POST /cgi-bin/to-env.sh HTTP/1.1\r\nHost: h\r\nX-Kept: yes\r\n\
         Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    ));
    assert_eq!(v.get("REQUEST_METHOD").map(String::as_str), Some("GET"));
    assert_eq!(
        v.get("QUERY_STRING").map(String::as_str),
        Some("from=redirect")
    );
    assert_eq!(v.get("HTTP_X_KEPT").map(String::as_str), Some("yes"));
    assert!(!v.contains_key("CONTENT_LENGTH") && !v.contains_key("CONTENT_TYPE"));

    let res = get(r.addr, "/cgi-bin/away.sh");
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("https://example.com/elsewhere")
    );

    let res = get(r.addr, "/cgi-bin/moved.sh");
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location"), Some("/new/place"));

    let res = get(r.addr, "/cgi-bin/lf.sh");
    assert_eq!((res.status, res.text().as_str()), (200, "body\n"));
    assert_eq!(res.header("x-test"), Some("yes"));
    assert_eq!(
        res.header("content-length"),
        Some("5"),
        "the script's length"
    );

    let res = get(r.addr, "/cgi-bin/nocontent.sh");
    assert_eq!((res.status, res.body.len()), (204, 0));

    // HEAD: the head of what GET would send, no body.
    let mut c = Client::connect(r.addr);
    c.send(b"HEAD /cgi-bin/lf.sh HTTP/1.1\r\nHost: h\r\n\r\n");
    let res = c.response_to("HEAD").expect("a response");
    assert_eq!((res.status, res.header("x-test")), (200, Some("yes")));
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().expect("next").text(), "hello\n");
}

#[test]
fn cgi_body_streams_as_the_script_writes_it() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let stream = format!(
        "printf 'Content-Type: text/plain\\n\\n'\nprintf 'first\\n'\n\
         read line < '{}'\nprintf 'second:%s\\n' \"$line\"\n",
        fifo.display()
    );
    let r = running_cgi(&[("stream.sh", &stream)], &[]);
    let mut c = Client::connect(r.addr);
    c.send(b"GET /cgi-bin/stream.sh HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = c.head().expect("the head, before the script ends");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    // The first piece arrives while the script waits for us.
    assert_eq!(c.chunk().expect("first chunk"), b"first\n");
    let mut w = fifo_writer(&fifo, T).expect("the script opens the FIFO");
    w.write_all(b"go\n").unwrap();
    drop(w);
    assert_eq!(c.chunk().expect("second chunk"), b"second:go\n");
    assert_eq!(c.chunk().expect("last chunk"), b"");
}

#[test]
fn cgi_stderr_is_logged_with_the_script_name() {
    let err = "echo 'oops: something went wrong' >&2\n\
               printf 'Content-Type: text/plain\\n\\nok\\n'\n\
               printf 'partial line without newline' >&2\n\
               exit 3\n";
    let r = running_cgi(&[("err.sh", err)], &[]);
    assert_eq!(get(r.addr, "/cgi-bin/err.sh").text(), "ok\n");
    for message in ["oops: something went wrong", "partial line without newline"] {
        assert!(r.proc.log.wait_for(message, T), "{}", r.proc.log.text());
        let text = r.proc.log.text();
        let line = text.lines().find(|l| l.contains(message)).unwrap();
        assert!(
            line.contains("script=\"/cgi-bin/err.sh\"") && line.contains("WARN"),
            "{line}"
        );
    }
    assert!(
        r.proc.log.wait_for("script exited with status 3", T),
        "{}",
        r.proc.log.text()
    );
}

#[test]
fn cgi_timeout_is_504_and_kills_the_process_group() {
    let scratch = tempfile::tempdir().unwrap();
    let pids = scratch.path().join("pids");
    let slow = format!(
        "sleep 1000 &\necho \"$$ $!\" > '{}'\nwait\n",
        pids.display()
    );
    let r = running_cgi(&[("slow.sh", &slow)], &["--cgi-timeout", "1s"]);
    let started = Instant::now();
    let res = get(r.addr, "/cgi-bin/slow.sh");
    assert_eq!(res.status, 504, "{}", res.text());
    assert!(started.elapsed() >= Duration::from_millis(900));
    let text = std::fs::read_to_string(&pids).expect("the script wrote its pids");
    let (leader, child) = text.trim().split_once(' ').unwrap();
    let (leader, child): (i32, i32) = (leader.parse().unwrap(), child.parse().unwrap());
    // The leader is reaped before the 504 is sent; its child was killed
    // with the group (init reaps it).
    assert!(!alive(leader), "script {leader} survived");
    assert!(
        wait_until(T, || !alive(child) && group_members(leader).is_empty()),
        "group {leader} survived: {:?}",
        group_members(leader)
    );
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "script {leader} is left a zombie"
    );
    assert!(r.proc.log.wait_for("script timed out; killed", T));
    let log = r.proc.log.text();
    let line = log
        .lines()
        .find(|l| l.contains("script timed out"))
        .unwrap();
    assert!(line.contains("script=\"/cgi-bin/slow.sh\""), "{line}");
}

#[test]
fn cgi_timeout_after_the_head_cuts_the_body_and_kills_the_group() {
    let scratch = tempfile::tempdir().unwrap();
    let pid = scratch.path().join("pid");
    let fifo = scratch.path().join("never");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let stall = format!(
        "printf 'Content-Type: text/plain\\n\\nfirst\\n'\necho $$ > '{}'\nread line < '{}'\n",
        pid.display(),
        fifo.display()
    );
    let r = running_cgi(&[("stall.sh", &stall)], &["--cgi-timeout", "1s"]);
    let mut c = Client::connect(r.addr);
    c.send(b"GET /cgi-bin/stall.sh HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.head().expect("the head").status, 200);
    assert_eq!(c.chunk().expect("first chunk"), b"first\n");
    // No last chunk: the connection is cut, so the body reads as truncated.
    assert_eq!(c.chunk(), None);
    let leader: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The engine closes the socket, then drops the stream, which kills.
    assert!(
        wait_until(T, || !alive(leader) && group_members(leader).is_empty()),
        "script {leader} survived"
    );
}

#[test]
fn cgi_script_lingering_after_its_output_is_killed_and_the_body_completes() {
    let scratch = tempfile::tempdir().unwrap();
    let pid = scratch.path().join("pid");
    let linger = format!(
        "printf 'Content-Type: text/plain\\n\\ndone\\n'\nexec >&-\nsleep 1000 &\n\
         echo \"$$ $!\" > '{}'\nwait\n",
        pid.display()
    );
    let r = running_cgi(&[("linger.sh", &linger)], &[]);
    let mut c = Client::connect(r.addr);
    c.send(b"GET /cgi-bin/linger.sh HTTP/1.1\r\nHost: h\r\n\r\n");
    let res = c.response().expect("a complete response");
    assert_eq!((res.status, res.text().as_str()), (200, "done\n"));
    let text = std::fs::read_to_string(&pid).unwrap();
    let (leader, child) = text.trim().split_once(' ').unwrap();
    let (leader, child): (i32, i32) = (leader.parse().unwrap(), child.parse().unwrap());
    assert!(!alive(leader), "script {leader} survived");
    assert!(
        wait_until(T, || !alive(child)),
        "its child {child} survived"
    );
    assert!(
        r.proc
            .log
            .wait_for("script still running after its output ended", T),
        "{}",
        r.proc.log.text()
    );
    // The connection is kept.
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().expect("next").text(), "hello\n");
}

#[test]
fn cgi_without_a_valid_header_block_is_502() {
    let scripts = [
        ("nothing.sh", "exit 0\n"),
        ("plain.sh", "echo 'just text'\n"),
        ("no-type.sh", "printf 'X-Only: 1\\n\\nbody'\n"),
        (
            "bad-field.sh",
            "printf 'Content-Type: text/plain\\nBad Name: x\\n\\n'\n",
        ),
        ("unfinished.sh", "printf 'Content-Type: text/plain\\n'\n"),
        (
            "huge.sh",
            "i=0\nwhile [ $i -lt 1200 ]; do printf 'X-Pad-%d: %0100d\\n' $i 0; i=$((i+1)); done\n",
        ),
    ];
    let r = running_cgi(&scripts, &[]);
    for (name, _) in scripts {
        let res = get(r.addr, &format!("/cgi-bin/{name}"));
        assert_eq!(res.status, 502, "{name}: {}", res.text());
    }
}

#[test]
fn cgi_missing_is_404_not_executable_403_unstartable_500() {
    let r = running_cgi(&[("ok.sh", ENV_SH), (".hidden.sh", ENV_SH)], &[]);
    let cgi = r.site.path().join("cgi-bin");
    std::fs::write(cgi.join("noexec.sh"), "#!/bin/sh\n").unwrap();
    // Executable, but its interpreter is missing: it cannot start.
    executable(&cgi, "bad-interpreter.sh", "#!/nonexistent/sh\n");
    std::fs::create_dir(cgi.join("sub")).unwrap();
    std::os::unix::fs::symlink(r.site.path().join("hello.txt"), cgi.join("out.sh")).unwrap();
    for (path, status) in [
        ("/cgi-bin/missing.sh", 404),
        ("/cgi-bin/missing.sh/extra", 404),
        ("/cgi-bin/sub/", 404),
        ("/cgi-bin/", 404),
        ("/cgi-bin/.hidden.sh", 404),
        ("/cgi-bin/out.sh", 404),
        ("/cgi-bin/sub/%2e%2e/ok.sh", 404),
        ("/cgi-bin/ok.sh%2Fx", 404),
        ("/cgi-bin/noexec.sh", 403),
        ("/cgi-bin/bad-interpreter.sh", 500),
        ("/cgi-bin/ok.sh", 200),
        ("/cgi-bin/./ok.sh", 200),
    ] {
        assert_eq!(get(r.addr, path).status, status, "{path}");
    }
}

#[test]
fn cgi_sources_are_never_served_as_files() {
    let r = running_cgi(&[("ok.sh", ENV_SH)], &[]);
    // However it is spelt, the script runs: its text never goes out.
    for path in [
        "/cgi-bin/ok.sh",
        "//cgi-bin/ok.sh",
        "/cgi%2Dbin/ok.sh",
        "/./cgi-bin/ok.sh",
    ] {
        let res = get(r.addr, path);
        assert_eq!(res.status, 200, "{path}");
        assert!(
            res.text().contains("GATEWAY_INTERFACE"),
            "{path}: {}",
            res.text()
        );
    }
    let res = get(r.addr, "/cgi-bin%2Fok.sh");
    assert!(!res.text().contains("#!/bin/sh"), "{}", res.text());

    // Mounted under another prefix, the directory is still not static.
    let site = site();
    let cgi = site.path().join("scripts");
    std::fs::create_dir(&cgi).unwrap();
    script(&cgi, "ok.sh", ENV_SH);
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--cgi", &format!("/run={}", cgi.display())])
        .fd(l)
        .notify()
        .start();
    p.ready();
    assert_eq!(get(addr, "/run/ok.sh").status, 200);
    let res = get(addr, "/scripts/ok.sh");
    assert_eq!(res.status, 404, "{}", res.text());
    assert_eq!(get(addr, "/hello.txt").status, 200);
}

#[test]
fn cgi_scripts_start_clean() {
    // What the script was started with, read by the programs it execs in
    // its place (a shell may block signals while it waits for a child).
    let signals = "printf 'Content-Type: text/plain\\n\\n'\n\
                   exec grep -E '^Sig(Blk|Ign):' /proc/self/status\n";
    let fds = "printf 'Content-Type: text/plain\\n\\n'\nexec ls -l /proc/self/fd/\n";
    // A descriptor the server itself inherits without close-on-exec must
    // not reach scripts either.
    let (leak_r, leak_w) = nix::unistd::pipe().unwrap();
    let r = running_cgi(&[("signals.sh", signals), ("fds.sh", fds)], &[]);
    drop((leak_r, leak_w));
    let res = get(r.addr, "/cgi-bin/signals.sh");
    assert_eq!(res.status, 200);
    let text = res.text();
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    assert!(text.contains("SigIgn:\t0000000000000000"), "{text}");
    let res = get(r.addr, "/cgi-bin/fds.sh");
    assert_eq!(res.status, 200);
    let text = res.text();
    assert!(text.contains(" 2 -> "), "{text}");
    // `ls -l` shows "N -> target"; besides 0, 1 and 2 only ls's own handle
    // on the directory it lists may appear.
    for line in text.lines().filter(|l| l.contains(" -> ")) {
        let (left, target) = line.rsplit_once(" -> ").unwrap();
        let fd: i32 = left.rsplit(' ').next().unwrap().parse().unwrap();
        let own_listing = target.starts_with("/proc/") && target.ends_with("/fd");
        assert!(fd <= 2 || own_listing, "inherited descriptor: {line}");
        if fd <= 2 {
            assert!(target.starts_with("pipe:"), "{line}");
        }
    }
}

#[test]
fn cgi_never_blocks_the_worker() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let stall = format!(
        "read line < '{}'\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$line\"\n",
        fifo.display()
    );
    let r = running_cgi(&[("stall.sh", &stall)], &["--workers", "1"]);
    let mut slow = Client::connect(r.addr);
    slow.send(b"GET /cgi-bin/stall.sh HTTP/1.1\r\nHost: h\r\n\r\n");
    // The script is running and stalled once it has opened the FIFO.
    let mut w = fifo_writer(&fifo, T).expect("the script opens the FIFO");
    // The only worker answers others meanwhile: the script stays stalled
    // until the FIFO is written below, so an answer at all proves it.
    let res = get(r.addr, "/hello.txt");
    assert_eq!((res.status, res.text().as_str()), (200, "hello\n"));
    w.write_all(b"released\n").unwrap();
    drop(w);
    let res = slow.response().expect("the script's response");
    assert_eq!((res.status, res.text().as_str()), (200, "released\n"));
}

#[test]
fn example_site_runs_hello_sh() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site");
    let hello = dir.join("cgi-bin/hello.sh");
    let mode = std::fs::metadata(&hello).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "hello.sh is executable");
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    // As in the README: spyglass examples/site --cgi /cgi-bin=examples/site/cgi-bin
    let mut p = Launch::spyglass()
        .arg(dir.to_str().unwrap())
        .args([
            "--cgi",
            &format!("/cgi-bin={}", dir.join("cgi-bin").display()),
        ])
        .fd(l)
        .notify()
        .start();
    p.ready();
    let index = get(addr, "/");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("/cgi-bin/hello.sh"));
    let res = get(addr, "/cgi-bin/hello.sh?name=%3Cb%3Eworld");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(res.text().contains("name=%3Cb%3Eworld"), "{}", res.text());
}
