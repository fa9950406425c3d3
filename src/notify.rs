//! Messages to systemd (sd_notify(3)): READY, STATUS, STOPPING, RELOADING,
//! WATCHDOG, EXTEND_TIMEOUT_USEC. The master alone calls this: systemd only
//! accepts messages from the main PID (`NotifyAccess=main`), and only the
//! master knows true things to say (every worker booted, the totals).
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset. The sd-notify crate
//! does the sending; it cannot reach an abstract (`@name`) socket, which
//! containers use, so that one case is sent here directly.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use sd_notify::NotifyState;

/// A handle on `NOTIFY_SOCKET`, read once at startup.
pub struct Notifier {
    socket: Option<String>,
}

/// `STATUS=` text is one line; systemd shows it in `systemctl status`.
const MAX_STATUS: usize = 200;

impl Notifier {
    /// Read `NOTIFY_SOCKET` (it stays set; workers simply never notify).
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// `READY=1` with a status line: every worker has booted.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        let status = sanitise(status);
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)])
    }

    /// `STATUS=`: the one-line summary `systemctl status` shows.
    pub fn status(&self, status: &str) -> io::Result<()> {
        let status = sanitise(status);
        self.send(&[NotifyState::Status(&status)])
    }

    /// `STOPPING=1`, sent before every exit.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        let status = sanitise(status);
        self.send(&[NotifyState::Stopping, NotifyState::Status(&status)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, as `Type=notify-reload` needs.
    pub fn reloading(&self) -> io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let now = NotifyState::monotonic_usec_now()?;
        self.send(&[NotifyState::Reloading, now])
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send(&[NotifyState::Watchdog])
    }

    /// `EXTEND_TIMEOUT_USEC=`: ask for more time while draining.
    pub fn extend_timeout(&self, by: Duration) -> io::Result<()> {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)])
    }

    /// The watchdog interval systemd expects pings within, if it set one
    /// for this process (`WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        sd_notify::watchdog_enabled()
    }

    fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        match self.socket.as_deref() {
            None => Ok(()),
            Some(s) if s.starts_with('@') => send_abstract(&s[1..], states),
            Some(_) => sd_notify::notify(states),
        }
    }
}

fn send_abstract(name: &str, states: &[NotifyState<'_>]) -> io::Result<()> {
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let sent = UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &addr)?;
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short notify write",
        ));
    }
    Ok(())
}

/// One printable line: a newline in `STATUS=` would inject another
/// assignment into the message.
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_one_line() {
        assert_eq!(sanitise("a\nREADY=1\r\tb"), "a READY=1  b");
        assert_eq!(sanitise(&"x".repeat(500)).len(), MAX_STATUS);
    }
}
