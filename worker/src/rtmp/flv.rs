//! FLV tag bodies as RTMP carries them (video message type 9, audio type 8): which codec,
//! sequence headers, and coded frames. Pure parsing; no state.

use bytes::Bytes;

use crate::media::AudioConfig;

/// A parsed video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVC sequence header: an AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// One coded picture: AVCC length-prefixed NAL units.
    AvcFrame {
        keyframe: bool,
        /// Composition time offset (PTS − DTS) in milliseconds.
        composition_time: i32,
        data: Bytes,
    },
    /// End of sequence, or a video info/command frame: nothing to decode.
    Ignored,
    /// A codec Kamera does not accept (yet).
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
    #[error("unknown AAC packet type {0}")]
    AacPacketType(u8),
    #[error("invalid AudioSpecificConfig: {0}")]
    AudioConfig(&'static str),
}

const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_INFO: u8 = 5;
const CODEC_AVC: u8 = 7;
const SOUND_FORMAT_AAC: u8 = 10;

/// Parses the body of an RTMP video message.
pub fn parse_video(data: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Empty("video"))?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: the codec is a FourCC after the header byte.
        let fourcc = data
            .get(1..5)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_else(|| "?".into());
        return Ok(VideoTag::Unsupported(format!(
            "enhanced RTMP video codec {fourcc:?} (only H.264 is supported)"
        )));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Ok(VideoTag::Unsupported(format!(
            "FLV video codec {codec} ({}); only H.264 (7) is supported",
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
        0 => Ok(VideoTag::AvcSequenceHeader(data.slice(5..))),
        1 => Ok(VideoTag::AvcFrame {
            keyframe: frame_type == FRAME_TYPE_KEY,
            composition_time,
            data: data.slice(5..),
        }),
        2 => Ok(VideoTag::Ignored),
        other => Err(FlvError::AvcPacketType(other)),
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
            Ok(VideoTag::AvcSequenceHeader(Bytes::from_static(&[
                1, 0x64, 0, 0x1f
            ])))
        );
    }

    #[test]
    fn keyframe_and_composition_time() {
        let key = Bytes::from_static(&[0x17, 1, 0, 0, 0x50, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&key),
            Ok(VideoTag::AvcFrame {
                keyframe: true,
                composition_time: 80,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65])
            })
        );
        let inter = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        assert!(matches!(
            parse_video(&inter),
            Ok(VideoTag::AvcFrame {
                keyframe: false,
                ..
            })
        ));
    }

    #[test]
    fn negative_composition_time_is_sign_extended() {
        let tag = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41]);
        match parse_video(&tag) {
            Ok(VideoTag::AvcFrame {
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
        let hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1']);
        assert!(matches!(parse_video(&hevc), Ok(VideoTag::Unsupported(m)) if m.contains("hvc1")));
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
}
