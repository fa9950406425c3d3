//! The meta-variables a script is given (RFC 3875 §4.1), built from the
//! request and where it arrived. Pure: no descriptors, no processes.
//!
//! Values are bytes, not text: a path or a header may be any octets, and
//! the environment carries them unchanged. Nothing of the server's own
//! environment is passed on but a fixed `PATH`.
//!
//! Request headers become `HTTP_*` variables with these exceptions:
//! `Proxy` never (it would become `HTTP_PROXY`, which many HTTP clients
//! take as their proxy: "httpoxy"); `Authorization` and
//! `Proxy-Authorization` only when the operator allows it; `Content-Length`,
//! `Content-Type` and `Transfer-Encoding` never (the body arrives
//! de-chunked, described by `CONTENT_LENGTH` and `CONTENT_TYPE`); and no
//! header whose name has a character other than letters, digits and `-`
//! (`X_Forwarded_For` would otherwise pass for `X-Forwarded-For`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use http::Version;
use http::header::{self, HeaderMap};

use super::map::Target;
use crate::handler::{ConnInfo, Peer, Request};

/// The `PATH` scripts run with.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What the environment needs besides the request.
pub struct Site<'a> {
    /// The static files' root, absolute (`DOCUMENT_ROOT`).
    pub document_root: &'a Path,
    /// Pass `Authorization` as `HTTP_AUTHORIZATION`.
    pub pass_authorization: bool,
}

/// The environment for running `target` for `req`.
pub fn build(req: &Request, target: &Target, site: &Site<'_>) -> Vec<(OsString, OsString)> {
    let mut env = Env(Vec::with_capacity(32 + req.headers().len()));
    let headers = req.headers();
    let conn = req.extensions().get::<ConnInfo>();

    env.set("GATEWAY_INTERFACE", "CGI/1.1");
    env.set(
        "SERVER_SOFTWARE",
        concat!("spyglass/", env!("CARGO_PKG_VERSION")),
    );
    env.set("SERVER_PROTOCOL", protocol(req.version()));
    env.set("REQUEST_METHOD", req.method().as_str());
    env.set("REQUEST_URI", request_uri(req));
    env.set("QUERY_STRING", req.uri().query().unwrap_or(""));
    env.set("SCRIPT_NAME", &target.script_name);
    env.set("SCRIPT_FILENAME", target.file.as_os_str().as_bytes());
    env.set("DOCUMENT_ROOT", site.document_root.as_os_str().as_bytes());
    if !target.path_info.is_empty() {
        env.set("PATH_INFO", &target.path_info);
        let mut translated = site.document_root.as_os_str().as_bytes().to_vec();
        if translated.ends_with(b"/") {
            translated.pop();
        }
        translated.extend_from_slice(&target.path_info);
        env.set("PATH_TRANSLATED", translated);
    }

    let (host, host_port) = host(req);
    match host {
        Some(h) => env.set("SERVER_NAME", h),
        None => env.set("SERVER_NAME", fallback_server_name(conn)),
    }
    let port = conn
        .and_then(|c| c.local_port)
        .map(|p| p.to_string())
        .or(host_port)
        .unwrap_or_else(|| "80".into());
    env.set("SERVER_PORT", port);
    // The client, as a PROXY header or a trusted proxy says (ConnInfo).
    match conn.map(|c| &c.peer) {
        Some(Peer::Tcp(addr)) => {
            env.set("REMOTE_ADDR", addr.ip().to_canonical().to_string());
            env.set("REMOTE_PORT", addr.port().to_string());
        }
        Some(Peer::Ip(ip)) => env.set("REMOTE_ADDR", ip.to_canonical().to_string()),
        Some(Peer::Unix) | None => env.set("REMOTE_ADDR", "unix:"),
    }
    // Apache's and nginx's names for the scheme the client used.
    env.set("REQUEST_SCHEME", conn.map_or("http", ConnInfo::scheme));
    if conn.is_some_and(|c| c.https) {
        env.set("HTTPS", "on");
    }

    let body = req.body();
    if !body.is_empty()
        || headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        env.set("CONTENT_LENGTH", body.len().to_string());
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        env.set("CONTENT_TYPE", ct.as_bytes());
    }
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let scheme = auth.as_bytes().split(|&b| b == b' ').next().unwrap_or(b"");
        if !scheme.is_empty() {
            env.set("AUTH_TYPE", scheme);
        }
    }
    env.set("REDIRECT_STATUS", "200");
    env.set("PATH", PATH);
    http_variables(&mut env, headers, site.pass_authorization);
    env.0
}

struct Env(Vec<(OsString, OsString)>);

impl Env {
    fn set(&mut self, name: impl Into<OsString>, value: impl AsRef<[u8]>) {
        self.0
            .push((name.into(), OsString::from_vec(value.as_ref().to_vec())));
    }
}

/// `HTTP_*` for every header a script may see, duplicates joined.
fn http_variables(env: &mut Env, headers: &HeaderMap, pass_authorization: bool) {
    for name in headers.keys() {
        let n = name.as_str();
        let withheld = *name == header::CONTENT_LENGTH
            || *name == header::CONTENT_TYPE
            || *name == header::TRANSFER_ENCODING
            || n == "proxy"
            || (!pass_authorization
                && (*name == header::AUTHORIZATION || *name == header::PROXY_AUTHORIZATION));
        if withheld || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            continue;
        }
        // Cookie fields are joined with "; " (RFC 6265 §5.4), lists with ", ".
        let sep: &[u8] = if *name == header::COOKIE {
            b"; "
        } else {
            b", "
        };
        let mut value = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(sep);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let var: String = "HTTP_"
            .chars()
            .chain(n.chars().map(|c| match c {
                '-' => '_',
                c => c.to_ascii_uppercase(),
            }))
            .collect();
        env.set(var, value);
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// The path and query as sent.
fn request_uri(req: &Request) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_owned(),
    }
}

/// The host the client asked for (from an absolute target, else `Host`),
/// without its port, and that port; split by the grammar the parser
/// checked them with.
fn host(req: &Request) -> (Option<String>, Option<String>) {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().as_bytes(),
        None => match req.headers().get(header::HOST) {
            Some(h) => h.as_bytes().trim_ascii(),
            None => return (None, None),
        },
    };
    match crate::request::authority::split(raw) {
        Some(a) if !a.host.is_empty() => (
            Some(String::from_utf8_lossy(a.host).into_owned()),
            a.port
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        ),
        _ => (None, None),
    }
}

/// `SERVER_NAME` when the client named no host (an HTTP/1.0 request
/// without `Host`): the listening address when it is a specific one, else
/// this machine's name.
fn fallback_server_name(conn: Option<&ConnInfo>) -> String {
    if let Some(addr) = conn.and_then(|c| c.listener.parse::<SocketAddr>().ok()) {
        if !addr.ip().is_unspecified() {
            return match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::RequestBody;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn vars(req: &Request, pass_authorization: bool) -> HashMap<String, String> {
        let target = Target {
            file: PathBuf::from("/srv/cgi/s.sh"),
            script_name: "/cgi-bin/s.sh".into(),
            path_info: b"/a b".to_vec(),
        };
        let site = Site {
            document_root: Path::new("/srv/www"),
            pass_authorization,
        };
        build(req, &target, &site)
            .into_iter()
            .map(|(k, v)| {
                (
                    k.into_string().unwrap(),
                    String::from_utf8(v.into_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn host_and_port_from_the_target_or_host() {
        let split = |target: &str, field: Option<&str>| {
            let mut b = http::Request::builder().uri(target);
            if let Some(h) = field {
                b = b.header("Host", h);
            }
            host(&b.body(RequestBody::from_vec(Vec::new())).unwrap())
        };
        let some = |h: &str, p: Option<&str>| (Some(h.to_owned()), p.map(str::to_owned));
        assert_eq!(split("/", Some("example.org")), some("example.org", None));
        assert_eq!(
            split("/", Some("example.org:81")),
            some("example.org", Some("81"))
        );
        assert_eq!(split("/", Some("example.org:")), some("example.org", None));
        assert_eq!(split("/", Some("[::1]:8081")), some("[::1]", Some("8081")));
        assert_eq!(split("/", Some("[::1]")), some("[::1]", None));
        assert_eq!(
            split("http://a.test:9/x", Some("b.test")),
            some("a.test", Some("9"))
        );
        assert_eq!(split("/", Some("")), (None, None));
        assert_eq!(split("/", None), (None, None));
    }

    fn request(body: &[u8]) -> Request {
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/cgi-bin/s.sh/a%20b?x=%20y&z")
            .version(Version::HTTP_10)
            .header("Host", "example.org:8443")
            .header("Content-Type", "text/plain")
            .header("Content-Length", body.len().to_string())
            .header("Accept", "a/b")
            .header("accept", "c/d")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .header("Proxy", "http://evil:1/")
            .header("Authorization", "Basic dTpw")
            .header("Proxy-Authorization", "Basic eDp5")
            .header("X_Forwarded_For", "1.2.3.4")
            .header("X-Real", "yes")
            .body(RequestBody::from_vec(body.to_vec()))
            .unwrap();
        req.extensions_mut().insert(ConnInfo::new(
            Peer::Tcp("[::ffff:10.0.0.7]:5555".parse().unwrap()),
            Some(8080),
            Arc::from("0.0.0.0:8080"),
        ));
        req
    }

    #[test]
    fn the_rfc_table() {
        let v = vars(&request(b"hello"), false);
        let want = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/cgi-bin/s.sh/a%20b?x=%20y&z"),
            ("QUERY_STRING", "x=%20y&z"),
            ("SCRIPT_NAME", "/cgi-bin/s.sh"),
            ("SCRIPT_FILENAME", "/srv/cgi/s.sh"),
            ("PATH_INFO", "/a b"),
            ("PATH_TRANSLATED", "/srv/www/a b"),
            ("DOCUMENT_ROOT", "/srv/www"),
            ("SERVER_NAME", "example.org"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_ADDR", "10.0.0.7"),
            ("REMOTE_PORT", "5555"),
            ("REQUEST_SCHEME", "http"),
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_TYPE", "text/plain"),
            ("AUTH_TYPE", "Basic"),
            ("REDIRECT_STATUS", "200"),
            ("PATH", PATH),
            ("HTTP_HOST", "example.org:8443"),
            ("HTTP_ACCEPT", "a/b, c/d"),
            ("HTTP_COOKIE", "a=1; b=2"),
            ("HTTP_X_REAL", "yes"),
        ];
        for (k, val) in want {
            assert_eq!(v.get(k).map(String::as_str), Some(val), "{k}");
        }
        assert!(v["SERVER_SOFTWARE"].starts_with("spyglass/"));
        for k in [
            "HTTP_PROXY",
            "HTTP_AUTHORIZATION",
            "HTTP_PROXY_AUTHORIZATION",
            "HTTP_X_FORWARDED_FOR",
            "HTTP_CONTENT_LENGTH",
            "HTTP_CONTENT_TYPE",
            "HTTPS",
        ] {
            assert!(!v.contains_key(k), "{k} must not be set");
        }
        let v = vars(&request(b"hello"), true);
        assert_eq!(v["HTTP_AUTHORIZATION"], "Basic dTpw");
    }

    #[test]
    fn without_body_host_or_path_info() {
        let mut req = http::Request::builder()
            .uri("/cgi-bin/s.sh")
            .body(RequestBody::empty())
            .unwrap();
        req.extensions_mut().insert(ConnInfo::new(
            Peer::Tcp("127.0.0.1:4000".parse().unwrap()),
            Some(81),
            Arc::from("127.0.0.2:81"),
        ));
        let target = Target {
            file: PathBuf::from("/srv/cgi/s.sh"),
            script_name: "/cgi-bin/s.sh".into(),
            path_info: Vec::new(),
        };
        let site = Site {
            document_root: Path::new("/srv/www"),
            pass_authorization: false,
        };
        let v: HashMap<OsString, OsString> = build(&req, &target, &site).into_iter().collect();
        let get = |k: &str| v.get(OsStr::new(k)).map(|s| s.to_str().unwrap().to_owned());
        assert_eq!(get("QUERY_STRING").as_deref(), Some(""));
        assert_eq!(get("SERVER_NAME").as_deref(), Some("127.0.0.2"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("81"));
        for k in [
            "CONTENT_LENGTH",
            "CONTENT_TYPE",
            "PATH_INFO",
            "PATH_TRANSLATED",
            "AUTH_TYPE",
        ] {
            assert_eq!(get(k), None, "{k}");
        }
    }

    /// Behind a proxy: the client it speaks for, with no port when only its
    /// address is known, and the scheme it used.
    #[test]
    fn behind_a_proxy() {
        let mut req = request(b"");
        let info = req.extensions_mut().get_mut::<ConnInfo>().unwrap();
        info.peer = Peer::Ip("2001:db8::7".parse().unwrap());
        info.https = true;
        let v = vars(&req, false);
        assert_eq!(v["REMOTE_ADDR"], "2001:db8::7");
        assert!(!v.contains_key("REMOTE_PORT"));
        assert_eq!(v["REQUEST_SCHEME"], "https");
        assert_eq!(v["HTTPS"], "on");
    }

    #[test]
    fn host_forms() {
        let host_of = |h: &str| {
            let req = http::Request::builder()
                .uri("/")
                .header("Host", h)
                .body(RequestBody::empty())
                .unwrap();
            host(&req)
        };
        assert_eq!(host_of("a.b"), (Some("a.b".into()), None));
        assert_eq!(host_of("a.b:81"), (Some("a.b".into()), Some("81".into())));
        assert_eq!(
            host_of("[::1]:82"),
            (Some("[::1]".into()), Some("82".into()))
        );
        assert_eq!(host_of("[::1]"), (Some("[::1]".into()), None));
        assert_eq!(host_of(""), (None, None));
    }

    use std::ffi::OsStr;
}
