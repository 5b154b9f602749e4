//! The media model every consumer shares: codec configuration and access units with
//! normalised 64-bit timestamps. Produced once by the demuxer; read by HLS, recording, frames.

use bytes::Bytes;

/// Media timestamps are in milliseconds, the RTMP clock, widened to 64 bits and monotonic.
pub type Millis = i64;

/// A track within a camera's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Video,
    Audio,
}

impl Track {
    /// Label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Video => "video",
            Track::Audio => "audio",
        }
    }
}

/// The video codec of a stream, with the profile, tier and level its decoder configuration
/// record declares (what the RFC 6381 codec string and `/api/cameras` report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264/AVC: `avc1` sample entry with an `avcC` record.
    H264 {
        profile_idc: u8,
        /// `constraint_set0_flag`..`constraint_set5_flag` and the reserved bits, as one byte.
        constraint_flags: u8,
        level_idc: u8,
    },
    /// H.265/HEVC: `hvc1` sample entry with an `hvcC` record.
    H265 {
        /// `general_profile_space` (0 in every stream seen in practice).
        profile_space: u8,
        /// `general_tier_flag`: the High tier.
        high_tier: bool,
        profile_idc: u8,
        /// `general_profile_compatibility_flags`, flag 0 in the most significant bit (as coded).
        compatibility_flags: u32,
        /// The six bytes of `general_constraint_indicator_flags`.
        constraint_flags: [u8; 6],
        /// `general_level_idc`: 30 × the level number (120 = level 4).
        level_idc: u8,
    },
}

impl VideoCodec {
    /// The codec's short name in `/api/cameras` and logs: `h264` or `h265`.
    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::H264 { .. } => "h264",
            VideoCodec::H265 { .. } => "h265",
        }
    }

    /// The level as a number (3.1 for H.264 `level_idc` 31, 4 for H.265 `level_idc` 120).
    pub fn level(&self) -> f64 {
        match self {
            VideoCodec::H264 { level_idc, .. } => f64::from(*level_idc) / 10.0,
            VideoCodec::H265 { level_idc, .. } => f64::from(*level_idc) / 30.0,
        }
    }
}

/// Video configuration from the decoder configuration record (RTMP sequence header, or built
/// by retina from an RTSP camera's parameter sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    pub codec: VideoCodec,
    /// The decoder configuration record as sent: the `avcC` (H.264) or `hvcC` (H.265) box
    /// payload.
    pub record: Bytes,
    /// Video parameter sets (H.265 only; without length prefixes).
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets (without length prefixes).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (without length prefixes).
    pub pps: Vec<Bytes>,
    /// Size in bytes of each NAL unit's length prefix in access units (usually 4).
    pub nal_length_size: u8,
    pub width: u32,
    pub height: u32,
}

impl VideoConfig {
    /// RFC 6381 codec string (ISO/IEC 14496-15 Annex E for H.265), e.g. `avc1.64001f` or
    /// `hvc1.1.6.L120.90`.
    pub fn codec_string(&self) -> String {
        match &self.codec {
            VideoCodec::H264 {
                profile_idc,
                constraint_flags,
                level_idc,
            } => format!("avc1.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}"),
            VideoCodec::H265 {
                profile_space,
                high_tier,
                profile_idc,
                compatibility_flags,
                constraint_flags,
                level_idc,
            } => {
                // 1. profile space as no letter or A/B/C, then the profile number;
                // 2. the compatibility flags in reverse bit order, hexadecimal;
                // 3. the tier as L/H, then the level number;
                // 4. each constraint byte in hexadecimal, trailing zero bytes omitted but the
                //    first always kept (Chromium's parser wants at least one).
                let space = match profile_space {
                    1 => "A",
                    2 => "B",
                    3 => "C",
                    _ => "",
                };
                let tier = if *high_tier { 'H' } else { 'L' };
                let mut s = format!(
                    "hvc1.{space}{profile_idc}.{:X}.{tier}{level_idc}",
                    compatibility_flags.reverse_bits()
                );
                let used = constraint_flags
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(1, |i| i + 1);
                for b in &constraint_flags[..used] {
                    s.push_str(&format!(".{b:X}"));
                }
                s
            }
        }
    }

    /// Human name of the profile.
    pub fn profile_name(&self) -> &'static str {
        match self.codec {
            VideoCodec::H264 {
                profile_idc,
                constraint_flags,
                ..
            } => match profile_idc {
                66 if constraint_flags & 0x40 != 0 => "Constrained Baseline",
                66 => "Baseline",
                77 => "Main",
                88 => "Extended",
                100 => "High",
                110 => "High 10",
                122 => "High 4:2:2",
                244 => "High 4:4:4 Predictive",
                _ => "Unknown",
            },
            VideoCodec::H265 { profile_idc, .. } => match profile_idc {
                1 => "Main",
                2 => "Main 10",
                3 => "Main Still Picture",
                4 => "Format Range Extensions",
                _ => "Unknown",
            },
        }
    }
}

/// AAC configuration from the AAC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The AudioSpecificConfig as sent (the `esds` decoder-specific info).
    pub asc: Bytes,
    /// MPEG-4 audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl AudioConfig {
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// Samples per AAC frame (1024 for every object type Kamera accepts).
    pub fn samples_per_frame(&self) -> u32 {
        1024
    }
}

/// The codec configuration of a camera's current publish session.
/// A new value (new `version`) means decoders and muxers must start over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamInfo {
    /// Increases by one every time the configuration changes within the worker's life.
    pub version: u64,
    pub video: Option<VideoConfig>,
    pub audio: Option<AudioConfig>,
}

/// One access unit: a whole video picture (length-prefixed NAL units, as in MP4) or one AAC
/// frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub track: Track,
    /// Decode timestamp, monotonic per track.
    pub dts: Millis,
    /// Presentation timestamp (`dts` + composition offset; may be below `dts` for odd encoders).
    pub pts: Millis,
    /// A random access point (an H.264 IDR picture, an H.265 IRAP picture). Every audio frame
    /// is one.
    pub keyframe: bool,
    pub data: Bytes,
}
