//! When and where a pool link tries again: exponential backoff with full jitter (a delay drawn
//! uniformly below a ceiling that doubles per failure, up to a cap), and the choice of the next
//! endpoint (random, never the one that just failed when there is another).
//!
//! Pure: the random draws are passed in as numbers in `[0, 1)`.

use std::time::Duration;

/// First ceiling: a link that lost a healthy pool tries again within this.
pub const BASE: Duration = Duration::from_millis(100);
/// Longest wait between attempts: a link never waits longer than this to try (another
/// endpoint), so a dead pool replica is left within it.
pub const CAP: Duration = Duration::from_secs(5);

/// Backoff state of one link.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, CAP)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// The ceiling of the next delay: `base × 2^failures`, at most `cap`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(16);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt, given a uniform draw `unit` in `[0, 1)` (full
    /// jitter), and counts one more failure.
    pub fn next(&mut self, unit: f64) -> Duration {
        let delay = self.ceiling().mul_f64(unit.clamp(0.0, 1.0));
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// After a connection that worked: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The endpoint to try among `count`, given a uniform draw `unit` in `[0, 1)`: any of them at
/// random, except `avoid` (the one that just failed) when there is another.
pub fn pick(count: usize, avoid: Option<usize>, unit: f64) -> usize {
    let unit = unit.clamp(0.0, 1.0 - f64::EPSILON);
    match avoid.filter(|a| *a < count && count > 1) {
        Some(a) => {
            let i = (unit * (count - 1) as f64) as usize;
            if i >= a {
                i + 1
            } else {
                i
            }
        }
        None => ((unit * count as f64) as usize).min(count.saturating_sub(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_millis());
            b.next(0.5);
        }
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        b.reset();
        assert_eq!(b.ceiling(), BASE);
    }

    #[test]
    fn the_delay_is_drawn_below_the_ceiling() {
        let mut b = Backoff::default();
        assert_eq!(b.next(0.0), Duration::ZERO);
        assert_eq!(b.next(0.5), Duration::from_millis(100));
        assert_eq!(b.next(2.0), Duration::from_millis(400), "draws are clamped");
    }

    #[test]
    fn another_endpoint_is_tried_after_a_failure() {
        for unit in [0.0, 0.3, 0.7, 0.999_999] {
            assert_eq!(pick(2, Some(0), unit), 1);
            assert_eq!(pick(2, Some(1), unit), 0);
            assert_ne!(pick(3, Some(1), unit), 1);
            assert_eq!(
                pick(1, Some(0), unit),
                0,
                "the only endpoint is tried again"
            );
        }
        assert_eq!(pick(3, None, 0.0), 0);
        assert_eq!(pick(3, None, 0.5), 1);
        assert_eq!(pick(3, None, 1.0), 2);
    }

    proptest! {
        #[test]
        fn no_wait_exceeds_the_cap_and_picks_stay_in_range(
            draws in proptest::collection::vec(0.0f64..1.0, 1..64),
            count in 1usize..8,
            avoid in proptest::option::of(0usize..8),
        ) {
            let mut b = Backoff::default();
            for unit in &draws {
                prop_assert!(b.next(*unit) <= CAP);
                let i = pick(count, avoid, *unit);
                prop_assert!(i < count);
                if count > 1 {
                    prop_assert!(Some(i) != avoid);
                }
            }
        }
    }
}
