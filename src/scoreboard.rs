//! The scoreboard: one cache line of counters per worker slot, in memory
//! shared by the master and all workers (created before the first fork).
//!
//! Each worker writes only its own slot, in one place (once per turn of its
//! event loop); the master reads all of them to decide idleness, to spot a
//! stuck worker and to build its `STATUS=` line. Plain
//! relaxed atomics suffice: each value is a single word with one writer, and
//! nothing is derived from the order of two different words.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nix::time::{ClockId, clock_gettime};

use crate::conn::Tally;

/// Milliseconds on the monotonic clock, comparable across processes.
pub fn now_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000,
        Err(_) => 0, // cannot fail for CLOCK_MONOTONIC on Linux
    }
}

const SLOT_WORDS: usize = 16; // 128 bytes: two cache lines per worker

#[derive(Clone, Copy)]
#[repr(usize)]
enum Word {
    /// Requests answered since the slot was (re)assigned.
    Served,
    /// Connections with a request in flight.
    Busy,
    /// Monotonic ms of the last accept, finished request or closed
    /// connection.
    LastActive,
    /// Monotonic ms of the last turn of the worker's event loop.
    Heartbeat,
    /// Open connections.
    Open,
    /// Response body bytes sent.
    Bytes,
    /// Log events journald did not take (stalled).
    LogDropped,
    /// Responses by status class: 1xx (interim, never counted) to 5xx.
    Class1,
    Class2,
    Class3,
    Class4,
    Class5,
}

/// Slots for up to `capacity` workers.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    words: &'static [AtomicU64],
    capacity: usize,
}

/// One worker's slot: written by that worker alone ([`WorkerSlot::publish`],
/// once per turn of its event loop), read by the master.
#[derive(Clone, Copy)]
pub struct WorkerSlot {
    words: &'static [AtomicU64],
}

/// What a worker publishes each turn of its loop.
pub struct Published<'a> {
    /// Now, on the monotonic clock: the loop is turning.
    pub heartbeat: u64,
    /// Connections with a request in flight.
    pub busy: u64,
    /// Open connections.
    pub open: u64,
    /// Log events journald did not take.
    pub log_dropped: u64,
    /// The worker's running totals.
    pub tally: &'a Tally,
}

impl Scoreboard {
    /// Map a scoreboard for `capacity` workers.
    pub fn new(capacity: usize) -> io::Result<Scoreboard> {
        let words = crate::sys::shared_words(capacity * SLOT_WORDS)?;
        Ok(Scoreboard { words, capacity })
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slot `i`.
    pub fn slot(&self, i: usize) -> WorkerSlot {
        WorkerSlot {
            words: &self.words[i * SLOT_WORDS..(i + 1) * SLOT_WORDS],
        }
    }
}

impl WorkerSlot {
    fn get(&self, w: Word) -> u64 {
        self.words[w as usize].load(Relaxed)
    }
    fn set(&self, w: Word, v: u64) {
        self.words[w as usize].store(v, Relaxed)
    }

    /// Zero the slot and stamp it, before a worker is forked into it (the
    /// master's only write: no worker owns the slot at that moment).
    pub fn reset(&self, now: u64) {
        for w in self.words {
            w.store(0, Relaxed);
        }
        self.set(Word::LastActive, now);
        self.set(Word::Heartbeat, now);
    }

    /// The worker's one write per loop turn.
    pub fn publish(&self, p: &Published<'_>) {
        let t = p.tally;
        self.set(Word::Heartbeat, p.heartbeat);
        self.set(Word::Busy, p.busy);
        self.set(Word::Open, p.open);
        self.set(Word::LogDropped, p.log_dropped);
        self.set(Word::Served, t.served);
        self.set(Word::Bytes, t.bytes);
        if t.last_active > 0 {
            self.set(Word::LastActive, t.last_active);
        }
        for (i, w) in [
            Word::Class1,
            Word::Class2,
            Word::Class3,
            Word::Class4,
            Word::Class5,
        ]
        .into_iter()
        .enumerate()
        {
            self.set(w, t.by_class[i]);
        }
    }

    /// Requests answered.
    pub fn served(&self) -> u64 {
        self.get(Word::Served)
    }

    /// Connections with work in progress: from accept until the first
    /// response is sent, and from the first byte of each later request until
    /// its response is sent. An idle keep-alive connection is not busy.
    pub fn busy(&self) -> u64 {
        self.get(Word::Busy)
    }

    /// Log events journald did not take.
    pub fn log_dropped(&self) -> u64 {
        self.get(Word::LogDropped)
    }

    /// When the worker last accepted a connection or finished a request.
    pub fn last_active(&self) -> u64 {
        self.get(Word::LastActive)
    }

    /// When the worker's event loop last turned.
    pub fn heartbeat(&self) -> u64 {
        self.get(Word::Heartbeat)
    }
}
