//! The benchmark app: every request, whatever its method, path or body, is
//! answered `200 Hello, world!`. Run it as
//! `hello --listen 127.0.0.1:8080 --workers 2 --access-log off`.

use spyglass::http::header::{CONTENT_TYPE, HeaderValue};
use spyglass::{Body, Request, Response, Server};

fn hello(_req: Request) -> Response {
    let mut res = Response::new(Body::from("Hello, world!\n"));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

fn main() {
    if let Err(e) = Server::from_args().serve(hello) {
        eprintln!("hello: {e}");
        std::process::exit(1);
    }
}
