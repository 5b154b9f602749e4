//! Turns one publisher's RTMP audio/video messages into codec configuration and access units
//! with normalised timestamps. Stateful per session; no I/O. An RTSP pull (`rtsp/`) feeds the
//! same demuxer with configurations and access units retina already parsed, so both sources
//! share the announcement and timestamp rules.

use bytes::Bytes;

use super::flv::{self, AudioTag, FlvError, VideoFormat, VideoTag};
use super::h264::{self, H264Error};
use super::h265::{self, H265Error};
use super::timeline::{Mapped, Timeline};
use crate::media::{AudioConfig, Frame, Millis, Track, VideoCodec, VideoConfig};

/// What one message produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The configuration for the frames that follow (sent before the first frame and on change).
    Config {
        video: Option<VideoConfig>,
        audio: Option<AudioConfig>,
    },
    Frame(Frame),
    /// The publisher sent a codec Kamera does not accept; reported once per session and track.
    Unsupported {
        track: Track,
        what: String,
    },
    /// The publisher sent something well-formed Kamera has no use for (e.g. enhanced RTMP
    /// colour metadata); the stream goes on. Reported once per session and kind.
    Skipped {
        what: &'static str,
    },
    /// A timestamp jump was smoothed over.
    Discontinuity {
        track: Track,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error(transparent)]
    Flv(#[from] FlvError),
    #[error("invalid AVC sequence header: {0}")]
    AvcConfig(#[from] H264Error),
    #[error("invalid HEVC sequence header: {0}")]
    HevcConfig(#[from] H265Error),
}

#[derive(Debug, Default)]
pub struct Demuxer {
    timeline: Timeline,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    /// What was last announced with `Output::Config`.
    announced: Option<(Option<VideoConfig>, Option<AudioConfig>)>,
    reported: [bool; 2],
    /// What `Output::Skipped` already reported this session.
    skipped: Vec<&'static str>,
}

impl Demuxer {
    /// Handles one video message with its RTMP timestamp.
    pub fn video(&mut self, data: &Bytes, timestamp: u32) -> Result<Vec<Output>, DemuxError> {
        match flv::parse_video(data)? {
            VideoTag::SequenceHeader { format, record } => {
                self.video = Some(match format {
                    VideoFormat::Avc => h264::parse_avcc(record)?,
                    VideoFormat::Hevc => h265::parse_hvcc(record)?,
                });
                Ok(Vec::new())
            }
            VideoTag::Frame {
                format,
                keyframe,
                composition_time,
                data,
            } => {
                let keyframe = match (&self.video, format) {
                    // Nothing can decode a picture before its sequence header, or a picture of
                    // another codec than the header's.
                    (None, _) => return Ok(Vec::new()),
                    _ if data.is_empty() => return Ok(Vec::new()),
                    (Some(v), VideoFormat::Avc) if matches!(v.codec, VideoCodec::H264 { .. }) => {
                        keyframe
                    }
                    // The pictures themselves say where decoding can start (an IRAP NAL unit),
                    // whatever the tag's frame type claims.
                    (Some(v), VideoFormat::Hevc) if matches!(v.codec, VideoCodec::H265 { .. }) => {
                        h265::is_irap(&data, v.nal_length_size)
                    }
                    _ => return Ok(Vec::new()),
                };
                let mapped = self.timeline.map(Track::Video, timestamp);
                Ok(self.emit(Track::Video, mapped, composition_time, keyframe, data))
            }
            VideoTag::Ignored => Ok(Vec::new()),
            VideoTag::Skipped(what) => Ok(self.skipped(what)),
            VideoTag::Unsupported(what) => Ok(self.unsupported(Track::Video, what)),
        }
    }

    /// Handles one audio message with its RTMP timestamp.
    pub fn audio(&mut self, data: &Bytes, timestamp: u32) -> Result<Vec<Output>, DemuxError> {
        match flv::parse_audio(data)? {
            AudioTag::AacSequenceHeader(asc) => {
                self.audio = Some(flv::parse_audio_specific_config(asc)?);
                Ok(Vec::new())
            }
            AudioTag::AacFrame(data) => {
                if self.audio.is_none() || data.is_empty() {
                    return Ok(Vec::new());
                }
                let mapped = self.timeline.map(Track::Audio, timestamp);
                Ok(self.emit(Track::Audio, mapped, 0, true, data))
            }
            AudioTag::Unsupported(what) => Ok(self.unsupported(Track::Audio, what)),
        }
    }

    /// Sets the video configuration for the access units that follow (RTSP: from retina's
    /// parameters, at `PLAY` and whenever the camera sends new ones).
    pub fn configure_video(&mut self, config: VideoConfig) {
        self.video = Some(config);
    }

    /// Sets the audio configuration for the access units that follow (RTSP).
    pub fn configure_audio(&mut self, config: AudioConfig) {
        self.audio = Some(config);
    }

    /// One access unit already assembled by the source (RTSP: retina's frames, AVCC
    /// length-prefixed for video), at a timestamp widened to 64-bit milliseconds. RTP carries
    /// presentation times only, so the decode time is the presentation time (streams with
    /// B-frames are not supported from RTSP; IP cameras do not send them).
    pub fn access_unit(
        &mut self,
        track: Track,
        millis: Millis,
        keyframe: bool,
        data: Bytes,
    ) -> Vec<Output> {
        let configured = match track {
            Track::Video => self.video.is_some(),
            Track::Audio => self.audio.is_some(),
        };
        if !configured || data.is_empty() {
            return Vec::new();
        }
        let mapped = self.timeline.map_extended(track, millis);
        let keyframe = keyframe || track == Track::Audio;
        self.emit(track, mapped, 0, keyframe, data)
    }

    /// The frame at `mapped`, after the configuration announcement and the discontinuity
    /// report it needs.
    fn emit(
        &mut self,
        track: Track,
        mapped: Mapped,
        composition_time: i32,
        keyframe: bool,
        data: Bytes,
    ) -> Vec<Output> {
        let mut out = self.announce();
        if mapped.discontinuity {
            out.push(Output::Discontinuity { track });
        }
        out.push(Output::Frame(Frame {
            track,
            dts: mapped.dts,
            pts: mapped.dts + i64::from(composition_time),
            keyframe,
            data,
        }));
        out
    }

    /// Announces the configuration lazily, at the first frame after a change, so that the
    /// video and audio sequence headers a publisher sends back to back make one announcement.
    fn announce(&mut self) -> Vec<Output> {
        let current = (self.video.clone(), self.audio.clone());
        if self.announced.as_ref() == Some(&current) {
            return Vec::new();
        }
        self.announced = Some(current.clone());
        vec![Output::Config {
            video: current.0,
            audio: current.1,
        }]
    }

    /// Reports something well-formed but unused, once per session and kind.
    fn skipped(&mut self, what: &'static str) -> Vec<Output> {
        if self.skipped.contains(&what) {
            return Vec::new();
        }
        self.skipped.push(what);
        vec![Output::Skipped { what }]
    }

    /// Reports a codec Kamera does not accept, once per session and track.
    pub fn unsupported(&mut self, track: Track, what: String) -> Vec<Output> {
        let t = track as usize;
        if self.reported[t] {
            return Vec::new();
        }
        self.reported[t] = true;
        vec![Output::Unsupported { track, what }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::h264::tests::{avcc_record, SPS_240P_BASELINE};

    fn seq_header() -> Bytes {
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend_from_slice(&avcc_record(SPS_240P_BASELINE, &[0x68, 0xce, 0x3c, 0x80]));
        Bytes::from(tag)
    }

    fn picture(key: bool, cts: i32) -> Bytes {
        let c = cts.to_be_bytes();
        let first = if key { 0x17 } else { 0x27 };
        Bytes::from(vec![first, 1, c[1], c[2], c[3], 0, 0, 0, 2, 0x65, 0x88])
    }

    fn frames(out: &[Output]) -> Vec<&Frame> {
        out.iter()
            .filter_map(|o| match o {
                Output::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn config_is_announced_once_before_the_first_frame() {
        let mut d = Demuxer::default();
        assert!(d.video(&seq_header(), 0).expect("header").is_empty());
        assert!(d
            .audio(&Bytes::from_static(&[0xaf, 0, 0x12, 0x10]), 0)
            .expect("asc")
            .is_empty());
        let out = d.video(&picture(true, 0), 0).expect("frame");
        match &out[0] {
            Output::Config {
                video: Some(v),
                audio: Some(a),
            } => {
                assert_eq!((v.width, v.height), (320, 240));
                assert_eq!(a.sample_rate, 44100);
            }
            other => panic!("expected config first, got {other:?}"),
        }
        let again = d.video(&picture(false, 0), 33).expect("frame");
        assert_eq!(again.len(), 1, "no second announcement: {again:?}");
    }

    #[test]
    fn pts_is_dts_plus_composition_time_and_keyframes_are_flagged() {
        let mut d = Demuxer::default();
        d.video(&seq_header(), 0).expect("header");
        let out = d.video(&picture(true, 66), 1000).expect("frame");
        let f = frames(&out)[0];
        assert_eq!((f.dts, f.pts, f.keyframe), (1000, 1066, true));
        let out = d.video(&picture(false, -33), 1033).expect("frame");
        let f = frames(&out)[0];
        assert_eq!((f.dts, f.pts, f.keyframe), (1033, 1000, false));
        assert_eq!(&f.data[..], &[0, 0, 0, 2, 0x65, 0x88]);
    }

    #[test]
    fn access_units_from_a_parsed_source_share_the_rules() {
        let mut d = Demuxer::default();
        let au = Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]);
        assert!(
            d.access_unit(Track::Video, 0, true, au.clone()).is_empty(),
            "nothing before a configuration"
        );
        d.configure_video(
            h264::parse_avcc(avcc_record(SPS_240P_BASELINE, &[0x68, 0xce, 0x3c, 0x80]))
                .expect("avcc"),
        );
        let out = d.access_unit(Track::Video, 1 << 33, true, au.clone());
        assert!(matches!(
            &out[0],
            Output::Config {
                video: Some(_),
                audio: None
            }
        ));
        assert_eq!(frames(&out)[0].dts, 1 << 33, "64-bit time is kept");
        let out = d.access_unit(Track::Video, 40, false, au);
        assert!(matches!(
            &out[0],
            Output::Discontinuity {
                track: Track::Video
            }
        ));
        let f = frames(&out)[0];
        assert_eq!(
            (f.dts, f.pts, f.keyframe),
            ((1 << 33) + 1, (1 << 33) + 1, false)
        );
    }

    #[test]
    fn frames_before_a_sequence_header_are_dropped() {
        let mut d = Demuxer::default();
        assert!(d.video(&picture(true, 0), 0).expect("ok").is_empty());
        assert!(d
            .audio(&Bytes::from_static(&[0xaf, 1, 0x21]), 0)
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn audio_only_streams_work() {
        let mut d = Demuxer::default();
        d.audio(&Bytes::from_static(&[0xaf, 0, 0x11, 0x90]), 0)
            .expect("asc");
        let out = d
            .audio(&Bytes::from_static(&[0xaf, 1, 0x21, 0x10]), 23)
            .expect("frame");
        assert!(matches!(
            &out[0],
            Output::Config {
                video: None,
                audio: Some(_)
            }
        ));
        assert_eq!(frames(&out)[0].track, Track::Audio);
    }

    #[test]
    fn unsupported_codec_is_reported_once() {
        let mut d = Demuxer::default();
        let tag = Bytes::from_static(&[0x22, 0, 0, 0]);
        assert!(matches!(
            &d.video(&tag, 0).expect("ok")[..],
            [Output::Unsupported {
                track: Track::Video,
                ..
            }]
        ));
        assert!(d.video(&tag, 40).expect("ok").is_empty());
    }

    #[test]
    fn enhanced_rtmp_hevc_is_configured_and_irap_pictures_are_keyframes() {
        use crate::rtmp::h265::tests::{hvcc_record, PPS_1080P, SPS_1080P, VPS_1080P};
        let mut d = Demuxer::default();
        let mut start = vec![0x90, b'h', b'v', b'c', b'1'];
        start.extend_from_slice(&hvcc_record(VPS_1080P, SPS_1080P, PPS_1080P));
        assert!(d.video(&Bytes::from(start), 0).expect("header").is_empty());
        // Metadata (colour info) is reported once and changes nothing.
        let meta = Bytes::from_static(&[0xd4, b'h', b'v', b'c', b'1', 2, 0, 9]);
        assert!(matches!(
            &d.video(&meta, 0).expect("ok")[..],
            [Output::Skipped { .. }]
        ));
        assert!(d.video(&meta, 0).expect("ok").is_empty());
        // A CRA picture (NAL type 21) in a tag flagged inter is a keyframe; a TRAIL_R picture
        // (type 1) flagged key is not.
        let cra =
            Bytes::from_static(&[0xa1, b'h', b'v', b'c', b'1', 0, 0, 0x50, 0, 0, 0, 2, 42, 1]);
        let out = d.video(&cra, 1000).expect("frame");
        let Output::Config { video: Some(v), .. } = &out[0] else {
            panic!("expected the configuration first: {out:?}");
        };
        assert_eq!((v.codec.name(), v.width, v.height), ("h265", 1920, 1080));
        let f = frames(&out)[0];
        assert_eq!((f.dts, f.pts, f.keyframe), (1000, 1080, true));
        let trail = Bytes::from_static(&[0x93, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 2, 1]);
        assert!(!frames(&d.video(&trail, 1200).expect("frame"))[0].keyframe);
        // An H.264 picture cannot follow an H.265 sequence header.
        assert!(d.video(&picture(true, 0), 1400).expect("ok").is_empty());
    }

    #[test]
    fn av1_and_vp9_are_refused_once_per_session() {
        let mut d = Demuxer::default();
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 0x81]);
        assert!(matches!(
            &d.video(&av1, 0).expect("ok")[..],
            [Output::Unsupported { track: Track::Video, what }] if what.contains("AV1")
        ));
        let vp9 = Bytes::from_static(&[0x91, b'v', b'p', b'0', b'9', 0]);
        assert!(d.video(&av1, 40).expect("ok").is_empty());
        assert!(d.video(&vp9, 80).expect("ok").is_empty());
    }

    #[test]
    fn malformed_sequence_header_is_an_error() {
        let mut d = Demuxer::default();
        let bad =
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 40, 0x67]);
        assert!(matches!(d.video(&bad, 0), Err(DemuxError::AvcConfig(_))));
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Demuxer::default();
        d.video(&seq_header(), 0).expect("header");
        let mut seed = 0x2545_f491_u32;
        for i in 0..5000u32 {
            let len = (seed % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let b = Bytes::from(bytes);
            let _ = d.video(&b, i * 33);
            let _ = d.audio(&b, i * 23);
        }
    }
}
