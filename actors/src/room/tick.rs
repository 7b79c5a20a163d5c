//! Release ticks (docs/decisions.md, "Release ticks"): when a room's flush timer fires and how much it
//! releases. Pure functions, wired up by the room's engine (`LocalEngine`, and the Redis engine's owner).
//!
//! A released bundle costs every member one wake-up and one socket write, so a big room
//! releases in ticks: the tick grows with the room ([`TICK_PER_MEMBER`] per member, capped by
//! `room.release_tick_ms` and the window), each firing releases what falls due within the
//! coming tick, and firings are a tick apart. An item may leave up to one tick early, never
//! after it is due.

use std::time::{Duration, Instant};

/// A room of 2,000 members releases at most every 50 ms: at most 40,000 member writes per
/// second, whatever the push rate. A room of 10 waits 0.25 ms: item-by-item timing.
pub const TICK_PER_MEMBER: Duration = Duration::from_micros(25);

/// The release tick of a room with `members` members.
pub fn release_tick(members: usize, release_tick_ms: u64, reorder_window_ms: u64) -> Duration {
    let cap = Duration::from_millis(release_tick_ms.min(reorder_window_ms));
    TICK_PER_MEMBER.saturating_mul(u32::try_from(members).unwrap_or(u32::MAX)).min(cap)
}

/// When to fire for the next item due at `due`: a tick before it, but not sooner than a tick
/// after the last timed release, and never after `due`. The firing releases everything due
/// by firing time + `tick`.
pub fn release_at(due: Instant, last_release: Instant, tick: Duration) -> Instant {
    due.checked_sub(tick).unwrap_or(due).max(last_release + tick).min(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_tick_grows_with_the_room_up_to_its_cap() {
        assert_eq!(release_tick(0, 50, 300), Duration::ZERO);
        assert_eq!(release_tick(10, 50, 300), Duration::from_micros(250));
        assert_eq!(release_tick(2000, 50, 300), 50 * MS);
        assert_eq!(release_tick(100_000, 50, 300), 50 * MS);
        assert_eq!(release_tick(2000, 0, 300), Duration::ZERO, "0 turns ticks off");
        assert_eq!(release_tick(2000, 50, 20), 20 * MS, "never longer than the window");
    }

    #[test]
    fn a_busy_big_room_fires_once_a_tick_and_never_after_an_item_is_due() {
        // Items due every millisecond; the tick is 50 ms.
        let t0 = Instant::now();
        let tick = 50 * MS;
        let mut last = t0;
        let mut next_due = t0 + 300 * MS;
        let mut firings = Vec::new();
        while next_due < t0 + 1000 * MS {
            let at = release_at(next_due, last, tick);
            assert!(at <= next_due, "fired after the item was due");
            firings.push(at);
            last = at;
            // The firing released everything due by at + tick; the next one is due just after.
            next_due = at + tick + MS;
        }
        for pair in firings.windows(2) {
            assert!(pair[1] - pair[0] >= tick, "two firings less than a tick apart");
        }
    }

    #[test]
    fn a_quiet_room_fires_a_tick_before_the_item_is_due() {
        let t0 = Instant::now();
        let due = t0 + 300 * MS;
        assert_eq!(release_at(due, t0, 50 * MS), due - 50 * MS);
        assert_eq!(release_at(due, t0, Duration::ZERO), due, "no tick: exactly when due");
    }
}
