//! The timing rules of LL-HLS (RFC 8216bis) as pure functions: which `#EXT-X-PART-TARGET` a
//! stream's frames can fill, the fixed `#EXT-X-TARGETDURATION`, the longest segment it allows,
//! and the Advance Part Limit for blocking requests.

use std::time::Duration;

use crate::media::Millis;

/// Parts other than a segment's last must last at least this share of the part target
/// (RFC 8216bis 4.4.4.9), in percent.
pub const MIN_PART_PERCENT: Millis = 85;

/// Frame intervals needed before the part target is chosen (with at least one configured part
/// duration of media).
const MIN_INTERVALS: usize = 2;

/// `#EXT-X-PART-TARGET` for frames `frame_ms` apart, near `configured_ms`: a whole number of
/// frames (the fewest that reach `configured_ms`), plus 5 % (at least 2 ms) of headroom for
/// millisecond timestamps (29.97 fps alternates 33 and 34 ms) and jitter. A stream at a steady
/// rate then fills every part with exactly that many frames, which lands between 85 % and
/// 100 % of the target whatever the rate.
pub fn part_target_ms(configured_ms: Millis, frame_ms: f64) -> Millis {
    let configured = configured_ms.max(1) as f64;
    if !(frame_ms.is_finite() && frame_ms > 0.0) {
        return configured_ms.max(1);
    }
    let frames = (configured / frame_ms - 1e-6).ceil().max(1.0);
    let filled = frames * frame_ms;
    let headroom = (filled * 0.05).max(2.0);
    (filled + headroom).ceil() as Millis
}

/// Decides the frame interval from the first frames of a stream: the mean interval once at
/// least `MIN_INTERVALS` intervals and `span_ms` of media have been seen.
#[derive(Debug, Clone, Default)]
pub struct FrameEstimate {
    first: Option<Millis>,
    last: Millis,
    intervals: usize,
}

impl FrameEstimate {
    /// Adds a lead-track DTS; returns the mean frame interval once it is known.
    pub fn add(&mut self, dts: Millis, span_ms: Millis) -> Option<f64> {
        match self.first {
            None => {
                self.first = Some(dts);
                self.last = dts;
                None
            }
            Some(first) => {
                if dts > self.last {
                    self.intervals += 1;
                    self.last = dts;
                }
                let span = self.last - first;
                if self.intervals >= MIN_INTERVALS && span >= span_ms {
                    self.mean()
                } else {
                    None
                }
            }
        }
    }

    /// The mean interval so far, if any.
    pub fn mean(&self) -> Option<f64> {
        let first = self.first?;
        (self.intervals > 0).then(|| (self.last - first) as f64 / self.intervals as f64)
    }
}

/// Whether a part of `duration_ms` may end before its segment does.
pub fn long_enough(duration_ms: Millis, part_target_ms: Millis) -> bool {
    duration_ms * 100 >= part_target_ms * MIN_PART_PERCENT
}

/// `#EXT-X-TARGETDURATION` (whole seconds, at least 1) for a configured maximum segment
/// duration; fixed for the worker's life, as RFC 8216bis 4.4.3.1 requires.
pub fn target_duration_s(max_segment: Duration) -> u64 {
    let ms = max_segment.as_millis();
    u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1)
}

/// The longest a segment may grow: its `EXTINF`, rounded to the nearest second, must not
/// exceed the target duration (RFC 8216bis 4.4.3.1).
pub fn segment_cap_ms(target_duration_s: u64) -> Millis {
    Millis::try_from(target_duration_s)
        .unwrap_or(Millis::MAX / 1000)
        .saturating_mul(1000)
        .saturating_add(499)
}

/// RFC 8216bis 6.2.5.2: how many parts beyond the newest one a blocking request may ask for;
/// three divided by the part target (in seconds) when it is under a second, else three.
pub fn advance_part_limit(part_target_ms: Millis) -> u64 {
    if part_target_ms > 0 && part_target_ms < 1000 {
        u64::try_from(3000 / part_target_ms).unwrap_or(3).max(3)
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (fps, frame interval ms, expected part target ms at a configured 200 ms)
    const RATES: [(f64, Millis); 5] = [
        (12.5, 252),
        (15.0, 210),
        (25.0, 210),
        (29.97, 211),
        (30.0, 210),
    ];

    #[test]
    fn part_target_is_a_whole_number_of_frames_near_the_configured_duration() {
        for (fps, expected) in RATES {
            let frame = 1000.0 / fps;
            let target = part_target_ms(200, frame);
            assert_eq!(target, expected, "{fps} fps");
            let frames = (200.0 / frame - 1e-6).ceil();
            // Those frames fill at least 85 % of it; one more would not fit.
            assert!(frames * frame <= target as f64);
            assert!(frames * frame * 100.0 >= (target * MIN_PART_PERCENT) as f64);
            assert!((frames + 1.0) * frame > target as f64, "{fps} fps");
        }
        assert_eq!(part_target_ms(1000, 40.0), 1050);
        assert_eq!(
            part_target_ms(200, 500.0),
            525,
            "a slow camera: one frame a part"
        );
        assert_eq!(part_target_ms(200, 0.0), 200);
    }

    #[test]
    fn frame_interval_is_the_mean_of_the_first_intervals() {
        let mut e = FrameEstimate::default();
        let dts: Vec<Millis> = (0..8)
            .map(|i| (f64::from(i) * 1001.0 / 30.0).round() as Millis)
            .collect();
        let mut got = None;
        for d in dts {
            got = got.or(e.add(d, 200));
        }
        let got = got.expect("known after 200 ms");
        assert!((got - 33.37).abs() < 0.1, "{got}");
    }

    #[test]
    fn target_duration_and_segment_cap() {
        assert_eq!(target_duration_s(Duration::from_secs(2)), 2);
        assert_eq!(target_duration_s(Duration::from_millis(2500)), 3);
        assert_eq!(target_duration_s(Duration::from_millis(10)), 1);
        // 2.499 s rounds to 2: within a target duration of 2.
        assert_eq!(segment_cap_ms(2), 2499);
    }

    #[test]
    fn advance_part_limit_follows_the_part_target() {
        assert_eq!(advance_part_limit(200), 15);
        assert_eq!(advance_part_limit(210), 14);
        assert_eq!(advance_part_limit(1000), 3);
        assert_eq!(advance_part_limit(2000), 3);
    }
}
