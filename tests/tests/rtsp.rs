//! RTSP pull end to end: the real worker pulls (`--pull`) from a real RTSP server
//! (gst-rtsp-server, tests/rtsp/server.py) and the pulled camera serves LL-HLS, recordings and
//! frames like a pushed one; authentication, backoff and a restarted camera behave.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kamera_tests::{recording_files, signal, wait_for, Worker};
use serde_json::Value;

const LIVE: Duration = Duration::from_secs(30);

/// A running `tests/rtsp/server.py`, stopped when dropped.
struct RtspServer {
    child: Child,
    port: u16,
}

impl RtspServer {
    /// Starts the server with `args` (e.g. `--user`, `--password`, `--port`) and waits for it
    /// to listen.
    fn start(args: &[&str]) -> RtspServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtsp/server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 for the RTSP test server (scripts/setup.d/35-rtsp-server.sh)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("the RTSP test server did not start (see its stderr above)");
            }
        };
        RtspServer { child, port }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/stream", self.port)
    }

    /// Kills the server at once, as a crashing camera would go.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return; // Already gone (killed by the test).
        }
        signal(self.child.id(), "TERM");
        let exited = wait_for_exit(&mut self.child, Duration::from_secs(5));
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The camera's `source` section in `/api/cameras/<camera>`.
fn source(w: &Worker, camera: &str) -> Value {
    w.get_json(&format!("/api/cameras/{camera}"))["source"].clone()
}

/// A worker pulling `camera` from `url` with `user_password` in its credentials directory
/// (`<dir>/<camera>` holding `user:password`), without recording.
fn pull_with_credentials(
    camera: &str,
    url: &str,
    user_password: &str,
) -> (Worker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(camera), format!("{user_password}\n")).unwrap();
    let pull = format!("{camera}={url}");
    let w = Worker::start(&[
        "--pull",
        &pull,
        "--pull-credentials-dir",
        dir.path().to_str().unwrap(),
        "--no-recording",
    ]);
    (w, dir)
}

fn media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist ({other:?}):\n{text}"),
    }
}

/// The codecs `ffprobe` finds in a file, e.g. `["h264", "aac"]`.
fn probe_codecs(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn a_pulled_camera_serves_ll_hls_a_recording_and_frames() {
    let server = RtspServer::start(&[]);
    let pull = format!("door={}", server.url());
    let w = Worker::start(&["--pull", &pull, "--recording-fragment", "500ms"]);

    let cam = w.wait_live("door", LIVE);
    assert_eq!(
        (cam["width"].as_u64(), cam["height"].as_u64()),
        (Some(320), Some(240))
    );
    let src = source(&w, "door");
    assert_eq!(src["kind"], "rtsp");
    assert_eq!(src["state"], "playing");
    assert_eq!(src["url"], server.url());

    // LL-HLS: complete segments with parts, and a part's bytes.
    let text = wait_for("LL-HLS segments from the pulled camera", LIVE, || {
        let (status, body) = w.get("/hls/door/stream.m3u8");
        (status == 200 && media_playlist(&body).segments.len() >= 2).then_some(body)
    });
    assert!(text.contains("avc1.") || w.get("/hls/door/index.m3u8").1.contains("avc1."));
    let part = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .find_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .expect("a part")
        .to_string();
    assert!(!w.get_bytes(&format!("/hls/door/{part}")).is_empty());

    // A JPEG frame for processors.
    let jpeg = wait_for("a frame from the pulled camera", LIVE, || {
        let reply = w.request("/frames/door/latest.jpg", None);
        (reply.status == 200).then_some(reply.body)
    });
    assert!(!jpeg.is_empty());

    // A recording with the camera's video and audio, readable while it is written.
    let file = wait_for("a recording fragment", LIVE, || {
        recording_files(&w.data_dir, "door")
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 10_000))
    });
    let codecs = probe_codecs(&file);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(codecs.contains(&"aac".to_string()), "{codecs:?}");
    assert_eq!(
        w.metric("kamera_pull_connected{camera=\"door\"}"),
        Some(1.0)
    );
}

#[test]
fn digest_authentication_with_the_right_credentials_plays() {
    let server = RtspServer::start(&["--user", "admin", "--password", "s3cr3t-pw", "--no-audio"]);
    let (w, _creds) = pull_with_credentials("gate", &server.url(), "admin:s3cr3t-pw");
    w.wait_live("gate", LIVE);
    assert_eq!(source(&w, "gate")["state"], "playing");
    assert!(!w.log_text().contains("s3cr3t-pw"), "a password in the log");
}

#[test]
fn a_wrong_password_backs_off_with_a_clear_reason_and_few_log_lines() {
    let server = RtspServer::start(&["--user", "admin", "--password", "right-pw", "--no-audio"]);
    // The URL's own credentials are redacted too (the file wins over them).
    let url = server.url().replace("rtsp://", "rtsp://admin:url-pw@");
    let (w, _creds) = pull_with_credentials("yard", &url, "admin:wr0ng-pw");

    let mut ceilings = Vec::new();
    let src = wait_for("three failed attempts", LIVE, || {
        let src = source(&w, "yard");
        if let Some(c) = src["retry_ceiling_ms"].as_u64() {
            if ceilings.last() != Some(&c) {
                ceilings.push(c);
            }
        }
        (src["failures"].as_u64() >= Some(3) && ceilings.len() >= 3).then_some(src)
    });
    assert!(
        ceilings.windows(2).all(|p| p[1] > p[0]),
        "the backoff ceiling grows: {ceilings:?}"
    );
    let error = src["last_error"].as_str().unwrap();
    assert!(error.contains("refused the credentials"), "{error}");
    assert!(error.contains("401"), "{error}");
    assert_eq!(
        src["url"],
        server.url().replace("rtsp://", "rtsp://redacted@")
    );
    let cam = w.camera("yard").expect("listed while it cannot connect");
    assert_eq!(cam["live"], false);
    assert!(
        w.metric("kamera_pull_failures_total{camera=\"yard\",reason=\"unauthorized\"}")
            >= Some(3.0)
    );

    let log = w.log_text();
    let failures = log
        .lines()
        .filter(|l| l.contains("RTSP pull failed"))
        .count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} failure lines for {} attempts:\n{log}",
        src["failures"]
    );
    for secret in ["wr0ng-pw", "url-pw", "right-pw"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(
            !w.get("/api/cameras").1.contains(secret),
            "{secret} in the API"
        );
    }
}

#[test]
fn a_restarted_camera_comes_back_with_a_new_file_and_an_hls_discontinuity() {
    let mut server = RtspServer::start(&[]);
    let port = server.port.to_string();
    let pull = format!("lobby={}", server.url());
    let w = Worker::start(&["--pull", &pull, "--recording-fragment", "500ms"]);
    w.wait_live("lobby", LIVE);
    wait_for("a first LL-HLS segment", LIVE, || {
        let (status, body) = w.get("/hls/lobby/stream.m3u8");
        (status == 200 && !media_playlist(&body).segments.is_empty()).then_some(())
    });

    server.kill9();
    wait_for("the pull to notice the camera is gone", LIVE, || {
        let src = source(&w, "lobby");
        (src["state"] != "playing" && w.camera("lobby")?["live"] == false).then_some(())
    });
    let _server = RtspServer::start(&["--port", &port]);

    wait_for("the camera to play again", LIVE, || {
        (source(&w, "lobby")["state"] == "playing").then_some(())
    });
    let text = wait_for(
        "segments of the new session after a discontinuity",
        LIVE,
        || {
            let text = w.get("/hls/lobby/stream.m3u8").1;
            let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1)?;
            after.contains("#EXTINF").then_some(text)
        },
    );
    media_playlist(&text);
    let files = wait_for("the first file closed and a new one", LIVE, || {
        let files = recording_files(&w.data_dir, "lobby");
        let closed = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "mp4"));
        (closed.count() >= 1 && files.len() >= 2).then_some(files)
    });
    let first = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "mp4"))
        .unwrap();
    assert!(probe_codecs(first).contains(&"h264".to_string()));
    assert!(
        w.metric("kamera_pull_failures_total{camera=\"lobby\",reason=\"ended\"}")
            .is_some()
            || w.metric("kamera_pull_failures_total{camera=\"lobby\",reason=\"protocol\"}")
                .is_some()
    );
}

#[test]
fn an_h265_camera_serves_ll_hls_a_recording_and_frames() {
    let server = RtspServer::start(&["--h265", "--no-audio"]);
    let pull = format!("hevc={}", server.url());
    let w = Worker::start(&[
        "--pull",
        &pull,
        "--recording-fragment",
        "500ms",
        "--frame-sampling",
        "keyframes",
    ]);

    let cam = w.wait_live("hevc", LIVE);
    assert_eq!(cam["codec"], "h265", "{cam}");
    assert_eq!(cam["resolution"], "320x240", "{cam}");
    let codec_string = cam["codec_string"].as_str().unwrap().to_string();
    assert!(codec_string.starts_with("hvc1.1."), "{codec_string}");

    // LL-HLS names the same codec and serves parts.
    wait_for("LL-HLS segments from the H.265 camera", LIVE, || {
        let (status, body) = w.get("/hls/hevc/stream.m3u8");
        (status == 200 && media_playlist(&body).segments.len() >= 2).then_some(())
    });
    let index = w.get("/hls/hevc/index.m3u8").1;
    assert!(
        index.contains(&format!("CODECS=\"{codec_string}\"")),
        "{index}"
    );

    // JPEG frames for processors, from keyframes alone.
    wait_for("frames from the H.265 camera", LIVE, || {
        let extracted = w.metric("kamera_frames_extracted_total{camera=\"hevc\"}");
        (extracted >= Some(2.0)).then_some(())
    });
    assert_eq!(
        w.metric(
            "kamera_frames_dropped_total{camera=\"hevc\",processor=\"\",reason=\"decode_error\"}"
        ),
        None
    );

    // A recording that ffprobe reads as H.265.
    let file = wait_for("a recording fragment", LIVE, || {
        recording_files(&w.data_dir, "hevc")
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 10_000))
    });
    assert_eq!(probe_codecs(&file), ["hevc"]);
}
