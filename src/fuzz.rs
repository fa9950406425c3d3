//! Entry points for the fuzz targets in `fuzz/`: one door to each parser
//! that reads bytes from outside and has no public one of its own (the
//! request head, the chunked decoder and its trailers are fuzzed through
//! [`crate::request`]). Each is a thin call into the parser it names, so
//! what is fuzzed is what runs; none changes behaviour.
//!
//! Hidden from the documentation and not a stable API: the types here are
//! the parsers' own and change with them.

use std::path::Path;

use http::{HeaderMap, HeaderValue, StatusCode};

pub use crate::cgi::map::Target as ScriptTarget;
pub use crate::cgi::output::{
    Head as CgiHead, HeadError as CgiHeadError, HeadParser as CgiHeadParser,
    MAX_HEAD as CGI_MAX_HEAD, Reply as CgiReply,
};
pub use crate::static_files::conditional::{Tag, Validators, Verdict};
pub use crate::static_files::path::{Reject, Target as PathTarget};
pub use crate::static_files::range::{MAX_RANGES, Ranges, Span};

/// The headers a handler may not set and the engine writes itself
/// (framing, persistence, hop-by-hop).
pub const ENGINE_OWNED: [http::HeaderName; 8] = crate::response::ENGINE_OWNED;

/// A `Range` value against a representation of `len` bytes (RFC 9110
/// §14.2), as the static handler reads it.
pub fn range(value: &[u8], len: u64) -> Ranges {
    crate::static_files::range::parse(value, len)
}

/// The precompressed codings (`br`, `gzip`) that the `Accept-Encoding`
/// lines in `values` make worth serving, best first (RFC 9110 §12.5.3).
pub fn accept_encoding<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<&'static str> {
    use crate::static_files::encoding::{Accept, Coding};
    Accept::parse(values).wanted().map(Coding::token).collect()
}

/// The members of an entity-tag list (`If-Match`, `If-None-Match`; RFC
/// 9110 §13.1.1): `None` for a malformed member, after which the list
/// ends.
pub fn entity_tags(value: &[u8]) -> Vec<Option<Tag<'_>>> {
    crate::static_files::conditional::EntityTags::new(value).collect()
}

/// An HTTP-date (RFC 9110 §5.6.7) as seconds since the epoch, as the
/// `If-*-Since` and `If-Range` fields are read.
pub fn http_date_secs(value: &[u8]) -> Option<i64> {
    crate::static_files::conditional::parse_date(&HeaderValue::from_bytes(value).ok()?)
}

/// Seconds since the epoch as an IMF-fixdate, as `Last-Modified` is
/// written.
pub fn http_date(secs: i64) -> Option<HeaderValue> {
    crate::static_files::conditional::http_date(secs)
}

/// The preconditions' verdict (RFC 9110 §13.2.2) for a file with
/// validators `v`, and whether `If-Range` lets a `Range` apply.
pub fn preconditions(headers: &HeaderMap, v: &Validators) -> (Verdict, bool) {
    use crate::static_files::conditional::{evaluate, if_range_allows};
    (evaluate(headers, v), if_range_allows(headers, v))
}

/// A request path decoded and checked as the static handler does before
/// it opens anything.
pub fn resolve_path(path: &str, show_hidden: bool) -> Result<PathTarget<'_>, Reject> {
    crate::static_files::path::resolve(path, show_hidden)
}

/// The CGI script that a request path names under `dir`, mounted at the
/// URL prefix whose segments are `prefix`.
pub fn resolve_script(
    dir: &Path,
    prefix: &[String],
    path: &str,
) -> Result<ScriptTarget, StatusCode> {
    crate::cgi::map::resolve(dir, prefix, path)
}
