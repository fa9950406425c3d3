//! Validators and conditional requests (RFC 9110 §8.8, §13): the strong
//! `ETag` and `Last-Modified` of a file, and the verdict of `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since` and
//! `If-Range` on them. Pure: header values in, a verdict out.

use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// What identifies one version of a file's content.
pub struct Validators {
    /// The strong entity-tag, quotes included.
    pub etag: HeaderValue,
    /// Seconds since the epoch of the last modification.
    pub mtime: i64,
    /// `Last-Modified`, unless the time cannot be written as an HTTP date
    /// (before 1970, after 9999).
    pub last_modified: Option<HeaderValue>,
}

impl Validators {
    /// From a file's inode, size and modification time, and the content
    /// coding it is served with (a precompressed sibling gets a tag of its
    /// own even if its stat were to match).
    pub fn new(ino: u64, size: u64, mtime: i64, mtime_nsec: i64, coding: Option<&str>) -> Self {
        let ns = (mtime as i128 * 1_000_000_000 + mtime_nsec as i128) as u64;
        let mut buf = [0u8; 96];
        let mut w = &mut buf[..];
        let _ = write!(w, "\"{ns:x}-{size:x}-{ino:x}");
        if let Some(c) = coding {
            let _ = write!(w, "-{c}");
        }
        let _ = write!(w, "\"");
        let n = 96 - w.len();
        let etag = HeaderValue::from_bytes(&buf[..n]).expect("hex digits and ASCII");
        Validators {
            etag,
            mtime,
            last_modified: http_date(mtime),
        }
    }
}

/// The last second `httpdate` can write (9999-12-31T23:59:59Z).
const MAX_HTTP_DATE: i64 = 253_402_300_799;

/// `secs` as an IMF-fixdate, written without an intermediate `String`.
pub fn http_date(secs: i64) -> Option<HeaderValue> {
    if !(0..=MAX_HTTP_DATE).contains(&secs) {
        return None;
    }
    let when = UNIX_EPOCH + Duration::from_secs(secs as u64);
    let mut buf = [0u8; 29];
    let mut w = &mut buf[..];
    write!(w, "{}", httpdate::HttpDate::from(when)).ok()?;
    HeaderValue::from_bytes(&buf).ok()
}

/// A parsed HTTP date as seconds since the epoch.
pub fn parse_date(v: &HeaderValue) -> Option<i64> {
    let t = httpdate::parse_http_date(v.to_str().ok()?).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// What the preconditions say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer normally.
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Evaluate the preconditions in RFC 9110 §13.2.2's order, for a GET or
/// HEAD of a file that exists.
pub fn evaluate(headers: &HeaderMap, v: &Validators) -> Verdict {
    let ours = v.etag.as_bytes();
    if headers.contains_key(header::IF_MATCH) {
        if !list_matches(headers, header::IF_MATCH, ours, Compare::Strong) {
            return Verdict::PreconditionFailed;
        }
    } else if let Some(since) = headers
        .get(header::IF_UNMODIFIED_SINCE)
        .and_then(parse_date)
    {
        if v.mtime > since {
            return Verdict::PreconditionFailed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if list_matches(headers, header::IF_NONE_MATCH, ours, Compare::Weak) {
            return Verdict::NotModified;
        }
    } else if let Some(since) = headers.get(header::IF_MODIFIED_SINCE).and_then(parse_date) {
        if v.mtime <= since {
            return Verdict::NotModified;
        }
    }
    Verdict::Proceed
}

/// Whether `If-Range` lets a Range apply: absent, a strong tag equal to
/// ours, or a date equal to our `Last-Modified`.
pub fn if_range_allows(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        let mut tags = EntityTags::new(bytes);
        return matches!(
            (tags.next(), tags.next()),
            (Some(Some(Tag::Entity { weak: false, opaque })), None) if opaque == v.etag.as_bytes()
        );
    }
    v.last_modified.is_some() && parse_date(value) == Some(v.mtime)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Both strong and identical.
    Strong,
    /// Identical once `W/` is ignored.
    Weak,
}

/// Whether any value of `name` holds `*` or a tag matching `ours`. A
/// malformed member ends its line (what follows it cannot be trusted).
fn list_matches(headers: &HeaderMap, name: header::HeaderName, ours: &[u8], cmp: Compare) -> bool {
    headers.get_all(name).iter().any(|value| {
        EntityTags::new(value.as_bytes())
            .map_while(|t| t)
            .any(|t| match t {
                Tag::Any => true,
                Tag::Entity { weak, opaque } => opaque == ours && (cmp == Compare::Weak || !weak),
            })
    })
}

/// A member of an entity-tag list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag<'a> {
    /// `*`.
    Any,
    /// `W/"..."` or `"..."`.
    Entity {
        /// Marked `W/`.
        weak: bool,
        /// The opaque-tag, quotes included.
        opaque: &'a [u8],
    },
}

/// The members of `#( "*" / entity-tag )`; `Some(None)` for a malformed
/// one. Empty members are skipped, as RFC 9110 §5.6.1 asks.
pub struct EntityTags<'a> {
    rest: &'a [u8],
}

impl<'a> EntityTags<'a> {
    pub fn new(v: &'a [u8]) -> EntityTags<'a> {
        EntityTags { rest: v }
    }
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = Option<Tag<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest.trim_ascii_start();
        let s = {
            let mut s = s;
            while let [b',', tail @ ..] = s {
                s = tail.trim_ascii_start();
            }
            s
        };
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let (tag, tail) = if let [b'*', tail @ ..] = s {
            (Tag::Any, tail)
        } else {
            let (weak, t) = match s.strip_prefix(b"W/") {
                Some(t) => (true, t),
                None => (false, s),
            };
            if t.first() != Some(&b'"') {
                self.rest = &[];
                return Some(None);
            }
            let Some(close) = t[1..].iter().position(|&b| b == b'"') else {
                self.rest = &[];
                return Some(None);
            };
            let opaque = &t[..close + 2];
            // etagc = %x21 / %x23-7E / obs-text
            if opaque[1..opaque.len() - 1]
                .iter()
                .any(|&b| b < 0x21 || b == 0x7f)
            {
                self.rest = &[];
                return Some(None);
            }
            (Tag::Entity { weak, opaque }, &t[close + 2..])
        };
        let tail = tail.trim_ascii_start();
        if !tail.is_empty() && tail[0] != b',' {
            self.rest = &[];
            return Some(None);
        }
        self.rest = tail;
        Some(Some(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        // 2001-09-09T01:46:40Z
        Validators::new(0x42, 0x1000, 1_000_000_000, 5, None)
    }

    #[test]
    fn etag_shape() {
        let v = v();
        assert_eq!(v.etag, "\"de0b6b3a7640005-1000-42\"");
        assert_eq!(
            Validators::new(0x42, 0x1000, 1_000_000_000, 5, Some("br")).etag,
            "\"de0b6b3a7640005-1000-42-br\""
        );
        assert_eq!(
            v.last_modified.as_ref().unwrap(),
            "Sun, 09 Sep 2001 01:46:40 GMT"
        );
        assert!(Validators::new(1, 1, -5, 0, None).last_modified.is_none());
        assert!(http_date(MAX_HTTP_DATE + 1).is_none());
        assert_eq!(http_date(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn entity_tag_lists() {
        use Tag::{Any, Entity};
        let t = |weak, o: &'static str| {
            Some(Entity {
                weak,
                opaque: o.as_bytes(),
            })
        };
        let cases: &[(&str, &[Option<Tag<'static>>])] = &[
            ("", &[]),
            ("*", &[Some(Any)]),
            ("\"a\"", &[t(false, "\"a\"")]),
            ("W/\"a\"", &[t(true, "\"a\"")]),
            (
                " \"a\" , W/\"b\",\"\" ",
                &[t(false, "\"a\""), t(true, "\"b\""), t(false, "\"\"")],
            ),
            (",, \"a\",,", &[t(false, "\"a\"")]),
            ("\"a,b\"", &[t(false, "\"a,b\"")]),
            ("a", &[None]),
            ("\"a", &[None]),
            ("\"a\" \"b\"", &[None]),
            ("\"a\", w/\"b\"", &[t(false, "\"a\""), None]),
            ("\"a b\"", &[None]),
        ];
        for (input, want) in cases {
            let got: Vec<_> = EntityTags::new(input.as_bytes()).collect();
            assert_eq!(&got, want, "{input:?}");
        }
    }

    fn verdict(pairs: &[(&str, &str)]) -> Verdict {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(val).unwrap(),
            );
        }
        evaluate(&h, &v())
    }

    #[test]
    fn preconditions_table() {
        use Verdict::*;
        let tag = "\"de0b6b3a7640005-1000-42\"";
        let weak = "W/\"de0b6b3a7640005-1000-42\"";
        let lm = "Sun, 09 Sep 2001 01:46:40 GMT";
        let before = "Sun, 09 Sep 2001 01:46:39 GMT";
        let after = "Sun, 09 Sep 2001 01:46:41 GMT";
        let cases: &[(&[(&str, &str)], Verdict)] = &[
            (&[], Proceed),
            (&[("if-match", tag)], Proceed),
            (&[("if-match", "*")], Proceed),
            (&[("if-match", "\"x\", \"y\"")], PreconditionFailed),
            (&[("if-match", &format!("\"x\", {tag}"))], Proceed),
            (&[("if-match", "\"x\""), ("if-match", tag)], Proceed),
            (&[("if-match", weak)], PreconditionFailed),
            (&[("if-match", "garbage")], PreconditionFailed),
            (&[("if-unmodified-since", lm)], Proceed),
            (&[("if-unmodified-since", after)], Proceed),
            (&[("if-unmodified-since", before)], PreconditionFailed),
            (&[("if-unmodified-since", "not a date")], Proceed),
            // If-Match present: If-Unmodified-Since is not evaluated.
            (
                &[("if-match", tag), ("if-unmodified-since", before)],
                Proceed,
            ),
            (&[("if-none-match", tag)], NotModified),
            (&[("if-none-match", weak)], NotModified),
            (&[("if-none-match", "*")], NotModified),
            (&[("if-none-match", &format!("\"x\", {weak}"))], NotModified),
            (&[("if-none-match", "\"x\"")], Proceed),
            (&[("if-none-match", "garbage")], Proceed),
            (&[("if-modified-since", lm)], NotModified),
            (&[("if-modified-since", after)], NotModified),
            (&[("if-modified-since", before)], Proceed),
            (&[("if-modified-since", "yesterday")], Proceed),
            // If-None-Match present: If-Modified-Since is not evaluated.
            (
                &[("if-none-match", "\"x\""), ("if-modified-since", lm)],
                Proceed,
            ),
            // 412 wins over 304.
            (
                &[("if-match", "\"x\""), ("if-none-match", tag)],
                PreconditionFailed,
            ),
            (
                &[("if-unmodified-since", before), ("if-modified-since", lm)],
                PreconditionFailed,
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(verdict(pairs), *want, "{pairs:?}");
        }
    }

    #[test]
    fn if_range_table() {
        let v = v();
        let cases: &[(Option<&str>, bool)] = &[
            (None, true),
            (Some("\"de0b6b3a7640005-1000-42\""), true),
            (Some("W/\"de0b6b3a7640005-1000-42\""), false),
            (Some("\"other\""), false),
            (Some("\"de0b6b3a7640005-1000-42\", \"x\""), false),
            (Some("Sun, 09 Sep 2001 01:46:40 GMT"), true),
            (Some("Sun, 09 Sep 2001 01:46:41 GMT"), false),
            (Some("garbage"), false),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(value) = value {
                h.insert(header::IF_RANGE, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(if_range_allows(&h, &v), *want, "{value:?}");
        }
    }
}
