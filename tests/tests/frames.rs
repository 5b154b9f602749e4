//! Frames for processors, end to end: the real worker, `ffmpeg` publishing, `ffprobe`
//! decoding the JPEGs, and a raw client on the frame socket speaking the JSON-lines protocol.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kamera_tests::{clip, default_clip, wait_for, Publisher, Worker};
use serde_json::{json, Value};

fn extracted(w: &Worker, camera: &str) -> f64 {
    w.metric(&format!(
        "kamera_frames_extracted_total{{camera=\"{camera}\"}}"
    ))
    .unwrap_or(0.0)
}

/// Frames extracted during `window`, counted once extraction is under way.
fn count_over(w: &Worker, camera: &str, window: Duration) -> f64 {
    wait_for("first frames", Duration::from_secs(30), || {
        (extracted(w, camera) >= 2.0).then_some(())
    });
    let start = extracted(w, camera);
    let end_at = Instant::now() + window;
    while Instant::now() < end_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    extracted(w, camera) - start
}

fn probe_size(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_1080p_gop_1s_stream_gives_one_keyframe_jpeg_a_second() {
    let clip = clip(1920, 1080, 30, 30);
    let w = Worker::start(&["--no-recording"]);
    let _p = Publisher::start(&clip, &w.rtmp_url("lobby"));
    let latest = w.data_dir.join("frames/lobby/latest.jpg");
    wait_for("latest.jpg", Duration::from_secs(30), || {
        latest.exists().then_some(())
    });
    assert_eq!(probe_size(&latest), "mjpeg,1920,1080");

    let count = count_over(&w, "lobby", Duration::from_secs(30));
    assert!(
        (29.0..=31.0).contains(&count),
        "{count} frames in 30 s at 1 fps"
    );

    let frames = w.camera("lobby").unwrap()["frames"].clone();
    assert_eq!(frames["mode"], "keyframes_only", "{frames}");
    assert_eq!(frames["width"], 1920);
    let (status, _) = w.get("/frames/lobby/latest.jpg");
    assert_eq!(status, 200);
    // After 30 s at 1 fps the ring of 8 is full: exactly 8 numbered frames (9 for the
    // moment between writing a frame and removing the one that left the ring).
    let written = extracted(&w, "lobby");
    assert!(written >= 30.0, "{written} frames written");
    let numbered = std::fs::read_dir(w.data_dir.join("frames/lobby"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".jpg") && name != "latest.jpg"
        })
        .count();
    assert!(
        (8..=9).contains(&numbered),
        "a full ring of 8 numbered frames, found {numbered}"
    );
}

#[test]
fn extraction_follows_the_frame_rate_flag() {
    let clip = default_clip();
    let half = Worker::start(&["--no-recording", "--frame-fps", "0.5"]);
    let double = Worker::start(&["--no-recording", "--frame-fps", "2"]);
    let _p1 = Publisher::start(&clip, &half.rtmp_url("cam"));
    let _p2 = Publisher::start(&clip, &double.rtmp_url("cam"));
    let n_double = count_over(&double, "cam", Duration::from_secs(10));
    assert!(
        (19.0..=21.0).contains(&n_double),
        "{n_double} frames in 10 s at 2 fps"
    );
    assert_eq!(
        double.camera("cam").unwrap()["frames"]["mode"],
        "all_frames"
    );
    let n_half = count_over(&half, "cam", Duration::from_secs(20));
    assert!(
        (9.0..=11.0).contains(&n_half),
        "{n_half} frames in 20 s at 0.5 fps"
    );
    assert_eq!(
        half.camera("cam").unwrap()["frames"]["mode"],
        "keyframes_only"
    );
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(w: &Worker, hello: Value) -> Client {
        let sock = w.data_dir.join("frames.sock");
        let stream = UnixStream::connect(&sock).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        c.send(&hello);
        let welcome = c.next().expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    fn send(&mut self, v: &Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).unwrap();
    }

    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    }
}

#[test]
fn acks_with_detections_reach_metrics_and_the_api_while_garbage_is_dropped() {
    let w = Worker::start(&["--no-recording"]);
    let _p = Publisher::start(&default_clip(), &w.rtmp_url("door"));
    let mut good = Client::connect(
        &w,
        json!({"type":"hello","version":1,"processor":"rust-test","cameras":["door"],"max_in_flight":1}),
    );

    // A processor sending garbage is told why and disconnected.
    let mut bad = UnixStream::connect(w.data_dir.join("frames.sock")).unwrap();
    bad.write_all(b"this is not json\n").unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    let _ = BufReader::new(bad.try_clone().unwrap()).read_line(&mut reply);
    assert!(
        reply.contains("\"error\""),
        "garbage answered with {reply:?}"
    );

    let mut seqs = Vec::new();
    for _ in 0..3 {
        let frame = good.next().expect("a frame");
        assert_eq!(frame["type"], "frame");
        assert_eq!(frame["camera"], "door");
        let path = frame["path"].as_str().unwrap();
        assert!(Path::new(path).is_absolute(), "{path}");
        assert_eq!(probe_size(Path::new(path)), "mjpeg,640,360");
        let seq = frame["seq"].as_u64().unwrap();
        seqs.push(seq);
        good.send(&json!({"type":"ack","camera":"door","seq":seq,
            "detections":[{"label":"person","confidence":0.9,"box":[1,2,3,4]}]}));
    }
    assert!(seqs.windows(2).all(|s| s[1] == s[0] + 1), "{seqs:?}");

    let detections = wait_for("detection metric", Duration::from_secs(10), || {
        w.metric(r#"kamera_detections_total{camera="door",label="person",processor="rust-test"}"#)
            .filter(|v| *v >= 3.0)
    });
    assert!(detections >= 3.0);
    let lag = w
        .metric(r#"kamera_processor_lag_seconds{camera="door",processor="rust-test"}"#)
        .expect("lag gauge");
    assert!((0.0..5.0).contains(&lag), "lag {lag}");
    assert_eq!(
        w.metric(r#"kamera_processor_connected{camera="door",processor="rust-test"}"#),
        Some(1.0)
    );
    let api = w.get_json("/api/cameras/door/detections");
    let first = &api["detections"][0];
    assert_eq!(first["processor"], "rust-test");
    assert_eq!(first["detections"][0]["label"], "person");

    // The camera's API entry shows the processor, as the operator reads it.
    let listed = processors(&w, "door");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let p = &listed[0];
    assert_eq!(p["name"], "rust-test");
    assert_eq!(p["connected"], true);
    assert_eq!(p["max_in_flight"], 1);
    assert!(p["frames_acked"].as_u64().unwrap() >= 3, "{p}");
    assert!(p["frames_sent"].as_u64().unwrap() >= 3, "{p}");
    assert!(p["connected_since"].is_string(), "{p}");
    assert!(p["last_ack_at"].is_string(), "{p}");
    assert!(p["lag_seconds"].is_number(), "{p}");
    assert!(p.get("disconnected_at").is_none(), "{p}");

    drop(good);
    wait_for(
        "processor gone from metrics",
        Duration::from_secs(10),
        || {
            (w.metric(r#"kamera_processor_connected{camera="door",processor="rust-test"}"#)
                == Some(0.0))
            .then_some(())
        },
    );
    let gone = wait_for(
        "processor listed as disconnected",
        Duration::from_secs(10),
        || {
            processors(&w, "door")
                .into_iter()
                .find(|p| p["name"] == "rust-test" && p["connected"] == false)
        },
    );
    assert!(gone["disconnected_at"].is_string(), "{gone}");
    assert!(gone["frames_acked"].as_u64().unwrap() >= 3, "{gone}");
}

/// `frames.processors` of `/api/cameras/<camera>`.
fn processors(w: &Worker, camera: &str) -> Vec<Value> {
    let api = w.get_json(&format!("/api/cameras/{camera}"));
    api["frames"]["processors"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no frames.processors in {api}"))
}
