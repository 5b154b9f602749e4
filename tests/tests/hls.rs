//! LL-HLS end to end: the real worker fed by a real `ffmpeg` publisher, read back over HTTP
//! by `ffmpeg`/`ffprobe` and parsed with a real HLS parser (`m3u8-rs`).

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::process::Command;
use std::time::Duration;

use kamera_tests::{default_clip, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(30);

fn media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist ({other:?}):\n{text}"),
    }
}

/// The quoted `URI` of every line starting with `tag`.
fn uris<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(tag))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .collect()
}

/// Starts a worker and a publisher on `cam` and waits for `min_segments` complete segments.
/// The clip's 1 s GOP makes 1 s segments; a 1 s target duration keeps CAN-SKIP-UNTIL (six
/// target durations) within the default window, so delta updates skip something.
fn live(min_segments: usize) -> (Worker, Publisher) {
    let w = Worker::start(&["--hls-max-segment-duration", "1s"]);
    let p = Publisher::start(&default_clip(), &w.rtmp_url("cam"));
    wait_for("complete LL-HLS segments", LIVE, || {
        let (status, body) = w.get("/hls/cam/stream.m3u8");
        (status == 200 && media_playlist(&body).segments.len() >= min_segments).then_some(())
    });
    (w, p)
}

/// Decodes `path` (file or URL) for up to `seconds`; returns (video frames, audio frames).
fn decode(input: &str, seconds: u32) -> (usize, usize) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", input, "-t"])
        .arg(seconds.to_string())
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed on {input}: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "decode errors on {input}: {stderr}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |stream: &str| {
        text.lines()
            .filter(|l| l.split(',').next().map(str::trim) == Some(stream))
            .count()
    };
    (count("0"), count("1"))
}

#[test]
fn ffmpeg_decodes_the_live_stream_and_its_parts_over_http() {
    let (w, _p) = live(2);
    let (status, index) = w.get("/hls/cam/index.m3u8");
    assert_eq!(status, 200);
    match m3u8_rs::parse_playlist_res(index.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            let v = &m.variants[0];
            assert_eq!(v.uri, "stream.m3u8");
            assert!(v.bandwidth > 100_000, "bandwidth {}", v.bandwidth);
            let codecs = v.codecs.clone().unwrap_or_default();
            assert!(
                codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
                "{codecs}"
            );
            let res = v.resolution.unwrap();
            assert_eq!((res.width, res.height), (640, 360));
        }
        other => panic!("not a multivariant playlist: {other:?}"),
    }

    // ffmpeg follows the live playlist and decodes 6 s of both tracks without an error.
    let (video, audio) = decode(&w.http_url("/hls/cam/index.m3u8"), 6);
    assert!(video >= 5 * 25, "only {video} video frames decoded");
    assert!(
        audio >= 5 * 44_100 / 1024,
        "only {audio} audio frames decoded"
    );

    // The init segment followed by the listed parts, back to back, is a playable file.
    let text = w.get("/hls/cam/stream.m3u8").1;
    let init = uris(&text, "#EXT-X-MAP").last().unwrap().to_string();
    let parts = uris(&text, "#EXT-X-PART:");
    assert!(parts.len() >= 5, "{text}");
    let mut file = w.get_bytes(&format!("/hls/cam/{init}"));
    for part in &parts {
        file.extend(w.get_bytes(&format!("/hls/cam/{part}")));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.mp4");
    std::fs::write(&path, &file).unwrap();
    let (video, audio) = decode(path.to_str().unwrap(), 60);
    assert!(
        video >= parts.len() * 4,
        "{video} frames in {} parts",
        parts.len()
    );
    assert!(audio > 0);

    let parts_total = w.metric("kamera_hls_parts_total{camera=\"cam\"}").unwrap();
    assert!(parts_total >= parts.len() as f64);
    let delays = w
        .metric("kamera_hls_part_delay_seconds_count{camera=\"cam\"}")
        .unwrap();
    assert!(delays > 0.0);
}

#[test]
fn blocking_reload_answers_once_the_part_exists_and_delta_updates_are_shorter() {
    let (w, _p) = live(1);
    // Ask for the preload-hinted part: not in the playlist yet, so the request is held. The
    // part may appear before we look; then try the next one.
    let (msn, part, listed, held) = (0..10)
        .find_map(|_| {
            let text = w.get("/hls/cam/stream.m3u8").1;
            let hint = uris(&text, "#EXT-X-PRELOAD-HINT")[0].to_string();
            let (m, p) = hint
                .strip_prefix("part")
                .and_then(|r| r.strip_suffix(".m4s"))
                .and_then(|r| r.split_once('.'))
                .unwrap();
            let (m, p): (u64, u64) = (m.parse().unwrap(), p.parse().unwrap());
            let url = w.http_url(&format!("/hls/cam/stream.m3u8?_HLS_msn={m}&_HLS_part={p}"));
            let held =
                std::thread::spawn(move || ureq::get(&url).call().unwrap().into_string().unwrap());
            // While held, the blocked-requests gauge counts it and the part is not listed.
            let listed = format!("part{m}.{p}.m4s");
            let mut waiting = false;
            while !held.is_finished() && !waiting {
                waiting = w.metric("kamera_hls_blocked_requests").unwrap_or(0.0) >= 1.0
                    && !uris(&w.get("/hls/cam/stream.m3u8").1, "#EXT-X-PART:")
                        .contains(&listed.as_str())
                    && !held.is_finished();
            }
            if waiting {
                Some((m, p, listed, held))
            } else {
                let _ = held.join();
                None
            }
        })
        .expect("a request held while its part was missing");
    let body = held.join().unwrap();
    media_playlist(&body);
    assert!(
        uris(&body, "#EXT-X-PART:").contains(&listed.as_str()),
        "the answer lacks the awaited part:\n{body}"
    );
    // Answered at once: the awaited part is the newest one, the hint is the part after it.
    let hint = uris(&body, "#EXT-X-PRELOAD-HINT")[0];
    assert!(
        hint == format!("part{msn}.{}.m4s", part + 1) || hint == format!("part{}.0.m4s", msn + 1),
        "answered late: hint {hint} after awaiting {msn}.{part}"
    );

    // Requests the spec calls bad are refused; unknown cameras are a JSON 404.
    let far = format!("/hls/cam/stream.m3u8?_HLS_msn={}", msn + 10);
    assert_eq!(w.get(&far).0, 400);
    assert_eq!(w.get("/hls/cam/stream.m3u8?_HLS_part=1").0, 400);
    let (status, body) = w.get("/hls/nope/stream.m3u8");
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""));

    // Once the window holds more than CAN-SKIP-UNTIL, a delta update skips old segments.
    let (full, delta) = wait_for("a delta update that skips segments", LIVE, || {
        let full = w.get("/hls/cam/stream.m3u8").1;
        let delta = w.get("/hls/cam/stream.m3u8?_HLS_skip=YES").1;
        (delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=") && !delta.contains("SKIPPED-SEGMENTS=0\n"))
            .then_some((full, delta))
    });
    let d = media_playlist(&delta);
    let f = media_playlist(&full);
    assert!(delta.len() < full.len());
    assert!(d.segments.len() < f.segments.len());
    assert!(d.media_sequence >= f.media_sequence);
}

#[test]
fn publisher_reconnect_continues_after_a_discontinuity_with_a_new_init() {
    let (w, mut p) = live(1);
    p.kill9();
    wait_for("the session to end", LIVE, || {
        (!w.get("/hls/cam/stream.m3u8").1.contains("PRELOAD-HINT")).then_some(())
    });
    let _p2 = Publisher::start(&default_clip(), &w.rtmp_url("cam"));
    let text = wait_for("segments of the new session", LIVE, || {
        let text = w.get("/hls/cam/stream.m3u8").1;
        let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1)?;
        after.contains("#EXTINF").then_some(text)
    });
    media_playlist(&text);
    let maps = uris(&text, "#EXT-X-MAP");
    assert_eq!(maps.len(), 2, "{text}");
    assert_ne!(maps[0], maps[1]);
    for m in maps {
        assert!(!w.get_bytes(&format!("/hls/cam/{m}")).is_empty());
    }
    let (video, audio) = decode(&w.http_url("/hls/cam/index.m3u8"), 3);
    assert!(video > 0 && audio > 0);
}
