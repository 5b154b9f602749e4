//! H.265 end to end: a real libx265 publisher (the static FFmpeg of `imageio-ffmpeg`, whose
//! flv muxer sends enhanced RTMP `hvc1` as OBS 30+ and FFmpeg 6.1+ do, and announces `hvc1`
//! in `connect`'s `fourCcList` like OBS) into the real worker;
//! the API, the LL-HLS playlists and segments, the recording and the frames are checked with
//! Debian's `ffprobe`/`ffmpeg` and a real HLS parser.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kamera_tests::{hevc_clip, recording_files, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(60);

/// `codec_name,width,height` of the first video stream and the container's duration, as
/// `ffprobe` reads `path`.
fn probe(path: &Path) -> (String, Option<f64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height",
        ])
        .args(["-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let stream = lines.next().unwrap_or_default().trim().to_string();
    let duration = lines.next().and_then(|l| l.trim().parse().ok());
    (stream, duration)
}

/// Decodes every video frame of `path` with Debian's ffmpeg; returns how many there were.
fn decode_video(path: &Path) -> usize {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "decode errors: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// The RFC 6381 codec string of the `hvcC` box in an init segment, worked out here from the
/// record's bytes (ISO/IEC 14496-15 Annex E), independently of the worker's code.
fn codec_string_of_hvcc(init: &[u8]) -> String {
    let at = init
        .windows(4)
        .position(|w| w == b"hvcC")
        .expect("an hvcC box in the init segment");
    let r = &init[at + 4..];
    let space = ["", "A", "B", "C"][usize::from(r[1] >> 6)];
    let tier = if r[1] & 0x20 != 0 { 'H' } else { 'L' };
    let compat = u32::from_be_bytes([r[2], r[3], r[4], r[5]]).reverse_bits();
    let mut constraints = r[6..12].to_vec();
    while constraints.len() > 1 && constraints.last() == Some(&0) {
        constraints.pop();
    }
    let mut s = format!("hvc1.{space}{}.{compat:X}.{tier}{}", r[1] & 0x1f, r[12]);
    for b in constraints {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

fn uris<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(tag))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .collect()
}

#[test]
fn an_enhanced_rtmp_h265_publisher_gets_ll_hls_a_recording_and_frames_at_1080p() {
    // 1080p at 5 fps with a 1 s GOP: light enough for libx265 on a small CI machine.
    let clip = hevc_clip(1920, 1080, 5, 5, 4);
    // Two frames a second from a 1 s GOP: exact sampling decodes predicted pictures too.
    let w = Worker::start(&["--recording-fragment", "500ms", "--frame-fps", "2"]);
    let _p = Publisher::start(&clip, &w.rtmp_url("hevc"));

    let cam = w.wait_live("hevc", LIVE);
    assert_eq!(cam["codec"], "h265", "{cam}");
    assert_eq!(cam["resolution"], "1920x1080", "{cam}");
    assert_eq!(cam["profile"], "Main", "{cam}");
    assert_eq!(cam["level"], 4.0, "{cam}");
    // libx265's Main profile at level 4: compatibility flags 1 and 2, progressive and
    // frame-only constraint flags.
    assert_eq!(cam["codec_string"], "hvc1.1.6.L120.90", "{cam}");

    // LL-HLS: complete segments with parts.
    let text = wait_for("LL-HLS segments of the H.265 camera", LIVE, || {
        let (status, body) = w.get("/hls/hevc/stream.m3u8");
        (status == 200 && body.matches("#EXTINF").count() >= 2).then_some(body)
    });
    let init_uri = uris(&text, "#EXT-X-MAP").last().unwrap().to_string();
    let init = w.get_bytes(&format!("/hls/hevc/{init_uri}"));
    let computed = codec_string_of_hvcc(&init);
    assert_eq!(computed, "hvc1.1.6.L120.90");

    // The multivariant playlist names exactly that codec, and the resolution.
    let (status, index) = w.get("/hls/hevc/index.m3u8");
    assert_eq!(status, 200);
    match m3u8_rs::parse_playlist_res(index.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            let v = &m.variants[0];
            assert_eq!(v.codecs.as_deref(), Some(computed.as_str()), "{index}");
            let res = v.resolution.unwrap();
            assert_eq!((res.width, res.height), (1920, 1080));
        }
        other => panic!("not a multivariant playlist: {other:?}"),
    }

    // init.mp4 and the listed parts, back to back: an hvc1 file every picture of which
    // Debian's ffmpeg decodes.
    let parts = uris(&text, "#EXT-X-PART:");
    assert!(parts.len() >= 3, "{text}");
    let mut file = init;
    for part in &parts {
        file.extend(w.get_bytes(&format!("/hls/hevc/{part}")));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.mp4");
    std::fs::write(&path, &file).unwrap();
    assert_eq!(probe(&path).0, "hevc,hvc1,1920,1080");
    let frames = decode_video(&path);
    assert!(
        frames >= parts.len(),
        "{frames} frames in {} parts",
        parts.len()
    );

    // JPEG frames for processors, at the picture's size, none lost to the decoder.
    wait_for("frames from the H.265 camera", LIVE, || {
        let extracted = w.metric("kamera_frames_extracted_total{camera=\"hevc\"}");
        (extracted >= Some(4.0)).then_some(())
    });
    assert_eq!(
        w.metric(
            "kamera_frames_dropped_total{camera=\"hevc\",processor=\"\",reason=\"decode_error\"}"
        ),
        None
    );
    let jpeg_path = dir.path().join("latest.jpg");
    std::fs::write(&jpeg_path, w.get_bytes("/frames/hevc/latest.jpg")).unwrap();
    assert_eq!(probe(&jpeg_path).0, "mjpeg,[0][0][0][0],1920,1080");

    // A recording, readable while it is written: H.265 with a duration.
    let file = wait_for("a recording of the H.265 camera", LIVE, || {
        recording_files(&w.data_dir, "hevc")
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 100_000))
    });
    let (stream, duration) = probe(&file);
    assert_eq!(stream, "hevc,hvc1,1920,1080");
    assert!(duration.is_some_and(|d| d > 0.0), "{duration:?}");
}
