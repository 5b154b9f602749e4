//! Real H.264/AAC media for tests: a short clip encoded by the `ffmpeg` CLI into FLV and run
//! through the worker's own demuxer, so tests see exactly what the hub would deliver.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::media::{Frame, StreamInfo, VideoCodec, VideoConfig};
use crate::rtmp::demux::{Demuxer, Output};

/// One demuxed session.
#[derive(Debug, Clone)]
pub struct Clip {
    pub info: Arc<StreamInfo>,
    pub frames: Vec<Frame>,
}

/// A 4 s, 320x180, 25 fps clip with a keyframe every 25 frames (with B-frames) and
/// 44.1 kHz stereo AAC, encoded once per test process.
pub fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("clip.flv");
        encode(&path);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading clip: {e}"));
        demux_flv(&data)
    })
}

fn encode(path: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "4", "-ac", "2"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-bf",
            "2",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "flv"])
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("running ffmpeg: {e}"));
    assert!(status.success(), "ffmpeg failed to encode the test clip");
}

/// Parses an FLV file's tags and feeds them to the demuxer like RTMP messages.
pub fn demux_flv(data: &[u8]) -> Clip {
    let mut demuxer = Demuxer::default();
    let mut info = None;
    let mut frames = Vec::new();
    let mut pos = 9 + 4; // header, PreviousTagSize0
    while pos + 11 <= data.len() {
        let kind = data[pos];
        let size = usize::from(data[pos + 1]) << 16
            | usize::from(data[pos + 2]) << 8
            | usize::from(data[pos + 3]);
        let ts = u32::from(data[pos + 7]) << 24
            | u32::from(data[pos + 4]) << 16
            | u32::from(data[pos + 5]) << 8
            | u32::from(data[pos + 6]);
        let body = Bytes::copy_from_slice(&data[pos + 11..pos + 11 + size]);
        pos += 11 + size + 4;
        let out = match kind {
            8 => demuxer.audio(&body, ts),
            9 => demuxer.video(&body, ts),
            _ => continue,
        }
        .unwrap_or_else(|e| panic!("demuxing test clip: {e}"));
        for o in out {
            match o {
                Output::Config { video, audio } => {
                    info = Some(Arc::new(StreamInfo {
                        version: 1,
                        video,
                        audio,
                    }))
                }
                Output::Frame(f) => frames.push(f),
                _ => {}
            }
        }
    }
    Clip {
        info: info.unwrap_or_else(|| panic!("test clip has no configuration")),
        frames,
    }
}

/// A 640x360 H.264 High profile configuration with a minimal SPS and PPS, for tests that need
/// a configuration but no decodable media.
pub fn video_config() -> VideoConfig {
    let sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]);
    let pps = Bytes::from_static(&[0x68, 0xeb, 0xe3]);
    let mut avcc = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, sps.len() as u8];
    avcc.extend_from_slice(&sps);
    avcc.extend_from_slice(&[1, 0, pps.len() as u8]);
    avcc.extend_from_slice(&pps);
    VideoConfig {
        codec: VideoCodec::H264 {
            profile_idc: 0x64,
            constraint_flags: 0,
            level_idc: 0x1f,
        },
        record: Bytes::from(avcc),
        vps: Vec::new(),
        sps: vec![sps],
        pps: vec![pps],
        nal_length_size: 4,
        width: 640,
        height: 360,
    }
}
