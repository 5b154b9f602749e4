//! FLV tag bodies as RTMP carries them (video message type 9, audio type 8): which codec,
//! sequence headers, and coded frames. Pure parsing; no state.

use bytes::Bytes;

use crate::media::AudioConfig;

/// The video codecs Kamera takes over RTMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// H.264: legacy FLV codec id 7, or enhanced RTMP FourCC `avc1`.
    Avc,
    /// H.265: enhanced RTMP FourCC `hvc1` (OBS 30+, FFmpeg 6.1+).
    Hevc,
}

/// A parsed video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// Sequence header: an AVCDecoderConfigurationRecord (H.264) or an
    /// HEVCDecoderConfigurationRecord (H.265).
    SequenceHeader { format: VideoFormat, record: Bytes },
    /// One coded picture: NAL units with length prefixes.
    Frame {
        format: VideoFormat,
        /// The publisher flagged it a keyframe.
        keyframe: bool,
        /// Composition time offset (PTS − DTS) in milliseconds.
        composition_time: i32,
        data: Bytes,
    },
    /// End of sequence, or a video info/command frame: nothing to decode.
    Ignored,
    /// Well-formed, but nothing Kamera uses (enhanced RTMP metadata such as colour info, an
    /// MPEG-2 TS sequence start): the stream goes on; reported once per session.
    Skipped(&'static str),
    /// A codec Kamera does not accept.
    Unsupported(String),
}

/// A parsed audio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC sequence header: an AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    /// One raw AAC frame.
    AacFrame(Bytes),
    Unsupported(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("empty {0} message")]
    Empty(&'static str),
    #[error("{0} message truncated: {1} bytes")]
    Truncated(&'static str, usize),
    #[error("unknown AVC packet type {0}")]
    AvcPacketType(u8),
    #[error("unknown enhanced RTMP video packet type {0}")]
    ExPacketType(u8),
    #[error("unknown AAC packet type {0}")]
    AacPacketType(u8),
    #[error("invalid AudioSpecificConfig: {0}")]
    AudioConfig(&'static str),
}

const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_INFO: u8 = 5;
const CODEC_AVC: u8 = 7;
const SOUND_FORMAT_AAC: u8 = 10;

/// Enhanced RTMP video packet types (the low four bits of the first byte when bit 7 is set).
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
const EX_MULTITRACK: u8 = 6;
const EX_MOD_EX: u8 = 7;

/// Parses the body of an RTMP video message.
pub fn parse_video(data: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Empty("video"))?;
    if first & 0x80 != 0 {
        return parse_enhanced_video(data);
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Ok(VideoTag::Unsupported(format!(
            "FLV video codec {codec} ({}); Kamera takes H.264 (7), and H.265 through enhanced RTMP",
            video_codec_name(codec)
        )));
    }
    if frame_type == FRAME_TYPE_INFO {
        return Ok(VideoTag::Ignored);
    }
    if data.len() < 5 {
        return Err(FlvError::Truncated("AVC video", data.len()));
    }
    let cts = i32::from_be_bytes([0, data[2], data[3], data[4]]);
    // Sign-extend the 24-bit composition time.
    let composition_time = (cts << 8) >> 8;
    match data[1] {
        0 => Ok(VideoTag::SequenceHeader {
            format: VideoFormat::Avc,
            record: data.slice(5..),
        }),
        1 => Ok(VideoTag::Frame {
            format: VideoFormat::Avc,
            keyframe: frame_type == FRAME_TYPE_KEY,
            composition_time,
            data: data.slice(5..),
        }),
        2 => Ok(VideoTag::Ignored),
        other => Err(FlvError::AvcPacketType(other)),
    }
}

/// Parses an enhanced RTMP video message (the "Enhanced RTMP" specification, v1 and v2):
/// `IsExHeader | FrameType (3 bits) | PacketType (4 bits)`, modifier extensions (v2), then a
/// FourCC and the packet's body.
fn parse_enhanced_video(data: &Bytes) -> Result<VideoTag, FlvError> {
    let truncated = || FlvError::Truncated("enhanced RTMP video", data.len());
    let byte = |i: usize| data.get(i).copied().ok_or_else(truncated);
    let frame_type = (data[0] >> 4) & 0x07;
    let mut packet_type = data[0] & 0x0f;
    let mut pos = 1usize;
    // ModEx (v2): size-prefixed modifiers (e.g. a nanosecond timestamp offset, which
    // millisecond media time does not need), each followed by the real packet type. Every
    // round consumes at least two bytes, so the loop ends with the data.
    while packet_type == EX_MOD_EX {
        let mut size = usize::from(byte(pos)?) + 1;
        pos += 1;
        if size == 256 {
            size = usize::from(u16::from_be_bytes([byte(pos)?, byte(pos + 1)?])) + 1;
            pos += 2;
        }
        pos += size;
        packet_type = byte(pos)? & 0x0f;
        pos += 1;
    }
    if frame_type == FRAME_TYPE_INFO && packet_type != EX_METADATA {
        // A video command (one byte, e.g. seek start/end) and no FourCC.
        return Ok(VideoTag::Ignored);
    }
    if packet_type == EX_MULTITRACK {
        return Ok(VideoTag::Unsupported(
            "enhanced RTMP multitrack video (one video track per stream is supported)".into(),
        ));
    }
    let fourcc = data.get(pos..pos + 4).ok_or_else(truncated)?;
    pos += 4;
    let format = match fourcc {
        b"hvc1" => VideoFormat::Hevc,
        b"avc1" => VideoFormat::Avc,
        other => {
            return Ok(VideoTag::Unsupported(format!(
                "enhanced RTMP video codec {:?} ({}); Kamera takes H.264 (avc1) and H.265 (hvc1)",
                String::from_utf8_lossy(other),
                fourcc_name(other)
            )))
        }
    };
    match packet_type {
        EX_SEQUENCE_START => Ok(VideoTag::SequenceHeader {
            format,
            record: data.slice(pos..),
        }),
        EX_CODED_FRAMES | EX_CODED_FRAMES_X => {
            let composition_time = if packet_type == EX_CODED_FRAMES {
                let cts = i32::from_be_bytes([0, byte(pos)?, byte(pos + 1)?, byte(pos + 2)?]);
                pos += 3;
                (cts << 8) >> 8
            } else {
                0
            };
            Ok(VideoTag::Frame {
                format,
                keyframe: frame_type == FRAME_TYPE_KEY,
                composition_time,
                data: data.slice(pos..),
            })
        }
        EX_SEQUENCE_END => Ok(VideoTag::Ignored),
        EX_METADATA => Ok(VideoTag::Skipped("enhanced RTMP video metadata")),
        EX_MPEG2TS_SEQUENCE_START => {
            Ok(VideoTag::Skipped("enhanced RTMP MPEG-2 TS sequence start"))
        }
        other => Err(FlvError::ExPacketType(other)),
    }
}

fn fourcc_name(fourcc: &[u8]) -> &'static str {
    match fourcc {
        b"av01" => "AV1",
        b"vp09" => "VP9",
        b"vp08" => "VP8",
        b"hev1" => "H.265 with in-band parameter sets",
        b"vvc1" => "H.266",
        _ => "unknown",
    }
}

/// Parses the body of an RTMP audio message.
pub fn parse_audio(data: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Empty("audio"))?;
    let format = first >> 4;
    if format != SOUND_FORMAT_AAC {
        return Ok(AudioTag::Unsupported(format!(
            "FLV sound format {format} ({}); only AAC (10) is supported",
            audio_codec_name(format)
        )));
    }
    let packet_type = *data.get(1).ok_or(FlvError::Truncated("AAC audio", 1))?;
    match packet_type {
        0 => Ok(AudioTag::AacSequenceHeader(data.slice(2..))),
        1 => Ok(AudioTag::AacFrame(data.slice(2..))),
        other => Err(FlvError::AacPacketType(other)),
    }
}

/// Parses an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
pub fn parse_audio_specific_config(asc: Bytes) -> Result<AudioConfig, FlvError> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let bits = asc
        .iter()
        .take(8)
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let total = 8 * asc.len().min(8) as u32;
    let mut used = 0u32;
    let mut take = |n: u32| -> Result<u32, FlvError> {
        if used + n > total {
            return Err(FlvError::AudioConfig("truncated"));
        }
        let v = (bits >> (total - used - n)) & ((1u64 << n) - 1);
        used += n;
        Ok(v as u32)
    };
    let mut object_type = take(5)?;
    if object_type == 31 {
        object_type = 32 + take(6)?;
    }
    let rate_index = take(4)?;
    let sample_rate = if rate_index == 15 {
        take(24)?
    } else {
        *RATES
            .get(rate_index as usize)
            .ok_or(FlvError::AudioConfig("reserved sampling frequency index"))?
    };
    let channels = take(4)?;
    if object_type == 0 || sample_rate == 0 {
        return Err(FlvError::AudioConfig("object type or sample rate is zero"));
    }
    Ok(AudioConfig {
        asc,
        object_type: object_type.min(255) as u8,
        sample_rate,
        channels: channels as u8,
    })
}

fn video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "VP6",
        5 => "VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard FLV id)",
        13 => "AV1 (non-standard FLV id)",
        _ => "unknown",
    }
}

fn audio_codec_name(id: u8) -> &'static str {
    match id {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        2 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        14 => "MP3 8 kHz",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_sequence_header_is_recognised() {
        let tag = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
        assert_eq!(
            parse_video(&tag),
            Ok(VideoTag::SequenceHeader {
                format: VideoFormat::Avc,
                record: Bytes::from_static(&[1, 0x64, 0, 0x1f])
            })
        );
    }

    #[test]
    fn keyframe_and_composition_time() {
        let key = Bytes::from_static(&[0x17, 1, 0, 0, 0x50, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&key),
            Ok(VideoTag::Frame {
                format: VideoFormat::Avc,
                keyframe: true,
                composition_time: 80,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65])
            })
        );
        let inter = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        assert!(matches!(
            parse_video(&inter),
            Ok(VideoTag::Frame {
                keyframe: false,
                ..
            })
        ));
    }

    #[test]
    fn negative_composition_time_is_sign_extended() {
        let tag = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41]);
        match parse_video(&tag) {
            Ok(VideoTag::Frame {
                composition_time, ..
            }) => assert_eq!(composition_time, -40),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn other_codecs_are_reported_not_failed() {
        let sorenson = Bytes::from_static(&[0x22, 0, 0]);
        assert!(
            matches!(parse_video(&sorenson), Ok(VideoTag::Unsupported(m)) if m.contains("Sorenson"))
        );
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 1]);
        assert!(
            matches!(parse_video(&av1), Ok(VideoTag::Unsupported(m)) if m.contains("av01") && m.contains("AV1"))
        );
        let vp9 = Bytes::from_static(&[0x91, b'v', b'p', b'0', b'9', 0]);
        assert!(matches!(parse_video(&vp9), Ok(VideoTag::Unsupported(m)) if m.contains("VP9")));
        let mp3 = Bytes::from_static(&[0x2f, 0xff]);
        assert!(matches!(parse_audio(&mp3), Ok(AudioTag::Unsupported(m)) if m.contains("MP3")));
    }

    #[test]
    fn malformed_tags_are_errors() {
        assert_eq!(parse_video(&Bytes::new()), Err(FlvError::Empty("video")));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 1, 0])),
            Err(FlvError::Truncated("AVC video", 3))
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 9, 0, 0, 0])),
            Err(FlvError::AvcPacketType(9))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf])),
            Err(FlvError::Truncated("AAC audio", 1))
        );
    }

    #[test]
    fn audio_specific_config_aac_lc_44100_stereo() {
        let cfg = parse_audio_specific_config(Bytes::from_static(&[0x12, 0x10])).expect("valid");
        assert_eq!(
            (cfg.object_type, cfg.sample_rate, cfg.channels),
            (2, 44100, 2)
        );
        assert_eq!(cfg.codec_string(), "mp4a.40.2");
        let cfg = parse_audio_specific_config(Bytes::from_static(&[0x11, 0x88])).expect("valid");
        assert_eq!((cfg.sample_rate, cfg.channels), (48000, 1));
        assert!(parse_audio_specific_config(Bytes::from_static(&[0x12])).is_err());
        assert!(parse_audio_specific_config(Bytes::new()).is_err());
    }

    /// The first bytes of enhanced RTMP video tags FFmpeg 9.0.2's flv muxer wrote for libx265.
    const FFMPEG_HVC1_SEQUENCE_START: &[u8] = &[0x90, b'h', b'v', b'c', b'1', 0x01, 0x01, 0x60];
    const FFMPEG_HVC1_KEYFRAME: &[u8] = &[
        0x91, b'h', b'v', b'c', b'1', 0x00, 0x01, 0x90, 0x00, 0x00, 0xfd, 0x54, 0x28, 0x01,
    ];
    const FFMPEG_HVC1_FRAME_X: &[u8] = &[
        0xa3, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x84, 0xf8, 0x00, 0x01, 0xe0,
    ];
    const FFMPEG_HVC1_COLOUR_INFO: &[u8] = &[
        0xd4, b'h', b'v', b'c', b'1', 0x02, 0x00, 0x09, b'c', b'o', b'l', b'o', b'r',
    ];

    #[test]
    fn enhanced_rtmp_hevc_tags_from_ffmpeg() {
        let b = Bytes::from_static;
        assert_eq!(
            parse_video(&b(FFMPEG_HVC1_SEQUENCE_START)),
            Ok(VideoTag::SequenceHeader {
                format: VideoFormat::Hevc,
                record: b(&[0x01, 0x01, 0x60])
            })
        );
        assert_eq!(
            parse_video(&b(FFMPEG_HVC1_KEYFRAME)),
            Ok(VideoTag::Frame {
                format: VideoFormat::Hevc,
                keyframe: true,
                composition_time: 400,
                data: b(&[0x00, 0x00, 0xfd, 0x54, 0x28, 0x01]),
            })
        );
        assert_eq!(
            parse_video(&b(FFMPEG_HVC1_FRAME_X)),
            Ok(VideoTag::Frame {
                format: VideoFormat::Hevc,
                keyframe: false,
                composition_time: 0,
                data: b(&[0x00, 0x00, 0x84, 0xf8, 0x00, 0x01, 0xe0]),
            })
        );
        assert_eq!(
            parse_video(&b(FFMPEG_HVC1_COLOUR_INFO)),
            Ok(VideoTag::Skipped("enhanced RTMP video metadata"))
        );
    }

    #[test]
    fn enhanced_rtmp_avc_negative_cts_mod_ex_and_commands() {
        let b = Bytes::from_static;
        // avc1 through the enhanced path, composition time −40.
        assert_eq!(
            parse_video(&b(&[
                0xa1, b'a', b'v', b'c', b'1', 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41
            ])),
            Ok(VideoTag::Frame {
                format: VideoFormat::Avc,
                keyframe: false,
                composition_time: -40,
                data: b(&[0, 0, 0, 1, 0x41]),
            })
        );
        // A ModEx timestamp offset (three bytes of nanoseconds), then CodedFramesX.
        assert_eq!(
            parse_video(&b(&[
                0x97, 2, 0, 0x01, 0x2c, 0x03, b'h', b'v', b'c', b'1', 7
            ])),
            Ok(VideoTag::Frame {
                format: VideoFormat::Hevc,
                keyframe: true,
                composition_time: 0,
                data: b(&[7]),
            })
        );
        // A command frame carries no FourCC; a sequence end is nothing to decode.
        assert_eq!(parse_video(&b(&[0xd1, 0])), Ok(VideoTag::Ignored));
        assert_eq!(
            parse_video(&b(&[0x92, b'h', b'v', b'c', b'1'])),
            Ok(VideoTag::Ignored)
        );
        assert_eq!(
            parse_video(&b(&[0x95, b'h', b'v', b'c', b'1'])),
            Ok(VideoTag::Skipped("enhanced RTMP MPEG-2 TS sequence start"))
        );
        assert!(
            matches!(parse_video(&b(&[0x96, 0])), Ok(VideoTag::Unsupported(m)) if m.contains("multitrack"))
        );
        assert_eq!(
            parse_video(&b(&[0x9f, b'h', b'v', b'c', b'1'])),
            Err(FlvError::ExPacketType(15))
        );
        for truncated in [
            &[0x90][..],
            &[0x90, b'h', b'v'],
            &[0x91, b'h', b'v', b'c', b'1', 0],
            &[0x97],
            &[0x97, 255],
        ] {
            assert!(
                matches!(
                    parse_video(&Bytes::copy_from_slice(truncated)),
                    Err(FlvError::Truncated(..))
                ),
                "{truncated:02x?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_enhanced_tags_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            first in 0x80u8..=0xff,
            fourcc in proptest::prop_oneof![
                proptest::strategy::Just(*b"hvc1"),
                proptest::strategy::Just(*b"avc1"),
                proptest::prelude::any::<[u8; 4]>()
            ],
        ) {
            let tag = [&[first][..], &fourcc, &body].concat();
            let _ = parse_video(&Bytes::from(tag));
            let _ = parse_video(&Bytes::from([&[first][..], &body].concat()));
        }
    }
}
