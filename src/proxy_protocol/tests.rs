//! Table tests for the PROXY header parser, each case citing the rule of
//! HAProxy's `proxy-protocol.txt` it exercises, plus properties over every
//! prefix and random bytes.

use super::*;

fn tcp(s: &str) -> Option<Source> {
    Some(Source::Tcp(s.parse().unwrap()))
}

fn v1_header(source: Option<Source>, dst: Option<&str>) -> Header {
    Header {
        version: 1,
        source,
        destination: dst.map(|d| d.parse().unwrap()),
        tls: false,
    }
}

/// A v2 header: version/command byte, family/protocol byte, the block
/// after the length (addresses and TLVs).
fn v2_bytes(vc: u8, fp: u8, block: &[u8]) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.push(vc);
    v.push(fp);
    v.extend_from_slice(&(block.len() as u16).to_be_bytes());
    v.extend_from_slice(block);
    v
}

fn inet_block() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 1, 198, 51, 100, 7];
    b.extend_from_slice(&4711u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn inet6_block() -> Vec<u8> {
    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&4711u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&(value.len() as u16).to_be_bytes());
    t.extend_from_slice(value);
    t
}

#[test]
fn version_1_table() {
    let ok = |input: &str, want: Header| {
        let got = parse(input.as_bytes());
        assert_eq!(got, Ok(Parsed::Complete(want, input.len())), "{input:?}");
    };
    // §2.1: TCP4 and TCP6, single spaces, CRLF.
    ok(
        "PROXY TCP4 192.0.2.1 198.51.100.7 4711 443\r\n",
        v1_header(tcp("192.0.2.1:4711"), Some("198.51.100.7:443")),
    );
    ok(
        "PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n",
        v1_header(tcp("[2001:db8::1]:4711"), Some("[2001:db8::2]:443")),
    );
    ok(
        "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        v1_header(tcp("0.0.0.0:0"), Some("255.255.255.255:65535")),
    );
    // §2.1: UNKNOWN, with or without addresses: the rest is ignored and
    // the connection's own addresses are used.
    ok("PROXY UNKNOWN\r\n", v1_header(None, None));
    ok(
        "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        v1_header(None, None),
    );
    // §2.1: the worst case is 107 bytes, and it is accepted.
    let longest = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                   ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), MAX_V1_LEN);
    ok(longest, v1_header(None, None));

    let bad = |input: &[u8], want: Error| {
        assert_eq!(
            parse(input),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    };
    let v1 = |why| Error::V1(why);
    // Not a header at all: an HTTP request, a lower-case keyword.
    bad(b"GET / HTTP/1.1\r\n\r\n", Error::NoHeader);
    bad(b"proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n", Error::NoHeader);
    bad(b"PROXY\tTCP4 1.2.3.4 1.2.3.5 1 2\r\n", Error::NoHeader);
    // §2.1: one line of at most 107 bytes; a 108th byte without LF is
    // refused without waiting for more.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(MAX_V1_LEN, b'x');
    bad(&long, Error::TooLong);
    long.extend_from_slice(b"\r\n");
    bad(&long, Error::TooLong);
    // §2.1: CRLF, and only CRLF, ends the line.
    bad(
        b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n",
        v1("line not ended by CRLF"),
    );
    assert_eq!(
        parse(b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\r"),
        Ok(Parsed::Partial)
    );
    bad(b"PROXY TCP4 1.2\r3.4 1.2.3.5 1 2", v1("CR without LF"));
    // Found by fuzz/proxy_header: a CR inside the line is refused once its
    // LF has come too (after UNKNOWN the line was accepted whole while
    // every prefix of it was refused).
    bad(b"PROXY UNKNOWN UNKNOWN\r\r\n", v1("CR without LF"));
    bad(b"PROXY UNKNOWN a\rb\r\n", v1("CR without LF"));
    bad(b"PROXY TCP4 1.2\r3.4 1.2.3.5 1 2\r\n", v1("CR without LF"));
    // §2.1: exactly one space between fields.
    bad(
        b"PROXY  TCP4 1.2.3.4 1.2.3.5 1 2\r\n",
        v1("protocol is not TCP4, TCP6 or UNKNOWN"),
    );
    bad(
        b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n",
        v1("extra field or space"),
    );
    bad(
        b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2 \r\n",
        v1("extra field or space"),
    );
    bad(b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", v1("missing field"));
    bad(
        b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n",
        v1("protocol is not TCP4, TCP6 or UNKNOWN"),
    );
    bad(b"PROXY \r\n", v1("protocol is not TCP4, TCP6 or UNKNOWN"));
    // §2.1: the addresses are of the protocol's family.
    bad(
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        v1("address does not match the protocol"),
    );
    bad(
        b"PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n",
        v1("address does not match the protocol"),
    );
    bad(
        b"PROXY TCP4 1.2.3.04 1.2.3.5 1 2\r\n",
        v1("address does not match the protocol"),
    );
    bad(
        b"PROXY TCP4 example.org 1.2.3.5 1 2\r\n",
        v1("address does not match the protocol"),
    );
    // §2.1: ports are decimal 0-65535, without leading zeroes or signs.
    for port in ["65536", "01", "+1", "-1", "0x10", "", "99999999999"] {
        let line = format!("PROXY TCP4 1.2.3.4 1.2.3.5 {port} 80\r\n");
        bad(line.as_bytes(), v1("port is not a decimal 0-65535"));
    }
}

#[test]
fn version_1_prefixes_are_partial() {
    let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n";
    for n in 0..line.len() {
        assert_eq!(parse(&line[..n]), Ok(Parsed::Partial), "{n}");
    }
}

#[test]
fn version_2_table() {
    let ok = |input: Vec<u8>, source: Option<Source>, dst: Option<&str>, tls: bool| {
        let want = Header {
            version: 2,
            source,
            destination: dst.map(|d| d.parse().unwrap()),
            tls,
        };
        assert_eq!(
            parse(&input),
            Ok(Parsed::Complete(want, input.len())),
            "{input:?}"
        );
    };
    // §2.2: PROXY over TCP/IPv4 (0x21, 0x11) and TCP/IPv6 (0x21, 0x21).
    ok(
        v2_bytes(0x21, 0x11, &inet_block()),
        tcp("192.0.2.1:4711"),
        Some("198.51.100.7:443"),
        false,
    );
    ok(
        v2_bytes(0x21, 0x21, &inet6_block()),
        tcp("[2001:db8::1]:4711"),
        Some("[2001:db8::2]:443"),
        false,
    );
    // §2.2: AF_UNIX stream: two 108-byte paths.
    ok(
        v2_bytes(0x21, 0x31, &[0; 216]),
        Some(Source::Unix),
        None,
        false,
    );
    // §2.2: LOCAL: the real endpoints are used, the block is discarded,
    // whatever family it claims.
    ok(v2_bytes(0x20, 0x00, &[]), None, None, false);
    ok(v2_bytes(0x20, 0x11, &inet_block()), None, None, false);
    ok(v2_bytes(0x20, 0xff, &[1, 2, 3]), None, None, false);
    // §2.2: PROXY with AF_UNSPEC: the receiver uses the real endpoints.
    ok(v2_bytes(0x21, 0x00, &[]), None, None, false);
    // §2.2.1-2.2.5: TLVs after the addresses are walked and skipped;
    // PP2_TYPE_SSL with PP2_CLIENT_SSL says the client used TLS.
    let mut block = inet_block();
    block.extend(tlv(0x01, b"h2"));
    block.extend(tlv(0x04, b""));
    block.extend(tlv(0xEE, &[7; 100]));
    ok(
        v2_bytes(0x21, 0x11, &block),
        tcp("192.0.2.1:4711"),
        Some("198.51.100.7:443"),
        false,
    );
    let mut block = inet_block();
    let mut ssl = vec![PP2_CLIENT_SSL, 0, 0, 0, 0];
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    block.extend(tlv(PP2_TYPE_SSL, &ssl));
    ok(
        v2_bytes(0x21, 0x11, &block),
        tcp("192.0.2.1:4711"),
        Some("198.51.100.7:443"),
        true,
    );
    // The largest header accepted.
    let mut block = inet_block();
    block.extend(tlv(0xEE, &vec![0; MAX_V2_LEN - 16 - 12 - 3]));
    let largest = v2_bytes(0x21, 0x11, &block);
    assert_eq!(largest.len(), MAX_V2_LEN);
    ok(
        largest,
        tcp("192.0.2.1:4711"),
        Some("198.51.100.7:443"),
        false,
    );

    let bad = |input: &[u8], want: Error| {
        assert_eq!(parse(input), Err(want), "{input:?}");
    };
    // §2.2: a wrong signature, at any of its bytes.
    for i in 0..12 {
        let mut h = v2_bytes(0x21, 0x11, &inet_block());
        h[i] ^= 0x40;
        bad(&h, Error::NoHeader);
        bad(&h[..=i], Error::NoHeader);
    }
    // §2.2: the version nibble must be 2; commands other than LOCAL and
    // PROXY are rejected.
    bad(&v2_bytes(0x11, 0x11, &inet_block()), Error::Version(1));
    bad(&v2_bytes(0x31, 0x11, &inet_block()), Error::Version(3));
    bad(&v2_bytes(0x22, 0x11, &inet_block()), Error::Command(2));
    bad(&v2_bytes(0x2f, 0x11, &inet_block()), Error::Command(15));
    // §2.2: unknown families and protocols are invalid; so is a datagram
    // or unspecified protocol for a real family.
    for fp in [0x41, 0xf1, 0x13, 0x12, 0x22, 0x32, 0x10, 0x01, 0x02] {
        bad(&v2_bytes(0x21, fp, &inet6_block()), Error::Family(fp));
    }
    // §2.2: the length covers at least the family's addresses.
    bad(
        &v2_bytes(0x21, 0x11, &inet_block()[..11]),
        Error::ShortAddresses,
    );
    bad(&v2_bytes(0x21, 0x21, &inet_block()), Error::ShortAddresses);
    bad(&v2_bytes(0x21, 0x31, &[0; 215]), Error::ShortAddresses);
    // TLVs must fit the header exactly: a TLV that runs past its end, a
    // stray byte, an SSL TLV too short for its client and verify fields,
    // an SSL sub-TLV that overruns.
    for tail in [
        vec![0x01, 0x00, 0x05, b'a'],
        vec![0x01],
        vec![0x01, 0x00],
        tlv(PP2_TYPE_SSL, &[PP2_CLIENT_SSL, 0, 0, 0]),
        tlv(
            PP2_TYPE_SSL,
            &[PP2_CLIENT_SSL, 0, 0, 0, 0, 0x21, 0x00, 0x09],
        ),
    ] {
        let mut block = inet_block();
        block.extend(tail);
        bad(&v2_bytes(0x21, 0x11, &block), Error::Tlv);
    }
    // An oversized header is refused from its fixed part alone, before
    // its bytes arrive.
    let mut block = inet_block();
    block.extend(tlv(0xEE, &vec![0; MAX_V2_LEN - 16 - 12 - 2]));
    let over = v2_bytes(0x21, 0x11, &block);
    bad(&over, Error::TooLong);
    bad(&over[..16], Error::TooLong);
    bad(&v2_bytes(0x21, 0x11, &[0; 0xffff]), Error::TooLong);
}

#[test]
fn version_2_prefixes_are_partial() {
    let mut block = inet6_block();
    block.extend(tlv(0x01, b"http/1.1"));
    let h = v2_bytes(0x21, 0x21, &block);
    for n in 0..h.len() {
        assert_eq!(parse(&h[..n]), Ok(Parsed::Partial), "{n}");
    }
}

#[test]
fn what_follows_the_header_is_left() {
    let mut input = b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 443\r\n".to_vec();
    let n = input.len();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    assert!(matches!(parse(&input), Ok(Parsed::Complete(_, m)) if m == n));
    let mut input = v2_bytes(0x21, 0x11, &inet_block());
    let n = input.len();
    input.extend_from_slice(b"\r\n\r\n\0\r\nQUIT\nmore");
    assert!(matches!(parse(&input), Ok(Parsed::Complete(_, m)) if m == n));
}

/// The fuzz target's properties over random inputs shaped like headers:
/// never a panic, never more bytes claimed than given, every prefix of a
/// complete header partial, and the same answer whatever follows it.
#[test]
fn properties_over_random_input() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let seeds: [Vec<u8>; 4] = [
        b"PROXY TCP4 192.0.2.1 198.51.100.7 4711 443\r\nGET".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2_bytes(0x21, 0x11, &inet_block()),
        {
            let mut b = inet_block();
            b.extend(tlv(PP2_TYPE_SSL, &[1, 0, 0, 0, 0]));
            v2_bytes(0x21, 0x11, &b)
        },
    ];
    for i in 0..20_000 {
        let mut input = seeds[i % seeds.len()].clone();
        for _ in 0..(next() % 4) {
            let at = (next() as usize) % input.len();
            match next() % 3 {
                0 => input[at] = next() as u8,
                1 => input.truncate(at),
                _ => input.insert(at, next() as u8),
            }
            if input.is_empty() {
                break;
            }
        }
        check(&input);
    }
}

/// What `fuzz/fuzz_targets/proxy_header.rs` asserts.
fn check(input: &[u8]) {
    if let Ok(Parsed::Complete(h, n)) = parse(input) {
        assert!(n <= input.len() && n > 0);
        assert_eq!(parse(&input[..n - 1]), Ok(Parsed::Partial));
        let mut more = input[..n].to_vec();
        more.extend_from_slice(b"trailing bytes");
        assert_eq!(parse(&more), Ok(Parsed::Complete(h, n)));
    }
}
