//! Handler: files from a directory (the `spyglass` binary's default).
//!
//! Paths are percent-decoded once and refused if they contain NUL or a
//! `..` segment; files are sent with sendfile through [`Body::file`].

use std::fs::File;
use std::path::{Path, PathBuf};

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use crate::handler::{Body, Request, Response};

/// Serves the files under a root directory.
pub struct StaticFiles {
    root: PathBuf,
}

impl StaticFiles {
    /// Serve the files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles { root: root.into() }
    }

    /// Answer one request.
    pub fn serve(&self, req: &Request) -> Response {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = status(StatusCode::METHOD_NOT_ALLOWED);
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let Some(rel) = safe_relative(req.uri().path()) else {
            return status(StatusCode::NOT_FOUND);
        };
        let mut path = self.root.join(&rel);
        if path.is_dir() {
            path.push("index.html");
        }
        let Ok(file) = File::open(&path) else {
            return status(StatusCode::NOT_FOUND);
        };
        let Ok(body) = Body::file(file) else {
            return status(StatusCode::NOT_FOUND);
        };
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        let mut res = Response::new(body);
        let mime = if mime.type_() == mime_guess::mime::TEXT {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&mime) {
            res.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        res
    }
}

/// The decoded path relative to the root, or None if it is unsafe.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains('\0') {
        return None;
    }
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => rel.push(s),
        }
    }
    Some(rel).filter(|p| !Path::new(p).is_absolute())
}

fn status(code: StatusCode) -> Response {
    let mut res = Response::new(Body::from(format!(
        "{} {}\n",
        code.as_str(),
        code.canonical_reason().unwrap_or("")
    )));
    *res.status_mut() = code;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
