//! When the Lookout may start the next master, after the last one ended.
//! Pure policy: how a master ended in, a delay out.
//!
//! - A clean exit (status 0 after READY=1: idle, or stopped) is the normal
//!   cycle: the next connection starts the next master at once.
//! - Exit status 2 (bad usage) or 78 (EX_CONFIG), at any point (the master
//!   refuses a broken configuration before READY=1, or after answering 503
//!   for a while in its degraded mode): a configuration does not fix
//!   itself, so wait long ([`CONFIG_DELAY`]), whatever happened before.
//! - Anything else (a crash, a signal, an exit before READY=1, no READY=1
//!   within the boot timeout): wait 1 s, then 2, 4, ... up to
//!   [`MAX_DELAY`] while failures follow each other. The count starts over
//!   after a clean exit, or once a master has been ready for
//!   [`STABLE_AFTER`] (so an isolated crash after a long, healthy run
//!   waits 1 s, not the last delay).

use std::time::Duration;

use crate::server::{EXIT_CONFIG, EXIT_USAGE};

/// After a configuration error.
pub const CONFIG_DELAY: Duration = Duration::from_secs(60);
/// The first delay after a crash, doubled for each further one.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay after crashes.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A master ready this long has proved itself: the failure count restarts.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Exit statuses that mean "the configuration is wrong": bad usage (2) and
/// EX_CONFIG (78).
pub const CONFIG_STATUSES: [i32; 2] = [EXIT_USAGE, EXIT_CONFIG];

/// How a master ended, as far as the back-off cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Exit status 0 after READY=1.
    Clean,
    /// Exit status 2 or 78.
    Config,
    /// Ended before READY=1 (a crash, a signal, any other exit).
    FailedBoot,
    /// Sent no READY=1 within the boot timeout; killed.
    Hung,
    /// Crashed or failed after READY=1.
    Crashed,
}

impl End {
    /// Classify an exit: `code` is the exit status, or None if a signal
    /// ended it; `ready` whether READY=1 came; `hung` whether we killed it
    /// for not sending it in time.
    pub fn of(code: Option<i32>, ready: bool, hung: bool) -> End {
        match code {
            Some(c) if CONFIG_STATUSES.contains(&c) => End::Config,
            _ if hung => End::Hung,
            _ if !ready => End::FailedBoot,
            Some(0) => End::Clean,
            _ => End::Crashed,
        }
    }
}

/// Consecutive failures, and what they mean for the next start.
#[derive(Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A master ended this way after being ready for `ready_for` (if it
    /// was): how long to wait before starting another, if at all.
    pub fn after(&mut self, end: End, ready_for: Option<Duration>) -> Option<Duration> {
        if ready_for.is_some_and(|d| d >= STABLE_AFTER) {
            self.failures = 0;
        }
        match end {
            End::Clean => {
                self.failures = 0;
                None
            }
            End::Config => Some(CONFIG_DELAY),
            End::FailedBoot | End::Hung | End::Crashed => {
                self.failures = self.failures.saturating_add(1);
                let doubled = FIRST_DELAY.saturating_mul(1 << (self.failures - 1).min(16));
                Some(doubled.min(MAX_DELAY))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(End::of(Some(0), true, false), End::Clean);
        assert_eq!(End::of(Some(0), false, false), End::FailedBoot);
        assert_eq!(End::of(Some(78), false, false), End::Config);
        assert_eq!(End::of(Some(78), true, false), End::Config, "degraded mode");
        assert_eq!(End::of(Some(2), false, false), End::Config);
        assert_eq!(End::of(Some(1), false, false), End::FailedBoot);
        assert_eq!(End::of(None, false, false), End::FailedBoot);
        assert_eq!(End::of(None, false, true), End::Hung);
        assert_eq!(End::of(None, true, false), End::Crashed);
        assert_eq!(End::of(Some(101), true, false), End::Crashed);
    }

    #[test]
    fn delays_grow_and_reset() {
        let secs = |s| Some(Duration::from_secs(s));
        let mut b = Backoff::default();
        let got: Vec<_> = (0..9).map(|_| b.after(End::FailedBoot, None)).collect();
        assert_eq!(
            got,
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(32),
                secs(60),
                secs(60),
                secs(60)
            ]
        );
        assert_eq!(b.after(End::Config, None), secs(60));
        assert_eq!(b.after(End::Clean, secs(1)), None);
        assert_eq!(b.after(End::Hung, None), secs(1));
        assert_eq!(b.after(End::Crashed, secs(5)), secs(2));
        // A long healthy run first: the count starts over.
        assert_eq!(b.after(End::Crashed, secs(3600)), secs(1));
    }
}
