# What the sandbox of spyglass.service allows and refuses, tried from inside
# it (tests/it/under_systemd.rs runs this as a oneshot unit with the shipped
# sandbox section). One line per check: "PROBE name=result", where result is
# "ok" or the errno's name. Every check leaves nothing behind even where the
# sandbox lets it through: files are O_TMPFILE (unnamed), the hostname is
# set to what it is, nothing is written to what is opened.
import ctypes
import errno
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def syscall(*args):
    r = libc.syscall(*args)
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")


def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, "?")


def report(name, result):
    print(f"PROBE {name}={result}", flush=True)


# x86-64 system call numbers (the unit allows the native ABI only).
SYS_SYSLOG, SYS_SHMGET, SYS_FINIT_MODULE = 103, 29, 313
SYSLOG_ACTION_SIZE_BUFFER, CLOSE_RANGE_CLOEXEC = 10, 4
RESOLVE_NO_MAGICLINKS, RESOLVE_BENEATH = 0x02, 0x08
SYS_PIDFD_OPEN, SYS_CLOSE_RANGE, SYS_OPENAT2 = 434, 436, 437
AT_FDCWD = -100

# What spyglass itself needs.
how = struct.pack("QQQ", os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
report("openat2", syscall(SYS_OPENAT2, AT_FDCWD, b".", how, len(how)))
report("pidfd_open", syscall(SYS_PIDFD_OPEN, os.getpid(), 0))
report("close_range", syscall(SYS_CLOSE_RANGE, 100, 200, CLOSE_RANGE_CLOEXEC))
report("uid", "root" if os.getuid() == 0 else "unprivileged")

# What the sandbox must refuse.
# A device outside the allowed set (argv[1]; default /dev/kmsg).
device = sys.argv[1] if len(sys.argv) > 1 else "/dev/kmsg"
report("dev_unlisted", attempt(lambda: os.close(os.open(device, os.O_RDONLY | os.O_NOCTTY))))
report("syslog", syscall(SYS_SYSLOG, SYSLOG_ACTION_SIZE_BUFFER, None, 0))
report("proc_sys_write", attempt(lambda: os.close(os.open("/proc/sys/kernel/hostname", os.O_WRONLY))))
report("proc_pid1", "visible" if os.path.exists("/proc/1") else "hidden")
report("cgroup_write", attempt(lambda: os.close(os.open("/sys/fs/cgroup/cgroup.procs", os.O_WRONLY))))
report("root_fs_create", attempt(lambda: os.close(os.open("/var/lib", os.O_TMPFILE | os.O_WRONLY, 0o600))))
report("home", "empty" if not os.listdir("/root") and not os.listdir("/home") else "visible")
report("tmp_nosuid", "nosuid" if os.statvfs("/tmp").f_flag & os.ST_NOSUID else "suid")
report("dev_shm_nosuid", "nosuid" if os.statvfs("/dev/shm").f_flag & os.ST_NOSUID else "suid")
report("sethostname", attempt(lambda: socket.sethostname(socket.gethostname())))
report("finit_module", syscall(SYS_FINIT_MODULE, -1, b"", 0))
# An existing key is not needed: refused (EPERM) differs from absent (ENOENT).
report("shmget", syscall(SYS_SHMGET, 0x5350_5947, 4096, 0o600))
report("inet_socket", attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()))
