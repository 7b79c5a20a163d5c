//! The run's shared control block: which step is running and its measurement window, the push
//! rate, and progress counters. Written by the orchestrator (`lib.rs`), read by the client
//! shards and the pusher thread. Plain atomics, read with `Relaxed`: every reader only needs
//! an eventually-current value, and there is no per-event write contention.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Control {
    /// Index of the current step.
    pub step: AtomicUsize,
    /// Per step: measurement window [start, end) in Unix ms.
    pub windows: Vec<(AtomicI64, AtomicI64)>,
    /// Pushes per second over all pushers; 0 = not pushing (or closed loop when `closed_loop`).
    pub rate: AtomicU64,
    /// Bumped whenever `rate` changes, so pushers restart their schedule.
    pub epoch: AtomicU64,
    pub pushing: AtomicBool,
    pub done: AtomicBool,
    pub joined: AtomicUsize,
    pub failed: AtomicUsize,
    /// Clients joined per room (the broker delivers each of the room's events to each).
    pub joined_per_room: Vec<AtomicUsize>,
    /// Of those, the clients that check every event (for the expected number of deliveries).
    pub checking_per_room: Vec<AtomicUsize>,
    pub pushers_ready: AtomicUsize,
    pub pushers_failed: AtomicUsize,
}

impl Control {
    pub fn new(steps: usize, rooms: usize) -> Self {
        Self {
            step: AtomicUsize::new(0),
            windows: (0..steps).map(|_| (AtomicI64::new(i64::MAX), AtomicI64::new(i64::MAX))).collect(),
            rate: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            pushing: AtomicBool::new(false),
            done: AtomicBool::new(false),
            joined: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            joined_per_room: (0..rooms).map(|_| AtomicUsize::new(0)).collect(),
            checking_per_room: (0..rooms).map(|_| AtomicUsize::new(0)).collect(),
            pushers_ready: AtomicUsize::new(0),
            pushers_failed: AtomicUsize::new(0),
        }
    }

    pub fn current_step(&self) -> usize {
        self.step.load(Relaxed)
    }

    /// The step whose measurement window holds `ts_ms`: the current step or the one before
    /// (whose last events may still be arriving).
    pub fn step_of(&self, ts_ms: i64) -> Option<usize> {
        let cur = self.current_step();
        [Some(cur), cur.checked_sub(1)].into_iter().flatten().find(|&s| {
            let (start, end) = &self.windows[s];
            ts_ms >= start.load(Relaxed) && ts_ms < end.load(Relaxed)
        })
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
