//! A connection's buffers: [`InBuf`] for bytes read but not yet parsed,
//! and [`BodyStore`] for a request body being received; and what a worker
//! keeps between connections so that each one does not allocate its own:
//! spare input and output buffers, and the buffer request heads are copied
//! into to be shared ([`shared_head`]).
//!
//! An idle connection keeps a small input buffer (2 KiB) and nothing else,
//! so thousands of slow or idle clients cost a few MiB, not a worker. Bodies
//! larger than `--body-buffer` go to an unlinked temporary file rather than
//! memory. An idle worker lets every spare go ([`drop_spares`]).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;
use std::thread::LocalKey;

use crate::handler::RequestBody;

/// The capacity an input buffer starts with and shrinks back to.
const INITIAL: usize = 2048;

/// Bytes received and not yet consumed: `buf[start..end]`.
pub struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

std::thread_local! {
    /// Input buffers of closed connections, for the next ones: a
    /// `Connection: close` client would otherwise cost an allocation (and
    /// its zeroing, and the allocator's consolidation of small chunks that a
    /// 2 KiB request triggers) per request. Per thread: a worker is one.
    static SPARE: Spares = const { RefCell::new(Vec::new()) };
}

/// Buffers of closed connections, kept for the next ones (per thread: a
/// worker is one).
type Spares = RefCell<Vec<Vec<u8>>>;

/// Spare buffers of each kind kept at most (16 x 2 KiB of input).
const SPARE_MAX: usize = 16;

std::thread_local! {
    /// Output buffers (a response's head and small body) of closed
    /// connections, emptied, for the next ones: the same saving as
    /// [`SPARE`], on the way out.
    static SPARE_OUT: Spares = const { RefCell::new(Vec::new()) };
}

/// An output buffer is kept as a spare only up to this capacity (a head
/// and a small body; one that held a larger body is freed): at most
/// [`SPARE_MAX`] x 4 KiB.
const SPARE_OUT_CAPACITY: usize = 4096;

std::thread_local! {
    /// Where request heads are copied to be shared (see [`shared_head`]).
    static HEADS: RefCell<bytes::BytesMut> = RefCell::new(bytes::BytesMut::new());
}

/// Heads up to this long are copied into [`HEADS`]; a longer one gets an
/// allocation of its own, so that one large head does not leave a large
/// buffer behind.
const HEADS_CAPACITY: usize = 4096;

/// Let the spare buffers go (an idle worker keeps none).
pub fn drop_spares() {
    let _ = SPARE.try_with(|s| *s.borrow_mut() = Vec::new());
    let _ = SPARE_OUT.try_with(|s| *s.borrow_mut() = Vec::new());
    let _ = HEADS.try_with(|h| *h.borrow_mut() = bytes::BytesMut::new());
}

/// A shared copy of a request head, which the request's target and field
/// values are slices of. Heads are copied one after another into a
/// reference-counted buffer of [`HEADS_CAPACITY`]; when it is full and
/// nothing holds the heads in it any more (the usual case: a request is
/// done before long), the next copy starts again at its beginning. So a
/// head costs no allocation, where a `Bytes` of its own would take two
/// (the copy, and the shared header that its first slice makes). A field
/// value that an application keeps keeps that buffer; the next heads then
/// go to a new one, and the old one is freed with its last slice.
pub fn shared_head(head: &[u8]) -> bytes::Bytes {
    if head.len() > HEADS_CAPACITY {
        return bytes::Bytes::copy_from_slice(head);
    }
    HEADS
        .try_with(|h| {
            let mut h = h.borrow_mut();
            if h.capacity() < head.len() {
                // The buffer is full (or there is none yet): start again
                // at its beginning when nothing else holds it, else take a
                // new one of HEADS_CAPACITY.
                h.reserve(HEADS_CAPACITY);
            }
            h.extend_from_slice(head);
            h.split().freeze()
        })
        .unwrap_or_else(|_| bytes::Bytes::copy_from_slice(head))
}

/// A buffer from `spares`, if it holds one.
fn take_spare(spares: &'static LocalKey<Spares>) -> Option<Vec<u8>> {
    spares.try_with(|s| s.borrow_mut().pop()).ok().flatten()
}

/// Keep `buf` in `spares` for the next connection, unless it already holds
/// [`SPARE_MAX`].
fn keep_spare(spares: &'static LocalKey<Spares>, buf: Vec<u8>) {
    let _ = spares.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_MAX {
            s.push(buf);
        }
    });
}

/// An empty output buffer: a spare if there is one.
pub fn output_buffer() -> Vec<u8> {
    take_spare(&SPARE_OUT).unwrap_or_default()
}

/// Give an output buffer back for the next connection.
pub fn return_output_buffer(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_OUT_CAPACITY {
        return;
    }
    buf.clear();
    keep_spare(&SPARE_OUT, buf);
}

impl InBuf {
    pub fn new() -> InBuf {
        let buf = take_spare(&SPARE).unwrap_or_else(|| vec![0; INITIAL]);
        InBuf {
            buf,
            start: 0,
            end: 0,
        }
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Drop `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read once from `fd` into free space, growing up to `max` bytes of
    /// unconsumed data. `Ok(0)` means end of stream.
    pub fn read_from(&mut self, fd: impl AsFd, max: usize) -> io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = (self.buf.len() * 2).min(max.max(INITIAL));
                if grown <= self.buf.len() {
                    return Err(io::Error::other("input buffer full"));
                }
                self.buf.resize(grown, 0);
            }
        }
        let n = nix::unistd::read(fd, &mut self.buf[self.end..]).map_err(io::Error::from)?;
        self.end += n;
        Ok(n)
    }

    /// Give memory back after a large request, once nothing is pending.
    pub fn shrink(&mut self) {
        if self.is_empty() && self.buf.len() > 8 * INITIAL {
            self.buf = vec![0; INITIAL];
        }
    }
}

impl Default for InBuf {
    fn default() -> Self {
        InBuf::new()
    }
}

impl Drop for InBuf {
    /// A buffer of the usual size goes back to the spares (its stale bytes
    /// are never read: only what a read fills is).
    fn drop(&mut self) {
        if self.buf.len() == INITIAL {
            keep_spare(&SPARE, std::mem::take(&mut self.buf));
        }
    }
}

/// A request body as it arrives: in memory up to `spill_at` bytes, then in
/// an unlinked temporary file.
pub struct BodyStore {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
    spill_at: usize,
}

impl BodyStore {
    pub fn new(spill_at: usize, expected: Option<u64>) -> BodyStore {
        let cap = expected.map_or(0, |n| n.min(spill_at as u64) as usize);
        BodyStore {
            mem: Vec::with_capacity(cap),
            file: None,
            len: 0,
            spill_at,
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if let Some(f) = &mut self.file {
            return f.write_all(data);
        }
        if self.mem.len() + data.len() <= self.spill_at {
            self.mem.extend_from_slice(data);
            return Ok(());
        }
        let mut f = temp_file()?;
        f.write_all(&self.mem)?;
        f.write_all(data)?;
        self.mem = Vec::new();
        self.file = Some(f);
        Ok(())
    }

    pub fn finish(self) -> io::Result<RequestBody> {
        match self.file {
            None => Ok(RequestBody::from_vec(self.mem)),
            Some(mut f) => {
                f.rewind()?;
                Ok(RequestBody::from_file(f, self.len))
            }
        }
    }
}

/// An anonymous file in `$TMPDIR` (`O_TMPFILE`: it has no name, so nothing
/// is left behind however the worker ends).
fn temp_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(std::env::temp_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Heads copied into the shared buffer stay intact however many come
    /// after them, whether a slice of them is kept past a refill or not,
    /// and heads of every length (up to past the buffer's size) come back
    /// as they went in.
    #[test]
    fn shared_heads_are_never_overwritten() {
        let head = |i: usize| -> Vec<u8> {
            let len = (i * 37) % (HEADS_CAPACITY + 300) + 1;
            (0..len).map(|j| (i * 7 + j) as u8).collect()
        };
        let mut kept = Vec::new();
        for i in 0..2000 {
            let want = head(i);
            let got = shared_head(&want);
            assert_eq!(&got[..], &want[..], "head {i}");
            if i % 13 == 0 {
                // A field value an application holds on to.
                kept.push((i, got.slice(got.len() / 2..)));
            }
        }
        for (i, part) in kept {
            let want = head(i);
            assert_eq!(&part[..], &want[want.len() / 2..], "kept head {i}");
        }
        drop_spares();
        assert_eq!(
            &shared_head(b"GET / HTTP/1.1\r\n\r\n")[..],
            b"GET / HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn body_spills_to_a_file_and_reads_back() {
        let mut s = BodyStore::new(8, Some(20));
        s.write(b"hello ").unwrap();
        s.write(b"big world").unwrap();
        s.write(b"!").unwrap();
        let mut body = s.finish().unwrap();
        assert_eq!(body.len(), 16);
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello big world!");
    }

    #[test]
    fn input_buffer_compacts_and_grows_to_its_limit() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut buf = InBuf::new();
        (&a).write_all(&[b'x'; 5000]).unwrap();
        let mut total = 0;
        while total < 5000 {
            total += buf.read_from(&b, 4096).unwrap_or(0);
            if buf.len() == 4096 {
                break;
            }
        }
        assert_eq!(buf.len(), 4096);
        assert!(buf.read_from(&b, 4096).is_err(), "full at the limit");
        buf.consume(4000);
        assert_eq!(buf.read_from(&b, 4096).unwrap(), 904);
        assert_eq!(buf.len(), 1000);
    }
}
