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

/// H.264 configuration from the AVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// The AVCDecoderConfigurationRecord as sent (the `avcC` box payload, decoder extradata).
    pub avcc: Bytes,
    /// Sequence parameter sets (without length prefixes).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (without length prefixes).
    pub pps: Vec<Bytes>,
    /// Size in bytes of each NAL unit's length prefix in access units (usually 4).
    pub nal_length_size: u8,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

impl VideoConfig {
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// Human name of the H.264 profile.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_flags & 0x40 != 0 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            _ => "Unknown",
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

/// One access unit: a whole video picture (AVCC length-prefixed NAL units) or one AAC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub track: Track,
    /// Decode timestamp, monotonic per track.
    pub dts: Millis,
    /// Presentation timestamp (`dts` + composition offset; may be below `dts` for odd encoders).
    pub pts: Millis,
    /// A random access point (IDR picture). Every audio frame is one.
    pub keyframe: bool,
    pub data: Bytes,
}
