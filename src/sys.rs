//! The only file with `unsafe` code: fork, `_exit`, a shared anonymous
//! mapping, `accept4` with the peer address, the pre-exec reset of a CGI
//! child and the pidfd that watches its exit. Each block carries its
//! `// SAFETY:` argument; the crate root denies unsafe code everywhere else.
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
/// would pass that mask on), every signal at its default disposition (an
/// ignored signal stays ignored across exec), no descriptor but 0, 1 and 2
/// (ours are all close-on-exec, but whatever our own parent left open
/// without the flag would pass on), a process group of its own so that a
/// timeout can kill the script and everything it started, and SIGKILL as
/// its parent-death signal, so that a worker that dies does not leave it
/// running (the kernel ties that to the forking thread: spawn from the
/// worker's own thread, as its event loop does).
pub fn exec_clean(cmd: &mut Command) {
    // Asked here, not in the child: only async-signal-safe calls belong there.
    let last_signal = libc::SIGRTMAX();
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: sysconf takes no pointers.
    let max_fd = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as i32;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes system calls (sigprocmask, rt_sigaction, close_range, fcntl,
    // setpgid, prctl, getppid), all async-signal-safe; it allocates nothing
    // and takes no locks. rt_sigaction reads 32 bytes of `dfl` (the kernel's
    // sigaction: handler, flags, restorer, an 8-byte mask) and writes
    // nothing. Marking descriptors close-on-exec rather than closing them
    // keeps the pipe that `Command` uses to report a failed exec (itself
    // close-on-exec) working.
    unsafe {
        cmd.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(io::Error::from)?;
            // The raw system call, not signal(3): the C library refuses to
            // touch the real-time signals it reserves, yet a parent may have
            // left them ignored. An all-zero kernel sigaction is SIG_DFL
            // with no flags and an empty mask. SIGKILL and SIGSTOP fail
            // harmlessly.
            let dfl = [0u64; 4];
            for sig in 1..=last_signal {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                );
            }
            let flag = libc::CLOSE_RANGE_CLOEXEC as libc::c_uint;
            if libc::syscall(libc::SYS_close_range, 3u32, libc::c_uint::MAX, flag) != 0 {
                // Before Linux 5.11: one descriptor at a time.
                for fd in 3..max_fd {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Killed if the worker dies (killed while stuck, say); checked
            // after arming, in case it died before.
            let kill = libc::SIGKILL as libc::c_ulong;
            if libc::prctl(libc::PR_SET_PDEATHSIG, kill, 0, 0, 0) != 0 || libc::getppid() != parent
            {
                // No allocation here: a raw errno (the parent is gone).
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// pidfd_open(2): a descriptor (close-on-exec) that turns readable when the
/// child `pid` exits, so that an event loop can wait for the exit without
/// blocking or a SIGCHLD handler.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word, no pointers; it
    // returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor, which nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

/// Bytes this socket has sent that the receiver has not read yet
/// (`SIOCOUTQ`). For a Unix datagram socket a sent datagram stays charged
/// to the sender until the receiving process reads it.
pub fn unread_by_peer(sock: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (the same number as TIOCOUTQ) writes one c_int
    // through the pointer, which points at `n`, alive for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Unmap this process's copy of its executable's code (the `r-xp` mapping
/// of the binary itself) so that only the pages it touches from now on
/// come back. The code stays in the page cache, so they come back as
/// minor faults; nothing else (data, relocated tables, libraries) is
/// touched. Returns the bytes released from this process's mapping.
pub fn release_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut released = 0;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3);
        if perms != "r-xp" || path.map(std::path::Path::new) != Some(exe.as_path()) {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        // SAFETY: the range is this process's own private, read-only,
        // executable mapping of its binary, never written (code has no
        // relocations: it is position-independent); MADV_DONTNEED on such
        // a file-backed private mapping drops the page-table entries, and
        // the next access maps the same bytes again from the file. The
        // code running now, this function included, simply faults back in.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        released += end - start;
    }
    Ok(released)
}
