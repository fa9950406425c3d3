//! The only file with `unsafe` code: fork, `_exit`, a shared anonymous
//! mapping, `accept4` with the peer address, the pre-exec reset of a CGI
//! child and the pidfd that watches its exit, the fork and exec with which
//! the Lookout starts a socket-activated master, the pages an idle process
//! gives back, and a request's field values taken without checking their
//! bytes a second time. Each block carries its `// SAFETY:` argument; the
//! crate root denies unsafe code everywhere else.
//!
//! Everything here is a thin, typed wrapper; policy (what to do after fork,
//! what to share) lives with the callers.

use std::ffi::{CStr, CString};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use http::header::{HeaderValue, InvalidHeaderValue};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use nix::unistd::{ForkResult, Pid};

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent(Pid),
}

/// A request's field value, which the head parser (httparse) has already
/// checked, as a `HeaderValue` without checking its bytes again: httparse
/// admits in a field value only HTAB, SP, VCHAR and obs-text (RFC 9110
/// §5.5), the bytes `HeaderValue` admits, and checking them twice (one
/// byte at a time) was 14% of the instructions that parsing a browser's
/// request of ten fields took. A value with obs-text (not ASCII) is
/// checked the usual way.
pub fn parsed_field_value(value: Bytes) -> Result<HeaderValue, InvalidHeaderValue> {
    if !value.is_ascii() {
        return HeaderValue::from_maybe_shared(value);
    }
    // SAFETY: `from_maybe_shared_unchecked` requires valid UTF-8, and ASCII
    // is. That the bytes are ones a field value may hold is httparse's
    // check, held to `HeaderValue`'s own for every byte by the test
    // `request::tests::the_parser_admits_only_what_header_value_admits`;
    // debug builds check each value again (the function panics there).
    Ok(unsafe { HeaderValue::from_maybe_shared_unchecked(value) })
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
    // setpgid, prctl, getppid), all async-signal-safe (the two helpers say
    // why theirs are); it allocates nothing and takes no locks. Marking
    // descriptors close-on-exec rather than closing them keeps the pipe
    // that `Command` uses to report a failed exec (itself close-on-exec)
    // working.
    unsafe {
        cmd.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(io::Error::from)?;
            reset_dispositions(last_signal);
            cloexec_from(3, max_fd);
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

/// Every signal back to its default disposition, in a child between fork
/// and exec. The raw system call, not signal(3): the C library refuses to
/// touch the real-time signals it reserves, yet a parent may have left them
/// ignored (and an ignored signal stays ignored across exec). An all-zero
/// kernel sigaction is SIG_DFL with no flags and an empty mask. SIGKILL and
/// SIGSTOP fail harmlessly.
///
/// # Safety
///
/// Async-signal-safe (system calls only, no allocation, no lock), as a
/// child of fork must be; rt_sigaction reads 32 bytes of `dfl` (handler,
/// flags, restorer, an 8-byte mask) and writes nothing.
unsafe fn reset_dispositions(last_signal: libc::c_int) {
    let dfl = [0u64; 4];
    for sig in 1..=last_signal {
        // SAFETY: as above; a failure leaves that one signal as it was.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
}

/// Mark every descriptor from `first` up close-on-exec, in a child between
/// fork and exec. Marking rather than closing keeps a pipe that reports a
/// failed exec (itself close-on-exec) working.
///
/// # Safety
///
/// Async-signal-safe: close_range, or fcntl one descriptor at a time before
/// Linux 5.11 (up to `max_fd`); neither takes a pointer.
unsafe fn cloexec_from(first: i32, max_fd: i32) {
    let flag = libc::CLOSE_RANGE_CLOEXEC as libc::c_uint;
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_close_range, first as u32, libc::c_uint::MAX, flag) } != 0 {
        for fd in first..max_fd {
            // SAFETY: as above; an unused number fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// What [`spawn_activated`] starts: a program handed listening sockets the
/// way systemd hands them to a socket-activated service.
pub struct Activation<'a> {
    /// The program to execute.
    pub exe: &'a CStr,
    /// Its argv, argv[0] included.
    pub argv: &'a [CString],
    /// Its whole environment except `LISTEN_PID`, which only the child can
    /// know: it is added there, with the child's own pid.
    pub env: &'a [CString],
    /// Passed as descriptors 3, 4, ... in this order, without
    /// close-on-exec; every other descriptor above 2 is closed on exec.
    pub fds: &'a [BorrowedFd<'a>],
    /// Sent to the child when this process dies.
    pub parent_death: Signal,
}

/// Start a program as systemd starts a socket-activated service: fork, and
/// in the child an empty signal mask and default dispositions, a session
/// (hence a process group) of its own, the parent-death signal armed, the
/// sockets moved to 3, 4, ..., `LISTEN_PID` set to its pid, then execve.
/// Returns the child's pid once it has executed the program, or the error
/// that stopped it from doing so (the child is reaped then).
///
/// The caller must be single-threaded (the Lookout never starts a thread);
/// everything the child needs is prepared here before the fork.
pub fn spawn_activated(a: &Activation<'_>) -> io::Result<Pid> {
    let n = a.fds.len();
    let first_free = i32::try_from(3 + n).map_err(io::Error::other)?;
    let argv: Vec<*const libc::c_char> = a
        .argv
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // "LISTEN_PID=" and room for any pid and its NUL; filled in the child.
    let mut listen_pid = [0u8; 32];
    listen_pid[..11].copy_from_slice(b"LISTEN_PID=");
    let listen_pid = listen_pid.as_mut_ptr();
    let envp: Vec<*const libc::c_char> = a
        .env
        .iter()
        .map(|s| s.as_ptr())
        .chain([listen_pid.cast_const().cast(), std::ptr::null()])
        .collect();
    let fds: Vec<i32> = a.fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut moved: Vec<i32> = vec![-1; n];
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let empty = SigSet::empty();
    let last_signal = libc::SIGRTMAX();
    let parent = nix::unistd::getpid().as_raw();
    let death = a.parent_death as i32 as libc::c_ulong;
    // SAFETY: sysconf takes no pointers.
    let max_fd = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as i32;
    let report_raw = report_w.as_raw_fd();

    // SAFETY: the caller is single-threaded, so the child cannot inherit a
    // lock held by another thread; the child below makes only
    // async-signal-safe system calls on memory prepared before the fork and
    // leaves through execve or _exit, never returning into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child of fork. `argv` and `envp` are NUL-terminated
        // arrays of pointers to NUL-terminated strings that live in this
        // copy of the parent's memory; `listen_pid` points to 32 writable
        // bytes of which at most 11 + 10 + 1 are written; `moved` has room
        // for `n` descriptors; `empty` is a valid sigset_t.
        unsafe {
            let fail = |stage: i32| -> ! {
                let report = [stage, *libc::__errno_location()];
                libc::write(report_raw, report.as_ptr().cast(), 8);
                libc::_exit(127)
            };
            if libc::sigprocmask(libc::SIG_SETMASK, empty.as_ref(), std::ptr::null_mut()) != 0 {
                fail(1);
            }
            reset_dispositions(last_signal);
            if libc::setsid() < 0 {
                fail(2);
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, death, 0, 0, 0) != 0 {
                fail(3);
            }
            if libc::getppid() != parent {
                libc::_exit(1); // the parent died before the signal was armed
            }
            // The report pipe and every socket first go above the target
            // range, then the sockets come down to 3, 4, ... (dup2 leaves
            // the copies without close-on-exec).
            let report = libc::fcntl(report_raw, libc::F_DUPFD_CLOEXEC, first_free);
            if report < 0 {
                fail(4);
            }
            let fail = |stage: i32| -> ! {
                let rep = [stage, *libc::__errno_location()];
                libc::write(report, rep.as_ptr().cast(), 8);
                libc::_exit(127)
            };
            for (i, fd) in fds.iter().enumerate() {
                let copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free);
                if copy < 0 {
                    fail(4);
                }
                moved[i] = copy;
            }
            for (i, fd) in moved.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    fail(4);
                }
            }
            cloexec_from(first_free, max_fd);
            let mut digits = [0u8; 10];
            let mut at = digits.len();
            let mut value = libc::getpid() as u32;
            loop {
                at -= 1;
                digits[at] = b'0' + (value % 10) as u8;
                value /= 10;
                if value == 0 {
                    break;
                }
            }
            let len = digits.len() - at;
            std::ptr::copy_nonoverlapping(digits.as_ptr().add(at), listen_pid.add(11), len);
            *listen_pid.add(11 + len) = 0;
            libc::execve(a.exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(5)
        }
    }
    drop(report_w);
    let child = Pid::from_raw(pid);
    let mut report = [0u8; 8];
    let mut got = 0;
    let mut file = std::fs::File::from(report_r);
    while got < report.len() {
        match std::io::Read::read(&mut file, &mut report[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Ok(child); // the pipe closed on exec
    }
    let _ = nix::sys::wait::waitpid(child, None);
    let stage = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = io::Error::from_raw_os_error(i32::from_ne_bytes([
        report[4], report[5], report[6], report[7],
    ]));
    let what = match stage {
        1 => "signal mask",
        2 => "setsid",
        3 => "parent-death signal",
        4 => "passing the sockets",
        _ => "execve",
    };
    Err(io::Error::new(errno.kind(), format!("{what}: {errno}")))
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

/// The binary this process runs, as a path on disk (so that a reload, or
/// the Lookout's next start of the master, runs the binary installed now,
/// as systemd's `ExecStart=` would); argv[0] if the kernel says that file
/// was replaced.
pub fn own_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .filter(|p| !p.to_string_lossy().ends_with(" (deleted)"))
        .or_else(|| std::env::args_os().next().map(std::path::PathBuf::from))
        .unwrap_or_else(|| std::path::PathBuf::from("/proc/self/exe"))
}

/// Give the heap's free pages back to the kernel (malloc_trim(3)): for a
/// process that will sleep for hours holding little, after startup
/// allocated and freed much more (parsing the command line, say).
fn trim_heap() {
    // SAFETY: malloc_trim takes a size and touches only the allocator's own
    // free memory, under the allocator's lock.
    unsafe { libc::malloc_trim(0) };
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

/// What an idle process gives back in [`release_idle_pages`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Released {
    /// Bytes of code and read-only data whose page-table entries were
    /// dropped.
    pub code: usize,
    /// Bytes of the stack below the caller that were dropped.
    pub stack: usize,
    /// Bytes of anonymous memory that held only zeros, dropped (see
    /// [`IdlePages::find`]).
    pub zero: usize,
}

/// Give back what an idle process holds but does not need while it
/// sleeps: its mappings of code and read-only data (see [`IdlePages`]),
/// the pages of its stack below the caller (deep calls at start-up left
/// them behind), the heap's free pages ([`trim_heap`]), and anonymous
/// pages that hold only zeros ([`drop_zero_pages`]).
///
/// Call it from the main thread, just before a long sleep.
pub fn release_idle_pages() -> io::Result<Released> {
    IdlePages::find()?.release()
}

/// What [`release_idle_pages`] gives back, found first: finding it reads
/// /proc/self/smaps, which runs much code and allocates, and that must
/// happen before the release, not after it.
///
/// Code and read-only data of the executable and its shared libraries:
/// only the pages touched from now on come back, from the page cache, as
/// minor faults. An idle process otherwise keeps every page its start-up
/// touched, and many more besides: the kernel maps the neighbours of each
/// page a fault brings in ("fault-around", 64 KiB), so a master that ran
/// its argument parser once holds most of libc, libgcc_s and its own text
/// for as long as it sleeps; and for the same reason each piece of code
/// that runs between the release and the sleep brings 64 KiB back (see
/// [`IdlePages::release_and_poll`]). Only mappings without a single
/// anonymous (copied-on-write) page are dropped: relocated data (RELRO), a
/// library with text relocations or a debugger's breakpoint make a mapping
/// differ from its file, and dropping those would undo them.
///
/// The stack: everything more than [`STACK_KEPT`] below the releasing
/// function's frame is dead (no frame lives there, and the main thread is
/// the only user of its stack), so its pages can go; a deeper call later
/// gets fresh zeroed pages, as it would have on first use.
///
/// Anonymous memory: the heap's free pages, and in a single-threaded
/// process the resident pages that hold only zeros, go when `find` runs
/// (they need no code to stay away from afterwards).
pub struct IdlePages {
    /// (start, length) of each code or read-only data mapping to drop.
    code: Vec<(usize, usize)>,
    /// The main thread's stack mapping.
    stack: Option<std::ops::Range<usize>>,
    /// The page size, asked for before the release rather than during it.
    page: usize,
    /// The pages of the code that runs between the release and the sleep
    /// ([`IdlePages::release_and_poll`]), left mapped: dropped, the first
    /// instruction after `madvise` would fault them back with 64 KiB of
    /// fault-around; kept, the sleeping Lookout holds a page or two of its
    /// executable instead.
    keep: std::ops::Range<usize>,
    /// Bytes of all-zero anonymous pages `find` dropped.
    zero: usize,
}

impl IdlePages {
    /// Read /proc/self/smaps for what can go, and give the heap's free
    /// pages back now (the heap is done with: nothing runs from here to
    /// the release that allocates, but for this function's own result),
    /// and the resident pages of anonymous memory that hold only zeros
    /// (see [`drop_zero_pages`]).
    pub fn find() -> io::Result<IdlePages> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let page = page_size();
        let mut pages = IdlePages {
            code: Vec::new(),
            stack: None,
            page,
            keep: rest_code(page),
            zero: 0,
        };
        let mut anonymous = Vec::new();
        for m in Mapping::parse_all(&smaps) {
            if m.path == "[stack]" && m.perms == "rw-p" {
                pages.stack = Some(m.start..m.start + m.len);
                continue;
            }
            let file = std::path::Path::new(m.path);
            let code = m.perms == "r-xp" || m.perms == "r--p";
            let ours = file == exe || is_shared_object(m.path);
            if code && ours && m.anonymous_kib == 0 {
                pages.code.push((m.start, m.len));
            }
            // Private anonymous memory: the heap, and mappings without a
            // file (the C library's zeroed data, an allocator's chunks).
            if m.perms == "rw-p" && (m.path.is_empty() || m.path == "[heap]") {
                anonymous.push((m.start, m.len));
            }
        }
        drop(smaps);
        trim_heap();
        if threads() == Some(1) {
            pages.zero = drop_zero_pages(&anonymous, page, &near_thread_pointer());
        }
        Ok(pages)
    }

    /// Give the pages back.
    pub fn release(self) -> io::Result<Released> {
        let released = self.drop_code()?;
        // Last, so that no deeper call follows to bring pages back.
        let stack = match &self.stack {
            Some(range) => release_stack_below_here(range.clone(), self.page)?,
            None => 0,
        };
        Ok(Released {
            code: released,
            stack,
            zero: self.zero,
        })
    }

    /// Give the pages back and sleep in poll(2) at once, for a process
    /// whose sleep is its whole idle life (the Lookout): between the
    /// release and the sleep only this function's own code runs (and
    /// libc's `madvise` and `poll`, which every process maps). The
    /// functions it runs share the linker section `.text.spyglass_rest`
    /// (which goes into `.text`), so they lie together on a page or two,
    /// and those pages are not dropped: nothing faults back in before the
    /// sleep, where each fault would bring 64 KiB of the executable with
    /// fault-around. The stack below this frame goes too. Returns what
    /// poll(2) returned.
    #[inline(never)]
    #[unsafe(link_section = ".text.spyglass_rest")]
    pub fn release_and_poll(
        self,
        fds: &mut [nix::poll::PollFd<'_>],
        timeout: nix::poll::PollTimeout,
    ) -> nix::Result<libc::c_int> {
        // An error here only leaves pages mapped: sleep all the same.
        let _ = self.drop_code();
        if let Some(range) = &self.stack {
            let _ = release_stack_below_here(range.clone(), self.page);
        }
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `PollFd` is `#[repr(transparent)]` over `libc::pollfd`
        // (nix's own `poll` makes the same cast), so `fds` is `nfds`
        // initialised pollfd structs that poll(2) may write `revents` of;
        // the borrow keeps them alive and the descriptors open meanwhile.
        // Called directly rather than through nix::poll::poll, a function
        // of its own elsewhere in the executable.
        let n = unsafe { libc::poll(fds.as_mut_ptr().cast(), nfds, i32::from(timeout)) };
        nix::errno::Errno::result(n)
    }

    /// Drop the code mappings' page-table entries; the bytes dropped.
    #[unsafe(link_section = ".text.spyglass_rest")]
    fn drop_code(&self) -> io::Result<usize> {
        let mut released = 0;
        for &(start, len) in &self.code {
            let end = start + len;
            let kept = self.keep.start.clamp(start, end)..self.keep.end.clamp(start, end);
            for (start, end) in [(start, kept.start), (kept.end, end)] {
                if end > start {
                    released += drop_pages(start, end - start)?;
                }
            }
        }
        Ok(released)
    }
}

/// The memory around this thread's control block and static TLS, which
/// [`drop_zero_pages`] leaves alone: the kernel writes the thread's rseq
/// area there (the CPU it runs on) on its return to user space, a writer
/// that a single thread does not rule out. Found by the address of a
/// thread-local of ours, which lies in the same static TLS block; 64 KiB
/// either way covers the block and the control block beside it.
fn near_thread_pointer() -> std::ops::Range<usize> {
    thread_local! {
        static HERE: u8 = const { 0 };
    }
    let here = HERE.with(|h| h as *const u8 as usize);
    here.saturating_sub(64 << 10)..here.saturating_add(64 << 10)
}

/// How many bytes of resident anonymous memory [`drop_zero_pages`] reads
/// at most.
const ZERO_SCAN_LIMIT: usize = 4 << 20;

/// The threads of this process (`Threads:` of /proc/self/status).
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Threads:"))?;
    line.trim().parse().ok()
}

/// Drop the resident pages of `ranges` (private anonymous mappings: the
/// heap and the like, never the stack) that hold only zeros; the bytes
/// dropped. A table allocated zeroed and never written since costs memory
/// all the same once the allocator has cleared it (tracing's registry
/// keeps 32 KiB of those in every process). The caller makes sure that
/// this is the only thread: between the check of a page and its drop
/// there must be no other writer; pages that meet `avoid` (see
/// [`near_thread_pointer`]) are not touched. At most [`ZERO_SCAN_LIMIT`]
/// bytes are read, in address order (the heap first): an application whose
/// workers keep a large heap pays about a millisecond per idle period, not
/// a scan of all of it.
fn drop_zero_pages(
    ranges: &[(usize, usize)],
    page: usize,
    avoid: &std::ops::Range<usize>,
) -> usize {
    let (Ok(mem), Ok(pagemap)) = (
        std::fs::File::open("/proc/self/mem"),
        std::fs::File::open("/proc/self/pagemap"),
    ) else {
        return 0;
    };
    let most = ranges.iter().map(|&(_, len)| len / page).max().unwrap_or(0);
    // Which pages are in RAM: pagemap (mincore(2) would say the same, but
    // the shipped unit's system-call filter does not allow it).
    let mut entries = vec![0u8; most * 8];
    let mut bytes = vec![0u8; page];
    let mut dropped = 0;
    let mut budget = ZERO_SCAN_LIMIT / page;
    for &(start, len) in ranges {
        let entries = &mut entries[..len / page * 8];
        let at = (start / page * 8) as u64;
        if std::os::unix::fs::FileExt::read_exact_at(&pagemap, entries, at).is_err() {
            continue;
        }
        let resident = entries
            .chunks_exact(8)
            .map(|e| <[u8; 8]>::try_from(e).is_ok_and(in_ram))
            .enumerate()
            .filter_map(|(i, present)| present.then_some(i));
        for i in resident {
            if budget == 0 {
                return dropped;
            }
            let at = start + i * page;
            if at < avoid.end && avoid.start < at + page {
                continue;
            }
            budget -= 1;
            // Through /proc/self/mem: the kernel copies the page, and no
            // Rust reference to memory that other code owns is made.
            let read = std::os::unix::fs::FileExt::read_exact_at(&mem, &mut bytes, at as u64);
            if read.is_err() || bytes.iter().any(|&b| b != 0) {
                continue;
            }
            // SAFETY: `at` is a page of a private anonymous mapping whose
            // bytes were all zero when read just now, and nothing has
            // written to it since: this is the only thread, no signal
            // handler ever runs (signals are read from a signalfd), the
            // kernel's rseq updates go to the thread's control block,
            // whose surroundings are skipped (`avoid`), and the one write
            // in between is the read's own into `bytes`, which copied
            // zeros (had `bytes` been in this page, what it held was part
            // of what was checked). MADV_DONTNEED frees such a page; the
            // next read sees zeros and the next write gets a fresh zeroed
            // page: the same bytes as before.
            let r = unsafe { libc::madvise(at as *mut libc::c_void, page, libc::MADV_DONTNEED) };
            if r == 0 {
                dropped += page;
            }
        }
    }
    dropped
}

/// Whether a /proc/PID/pagemap entry (pagemap(5): 64 bits per page, in
/// the machine's byte order) says the page is in RAM: bit 63.
fn in_ram(entry: [u8; 8]) -> bool {
    u64::from_ne_bytes(entry) >> 63 == 1
}

/// [`IdlePages::release_and_poll`]'s type, for its address.
type ReleaseAndPoll =
    fn(IdlePages, &mut [nix::poll::PollFd<'_>], nix::poll::PollTimeout) -> nix::Result<libc::c_int>;

/// The page-aligned range that holds the functions of
/// `.text.spyglass_rest` (each shorter than a page; should one not be,
/// its tail only faults back in). Empty should a linker have put them
/// apart: keeping what lies between would hold more than it saves.
fn rest_code(page: usize) -> std::ops::Range<usize> {
    let starts = [
        IdlePages::release_and_poll as ReleaseAndPoll as usize,
        IdlePages::drop_code as fn(&IdlePages) -> io::Result<usize> as usize,
        drop_pages as fn(usize, usize) -> io::Result<usize> as usize,
        release_stack_below_here as fn(std::ops::Range<usize>, usize) -> io::Result<usize> as usize,
    ];
    let low = starts.iter().min().copied().unwrap_or(0) / page * page;
    let high = starts.iter().max().copied().unwrap_or(0) / page * page + 2 * page;
    if high - low > 4 * page {
        return 0..0;
    }
    low..high
}

/// MADV_DONTNEED on part of a code mapping that [`IdlePages::find`] chose;
/// the bytes dropped.
#[inline(never)]
#[unsafe(link_section = ".text.spyglass_rest")]
fn drop_pages(start: usize, len: usize) -> io::Result<usize> {
    // SAFETY: the range is (part of) a private, read-only mapping of the
    // executable or of a shared library, with no page that differs from
    // the file: so smaps said when `find` read it, just before (its callers
    // run nothing in between that could unmap a library), it had no
    // anonymous page, and being read-only none can have appeared since.
    // MADV_DONTNEED on such a file-backed private mapping drops the
    // page-table entries only; the next access maps the same bytes from the
    // file again (from the old inode, if the file was replaced since: the
    // mapping holds it). Code that runs later simply faults back in.
    let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len)
}

/// How much of the stack below the frame that releases it stays: room for
/// the one call it still makes (madvise, a few words of stack), and more.
const STACK_KEPT: usize = 4 << 10;

/// Drop the pages of the main thread's stack mapping (`stack`, from
/// smaps) that lie more than [`STACK_KEPT`] below this frame. Not inlined:
/// its own frame is the one measured from.
#[inline(never)]
#[unsafe(link_section = ".text.spyglass_rest")]
fn release_stack_below_here(stack: std::ops::Range<usize>, page: usize) -> io::Result<usize> {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    if !stack.contains(&here) {
        return Ok(0); // another thread's stack
    }
    let low = stack.start;
    let high = here.saturating_sub(STACK_KEPT) / page * page;
    if high <= low {
        return Ok(0);
    }
    // SAFETY: [low, high) lies inside the main thread's stack mapping
    // (`low` is its start, from smaps; `high` is below this frame, which is
    // on it: checked above) and more than STACK_KEPT below the frame of
    // this function, which the only thread using that stack is running:
    // no live frame is there, only what deeper calls left behind. The
    // madvise call's own frames use a few hundred bytes below this one,
    // far above `high`. MADV_DONTNEED on private anonymous memory frees
    // the pages; touching them again gives zeroed pages, as a fresh stack
    // would. A signal handler that runs later gets such pages too.
    let r = unsafe { libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(high - low)
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// A file name such as `libc.so.6` or `libgcc_s.so.1`.
fn is_shared_object(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.ends_with(".so") || name.contains(".so.")
}

/// One mapping of /proc/self/smaps, as far as [`release_idle_pages`]
/// needs it.
struct Mapping<'a> {
    start: usize,
    len: usize,
    perms: &'a str,
    path: &'a str,
    anonymous_kib: u64,
}

impl<'a> Mapping<'a> {
    /// Every mapping whose header line parses. A mapping whose
    /// `Anonymous:` line is missing counts as anonymous (never dropped).
    fn parse_all(smaps: &'a str) -> Vec<Mapping<'a>> {
        let mut out: Vec<Mapping<'a>> = Vec::new();
        for line in smaps.lines() {
            if let Some(kib) = line.strip_prefix("Anonymous:") {
                if let Some(m) = out.last_mut() {
                    m.anonymous_kib = kib
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .unwrap_or(u64::MAX);
                }
                continue;
            }
            if let Some(m) = Mapping::header(line) {
                out.push(m);
            }
        }
        out
    }

    /// `start-end perms offset dev inode path`; the path may hold spaces.
    fn header(line: &'a str) -> Option<Mapping<'a>> {
        let mut f = line.splitn(6, ' ');
        let (a, b) = f.next()?.split_once('-')?;
        let start = usize::from_str_radix(a, 16).ok()?;
        let end = usize::from_str_radix(b, 16).ok()?;
        let perms = f.next()?;
        if perms.len() != 4 {
            return None;
        }
        let (_offset, _dev, _inode) = (f.next()?, f.next()?, f.next()?);
        let path = f.next().unwrap_or("").trim_start();
        Some(Mapping {
            start,
            len: end.checked_sub(start)?,
            perms,
            path,
            anonymous_kib: u64::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_headers_and_their_anonymous_lines() {
        let smaps = "\
55d0a1a00000-55d0a1a89000 r--p 00000000 08:01 1234 /usr/bin/spy glass
Size:                548 kB
Anonymous:             0 kB
7f00000000-7f00002000 rw-p 00000000 00:00 0
Anonymous:             8 kB
7f00003000-7f00010000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  52 kB
7fff0000-7fff2000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";
        let m = Mapping::parse_all(smaps);
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].start, m[0].len), (0x55d0a1a00000, 0x89000));
        assert_eq!(
            (m[0].perms, m[0].path, m[0].anonymous_kib),
            ("r--p", "/usr/bin/spy glass", 0)
        );
        assert_eq!((m[1].path, m[1].anonymous_kib), ("", 8));
        // No Anonymous: line: taken as anonymous, never dropped.
        assert_eq!(m[2].anonymous_kib, u64::MAX);
        assert_eq!(m[3].path, "[vdso]");
        assert!(Mapping::header("not a mapping").is_none());
        assert!(Mapping::header("2000-1000 r-xp 0 0:0 0 /x").is_none());
    }

    #[test]
    fn shared_objects_by_name() {
        assert!(is_shared_object("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(is_shared_object("/lib64/ld-linux-x86-64.so.2"));
        assert!(is_shared_object("/opt/app/libfoo.so"));
        assert!(!is_shared_object("/srv/www/index.html"));
        assert!(!is_shared_object("/usr/share/so.txt"));
        assert!(!is_shared_object("[vdso]"));
    }

    #[test]
    fn released_code_comes_back_on_use() {
        let released = release_idle_pages().expect("smaps readable");
        // libc's and this test binary's code at least.
        assert!(released.code > 1 << 20, "released only {released:?}");
        // Called on a thread of its own, it leaves the [stack] mapping (the
        // main thread's) alone.
        let elsewhere = std::thread::spawn(release_idle_pages)
            .join()
            .expect("no panic");
        assert_eq!(elsewhere.expect("smaps readable").stack, 0);
        // Everything still runs: code, formatting tables, libc.
        let text = format!("{:?}", std::fs::read_link("/proc/self/exe"));
        assert!(text.contains("Ok("), "{text}");
        assert!(release_idle_pages().is_ok());
    }

    #[test]
    fn pages_of_zeros_are_dropped_and_read_back_as_zeros() {
        let page = page_size();
        let len = 8 * page;
        // SAFETY: a fresh private anonymous mapping that only this test
        // uses (no other thread knows its address), unmapped at the end.
        let region = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                NonZeroUsize::new(len).unwrap(),
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_PRIVATE,
            )
        }
        .expect("mmap");
        let start = region.as_ptr() as usize;
        // SAFETY: `len` bytes at `start` are the mapping above, ours alone.
        let bytes = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
        // Every page touched (resident, all zeros), then page 3 written.
        for i in 0..8 {
            // Volatile: a store of zero to memory known to be zero must
            // still happen, to make the page resident.
            // SAFETY: a pointer from a live `&mut u8` of the mapping.
            unsafe { std::ptr::write_volatile(&mut bytes[i * page], 0) };
        }
        bytes[3 * page + 17] = 42;
        let resident = |i: usize| {
            let mut e = [0u8; 8];
            let f = std::fs::File::open("/proc/self/pagemap").expect("pagemap");
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut e, ((start / page + i) * 8) as u64)
                .expect("pagemap entry");
            in_ram(e)
        };
        assert!((0..8).all(resident));
        // Page 5 is declared off limits, as the thread's block would be.
        let avoid = start + 5 * page + 100..start + 5 * page + 200;
        assert_eq!(drop_zero_pages(&[(start, len)], page, &avoid), 6 * page);
        assert_eq!((0..8).filter(|&i| resident(i)).collect::<Vec<_>>(), [3, 5]);
        assert_eq!(bytes[3 * page + 17], 42);
        assert_eq!(bytes.iter().filter(|&&b| b != 0).count(), 1);
        // SAFETY: the mapping made above; `bytes` is not used after this.
        unsafe { nix::sys::mman::munmap(region, len) }.expect("munmap");
    }

    #[test]
    fn the_poll_after_a_release_sees_its_events_and_code_comes_back() {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let (quiet, _quiet_w) = nix::unistd::pipe().expect("pipe");
        nix::unistd::write(&w, b"x").expect("write");
        let pages = IdlePages::find().expect("smaps readable");
        assert!(!pages.code.is_empty());
        // The step's own code stays mapped: a few pages inside the
        // executable's code, around release_and_poll.
        let here = IdlePages::release_and_poll as ReleaseAndPoll as usize;
        assert!(pages.keep.contains(&here), "{:x?} {here:x}", pages.keep);
        assert!(pages.keep.len() <= 4 * pages.page, "{:x?}", pages.keep);
        assert!(
            pages
                .code
                .iter()
                .any(|&(start, len)| (start..start + len).contains(&here))
        );
        let mut fds = [
            PollFd::new(quiet.as_fd(), PollFlags::POLLIN),
            PollFd::new(r.as_fd(), PollFlags::POLLIN),
        ];
        let ready = pages
            .release_and_poll(&mut fds, PollTimeout::from(1000u16))
            .expect("poll");
        assert_eq!(ready, 1);
        assert_eq!(fds[0].revents(), Some(PollFlags::empty()));
        assert!(
            fds[1]
                .revents()
                .is_some_and(|e| e.contains(PollFlags::POLLIN))
        );
        let mut byte = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut byte), Ok(1));
        assert_eq!(format!("{byte:?}"), "[120]");
    }
}
