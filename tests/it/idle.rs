//! Scale to zero that no client can defeat: after any traffic, valid or
//! not, cut off or reset at any point, spyglass exits 0 once the timeout
//! that ends each connection and then `--idle-timeout` have passed.
//!
//! A named test for each shape that once kept the service up for good, and
//! a randomized one that draws bursts of traffic shapes (valid and malformed
//! heads, truncation points, FIN or RST or a silent hold, pipelining, unread
//! bodies and responses, CGI scripts still running, large files half sent)
//! against many server instances, asserting each instance's idle exit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// Every timeout that can end a connection, short, so that the bound below
/// stays small: `--idle-timeout` plus the longest of them.
const FLAGS: &[&str] = &[
    "--workers",
    "2",
    "--idle-timeout",
    "300ms",
    "--header-timeout",
    "1s",
    "--body-timeout",
    "1s",
    "--keepalive-timeout",
    "1s",
    "--write-timeout",
    "1s",
    "--cgi-timeout",
    "1s",
    "--max-head",
    "4K",
    "--max-request-line",
    "1K",
    "--body-buffer",
    "1K",
];
/// The idle timeout plus the longest connection timeout.
const DUE: Duration = Duration::from_millis(1300);
/// Scheduling slack on a loaded 2-core machine; an instance that does not
/// exit by then never would (the bug this guards against kept it up for good).
const SLACK: Duration = Duration::from_secs(8);

/// A site with a small file, a large one (more than loopback's socket
/// buffers hold, so a client that does not read leaves it half sent), and
/// CGI scripts: one that answers, one that runs past `--cgi-timeout`.
fn idle_site() -> tempfile::TempDir {
    let dir = site();
    std::fs::write(dir.path().join("big.bin"), vec![b'x'; 16 << 20]).unwrap();
    let cgi = dir.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    script(
        &cgi,
        "echo.sh",
        "printf 'Content-Type: text/plain\\r\\n\\r\\n'; cat\n",
    );
    script(&cgi, "slow.sh", "exec sleep 30\n");
    dir
}

fn start(root: &Path) -> (Proc, SocketAddr) {
    let cgi = format!("/cgi-bin={}", root.join("cgi-bin").display());
    activated(
        Launch::spyglass()
            .arg(root.to_str().unwrap())
            .args(["--cgi", &cgi])
            .args(FLAGS.iter().copied()),
    )
}

/// What a client does with its connection, in order.
#[derive(Clone, Debug)]
enum Act {
    Send(Vec<u8>),
    /// Read until the server has sent something (or closed).
    AwaitBytes,
    /// Read until the server closes.
    ReadToEnd,
    /// shutdown(SHUT_WR): the FIN.
    Fin,
    /// Close with SO_LINGER 0: an RST.
    Rst,
}

/// One connection's traffic, and what the client does at the end of it:
/// close normally, or hold the connection silently until the server has
/// exited (the server's own timeouts must end it).
#[derive(Clone, Debug)]
pub struct Shape {
    acts: Vec<Act>,
    hold: bool,
}

impl Shape {
    fn new(acts: Vec<Act>) -> Shape {
        Shape { acts, hold: false }
    }

    /// Play it on a new connection to `addr`; returns the socket if the
    /// shape holds it open.
    fn play(&self, addr: SocketAddr) -> Option<TcpStream> {
        self.play_on(TcpStream::connect(addr).ok()?)
    }

    /// Play it on `s`, a connection made by the caller.
    pub fn play_on(&self, mut s: TcpStream) -> Option<TcpStream> {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        for act in &self.acts {
            match act {
                // The server may have answered and closed already: a failed
                // write ends the shape, it does not fail the test.
                Act::Send(bytes) => {
                    if s.write_all(bytes).is_err() {
                        return None;
                    }
                }
                Act::AwaitBytes => {
                    let _ = s.read(&mut buf);
                }
                Act::ReadToEnd => while matches!(s.read(&mut buf), Ok(n) if n > 0) {},
                Act::Fin => {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                }
                Act::Rst => {
                    reset(s);
                    return None;
                }
            }
        }
        self.hold.then_some(s)
    }
}

/// Start an instance, play `shapes` against it at once (each on its own
/// connection and thread), and assert that it reaches `0 in flight` and
/// exits 0 in time. Held connections stay open until it has exited.
fn burst_then_idle_exit(root: &Path, shapes: &[Shape], label: &str) {
    let (proc, addr) = start(root);
    burst_then_idle_exit_of(proc, addr, shapes, label);
}

/// [`burst_then_idle_exit`] on a server the caller started (with [`FLAGS`]).
fn burst_then_idle_exit_of(mut proc: Proc, addr: SocketAddr, shapes: &[Shape], label: &str) {
    let n = proc.notify.as_mut().expect("notify");
    let _ = n.wait_for("(everything queued so far)", Duration::ZERO);
    n.clear();
    let held: Vec<TcpStream> = std::thread::scope(|scope| {
        let handles: Vec<_> = shapes
            .iter()
            .map(|shape| scope.spawn(move || shape.play(addr)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("client thread"))
            .collect()
    });
    let played = Instant::now();
    let status = proc.wait_exit(DUE + SLACK);
    drop(held);
    let log = proc.log.text();
    assert!(
        status.is_some(),
        "{label}: still running {:?} after the burst; shapes: {shapes:#?}\nlog:\n{log}",
        played.elapsed()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{label}: exit status; log:\n{log}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("worker died"),
        "{label}: a worker failed; log:\n{log}"
    );
    let stopping = proc
        .notified("STOPPING=1", Duration::ZERO)
        .unwrap_or_else(|| panic!("{label}: no STOPPING=1"));
    assert!(
        stopping.contains("idle for") && stopping.contains(", 0 in flight"),
        "{label}: {stopping}"
    );
}

fn send(b: &[u8]) -> Act {
    Act::Send(b.to_vec())
}

/// The request, then the FIN with it, then read whatever comes.
fn with_fin(b: &[u8]) -> Shape {
    Shape::new(vec![send(b), Act::Fin, Act::ReadToEnd])
}

fn named(shape: Shape, label: &str) {
    let site = idle_site();
    burst_then_idle_exit(site.path(), &[shape], label);
}

#[test]
fn garbage_with_fin() {
    named(with_fin(b"GARBAGE\r\n\r\n"), "garbage + FIN");
}

#[test]
fn bad_chunk_size_with_fin() {
    named(
        with_fin(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        "bad chunk size + FIN",
    );
}

#[test]
fn content_length_and_transfer_encoding_with_fin() {
    named(
        with_fin(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\
              Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        "CL+TE + FIN",
    );
}

#[test]
fn head_over_max_head_with_fin() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..100 {
        raw.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(60)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    named(with_fin(&raw), "head over --max-head + FIN");
}

#[test]
fn request_line_over_max_request_line_with_fin() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    named(
        with_fin(raw.as_bytes()),
        "request line over --max-request-line + FIN",
    );
}

#[test]
fn bare_lf_framing_with_fin() {
    named(
        with_fin(b"GET / HTTP/1.1\nHost: t\n\n"),
        "bare-LF framing + FIN",
    );
}

#[test]
fn valid_request_then_garbage_with_fin() {
    named(
        with_fin(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n"),
        "valid request, then garbage + FIN",
    );
}

#[test]
fn keep_alive_then_half_a_request_and_fin() {
    // Answered and idle (not in flight), then the first bytes of a second
    // request (in flight), then the FIN: the close must subtract exactly
    // what was added.
    named(
        Shape::new(vec![
            send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
            Act::AwaitBytes,
            send(b"GET / HT"),
            Act::Fin,
            Act::ReadToEnd,
        ]),
        "keep-alive, half a request + FIN",
    );
}

/// An application's body of one part held in memory (an echo of 16 MiB,
/// more than loopback's socket buffers take, as `big.bin` above), half
/// sent when the client resets, or half sent to a client that sent its FIN
/// and reads no more: the rest waits in the connection's output queue, and
/// the connection's end (the RST, or `--write-timeout`) must leave nothing
/// in flight.
#[test]
fn an_app_body_of_one_part_half_sent() {
    let body = vec![b'x'; 16 << 20];
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    // FLAGS without --cgi-timeout, a flag of the spyglass binary only.
    let flags: Vec<&str> = FLAGS
        .chunks(2)
        .filter(|f| f[0] != "--cgi-timeout")
        .flatten()
        .copied()
        .collect();
    let (proc, addr) = activated(
        Launch::new(example("app"))
            .args(flags)
            .args(["--max-body", "32M"]),
    );
    let rst = Shape::new(vec![Act::Send(request.clone()), Act::AwaitBytes, Act::Rst]);
    let mut fin = Shape::new(vec![Act::Send(request), Act::AwaitBytes, Act::Fin]);
    fin.hold = true;
    burst_then_idle_exit_of(proc, addr, &[rst, fin], "app body of one part half sent");
}

#[test]
fn keep_alive_then_half_a_request_and_rst() {
    named(
        Shape::new(vec![
            send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
            Act::AwaitBytes,
            send(b"GET / HT"),
            Act::Rst,
        ]),
        "keep-alive, half a request + RST",
    );
}

#[test]
fn error_then_lingering_close_ends_in_one_call() {
    // The 400, the shutdown, and the client's FIN already queued: the
    // lingering close reads EOF in the same call that sent the answer.
    named(
        with_fin(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\nleftover"),
        "400, linger and close in one call",
    );
}

/// Complete requests: valid, and malformed in the ways scanners and broken
/// clients are.
const HEADS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,100-\r\n\r\n",
    b"GET /nope HTTP/1.0\r\n\r\n",
    b"GET /cgi-bin/slow.sh HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET / HTTP/1.1\nHost: t\n\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
];

/// Draw one connection's traffic: one to three requests back to back (some
/// with junk between or after them), cut at a random point or not, the
/// response read in full, in part or not at all, ended by FIN, RST, a plain
/// close or a silent hold.
pub fn draw(rng: &mut Rng) -> Shape {
    let mut wire = Vec::new();
    for _ in 0..=rng.below(3) {
        wire.extend_from_slice(HEADS[rng.below(HEADS.len())]);
        if rng.chance(8) {
            wire.extend_from_slice(b"\r\n\x00junk");
        }
    }
    if rng.chance(3) {
        wire.truncate(rng.below(wire.len() + 1));
    }
    let mut acts = Vec::new();
    if rng.chance(4) && wire.len() > 1 {
        // In two pieces, the second after the server's first answer.
        let at = 1 + rng.below(wire.len() - 1);
        let rest = wire.split_off(at);
        acts.push(Act::Send(wire));
        acts.push(Act::AwaitBytes);
        acts.push(Act::Send(rest));
    } else {
        acts.push(Act::Send(wire));
    }
    let fin_first = rng.chance(2);
    if fin_first {
        acts.push(Act::Fin);
    }
    match rng.below(3) {
        0 => acts.push(Act::ReadToEnd),
        1 => acts.push(Act::AwaitBytes),
        _ => {}
    }
    let mut hold = false;
    match rng.below(4) {
        0 => acts.push(Act::Rst),
        1 if !fin_first => acts.push(Act::Fin),
        2 => hold = true,
        _ => {}
    }
    Shape { acts, hold }
}

#[test]
fn any_traffic_ends_in_an_idle_exit() {
    let seed = std::env::var("SPYGLASS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            t | 1
        });
    eprintln!("idle-exit property: SPYGLASS_SEED={seed}");
    const ROUNDS: usize = 6;
    const PARALLEL: usize = 3;
    const PER_INSTANCE: usize = 24;
    let site = idle_site();
    let mut rng = Rng(seed);
    let mut shapes = 0;
    for round in 0..ROUNDS {
        let bursts: Vec<Vec<Shape>> = (0..PARALLEL)
            .map(|_| (0..PER_INSTANCE).map(|_| draw(&mut rng)).collect())
            .collect();
        shapes += bursts.iter().map(Vec::len).sum::<usize>();
        std::thread::scope(|scope| {
            for (i, burst) in bursts.iter().enumerate() {
                let root = site.path();
                let label = format!("seed {seed}, round {round}, instance {i}");
                scope.spawn(move || burst_then_idle_exit(root, burst, &label));
            }
        });
    }
    eprintln!(
        "idle-exit property: {shapes} traffic shapes over {} instances, every one exited 0",
        ROUNDS * PARALLEL
    );
}
