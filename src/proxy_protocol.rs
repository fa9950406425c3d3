//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1
//! and 2): the line or block a proxy sends first on each connection to say
//! whom it is relaying. Pure and push-style, like [`crate::request`]: bytes
//! in, [`Parsed::Complete`] with the header and the bytes it took,
//! [`Parsed::Partial`] while more must come, or an [`Error`]; no sockets,
//! no clocks.
//!
//! Strict by design, because the header decides who the client is: the
//! first byte must start a header (anything else is refused at once, so a
//! client that speaks HTTP to a PROXY listener is told nothing), every field
//! is checked, and the header is bounded (107 bytes for version 1, as §2.1
//! says; [`MAX_V2_LEN`] for version 2, whose TLVs are walked, checked and
//! skipped). What follows the header is the client's data, left untouched.
//!
//! Knows nothing of connections: `conn` reads the header before the first
//! request and decides what the addresses mean.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header, `CRLF` included (§2.1).
pub const MAX_V1_LEN: usize = 107;
/// The longest version 2 header spyglass accepts: the 16-byte fixed part,
/// the addresses and their TLVs. The format allows 64 KiB; real proxies
/// send well under 1 KiB (addresses, an SSL block, a VPC id), and a bound
/// keeps a stranger from parking that much in every connection.
pub const MAX_V2_LEN: usize = 4096;

/// The version 2 signature (§2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// `PP2_TYPE_SSL` (§2.2.5) and its `PP2_CLIENT_SSL` flag.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;

/// The outcome of parsing what has arrived so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, and how many bytes it took.
    Complete(Header, usize),
    /// A valid beginning; read more.
    Partial,
}

/// What a valid header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// The connection's real client, when the header names one. `None`
    /// for the `LOCAL` command (a health check from the proxy itself),
    /// `UNKNOWN` (v1) and `UNSPEC` (v2): then the socket's own peer is the
    /// client (§2.1, §2.2).
    pub source: Option<Source>,
    /// Where the client connected to (the proxy's address), when given.
    pub destination: Option<SocketAddr>,
    /// The client reached the proxy over TLS (v2 `PP2_TYPE_SSL` with
    /// `PP2_CLIENT_SSL`).
    pub tls: bool,
}

/// A client named by the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A TCP client (`TCP4`, `TCP6`; v2 `AF_INET`, `AF_INET6`).
    Tcp(SocketAddr),
    /// A client of the proxy's Unix socket (v2 `AF_UNIX`).
    Unix,
}

/// Why the bytes are not a valid header. Each refuses the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes start neither `PROXY ` nor the v2 signature.
    NoHeader,
    /// A v1 line longer than 107 bytes, or a v2 header over
    /// [`MAX_V2_LEN`].
    TooLong,
    /// A v1 line that breaks §2.1 (the text says which rule).
    V1(&'static str),
    /// A v2 version nibble other than 2.
    Version(u8),
    /// A v2 command other than LOCAL (0) or PROXY (1).
    Command(u8),
    /// A v2 address family or transport protocol outside §2.2's table,
    /// or one a stream connection cannot carry.
    Family(u8),
    /// The v2 length is shorter than the family's addresses.
    ShortAddresses,
    /// A TLV runs past the header's end, or an SSL TLV is too short.
    Tlv,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoHeader => f.write_str("no PROXY header"),
            Error::TooLong => f.write_str("PROXY header too long"),
            Error::V1(why) => write!(f, "PROXY v1: {why}"),
            Error::Version(v) => write!(f, "PROXY v2: version {v}"),
            Error::Command(c) => write!(f, "PROXY v2: unknown command {c}"),
            Error::Family(b) => write!(f, "PROXY v2: family/protocol byte {b:#04x}"),
            Error::ShortAddresses => f.write_str("PROXY v2: length shorter than the addresses"),
            Error::Tlv => f.write_str("PROXY v2: malformed TLV"),
        }
    }
}

impl std::error::Error for Error {}

/// Parse the header at the start of `buf`. Call again with more bytes
/// after `Partial` (nothing is kept between calls).
pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    match buf.first() {
        None => Ok(Parsed::Partial),
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Err(Error::NoHeader),
    }
}

/// §2.1: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or `PROXY UNKNOWN...\r\n`,
/// single spaces, at most 107 bytes.
fn v1(buf: &[u8]) -> Result<Parsed, Error> {
    let seen = buf.len().min(V1_PREFIX.len());
    if buf[..seen] != V1_PREFIX[..seen] {
        return Err(Error::NoHeader);
    }
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_V1_LEN {
            return Err(Error::TooLong);
        }
        // A CR may only come right before the LF.
        if window[..window.len().saturating_sub(1)].contains(&b'\r') {
            return Err(Error::V1("CR without LF"));
        }
        return Ok(Parsed::Partial);
    };
    // The prefix matched, so the LF is past it (lf >= 6).
    if window[lf - 1] != b'\r' {
        return Err(Error::V1("line not ended by CRLF"));
    }
    // As before the LF came: a CR only right before it, also where the
    // rest of the line is ignored (UNKNOWN).
    if window[..lf - 1].contains(&b'\r') {
        return Err(Error::V1("CR without LF"));
    }
    let line = &window[V1_PREFIX.len()..lf - 1];
    let consumed = lf + 1;
    let mut fields = line.split(|&b| b == b' ');
    let proto = fields.next().unwrap_or_default();
    if proto == b"UNKNOWN" {
        // §2.1: the rest of the line is ignored; the receiver uses the
        // connection's own addresses.
        return Ok(Parsed::Complete(
            Header {
                version: 1,
                source: None,
                destination: None,
                tls: false,
            },
            consumed,
        ));
    }
    let v6 = match proto {
        b"TCP4" => false,
        b"TCP6" => true,
        _ => return Err(Error::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || fields.next().ok_or(Error::V1("missing field"));
    let (src, dst) = (next()?, next()?);
    let (sport, dport) = (next()?, next()?);
    if fields.next().is_some() {
        return Err(Error::V1("extra field or space"));
    }
    let ip = |s: &[u8]| -> Result<IpAddr, Error> {
        let s = std::str::from_utf8(s).map_err(|_| Error::V1("address is not text"))?;
        let ip = if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        ip.map_err(|_| Error::V1("address does not match the protocol"))
    };
    let (src, dst) = (ip(src)?, ip(dst)?);
    let (sport, dport) = (port(sport)?, port(dport)?);
    Ok(Parsed::Complete(
        Header {
            version: 1,
            source: Some(Source::Tcp(SocketAddr::new(src, sport))),
            destination: Some(SocketAddr::new(dst, dport)),
            tls: false,
        },
        consumed,
    ))
}

/// A v1 port: 0 to 65535 in decimal, no sign, no leading zero.
fn port(s: &[u8]) -> Result<u16, Error> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.iter().all(u8::is_ascii_digit)
        && (s[0] != b'0' || s.len() == 1);
    if !ok {
        return Err(Error::V1("port is not a decimal 0-65535"));
    }
    // Digits only, at most five: fits in u32.
    let n = s.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).map_err(|_| Error::V1("port is not a decimal 0-65535"))
}

/// §2.2: the signature, version and command, family and protocol, a
/// length, the addresses, then TLVs up to that length.
fn v2(buf: &[u8]) -> Result<Parsed, Error> {
    let seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..seen] != V2_SIGNATURE[..seen] {
        return Err(Error::NoHeader);
    }
    if let Some(&vc) = buf.get(12) {
        if vc >> 4 != 2 {
            return Err(Error::Version(vc >> 4));
        }
        if vc & 0x0f > 1 {
            return Err(Error::Command(vc & 0x0f));
        }
    }
    let local = buf.get(12).is_some_and(|vc| vc & 0x0f == 0);
    // The LOCAL command's family is discarded (§2.2), so only PROXY's is
    // checked.
    let family = match buf.get(13) {
        Some(&fp) if !local => Some(family(fp)?),
        _ => None,
    };
    if buf.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > MAX_V2_LEN {
        return Err(Error::TooLong);
    }
    let need = family.map_or(0, Family::address_len);
    if len < need {
        return Err(Error::ShortAddresses);
    }
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    let Some(family) = family else {
        // LOCAL: the whole block is discarded, unread (§2.2).
        let header = Header {
            version: 2,
            source: None,
            destination: None,
            tls: false,
        };
        return Ok(Parsed::Complete(header, total));
    };
    let block = &buf[16..total];
    let (addresses, tlvs) = block.split_at(need);
    let tls = walk_tlvs(tlvs)?;
    let (source, destination) = match family {
        Family::Inet => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::from(be32(&addresses[at..])));
            let src = SocketAddr::new(ip(0), be16(&addresses[8..]));
            let dst = SocketAddr::new(ip(4), be16(&addresses[10..]));
            (Some(Source::Tcp(src)), Some(dst))
        }
        Family::Inet6 => {
            let ip = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&addresses[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let src = SocketAddr::new(ip(0), be16(&addresses[32..]));
            let dst = SocketAddr::new(ip(16), be16(&addresses[34..]));
            (Some(Source::Tcp(src)), Some(dst))
        }
        Family::Unix => (Some(Source::Unix), None),
        Family::Unspec => (None, None),
    };
    Ok(Parsed::Complete(
        Header {
            version: 2,
            source,
            destination,
            tls,
        },
        total,
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Unspec,
    Inet,
    Inet6,
    Unix,
}

impl Family {
    fn address_len(self) -> usize {
        match self {
            Family::Unspec => 0,
            Family::Inet => 12,
            Family::Inet6 => 36,
            Family::Unix => 216,
        }
    }
}

/// The family and protocol byte of a PROXY command: `UNSPEC` with
/// `UNSPEC`, or a family with `STREAM`. Other values are invalid (§2.2:
/// "must be rejected"), and a datagram's addresses cannot describe the
/// stream connection we were handed.
fn family(fp: u8) -> Result<Family, Error> {
    match fp {
        0x00 => Ok(Family::Unspec),
        0x11 => Ok(Family::Inet),
        0x21 => Ok(Family::Inet6),
        0x31 => Ok(Family::Unix),
        _ => Err(Error::Family(fp)),
    }
}

/// Walk the TLVs (type, 16-bit length, value), each within the header;
/// returns whether an SSL TLV says the client used TLS.
fn walk_tlvs(mut tlvs: &[u8]) -> Result<bool, Error> {
    let mut tls = false;
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(Error::Tlv);
        }
        let (kind, len) = (tlvs[0], usize::from(be16(&tlvs[1..])));
        let value = tlvs.get(3..3 + len).ok_or(Error::Tlv)?;
        if kind == PP2_TYPE_SSL {
            // client (1 byte), verify (4 bytes), then sub-TLVs (§2.2.5).
            let client = *value.first().ok_or(Error::Tlv)?;
            if value.len() < 5 {
                return Err(Error::Tlv);
            }
            walk_tlvs(&value[5..])?;
            tls |= client & PP2_CLIENT_SSL != 0;
        }
        tlvs = &tlvs[3 + len..];
    }
    Ok(tls)
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests;
