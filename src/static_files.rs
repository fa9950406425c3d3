//! Handler: files from a directory (the `spyglass` binary's default).
//!
//! A request goes through four gates, each in its own file:
//!
//! - `path`: the URI path is percent-decoded once and split into segments;
//!   malformed input is a 400, a `..` segment or (unless shown) a hidden
//!   one a 404. Pure.
//! - `root`: the root directory is opened once, before the fork, and every
//!   file is opened beneath it with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS)`, so no symlink can lead outside; an escape is
//!   a 404 and a warning. Only regular files are served.
//! - `encoding` and `conditional`: a precompressed `.br` / `.gz` sibling
//!   when the client prefers it, then the validators (`ETag`,
//!   `Last-Modified`) and RFC 9110's preconditions (412, 304).
//! - `range`: 206 for one range, `multipart/byteranges` for several, 416
//!   when none fits.
//!
//! Bodies are file regions sent with sendfile; nothing is read into
//! memory. Directories answer with their `index.html`, a listing
//! (`listing`, when enabled), or 404; `/dir` redirects to `/dir/`.
//!
//! The common path (GET, no conditionals, no `Accept-Encoding`) costs one
//! `openat2`, one `statx`, the sendfile and one close, and allocates only
//! the header values that must be formatted (`ETag`, `Last-Modified`).
//!
//! The handler never sets framing headers (`Content-Length` and the like
//! belong to the engine), and answers HEAD exactly as GET: the engine
//! drops the body.

pub(crate) mod conditional;
pub(crate) mod encoding;
mod listing;
pub(crate) mod path;
pub(crate) mod range;
mod root;

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::handler::{Body, ConnInfo, Handler, Request, Response, status_response};
use conditional::{Validators, Verdict};
use encoding::{Accept, Coding};
use path::Reject;
use range::Ranges;
use root::{Access, OpenError, Root};

/// Serves the files under a root directory.
///
/// ```no_run
/// use spyglass::static_files::StaticFiles;
/// use spyglass::Server;
///
/// let site = StaticFiles::new("/srv/www")?
///     .list_dirs(true)
///     .cache_control(Some("max-age=3600".into()))?;
/// Server::from_args().serve(site)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StaticFiles {
    root: Root,
    show_hidden: bool,
    list_dirs: bool,
    cache_control: Option<HeaderValue>,
}

const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// Listings need no script, no frame and no remote resource.
const LISTING_CSP: HeaderValue =
    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'");

impl StaticFiles {
    /// Serve the files under `root`, which is opened now (call it before
    /// the server forks its workers: they share the descriptor). Fails if
    /// `root` is not a directory that can be opened.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        Ok(StaticFiles {
            root: Root::open_dir(root.as_ref())?,
            show_hidden: false,
            list_dirs: false,
            cache_control: None,
        })
    }

    /// Serve files and directories whose names start with a dot (default:
    /// no, they answer 404). `..` is refused either way.
    pub fn show_hidden(mut self, yes: bool) -> StaticFiles {
        self.show_hidden = yes;
        self
    }

    /// Never serve anything under `dir` (a CGI directory inside the root,
    /// say), however the request path or a symlink leads there: 404.
    pub fn hide(mut self, dir: impl AsRef<Path>) -> StaticFiles {
        self.root.hide(dir.as_ref());
        self
    }

    /// List the contents of directories that have no `index.html`
    /// (default: no, they answer 404).
    pub fn list_dirs(mut self, yes: bool) -> StaticFiles {
        self.list_dirs = yes;
        self
    }

    /// Send this `Cache-Control` value with every file (and with its 304s).
    /// Fails with [`io::ErrorKind::InvalidInput`] unless the value is a
    /// well-formed list of cache directives, such as `max-age=3600,
    /// must-revalidate`.
    pub fn cache_control(mut self, value: Option<String>) -> io::Result<StaticFiles> {
        self.cache_control = match value {
            None => None,
            Some(v) => Some(
                parse_cache_control(&v)
                    .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?,
            ),
        };
        Ok(self)
    }

    /// Answer one request.
    pub fn serve(&self, req: &Request) -> Response {
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => return allow(StatusCode::NO_CONTENT),
            _ => return allow(StatusCode::METHOD_NOT_ALLOWED),
        }
        let raw = req.uri().path();
        let target = match path::resolve(raw, self.show_hidden) {
            Ok(t) => t,
            Err(Reject::Malformed) => return error(StatusCode::BAD_REQUEST),
            Err(Reject::Hidden) => return error(StatusCode::NOT_FOUND),
            Err(Reject::Traversal) => {
                tracing::warn!(peer = %PeerOf(req), path = ?raw, "refused a path with a .. segment");
                return error(StatusCode::NOT_FOUND);
            }
        };
        let rel = &*target.rel;
        let (file, meta) = match self.root.open(rel, Access::Read) {
            Ok(file) => match file.metadata() {
                Ok(meta) => (Some(file), meta),
                Err(e) => return internal(rel, &e),
            },
            // A directory we may search but not read can still have a
            // readable index.html; a device on a `nodev` mount is refused
            // too, but it is no file of ours (404, not 403).
            Err(OpenError::Denied) => match self.root.open(rel, Access::Stat).map(|p| p.metadata())
            {
                Ok(Ok(meta)) if meta.is_dir() => (None, meta),
                Ok(Ok(meta)) if !meta.is_file() => return error(StatusCode::NOT_FOUND),
                _ => return open_failed(req, OpenError::Denied, rel),
            },
            Err(e) => return open_failed(req, e, rel),
        };
        let kind = meta.file_type();
        match file {
            Some(file) if kind.is_file() && !target.trailing_slash => {
                self.send_file(req, file, &meta, rel)
            }
            _ if kind.is_dir() => {
                if !target.trailing_slash && rel != "." {
                    return redirect(req, rel);
                }
                self.send_dir(req, file, rel)
            }
            // FIFOs, sockets, devices; or a file asked for as a directory.
            _ => error(StatusCode::NOT_FOUND),
        }
    }

    /// A directory: its index.html, its listing, or 404.
    fn send_dir(&self, req: &Request, dir: Option<File>, rel: &str) -> Response {
        let index: Cow<'_, str> = if rel == "." {
            Cow::Borrowed("index.html")
        } else {
            Cow::Owned(format!("{rel}/index.html"))
        };
        match self.root.open(&index, Access::Read) {
            Ok(file) => match file.metadata() {
                Ok(meta) if meta.is_file() => return self.send_file(req, file, &meta, &index),
                Ok(_) => {}
                Err(e) => return internal(&index, &e),
            },
            Err(OpenError::NotFound) => {}
            Err(e) => return open_failed(req, e, &index),
        }
        if !self.list_dirs {
            return error(StatusCode::NOT_FOUND);
        }
        let Some(dir) = dir else {
            return error(StatusCode::FORBIDDEN);
        };
        match listing::render(dir, &self.root, rel, self.show_hidden) {
            Ok(html) => {
                let mut res = Response::new(Body::from(html));
                let h = res.headers_mut();
                h.insert(header::CONTENT_TYPE, HTML);
                h.insert(header::CONTENT_SECURITY_POLICY, LISTING_CSP);
                h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
                res
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => error(StatusCode::FORBIDDEN),
            Err(e) => internal(rel, &e),
        }
    }

    /// A regular file (or its precompressed sibling), subject to the
    /// request's preconditions and range.
    fn send_file(&self, req: &Request, file: File, meta: &Metadata, rel: &str) -> Response {
        let chosen = self.representation(req, file, meta, rel);
        let len = chosen.meta.len();
        let v = Validators::new(
            chosen.meta.ino(),
            len,
            chosen.meta.mtime(),
            chosen.meta.mtime_nsec(),
            chosen.coding.map(Coding::token),
        );
        let verdict = conditional::evaluate(req.headers(), &v);
        let ranges = match verdict {
            Verdict::Proceed => requested_ranges(req, &v, len),
            _ => Ranges::Ignore,
        };
        let mut res = self.with_validators(v, chosen.vary);
        match verdict {
            Verdict::NotModified => {
                *res.status_mut() = StatusCode::NOT_MODIFIED;
                res
            }
            Verdict::PreconditionFailed => with_error(res, StatusCode::PRECONDITION_FAILED),
            Verdict::Proceed => with_content(
                res,
                Rc::new(chosen.file),
                ranges,
                len,
                content_type(rel),
                chosen.coding,
            ),
        }
    }

    /// `file` itself, or the precompressed sibling the client prefers.
    fn representation<'m>(
        &self,
        req: &Request,
        file: File,
        meta: &'m Metadata,
        rel: &str,
    ) -> Chosen<'m> {
        let itself = |file, vary| Chosen {
            file,
            meta: Cow::Borrowed(meta),
            coding: None,
            vary,
        };
        if !req.headers().contains_key(header::ACCEPT_ENCODING) {
            return itself(file, false);
        }
        match self.negotiate(req, rel) {
            (Some((file, meta, coding)), _) => Chosen {
                file,
                meta: Cow::Owned(meta),
                coding: Some(coding),
                vary: true,
            },
            (None, vary) => itself(file, vary),
        }
    }

    /// An empty response with the validators and the headers every answer
    /// about this file carries, 304 included.
    fn with_validators(&self, v: Validators, vary: bool) -> Response {
        let mut res = Response::new(Body::empty());
        let h = res.headers_mut();
        h.insert(header::ETAG, v.etag);
        if let Some(lm) = v.last_modified {
            h.insert(header::LAST_MODIFIED, lm);
        }
        if let Some(cc) = &self.cache_control {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
        if vary {
            h.insert(header::VARY, ACCEPT_ENCODING);
        }
        res
    }

    /// The best precompressed sibling the client accepts, if any, and
    /// whether `rel` has a sibling at all (for `Vary`).
    fn negotiate(&self, req: &Request, rel: &str) -> (Option<(File, Metadata, Coding)>, bool) {
        let accept = Accept::parse(
            req.headers()
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .map(HeaderValue::as_bytes),
        );
        // One buffer for `rel.br` and `rel.gz`.
        let mut path = String::with_capacity(rel.len() + 3);
        let mut probed = [false; Coding::ALL.len()];
        for coding in accept.wanted() {
            probed[coding as usize] = true;
            if let Some((file, meta)) = self.sibling(req, &mut path, rel, coding, Access::Read) {
                return (Some((file, meta, coding)), true);
            }
        }
        let exists = Coding::ALL.into_iter().any(|c| {
            !probed[c as usize] && self.sibling(req, &mut path, rel, c, Access::Stat).is_some()
        });
        (None, exists)
    }

    /// `rel.br` or `rel.gz` (built in `path`), if it is a regular file
    /// beneath the root.
    fn sibling(
        &self,
        req: &Request,
        path: &mut String,
        rel: &str,
        coding: Coding,
        how: Access,
    ) -> Option<(File, Metadata)> {
        path.clear();
        path.push_str(rel);
        path.push_str(coding.suffix());
        match self.root.open(path, how) {
            Ok(file) => {
                let meta = file.metadata().ok()?;
                meta.is_file().then_some((file, meta))
            }
            Err(OpenError::Escape) => {
                tracing::warn!(peer = %PeerOf(req), path = ?path, "refused a sibling that leaves ROOT");
                None
            }
            Err(_) => None,
        }
    }
}

/// The file chosen to answer with.
struct Chosen<'m> {
    file: File,
    meta: Cow<'m, Metadata>,
    /// The sibling's content coding, when a sibling was chosen.
    coding: Option<Coding>,
    /// The answer depends on `Accept-Encoding` (a sibling exists).
    vary: bool,
}

/// What a GET's `Range` asks of `len` bytes: honoured only for a single
/// `Range` field that `If-Range` does not void (RFC 9110 §14.2, §13.1.5).
fn requested_ranges(req: &Request, v: &Validators, len: u64) -> Ranges {
    let headers = req.headers();
    match headers.get(header::RANGE) {
        Some(value)
            if req.method() == Method::GET
                && headers.get_all(header::RANGE).iter().count() == 1
                && conditional::if_range_allows(headers, v) =>
        {
            range::parse(value.as_bytes(), len)
        }
        _ => Ranges::Ignore,
    }
}

/// `res` with the file's content: all of it (200), one range (206 with
/// `Content-Range`), several (206 `multipart/byteranges`), or 416.
fn with_content(
    mut res: Response,
    file: Rc<File>,
    ranges: Ranges,
    len: u64,
    content_type: HeaderValue,
    coding: Option<Coding>,
) -> Response {
    let (status, body, content_type) = match ranges {
        Ranges::Unsatisfiable => {
            h_insert(
                &mut res,
                header::CONTENT_RANGE,
                range::unsatisfied_range(len),
            );
            return with_error(res, StatusCode::RANGE_NOT_SATISFIABLE);
        }
        Ranges::Ignore => (
            StatusCode::OK,
            Body::file_region(file, 0, len),
            content_type,
        ),
        Ranges::One(span) => {
            h_insert(
                &mut res,
                header::CONTENT_RANGE,
                range::content_range(span, len),
            );
            let body = Body::file_region(file, span.start, span.len());
            (StatusCode::PARTIAL_CONTENT, body, content_type)
        }
        Ranges::Many(spans) => {
            let (body, ct) = range::multipart(&file, &spans, len, &content_type);
            (StatusCode::PARTIAL_CONTENT, body, ct)
        }
    };
    *res.status_mut() = status;
    *res.body_mut() = body;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    if let Some(c) = coding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(c.token()),
        );
    }
    h.insert(header::ACCEPT_RANGES, BYTES);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    res
}

/// The answer to a failed open, logged as it deserves.
fn open_failed(req: &Request, e: OpenError, rel: &str) -> Response {
    match e {
        OpenError::NotFound => error(StatusCode::NOT_FOUND),
        OpenError::Denied => error(StatusCode::FORBIDDEN),
        OpenError::Escape => {
            tracing::warn!(peer = %PeerOf(req), path = ?rel, "refused a path that leaves ROOT");
            error(StatusCode::NOT_FOUND)
        }
        OpenError::Busy => {
            tracing::error!(path = ?rel, "out of file descriptors");
            error(StatusCode::SERVICE_UNAVAILABLE)
        }
        OpenError::Other(errno) => internal(rel, &io::Error::from(errno)),
    }
}

/// The client of a request, for log fields (`-` when unknown).
struct PeerOf<'a>(&'a Request);

impl fmt::Display for PeerOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.extensions().get::<ConnInfo>() {
            Some(info) => write!(f, "{}", info.peer),
            None => f.write_str("-"),
        }
    }
}

impl Handler for StaticFiles {
    /// [`StaticFiles::serve`], so that a `StaticFiles` can be handed to
    /// [`crate::Server::serve`] as it is.
    fn call(&mut self, req: Request) -> Response {
        self.serve(&req)
    }
}

fn h_insert(res: &mut Response, name: HeaderName, value: HeaderValue) {
    res.headers_mut().insert(name, value);
}

/// `Content-Type` from the name's extension; `charset=utf-8` for text.
/// Common types come from static strings, without allocating.
fn content_type(rel: &str) -> HeaderValue {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext = match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    };
    let mime = mime_guess::from_ext(ext)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let with_charset = match mime {
        "text/html" => "text/html; charset=utf-8",
        "text/plain" => "text/plain; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        "text/markdown" => "text/markdown; charset=utf-8",
        "text/xml" => "text/xml; charset=utf-8",
        "text/csv" => "text/csv; charset=utf-8",
        "application/javascript" => "application/javascript; charset=utf-8",
        "application/json" => "application/json; charset=utf-8",
        "image/svg+xml" => "image/svg+xml; charset=utf-8",
        m if m.starts_with("text/") => {
            return HeaderValue::try_from(format!("{m}; charset=utf-8")).unwrap_or(TEXT);
        }
        m => m,
    };
    HeaderValue::from_static(with_charset)
}

/// Check a `Cache-Control` value: `1#( token [ "=" ( token /
/// quoted-string ) ] )`.
fn parse_cache_control(v: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| Err(format!("'{v}': {why}"));
    let value = HeaderValue::from_str(v.trim()).or_else(|_| bad("not a valid header value"))?;
    let is_tchar = |c: char| c.is_ascii() && crate::request::is_tchar(c as u8);
    let mut any = false;
    let mut rest = v.trim();
    while !rest.is_empty() {
        let name_end = rest.find(|c| !is_tchar(c)).unwrap_or(rest.len());
        if name_end == 0 {
            return bad("expected a directive such as max-age=3600");
        }
        rest = &rest[name_end..];
        if let Some(arg) = rest.strip_prefix('=') {
            if let Some(quoted) = arg.strip_prefix('"') {
                let mut escaped = false;
                let close = quoted.find(|c| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                });
                let Some(close) = close else {
                    return bad("unterminated quoted string");
                };
                rest = &quoted[close + 1..];
            } else {
                let arg_end = arg.find(|c| !is_tchar(c)).unwrap_or(arg.len());
                if arg_end == 0 {
                    return bad("a directive's '=' needs a value");
                }
                rest = &arg[arg_end..];
            }
        }
        any = true;
        rest = rest.trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start_matches([' ', '\t', ',']),
            None if rest.is_empty() => {}
            None => return bad("directives are separated by commas"),
        }
    }
    if !any {
        return bad("empty");
    }
    Ok(value)
}

/// 301 to the directory's URL with a slash, the query kept.
fn redirect(req: &Request, rel: &str) -> Response {
    let mut location = path::dir_url(rel);
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let mut res = error(StatusCode::MOVED_PERMANENTLY);
    match HeaderValue::try_from(location) {
        Ok(v) => h_insert(&mut res, header::LOCATION, v),
        Err(_) => return error(StatusCode::NOT_FOUND),
    }
    res
}

/// 204 to OPTIONS, 405 to anything else: both with `Allow`.
fn allow(status: StatusCode) -> Response {
    let mut res = if status == StatusCode::NO_CONTENT {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = status;
        res
    } else {
        error(status)
    };
    h_insert(&mut res, header::ALLOW, ALLOW);
    res
}

/// A 500 for an OS error that should not happen, logged.
fn internal(rel: &str, e: &io::Error) -> Response {
    tracing::error!(path = ?rel, error = %e, "cannot serve file");
    error(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A short plain-text answer with `status`.
fn error(status: StatusCode) -> Response {
    with_error(Response::new(Body::empty()), status)
}

/// `res` turned into a short plain-text answer with `status` (the engine's
/// own [`status_response`] body), keeping its headers.
fn with_error(res: Response, status: StatusCode) -> Response {
    let (mut parts, _) = res.into_parts();
    let body = status_response(status).into_body();
    parts.status = status;
    parts.headers.insert(header::CONTENT_TYPE, TEXT);
    parts
        .headers
        .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("a/b/hello.txt", "text/plain; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "application/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("pic.svg", "image/svg+xml; charset=utf-8"),
            ("style.CSS", "text/css; charset=utf-8"),
            ("cal.ics", "text/calendar; charset=utf-8"),
            ("photo.png", "image/png"),
            ("f.wasm", "application/wasm"),
            ("blob.zzz", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            (".bashrc", "application/octet-stream"),
            ("dir.d/noext", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn cache_control_values() {
        let cases = [
            ("max-age=3600", true),
            ("public, max-age=31536000, immutable", true),
            ("no-cache", true),
            ("private=\"set-cookie, x\"", true),
            ("no-store,,no-cache", true),
            ("", false),
            ("  ", false),
            ("max-age=", false),
            ("=5", false),
            ("max age", false),
            ("a=\"open", false),
            ("max-age=60\r\nX-Evil: 1", false),
            ("max-age=60; x", false),
        ];
        for (v, ok) in cases {
            assert_eq!(parse_cache_control(v).is_ok(), ok, "{v:?}");
        }
    }
}
