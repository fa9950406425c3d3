//! The authority grammar as HTTP uses it: `uri-host [ ":" port ]` (RFC
//! 9110 §4.2.3 and §7.2, over RFC 3986 §3.2.2 and §3.2.3), for the `Host`
//! field and for the authority of absolute-form and authority-form
//! targets, and for what CGI derives from them. Pure; no userinfo (the
//! caller refuses an `@` before asking; an `@` is no part of a host).

/// An authority split into its host and port, both as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Authority<'a> {
    /// An IP-literal with its brackets, or a reg-name (possibly empty).
    pub host: &'a [u8],
    /// The digits after `:`, when there is a `:` (possibly none).
    pub port: Option<&'a [u8]>,
}

/// The highest TCP port: a longer or larger `port` names nothing.
const MAX_PORT: u32 = 65_535;

/// `host [ ":" port ]` with `host` an IP-literal (an IPv6 address or an
/// IPvFuture in brackets) or a reg-name of unreserved characters,
/// percent-encodings and sub-delims; `port` digits up to 65535. `None`
/// when `v` is not one.
pub(crate) fn split(v: &[u8]) -> Option<Authority<'_>> {
    let (host, rest) = if v.first() == Some(&b'[') {
        let close = v.iter().position(|&b| b == b']')?;
        if !ip_literal(&v[1..close]) {
            return None;
        }
        v.split_at(close + 1)
    } else {
        // What follows the reg-name must be nothing or the port.
        v.split_at(reg_name_len(v)?)
    };
    let port = match rest {
        [] => None,
        [b':', digits @ ..] if valid_port(digits) => Some(digits),
        _ => return None,
    };
    Some(Authority { host, port })
}

/// `port = *DIGIT` (RFC 3986 §3.2.3), and a TCP port: at most 65535.
fn valid_port(digits: &[u8]) -> bool {
    let mut n = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return false;
        }
        n = n * 10 + u32::from(d - b'0');
        if n > MAX_PORT {
            return false;
        }
    }
    true
}

/// What is inside the brackets: an IPv6 address (RFC 3986 §3.2.2; no zone
/// identifier, which RFC 9110 does not adopt) or `IPvFuture = "v" 1*HEXDIG
/// "." 1*( unreserved / sub-delims / ":" )`.
fn ip_literal(inside: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inside {
        let dot = rest.iter().position(|&b| b == b'.').unwrap_or(rest.len());
        let (version, tail) = rest.split_at(dot);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && tail.len() > 1
            && tail[1..]
                .iter()
                .all(|&b| unreserved(b) || sub_delim(b) || b == b':');
    }
    std::str::from_utf8(inside).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The length of the `reg-name = *( unreserved / pct-encoded /
/// sub-delims )` at the start of `v` (an IPv4 address is one too): up to
/// the first byte that can be no part of one. None for a `%` without two
/// hex digits.
fn reg_name_len(v: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b if PLAIN[usize::from(b)] => i += 1,
            b'%' => {
                let hex = |k: usize| v.get(i + k).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(1) && hex(2)) {
                    return None;
                }
                i += 3;
            }
            _ => break,
        }
    }
    Some(i)
}

/// The bytes a reg-name holds as they are (unreserved and sub-delims), by
/// value: every `Host` of every request is checked byte by byte, and a
/// table look-up is a fraction of the comparisons.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = unreserved(b as u8) || sub_delim(b as u8);
        b += 1;
    }
    table
};

const fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host and maybe a port, or None for an invalid authority.
    type Want = Option<(&'static str, Option<&'static str>)>;

    /// Every byte value alone as a host: valid exactly when RFC 3986
    /// §2.2-2.3 lists it as unreserved or a sub-delim (spelled out here
    /// apart from the table the parser uses), or it is the empty host's
    /// port separator.
    #[test]
    fn every_byte_as_a_host() {
        let listed =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=";
        for b in 0..=255u8 {
            let want = listed.contains(&b) || b == b':';
            assert_eq!(split(&[b]).is_some(), want, "byte {b:#04x}");
            assert_eq!(
                split(&[b'a', b, b'z']).is_some(),
                listed.contains(&b),
                "a{b:#04x}z"
            );
        }
    }

    #[test]
    fn authority_table() {
        // value => (host, port), or None when invalid (RFC 3986 §3.2.2-3)
        let cases: &[(&str, Want)] = &[
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some("8080")))),
            ("example.com:", Some(("example.com", Some("")))),
            ("a:0", Some(("a", Some("0")))),
            ("a:65535", Some(("a", Some("65535")))),
            ("a:00080", Some(("a", Some("00080")))),
            ("", Some(("", None))),
            (":80", Some(("", Some("80")))),
            ("1.2.3.4", Some(("1.2.3.4", None))),
            ("a_b~c!$&'()*+,;=", Some(("a_b~c!$&'()*+,;=", None))),
            ("a%41b", Some(("a%41b", None))),
            ("[::1]", Some(("[::1]", None))),
            ("[::1]:443", Some(("[::1]", Some("443")))),
            (
                "[2001:db8::ffff:1.2.3.4]",
                Some(("[2001:db8::ffff:1.2.3.4]", None)),
            ),
            ("[v1.x:y]", Some(("[v1.x:y]", None))),
            // Ports that are not ports.
            ("a:65536", None),
            ("a:99999999999999999999999", None),
            ("a:bad", None),
            ("a:-1", None),
            ("a:80:80", None),
            ("a: 80", None),
            // Hosts that are not hosts.
            ("user@a", None),
            ("a b", None),
            ("a/b", None),
            ("a%zz", None),
            ("a%4", None),
            ("a\"b", None),
            // IP literals that are not IP literals.
            ("[::1", None),
            ("[zz]", None),
            ("[]", None),
            ("[1.2.3.4]", None),
            ("[::1]x", None),
            ("[::1%eth0]", None),
            ("[fe80::1%25eth0]", None),
            ("[v.x]", None),
            ("[v1.]", None),
            ("[v1x]", None),
            ("::1", None),
        ];
        for (v, want) in cases {
            let got = split(v.as_bytes()).map(|a| {
                (
                    std::str::from_utf8(a.host).unwrap(),
                    a.port.map(|p| std::str::from_utf8(p).unwrap()),
                )
            });
            assert_eq!(got, *want, "{v:?}");
        }
    }
}
