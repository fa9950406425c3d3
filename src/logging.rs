//! Logging: the native journal protocol when spyglass runs under systemd
//! (events keep their fields, so `journalctl -u spyglass F_STATUS=404`
//! works), plain text on stderr otherwise.
//!
//! Set up once in the master before the first fork; the subscriber writes
//! synchronously (no thread), so workers inherit a working logger. The
//! journald socket is a datagram socket: worker events arrive with the
//! worker's own `_PID`.

use std::os::fd::AsFd;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

use crate::config::LogTarget;

/// The `tracing` target of access events.
pub const ACCESS: &str = "spyglass::access";

/// Install the global subscriber. Returns a warning to log once logging
/// works, if the requested target was not available.
pub fn init(target: LogTarget, level: tracing::Level) -> Option<String> {
    let mut warning = None;
    let want_journal = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => stderr_is_journal(),
    };
    let journal = if want_journal {
        match tracing_journald::layer() {
            Ok(layer) => Some(
                layer.with_priority_mappings(tracing_journald::PriorityMappings {
                    info: tracing_journald::Priority::Informational,
                    debug: tracing_journald::Priority::Debug,
                    ..tracing_journald::PriorityMappings::new()
                }),
            ),
            Err(e) => {
                warning = Some(format!("journald unavailable ({e}); logging to stderr"));
                None
            }
        }
    } else {
        None
    };
    let text = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    let installed = tracing_subscriber::registry()
        .with(LevelFilter::from_level(level))
        .with(journal)
        .with(text)
        .try_init();
    if installed.is_err() {
        // A library user installed their own subscriber: theirs wins.
        warning = None;
    }
    warning
}

/// systemd connects stderr to journald and says so in `JOURNAL_STREAM`
/// (`device:inode` of that stream): trust it only if stderr is that stream.
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr().as_fd())
        .is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}
