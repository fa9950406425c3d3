//! Life behind a front proxy, against the real binary: the PROXY protocol
//! (v1 and v2) on the listeners `--proxy-protocol` names, and the
//! forwarding headers of `--trusted-proxy` peers. What the client's address
//! becomes is read where it matters: a CGI script's `REMOTE_ADDR`,
//! `REMOTE_PORT`, `HTTPS` and `REQUEST_SCHEME`, the access log's `peer`,
//! `socket_peer` and `listener`, and a library app's `ConnInfo`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use crate::support::*;

const T: Duration = Duration::from_secs(10);

/// Prints what a script is told about its client.
const WHO: &str = r#"printf 'Content-Type: text/plain\n\n'
printf 'addr=%s port=%s https=%s scheme=%s\n' "$REMOTE_ADDR" "${REMOTE_PORT-none}" "${HTTPS-off}" "$REQUEST_SCHEME"
"#;

const GET_WHO: &[u8] = b"GET /cgi-bin/who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn v2(vc: u8, fp: u8, block: &[u8]) -> Vec<u8> {
    let mut v = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v.extend_from_slice(&[vc, fp]);
    v.extend_from_slice(&(block.len() as u16).to_be_bytes());
    v.extend_from_slice(block);
    v
}

fn inet(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut b = src.to_vec();
    b.extend_from_slice(&[198, 51, 100, 7]);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn inet6(src: &str, sport: u16) -> Vec<u8> {
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&(value.len() as u16).to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Send `raw`, then (if `half_close`) our FIN; everything the server
/// sends until it closes, and how long it took to close.
fn send(addr: SocketAddr, raw: &[u8], half_close: bool) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may close before it has read everything (a refused
    // header): a failed write is part of the answer, not an error.
    let _ = s.write_all(raw);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    // A reset (the server closed with our bytes unread) ends it too.
    let _ = s.read_to_end(&mut out);
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// The body of a whole response read until the close, which must be a
/// 200 (de-chunked: CGI output is streamed), without its last newline.
fn body_of(out: &str) -> String {
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let (head, mut rest) = out.split_once("\r\n\r\n").unwrap_or((out, ""));
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return rest.trim_end().to_owned();
    }
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size, 16).expect("chunk size");
        if n == 0 {
            break;
        }
        body.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    body.trim_end().to_owned()
}

/// The PROXY header table (HAProxy's proxy-protocol.txt): what each valid
/// header makes of the client, and that each invalid one gets the
/// connection closed without a byte of HTTP, however it fails.
#[test]
fn proxy_header_table() {
    let r = running_cgi(
        &[("who", WHO)],
        &[
            "--workers",
            "1",
            "--proxy-protocol",
            "all",
            "--header-timeout",
            "2s",
            "--log-level",
            "debug",
        ],
    );
    let mut ssl = vec![0x01, 0, 0, 0, 0];
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    let valid: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "v1 TCP4",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 443\r\n".to_vec(),
            "addr=192.0.2.1 port=4711 https=off scheme=http",
        ),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n".to_vec(),
            "addr=2001:db8::1 port=4711 https=off scheme=http",
        ),
        // §2.1 UNKNOWN: the real connection's address.
        (
            "v1 UNKNOWN",
            b"PROXY UNKNOWN\r\n".to_vec(),
            "addr=127.0.0.1 port=",
        ),
        (
            "v2 PROXY TCP/IPv4",
            v2(0x21, 0x11, &inet([192, 0, 2, 2], 5000)),
            "addr=192.0.2.2 port=5000 https=off scheme=http",
        ),
        (
            "v2 PROXY TCP/IPv6",
            v2(0x21, 0x21, &inet6("2001:db8::3", 5001)),
            "addr=2001:db8::3 port=5001 https=off scheme=http",
        ),
        // §2.2 LOCAL (the proxy's own health check) and UNSPEC: the real
        // connection's address.
        ("v2 LOCAL", v2(0x20, 0x00, &[]), "addr=127.0.0.1 port="),
        ("v2 UNSPEC", v2(0x21, 0x00, &[]), "addr=127.0.0.1 port="),
        // §2.2 AF_UNIX: a client of the proxy's Unix socket.
        (
            "v2 PROXY AF_UNIX",
            v2(0x21, 0x31, &[0; 216]),
            "addr=unix: port=none",
        ),
        // §2.2.5: PP2_TYPE_SSL with PP2_CLIENT_SSL: the client used TLS.
        (
            "v2 with an SSL TLV",
            v2(
                0x21,
                0x11,
                &cat(&[&inet([192, 0, 2, 4], 5002), &tlv(0x20, &ssl)]),
            ),
            "addr=192.0.2.4 port=5002 https=on scheme=https",
        ),
        // TLVs the server does not know are skipped.
        (
            "v2 with unknown TLVs",
            v2(
                0x21,
                0x11,
                &cat(&[
                    &inet([192, 0, 2, 5], 5003),
                    &tlv(0xE0, &[9; 300]),
                    &tlv(0x04, b""),
                ]),
            ),
            "addr=192.0.2.5 port=5003 https=off scheme=http",
        ),
    ];
    for (what, header, want) in &valid {
        let (out, _) = send(r.addr, &cat(&[header, GET_WHO]), false);
        let body = body_of(&out);
        assert!(body.starts_with(want), "{what}: {body}");
    }
    // The access log: the client as `peer`, the proxy as `socket_peer`.
    assert!(
        r.proc
            .log
            .wait_for("peer=192.0.2.1:4711 socket_peer=127.0.0.1:", T),
        "{}",
        r.proc.log.text()
    );

    // Invalid headers: closed, nothing answered, whatever follows.
    let mut long_v1 = b"PROXY UNKNOWN ".to_vec();
    long_v1.resize(108, b'x');
    let invalid: Vec<(&str, Vec<u8>)> = vec![
        ("plain HTTP", GET_WHO.to_vec()),
        (
            "lower-case v1",
            b"proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n".to_vec(),
        ),
        (
            "v1 bare LF",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n".to_vec(),
        ),
        (
            "v1 double space",
            b"PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n".to_vec(),
        ),
        ("v1 TCP4 with IPv6", b"PROXY TCP4 ::1 ::2 1 2\r\n".to_vec()),
        (
            "v1 port 65536",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n".to_vec(),
        ),
        ("v1 over 107 bytes", long_v1),
        ("v2 wrong signature", {
            let mut h = v2(0x21, 0x11, &inet([192, 0, 2, 1], 1));
            h[7] = b'q';
            h
        }),
        ("v2 version 1", v2(0x11, 0x11, &inet([192, 0, 2, 1], 1))),
        ("v2 command 2", v2(0x22, 0x11, &inet([192, 0, 2, 1], 1))),
        (
            "v2 unknown family",
            v2(0x21, 0x41, &inet([192, 0, 2, 1], 1)),
        ),
        ("v2 datagram", v2(0x21, 0x12, &inet([192, 0, 2, 1], 1))),
        (
            "v2 short addresses",
            v2(0x21, 0x21, &inet([192, 0, 2, 1], 1)),
        ),
        (
            "v2 TLV past the end",
            v2(
                0x21,
                0x11,
                &cat(&[&inet([192, 0, 2, 1], 1), &[0xE0, 0x00, 0x09, 1]]),
            ),
        ),
        (
            "v2 oversized TLVs",
            v2(
                0x21,
                0x11,
                &cat(&[&inet([192, 0, 2, 1], 1), &tlv(0xE0, &[0; 5000])]),
            ),
        ),
    ];
    for (what, header) in &invalid {
        let (out, _) = send(r.addr, &cat(&[header, GET_WHO]), false);
        assert_eq!(out, "", "{what}: answered");
    }
    // Truncated headers: closed when the client gives up (its FIN) ...
    for cut in [
        b"PROXY TCP4 192.0.2.1 19".to_vec(),
        v2(0x21, 0x11, &inet([192, 0, 2, 1], 1))[..20].to_vec(),
    ] {
        let (out, _) = send(r.addr, &cut, true);
        assert_eq!(out, "", "truncated {cut:?}: answered");
    }
    // ... or once the header's time (here --header-timeout, 2 s) is up.
    let (out, took) = send(r.addr, b"PROXY TCP4 192.0.2.1 19", false);
    assert_eq!(out, "");
    assert!(took >= Duration::from_millis(1900), "closed after {took:?}");
    // Each refusal is told at debug level with the real peer and why. The
    // line may follow the close the client saw: wait for each reason.
    for reason in [
        "reason=\"PROXY header too long\"",
        "reason=\"timed out\"",
        "reason=\"no PROXY header\"",
    ] {
        assert!(
            r.proc.log.wait_for(reason, T),
            "{reason}: {}",
            r.proc.log.text()
        );
    }
    let log = r.proc.log.text();
    let refusals = log
        .lines()
        .filter(|l| l.contains("closed a connection without a valid PROXY header"))
        .collect::<Vec<_>>();
    assert!(
        refusals
            .iter()
            .all(|l| l.contains("peer=127.0.0.1:") && l.contains("reason=")),
        "{refusals:#?}"
    );
    assert!(refusals.len() >= 3, "{refusals:#?}");
    // Nothing of it hurt the server.
    let (out, _) = send(
        r.addr,
        &cat(&[b"PROXY TCP4 192.0.2.9 198.51.100.7 1 2\r\n", GET_WHO]),
        false,
    );
    assert!(body_of(&out).starts_with("addr=192.0.2.9 port=1 "));
}

/// The header comes once, first: every request of the kept-alive
/// connection has its client, and a second header is not a request.
#[test]
fn one_header_per_connection() {
    let r = running_cgi(
        &[("who", WHO)],
        &["--workers", "1", "--proxy-protocol", "all"],
    );
    let mut c = Client::connect(r.addr);
    // The header and the first request in separate writes, the way a
    // proxy that connects before the client has spoken sends them.
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 80\r\n");
    for _ in 0..3 {
        c.send(b"GET /cgi-bin/who HTTP/1.1\r\nHost: x\r\n\r\n");
        let res = c.response().expect("a response");
        assert_eq!(res.status, 200);
        assert_eq!(
            res.text(),
            "addr=192.0.2.1 port=4711 https=off scheme=http\n"
        );
    }
    c.send(b"PROXY TCP4 192.0.2.2 198.51.100.7 4711 80\r\n\r\n");
    let res = c.response().expect("an answer");
    assert_eq!(res.status, 400, "a second header is a bad request");
}

/// `--proxy-protocol NAME` applies to that socket only; a name that is no
/// socket's is a startup error that names it.
#[test]
fn proxy_protocol_by_socket_name() {
    let site = site();
    let (edge, direct) = (tcp_listener(), tcp_listener());
    let (edge_addr, direct_addr) = (edge.local_addr().unwrap(), direct.local_addr().unwrap());
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--workers", "1", "--proxy-protocol", "edge"])
        .fd(edge)
        .fd(direct)
        .names("edge:direct")
        .notify()
        .start();
    p.ready();
    let get_hello = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(send(edge_addr, get_hello, false).0, "");
    let (out, _) = send(
        edge_addr,
        &cat(&[b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 80\r\n", get_hello]),
        false,
    );
    assert_eq!(body_of(&out), "hello");
    assert_eq!(get(direct_addr, "/hello.txt").status, 200);
    assert!(
        p.log
            .wait_for("peer=192.0.2.1:4711 socket_peer=127.0.0.1:", T),
        "{}",
        p.log.text()
    );
    assert!(p.log.wait_for("listener=\"edge\"", T), "{}", p.log.text());
    assert!(p.log.wait_for("listener=\"direct\"", T), "{}", p.log.text());
    drop(p);

    // Bound by spyglass itself: exit 78 at once, naming the culprit.
    let port = free_port();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--listen", &format!("web=127.0.0.1:{port}")])
        .args(["--proxy-protocol", "web,edeg"])
        .start();
    let status = p.wait_exit(T).expect("exits");
    assert_eq!(status.code(), Some(78), "{}", p.log.text());
    assert!(
        p.log.wait_for(
            "--proxy-protocol edeg: no socket is named 'edeg' (sockets: web)",
            T
        ),
        "{}",
        p.log.text()
    );

    // Socket-activated: the waiting client is answered 503, then exit 78.
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::spyglass()
        .arg(site.path().to_str().unwrap())
        .args(["--proxy-protocol", "edeg", "--idle-timeout", "1s"])
        .fd(l)
        .names("edge")
        .notify()
        .start();
    p.ready();
    assert_eq!(get(addr, "/hello.txt").status, 503);
    let status = p.wait_exit(T).expect("exits once idle");
    assert_eq!(status.code(), Some(78), "{}", p.log.text());
    assert!(
        p.log
            .wait_for("no socket is named 'edeg' (sockets: edge)", T),
        "{}",
        p.log.text()
    );
}

/// One request through a CGI script, with extra header fields; what the
/// script was told.
fn who(addr: SocketAddr, fields: &[(&str, &str)]) -> String {
    let res = request(addr, "GET", "/cgi-bin/who", fields);
    assert_eq!(res.status, 200, "{}", res.text());
    res.text().trim_end().to_owned()
}

/// What is sent where, with which fields, and what the script must be told.
type Case<'a> = (&'a str, SocketAddr, Vec<(&'a str, &'a str)>, &'a str);

/// The spoofing table: forwarding headers change the client and the
/// scheme only when a trusted proxy sends them, only through the headers
/// that proxy maintains, and only as far as trusted hops reach.
#[test]
fn forwarded_headers_and_spoofing() {
    // The test client (127.0.0.1) plays the front proxy.
    let trusting = running_cgi(
        &[("who", WHO)],
        &["--workers", "1", "--trusted-proxy", "127.0.0.1,10.0.0.0/8"],
    );
    let forwarded = running_cgi(
        &[("who", WHO)],
        &[
            "--workers",
            "1",
            "--trusted-proxy",
            "127.0.0.0/8",
            "--proxy-headers",
            "forwarded",
        ],
    );
    let untrusting = running_cgi(
        &[("who", WHO)],
        &["--workers", "1", "--trusted-proxy", "10.0.0.0/8"],
    );
    let plain = running_cgi(&[("who", WHO)], &["--workers", "1"]);
    let me = "addr=127.0.0.1 port=";
    let cases: Vec<Case> = vec![
        // A trusted proxy names the client and its scheme.
        (
            "trusted X-Forwarded-For",
            trusting.addr,
            vec![
                ("X-Forwarded-For", "192.0.2.1"),
                ("X-Forwarded-Proto", "https"),
            ],
            "addr=192.0.2.1 port=none https=on scheme=https",
        ),
        (
            "trusted chain",
            trusting.addr,
            vec![("X-Forwarded-For", "192.0.2.1, 10.0.0.9, 10.0.0.8")],
            "addr=192.0.2.1 port=none https=off scheme=http",
        ),
        (
            "trusted Forwarded",
            forwarded.addr,
            vec![("Forwarded", r#"for="[2001:db8::1]:4711";proto=https"#)],
            "addr=2001:db8::1 port=4711 https=on scheme=https",
        ),
        // Spoofing: what a client puts left of the proxy's entry is ignored.
        (
            "client-made entries left of the proxy's",
            trusting.addr,
            vec![("X-Forwarded-For", "6.6.6.6, 10.0.0.1, 192.0.2.1")],
            "addr=192.0.2.1 port=none",
        ),
        (
            "client-made Forwarded left of the proxy's",
            forwarded.addr,
            vec![
                ("Forwarded", "for=6.6.6.6;proto=https"),
                ("Forwarded", "for=192.0.2.1;proto=http"),
            ],
            "addr=192.0.2.1 port=none https=off",
        ),
        // Spoofing: the other kind of header passes untouched through a
        // proxy that maintains one kind; it is ignored.
        (
            "Forwarded through an X-Forwarded proxy",
            trusting.addr,
            vec![
                ("Forwarded", "for=6.6.6.6;proto=https"),
                ("X-Forwarded-For", "192.0.2.1"),
            ],
            "addr=192.0.2.1 port=none https=off",
        ),
        (
            "X-Forwarded-* through a Forwarded proxy",
            forwarded.addr,
            vec![
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=192.0.2.1"),
            ],
            "addr=192.0.2.1 port=none https=off",
        ),
        // Spoofing: an unterminated quote meant to swallow the proxy's
        // element stops the walk at the proxy.
        (
            "unterminated quote",
            forwarded.addr,
            vec![("Forwarded", r#"for="6.6.6.6, for=192.0.2.1"#)],
            me,
        ),
        // Spoofing: an untrusted peer's headers change nothing at all.
        (
            "untrusted peer",
            untrusting.addr,
            vec![
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Forwarded-Proto", "https"),
            ],
            "addr=127.0.0.1 port=",
        ),
        (
            "untrusted peer, Forwarded",
            untrusting.addr,
            vec![("Forwarded", "for=10.0.0.1;proto=https")],
            me,
        ),
        (
            "no --trusted-proxy",
            plain.addr,
            vec![
                ("X-Forwarded-For", "192.0.2.1"),
                ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=192.0.2.1;proto=https"),
                ("X-Real-IP", "192.0.2.1"),
            ],
            me,
        ),
        // Look-alike names are other headers (and not passed to scripts
        // under the real names either).
        (
            "X_Forwarded_For",
            trusting.addr,
            vec![("X_Forwarded_For", "192.0.2.1")],
            me,
        ),
    ];
    for (what, addr, fields, want) in &cases {
        let got = who(*addr, fields);
        assert!(got.starts_with(want), "{what}: {got}");
        if *want == me {
            assert!(got.ends_with("https=off scheme=http"), "{what}: {got}");
        }
    }
    // The access log names the client, and the proxy as the socket's peer.
    assert!(
        trusting
            .proc
            .log
            .wait_for("peer=192.0.2.1 socket_peer=127.0.0.1:", T),
        "{}",
        trusting.proc.log.text()
    );
    // The untrusted server's log never names a forwarded address.
    let log = untrusting.proc.log.text();
    assert!(!log.contains("peer=10.0.0.1"), "{log}");

    // The directory redirect is a path: the client stays on https.
    std::fs::create_dir(trusting.site.path().join("dir")).unwrap();
    let res = request(
        trusting.addr,
        "GET",
        "/dir",
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location"), Some("/dir/"));
}

/// PROXY first, then the forwarding headers of the peer it names: that
/// peer, not the socket's, must be trusted.
#[test]
fn proxy_protocol_then_trusted_headers() {
    let r = running_cgi(
        &[("who", WHO)],
        &[
            "--workers",
            "1",
            "--proxy-protocol",
            "all",
            "--trusted-proxy",
            "192.0.2.0/24,127.0.0.1",
        ],
    );
    let with = |header: &[u8], xff: &str| {
        let req = format!(
            "GET /cgi-bin/who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\n\
             X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
        );
        let (out, _) = send(r.addr, &cat(&[header, req.as_bytes()]), false);
        body_of(&out).to_owned()
    };
    // A trusted peer behind the PROXY header (a CDN, say) names the client.
    assert_eq!(
        with(
            b"PROXY TCP4 192.0.2.7 198.51.100.7 4711 443\r\n",
            "203.0.113.5"
        ),
        "addr=203.0.113.5 port=none https=on scheme=https"
    );
    // An untrusted one is the client, whatever it says, even though the
    // socket's peer (127.0.0.1) is trusted.
    assert_eq!(
        with(
            b"PROXY TCP4 198.51.100.1 198.51.100.7 4711 443\r\n",
            "203.0.113.5"
        ),
        "addr=198.51.100.1 port=4711 https=off scheme=http"
    );
    // LOCAL keeps the socket's peer, which is trusted here.
    assert_eq!(
        with(&v2(0x20, 0x00, &[]), "203.0.113.6"),
        "addr=203.0.113.6 port=none https=on scheme=https"
    );
}

/// `--trusted-proxy unix`: the Unix socket's peers (a proxy on the same
/// machine) are believed; without it they are not.
#[test]
fn trusted_unix_socket_peers() {
    let dir = tempfile::tempdir().unwrap();
    for (trust, want) in [
        (
            Some("unix"),
            "addr=192.0.2.1 port=none https=on scheme=https",
        ),
        (None, "addr=unix: port=none https=off scheme=http"),
    ] {
        let path = dir.path().join("front.sock");
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).unwrap();
        let site = site();
        let cgi = site.path().join("cgi-bin");
        std::fs::create_dir(&cgi).unwrap();
        script(&cgi, "who", WHO);
        let mut launch = Launch::spyglass()
            .arg(site.path().to_str().unwrap())
            .args(["--workers", "1", "--cgi"])
            .arg(format!("/cgi-bin={}", cgi.display()));
        if let Some(t) = trust {
            launch = launch.args(["--trusted-proxy", t]);
        }
        let mut p = launch.fd(unix).names("front").notify().start();
        p.ready();
        let mut u = UnixStream::connect(&path).unwrap();
        u.write_all(
            b"GET /cgi-bin/who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\
              X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        u.read_to_string(&mut out).unwrap();
        assert_eq!(body_of(&out), want, "{trust:?}");
    }
}

/// The library's connection info says the same as the script's
/// environment and the log.
#[test]
fn library_connection_info() {
    let (p, addr) = running_example(
        "app",
        &[
            "--workers",
            "1",
            "--proxy-protocol",
            "all",
            "--trusted-proxy",
            "192.0.2.0/24",
        ],
    );
    let (out, _) = send(
        addr,
        &cat(&[
            b"PROXY TCP6 2001:db8::9 2001:db8::2 4711 443\r\n",
            b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]),
        false,
    );
    let body = body_of(&out);
    assert!(
        body.starts_with("peer=[2001:db8::9]:4711 socket_peer=127.0.0.1:"),
        "{body}"
    );
    assert!(body.ends_with("scheme=http listener=fd3"), "{body}");
    let (out, _) = send(
        addr,
        &cat(&[
            b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 443\r\n",
            b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\
              X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        ]),
        false,
    );
    let body = body_of(&out);
    assert!(
        body.starts_with("peer=203.0.113.9 socket_peer=127.0.0.1:"),
        "{body}"
    );
    assert!(body.contains("scheme=https"), "{body}");
    drop(p);
}
