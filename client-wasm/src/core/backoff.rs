//! Reconnect delays: exponential backoff with full jitter, from a small seeded generator.
//!
//! Full jitter (a delay drawn uniformly from zero to the cap) spreads out many clients that lost
//! the hub at the same moment, so a restarted hub is not hit by all of them at once.

/// SplitMix64: tiny, fast and good enough for jitter; not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..=max`.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(bound) => self.next_u64() % bound,
            None => self.next_u64(),
        }
    }
}

/// The exponential backoff state of one client.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min_ms: u64, max_ms: u64) -> Self {
        Backoff { min_ms, max_ms: max_ms.max(min_ms), attempt: 0 }
    }

    /// The cap for the current attempt: `min(max, min * 2^attempt)`.
    pub(crate) fn cap(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        self.min_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The delay before the next attempt, and one step further along the curve.
    pub(crate) fn next_delay(&mut self, rng: &mut Rng) -> u64 {
        let delay = rng.up_to(self.cap());
        // Past 63 doublings every cap is `max`; stopping there keeps the shift defined.
        self.attempt = (self.attempt + 1).min(63);
        delay
    }

    /// A session was established: the next loss starts again from the smallest delay.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_should_stay_within_the_full_jitter_bounds_and_be_capped() {
        let mut rng = Rng::new(7);
        let mut backoff = Backoff::new(250, 10_000);
        let expected_caps = [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000];
        for &cap in &expected_caps {
            assert_eq!(backoff.cap(), cap);
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= cap, "delay {delay} above cap {cap}");
        }
        for _ in 0..200 {
            assert!(backoff.next_delay(&mut rng) <= 10_000);
        }
        assert_eq!(backoff.cap(), 10_000);
    }

    #[test]
    fn delays_should_spread_over_the_whole_range_not_cluster_at_the_cap() {
        let mut rng = Rng::new(42);
        let mut backoff = Backoff::new(1_000, 1_000);
        let delays: Vec<u64> = (0..1_000).map(|_| backoff.next_delay(&mut rng)).collect();
        let low = delays.iter().filter(|&&d| d < 250).count();
        let high = delays.iter().filter(|&&d| d > 750).count();
        // Uniform on 0..=1000: about a quarter in each tail.
        assert!((150..350).contains(&low), "{low} delays below 250");
        assert!((150..350).contains(&high), "{high} delays above 750");
    }

    #[test]
    fn reset_should_restart_from_the_smallest_cap() {
        let mut rng = Rng::new(1);
        let mut backoff = Backoff::new(100, 5_000);
        for _ in 0..10 {
            backoff.next_delay(&mut rng);
        }
        assert_eq!(backoff.cap(), 5_000);
        backoff.reset();
        assert_eq!(backoff.cap(), 100);
    }

    #[test]
    fn huge_attempt_counts_should_not_overflow() {
        let mut rng = Rng::new(3);
        let mut backoff = Backoff::new(u64::MAX / 2, u64::MAX);
        for _ in 0..100 {
            backoff.next_delay(&mut rng);
        }
        assert_eq!(backoff.cap(), u64::MAX);
    }
}
