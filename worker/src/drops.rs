//! What a stage drops, reported one way everywhere: each drop goes to the stage's counter at
//! once, and a log line at most once per [`LOG_INTERVAL`] says how many were dropped since the
//! last line (as mediamtx's readers report "too slow, discarding N frames"). The caller writes
//! the line, at the level and with the fields its stage needs; time is passed in.

use std::time::{Duration, Instant};

use prometheus::IntCounter;

/// At most one log line per stream and cause in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts one kind of drop for one stream and throttles its log line.
#[derive(Debug, Default)]
pub struct DropLog {
    last_report: Option<Instant>,
    unreported: u64,
}

impl DropLog {
    /// Counts `n` dropped items in `counter`. Returns the number to put in a log line when one
    /// is due (the first drop at once, then the total since the last line once the interval has
    /// passed), `None` while the line is held back.
    #[must_use = "log the returned count"]
    pub fn count(&mut self, counter: &IntCounter, n: u64, now: Instant) -> Option<u64> {
        counter.inc_by(n);
        self.note(n, now)
    }

    fn note(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.unreported = self.unreported.saturating_add(n);
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_INTERVAL);
        if !due || self.unreported == 0 {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_is_counted_and_a_line_is_due_at_most_once_per_interval() {
        let counter = IntCounter::new("t", "t").expect("counter");
        let mut log = DropLog::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            log.count(&counter, 1, t0),
            Some(1),
            "the first drop is reported at once"
        );
        assert_eq!(log.count(&counter, 2, t0 + s(1)), None);
        assert_eq!(log.count(&counter, 3, t0 + s(9)), None);
        assert_eq!(
            log.count(&counter, 4, t0 + s(10)),
            Some(9),
            "all drops since the last line"
        );
        assert_eq!(log.count(&counter, 1, t0 + s(15)), None);
        assert_eq!(log.count(&counter, 1, t0 + s(60)), Some(2));
        assert_eq!(counter.get(), 12);
    }

    #[test]
    fn nothing_dropped_is_nothing_to_report() {
        let counter = IntCounter::new("t", "t").expect("counter");
        let mut log = DropLog::default();
        assert_eq!(log.count(&counter, 0, Instant::now()), None);
        assert_eq!(counter.get(), 0);
    }
}
