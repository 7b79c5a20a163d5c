//! A token bucket for per-connection frame rates (`client.rate_per_s`, error 1006): it refills
//! `rate` tokens per second and holds at most `rate`, so a client may burst one second's worth.

use std::time::Instant;

pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_s: u32) -> Self {
        let rate = f64::from(rate_per_s.max(1));
        Self { rate, tokens: rate, last: Instant::now() }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    /// Takes one token for a frame that arrived at `now` (earlier than the present for a frame
    /// held while its session waited: it counts when it came). Times before the last one taken
    /// refill nothing.
    pub fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_rate_frames_passes_then_the_next_is_refused() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3);
        b.last = t0;
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0));
        assert!(b.take_at(t0 + Duration::from_millis(400)));
    }

    #[test]
    fn a_time_before_the_last_refills_nothing_and_does_not_turn_the_clock_back() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1);
        b.last = t0;
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.take_at(t1));
        assert!(!b.take_at(t0), "no token from the past");
        assert!(!b.take_at(t1), "the clock stayed at t1: nothing refilled twice");
    }
}
