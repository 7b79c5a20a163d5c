//! Times on the wire (every timestamp of docs/protocol.md is Unix milliseconds) and the only
//! arithmetic the broker does with a time it was given.
//!
//! A `timestamp`, `send_time` or `ts` from BIGO or a client is whatever JSON number or digit
//! string the peer wrote: `-9223372036854775808`, or `-1e19`, which reads as `i64::MIN`.
//! Subtracting two such values overflows: a panic where overflow checks are on (tests, dev
//! builds), a silently wrapped value in release. Fuzzing found six such sites (issue 26). So a
//! value that no clock could have told is not a time ([`plausible`] answers `None`, and the
//! caller treats it as absent or refuses the frame), and two times are compared with
//! [`within`], which cannot overflow whatever it is given.

/// The last millisecond of year 9999 (UTC). Below 2^53, so every time the broker passes on is
/// an integer a JavaScript client holds exactly.
pub const LATEST_MS: i64 = 253_402_300_799_999;
const _: () = assert!(LATEST_MS < 1 << 53);

/// Milliseconds since the Unix epoch, the unit of every protocol timestamp.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `ms` when some clock could have told it: from the Unix epoch to the end of year 9999.
pub fn plausible(ms: i64) -> Option<i64> {
    (0..=LATEST_MS).contains(&ms).then_some(ms)
}

/// True when `ts` lies at most `max_skew_ms` from `now` (either side), for any two values; a
/// negative `max_skew_ms` admits nothing.
pub fn within(now: i64, ts: i64, max_skew_ms: i64) -> bool {
    u64::try_from(max_skew_ms).is_ok_and(|max| now.abs_diff(ts) <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_plausible_from_the_epoch_to_the_end_of_year_9999() {
        assert_eq!(plausible(0), Some(0));
        assert_eq!(plausible(1_700_000_000_000), Some(1_700_000_000_000));
        assert_eq!(plausible(LATEST_MS), Some(LATEST_MS));
        for ms in [-1, LATEST_MS + 1, i64::MIN, i64::MAX] {
            assert_eq!(plausible(ms), None, "{ms}");
        }
    }

    #[test]
    fn within_compares_any_two_values_without_overflow() {
        assert!(within(1_000, 1_100, 100));
        assert!(within(1_100, 1_000, 100));
        assert!(!within(1_000, 1_101, 100));
        assert!(!within(1_000, i64::MIN, i64::MAX));
        assert!(!within(i64::MIN, i64::MAX, i64::MAX));
        assert!(within(i64::MAX, i64::MAX, 0));
        assert!(!within(1_000, 1_000, -1), "a negative skew admits nothing");
    }

    #[test]
    fn now_is_a_plausible_time() {
        assert!(plausible(now_ms()).is_some());
    }
}
