//! Table tests for the codec: one line per rule, in the style of httparse's
//! `req!` macro. Each case is raw bytes and what must come of them.

use super::*;

const LIMITS: Limits = Limits {
    max_request_line: 64,
    max_head: 256,
    max_headers: 8,
    max_body: 1000,
};

#[derive(Debug, PartialEq)]
enum Want {
    /// A complete head with this framing and keep-alive.
    Done(Framing, bool),
    Partial,
    Fail(Error),
}
use Want::*;

const BAD: Want = Fail(Error::Malformed(""));

fn run(input: &[u8]) -> Want {
    match parse_head(input, &LIMITS) {
        Result::Ok(Parsed::Complete(h, n)) => {
            assert_eq!(
                n,
                input.len(),
                "consumed all of {:?}",
                String::from_utf8_lossy(input)
            );
            Done(h.framing, h.keep_alive)
        }
        Result::Ok(Parsed::Partial) => Partial,
        Result::Err(Error::Malformed(_)) => BAD,
        Result::Err(e) => Fail(e),
    }
}

macro_rules! cases {
    ($($input:expr => $want:expr;)*) => {{
        let mut failures = Vec::new();
        $(
            let got = run($input);
            if got != $want {
                failures.push(format!("{:?}: got {:?}, want {:?}",
                    String::from_utf8_lossy($input), got, $want));
            }
        )*
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }};
}

#[test]
fn request_lines() {
    cases! {
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.0\r\n\r\n" => Done(Framing::None, false);
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.1\r\nHost: a\r\n" => Partial;
        b"GET / HTTP/1.1" => Partial;
        b"GET /" => Partial;
        b"" => Partial;
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n" => Fail(Error::UnknownVersion);
        b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / FTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /\r\n\r\n" => BAD;
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET http://example.com/x?y HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET HTTP://EXAMPLE.COM/ HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"PURGE /x?a=%20 HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
    }
}

/// The request-line and `Host` rules a strict origin server applies, each
/// with the section that states it (RFC 9112 §2-§6, RFC 9110 §2.5, §4, §5).
#[test]
fn strict_origin_server() {
    let huge_method = format!(
        "{} / HTTP/1.1\r\nHost: a\r\n\r\n",
        "M".repeat(MAX_METHOD + 1)
    );
    let long_method_partial = "X".repeat(MAX_METHOD + 1);
    let longest_method = format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(MAX_METHOD));
    cases! {
        // RFC 9112 §3, §3.2: no whitespace inside the request-target (not 505).
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /a b HTTP/1.2\r\nHost: a\r\n\r\n" => BAD;
        b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET /a\x0bb HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n" => BAD;
        b"GET http://a/ b HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        // RFC 9110 §2.5, RFC 9112 §2.3: 1.x with a higher minor is 1.1.
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.9\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.2\r\n\r\n" => BAD; // so Host is required (RFC 9112 §3.2)
        b"POST / HTTP/1.2\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" => Done(Framing::Chunked, true);
        b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n" => Done(Framing::None, false);
        // RFC 9110 §2.5, §15.6.6: another major version is 505.
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n" => Fail(Error::UnknownVersion);
        b"GET / HTTP/3.0\r\nHost: a\r\n\r\n" => Fail(Error::UnknownVersion);
        b"GET / HTTP/0.9\r\nHost: a\r\n\r\n" => Fail(Error::UnknownVersion);
        // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
        b"GET / HTTP/1.10\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/01.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / http/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/3\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/a.b\r\nHost: a\r\n\r\n" => BAD;
        // RFC 9112 §6.3, RFC 9110 §8.6: a Content-Length beyond 64 bits is
        // malformed (400); one that fits but exceeds the limit is 413.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n" => Fail(Error::BodyTooLarge);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000000000000005\r\n\r\n" => Done(Framing::Length(5), true);
        // RFC 9112 §3: a method longer than any implemented is 501, even
        // before the line is complete; up to MAX_METHOD it is the handler's.
        huge_method.as_bytes() => Fail(Error::MethodTooLong);
        long_method_partial.as_bytes() => Fail(Error::MethodTooLong);
        longest_method.as_bytes() => Done(Framing::None, true);
        // RFC 9110 §4.2.1-§4.2.4, RFC 9112 §3.2.2: an absolute-form
        // authority is uri-host [":" port], without userinfo.
        b"GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET http://a:/ HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET http://[::1]:80/ HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET http://a:bad/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://a:65536/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://a:-1/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://a:80:80/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://@a/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://[zz]/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://[::1]x/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://[1.2.3.4]/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET http://a%zz/ HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        // RFC 9112 §3.2.1: an origin-form target has no authority, whatever
        // its path or query holds (a URL passed along, say).
        b"GET /go?to=http://user@host HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"GET /a://[bad HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        // RFC 9112 §3.2.3: authority-form is uri-host ":" port.
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" => Done(Framing::None, true);
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n" => Done(Framing::None, true);
        b"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"CONNECT a: HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"CONNECT a:99999 HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"CONNECT u@a:443 HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        // RFC 9112 §3.2: Host is required in 1.1, once, with a valid value.
        b"GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n" => Done(Framing::None, true);
        // RFC 9110 §4.2.1, RFC 9112 §3.3: with no authority in the target,
        // an empty Host (or one that is only a port) leaves the http URI
        // without a host: rejected.
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n" => BAD;
        b"GET / HTTP/1.0\r\nHost:\r\n\r\n" => BAD;
        b"OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n" => BAD;
        // RFC 9112 §3.2.2: with an absolute-form target, Host is replaced
        // by the target's authority, so an empty one is no error.
        b"GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n" => Done(Framing::None, true);
        b"CONNECT a:443 HTTP/1.1\r\nHost:\r\n\r\n" => Done(Framing::None, true);
        // ... but it must still be present and valid (RFC 9112 §3.2).
        b"GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n" => BAD;
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" => BAD;
        // RFC 9112 §5.1: no whitespace between field name and colon;
        // RFC 9110 §5.1, §5.6.2: a field name is a token.
        b"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: 1\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: 1\r\n\r\n" => BAD;
        // RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB; a
        // CTL (NUL, CR and LF above all) is refused.
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \r\n\r\n" => Done(Framing::None, true);
    }
}

/// RFC 9110 §2.5: an `HTTP/1.2` request is handled as 1.1 (so the
/// handler, CGI's `SERVER_PROTOCOL` and the response all say 1.1).
#[test]
fn a_higher_minor_version_is_read_as_1_1() {
    let input = b"GET /x?y HTTP/1.7\r\nHost: a\r\nX: 1\r\n\r\nNEXT";
    let Result::Ok(Parsed::Complete(h, n)) = parse_head(input, &LIMITS) else {
        panic!()
    };
    assert_eq!(n, input.len() - b"NEXT".len());
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.uri, "/x?y");
    assert_eq!(h.headers["x"], "1");
}

/// RFC 9112 §3.2.2: the origin server uses the absolute-form target's
/// authority and ignores `Host`, which the codec replaces (or adds, for
/// HTTP/1.0), so that no handler can see a second authority.
#[test]
fn an_absolute_target_replaces_host() {
    for (input, want) in [
        (
            &b"GET http://example.com:81/p HTTP/1.1\r\nHost: other\r\n\r\n"[..],
            "example.com:81",
        ),
        (
            b"GET HTTP://Example.COM/p HTTP/1.1\r\nHost:\r\n\r\n",
            "Example.COM",
        ),
        (b"GET https://[::1]/ HTTP/1.0\r\n\r\n", "[::1]"),
        (b"GET / HTTP/1.1\r\nHost: origin\r\n\r\n", "origin"),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: b\r\n\r\n", "b"),
    ] {
        let Result::Ok(Parsed::Complete(h, _)) = parse_head(input, &LIMITS) else {
            panic!("{:?}", String::from_utf8_lossy(input))
        };
        let hosts: Vec<_> = h.headers.get_all(header::HOST).iter().collect();
        assert_eq!(hosts, [want], "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn empty_lines_before_the_request_are_skipped() {
    let input = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    match parse_head(input, &LIMITS) {
        Result::Ok(Parsed::Complete(_, n)) => assert_eq!(n, input.len()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_head(b"\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &LIMITS),
        Result::Err(_)
    ));
}

#[test]
fn line_endings() {
    cases! {
        b"GET / HTTP/1.1\nHost: a\n\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\n\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n" => BAD;
        b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\rHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n" => BAD;
    }
}

#[test]
fn header_syntax() {
    cases! {
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost:\ta\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n" => BAD;
    }
}

#[test]
fn host() {
    cases! {
        b"GET / HTTP/1.1\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n" => BAD;
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n" => BAD;
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n" => BAD;
        b"GET http://x/ HTTP/1.1\r\n\r\n" => BAD;
    }
}

#[test]
fn content_length() {
    cases! {
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n" => Done(Framing::Length(5), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" => Done(Framing::None, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\n" => Done(Framing::Length(5), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n" => Done(Framing::Length(5), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n" => Done(Framing::Length(5), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n" => Fail(Error::BodyTooLarge);
        b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n" => Done(Framing::None, true);
    }
}

#[test]
fn transfer_encoding() {
    cases! {
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" => Done(Framing::Chunked, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n" => Done(Framing::Chunked, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n" => Done(Framing::Chunked, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => Fail(Error::UnknownCoding);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" => Fail(Error::UnknownCoding);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" => BAD;
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => BAD;
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n" => Done(Framing::None, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n" => BAD;
    }
}

#[test]
fn persistence_and_expectations() {
    cases! {
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" => Done(Framing::None, false);
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n" => Done(Framing::None, false);
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" => Done(Framing::None, true);
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" => Done(Framing::None, false);
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n" => Done(Framing::None, true);
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n" => Done(Framing::Length(3), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n" => Done(Framing::Length(3), true);
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n" => Fail(Error::Expectation);
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n" => Fail(Error::Expectation);
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n" => Done(Framing::Length(3), false);
    }
}

#[test]
fn expect_continue_flag() {
    let parse = |s: &[u8]| match parse_head(s, &LIMITS) {
        Result::Ok(Parsed::Complete(h, _)) => h.expect_continue,
        other => panic!("{other:?}"),
    };
    assert!(parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    ));
    assert!(!parse(
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    ));
    assert!(!parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    ));
}

#[test]
fn limits() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(60));
    let long_partial = format!("GET /{}", "a".repeat(70));
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(8));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "y".repeat(250)
    );
    let big_partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "y".repeat(250));
    cases! {
        long_target.as_bytes() => Fail(Error::LineTooLong);
        long_partial.as_bytes() => Fail(Error::LineTooLong);
        many.as_bytes() => Fail(Error::HeadTooLarge);
        big.as_bytes() => Fail(Error::HeadTooLarge);
        big_partial.as_bytes() => Fail(Error::HeadTooLarge);
    }
}

#[test]
fn parsed_head_contents() {
    let input =
        b"POST http://example.com:81/p/a%20th?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    let Result::Ok(Parsed::Complete(h, _)) = parse_head(input, &LIMITS) else {
        panic!()
    };
    assert_eq!(h.method, Method::POST);
    assert_eq!(h.uri.path(), "/p/a%20th");
    assert_eq!(h.uri.query(), Some("q=1"));
    assert_eq!(h.uri.host(), Some("example.com"));
    assert_eq!(h.version, Version::HTTP_11);
    let xa: Vec<_> = h.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
}

/// Decode `input` in one go and in one-byte pieces; both must agree.
fn chunked(input: &[u8]) -> Result<(Vec<u8>, usize), Error> {
    let whole = {
        let mut d = ChunkedDecoder::new(1000, 64);
        let mut out = Vec::new();
        let n = d.decode(input, &mut |b| out.extend_from_slice(b))?;
        if !d.is_done() {
            return Err(Error::Malformed("incomplete"));
        }
        (out, n)
    };
    let mut d = ChunkedDecoder::new(1000, 64);
    let mut out = Vec::new();
    let mut used = 0;
    for b in input {
        if d.is_done() {
            break;
        }
        used += d.decode(std::slice::from_ref(b), &mut |b| out.extend_from_slice(b))?;
    }
    assert_eq!((out.clone(), used), whole, "bytewise decoding differs");
    Ok(whole)
}

#[test]
fn chunked_bodies() {
    let ok = |input: &[u8], body: &[u8]| {
        let (out, n) = chunked(input)
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(input)));
        assert_eq!(out, body, "{:?}", String::from_utf8_lossy(input));
        n
    };
    ok(b"5\r\nhello\r\n0\r\n\r\n", b"hello");
    ok(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world");
    ok(b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789");
    ok(b"a\r\n0123456789\r\n0000\r\n\r\n", b"0123456789");
    ok(b"5;ext\r\nhello\r\n0\r\n\r\n", b"hello");
    ok(b"5;a=b;c=\"d;e\\\"\"\r\nhello\r\n0\r\n\r\n", b"hello");
    ok(b"5 ;a = b\r\nhello\r\n0\r\n\r\n", b"hello");
    ok(
        b"5\r\nhello\r\n0\r\nTrailer: x\r\nOther: y z\r\n\r\n",
        b"hello",
    );
    ok(b"0\r\n\r\n", b"");
    // What follows the body is left for the next request.
    assert_eq!(ok(b"0\r\n\r\nGET / HTTP/1.1\r\n", b""), 5);

    let bad = |input: &[u8], want: Error| {
        let got = chunked(input).map(|(b, _)| b);
        let same = match (&got, want) {
            (Result::Err(Error::Malformed(_)), Error::Malformed(_)) => true,
            (Result::Err(e), w) => *e == w,
            _ => false,
        };
        assert!(
            same,
            "{:?}: got {got:?}, want {want:?}",
            String::from_utf8_lossy(input)
        );
    };
    let m = Error::Malformed("");
    bad(b"5\nhello\n0\n\n", m);
    bad(b"5\r\nhello\n0\r\n\r\n", m);
    bad(b"5\r\nhelloX\r\n0\r\n\r\n", m);
    bad(b"5\r\nhello\r\n0\r\n\n", m);
    bad(b"0x5\r\nhello\r\n0\r\n\r\n", m);
    bad(b"+5\r\nhello\r\n0\r\n\r\n", m);
    bad(b"-5\r\nhello\r\n0\r\n\r\n", m);
    bad(b" 5\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5 \r\nhello\r\n0\r\n\r\n", m);
    bad(b"\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5;\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5;a=\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5;a=\"unterminated\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5;a\x00\r\nhello\r\n0\r\n\r\n", m);
    bad(b"5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n", m);
    bad(b"5\r\nhello\r\n0\r\n folded\r\n\r\n", m);
    bad(b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", m);
    bad(b"3e9\r\n", Error::BodyTooLarge);
    // RFC 9112 §7.1: a chunk-size beyond 64 bits is malformed (400); one
    // that fits but exceeds the limit is 413.
    bad(b"fffffffffffffffff\r\n", m);
    bad(b"10000000000000000\r\n", m);
    bad(b"ffffffffffffffff\r\n", Error::BodyTooLarge);
    ok(b"000000000000000000005\r\nhello\r\n0\r\n\r\n", b"hello");
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(100));
    bad(long_ext.as_bytes(), m);
}

#[test]
fn chunked_total_is_bounded_across_chunks() {
    let mut d = ChunkedDecoder::new(10, 64);
    let mut n = 0;
    let r = d.decode(b"6\r\nabcdef\r\n6\r\nabcdef\r\n", &mut |b| n += b.len());
    assert_eq!(r, Result::Err(Error::BodyTooLarge));
    assert_eq!(n, 6);
}

#[test]
fn chunk_lines_are_bounded() {
    let mut d = ChunkedDecoder::new(1000, usize::MAX);
    let line = format!("5;a={}\r\n", "b".repeat(5000));
    assert_eq!(
        d.decode(line.as_bytes(), &mut |_| {}),
        Result::Err(Error::Malformed("chunk line too long"))
    );
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    b"PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"GET http://h/p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

/// Mutations that matter for framing: line ends, separators, digits.
const ALPHABET: &[u8] = b"\r\n :,;\t0123456789aAzZ-/\x00\x7f\xff";

#[test]
fn random_heads_never_panic_and_prefixes_are_partial() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(3) {
                0 => input.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                1 if at < input.len() => {
                    input.remove(at);
                }
                _ if at < input.len() => input[at] = ALPHABET[rng.below(ALPHABET.len())],
                _ => {}
            }
        }
        if let Result::Ok(Parsed::Complete(_, n)) = parse_head(&input, &LIMITS) {
            assert!(n <= input.len());
            for cut in 0..n {
                let got = parse_head(&input[..cut], &LIMITS);
                assert!(
                    matches!(got, Result::Ok(Parsed::Partial)),
                    "{:?} cut at {cut}: {got:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}

#[test]
fn random_chunkings_round_trip() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..2_000 {
        let data: Vec<u8> = (0..rng.below(600)).map(|_| rng.next() as u8).collect();
        let mut wire = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len().min(200));
            let size = if rng.below(2) == 0 {
                format!("{take:x}")
            } else {
                format!("{take:X}")
            };
            wire.extend_from_slice(size.as_bytes());
            if rng.below(4) == 0 {
                wire.extend_from_slice(b";x=\"y\"");
            }
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&rest[..take]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[take..];
        }
        wire.extend_from_slice(b"0\r\n\r\nNEXT");
        let mut d = ChunkedDecoder::new(1 << 20, 1 << 20);
        let mut out = Vec::new();
        let mut used = 0;
        // Feed in random pieces.
        while !d.is_done() {
            let piece = (1 + rng.below(50)).min(wire.len() - used);
            used += d
                .decode(&wire[used..used + piece], &mut |b| out.extend_from_slice(b))
                .unwrap();
        }
        assert_eq!(out, data);
        assert_eq!(&wire[used..], b"NEXT", "stops at the end of the body");
    }
}

/// The header slots come from the stack up to the default `--max-headers`
/// and from the heap above it: the limit holds exactly on both sides.
#[test]
fn header_limits_on_both_sides_of_the_stack_slots() {
    let head = |n: usize| {
        let mut h = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            h.push_str(&format!("X-{i}: v\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    for max_headers in [1, STACK_HEADERS - 1, STACK_HEADERS, STACK_HEADERS + 1, 1000] {
        let limits = Limits {
            max_request_line: 64,
            max_head: 64 * 1024,
            max_headers,
            max_body: 0,
        };
        let fits = parse_head(head(max_headers).as_bytes(), &limits);
        assert!(
            matches!(fits, Result::Ok(Parsed::Complete(..))),
            "{max_headers} fields within a limit of {max_headers}: {fits:?}"
        );
        let over = parse_head(head(max_headers + 1).as_bytes(), &limits);
        assert!(
            matches!(over, Result::Err(Error::HeadTooLarge)),
            "{} fields over a limit of {max_headers}: {over:?}",
            max_headers + 1
        );
    }
}

/// Field values are taken from httparse without `HeaderValue` checking
/// their bytes again (`sys::parsed_field_value`): every byte, at the start,
/// inside and at the end of a value, is admitted by the parser exactly when
/// `HeaderValue` admits it (leading and trailing whitespace aside, which the
/// parser trims), and what is admitted arrives unchanged.
#[test]
fn the_parser_admits_only_what_header_value_admits() {
    let limits = Limits {
        max_headers: 100,
        ..LIMITS
    };
    for b in 0..=255u8 {
        for value in [vec![b, b'z'], vec![b'a', b, b'z'], vec![b'a', b]] {
            let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
            head.extend_from_slice(&value);
            head.extend_from_slice(b"\r\n\r\n");
            let ows = |c: &u8| matches!(c, b' ' | b'\t');
            let start = value.iter().position(|c| !ows(c)).unwrap_or(value.len());
            let end = value.iter().rposition(|c| !ows(c)).map_or(start, |i| i + 1);
            let trimmed = &value[start..end];
            let valid = HeaderValue::from_bytes(trimmed).is_ok();
            match parse_head(&head, &limits) {
                Result::Ok(Parsed::Complete(h, _)) => {
                    let got = h.headers.get("x").map(HeaderValue::as_bytes);
                    assert!(valid, "byte {b:#04x} admitted in {value:?}");
                    assert_eq!(got, Some(trimmed), "byte {b:#04x} in {value:?}");
                }
                Result::Ok(Parsed::Partial) => panic!("a whole head is partial: {head:?}"),
                // CR, LF and NUL end or break the line, whatever the position.
                Result::Err(_) => assert!(
                    !valid || matches!(b, b'\r' | b'\n'),
                    "byte {b:#04x} refused in {value:?}"
                ),
            }
        }
    }
}

/// RFC 9110 §5.6.2 defines tokens twice: `tchar` lists its symbols, and the
/// prose says a token is visible ASCII without the delimiters
/// `"(),/:;<=>?@[\]{}`. The table `is_tchar` reads agrees with the second
/// for every byte value.
#[test]
fn tchar_is_visible_ascii_without_delimiters() {
    for b in 0..=255u8 {
        let want = (0x21..=0x7e).contains(&b) && !b"\"(),/:;<=>?@[\\]{}".contains(&b);
        assert_eq!(super::is_tchar(b), want, "byte {b:#04x}");
    }
}
