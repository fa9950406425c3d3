//! The scoreboard: one cache line of counters per worker slot, in memory
//! shared by the master and all workers (created before the first fork).
//!
//! Workers write only their own slot; the master reads all of them to decide
//! idleness, to spot a stuck worker and to build its `STATUS=` line. Plain
//! relaxed atomics suffice: each value is a single word with one writer, and
//! nothing is derived from the order of two different words.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nix::time::{ClockId, clock_gettime};

/// Milliseconds on the monotonic clock, comparable across processes.
pub fn now_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000,
        Err(_) => 0, // cannot fail for CLOCK_MONOTONIC on Linux
    }
}

const SLOT_WORDS: usize = 8; // 64 bytes: one cache line per worker

#[derive(Clone, Copy)]
#[repr(usize)]
enum Word {
    /// Requests answered since the slot was (re)assigned.
    Served,
    /// Connections with work in progress (see [`WorkerSlot::set_busy`]).
    Busy,
    /// Monotonic ms of the last accept or finished request.
    LastActive,
    /// Monotonic ms of the last turn of the worker's event loop.
    Heartbeat,
}

/// Slots for up to `capacity` workers.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    words: &'static [AtomicU64],
    capacity: usize,
}

/// One worker's view of its own slot.
#[derive(Clone, Copy)]
pub struct WorkerSlot {
    words: &'static [AtomicU64],
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

    /// Zero the slot and stamp it, before a worker is forked into it.
    pub fn reset(&self, now: u64) {
        for w in self.words {
            w.store(0, Relaxed);
        }
        self.set(Word::LastActive, now);
        self.set(Word::Heartbeat, now);
    }

    /// Requests answered.
    pub fn served(&self) -> u64 {
        self.get(Word::Served)
    }
    /// One more request answered.
    pub fn add_served(&self) {
        self.words[Word::Served as usize].fetch_add(1, Relaxed);
    }

    /// Connections with work in progress: from accept until the first
    /// response is sent, and from the first byte of each later request until
    /// its response is sent. An idle keep-alive connection is not busy.
    pub fn busy(&self) -> u64 {
        self.get(Word::Busy)
    }
    /// Publish the busy count.
    pub fn set_busy(&self, n: u64) {
        self.set(Word::Busy, n)
    }

    /// When the worker last accepted a connection or finished a request.
    pub fn last_active(&self) -> u64 {
        self.get(Word::LastActive)
    }
    /// Record activity now.
    pub fn touch(&self, now: u64) {
        self.set(Word::LastActive, now)
    }

    /// When the worker's event loop last turned.
    pub fn heartbeat(&self) -> u64 {
        self.get(Word::Heartbeat)
    }
    /// The event loop turned.
    pub fn beat(&self, now: u64) {
        self.set(Word::Heartbeat, now)
    }
}
