//! Sockets with roles, against the real binary: one spyglass, several named
//! sockets (`LISTEN_FDNAMES`, `--listen NAME=ADDR`), each served from its
//! own root by `--site NAME=ROOT`, with CGI mounted per site
//! (`--cgi NAME:PREFIX=DIR`), the rest from ROOT; a name that fits no
//! socket, or a socket nothing serves, is a startup error naming it; the
//! access log carries the listener's name.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const T: Duration = Duration::from_secs(10);

/// A document root whose index says `name`, with a CGI directory
/// `cgi-bin` beside it (outside the root) holding a script `hi`.
fn root(base: &Path, name: &str) -> (String, String) {
    let root = base.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), format!("{name}\n")).unwrap();
    let cgi = base.join(format!("{name}-cgi"));
    std::fs::create_dir_all(&cgi).unwrap();
    script(
        &cgi,
        "hi",
        &format!(
            "printf 'Content-Type: text/plain\\n\\n{name} script, root %s\\n' \"$DOCUMENT_ROOT\"\n"
        ),
    );
    (
        root.to_str().unwrap().to_owned(),
        cgi.to_str().unwrap().to_owned(),
    )
}

fn text(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = get(addr, path);
    (r.status, r.text())
}

/// Two activated sockets, each its own site with its own CGI mount.
#[test]
fn each_named_socket_serves_its_site() {
    let base = tempfile::tempdir().unwrap();
    let (blog, blog_cgi) = root(base.path(), "blog");
    let (shop, _) = root(base.path(), "shop");
    let (a, b) = (tcp_listener(), tcp_listener());
    let (blog_addr, shop_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut p = Launch::spyglass()
        .args(["--workers", "1"])
        .args([
            "--site",
            &format!("blog={blog}"),
            "--site",
            &format!("shop={shop}"),
        ])
        .args(["--cgi", &format!("blog:/cgi-bin={blog_cgi}")])
        .fd(a)
        .fd(b)
        .names("blog:shop")
        .notify()
        .start();
    p.ready();
    assert_eq!(text(blog_addr, "/"), (200, "blog\n".into()));
    assert_eq!(text(shop_addr, "/"), (200, "shop\n".into()));
    assert_eq!(
        text(blog_addr, "/cgi-bin/hi"),
        (200, format!("blog script, root {blog}\n"))
    );
    // The blog's CGI mount is the blog's alone.
    assert_eq!(get(shop_addr, "/cgi-bin/hi").status, 404);
    // The access log names the listener.
    assert!(
        p.log.wait_for("path=\"/cgi-bin/hi\" status=404", T),
        "{}",
        p.log.text()
    );
    let log = p.log.text();
    let cgi_line = log
        .lines()
        .find(|l| l.contains("path=\"/cgi-bin/hi\" status=200"));
    assert!(
        cgi_line.is_some_and(|l| l.contains("listener=\"blog\"")),
        "{log}"
    );
}

/// ROOT serves the sockets no `--site` names (with its own CGI mounts);
/// sockets spyglass binds itself are named with `--listen NAME=ADDR`.
#[test]
fn root_serves_the_others_and_listen_names_sockets() {
    let base = tempfile::tempdir().unwrap();
    let (blog, _) = root(base.path(), "blog");
    let (main, main_cgi) = root(base.path(), "main");
    let (blog_port, main_port) = (free_port(), free_port());
    let mut p = Launch::spyglass()
        .arg(&main)
        .args(["--workers", "1"])
        .args([
            "--listen",
            &format!("blog=127.0.0.1:{blog_port},127.0.0.1:{main_port}"),
        ])
        .args(["--site", &format!("blog={blog}")])
        .args(["--cgi", &format!("/cgi-bin={main_cgi}")])
        .notify()
        .start();
    p.ready();
    let blog_addr = SocketAddr::from(([127, 0, 0, 1], blog_port));
    let main_addr = SocketAddr::from(([127, 0, 0, 1], main_port));
    assert_eq!(text(blog_addr, "/"), (200, "blog\n".into()));
    assert_eq!(text(main_addr, "/"), (200, "main\n".into()));
    assert_eq!(
        text(main_addr, "/cgi-bin/hi"),
        (200, format!("main script, root {main}\n"))
    );
    assert_eq!(get(blog_addr, "/cgi-bin/hi").status, 404);
    assert!(
        p.log
            .wait_for(&format!("listener=\"127.0.0.1:{main_port}\""), T),
        "{}",
        p.log.text()
    );
    assert!(
        p.log.wait_for("listener=blog address=", T),
        "{}",
        p.log.text()
    );
}

/// The same configuration from `SPYGLASS_*` variables, list flags comma
/// separated.
#[test]
fn sites_from_the_environment() {
    let base = tempfile::tempdir().unwrap();
    let (blog, blog_cgi) = root(base.path(), "blog");
    let (shop, shop_cgi) = root(base.path(), "shop");
    let (a, b) = (tcp_listener(), tcp_listener());
    let (blog_addr, shop_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut p = Launch::spyglass()
        .env("SPYGLASS_SITE", &format!("blog={blog},shop={shop}"))
        .env(
            "SPYGLASS_CGI",
            &format!("blog:/cgi-bin={blog_cgi},shop:/scripts={shop_cgi}"),
        )
        .env("SPYGLASS_PROXY_PROTOCOL", "shop")
        .env("SPYGLASS_WORKERS", "1")
        .fd(a)
        .fd(b)
        .names("blog:shop")
        .notify()
        .start();
    p.ready();
    assert_eq!(
        text(blog_addr, "/cgi-bin/hi").1,
        format!("blog script, root {blog}\n")
    );
    let mut c = Client::connect(shop_addr);
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\r\nGET /scripts/hi HTTP/1.1\r\nHost: x\r\n\r\n");
    let res = c.response().expect("a response");
    assert_eq!(res.text(), format!("shop script, root {shop}\n"));
}

/// Names that fit no socket, and sockets nothing serves: startup errors
/// that name them (exit 78; under activation after answering 503 until
/// idle), and `spyglass check` finds them where it knows the sockets.
#[test]
fn names_that_do_not_fit_are_startup_errors() {
    let base = tempfile::tempdir().unwrap();
    let (blog, blog_cgi) = root(base.path(), "blog");
    let (shop, _) = root(base.path(), "shop");
    let site_blog = format!("blog={blog}");
    let site_shop = format!("shop={shop}");

    // Activated, a --site naming no socket: 503 until idle, then 78.
    let l = tcp_listener();
    let addr = l.local_addr().unwrap();
    let mut p = Launch::spyglass()
        .args([
            "--site",
            &site_blog,
            "--site",
            "blgo=/srv",
            "--idle-timeout",
            "1s",
        ])
        .fd(l)
        .names("blog")
        .notify()
        .start();
    p.ready();
    assert_eq!(get(addr, "/").status, 503);
    assert_eq!(
        p.wait_exit(T).and_then(|s| s.code()),
        Some(78),
        "{}",
        p.log.text()
    );
    assert!(
        p.log.wait_for(
            "--site blgo=/srv: no socket is named 'blgo' (sockets: blog)",
            T
        ),
        "{}",
        p.log.text()
    );

    // A socket that no --site names, and no ROOT: refused, naming it.
    let (a, b) = (tcp_listener(), tcp_listener());
    let mut p = Launch::spyglass()
        .args(["--site", &site_blog, "--idle-timeout", "1s"])
        .fd(a)
        .fd(b)
        .names("blog:shop")
        .notify()
        .start();
    p.ready();
    assert_eq!(
        p.wait_exit(T).and_then(|s| s.code()),
        Some(78),
        "{}",
        p.log.text()
    );
    assert!(
        p.log.wait_for(
            "socket 'shop' is served by nothing: give it a --site shop=ROOT, or a ROOT for the others",
            T
        ),
        "{}",
        p.log.text()
    );

    // Self-bound: exit 78 at once.
    let port = free_port();
    let mut p = Launch::spyglass()
        .args(["--listen", &format!("blog=127.0.0.1:{port}")])
        .args(["--site", &site_shop])
        .start();
    assert_eq!(
        p.wait_exit(T).and_then(|s| s.code()),
        Some(78),
        "{}",
        p.log.text()
    );
    assert!(p.log.wait_for("--site shop=", T), "{}", p.log.text());

    // Known without sockets, and so also from check: a --cgi for no
    // --site, a --site given twice, a ROOT-less --cgi without ROOT.
    for (args, line) in [
        (
            vec![
                "--site".to_owned(),
                site_blog.clone(),
                "--cgi".into(),
                format!("shop:/x={blog_cgi}"),
            ],
            format!("--cgi shop:/x={blog_cgi}: no --site is named 'shop'"),
        ),
        (
            vec![
                "--site".to_owned(),
                site_blog.clone(),
                "--site".into(),
                format!("blog={shop}"),
            ],
            "--site blog: given twice".to_owned(),
        ),
        (
            vec![
                "--site".to_owned(),
                site_blog.clone(),
                "--cgi".into(),
                format!("/x={blog_cgi}"),
            ],
            format!("--cgi /x={blog_cgi}: names no site, and there is no ROOT"),
        ),
    ] {
        for check in [false, true] {
            let out = Command::new(spyglass())
                .args(check.then_some("check"))
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{args:?} check={check}: {err}");
            assert!(err.contains(&line), "{args:?} check={check}: {err}");
        }
    }
    // A malformed name is a bad flag: exit 2.
    let out = Command::new(spyglass())
        .args(["check", "--site", &format!("a:b={blog}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `spyglass check` has no sockets: it checks the names against
/// `LISTEN_FDNAMES` when set (a reload's check inherits the running
/// server's), else against `--listen NAME=ADDR`, else says it could not.
#[test]
fn check_knows_the_sockets_it_can() {
    let base = tempfile::tempdir().unwrap();
    let (blog, _) = root(base.path(), "blog");
    let site_blog = format!("blog={blog}");
    let check = |args: &[&str], fdnames: Option<&str>| {
        let mut cmd = Command::new(spyglass());
        cmd.arg("check").args(args).env_remove("LISTEN_FDNAMES");
        if let Some(n) = fdnames {
            cmd.env("LISTEN_FDNAMES", n);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = check(&["--site", &site_blog], None);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("sockets") && out.contains("not known here"),
        "{out}"
    );
    assert!(
        out.contains(&format!("site  {site_blog}")) || out.contains(&site_blog),
        "{out}"
    );

    let (code, out, _) = check(&["--site", &site_blog], Some("blog"));
    assert_eq!(code, Some(0));
    assert!(
        out.contains("blog (from LISTEN_FDNAMES; names checked)"),
        "{out}"
    );

    let (code, _, err) = check(&["--site", &site_blog], Some("blog:shop"));
    assert_eq!(code, Some(78));
    assert!(err.contains("socket 'shop' is served by nothing"), "{err}");

    let (code, _, err) = check(
        &["--site", &site_blog, "--proxy-protocol", "edge"],
        Some("blog"),
    );
    assert_eq!(code, Some(78));
    assert!(
        err.contains("--proxy-protocol edge: no socket is named 'edge'"),
        "{err}"
    );

    let (code, _, err) = check(
        &["--site", &site_blog, "--listen", "shop=127.0.0.1:1"],
        None,
    );
    assert_eq!(code, Some(78));
    assert!(
        err.contains("no socket is named 'blog' (sockets: shop)"),
        "{err}"
    );
}
