//! Table tests for the forwarding headers: the syntax of RFC 7239 (§4-§6)
//! and of `X-Forwarded-For`, then the walk ("rightmost untrusted hop
//! wins") and the spoofing attempts it must shrug off.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn ip(s: &str) -> Node {
    Node::Addr(Peer::Ip(s.parse().unwrap()))
}

fn tcp(s: &str) -> Node {
    Node::Addr(Peer::Tcp(s.parse().unwrap()))
}

fn hop(node: Node, https: Option<bool>) -> Hop {
    Hop { node, https }
}

fn fwd(fields: &[&str]) -> Vec<Hop> {
    forwarded(fields.iter().map(|f| f.as_bytes()))
}

#[test]
fn forwarded_syntax() {
    let plain = |n| hop(n, None);
    for (fields, want) in [
        // §4: one element, and a list of them; parameter names are
        // case-insensitive (§4), and OWS around commas is allowed.
        (vec!["for=192.0.2.43"], vec![plain(ip("192.0.2.43"))]),
        (
            vec!["for=192.0.2.43, for=198.51.100.17"],
            vec![plain(ip("192.0.2.43")), plain(ip("198.51.100.17"))],
        ),
        (vec!["For=192.0.2.43"], vec![plain(ip("192.0.2.43"))]),
        // §4: several Forwarded fields are one list, in order.
        (
            vec!["for=192.0.2.43", "for=198.51.100.17;proto=https"],
            vec![
                plain(ip("192.0.2.43")),
                hop(ip("198.51.100.17"), Some(true)),
            ],
        ),
        // §4: pairs separated by ';', values as quoted strings.
        (
            vec![r#"for="192.0.2.43";proto=http;by=203.0.113.60;host=example.com"#],
            vec![hop(ip("192.0.2.43"), Some(false))],
        ),
        (
            vec!["proto=HTTPS;for=192.0.2.43"],
            vec![hop(ip("192.0.2.43"), Some(true))],
        ),
        // §6: IPv6 in brackets, quoted; with a port; IPv4 with a port.
        (
            vec![r#"for="[2001:db8:cafe::17]""#],
            vec![plain(ip("2001:db8:cafe::17"))],
        ),
        (
            vec![r#"for="[2001:db8:cafe::17]:4711""#],
            vec![plain(tcp("[2001:db8:cafe::17]:4711"))],
        ),
        (
            vec![r#"for="192.0.2.43:4711""#],
            vec![plain(tcp("192.0.2.43:4711"))],
        ),
        // §6.2, §6.3: unknown and obfuscated nodes and ports.
        (vec!["for=unknown"], vec![plain(Node::Hidden)]),
        (vec![r#"for="_gazonk""#], vec![plain(Node::Hidden)]),
        (vec!["for=_hidden"], vec![plain(Node::Hidden)]),
        (
            vec![r#"for="192.0.2.43:_port7""#],
            vec![plain(ip("192.0.2.43"))],
        ),
        (vec![r#"for="unknown:4711""#], vec![plain(Node::Hidden)]),
        // A quoted-pair inside a quoted string; a comma inside quotes does
        // not split the element.
        (
            vec![r#"for="\1\9\2.0.2.43""#],
            vec![plain(ip("192.0.2.43"))],
        ),
        (
            vec![r#"for=192.0.2.43;host="a,b", for=198.51.100.17"#],
            vec![plain(ip("192.0.2.43")), plain(ip("198.51.100.17"))],
        ),
        // IPv4-mapped addresses are the IPv4 address.
        (
            vec![r#"for="[::ffff:192.0.2.43]""#],
            vec![plain(ip("192.0.2.43"))],
        ),
        // Empty list elements are ignored (RFC 9110 §5.6.1).
        (vec![" , for=192.0.2.43,,"], vec![plain(ip("192.0.2.43"))]),
    ] {
        assert_eq!(fwd(&fields), want, "{fields:?}");
    }
    // Malformed elements: each is one invalid hop, its neighbours intact.
    for bad in [
        "for=2001:db8::1",               // §6: IPv6 must be bracketed (and quoted)
        "for=192.0.2.43:4711",           // ':' is not a token character: quote it
        r#"for="[2001:db8::1""#,         // unclosed bracket
        r#"for="[2001:db8::1]4711""#,    // no ':' before the port
        r#"for="192.0.2.43:65536""#,     // port out of range
        r#"for="192.0.2.43:""#,          // empty port
        r#"for="192.0.2.043""#,          // not an IPv4address
        r#"for="example.com""#,          // a name is not a node
        "for=192.0.2.43;for=192.0.2.44", // §5: a parameter at most once
        "for = 192.0.2.43",              // no whitespace around '='
        "for=",                          // no value
        "=192.0.2.43",                   // no name
        "for=192.0.2.43 x",              // junk after the value
        "by=203.0.113.60",               // no for=: whom it came from is not said
        "proto=1http;for=192.0.2.43",    // §5.4: not a scheme name
        "for=\"1.2.3.4\x01\"",           // a control character in a quoted string
    ] {
        let field = format!("for=198.51.100.1, {bad}, for=198.51.100.2");
        assert_eq!(
            fwd(&[&field]),
            vec![
                plain(ip("198.51.100.1")),
                plain(Node::Invalid),
                plain(ip("198.51.100.2"))
            ],
            "{bad}"
        );
    }
    // An unterminated quoted string swallows the rest of its field, never
    // the next field.
    assert_eq!(
        fwd(&[r#"for="192.0.2.43, for=198.51.100.17"#, "for=198.51.100.2"]),
        vec![plain(Node::Invalid), plain(ip("198.51.100.2"))]
    );
}

#[test]
fn x_forwarded_for_syntax() {
    let xff = |fields: &[&str]| x_forwarded_for(fields.iter().map(|f| f.as_bytes()));
    let plain = |n| hop(n, None);
    assert_eq!(
        xff(&[
            "203.0.113.195, 2001:db8:85a3::8a2e:370:7334",
            "198.51.100.178"
        ]),
        vec![
            plain(ip("203.0.113.195")),
            plain(ip("2001:db8:85a3::8a2e:370:7334")),
            plain(ip("198.51.100.178")),
        ]
    );
    assert_eq!(
        xff(&["192.0.2.1:4711,[2001:db8::1]:80 ,[2001:db8::2],unknown,, ::ffff:10.1.2.3"]),
        vec![
            plain(tcp("192.0.2.1:4711")),
            plain(tcp("[2001:db8::1]:80")),
            plain(ip("2001:db8::2")),
            plain(Node::Hidden),
            plain(ip("10.1.2.3")),
        ]
    );
    for bad in [
        "example.com",
        "1.2.3.4.5",
        "192.0.2.1:99999",
        "[1.2.3.4]",
        "for=1.2.3.4",
        "\u{0}",
    ] {
        assert_eq!(xff(&[bad]), vec![plain(Node::Invalid)], "{bad:?}");
    }
    let xfp = |fields: &[&str]| x_forwarded_proto(fields.iter().map(|f| f.as_bytes()));
    assert_eq!(xfp(&[]), None);
    assert_eq!(xfp(&["https"]), Some(true));
    assert_eq!(xfp(&["HTTPS"]), Some(true));
    assert_eq!(xfp(&["http"]), Some(false));
    assert_eq!(xfp(&["https, http"]), Some(false));
    assert_eq!(xfp(&["http", "https"]), Some(true));
    assert_eq!(xfp(&["ftp"]), Some(false));
}

#[test]
fn trusted_proxy_spellings() {
    let net = |s: &str| TrustedProxy::Net(s.parse().unwrap());
    for (input, want) in [
        ("10.0.0.0/8", net("10.0.0.0/8")),
        ("192.0.2.7", net("192.0.2.7/32")),
        ("::1", net("::1/128")),
        ("::ffff:192.0.2.7", net("192.0.2.7/32")),
        ("fd00::/8", net("fd00::/8")),
        ("unix", TrustedProxy::Unix),
    ] {
        assert_eq!(input.parse::<TrustedProxy>(), Ok(want), "{input}");
    }
    for bad in ["", "10.0.0.0/33", "example.com", "10.0.0.0/", "Unix", "*"] {
        assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
    }
}

fn trust(list: &[&str], headers: ProxyHeaders) -> Trust {
    Trust {
        proxies: list.iter().map(|s| s.parse().unwrap()).collect(),
        headers,
    }
}

fn conn(peer: &str) -> ConnInfo {
    let peer = if peer == "unix" {
        Peer::Unix
    } else {
        Peer::Tcp(peer.parse().unwrap())
    };
    ConnInfo::new(peer, Some(8080), Arc::from("web"))
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    h
}

/// Who the client is, and whether it used https, for `peer` sending
/// `fields` to a server that trusts `trusted`.
fn client(
    peer: &str,
    fields: &[(&str, &str)],
    trusted: &[&str],
    kind: ProxyHeaders,
) -> (String, bool) {
    let info = resolve(&conn(peer), &headers(fields), &trust(trusted, kind));
    assert_eq!(
        info.socket_peer,
        conn(peer).socket_peer,
        "the socket's peer is kept"
    );
    (info.peer.to_string(), info.https)
}

/// Peer, header fields, the kind honoured, the client and https wanted.
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    ProxyHeaders,
    &'a str,
    bool,
);

const PROXIES: &[&str] = &["10.0.0.0/8", "unix"];
const X: ProxyHeaders = ProxyHeaders::XForwarded;
const F: ProxyHeaders = ProxyHeaders::Forwarded;

#[test]
fn rightmost_untrusted_hop_wins() {
    let cases: &[Case] = &[
        // One trusted proxy in front: the client it names.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "192.0.2.1")],
            X,
            "192.0.2.1",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[
                ("x-forwarded-for", "192.0.2.1"),
                ("x-forwarded-proto", "https"),
            ],
            X,
            "192.0.2.1",
            true,
        ),
        (
            "10.0.0.1:5000",
            &[("forwarded", "for=192.0.2.1;proto=https")],
            F,
            "192.0.2.1",
            true,
        ),
        (
            "10.0.0.1:5000",
            &[("forwarded", r#"for="[2001:db8::1]:4711""#)],
            F,
            "[2001:db8::1]:4711",
            false,
        ),
        // A chain of trusted proxies: skipped from the right.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "192.0.2.1, 10.0.0.9, 10.0.0.8")],
            X,
            "192.0.2.1",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[(
                "forwarded",
                "for=192.0.2.1;proto=https, for=10.0.0.9;proto=http",
            )],
            F,
            "192.0.2.1",
            true,
        ),
        // The rightmost untrusted hop wins, whatever the client put left of it.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "6.6.6.6, 192.0.2.1, 10.0.0.9")],
            X,
            "192.0.2.1",
            false,
        ),
        // All trusted: the leftmost.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "10.0.0.7, 10.0.0.8")],
            X,
            "10.0.0.7",
            false,
        ),
        // A hop that names nobody ends the walk at the proxy that wrote it.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "192.0.2.1, unknown")],
            X,
            "10.0.0.1:5000",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[("forwarded", "for=_hidden;proto=https")],
            F,
            "10.0.0.1:5000",
            true,
        ),
        (
            "10.0.0.1:5000",
            &[("forwarded", "by=10.0.0.1")],
            F,
            "10.0.0.1:5000",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "10.0.0.9, junk")],
            X,
            "10.0.0.1:5000",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "192.0.2.1, unknown, 10.0.0.9")],
            X,
            "10.0.0.9",
            false,
        ),
        // No header: the trusted proxy is the client.
        ("10.0.0.1:5000", &[], X, "10.0.0.1:5000", false),
        // The Unix socket's peers, when `unix` is trusted.
        (
            "unix",
            &[("x-forwarded-for", "192.0.2.1")],
            X,
            "192.0.2.1",
            false,
        ),
        // IPv4-mapped peers match IPv4 ranges.
        (
            "[::ffff:10.0.0.1]:5000",
            &[("x-forwarded-for", "192.0.2.1")],
            X,
            "192.0.2.1",
            false,
        ),
    ];
    for (peer, fields, kind, want, https) in cases {
        assert_eq!(
            client(peer, fields, PROXIES, *kind),
            (want.to_string(), *https),
            "{peer} {fields:?}"
        );
    }
}

/// Spoofing attempts: none changes the client or the scheme.
#[test]
fn spoofing_changes_nothing() {
    let cases: &[Case] = &[
        // An untrusted peer's headers are ignored, every kind of them.
        (
            "192.0.2.9:5000",
            &[("x-forwarded-for", "10.0.0.1")],
            X,
            "192.0.2.9:5000",
            false,
        ),
        (
            "192.0.2.9:5000",
            &[("x-forwarded-proto", "https")],
            X,
            "192.0.2.9:5000",
            false,
        ),
        (
            "192.0.2.9:5000",
            &[("forwarded", "for=1.2.3.4;proto=https")],
            F,
            "192.0.2.9:5000",
            false,
        ),
        (
            "192.0.2.9:5000",
            &[("x-real-ip", "1.2.3.4")],
            X,
            "192.0.2.9:5000",
            false,
        ),
        // A client that pretends to be a chain of our own proxies.
        (
            "192.0.2.9:5000",
            &[("x-forwarded-for", "1.2.3.4, 10.0.0.2, 10.0.0.3")],
            X,
            "192.0.2.9:5000",
            false,
        ),
        // Through a trusted proxy that appends: the client's own entries
        // lie left of the address the proxy saw, and are never reached.
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for", "1.2.3.4, 10.0.0.5, 192.0.2.9")],
            X,
            "192.0.2.9",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[(
                "forwarded",
                "for=1.2.3.4;proto=https, for=192.0.2.9;proto=http",
            )],
            F,
            "192.0.2.9",
            false,
        ),
        // A client's Forwarded through a proxy that maintains X-Forwarded-*
        // (and passes Forwarded untouched): ignored.
        (
            "10.0.0.1:5000",
            &[
                ("forwarded", "for=1.2.3.4;proto=https"),
                ("x-forwarded-for", "192.0.2.9"),
            ],
            X,
            "192.0.2.9",
            false,
        ),
        // ... and the other way round.
        (
            "10.0.0.1:5000",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=192.0.2.9;proto=http"),
            ],
            F,
            "192.0.2.9",
            false,
        ),
        // An unterminated quote meant to swallow the proxy's element makes
        // the element invalid: the walk stops at the proxy, not at 1.2.3.4.
        (
            "10.0.0.1:5000",
            &[("forwarded", r#"for="1.2.3.4, for=192.0.2.9"#)],
            F,
            "10.0.0.1:5000",
            false,
        ),
        // Header names spelled to pass for the real ones are other headers.
        (
            "10.0.0.1:5000",
            &[("x_forwarded_for", "1.2.3.4")],
            X,
            "10.0.0.1:5000",
            false,
        ),
        (
            "10.0.0.1:5000",
            &[("x-forwarded-for-", "1.2.3.4")],
            X,
            "10.0.0.1:5000",
            false,
        ),
        // A Unix socket's peers are not trusted unless `unix` is listed
        // (checked below with a list without it).
    ];
    for (peer, fields, kind, want, https) in cases {
        assert_eq!(
            client(peer, fields, PROXIES, *kind),
            (want.to_string(), *https),
            "{peer} {fields:?}"
        );
    }
    assert_eq!(
        client(
            "unix",
            &[("x-forwarded-for", "1.2.3.4")],
            &["10.0.0.0/8"],
            X
        ),
        ("unix".to_string(), false)
    );
    // Without --trusted-proxy, nobody is believed.
    assert_eq!(
        client("10.0.0.1:5000", &[("x-forwarded-for", "1.2.3.4")], &[], X),
        ("10.0.0.1:5000".to_string(), false)
    );
}

/// The fuzz target's property over random inputs: the client is the peer
/// or an address one of the headers names, and an untrusted peer's
/// headers change nothing.
#[test]
fn the_client_is_always_named_somewhere() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let atoms: &[&[u8]] = &[
        b"for=",
        b"10.0.0.3",
        b"192.0.2.1",
        b"\"[2001:db8::1]:80\"",
        b",",
        b";",
        b"\"",
        b"proto=https",
        b"unknown",
        b" ",
        b"_x",
        b"\\",
        b"[",
        b"]",
        b":",
        b"by=",
    ];
    for _ in 0..20_000 {
        let mut value = Vec::new();
        for _ in 0..(next() % 10) {
            value.extend_from_slice(atoms[(next() as usize) % atoms.len()]);
        }
        check(&value);
    }
}

/// What `fuzz/fuzz_targets/forwarded.rs` asserts.
fn check(value: &[u8]) {
    let Ok(v) = HeaderValue::from_bytes(value) else {
        return;
    };
    for kind in [X, F] {
        let mut h = HeaderMap::new();
        for name in ["forwarded", "x-forwarded-for", "x-forwarded-proto"] {
            h.append(name, v.clone());
        }
        let hops = match kind {
            X => x_forwarded_for(std::iter::once(value)),
            F => forwarded(std::iter::once(value)),
        };
        let trusted = trust(&["10.0.0.0/8"], kind);
        let info = resolve(&conn("10.0.0.1:1"), &h, &trusted);
        let named = hops.iter().any(|h| h.node == Node::Addr(info.peer.clone()));
        assert!(info.peer == conn("10.0.0.1:1").peer || named, "{value:?}");
        let info = resolve(&conn("192.0.2.7:1"), &h, &trusted);
        assert_eq!(info.peer, conn("192.0.2.7:1").peer);
        assert!(!info.https);
    }
}
