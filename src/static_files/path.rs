//! Request paths to file paths: the first line of defence, pure and
//! allocation-free on the common path.
//!
//! The URI path is percent-decoded exactly once; what comes out must be
//! UTF-8 (which also refuses overlong forms such as `%c0%ae`) without NUL,
//! and is split on `/` *after* decoding, so `%2f` separates segments like
//! `/` does and `..%2f` is caught as `..`. Empty and `.` segments collapse;
//! a `..` segment is refused outright rather than resolved, so nothing here
//! can climb. Backslashes are ordinary filename bytes on Linux and get no
//! special treatment. The filesystem side (symlinks) is `root.rs`'s job.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// A request path made safe to open beneath the root.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Relative to the root: no leading `/`, no empty, `.` or `..`
    /// segments; `"."` for the root itself.
    pub rel: Cow<'a, str>,
    /// The request path ended in `/` (a directory was asked for).
    pub trailing_slash: bool,
}

/// Why a path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Bad percent-encoding, not UTF-8 once decoded, a NUL, or not a path
    /// at all: 400.
    Malformed,
    /// A `..` segment: 404, and worth a warning.
    Traversal,
    /// A segment starting with `.` while hidden files are not shown: 404.
    Hidden,
}

/// The one top-level dot-directory that is served without `show_hidden`.
pub const WELL_KNOWN: &str = ".well-known";

/// Decode and check a URI path (as `Uri::path` gives it).
pub fn resolve(path: &str, show_hidden: bool) -> Result<Target<'_>, Reject> {
    if !path.starts_with('/') {
        return Err(Reject::Malformed);
    }
    let decoded = decode(path)?;
    let mut clean = true;
    let mut hidden = false;
    let mut segments = decoded[1..].split('/').peekable();
    let mut first = true;
    while let Some(seg) = segments.next() {
        match seg {
            "" | "." => clean &= seg.is_empty() && segments.peek().is_none(),
            ".." => return Err(Reject::Traversal),
            // RFC 8615: `/.well-known/` is public by definition (ACME
            // challenges, security.txt); what lies in it still obeys the rule.
            WELL_KNOWN if first => first = false,
            s => {
                first = false;
                hidden |= s.starts_with('.');
            }
        }
    }
    if hidden && !show_hidden {
        return Err(Reject::Hidden);
    }
    let trailing_slash = decoded.ends_with('/');
    let rel = match decoded {
        Cow::Borrowed(d) if clean => Cow::Borrowed(d[1..].trim_end_matches('/')),
        d => {
            let mut rel = String::with_capacity(d.len());
            for seg in d.split('/').filter(|s| !s.is_empty() && *s != ".") {
                if !rel.is_empty() {
                    rel.push('/');
                }
                rel.push_str(seg);
            }
            Cow::Owned(rel)
        }
    };
    let rel = if rel.is_empty() {
        Cow::Borrowed(".")
    } else {
        rel
    };
    Ok(Target {
        rel,
        trailing_slash,
    })
}

/// Percent-decode once; borrowed when there is nothing to decode.
fn decode(path: &str) -> Result<Cow<'_, str>, Reject> {
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut escapes = false;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + p;
        let hex = |k: usize| bytes.get(at + k).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(1) && hex(2)) {
            return Err(Reject::Malformed);
        }
        escapes = true;
        i = at + 3;
    }
    let decoded = if escapes {
        percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| Reject::Malformed)?
    } else {
        Cow::Borrowed(path)
    };
    if decoded.contains('\0') {
        return Err(Reject::Malformed);
    }
    Ok(decoded)
}

/// What a path segment keeps unencoded in the URLs we generate (redirects,
/// listing links): the unreserved characters only, so that no name can
/// turn into a scheme (`a:b`), a query, a fragment or markup.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Append `segment`, percent-encoded, to `out`.
pub fn push_encoded(out: &mut String, segment: &str) {
    let _ = write!(out, "{}", utf8_percent_encode(segment, SEGMENT));
}

/// The absolute URL path of `rel` (as [`Target::rel`] holds it) as a
/// directory: encoded segments, a leading and a trailing `/`. Built from
/// the normalised segments, never from the request, so `//host/dir` cannot
/// become a protocol-relative redirect to another host.
pub fn dir_url(rel: &str) -> String {
    let mut url = String::with_capacity(rel.len() + 2);
    url.push('/');
    for seg in rel.split('/').filter(|s| !s.is_empty() && *s != ".") {
        push_encoded(&mut url, seg);
        url.push('/');
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        use Reject::*;
        type Want = Result<(String, bool), Reject>;
        let ok = |rel: &'static str, slash: bool| -> Want { Ok((rel.to_owned(), slash)) };
        let cases: &[(&str, bool, Want)] = &[
            // path, show_hidden => rel, trailing slash
            ("/", false, ok(".", true)),
            ("/hello.txt", false, ok("hello.txt", false)),
            ("/a/b/c.txt", false, ok("a/b/c.txt", false)),
            ("/dir/", false, ok("dir", true)),
            ("//hello.txt", false, ok("hello.txt", false)),
            ("/./hello.txt", false, ok("hello.txt", false)),
            ("/a//b/./c", false, ok("a/b/c", false)),
            ("/.", false, ok(".", false)),
            ("/dir/.", false, ok("dir", false)),
            ("/a%20b.txt", false, ok("a b.txt", false)),
            ("/%68ello.txt", false, ok("hello.txt", false)),
            ("/a%2fb", false, ok("a/b", false)),
            ("/caf%C3%A9", false, ok("café", false)),
            ("/%252e%252e/x", false, ok("%2e%2e/x", false)),
            ("/..%5c..%5cx", true, ok("..\\..\\x", false)),
            ("/..\\..\\x", true, ok("..\\..\\x", false)),
            ("/..;/x", true, ok("..;/x", false)),
            ("/..", false, Err(Traversal)),
            ("/../x", false, Err(Traversal)),
            ("/a/../../x", false, Err(Traversal)),
            ("/%2e%2e/x", false, Err(Traversal)),
            ("/%2E%2e/x", true, Err(Traversal)),
            ("/.%2e/x", true, Err(Traversal)),
            ("/a/..%2f..%2fx", true, Err(Traversal)),
            ("/a/%2e%2e", true, Err(Traversal)),
            ("/.hidden", false, Err(Hidden)),
            ("/.git/config", false, Err(Hidden)),
            ("/a/.b/c", false, Err(Hidden)),
            (
                "/.well-known/security.txt",
                false,
                ok(".well-known/security.txt", false),
            ),
            ("//.well-known/x", false, ok(".well-known/x", false)),
            ("/.well-known/.secret", false, Err(Hidden)),
            ("/a/.well-known/x", false, Err(Hidden)),
            ("/..%5c..%5cx", false, Err(Hidden)),
            ("/.hidden", true, ok(".hidden", false)),
            ("/.git/config", true, ok(".git/config", false)),
            ("/%c0%ae%c0%ae/x", false, Err(Malformed)),
            ("/%e0%80%ae/x", false, Err(Malformed)),
            ("/%ed%a0%80", false, Err(Malformed)),
            ("/%ff", false, Err(Malformed)),
            ("/a%00.html", false, Err(Malformed)),
            ("/a%", false, Err(Malformed)),
            ("/a%2", false, Err(Malformed)),
            ("/a%zz", false, Err(Malformed)),
            ("/a%%41", false, Err(Malformed)),
            ("*", false, Err(Malformed)),
            ("", false, Err(Malformed)),
        ];
        for (path, hidden, want) in cases {
            let got = resolve(path, *hidden).map(|t| (t.rel.into_owned(), t.trailing_slash));
            assert_eq!(&got, want, "{path:?} show_hidden={hidden}");
        }
    }

    #[test]
    fn clean_paths_are_borrowed() {
        let t = resolve("/a/b.txt", false).unwrap();
        assert!(matches!(t.rel, Cow::Borrowed("a/b.txt")));
    }

    #[test]
    fn urls_are_encoded_and_normalised() {
        assert_eq!(dir_url("."), "/");
        assert_eq!(dir_url("dir"), "/dir/");
        assert_eq!(dir_url("a b/c:d"), "/a%20b/c%3Ad/");
        assert_eq!(dir_url("x/<y>&\"'?#%"), "/x/%3Cy%3E%26%22%27%3F%23%25/");
        let mut s = String::new();
        push_encoded(&mut s, "café~._-");
        assert_eq!(s, "caf%C3%A9~._-");
    }
}
