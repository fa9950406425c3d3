//! The only file with `unsafe` code: fork, `_exit`, a shared anonymous
//! mapping, `accept4` with the peer address, and the pre-exec reset of a CGI
//! child. Each block carries its `// SAFETY:` argument; the crate root denies
//! unsafe code everywhere else.
//!
//! Everything here is a thin, typed wrapper; policy (what to do after fork,
//! what to share) lives with the callers.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use nix::unistd::{ForkResult, Pid};

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent(Pid),
}

/// fork(2). The caller must be single-threaded (spyglass never starts a
/// thread in the master) and the child must leave through [`exit_now`].
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the master is single-threaded when it forks (no runtime, no
    // logging thread: tracing writes synchronously), so the child cannot
    // inherit a lock held by another thread. The child never returns into the
    // caller's stack frames above the worker entry; it ends in `exit_now`.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Child => Ok(Forked::Child),
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
    }
}

/// `_exit(2)`: leave a forked child without running the parent's atexit
/// handlers, destructors or stdio flushes, which belong to the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and takes no pointers; not running
    // destructors is the point (they own state copied from the parent).
    unsafe { libc::_exit(code) }
}

/// `n` zeroed atomic words in a page-aligned `MAP_SHARED | MAP_ANONYMOUS`
/// region that survives fork: the master and every worker see the same
/// memory. It is never unmapped; it lives as long as the process.
pub fn shared_words(n: usize) -> io::Result<&'static [AtomicU64]> {
    let bytes = n
        .checked_mul(std::mem::size_of::<AtomicU64>())
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| io::Error::other("bad shared mapping size"))?;
    // SAFETY: an anonymous mapping with no address hint cannot alias any
    // existing Rust object; the kernel zero-fills it.
    let ptr: NonNull<u8> = unsafe {
        mmap_anonymous(
            None,
            bytes,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .map_err(io::Error::from)?
    .cast();
    // SAFETY: the mapping is `bytes` long, page-aligned (so aligned for
    // AtomicU64), zero-filled (a valid AtomicU64 is any bit pattern, zero
    // included), never unmapped (so 'static holds), and only ever accessed
    // through atomics, which is sound for memory shared between processes.
    Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<AtomicU64>(), n) })
}

/// accept4(2) with `SOCK_NONBLOCK | SOCK_CLOEXEC`, returning the peer address
/// in the same call (one syscall per connection, not two).
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SockaddrStorage>)> {
    let mut storage = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is a writable sockaddr_storage and `len` holds its
    // size, as accept4 requires; the kernel writes at most `len` bytes.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel initialised `len` bytes of `storage` (len may be 0
    // for an unnamed Unix peer, which from_raw maps to an empty address).
    let addr = unsafe { SockaddrStorage::from_raw(storage.as_ptr().cast(), Some(len)) };
    Ok((fd, addr))
}

/// Prepare a command so that its child starts clean: an empty signal mask
/// (ours blocks the signals the worker reads through signalfd, and `Command`
/// would pass that mask on), default dispositions, and a process group of
/// its own so that a timeout can kill the script and everything it started.
#[allow(dead_code)] // for the CGI handler
pub fn exec_clean(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls async-signal-safe functions (sigprocmask, signal, setpgid); it
    // allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(io::Error::from)?;
            for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Take ownership of a descriptor that our own previous image left open
/// across `execve` for us (a listener or a worker channel on reload).
/// Refuses numbers that are not open sockets.
pub fn adopt_inherited_socket(raw: i32) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::other(format!(
            "fd {raw} is not an inherited socket"
        )));
    }
    // SAFETY: fstat only reads the descriptor's metadata; an unused number
    // fails with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let st = nix::sys::stat::fstat(borrowed).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::other(format!("fd {raw} is not a socket")));
    }
    // SAFETY: the number came from the SPYGLASS_INHERIT_* variables, which
    // only our previous image sets (for our own pid, checked by the caller)
    // after clearing FD_CLOEXEC on exactly these descriptors; this runs once
    // at startup before anything else in this image could have taken them,
    // and fstat above proved the descriptor is an open socket.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Remove a variable from our environment.
pub fn remove_env(key: &str) {
    // SAFETY: called only at startup from the main thread, before the
    // master forks or anything could start a thread, so no other thread
    // reads the environment concurrently.
    unsafe { std::env::remove_var(key) }
}
