//! Who the client is when a trusted proxy says so: the `Forwarded` header
//! (RFC 7239) or `X-Forwarded-For` and `X-Forwarded-Proto`, believed only
//! from peers the operator lists (`--trusted-proxy`). Pure: headers and
//! addresses in, a [`ConnInfo`] out; no sockets.
//!
//! Each proxy on the way appends the address it received the request from,
//! so the list reads left to right from the client towards us, and only its
//! right end is written by proxies we trust: anyone may put anything on its
//! left. [`resolve`] therefore walks from the right, starting at the peer
//! that sent us the request: while the current hop is a trusted proxy, the
//! element it appended names the next hop; the first untrusted hop is the
//! client. If every hop is trusted, the leftmost is. A hop whose element
//! names no address (`unknown`, an obfuscated identifier, a malformed
//! element, a missing `for=`) ends the walk at the trusted proxy that
//! wrote it: spyglass never guesses past what it can verify.
//!
//! A request from an untrusted peer is taken at its word about nothing: its
//! headers change neither the client's address nor the scheme.
//!
//! Only one kind of header is honoured, the one the operator's proxy
//! maintains ([`ProxyHeaders`]): a proxy that appends to `X-Forwarded-For`
//! usually passes a client's own `Forwarded` through untouched, and
//! reading that would let the client choose its address.
//!
//! Knows nothing of connections: `conn` calls [`resolve`] once per request
//! with the connection's facts (after any PROXY header).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::handler::{ConnInfo, Peer};
use crate::request::is_tchar;

/// Which proxies are believed, and which headers they maintain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Peers whose forwarding headers are honoured.
    pub proxies: Vec<TrustedProxy>,
    /// The headers those proxies maintain; the others are ignored.
    pub headers: ProxyHeaders,
}

/// A trusted proxy: an address range, or every peer of a Unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustedProxy {
    /// An address or CIDR range (`10.0.0.0/8`, `::1`).
    Net(IpNet),
    /// Any client of a Unix socket (`unix`): the file's permissions say
    /// who may connect.
    Unix,
}

/// The forwarding headers a trusted proxy maintains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyHeaders {
    /// `X-Forwarded-For` (appended to) and `X-Forwarded-Proto` (set): what
    /// nginx, Caddy and HAProxy's `option forwardfor` write.
    #[default]
    XForwarded,
    /// `Forwarded` (RFC 7239), `for=` and `proto=` of each element.
    Forwarded,
}

impl FromStr for TrustedProxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "unix" {
            return Ok(TrustedProxy::Unix);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(TrustedProxy::Net(IpNet::from(ip.to_canonical())));
        }
        s.parse::<IpNet>().map(TrustedProxy::Net).map_err(|_| {
            format!("'{s}' is not an address, a CIDR range (10.0.0.0/8, fd00::/8) or unix")
        })
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustedProxy::Net(n) => write!(f, "{n}"),
            TrustedProxy::Unix => f.write_str("unix"),
        }
    }
}

impl Trust {
    /// Whether `peer` is a trusted proxy.
    pub fn trusts(&self, peer: &Peer) -> bool {
        let ip = match peer {
            Peer::Unix => return self.proxies.contains(&TrustedProxy::Unix),
            Peer::Tcp(a) => a.ip().to_canonical(),
            Peer::Ip(ip) => ip.to_canonical(),
        };
        self.proxies.iter().any(|p| match p {
            TrustedProxy::Net(net) => net.contains(&ip),
            TrustedProxy::Unix => false,
        })
    }
}

/// One proxy's account of the hop before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Whom it received the request from.
    pub node: Node,
    /// Whether it received it over `https` (`proto=`), if it says.
    pub https: Option<bool>,
}

/// A node as a forwarding header names it (RFC 7239 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// An address, with its port when given.
    Addr(Peer),
    /// `unknown` or an obfuscated identifier (§6.2, §6.3): a real hop
    /// whose address is not told.
    Hidden,
    /// Not a node at all (or an element without `for=`).
    Invalid,
}

/// The client and scheme of one request: `conn`'s facts about the
/// connection, corrected by the forwarding headers if its peer is trusted.
pub fn resolve(conn: &ConnInfo, headers: &HeaderMap, trust: &Trust) -> ConnInfo {
    let mut info = conn.clone();
    if trust.proxies.is_empty() || !trust.trusts(&conn.peer) {
        return info;
    }
    match trust.headers {
        ProxyHeaders::Forwarded => {
            let hops = forwarded(headers.get_all("forwarded").iter().map(|v| v.as_bytes()));
            walk(info, hops.into_iter().rev(), trust)
        }
        ProxyHeaders::XForwarded => {
            // Set by the proxy next to us: the scheme it was reached with.
            if let Some(proto) = x_forwarded_proto(
                headers
                    .get_all("x-forwarded-proto")
                    .iter()
                    .map(|v| v.as_bytes()),
            ) {
                info.https = proto;
            }
            let values = headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes());
            walk(info, x_forwarded_for_rev(values.collect()), trust)
        }
    }
}

/// Follow `hops` from the nearest one back while each peer so found is
/// trusted: a trusted peer's element is its word about who came before.
fn walk(mut info: ConnInfo, hops: impl Iterator<Item = Hop>, trust: &Trust) -> ConnInfo {
    for hop in hops {
        if let Some(https) = hop.https {
            info.https = https;
        }
        match hop.node {
            Node::Addr(peer) => info.peer = peer,
            Node::Hidden | Node::Invalid => break,
        }
        if !trust.trusts(&info.peer) {
            break;
        }
    }
    info
}

/// The hops of `X-Forwarded-For` fields, in order: comma-separated
/// addresses (`192.0.2.1`, `2001:db8::1`, and the common non-standard
/// `192.0.2.1:4711` and `[2001:db8::1]:4711`), `unknown`, empty elements
/// skipped.
pub fn x_forwarded_for<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Hop> {
    let mut hops: Vec<Hop> = x_forwarded_for_rev(values.collect()).collect();
    hops.reverse();
    hops
}

/// The same hops from the last back, each parsed only when asked for:
/// [`resolve`] stops at the first peer it does not trust, so a client
/// that fills the field with thousands of addresses (a proxy appends to
/// what the client sent) costs a few parses, not thousands.
fn x_forwarded_for_rev(values: Vec<&[u8]>) -> impl Iterator<Item = Hop> + '_ {
    values
        .into_iter()
        .rev()
        .flat_map(|value| value.rsplit(|&b| b == b','))
        .map(trim)
        .filter(|element| !element.is_empty())
        .map(|element| Hop {
            node: match std::str::from_utf8(element) {
                Ok("unknown") => Node::Hidden,
                Ok(s) => address(s).map_or(Node::Invalid, Node::Addr),
                Err(_) => Node::Invalid,
            },
            https: None,
        })
}

/// `X-Forwarded-Proto`: its last value, `https` or not (`None` if absent).
pub fn x_forwarded_proto<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<bool> {
    let mut last = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let element = trim(element);
            if !element.is_empty() {
                last = Some(element.eq_ignore_ascii_case(b"https"));
            }
        }
    }
    last
}

/// An address as X-Forwarded-For writes it.
fn address(s: &str) -> Option<Peer> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Peer::Ip(ip.to_canonical()));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| Peer::Ip(IpAddr::V6(ip).to_canonical()));
    }
    let a = s.parse::<SocketAddr>().ok()?;
    Some(Peer::Tcp(SocketAddr::new(a.ip().to_canonical(), a.port())))
}

/// The hops of `Forwarded` fields (RFC 7239 §4), in order: one per
/// element, from its `for=` and `proto=` parameters. A malformed element
/// is an [`Node::Invalid`] hop; an unterminated quoted string swallows the
/// rest of the field, as it would for any recipient.
pub fn forwarded<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in values {
        let mut rest = value;
        loop {
            let (element, after) = split_element(rest);
            let element_trimmed = trim(element);
            // RFC 9110 §5.6.1: empty list elements are ignored.
            if !element_trimmed.is_empty() {
                hops.push(forwarded_element(element_trimmed));
            }
            match after {
                Some(a) => rest = a,
                None => break,
            }
        }
    }
    hops
}

/// The bytes up to the first comma outside a quoted string, and what
/// follows that comma (None at the end of the field).
fn split_element(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b',' if !quoted => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    (s, None)
}

/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
/// `forwarded-pair = token "=" value`, `value = token / quoted-string`;
/// each parameter at most once (§5).
fn forwarded_element(element: &[u8]) -> Hop {
    let invalid = Hop {
        node: Node::Invalid,
        https: None,
    };
    let (mut node, mut proto): (Option<Node>, Option<Option<bool>>) = (None, None);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut rest = element;
    loop {
        rest = trim(rest);
        if rest.is_empty() {
            break;
        }
        if rest[0] == b';' {
            rest = &rest[1..];
            continue;
        }
        let name_len = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name_len == 0 || rest.get(name_len) != Some(&b'=') {
            return invalid;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        if seen.contains(&name) {
            return invalid;
        }
        rest = &rest[name_len + 1..];
        let Some((value, after)) = pair_value(rest) else {
            return invalid;
        };
        rest = trim(after);
        if !rest.is_empty() && rest[0] != b';' {
            return invalid;
        }
        match name.as_slice() {
            b"for" => node = Some(node_of(&value)),
            b"proto" => {
                // §5.4: a URI scheme name.
                let scheme = !value.is_empty()
                    && value[0].is_ascii_alphabetic()
                    && value
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
                if !scheme {
                    return invalid;
                }
                proto = Some(Some(value.eq_ignore_ascii_case(b"https")));
            }
            _ => {}
        }
        seen.push(name);
    }
    Hop {
        node: node.unwrap_or(Node::Invalid),
        https: proto.flatten(),
    }
}

/// A token or a quoted-string (its quoted-pairs undone), and the rest.
fn pair_value(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if s.first() == Some(&b'"') {
        let mut out = Vec::new();
        let mut i = 1;
        while i < s.len() {
            match s[i] {
                b'"' => return Some((out, &s[i + 1..])),
                b'\\' => {
                    let c = *s.get(i + 1)?;
                    if !(c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80) {
                        return None;
                    }
                    out.push(c);
                    i += 2;
                }
                // qdtext: HTAB, SP, visible ASCII but `"` and `\`, obs-text.
                c if c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80 => {
                    out.push(c);
                    i += 1;
                }
                _ => return None,
            }
        }
        None
    } else {
        let n = s.iter().take_while(|&&b| is_tchar(b)).count();
        (n > 0).then(|| (s[..n].to_vec(), &s[n..]))
    }
}

/// `node = nodename [ ":" node-port ]` (§6).
fn node_of(v: &[u8]) -> Node {
    let Ok(s) = std::str::from_utf8(v) else {
        return Node::Invalid;
    };
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, "")) => (Name::V6(ip6), None),
            Some((ip6, p)) => match p.strip_prefix(':') {
                Some(p) => (Name::V6(ip6), Some(p)),
                None => return Node::Invalid,
            },
            None => return Node::Invalid,
        }
    } else {
        match s.split_once(':') {
            Some((n, p)) => (Name::Other(n), Some(p)),
            None => (Name::Other(s), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) => Some(Some(n)),
                Err(_) => return Node::Invalid,
            }
        }
        Some(p) if obfuscated(p) => Some(None),
        Some(_) => return Node::Invalid,
    };
    let ip = match name {
        Name::V6(s) => match s.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => IpAddr::V6(ip),
            Err(_) => return Node::Invalid,
        },
        Name::Other("unknown") => return Node::Hidden,
        Name::Other(s) if obfuscated(s) => return Node::Hidden,
        Name::Other(s) => match s.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => IpAddr::V4(ip),
            Err(_) => return Node::Invalid,
        },
    };
    let ip = ip.to_canonical();
    Node::Addr(match port.flatten() {
        Some(p) => Peer::Tcp(SocketAddr::new(ip, p)),
        None => Peer::Ip(ip),
    })
}

enum Name<'a> {
    V6(&'a str),
    Other(&'a str),
}

/// `"_" 1*( ALPHA / DIGIT / "." / "_" / "-")` (§6.3).
fn obfuscated(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Without leading and trailing spaces and tabs (OWS).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests;
