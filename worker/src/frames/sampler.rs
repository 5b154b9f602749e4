//! Which access units the frame extractor decodes, and which of those it turns into JPEGs.
//!
//! Pure logic over (DTS, keyframe) so that it is tested without a decoder. When the stream's
//! GOP is no longer than the sampling interval, only keyframes are decoded (each one is a
//! complete picture, so decoding one costs a fraction of decoding the GOP); otherwise every
//! frame from a keyframe on is decoded and the one nearest each tick is kept.

use crate::config::FrameSampling;
use crate::media::Millis;

/// How frames are decoded for sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only keyframes are decoded; each sample is the keyframe nearest its tick.
    KeyframesOnly,
    /// Every frame is decoded (the GOP is longer than the interval).
    AllFrames,
}

/// What to do with one video access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not needed: do not even hand it to the decoder.
    Skip,
    /// Decode it; `emit` says whether the picture becomes a sample. `reset` asks the decoder to
    /// forget its state first (mode change or lost data).
    Decode { emit: bool, reset: bool },
}

/// GOP lengths remembered for the mode decision (the longest one counts).
const GOP_HISTORY: usize = 3;
/// Frame duration assumed until two frames have been seen (30 fps).
const DEFAULT_FRAME_MS: f64 = 1000.0 / 30.0;

/// Picks samples at a fixed rate from one camera's video.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval_ms: f64,
    sampling: FrameSampling,
    mode: Mode,
    next_due: Option<f64>,
    last_keyframe: Option<Millis>,
    gops: [Millis; GOP_HISTORY],
    gops_seen: usize,
    last_dts: Option<Millis>,
    frame_ms: f64,
    /// In all-frames mode: the decoder has been fed from a keyframe on.
    synced: bool,
    /// The next decoded packet must reset the decoder first.
    reset_pending: bool,
}

impl Sampler {
    /// A sampler taking `fps` samples per second (any positive rate); with
    /// `FrameSampling::Keyframes`, never more than one per keyframe.
    pub fn new(fps: f64, sampling: FrameSampling) -> Self {
        Self {
            interval_ms: 1000.0 / fps,
            sampling,
            mode: Mode::KeyframesOnly,
            next_due: None,
            last_keyframe: None,
            gops: [0; GOP_HISTORY],
            gops_seen: 0,
            last_dts: None,
            frame_ms: DEFAULT_FRAME_MS,
            synced: false,
            reset_pending: true,
        }
    }

    /// The current decoding mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The longest recently measured distance between keyframes, once known.
    pub fn gop_ms(&self) -> Option<Millis> {
        (self.gops_seen > 0).then(|| self.gops.iter().copied().max().unwrap_or(0))
    }

    /// Forgets the stream (a new publish session or codec configuration); keeps the rate.
    pub fn restart(&mut self) {
        *self = Self::new(1000.0 / self.interval_ms, self.sampling);
    }

    /// Data was lost before the next frame (the subscriber lagged or the decoder queue was
    /// full): decoding must start again at a keyframe.
    pub fn lost(&mut self) {
        self.synced = false;
        self.reset_pending = true;
        self.last_keyframe = None;
        self.last_dts = None;
    }

    /// Decides about one video access unit, in decode order.
    pub fn on_video(&mut self, dts: Millis, keyframe: bool) -> Decision {
        if let Some(prev) = self.last_dts {
            let d = (dts - prev) as f64;
            if d > 0.0 && d < 1000.0 {
                // A slow moving average: timestamps in milliseconds jitter by one.
                self.frame_ms = self.frame_ms * 0.9 + d * 0.1;
            }
        }
        self.last_dts = Some(dts);

        if keyframe {
            if let Some(prev) = self.last_keyframe {
                if dts > prev {
                    self.gops[self.gops_seen % GOP_HISTORY] = dts - prev;
                    self.gops_seen += 1;
                }
            }
            self.last_keyframe = Some(dts);
            let wanted = self.wanted_mode();
            if wanted != self.mode {
                self.mode = wanted;
                self.synced = false;
                self.reset_pending = true;
            }
        } else if self.mode == Mode::KeyframesOnly {
            // No keyframe for longer than the interval: the GOP is too long for this rate.
            // Switch at the next keyframe (decoding cannot start in the middle of a GOP).
            if let Some(kf) = self.last_keyframe {
                if (dts - kf) as f64 > self.interval_ms + self.gop_tolerance() {
                    self.gops[self.gops_seen % GOP_HISTORY] = dts - kf;
                    self.gops_seen += 1;
                }
            }
        }

        let due = match self.next_due {
            None => true,
            Some(next) => dts as f64 >= next - self.tolerance(),
        };
        let emit = match self.mode {
            Mode::KeyframesOnly => keyframe && due,
            Mode::AllFrames => {
                if keyframe {
                    self.synced = true;
                }
                if !self.synced {
                    return Decision::Skip;
                }
                due
            }
        };
        if emit {
            self.advance(dts);
            if self.mode == Mode::AllFrames && self.next_sample_is_next_keyframe() {
                // Decode only what the next sample needs: the rest of this GOP is not needed.
                self.synced = false;
            }
        } else if self.mode == Mode::KeyframesOnly {
            return Decision::Skip;
        }
        let reset = std::mem::take(&mut self.reset_pending);
        Decision::Decode { emit, reset }
    }

    /// True when the next tick falls at or after the keyframe expected next (from the GOP).
    fn next_sample_is_next_keyframe(&self) -> bool {
        match (self.next_due, self.last_keyframe, self.gop_ms()) {
            (Some(next), Some(kf), Some(gop)) => {
                next - self.tolerance() >= (kf + gop) as f64 - self.frame_ms / 2.0
            }
            _ => false,
        }
    }

    fn wanted_mode(&self) -> Mode {
        if self.sampling == FrameSampling::Keyframes {
            return Mode::KeyframesOnly;
        }
        match self.gop_ms() {
            Some(gop) if gop as f64 > self.interval_ms + self.gop_tolerance() => Mode::AllFrames,
            _ => Mode::KeyframesOnly,
        }
    }

    /// Slack for encoders whose GOP is a frame or two off, and for millisecond rounding.
    fn gop_tolerance(&self) -> f64 {
        (self.interval_ms / 20.0).max(self.frame_ms * 1.5)
    }

    /// How early a candidate may be and still count for a tick: half the spacing of candidates.
    fn tolerance(&self) -> f64 {
        match self.mode {
            Mode::KeyframesOnly => {
                let gop = self.gop_ms().map_or(self.interval_ms, |g| g as f64);
                (gop / 2.0).min(self.interval_ms / 2.0)
            }
            Mode::AllFrames => self.frame_ms / 2.0,
        }
    }

    fn advance(&mut self, dts: Millis) {
        let taken = dts as f64;
        let next = match self.next_due {
            // Keep the long-run rate exact, unless far behind (after a gap): then restart.
            Some(prev) if prev + self.interval_ms > taken - self.interval_ms => {
                prev + self.interval_ms
            }
            _ => taken + self.interval_ms,
        };
        self.next_due = Some(next.max(taken + self.tolerance()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `secs` seconds of video at `fps_in` with a keyframe every `gop` frames; returns
    /// the DTS of the emitted samples and how many packets were decoded.
    fn run(sampler: &mut Sampler, fps_in: u32, gop: u32, secs: u32) -> (Vec<Millis>, usize) {
        let mut emitted = Vec::new();
        let mut decoded = 0;
        for i in 0..fps_in * secs {
            let dts = (i as f64 * 1000.0 / fps_in as f64).round() as Millis;
            if let Decision::Decode { emit, .. } = sampler.on_video(dts, i % gop == 0) {
                decoded += 1;
                if emit {
                    emitted.push(dts);
                }
            }
        }
        (emitted, decoded)
    }

    #[test]
    fn gop_of_one_second_at_one_fps_decodes_keyframes_only() {
        let mut s = Sampler::new(1.0, FrameSampling::Exact);
        let (emitted, decoded) = run(&mut s, 30, 30, 30);
        assert_eq!(s.mode(), Mode::KeyframesOnly);
        assert_eq!(emitted.len(), 30);
        assert_eq!(decoded, 30, "one decode per sample");
        assert_eq!(s.gop_ms(), Some(1000));
    }

    #[test]
    fn half_rate_takes_every_other_keyframe() {
        let mut s = Sampler::new(0.5, FrameSampling::Exact);
        let (emitted, decoded) = run(&mut s, 30, 30, 30);
        assert_eq!(emitted.len(), 15);
        assert_eq!(decoded, 15);
        assert!(emitted.windows(2).all(|w| w[1] - w[0] == 2000));
    }

    #[test]
    fn short_gop_keeps_rate_not_keyframe_rate() {
        let mut s = Sampler::new(1.0, FrameSampling::Exact);
        let (emitted, _) = run(&mut s, 30, 15, 20);
        assert_eq!(s.mode(), Mode::KeyframesOnly);
        assert_eq!(emitted.len(), 20);
    }

    #[test]
    fn rate_above_keyframe_rate_decodes_all_frames_and_keeps_rate() {
        let mut s = Sampler::new(2.0, FrameSampling::Exact);
        let (emitted, decoded) = run(&mut s, 30, 30, 30);
        assert_eq!(s.mode(), Mode::AllFrames);
        // The first GOP is spent learning the GOP length; afterwards two samples a second.
        assert!((57..=60).contains(&emitted.len()), "{}", emitted.len());
        // Frames after the mid-GOP sample are not decoded: about half of the stream.
        assert!(
            (400..600).contains(&decoded),
            "decoded {decoded} of 900 frames"
        );
        let tail = &emitted[4..];
        assert!(
            tail.windows(2).all(|w| (w[1] - w[0] - 500).abs() <= 34),
            "{tail:?}"
        );
    }

    #[test]
    fn two_second_gop_at_one_fps_switches_to_all_frames() {
        let mut s = Sampler::new(1.0, FrameSampling::Exact);
        let (emitted, decoded) = run(&mut s, 30, 60, 30);
        assert_eq!(s.mode(), Mode::AllFrames);
        assert!((28..=30).contains(&emitted.len()), "{}", emitted.len());
        // Samples fall on the keyframe and mid-GOP: the second half of each GOP is skipped.
        assert!(decoded < 560, "decoded {decoded} of 900 frames");
    }

    #[test]
    fn keyframe_sampling_on_a_long_gop_decodes_only_keyframes() {
        // 4 s GOP at 25 fps, 1 fps asked: one sample per keyframe, no predicted frame decoded.
        let mut s = Sampler::new(1.0, FrameSampling::Keyframes);
        let (emitted, decoded) = run(&mut s, 25, 100, 40);
        assert_eq!(s.mode(), Mode::KeyframesOnly);
        assert_eq!(decoded, 10, "only the 10 keyframes of 40 s are decoded");
        assert_eq!(emitted.len(), 10);
        assert!(
            emitted.windows(2).all(|w| w[1] - w[0] == 4000),
            "{emitted:?}"
        );
    }

    #[test]
    fn keyframe_sampling_on_a_short_gop_keeps_the_rate() {
        // Where the GOP is shorter than the interval, both policies take the same samples.
        let mut exact = Sampler::new(1.0, FrameSampling::Exact);
        let mut keyframes = Sampler::new(1.0, FrameSampling::Keyframes);
        assert_eq!(run(&mut exact, 30, 15, 20), run(&mut keyframes, 30, 15, 20));
    }

    #[test]
    fn lost_data_resets_decoder_at_next_keyframe() {
        let mut s = Sampler::new(2.0, FrameSampling::Exact);
        run(&mut s, 30, 30, 5);
        s.lost();
        assert_eq!(s.on_video(5010, false), Decision::Skip);
        match s.on_video(5033, true) {
            Decision::Decode { reset, .. } => assert!(reset),
            other => panic!("expected a decode, got {other:?}"),
        }
    }

    #[test]
    fn fractional_rates_follow_the_rate() {
        for fps in [0.25, 0.5, 1.0] {
            let mut s = Sampler::new(fps, FrameSampling::Exact);
            let (emitted, _) = run(&mut s, 25, 25, 40);
            let expected = (40.0 * fps) as usize;
            assert!(
                emitted.len().abs_diff(expected) <= 1,
                "fps {fps}: {}",
                emitted.len()
            );
        }
    }
}
