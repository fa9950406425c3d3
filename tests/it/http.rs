//! The HTTP/1.1 engine (issue 3) over real sockets: every status code the
//! engine produces, persistence, pipelining, bodies, timeouts, and clients
//! that are slow on purpose.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::*;

const T: Duration = Duration::from_secs(10);

fn app(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--workers", "1"];
    args.extend_from_slice(extra);
    running_example("app", &args)
}

fn status_of(raw: &str) -> u16 {
    raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn each_error_status_code() {
    let (_p, addr) = app(&[
        "--max-body",
        "100",
        "--max-request-line",
        "100",
        "--max-head",
        "400",
        "--max-headers",
        "5",
    ]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(200));
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X: y\r\n".repeat(6));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "y".repeat(400)
    );
    let cases: Vec<(String, u16)> = vec![
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(), 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".into(), 400),
        ("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\nHost: a\n\n".into(), 400),
        (long_target, 414),
        (many, 431),
        (big, 431),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n".into(), 413),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n".to_string() + &"x".repeat(101) + "\r\n0\r\n\r\n", 413),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx".into(), 417),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(), 501),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(), 505),
        ("GET / HTTP/3.0\r\nHost: a\r\n\r\n".into(), 505),
        // The strict request-line and Host rules (src/request/tests.rs
        // strict_origin_server has each with its RFC section).
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET / HTTP/1.10\r\nHost: a\r\n\r\n".into(), 400),
        ("GET / HTTP/01.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET / http/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET / HTTP/1\r\nHost: a\r\n\r\n".into(), 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n".into(), 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n".into(), 400),
        (format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "A".repeat(64)), 501),
        ("GET http://a:bad/ HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n".into(), 400),
        ("GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 404),
        ("GET /panic HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(), 500),
    ];
    for (raw, want) in cases {
        let out = exchange(addr, raw.as_bytes());
        assert_eq!(status_of(&out), want, "{raw:?} ->\n{out}");
        if want != 404 && want != 500 {
            assert!(
                out.contains("Connection: close\r\n"),
                "errors close the connection: {out}"
            );
        }
    }
}

/// RFC 9110 §2.5: a 1.x request with a higher minor version is served as
/// HTTP/1.1: a 1.1 response, and the connection persists as in 1.1.
#[test]
fn a_higher_minor_version_is_served_as_1_1() {
    let (_p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    c.send(
        b"POST /echo HTTP/1.2\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    );
    let r = c.response().expect("a response");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("connection"), None, "kept open, as 1.1");
    c.send(b"GET / HTTP/1.9\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().map(|r| r.status), Some(200));
    assert!(c.closed());
    let out = exchange(
        addr,
        b"GET / HTTP/1.2\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

#[test]
fn the_head_timeout_answers_408_and_closes() {
    let (_p, addr) = app(&["--header-timeout", "1s"]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    let t = Instant::now();
    let r = c.response().expect("408");
    assert_eq!(r.status, 408);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    assert!(c.closed());
}

#[test]
fn the_body_timeout_answers_408() {
    let (_p, addr) = app(&["--body-timeout", "1s"]);
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
    assert_eq!(c.response().map(|r| r.status), Some(408));
    assert!(c.closed());
}

#[test]
fn idle_keep_alive_connections_close_silently() {
    let (_p, addr) = app(&["--keepalive-timeout", "1s"]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().map(|r| r.status), Some(200));
    let mut rest = Vec::new();
    c.stream.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "no 408 on an idle keep-alive connection: {rest:?}"
    );
}

#[test]
fn keep_alive_and_connection_close() {
    let (_p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
        assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    }
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().unwrap().header("connection"), Some("close"));
    assert!(c.closed(), "server closes after Connection: close");

    // HTTP/1.0: close unless asked; keep-alive when asked, said explicitly.
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().unwrap().header("connection"), Some("close"));
    assert!(c.closed());
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        c.response().unwrap().header("connection"),
        Some("keep-alive")
    );
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 200);
}

#[test]
fn max_requests_per_connection() {
    let (_p, addr) = app(&["--max-requests", "2"]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().header("connection"), None);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().header("connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    c.send(
        b"GET /stream?n=2 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst\
          HEAD / HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c.response().unwrap().text(), "line 0\nline 1\n");
    assert_eq!(c.response().unwrap().text(), "first");
    let head = c.response_to("HEAD").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(c.response().unwrap().text(), "second");
    assert_eq!(c.response().unwrap().status, 404);
    assert!(c.closed());
}

/// Request heads are copied one after another into a shared buffer that
/// later heads reuse once nothing holds the earlier ones, and a head over
/// its 4 KiB gets a copy of its own (`buffers::shared_head`). Heads of every
/// size from 70 bytes to past 6 KiB, 200 pipelined on one connection (so
/// many are parsed while earlier ones are answered), each answered from its
/// own target: none reads a later head's bytes.
#[test]
fn pipelined_heads_of_every_size_are_each_answered_from_their_own_bytes() {
    let (_p, addr) = app(&["--max-head", "16K"]);
    let mut c = Client::connect(addr);
    let lines = |i: usize| i % 7 + 1;
    let mut batch = Vec::new();
    for i in 0..200usize {
        let pad = "p".repeat((i * 97) % 6000);
        batch.extend_from_slice(
            format!(
                "GET /stream?n={} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n",
                lines(i)
            )
            .as_bytes(),
        );
    }
    c.send(&batch);
    for i in 0..200 {
        let want: String = (0..lines(i)).map(|k| format!("line {k}\n")).collect();
        let r = c.response().unwrap();
        assert_eq!((r.status, r.text()), (200, want), "request {i}");
    }
}

#[test]
fn chunked_uploads_with_extensions_and_trailers() {
    let (_p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n");
    c.send(b"7\r\n world!\r\n0\r\nChecksum: abc\r\n\r\n");
    let r = c.response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world!"));
    // The connection stays usable after a chunked body.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 200);
}

#[test]
fn large_bodies_spill_to_disk_and_come_back_intact() {
    let (_p, addr) = app(&["--body-buffer", "16K", "--max-body", "4M"]);
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut c = Client::connect(addr);
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.response().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body == body,
        "echoed body differs ({} bytes)",
        r.body.len()
    );
}

#[test]
fn expect_100_continue() {
    let (_p, addr) = app(&["--max-body", "1000"]);
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 100);
    c.send(b"body");
    assert_eq!(c.response().unwrap().text(), "body");
    // Too large: the final status comes at once, without a 100.
    let out = exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    // No body coming: no 100.
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
}

#[test]
fn head_responses_have_headers_but_no_body() {
    let (_p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let get = c.response().unwrap();
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.response_to("HEAD").unwrap();
    assert_eq!(head.header("content-length"), get.header("content-length"));
    // Nothing but the next response follows the HEAD response's head.
    c.send(b"GET /stream?n=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().unwrap().text(), "line 0\n");
    let mut raw = exchange(
        addr,
        b"HEAD /stream?n=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.ends_with("\r\n\r\n"),
        "no body after a HEAD head: {raw}"
    );
    raw.clear();
}

#[test]
fn handlers_cannot_set_framing_headers() {
    let (_p, addr) = app(&[]);
    let out = exchange(
        addr,
        b"GET /framing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("content-length: 21\r\n"), "{out}");
    assert!(
        !lower.contains("999")
            && !lower.contains("gzip")
            && !lower.contains("upgrade")
            && !lower.contains("yesterday"),
        "{out}"
    );
    assert!(out.ends_with("framed by the engine\n"));
}

#[test]
fn streams_of_unknown_length_go_chunked_or_close_delimited() {
    let (_p, addr) = app(&[]);
    let out = exchange(
        addr,
        b"GET /stream?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
    assert!(out.ends_with("7\r\nline 2\n\r\n0\r\n\r\n"), "{out}");
    let out = exchange(
        addr,
        b"GET /stream?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert!(
        !out.contains("Transfer-Encoding") && out.contains("Connection: close\r\n"),
        "{out}"
    );
    assert!(out.ends_with("line 0\nline 1\nline 2\n"), "{out}");
}

#[test]
fn a_panicking_handler_answers_500_and_the_worker_carries_on() {
    let (p, addr) = app(&[]);
    let worker = p.workers();
    let mut c = Client::connect(addr);
    let mut other = Client::connect(addr);
    other.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(other.response().unwrap().status, 200);
    c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 500);
    // The same connection, another connection, the same worker process.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 200);
    other.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(other.response().unwrap().status, 200);
    assert_eq!(p.workers(), worker);
    assert!(p.log.wait_for("handler panicked", T), "{}", p.log.text());
}

#[test]
fn an_interim_status_from_a_handler_is_logged_as_such_and_answered_500() {
    let (p, addr) = app(&[]);
    let mut c = Client::connect(addr);
    c.send(b"GET /interim HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 500);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        c.response().unwrap().status,
        200,
        "the connection carries on"
    );
    assert!(
        p.log
            .wait_for("answered with an interim status (103 Early Hints)", T),
        "{}",
        p.log.text()
    );
    assert!(!p.log.text().contains("panicked"), "{}", p.log.text());
}

#[test]
fn absolute_form_and_asterisk_targets() {
    let (_p, addr) = app(&[]);
    let out = exchange(addr, b"GET http://example.com/echo HTTP/1.1\r\nHost: other\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.ends_with("ok"),
        "{out}"
    );
    let out = exchange(
        addr,
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&out), 404, "the app has no route for *: {out}");
    let out = exchange(addr, b"GET * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status_of(&out), 400, "{out}");
}

#[test]
fn pending_responses_do_not_block_the_worker() {
    let (_p, addr) = app(&[]);
    let mut slow = Client::connect(addr);
    slow.send(b"GET /later?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    // The one worker answers others while the first response is pending:
    // all ten are answered before a byte of it has come.
    for _ in 0..10 {
        assert_eq!(get(addr, "/").status, 200);
    }
    slow.stream.set_nonblocking(true).unwrap();
    let early = slow.stream.peek(&mut [0u8; 1]);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the pending response came before the others: {early:?}"
    );
    slow.stream.set_nonblocking(false).unwrap();
    let r = slow.response().unwrap();
    assert!(r.text().starts_with("answered after "), "{}", r.text());
    let out = exchange(
        addr,
        b"GET /redirect HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.contains("hello from worker"),
        "internal redirect: {out}"
    );
}

#[test]
fn a_client_that_does_not_read_is_dropped() {
    // Longer than the master's 1 s STATUS period, so that STATUS is sure to
    // show the request in flight before the server gives up.
    let (mut p, addr) = app(&["--write-timeout", "3s"]);
    let mut c = Client::connect(addr);
    p.notify.as_mut().unwrap().clear();
    c.send(b"GET /stream?n=100000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    // The server counts the request in flight until it gives up on us.
    p.notified("1 in flight", T).expect("in flight");
    p.notify.as_mut().unwrap().clear();
    p.notified("0 in flight", Duration::from_secs(15))
        .expect("dropped after the write timeout");
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    // What the socket buffers held, not the 1.3 GB stream.
    assert!(total < 64 << 20, "the stream was cut ({total} bytes)");
}

#[test]
fn a_thousand_stalled_clients_do_not_delay_others() {
    raise_nofile();
    let (p, addr) = app(&["--header-timeout", "60s"]);
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /some/path/that-is-only-half-").unwrap();
        stalled.push(s);
    }
    let t = Instant::now();
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response().expect("answered");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took < Duration::from_secs(2),
        "a normal request took {took:?} among 1000 stalled clients"
    );
    eprintln!(
        "normal request among 1000 stalled clients: {took:?}; worker {:?}",
        p.workers()
    );
    // Each stalled client is still held open by the server (no 408 yet).
    let mut s = stalled.pop().unwrap();
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard).unwrap();
    }
}
