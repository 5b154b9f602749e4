//! Processor pools over the network, end to end: the real worker with 16 `ffmpeg` publishers,
//! and the real Python SDK serving a batching pool on two processes (`kamera.serve_batch`),
//! plus a third pool with another token. One scenario, in order: frames of every camera
//! arrive, batches span cameras, detections come back; a wrong token is refused; killing one
//! pool process moves its cameras to the other and the lag shows the gap; a slow pool slows
//! neither ingest nor HLS nor recording.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kamera_tests::{clip, free_port, wait_for, Publisher, Worker};
use serde_json::Value;

const CAMERAS: usize = 16;
const TOKEN: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The pool program: a fixed-cost fake model that logs every batch, and sleeps 3 s per batch
/// while the `slow` file exists.
const POOL: &str = r#"
import json, os, sys, time
from pathlib import Path
import kamera

out, slow = Path(sys.argv[1]), Path(sys.argv[2])
log = out.open("a", buffering=1)

def model(frames):
    log.write(json.dumps({"batch": [[f.camera, f.seq] for f in frames],
                          "jpeg": all(f.data[:2] == b"\xff\xd8" for f in frames)}) + "\n")
    if slow.exists():
        log.write(json.dumps({"slow": True}) + "\n")
        time.sleep(3)  # the slow model itself
    return [[{"label": "thing", "confidence": 0.9, "box": [1, 2, 3, 4]}] for f in frames]

kamera.serve_batch(model, max_batch=16, max_wait=0.3)
"#;

/// A pool process (`python pool.py`), killed when dropped.
struct Pool {
    child: Option<Child>,
    addr: String,
    out: PathBuf,
    slow: PathBuf,
}

impl Pool {
    fn start(dir: &Path, name: &str, processor: &str, token: &str) -> Pool {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = repo.join(".venv/bin/python");
        let python = if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        };
        let script = dir.join("pool.py");
        std::fs::write(&script, POOL).unwrap();
        let token_file = dir.join(format!("{name}.token"));
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let out = dir.join(format!("{name}.batches"));
        let slow = dir.join(format!("{name}.slow"));
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        // The environment the operator gives a pool pod.
        let child = Command::new(python)
            .arg(&script)
            .arg(&out)
            .arg(&slow)
            .env("PYTHONPATH", repo.join("sdk/python/src"))
            .env("KAMERA_POOL_LISTEN", &addr)
            .env("KAMERA_POOL_TOKEN_FILE", &token_file)
            .env("KAMERA_PROCESSOR", processor)
            .env("KAMERA_MAX_IN_FLIGHT", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pool = Pool {
            child: Some(child),
            addr,
            out,
            slow,
        };
        wait_for(
            &format!("pool {name} listening"),
            Duration::from_secs(20),
            || std::net::TcpStream::connect(&pool.addr).ok().map(|_| ()),
        );
        pool
    }

    /// Every batch the model was called with: the cameras in it.
    fn batches(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                assert_ne!(v["jpeg"], false, "a frame that is not a JPEG: {v}");
                let batch = v["batch"].as_array()?;
                Some(
                    batch
                        .iter()
                        .map(|f| f[0].as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn camera(i: usize) -> String {
    format!("cam{i:02}")
}

/// The `frames.processors` entry of `processor` for `camera`.
fn entry(w: &Worker, camera: &str, processor: &str) -> Option<Value> {
    let (status, body) = w.get(&format!("/api/cameras/{camera}"));
    if status != 200 {
        return None;
    }
    let api: Value = serde_json::from_str(&body).ok()?;
    api["frames"]["processors"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == processor)
        .cloned()
}

/// Sums the samples of /metrics whose line starts with `prefix`.
fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn sixteen_cameras_share_a_batching_pool_that_fails_over_and_never_slows_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Pool::start(dir.path(), "a", "fleet", TOKEN);
    let b = Pool::start(dir.path(), "b", "fleet", TOKEN);
    let locked = Pool::start(dir.path(), "locked", "locked", "another-token");
    let tokens = dir.path().join("tokens");
    for (name, token) in [("fleet", TOKEN), ("locked", "not-the-right-one")] {
        std::fs::create_dir_all(tokens.join(name)).unwrap();
        std::fs::write(tokens.join(name).join("token"), token).unwrap();
    }
    let fleet = format!("fleet={},{}", a.addr, b.addr);
    let locked_flag = format!("locked={}", locked.addr);
    let w = Worker::start(&[
        "--pool",
        &fleet,
        "--pool",
        &locked_flag,
        "--pool-token-dir",
        tokens.to_str().unwrap(),
    ]);
    // Light publishers: 320x240, 10 fps, a keyframe a second (keyframe-only decoding).
    let clip = clip(320, 240, 10, 10);
    let _publishers: Vec<Publisher> = (0..CAMERAS)
        .map(|i| Publisher::start(&clip, &w.rtmp_url(&camera(i))))
        .collect();

    // Every camera's frames reach the pool, and come back acknowledged with detections.
    for i in 0..CAMERAS {
        let cam = camera(i);
        let p = wait_for(
            &format!("{cam}: frames acknowledged by the pool"),
            Duration::from_secs(60),
            || {
                entry(&w, &cam, "fleet")
                    .filter(|p| p["connected"] == true && p["frames_acked"].as_u64() >= Some(2))
            },
        );
        assert_eq!(p["transport"], "tcp", "{p}");
        assert!(p["last_error"].is_null(), "{p}");
        let endpoint = p["endpoint"].as_str().unwrap();
        assert!(endpoint == a.addr || endpoint == b.addr, "{p}");
        let detections = w.get_json(&format!("/api/cameras/{cam}/detections"));
        let first = &detections["detections"][0];
        assert_eq!(first["processor"], "fleet", "{detections}");
        assert_eq!(first["detections"][0]["label"], "thing", "{detections}");
        assert!(
            w.metric(&format!(
                r#"kamera_detections_total{{camera="{cam}",label="thing",processor="fleet"}}"#
            ))
            .is_some_and(|n| n >= 1.0),
            "{cam}: detections metric"
        );
    }
    let seen: BTreeSet<String> = a
        .batches()
        .into_iter()
        .chain(b.batches())
        .flatten()
        .collect();
    assert_eq!(seen.len(), CAMERAS, "cameras seen by the pool: {seen:?}");
    let across = a
        .batches()
        .into_iter()
        .chain(b.batches())
        .filter(|batch| batch.iter().collect::<BTreeSet<_>>().len() > 1)
        .count();
    assert!(across > 0, "no batch spanned more than one camera");
    // The worker exports what the acks report: frames processed in batches of more than one.
    let text = w.get("/metrics").1;
    let frames = metric_sum(&text, r#"kamera_pool_batch_size_count{processor="fleet"}"#);
    let singles = metric_sum(
        &text,
        r#"kamera_pool_batch_size_bucket{processor="fleet",le="1"}"#,
    );
    assert!(
        frames > singles,
        "batch sizes: {frames} frames, {singles} alone"
    );
    assert!(
        metric_sum(
            &text,
            r#"kamera_pool_inference_seconds_count{processor="fleet"}"#
        ) > 0.0
    );

    // A wrong token is refused before any frame: a clear error, and nothing reaches the pool.
    let refused = wait_for(
        "the locked pool listed with its error",
        Duration::from_secs(10),
        || entry(&w, &camera(0), "locked").filter(|p| p["last_error"].is_string()),
    );
    assert_eq!(refused["connected"], false, "{refused}");
    assert_eq!(refused["transport"], "tcp", "{refused}");
    assert_eq!(refused["endpoint"], locked.addr.as_str(), "{refused}");
    let why = refused["last_error"].as_str().unwrap();
    assert!(why.contains("unauthorized"), "{why}");
    assert!(
        locked.batches().is_empty(),
        "frames reached a pool that refused the token"
    );
    assert!(
        metric_sum(
            &text,
            r#"kamera_pool_connection_failures_total{processor="locked",reason="refused"}"#
        ) >= 1.0
    );

    // Kill one pool process: its cameras move to the other, and their lag shows the gap.
    let moved: Vec<String> = (0..CAMERAS)
        .map(camera)
        .filter(|c| entry(&w, c, "fleet").is_some_and(|p| p["endpoint"] == a.addr.as_str()))
        .collect();
    assert!(!moved.is_empty(), "no camera on pool process a");
    let peak = Arc::new(Mutex::new(0.0f64));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, http) = (peak.clone(), sampling.clone(), w.http_url("/metrics"));
        let samples: Vec<String> = moved
            .iter()
            .map(|c| format!(r#"kamera_processor_lag_seconds{{camera="{c}",processor="fleet"}}"#))
            .collect();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(r) = ureq::get(&http).timeout(Duration::from_secs(2)).call() {
                    let text = r.into_string().unwrap_or_default();
                    let top = samples
                        .iter()
                        .map(|s| metric_sum(&text, s))
                        .fold(0.0, f64::max);
                    let mut p = peak.lock().unwrap();
                    *p = p.max(top);
                }
                std::thread::sleep(Duration::from_millis(50)); // sampling period, not a wait
            }
        })
    };
    a.kill9();
    let killed = Instant::now();
    wait_for(
        "cameras moved to pool process b",
        Duration::from_secs(5),
        || {
            moved
                .iter()
                .all(|c| {
                    entry(&w, c, "fleet")
                        .is_some_and(|p| p["connected"] == true && p["endpoint"] == b.addr.as_str())
                })
                .then_some(())
        },
    );
    eprintln!("{} cameras moved in {:?}", moved.len(), killed.elapsed());
    wait_for(
        "moved cameras acknowledged again",
        Duration::from_secs(20),
        || {
            moved
                .iter()
                .all(|c| {
                    entry(&w, c, "fleet").is_some_and(|p| {
                        p["endpoint"] == b.addr.as_str() && p["frames_acked"].as_u64() >= Some(1)
                    })
                })
                .then_some(())
        },
    );
    // The gauge holds the gap until the next frame is out; let the sampler see it.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = *peak.lock().unwrap();
    // A lost frame, or at least one frame interval (1 s) without an ack: never hidden.
    assert!(peak >= 0.8, "lag during the move peaked at {peak} s");

    // A slow pool slows neither ingest, nor LL-HLS, nor recording.
    std::fs::write(&b.slow, b"").unwrap();
    wait_for("the pool is slow", Duration::from_secs(10), || {
        std::fs::read_to_string(&b.out)
            .unwrap_or_default()
            .contains("\"slow\"")
            .then_some(())
    });
    let counters = |text: &str, cam: &str| {
        [
            metric_sum(
                text,
                &format!(r#"kamera_ingest_frames_total{{camera="{cam}",track="video"}}"#),
            ),
            metric_sum(
                text,
                &format!(r#"kamera_hls_parts_total{{camera="{cam}"}}"#),
            ),
            metric_sum(
                text,
                &format!(r#"kamera_recording_bytes_total{{camera="{cam}"}}"#),
            ),
        ]
    };
    let text = w.get("/metrics").1;
    let before: Vec<[f64; 3]> = (0..CAMERAS).map(|i| counters(&text, &camera(i))).collect();
    wait_for(
        "ingest, parts and recording advance on every camera",
        Duration::from_secs(20),
        || {
            let text = w.get("/metrics").1;
            (0..CAMERAS)
                .all(|i| {
                    let now = counters(&text, &camera(i));
                    // 2 s of video: 20 frames, 10 parts of 200 ms, and more recorded bytes.
                    now[0] >= before[i][0] + 20.0
                        && now[1] >= before[i][1] + 10.0
                        && now[2] > before[i][2]
                })
                .then_some(())
        },
    );
    // Meanwhile the pool falls behind: lag grows, and newer frames replace waiting ones.
    wait_for(
        "the slow pool shows as lag",
        Duration::from_secs(20),
        || {
            let text = w.get("/metrics").1;
            (0..CAMERAS)
                .any(|i| {
                    let lag = format!(
                        r#"kamera_processor_lag_seconds{{camera="{}",processor="fleet"}}"#,
                        camera(i)
                    );
                    metric_sum(&text, &lag) >= 2.0
                })
                .then_some(())
        },
    );
    let text = w.get("/metrics").1;
    let busy: f64 = (0..CAMERAS)
        .map(|i| {
            metric_sum(
                &text,
                &format!(
                    r#"kamera_frames_dropped_total{{camera="{}",processor="fleet",reason="processor_busy"}}"#,
                    camera(i)
                ),
            )
        })
        .sum();
    assert!(busy > 0.0, "latest wins while the pool is slow");
    let still_slow = std::fs::read_to_string(&b.out).unwrap_or_default();
    assert!(
        still_slow.contains("\"slow\""),
        "the pool stayed slow during the window"
    );
    std::fs::remove_file(&b.slow).unwrap();
    drop(locked);
}
