//! RTMP ingest end to end: the real worker, real `ffmpeg` publishers, and hand-made bad peers.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use kamera_tests::rtmp_client::{is_closed_by_peer, RawPublisher};
use kamera_tests::{default_clip, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(20);

fn video_frames(w: &Worker, camera: &str) -> f64 {
    w.metric(&format!(
        "kamera_ingest_frames_total{{camera=\"{camera}\",track=\"video\"}}"
    ))
    .unwrap_or(0.0)
}

/// Waits until `camera`'s video frame counter moves past its current value.
fn assert_still_counting(w: &Worker, camera: &str) {
    let before = video_frames(w, camera);
    wait_for(
        &format!("{camera} to keep receiving frames"),
        Duration::from_secs(10),
        || (video_frames(w, camera) > before + 10.0).then_some(()),
    );
}

#[test]
fn two_cameras_are_reported_with_resolution_codec_and_measured_rates() {
    let w = Worker::start(&[]);
    let clip = default_clip();
    let _a = Publisher::start(&clip, &w.rtmp_url("camA"));
    let _b = Publisher::start(&clip, &w.rtmp_url("camB"));
    for name in ["camA", "camB"] {
        w.wait_live(name, LIVE);
        // The rates are measured over a 5 s window of media time: wait until it is full.
        let cam = wait_for(&format!("{name} measured over 5 s"), LIVE, || {
            w.camera(name)
                .filter(|c| c["video_frames"].as_u64().unwrap_or(0) > 6 * 25)
        });
        assert_eq!(cam["codec"], "h264");
        assert_eq!(cam["width"], clip.width);
        assert_eq!(cam["height"], clip.height);
        assert_eq!(cam["resolution"], "640x360");
        assert_eq!(cam["audio_codec"], "aac");
        assert_eq!(cam["audio_sample_rate"], 44100);
        assert!(cam["codec_string"].as_str().unwrap().starts_with("avc1."));
        let fps = cam["fps"].as_f64().unwrap();
        assert!(
            (fps - 25.0).abs() <= 2.5,
            "{name}: fps {fps} not within 10% of 25"
        );
        let bitrate = cam["video_bitrate"].as_f64().unwrap();
        let sent = clip.video_bitrate;
        assert!(
            (bitrate - sent).abs() <= 0.1 * sent,
            "{name}: video bitrate {bitrate} not within 10% of the clip's {sent}"
        );
        assert!(cam["publisher"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(cam["since"].is_string());
    }
}

#[test]
fn killing_a_publisher_marks_only_that_camera_offline_and_republishing_works() {
    let w = Worker::start(&[]);
    let clip = default_clip();
    let mut a = Publisher::start(&clip, &w.rtmp_url("camA"));
    let _b = Publisher::start(&clip, &w.rtmp_url("camB"));
    w.wait_live("camA", LIVE);
    w.wait_live("camB", LIVE);

    a.kill9();
    wait_for("camA offline", Duration::from_secs(10), || {
        w.camera("camA").filter(|c| c["live"] == false)
    });
    assert_eq!(w.camera("camB").unwrap()["live"], true);
    assert_still_counting(&w, "camB");
    assert_eq!(
        w.metric("kamera_ingest_connected{camera=\"camA\"}"),
        Some(0.0)
    );

    let _again = Publisher::start(&clip, &w.rtmp_url("camA"));
    w.wait_live("camA", LIVE);
    assert_still_counting(&w, "camA");
}

#[test]
fn wrong_key_unknown_camera_and_second_publisher_are_refused_while_live_camera_continues() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "camA=open-sesame\n").unwrap();
    let w = Worker::start(&[
        "--camera",
        "camA",
        "--publish-key-file",
        keys.to_str().unwrap(),
    ]);
    let clip = default_clip();
    let _live = Publisher::start(&clip, &w.rtmp_url("camA?key=open-sesame"));
    w.wait_live("camA", LIVE);
    let publisher = w.camera("camA").unwrap()["publisher"].clone();

    let sessions = |result: &str| {
        w.metric(&format!(
            "kamera_ingest_sessions_total{{result=\"{result}\"}}"
        ))
        .unwrap_or(0.0)
    };
    for (key, result) in [
        ("camA?key=wrong", "bad_key"),
        ("camA", "bad_key"),
        ("intruder", "unknown_camera"),
        ("camA?key=open-sesame", "busy"),
    ] {
        // Each case must count its own refusal: the counters are cumulative.
        let before = sessions(result);
        let mut refused = Publisher::start(&clip, &w.rtmp_url(key));
        let (ok, _) = refused
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("publisher {key} was not refused"));
        assert!(!ok, "ffmpeg publishing {key} should fail");
        assert_eq!(
            sessions(result) - before,
            1.0,
            "{key}: exactly one {result} refusal counted"
        );
    }
    assert!(
        w.camera("intruder").is_none(),
        "refused camera must not appear"
    );
    let cam = w.camera("camA").unwrap();
    assert_eq!(cam["live"], true);
    assert_eq!(
        cam["publisher"], publisher,
        "the live publisher was replaced"
    );
    assert_still_counting(&w, "camA");
}

#[test]
fn garbage_half_handshake_and_corrupt_flv_end_only_their_own_connection() {
    let w = Worker::start(&[]);
    let clip = default_clip();
    let _a = Publisher::start(&clip, &w.rtmp_url("camA"));
    w.wait_live("camA", LIVE);

    // 1. Garbage instead of a handshake.
    let mut garbage = TcpStream::connect(w.rtmp).unwrap();
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = garbage.write_all(&noise);

    // 2. Half a handshake, then silence (held open for the rest of the test).
    let mut half = TcpStream::connect(w.rtmp).unwrap();
    half.write_all(&[3u8; 700]).unwrap();

    // 3. A valid publisher that sends malformed tags, an unsupported codec, then corrupt chunks.
    let mut raw = RawPublisher::publish(w.rtmp, "broken").unwrap();
    for ts in 0..50u32 {
        raw.video(Bytes::from_static(&[0x17, 1, 0]), ts * 40)
            .unwrap();
        raw.video(Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]), ts * 40)
            .unwrap();
        raw.audio(Bytes::from_static(&[0xaf]), ts * 40).unwrap();
    }
    raw.video(Bytes::from_static(&[0x22, 0, 0, 0]), 2000)
        .unwrap();
    wait_for(
        "malformed messages counted",
        Duration::from_secs(10),
        || (w.metric("kamera_ingest_malformed_total{camera=\"broken\"}")? >= 100.0).then_some(()),
    );
    let broken = wait_for(
        "unsupported codec reported",
        Duration::from_secs(10),
        || {
            w.camera("broken")
                .filter(|c| c["unsupported"].as_array().is_some_and(|u| !u.is_empty()))
        },
    );
    assert!(broken["unsupported"][0]
        .as_str()
        .unwrap()
        .contains("Sorenson"));
    assert_eq!(
        w.metric("kamera_ingest_unsupported_total{camera=\"broken\",track=\"video\"}"),
        Some(1.0)
    );
    // Now corrupt the chunk stream itself.
    let _ = raw.stream.write_all(&noise);
    wait_for(
        "corrupt publisher disconnected",
        Duration::from_secs(35),
        || raw.is_closed_by_server().then_some(()),
    );
    wait_for("broken camera offline", Duration::from_secs(10), || {
        w.camera("broken").filter(|c| c["live"] == false)
    });
    // The garbage connection is closed by the worker too: EOF or a reset, not a read timeout.
    wait_for(
        "garbage connection closed by the worker",
        Duration::from_secs(15),
        || is_closed_by_peer(&mut garbage).then_some(()),
    );

    // Through all of it: the real camera kept streaming, the worker kept serving.
    assert_eq!(w.get("/healthz").0, 200);
    assert_eq!(w.camera("camA").unwrap()["live"], true);
    assert_still_counting(&w, "camA");
    drop(half);
}

#[test]
fn sigterm_stops_the_worker_cleanly_with_publishers_connected() {
    let mut w = Worker::start(&[]);
    let clip = default_clip();
    let _a = Publisher::start(&clip, &w.rtmp_url("camA"));
    w.wait_live("camA", LIVE);
    let status = w
        .terminate(Duration::from_secs(15))
        .expect("worker did not exit within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn demo_flag_publishes_a_live_720p_test_camera() {
    let w = Worker::start(&["--demo"]);
    let demo = w.wait_live("demo", Duration::from_secs(30));
    assert_eq!(demo["resolution"], "1280x720");
    assert_eq!(demo["audio_codec"], "aac");
    assert_still_counting(&w, "demo");
}
