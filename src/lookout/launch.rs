//! How the Lookout starts a master, prepared once and used at every
//! activation: the program (the binary on disk now, as systemd's
//! `ExecStart=` would run it), the argv (ours, less the subcommand word and
//! the Lookout's flags) and the environment (ours, less what belongs to the
//! Lookout, plus `LISTEN_FDS`, `LISTEN_FDNAMES` and `NOTIFY_SOCKET`;
//! `LISTEN_PID` is set by the child itself, see [`crate::sys::spawn_activated`]).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;

use nix::unistd::Pid;

use crate::config::LookoutConfig;
use crate::listeners::Listeners;
use crate::signals::Signals;
use crate::sys::{self, Activation};

/// The master's program, argv and environment.
pub struct Launch {
    exe: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

impl Launch {
    /// The master's program, argv and environment: ours, less what belongs
    /// to the Lookout, plus the activation variables.
    pub fn new(lookout: &LookoutConfig, listeners: &Listeners, notify_socket: &str) -> Launch {
        let exe = sys::own_binary();
        let cstring = |b: Vec<u8>| CString::new(b).unwrap_or_default();
        let argv0 = std::env::args_os()
            .next()
            .unwrap_or_else(|| exe.clone().into_os_string());
        let argv = std::iter::once(argv0)
            .chain(lookout.master_args.iter().cloned())
            .map(|a| cstring(a.into_vec()))
            .collect();
        // Set for each start (LISTEN_PID by the child itself), or meant for
        // the Lookout's own supervisor, never the master's. The sockets
        // start at fd 3: a LISTEN_FDS_FIRST_FD meant for the Lookout would
        // send the master's listenfd looking elsewhere.
        let replaced = [
            "LISTEN_FDS",
            "LISTEN_FDS_FIRST_FD",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        ];
        let keep = |k: &OsStr| {
            let k = k.to_string_lossy();
            !replaced.contains(&k.as_ref())
                && !crate::reexec::is_handover_var(&k)
                && !lookout.master_env_removed.iter().any(|r| *r == k)
        };
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, v)| {
                let mut b = k.into_vec();
                b.push(b'=');
                b.extend(v.into_vec());
                CString::new(b).ok()
            })
            .collect();
        let names: Vec<String> = listeners.list.iter().map(|l| fd_name(&l.name)).collect();
        env.push(cstring(
            format!("LISTEN_FDS={}", listeners.list.len()).into_bytes(),
        ));
        env.push(cstring(
            format!("LISTEN_FDNAMES={}", names.join(":")).into_bytes(),
        ));
        env.push(cstring(
            format!("NOTIFY_SOCKET={notify_socket}").into_bytes(),
        ));
        Launch {
            exe: cstring(exe.into_os_string().into_vec()),
            argv,
            env,
        }
    }

    /// The program, for the log.
    pub fn exe(&self) -> String {
        String::from_utf8_lossy(self.exe.as_bytes()).into_owned()
    }

    /// Fork and exec a master with these sockets; its pid once it runs.
    pub fn start(&self, listeners: &Listeners) -> io::Result<Pid> {
        let fds: Vec<BorrowedFd<'_>> = listeners.list.iter().map(|l| l.as_fd()).collect();
        sys::spawn_activated(&Activation {
            exe: &self.exe,
            argv: &self.argv,
            env: &self.env,
            fds: &fds,
            parent_death: Signals::PARENT_DEATH,
        })
    }
}

/// A listener's name for `LISTEN_FDNAMES`: the name `--listen NAME=ADDR`
/// gave it (already valid), or its address with `:` (the separator) and
/// anything unprintable as `_`, at most 255 bytes, as
/// sd_listen_fds_with_names(3) allows: `127.0.0.1_8080`, `unix_/run/s.sock`.
fn fd_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == ':' || !c.is_ascii_graphic() {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_are_valid() {
        assert_eq!(fd_name("127.0.0.1:8080"), "127.0.0.1_8080");
        assert_eq!(fd_name("[::1]:80"), "[__1]_80");
        assert_eq!(fd_name("unix:/run/a b.sock"), "unix_/run/a_b.sock");
        assert_eq!(fd_name(&"x".repeat(300)).len(), 255);
    }
}
