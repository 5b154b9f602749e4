//! Per-camera ingest statistics for `/api/cameras`: what the publisher sends and how fast,
//! measured over a sliding window of media time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::http::rfc3339_ms;
use crate::media::{Frame, Millis, StreamInfo, Track};

/// Media time over which frame rate and bitrate are measured.
const WINDOW_MS: Millis = 5_000;

/// Frame rate and bitrate of one track over the last [`WINDOW_MS`] of media time.
#[derive(Debug, Default, Clone)]
pub struct RateMeter {
    samples: VecDeque<(Millis, usize)>,
}

impl RateMeter {
    pub fn add(&mut self, dts: Millis, bytes: usize) {
        if let Some(&(last, _)) = self.samples.back() {
            if dts < last {
                // A timestamp discontinuity: start measuring again.
                self.samples.clear();
            }
        }
        self.samples.push_back((dts, bytes));
        while let Some(&(first, _)) = self.samples.front() {
            if dts - first > WINDOW_MS {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    fn span_ms(&self) -> Option<f64> {
        let first = self.samples.front()?.0;
        let last = self.samples.back()?.0;
        (last > first).then(|| (last - first) as f64)
    }

    /// Frames per second; every sample but the first falls inside the measured span.
    pub fn fps(&self) -> Option<f64> {
        let span = self.span_ms()?;
        Some((self.samples.len() - 1) as f64 * 1000.0 / span)
    }

    /// Bits per second of payload.
    pub fn bitrate(&self) -> Option<f64> {
        let span = self.span_ms()?;
        let bytes: usize = self.samples.iter().skip(1).map(|&(_, b)| b).sum();
        Some(bytes as f64 * 8.0 * 1000.0 / span)
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[derive(Debug, Default)]
pub struct CameraStats {
    since: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    publisher: Option<SocketAddr>,
    info: Option<StreamInfo>,
    video: RateMeter,
    audio: RateMeter,
    video_frames: u64,
    audio_frames: u64,
    bytes: u64,
    unsupported: Vec<String>,
}

impl CameraStats {
    pub fn on_publish(&mut self, peer: SocketAddr, now: SystemTime) {
        self.since = Some(now);
        self.publisher = Some(peer);
        self.info = None;
        self.video.clear();
        self.audio.clear();
        self.unsupported.clear();
    }

    pub fn on_info(&mut self, info: &StreamInfo) {
        self.info = Some(info.clone());
    }

    pub fn on_frame(&mut self, frame: &Frame) {
        match frame.track {
            Track::Video => {
                self.video_frames += 1;
                self.video.add(frame.dts, frame.data.len());
            }
            Track::Audio => {
                self.audio_frames += 1;
                self.audio.add(frame.dts, frame.data.len());
            }
        }
    }

    pub fn on_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    pub fn on_unsupported(&mut self, track: Track, what: &str) {
        let message = format!("{}: {what}", track.as_str());
        if !self.unsupported.contains(&message) {
            self.unsupported.push(message);
        }
    }

    pub fn on_end(&mut self) {
        self.last_seen = Some(SystemTime::now());
        self.publisher = None;
        self.video.clear();
        self.audio.clear();
    }

    /// When the last publisher left.
    pub fn last_seen(&self) -> Option<SystemTime> {
        self.last_seen
    }

    pub fn snapshot(&self, live: bool) -> StatsSnapshot {
        let video = self.info.as_ref().and_then(|i| i.video.as_ref());
        let audio = self.info.as_ref().and_then(|i| i.audio.as_ref());
        let vb = self.video.bitrate();
        let ab = self.audio.bitrate();
        StatsSnapshot {
            live,
            since: live.then_some(self.since).flatten().map(rfc3339_ms),
            last_seen: self.last_seen.map(rfc3339_ms),
            publisher: if live { self.publisher } else { None },
            codec: video.map(|_| "h264".to_string()),
            codec_string: video.map(|v| v.codec_string()),
            profile: video.map(|v| v.profile_name().to_string()),
            level: video.map(|v| f64::from(v.level_idc) / 10.0),
            width: video.map(|v| v.width),
            height: video.map(|v| v.height),
            resolution: video.map(|v| format!("{}x{}", v.width, v.height)),
            fps: self.video.fps().map(round2),
            video_bitrate: vb.map(|b| b.round() as u64),
            audio_bitrate: ab.map(|b| b.round() as u64),
            bitrate: match (vb, ab) {
                (None, None) => None,
                (v, a) => Some((v.unwrap_or(0.0) + a.unwrap_or(0.0)).round() as u64),
            },
            audio_codec: audio.map(|_| "aac".to_string()),
            audio_codec_string: audio.map(|a| a.codec_string()),
            audio_sample_rate: audio.map(|a| a.sample_rate),
            audio_channels: audio.map(|a| a.channels),
            video_frames: self.video_frames,
            audio_frames: self.audio_frames,
            bytes: self.bytes,
            unsupported: self.unsupported.clone(),
        }
    }
}

/// What `/api/cameras` reports for one camera.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsSnapshot {
    pub live: bool,
    pub since: Option<String>,
    pub last_seen: Option<String>,
    pub publisher: Option<SocketAddr>,
    pub codec: Option<String>,
    pub codec_string: Option<String>,
    pub profile: Option<String>,
    pub level: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub resolution: Option<String>,
    /// Measured video frame rate.
    pub fps: Option<f64>,
    /// Measured bitrates in bits per second.
    pub video_bitrate: Option<u64>,
    pub audio_bitrate: Option<u64>,
    pub bitrate: Option<u64>,
    pub audio_codec: Option<String>,
    pub audio_codec_string: Option<String>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// RTMP payload bytes received since the worker started.
    pub bytes: u64,
    /// What the publisher sent that Kamera cannot use (e.g. an unsupported codec).
    pub unsupported: Vec<String>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_measures_fps_and_bitrate_over_media_time() {
        let mut m = RateMeter::default();
        for i in 0..=250 {
            m.add(i * 40, 5_000);
        }
        // 25 fps, 5000 bytes per frame = 1 Mbit/s.
        assert!((m.fps().expect("fps") - 25.0).abs() < 0.01);
        assert!((m.bitrate().expect("bitrate") - 1_000_000.0).abs() < 1.0);
    }

    #[test]
    fn rate_meter_restarts_on_backwards_timestamps() {
        let mut m = RateMeter::default();
        m.add(10_000, 1);
        m.add(10_040, 1);
        m.add(0, 1);
        assert_eq!(m.fps(), None);
    }
}
