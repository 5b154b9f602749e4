//! The shared CMAF/fMP4 fragmenter: turns one session's hub frames into an init segment and
//! `moof`+`mdat` fragments. LL-HLS and recording both sit on it; it does no I/O and keeps no
//! clock of its own, so callers decide when to cut (parts, segments, files).
//!
//! Box serialisation is `mp4-atom`'s; this module decides timing, sample flags and layout.

mod init;
#[cfg(test)]
pub(crate) mod test_media;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use crate::media::{Frame, Millis, StreamInfo, Track};

pub const VIDEO_TRACK_ID: u32 = 1;
pub const AUDIO_TRACK_ID: u32 = 2;

/// Video media timescale (the MPEG 90 kHz clock).
const VIDEO_TIMESCALE: u32 = 90_000;
/// `sample_depends_on = 2`: a sync sample that depends on no other.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// Audio frames whose hub timestamps land within this of the expected 1024-sample step keep
/// exactly 1024 samples: RTMP's millisecond rounding must not make audio drift.
const AUDIO_JITTER_MS: i64 = 20;
/// Duration given to a lone held-back video sample when nothing better is known (30 fps).
const NOMINAL_VIDEO_TICKS: u32 = VIDEO_TIMESCALE / 30;

#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    #[error("stream has neither video nor audio configuration")]
    NoTracks,
    #[error("video dimensions {width}x{height} do not fit an MP4 sample entry")]
    Dimensions { width: u32, height: u32 },
    #[error("encoding {0} box: {1}")]
    Encode(&'static str, #[source] mp4_atom::Error),
}

/// One emitted moof+mdat.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// Complete `moof` + `mdat`.
    pub data: Bytes,
    /// DTS (ms, hub timeline) of the first sample (video if present, else audio).
    pub start_ms: i64,
    /// Media duration covered (video track if present).
    pub duration_ms: i64,
    /// The first video sample is a keyframe (or the fragment is audio-only).
    pub independent: bool,
    pub samples: usize,
}

/// A frame whose duration is not known yet, or a finished sample.
#[derive(Debug, Clone)]
struct Sample {
    dts_ms: Millis,
    /// Decode time in the track's timescale.
    time: u64,
    /// Filled in when the next frame of the track arrives.
    duration: u32,
    cts: i64,
    keyframe: bool,
    data: Bytes,
}

#[derive(Debug)]
struct TrackState {
    timescale: u32,
    /// Last pushed frame, waiting for its successor to know its duration.
    held: Option<Sample>,
    /// Complete samples not yet emitted.
    ready: Vec<Sample>,
    last_duration: Option<u32>,
    /// Decode time of the most recently pushed frame (survives `flush`).
    last_time: Option<u64>,
}

impl TrackState {
    fn new(timescale: u32) -> Self {
        Self {
            timescale,
            held: None,
            ready: Vec::new(),
            last_duration: None,
            last_time: None,
        }
    }

    fn ready_ticks(&self) -> u64 {
        self.ready.iter().map(|s| u64::from(s.duration)).sum()
    }

    fn ticks_to_ms(&self, ticks: u64) -> i64 {
        i64::try_from(ticks * 1000 / u64::from(self.timescale.max(1))).unwrap_or(i64::MAX)
    }

    /// Completes the held sample now that the next one starts at `next_time`.
    fn complete_held(&mut self, next_time: u64) {
        if let Some(mut held) = self.held.take() {
            let ticks = next_time.saturating_sub(held.time).max(1);
            held.duration = u32::try_from(ticks).unwrap_or(u32::MAX);
            self.last_duration = Some(held.duration);
            self.ready.push(held);
        }
    }

    /// Completes the held sample with a nominal duration (end of session, file close).
    fn flush_held(&mut self, nominal: u32) {
        if let Some(mut held) = self.held.take() {
            held.duration = self.last_duration.unwrap_or(nominal);
            self.ready.push(held);
        }
    }
}

/// Turns hub frames of one session (one StreamInfo) into an init segment and fragments.
/// A frame becomes a sample once the next frame of its track arrives (its duration is then
/// known); `flush` emits the held-back last samples with a nominal duration (previous duration,
/// or 1024 samples for AAC).
#[derive(Debug)]
pub struct Fragmenter {
    init: Bytes,
    video: Option<TrackState>,
    audio: Option<TrackState>,
    sequence: u32,
}

impl Fragmenter {
    pub fn new(info: Arc<StreamInfo>) -> Result<Self, Fmp4Error> {
        let init = Bytes::from(init::build(&info)?);
        Ok(Self {
            init,
            video: info
                .video
                .as_ref()
                .map(|_| TrackState::new(VIDEO_TIMESCALE)),
            audio: info
                .audio
                .as_ref()
                .map(|a| TrackState::new(a.sample_rate.max(1))),
            sequence: 0,
        })
    }

    /// `ftyp` + `moov`: video timescale 90000, audio timescale = sample rate.
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }

    /// Adds a frame; frames of a track must be in DTS order. Frames of a track the session
    /// has no configuration for are ignored.
    pub fn push(&mut self, frame: &Frame) {
        let Some(state) = (match frame.track {
            Track::Video => self.video.as_mut(),
            Track::Audio => self.audio.as_mut(),
        }) else {
            return;
        };
        let rate = i64::from(state.timescale);
        let clock = (frame.dts.max(0) as i128 * i128::from(rate) + 500) / 1000;
        let clock = u64::try_from(clock).unwrap_or(u64::MAX);
        let time = match (frame.track, state.last_time) {
            (Track::Audio, Some(last)) => {
                // Stay on the exact 1024-sample grid unless the hub clock moved away from it
                // (a gap or a jump), then resynchronise to the hub clock.
                let expected = last + 1024;
                let tolerance = u64::try_from(rate * AUDIO_JITTER_MS / 1000).unwrap_or(0);
                if clock.abs_diff(expected) <= tolerance {
                    expected
                } else {
                    clock.max(last + 1)
                }
            }
            (_, Some(last)) => clock.max(last + 1),
            (_, None) => clock,
        };
        state.complete_held(time);
        state.last_time = Some(time);
        let cts = (frame.pts - frame.dts).saturating_mul(rate) / 1000;
        state.held = Some(Sample {
            dts_ms: frame.dts,
            time,
            duration: 0,
            cts: cts.clamp(i64::from(i32::MIN), i64::from(i32::MAX)),
            keyframe: frame.keyframe || frame.track == Track::Audio,
            data: frame.data.clone(),
        });
    }

    /// Media time (ms) of complete samples not yet emitted, on the video track if the
    /// session has one, else on the audio track.
    pub fn pending_duration_ms(&self) -> i64 {
        match self.primary() {
            Some(t) => t.ticks_to_ms(t.ready_ticks()),
            None => 0,
        }
    }

    /// A `moof`+`mdat` of all complete samples; `None` if there are none.
    pub fn fragment(&mut self) -> Option<Fragment> {
        self.emit()
    }

    /// Like `fragment`, but keeps back the newest complete sample of the lead track (and the
    /// samples of other tracks from its time on): a fragment that would have been too long
    /// once that sample's duration became known. `None` unless two lead samples are complete.
    pub fn fragment_before_last(&mut self) -> Option<Fragment> {
        let lead = self.primary()?;
        if lead.ready.len() < 2 {
            return None;
        }
        let limit = lead.ready.last().map(|s| s.dts_ms)?;
        self.emit_before(Some(limit))
    }

    /// Like `fragment`, but also emits the held-back last samples (end of session, file close).
    pub fn flush(&mut self) -> Option<Fragment> {
        if let Some(v) = self.video.as_mut() {
            v.flush_held(NOMINAL_VIDEO_TICKS);
        }
        if let Some(a) = self.audio.as_mut() {
            a.flush_held(1024);
        }
        self.emit()
    }

    fn primary(&self) -> Option<&TrackState> {
        self.video.as_ref().or(self.audio.as_ref())
    }

    fn emit(&mut self) -> Option<Fragment> {
        self.emit_before(None)
    }

    /// Emits the complete samples that start before `limit` (all of them without a limit).
    fn emit_before(&mut self, limit: Option<Millis>) -> Option<Fragment> {
        let take = |t: &mut TrackState| match limit {
            None => std::mem::take(&mut t.ready),
            Some(limit) => {
                let keep = t.ready.iter().position(|s| s.dts_ms >= limit);
                let rest = keep.map_or_else(Vec::new, |i| t.ready.split_off(i));
                std::mem::replace(&mut t.ready, rest)
            }
        };
        let video = self.video.as_mut().map(take);
        let audio = self.audio.as_mut().map(take);
        let video = video.unwrap_or_default();
        let audio = audio.unwrap_or_default();
        if video.is_empty() && audio.is_empty() {
            return None;
        }
        self.sequence = self.sequence.wrapping_add(1);

        let (lead, lead_state) = if !video.is_empty() {
            (&video, self.video.as_ref())
        } else {
            (&audio, self.audio.as_ref())
        };
        let start_ms = lead.first().map_or(0, |s| s.dts_ms);
        let lead_ticks: u64 = lead.iter().map(|s| u64::from(s.duration)).sum();
        let duration_ms = lead_state.map_or(0, |t| t.ticks_to_ms(lead_ticks));
        let independent = match video.first() {
            Some(first) => first.keyframe,
            None => self.video.is_none(),
        };
        let samples = video.len() + audio.len();

        match encode_fragment(self.sequence, &video, &audio) {
            Ok(data) => Some(Fragment {
                data: Bytes::from(data),
                start_ms,
                duration_ms,
                independent,
                samples,
            }),
            Err(e) => {
                // Only reachable through a bug in sample bookkeeping: the values are clamped.
                tracing::error!(error = %e, samples, "dropping unencodable fragment");
                None
            }
        }
    }
}

fn traf(track_id: u32, samples: &[Sample], data_offset: i32) -> Traf {
    let video = track_id == VIDEO_TRACK_ID;
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(u32::try_from(s.data.len()).unwrap_or(u32::MAX)),
            flags: Some(if s.keyframe {
                FLAGS_SYNC
            } else {
                FLAGS_NON_SYNC
            }),
            cts: video.then_some(s.cts),
        })
        .collect();
    Traf {
        tfhd: Tfhd {
            track_id,
            default_base_is_moof: true,
            ..Default::default()
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: samples.first().map_or(0, |s| s.time),
        }),
        trun: vec![Trun {
            data_offset: Some(data_offset),
            samples: entries.into(),
        }],
        ..Default::default()
    }
}

fn encode_fragment(
    sequence: u32,
    video: &[Sample],
    audio: &[Sample],
) -> Result<Vec<u8>, Fmp4Error> {
    let video_bytes: usize = video.iter().map(|s| s.data.len()).sum();
    let audio_bytes: usize = audio.iter().map(|s| s.data.len()).sum();
    let build = |video_offset: i32, audio_offset: i32| {
        let mut traf_list = Vec::with_capacity(2);
        if !video.is_empty() {
            traf_list.push(traf(VIDEO_TRACK_ID, video, video_offset));
        }
        if !audio.is_empty() {
            traf_list.push(traf(AUDIO_TRACK_ID, audio, audio_offset));
        }
        Moof {
            mfhd: Mfhd {
                sequence_number: sequence,
            },
            traf: traf_list,
        }
    };

    // Offsets are relative to the moof (default-base-is-moof) and the moof's size does not
    // depend on their values, so measure once with placeholders, then encode for real.
    let mut probe = Vec::new();
    build(0, 0)
        .encode(&mut probe)
        .map_err(|e| Fmp4Error::Encode("moof", e))?;
    let mdat_payload = probe.len() + 8;
    let video_offset = i32::try_from(mdat_payload).unwrap_or(i32::MAX);
    let audio_offset = i32::try_from(mdat_payload + video_bytes).unwrap_or(i32::MAX);

    let mdat_size = 8 + video_bytes + audio_bytes;
    let mut out = Vec::with_capacity(probe.len() + mdat_size);
    build(video_offset, audio_offset)
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("moof", e))?;
    out.extend_from_slice(&u32::try_from(mdat_size).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in video.iter().chain(audio) {
        out.extend_from_slice(&s.data);
    }
    Ok(out)
}
