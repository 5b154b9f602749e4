//! The LL-HLS packager: cuts one camera's frames into parts and keyframe-aligned segments and
//! keeps a sliding window of them in memory. Pure state over hub events: no I/O, no clock
//! (callers pass wall-clock time for `#EXT-X-PROGRAM-DATE-TIME`), so tests drive it directly.
//!
//! The rules it keeps (RFC 8216bis; the arithmetic is in `timing`): the part target is chosen
//! once, from the first frames, as a whole number of frame intervals; no part is longer than
//! it, and every part but a segment's last fills at least 85 % of it; the target duration is
//! fixed by configuration, and a segment whose keyframe does not come in time is cut there
//! (the next one then starts without an independent part).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::timing::{self, FrameEstimate};
use crate::fmp4::{Fragment, Fragmenter};
use crate::media::{Frame, Millis, StreamInfo, Track};

/// Segments are cut at the first keyframe at least this long after the segment started.
pub const MIN_SEGMENT_MS: Millis = 1000;

#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// The configured part duration; `#EXT-X-PART-TARGET` is the nearest whole number of the
    /// stream's frame intervals at or above it, fixed for the packager's life.
    pub part_target_ms: Millis,
    /// Complete segments kept (and listed) behind the one being written, at least; more while
    /// the window is shorter than three target durations (RFC 8216bis 6.2.2).
    pub window: usize,
    /// `#EXT-X-TARGETDURATION` in seconds: fixed; segments are cut before exceeding it.
    pub target_duration_s: u64,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            part_target_ms: 200,
            window: 7,
            target_duration_s: 2,
        }
    }
}

/// One partial segment: a `moof`+`mdat`.
#[derive(Debug, Clone)]
pub struct Part {
    pub data: Bytes,
    pub duration_ms: Millis,
    pub independent: bool,
}

/// One media segment: its parts, concatenated, are the segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    pub parts: Vec<Part>,
    /// Wall-clock time of the first sample, in Unix milliseconds.
    pub pdt_ms: i64,
    /// Preceded by `#EXT-X-DISCONTINUITY` (new publish session, lost data, new codec config).
    pub discontinuity: bool,
    /// The init segment (id) the parts need.
    pub init: u64,
    /// No more parts will be added.
    pub complete: bool,
}

impl Segment {
    pub fn duration_ms(&self) -> Millis {
        self.parts.iter().map(|p| p.duration_ms).sum()
    }

    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum()
    }

    /// The whole segment: its parts back to back.
    pub fn data(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.bytes());
        for p in &self.parts {
            out.extend_from_slice(&p.data);
        }
        out.freeze()
    }
}

/// An init segment and the configuration it describes.
#[derive(Debug, Clone)]
pub struct Init {
    pub id: u64,
    pub data: Bytes,
    pub info: Arc<StreamInfo>,
}

/// What a call published, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A part became available; `last_sample_dts` is the DTS of its last sample on the lead
    /// track, whose arrival the part-delay metric measures from.
    Part {
        msn: u64,
        index: usize,
        last_sample_dts: Millis,
    },
    Segment {
        msn: u64,
        duration_ms: Millis,
    },
}

#[derive(Debug)]
struct Session {
    fragmenter: Fragmenter,
    init: u64,
    has_video: bool,
    /// Waiting for the first random access point: nothing before it is packaged.
    started: bool,
    /// Maps stream time to wall-clock time: (dts, unix ms) at the first packaged frame.
    anchor: Option<(Millis, i64)>,
    /// DTS of the newest lead-track frame (held back in the fragmenter) and the one before it.
    held_dts: Option<Millis>,
    complete_dts: Option<Millis>,
}

/// The per-camera LL-HLS state: the window of segments and the current session.
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    segments: VecDeque<Segment>,
    inits: VecDeque<Init>,
    next_msn: u64,
    discontinuity_sequence: u64,
    /// `#EXT-X-PART-TARGET`, once the first frames have shown the stream's frame interval.
    part_target: Option<Millis>,
    estimate: FrameEstimate,
    /// The stream's frame interval (ms), used to predict when the next frame ends.
    frame_ms: f64,
    session: Option<Session>,
    discontinuity_next: bool,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        Self {
            config: PackagerConfig {
                part_target_ms: config.part_target_ms.max(1),
                window: config.window.max(1),
                target_duration_s: config.target_duration_s.max(1),
            },
            segments: VecDeque::new(),
            inits: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            part_target: None,
            estimate: FrameEstimate::default(),
            frame_ms: 0.0,
            session: None,
            discontinuity_next: false,
        }
    }

    /// `#EXT-X-PART-TARGET` in milliseconds; `None` until the first frames chose it (no
    /// playlist can be served before: the value must never change once announced).
    pub fn part_target_ms(&self) -> Option<Millis> {
        self.part_target
    }

    /// `#EXT-X-TARGETDURATION`: fixed by configuration.
    pub fn target_duration_s(&self) -> u64 {
        self.config.target_duration_s
    }

    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The init segment with `id`, if still referenced by the window.
    pub fn init(&self, id: u64) -> Option<&Init> {
        self.inits.iter().find(|i| i.id == id)
    }

    /// The newest init segment.
    pub fn current_init(&self) -> Option<&Init> {
        self.inits.back()
    }

    /// True while a session with a usable configuration is being packaged.
    pub fn is_live(&self) -> bool {
        self.session.is_some()
    }

    /// The part that will be published next: (msn, part index).
    pub fn next_part(&self) -> (u64, usize) {
        match self.segments.back() {
            Some(s) if !s.complete => (s.msn, s.parts.len()),
            _ => (self.next_msn, 0),
        }
    }

    /// A new session or a new configuration: what follows is a discontinuity.
    pub fn start(
        &mut self,
        info: Arc<StreamInfo>,
    ) -> Result<Vec<Published>, crate::fmp4::Fmp4Error> {
        let out = self.finish_session();
        if !self.segments.is_empty() {
            self.discontinuity_next = true;
        }
        let fragmenter = Fragmenter::new(info.clone())?;
        let init = Init {
            id: info.version,
            data: fragmenter.init_segment(),
            info: info.clone(),
        };
        self.inits.retain(|i| i.id != init.id);
        self.inits.push_back(init);
        self.session = Some(Session {
            fragmenter,
            init: info.version,
            has_video: info.video.is_some(),
            started: false,
            anchor: None,
            held_dts: None,
            complete_dts: None,
        });
        self.evict();
        Ok(out)
    }

    /// The publisher went away: publish what is held and close the segment.
    pub fn end(&mut self) -> Vec<Published> {
        let out = self.finish_session();
        self.discontinuity_next = !self.segments.is_empty();
        out
    }

    /// Data was lost (the hub's `Gap`): close what we have; the next keyframe starts a
    /// discontinuity.
    pub fn gap(&mut self) -> Vec<Published> {
        let mut out = Vec::new();
        let Some(mut session) = self.session.take() else {
            return out;
        };
        self.flush_parts(&mut session, &mut out);
        self.close_segment(&mut out);
        session.started = false;
        session.held_dts = None;
        session.complete_dts = None;
        self.session = Some(session);
        self.discontinuity_next = !self.segments.is_empty();
        out
    }

    /// Releases every buffered segment (the camera went away for good). Numbering continues.
    pub fn release(&mut self) {
        self.session = None;
        while let Some(s) = self.segments.pop_front() {
            if s.discontinuity {
                self.discontinuity_sequence += 1;
            }
        }
        self.inits.clear();
        self.discontinuity_next = false;
    }

    /// Packages one frame; `wall_ms` is the current Unix time in milliseconds.
    pub fn push(&mut self, frame: &Frame, wall_ms: i64) -> Vec<Published> {
        let mut out = Vec::new();
        let Some(mut session) = self.session.take() else {
            return out;
        };
        let lead = match frame.track {
            Track::Video => session.has_video,
            Track::Audio => !session.has_video,
        };
        let random_access = lead && frame.keyframe;
        if !session.started {
            if !random_access {
                self.session = Some(session);
                return out;
            }
            session.started = true;
            if session.anchor.is_none() {
                session.anchor = Some((frame.dts, wall_ms));
            }
        }
        session.fragmenter.push(frame);
        if lead {
            session.complete_dts = session.held_dts;
            session.held_dts = Some(frame.dts);
            if self.part_target.is_none() {
                if let Some(frame_ms) = self.estimate.add(frame.dts, self.config.part_target_ms) {
                    self.frame_ms = frame_ms;
                    self.part_target =
                        Some(timing::part_target_ms(self.config.part_target_ms, frame_ms));
                }
            }
            if let Some(target) = self.part_target {
                self.cut(&mut session, target, random_access, &mut out);
            }
        }
        self.session = Some(session);
        out
    }

    /// Decides, as a lead-track frame arrives (completing the one before it), whether the
    /// complete frames make a part and whether the segment ends here.
    fn cut(
        &mut self,
        session: &mut Session,
        target: Millis,
        random_access: bool,
        out: &mut Vec<Published>,
    ) {
        let cap = timing::segment_cap_ms(self.config.target_duration_s);
        // The next frame is predicted to last one nominal interval.
        let next = (self.frame_ms.ceil() as Millis).max(1);
        // The newest complete frame turned out longer than predicted (a variable frame rate):
        // publish the part without it, so that no part exceeds the target and no segment
        // its cap; that frame starts the next part.
        let pending = session.fragmenter.pending_duration_ms();
        let over_segment = self.open_segment_ms() + pending > cap;
        if pending > target || over_segment {
            if let Some(frag) = session.fragmenter.fragment_before_last() {
                self.add_part(session, frag, out);
                if over_segment {
                    self.close_segment(out);
                }
            } else if over_segment && self.open_segment_ms() > 0 {
                // The one pending frame alone would take the segment past its cap: the segment
                // ends before it, and it starts the next one.
                self.close_segment(out);
            }
        }
        let pending = session.fragmenter.pending_duration_ms();
        let segment_ms = self.open_segment_ms() + pending;
        // A keyframe (any audio frame, in an audio-only stream) ends a long enough segment.
        let keyframe_cut = random_access && segment_ms >= MIN_SEGMENT_MS;
        // No keyframe in time: the segment is cut before it exceeds the target duration.
        let forced_cut = segment_ms + next > cap;
        // A keyframe inside a segment starts an independent part if the part before it is
        // long enough to end early.
        let independent_part =
            session.has_video && random_access && timing::long_enough(pending, target);
        if keyframe_cut || forced_cut || independent_part || pending + next > target {
            if let Some(frag) = session.fragmenter.fragment() {
                self.add_part(session, frag, out);
            }
        }
        if keyframe_cut || forced_cut {
            self.close_segment(out);
        }
    }

    /// Publishes everything the fragmenter holds (end of session, lost data) as at most two
    /// parts, each within the part target.
    fn flush_parts(&mut self, session: &mut Session, out: &mut Vec<Published>) {
        if session.held_dts.is_none() {
            return;
        }
        if self.part_target.is_none() {
            // The session ended before its frame rate was clear: settle on what was seen.
            let frame_ms = self
                .estimate
                .mean()
                .unwrap_or(self.config.part_target_ms as f64);
            self.frame_ms = frame_ms;
            self.part_target = Some(timing::part_target_ms(self.config.part_target_ms, frame_ms));
        }
        let target = self.part_target.unwrap_or(self.config.part_target_ms);
        let next = (self.frame_ms.ceil() as Millis).max(1);
        if session.fragmenter.pending_duration_ms() + next > target {
            if let Some(frag) = session.fragmenter.fragment() {
                self.add_part(session, frag, out);
            }
        }
        if let Some(frag) = session.fragmenter.flush() {
            session.complete_dts = session.held_dts;
            self.add_part(session, frag, out);
        }
    }

    fn finish_session(&mut self) -> Vec<Published> {
        let mut out = Vec::new();
        if let Some(mut session) = self.session.take() {
            if session.started {
                self.flush_parts(&mut session, &mut out);
            }
            self.close_segment(&mut out);
        }
        out
    }

    /// Duration of the parts already published in the segment being written.
    fn open_segment_ms(&self) -> Millis {
        match self.segments.back() {
            Some(s) if !s.complete => s.duration_ms(),
            _ => 0,
        }
    }

    fn add_part(&mut self, session: &Session, frag: Fragment, out: &mut Vec<Published>) {
        if !matches!(self.segments.back(), Some(s) if !s.complete) {
            let pdt_ms = match session.anchor {
                Some((dts, wall)) => wall + (frag.start_ms - dts),
                None => 0,
            };
            self.segments.push_back(Segment {
                msn: self.next_msn,
                parts: Vec::new(),
                pdt_ms,
                discontinuity: std::mem::take(&mut self.discontinuity_next),
                init: session.init,
                complete: false,
            });
            self.next_msn += 1;
        }
        if let Some(segment) = self.segments.back_mut() {
            segment.parts.push(Part {
                data: frag.data,
                duration_ms: frag.duration_ms,
                independent: frag.independent,
            });
            out.push(Published::Part {
                msn: segment.msn,
                index: segment.parts.len() - 1,
                last_sample_dts: session
                    .complete_dts
                    .unwrap_or(frag.start_ms + frag.duration_ms),
            });
        }
    }

    fn close_segment(&mut self, out: &mut Vec<Published>) {
        if let Some(segment) = self.segments.back_mut() {
            if !segment.complete && !segment.parts.is_empty() {
                segment.complete = true;
                let duration_ms = segment.duration_ms();
                out.push(Published::Segment {
                    msn: segment.msn,
                    duration_ms,
                });
            }
        }
        self.evict();
    }

    /// Keeps `window` complete segments (plus the one being written), and never less than
    /// three target durations of them (RFC 8216bis 6.2.2), and the inits they use.
    fn evict(&mut self) {
        let floor_ms = 3 * 1000 * Millis::try_from(self.config.target_duration_s).unwrap_or(1);
        let mut complete = self.segments.iter().filter(|s| s.complete).count();
        let mut kept_ms: Millis = self
            .segments
            .iter()
            .filter(|s| s.complete)
            .map(Segment::duration_ms)
            .sum();
        while complete > self.config.window {
            let Some(oldest) = self.segments.front() else {
                break;
            };
            if !oldest.complete || kept_ms - oldest.duration_ms() < floor_ms {
                break;
            }
            kept_ms -= oldest.duration_ms();
            complete -= 1;
            if let Some(s) = self.segments.pop_front() {
                if s.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        let current = self.session.as_ref().map(|s| s.init);
        let segments = &self.segments;
        self.inits
            .retain(|i| Some(i.id) == current || segments.iter().any(|s| s.init == i.id));
    }
}
