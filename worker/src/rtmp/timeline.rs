//! Normalises media timestamps (RTMP's 32-bit milliseconds that wrap, and the RTP clocks of
//! RTSP cameras; both jump and go backwards on cheap cameras) into one 64-bit, per-track
//! monotonic timeline shared by audio and video.

use crate::media::{Millis, Track};

/// A forward or backward step larger than this is a discontinuity, not elapsed time.
const MAX_STEP_MS: Millis = 10_000;
/// Interleaved audio and video may step back a little; more than this is a discontinuity.
const MAX_BACK_MS: Millis = 1_000;

#[derive(Debug, Default)]
pub struct Timeline {
    last_raw: Option<u32>,
    /// `last_raw` widened to 64 bits.
    extended: i64,
    /// Added to widened timestamps; changes at each discontinuity.
    offset: i64,
    last_out: [Option<Millis>; 2],
    last_step: [Millis; 2],
}

/// A normalised timestamp and whether a discontinuity was smoothed over to produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub dts: Millis,
    pub discontinuity: bool,
}

impl Timeline {
    /// Maps a 32-bit millisecond timestamp (RTMP), following it across the 2^32 ms wrap.
    pub fn map(&mut self, track: Track, raw: u32) -> Mapped {
        let extended = match self.last_raw {
            None => i64::from(raw),
            // The wrapping difference as i32 follows the clock across the 2^32 ms wrap.
            Some(last) => self.extended + i64::from(raw.wrapping_sub(last) as i32),
        };
        self.last_raw = Some(raw);
        self.extended = extended;
        self.map_extended(track, extended)
    }

    /// Maps a timestamp already widened to 64-bit milliseconds (RTSP: retina extends the
    /// 32-bit RTP clock itself), smoothing jumps and backward steps like [`Timeline::map`].
    pub fn map_extended(&mut self, track: Track, extended: Millis) -> Mapped {
        let t = track as usize;
        let mut dts = extended + self.offset;
        let mut discontinuity = false;
        if let Some(prev) = self.last_out[t] {
            let step = dts - prev;
            if !(-MAX_BACK_MS..=MAX_STEP_MS).contains(&step) {
                let nominal = self.last_step[t].clamp(1, 1_000);
                self.offset += prev + nominal - dts;
                dts = prev + nominal;
                discontinuity = true;
            } else if step <= 0 {
                // Decode order must advance: nudge a repeated or slightly backward timestamp.
                dts = prev + 1;
            } else {
                self.last_step[t] = step;
            }
        }
        self.last_out[t] = Some(dts);
        Mapped { dts, discontinuity }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_clock_across_the_32_bit_wrap() {
        let mut tl = Timeline::default();
        let a = tl.map(Track::Video, u32::MAX - 40).dts;
        let b = tl.map(Track::Video, 0).dts;
        let c = tl.map(Track::Video, 40).dts;
        assert_eq!((b - a, c - b), (41, 40));
        assert!(c > i64::from(u32::MAX));
    }

    #[test]
    fn a_jump_is_smoothed_and_reported_once() {
        let mut tl = Timeline::default();
        tl.map(Track::Video, 1000);
        tl.map(Track::Video, 1033);
        let jumped = tl.map(Track::Video, 500_000);
        assert_eq!(
            jumped,
            Mapped {
                dts: 1066,
                discontinuity: true
            }
        );
        let next = tl.map(Track::Video, 500_033);
        assert_eq!(
            next,
            Mapped {
                dts: 1099,
                discontinuity: false
            }
        );
        // Audio shares the shifted timeline.
        assert_eq!(tl.map(Track::Audio, 500_040).dts, 1106);
    }

    #[test]
    fn widened_timestamps_are_smoothed_the_same_way() {
        let mut tl = Timeline::default();
        assert_eq!(tl.map_extended(Track::Video, 1 << 40).dts, 1 << 40);
        assert_eq!(
            tl.map_extended(Track::Video, (1 << 40) + 40).dts,
            (1 << 40) + 40
        );
        let jumped = tl.map_extended(Track::Video, 5);
        assert!(jumped.discontinuity);
        assert_eq!(jumped.dts, (1 << 40) + 80);
    }

    #[test]
    fn interleaved_tracks_may_step_back_a_little() {
        let mut tl = Timeline::default();
        assert_eq!(tl.map(Track::Video, 100).dts, 100);
        assert_eq!(tl.map(Track::Audio, 90).dts, 90);
        assert_eq!(tl.map(Track::Video, 133).dts, 133);
    }

    proptest! {
        #[test]
        fn output_is_monotonic_per_track(raws in proptest::collection::vec((any::<bool>(), any::<u32>()), 1..200)) {
            let mut tl = Timeline::default();
            let mut last = [None::<i64>; 2];
            for (is_video, raw) in raws {
                let track = if is_video { Track::Video } else { Track::Audio };
                let m = tl.map(track, raw);
                if let Some(prev) = last[track as usize] {
                    prop_assert!(m.dts > prev);
                }
                last[track as usize] = Some(m.dts);
            }
        }
    }
}
