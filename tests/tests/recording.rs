//! Recording end to end: a real worker records what a real `ffmpeg` publishes; `ffprobe` and
//! `ffmpeg` check the files; the recordings API serves them.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kamera_tests::{default_clip, recording_files, wait_for, Publisher, Worker};
use serde_json::Value;

/// One packet as `ffprobe` reports it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    dts: f64,
    duration: f64,
    key: bool,
}

/// Packets of the first stream of `kind` (`v` or `a`).
fn packets(file: &Path, kind: &str) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:0")])
        .args([
            "-show_entries",
            "packet=dts_time,duration_time,flags",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |p: &Value, k: &str| p[k].as_str().and_then(|s| s.parse::<f64>().ok());
    v["packets"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some(Packet {
                        dts: num(p, "dts_time")?,
                        duration: num(p, "duration_time").unwrap_or(0.0),
                        key: p["flags"].as_str().is_some_and(|f| f.starts_with('K')),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes the whole file; returns ffmpeg's error output (empty when clean).
fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}",
        file.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Media span of the video in seconds: first DTS to the end of the last frame.
fn video_span(p: &[Packet]) -> f64 {
    match (p.first(), p.last()) {
        (Some(a), Some(b)) => b.dts + b.duration - a.dts,
        _ => 0.0,
    }
}

/// All recording files of `camera` (closed and open), sorted by name (= start time).
fn closed(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .cloned()
        .collect()
}

fn is_part(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "part")
}

/// Seconds past the minute in a `<camera>-YYYYMMDDTHHMMSSZ.mp4` name.
fn name_seconds(p: &Path) -> u32 {
    let name = p.file_name().unwrap().to_string_lossy();
    let stamp = name.rsplit('-').next().unwrap();
    stamp[13..15].parse().unwrap()
}

fn listing(w: &Worker, camera: &str) -> Vec<Value> {
    w.get_json(&format!("/recordings/{camera}/"))["recordings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn files_are_playable_cut_on_clock_boundaries_and_join_without_gaps() {
    let clip = default_clip();
    let w = Worker::start(&["--segment-duration", "10s"]);
    let mut publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    // Two closed files: the first (partial) and one full 10 s segment.
    wait_for("two closed recordings", Duration::from_secs(40), || {
        (closed(&recording_files(&w.data_dir, "cam")).len() >= 2).then_some(())
    });
    publisher.kill9();
    wait_for(
        "the last file closed after the publisher left",
        Duration::from_secs(10),
        || {
            recording_files(&w.data_dir, "cam")
                .iter()
                .all(|p| !is_part(p))
                .then_some(())
        },
    );
    let ingested = w
        .metric(r#"kamera_ingest_frames_total{camera="cam",track="video"}"#)
        .unwrap();

    let all = recording_files(&w.data_dir, "cam");
    assert!(all.len() >= 3, "{all:?}");
    let mut recorded_frames = 0usize;
    let mut previous_last_dts: Option<f64> = None;
    for (i, f) in all.iter().enumerate() {
        let video = packets(f, "v");
        let audio = packets(f, "a");
        assert!(
            !video.is_empty() && !audio.is_empty(),
            "{} lacks video or audio",
            f.display()
        );
        assert!(
            video[0].key,
            "{} does not start with a keyframe",
            f.display()
        );
        assert_eq!(decode_errors(f), "", "{} decodes with errors", f.display());
        if i > 0 {
            // Cut at the first keyframe at or after a 10 s boundary: within one GOP (1 s) of it.
            let s = name_seconds(f) % 10;
            assert!(s <= 1, "{} starts {s} s after a 10 s boundary", f.display());
        }
        if let Some(last_dts) = previous_last_dts {
            // The next file starts with the frame after the previous file's last one: no frame
            // missing (a gap) or repeated (an overlap). Measured DTS to DTS: ffprobe reports a
            // nominal duration for a file's last packet, not the one written in its `trun`
            // (the fragmenter's join is checked exactly, in ticks, by its own unit test).
            let step = video[0].dts - last_dts;
            let frame = 1.0 / f64::from(clip.fps);
            assert!(
                step > 0.0 && step <= 1.5 * frame,
                "{} starts {step} s after the previous file's last frame (one frame is {frame} s)",
                f.display()
            );
        }
        previous_last_dts = Some(video.last().map(|p| p.dts).unwrap());
        recorded_frames += video.len();
    }
    // Every frame since the recorder attached is in a file: at most a GOP is missing (frames
    // published before the camera appeared), and nothing is duplicated.
    let missing = ingested - recorded_frames as f64;
    assert!(
        (0.0..=f64::from(clip.gop) + 1.0).contains(&missing),
        "ingested {ingested} video frames, recorded {recorded_frames}"
    );

    // The listing shows the same files, closed, with plausible durations.
    let list = listing(&w, "cam");
    assert_eq!(list.len(), all.len());
    for (entry, f) in list.iter().zip(&all) {
        assert_eq!(entry["closed"], true);
        assert!(entry["url"]
            .as_str()
            .unwrap()
            .ends_with(&*f.file_name().unwrap().to_string_lossy()));
        let listed = entry["duration"].as_f64().unwrap();
        let media = video_span(&packets(f, "v"));
        assert!(
            (listed - media).abs() < 1.0,
            "listed {listed} s, media {media} s"
        );
    }
    assert!(
        w.metric(r#"kamera_recording_files_total{camera="cam"}"#)
            .unwrap()
            >= 3.0
    );
    assert!(
        w.metric(r#"kamera_recording_bytes_total{camera="cam"}"#)
            .unwrap()
            > 0.0
    );
}

#[test]
fn kill9_leaves_a_playable_file_that_is_recovered_on_restart() {
    let clip = default_clip();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut w = Worker::start_in(&data, &[]);
    let _publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    let frames = |w: &Worker| {
        w.metric(r#"kamera_ingest_frames_total{camera="cam",track="video"}"#)
            .unwrap_or(0.0)
    };
    wait_for("5 s of video ingested", Duration::from_secs(30), || {
        (frames(&w) >= 125.0).then_some(())
    });
    let ingested_secs = frames(&w) / f64::from(clip.fps);
    w.kill9();

    let all = recording_files(&data, "cam");
    assert_eq!(all.len(), 1, "{all:?}");
    let part = &all[0];
    assert!(is_part(part), "the file was left open: {}", part.display());
    assert_eq!(decode_errors(part), "", "the open file decodes with errors");
    let video = packets(part, "v");
    assert!(video[0].key);
    let recorded = video_span(&video);
    assert!(
        recorded >= ingested_secs - 1.5,
        "only {recorded:.2} s of {ingested_secs:.2} s survived kill -9"
    );

    // On restart the file is recovered under its final name and listed as closed.
    let w = Worker::start_in(&data, &[]);
    let list = wait_for(
        "the recovered file in the listing",
        Duration::from_secs(10),
        || {
            let l = listing(&w, "cam");
            (l.len() == 1 && l[0]["closed"] == true).then_some(l)
        },
    );
    let recovered = part.with_extension("");
    assert!(recovered.exists() && !part.exists());
    assert!(list[0]["url"]
        .as_str()
        .unwrap()
        .ends_with(&*recovered.file_name().unwrap().to_string_lossy()));
    assert_eq!(packets(&recovered, "v").len(), video.len());
}

#[test]
fn sigterm_closes_the_open_file() {
    let clip = default_clip();
    let mut w = Worker::start(&[]);
    let _publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    wait_for("two fragments on disk", Duration::from_secs(20), || {
        (w.metric(r#"kamera_recording_bytes_total{camera="cam"}"#)? > 150_000.0).then_some(())
    });
    let ingested = w
        .metric(r#"kamera_ingest_frames_total{camera="cam",track="video"}"#)
        .unwrap();
    let status = w.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "worker did not exit cleanly: {status:?}"
    );
    let all = recording_files(&w.data_dir, "cam");
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        !is_part(&all[0]),
        "the file was left open: {}",
        all[0].display()
    );
    assert_eq!(decode_errors(&all[0]), "");
    // Everything up to the signal is in the file (the fragmenter is flushed on close).
    let recorded = packets(&all[0], "v").len() as f64;
    assert!(
        recorded >= ingested - f64::from(clip.gop),
        "recorded {recorded} of {ingested} frames"
    );
}

#[test]
fn retention_deletes_the_oldest_files_and_never_the_open_one() {
    let clip = default_clip();
    // ~2 s files of ~1.1 Mbit/s: about 280 kB each; keep about three.
    let w = Worker::start(&["--segment-duration", "2s", "--retention-max-size", "800kB"]);
    let _publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    let first = wait_for("a first closed file", Duration::from_secs(20), || {
        closed(&recording_files(&w.data_dir, "cam"))
            .first()
            .cloned()
    });
    let closed_bytes = |files: &[PathBuf]| -> u64 {
        files
            .iter()
            .filter(|p| !is_part(p))
            .map(|p| p.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    let mut seen: Vec<PathBuf> = Vec::new();
    // One retention pass deletes file after file: wait for a pass to have finished, not just
    // started (the first file gone and the closed files within the limit).
    let now = wait_for(
        "retention to delete the first file and keep the closed files within 800 kB",
        Duration::from_secs(40),
        || {
            let now = recording_files(&w.data_dir, "cam");
            for f in &now {
                let name = f.with_extension("").with_extension("mp4");
                if !seen.contains(&name) {
                    seen.push(name);
                }
            }
            (!first.exists() && closed_bytes(&now) <= 800_000).then_some(now)
        },
    );
    seen.sort();
    // What is left is the newest files, in order, and the open file is among them.
    let kept: Vec<PathBuf> = now
        .iter()
        .map(|f| {
            if is_part(f) {
                f.with_extension("")
            } else {
                f.clone()
            }
        })
        .collect();
    assert!(
        now.iter().any(|p| is_part(p)),
        "the open file is gone: {now:?}"
    );
    assert_eq!(
        kept,
        seen[seen.len() - kept.len()..].to_vec(),
        "retention did not take the oldest first"
    );
    assert!(
        w.metric(r#"kamera_recording_deleted_total{camera="cam",reason="size"}"#)
            .unwrap()
            >= 1.0
    );
}

/// A size-limited tmpfs mounted for one test (needs root), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn available(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_disk_stops_recording_cleanly_and_recording_resumes_when_space_returns() {
    // A skipped test must not pass: without the small filesystem this test cannot show anything.
    let fs = Tmpfs::mount("12m").expect(
        "mounting a 12 MiB tmpfs failed: this test needs root (as `make test` has in CI) to fill a real filesystem",
    );
    let clip = default_clip();
    let data = fs.0.path().join("data");
    let mut w = Worker::start_in(&data, &["--min-free", "3MiB"]);
    let _publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    let state = |w: &Worker| {
        w.camera("cam")
            .map(|c| c["recording"]["state"].as_str().unwrap_or("").to_string())
    };
    wait_for("recording", Duration::from_secs(20), || {
        (state(&w).as_deref() == Some("recording")).then_some(())
    });
    wait_for("a first fragment on disk", Duration::from_secs(10), || {
        (w.metric(r#"kamera_recording_bytes_total{camera="cam"}"#)? > 50_000.0).then_some(())
    });

    // Fill the volume to 1 MiB above nothing: below the 3 MiB floor.
    let filler = fs.0.path().join("filler");
    let fill = available(fs.0.path()).saturating_sub(1 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    wait_for(
        "recording stopped for low disk",
        Duration::from_secs(10),
        || (state(&w).as_deref() == Some("disk_low")).then_some(()),
    );
    let dropped = r#"kamera_recording_dropped_total{camera="cam",reason="disk_low"}"#;
    wait_for("dropped frames counted", Duration::from_secs(10), || {
        (w.metric(dropped)? > 0.0).then_some(())
    });
    // The file that was open is closed cleanly and plays.
    let stopped = recording_files(&data, "cam");
    assert!(stopped.iter().all(|p| !is_part(p)), "{stopped:?}");
    assert_eq!(decode_errors(&stopped[0]), "");
    // Ingest (and the stages that do not write to disk) go on.
    let video = r#"kamera_ingest_frames_total{camera="cam",track="video"}"#;
    let n = w.metric(video).unwrap();
    wait_for("ingest continuing", Duration::from_secs(5), || {
        (w.metric(video)? > n + 25.0).then_some(())
    });
    assert_eq!(w.get("/readyz").0, 200);
    // Live viewing lives in memory: HLS keeps publishing new parts while the disk is full.
    let playlist = |w: &Worker| {
        let (status, body) = w.get("/hls/cam/stream.m3u8");
        assert_eq!(status, 200, "HLS playlist while the disk is full: {body}");
        body
    };
    let p1 = playlist(&w);
    assert!(p1.contains("#EXT-X-PART:"), "{p1}");
    wait_for(
        "HLS serving new parts while the disk is full",
        Duration::from_secs(10),
        || (playlist(&w) != p1).then_some(()),
    );

    std::fs::remove_file(&filler).unwrap();
    let resumed = wait_for(
        "recording resumed in a new file",
        Duration::from_secs(20),
        || {
            let now = recording_files(&data, "cam");
            (state(&w).as_deref() == Some("recording") && now.len() > stopped.len()).then_some(now)
        },
    );
    let new_file = resumed.iter().find(|p| !stopped.contains(p)).unwrap();
    wait_for("the new file has media", Duration::from_secs(10), || {
        (!packets(new_file, "v").is_empty()).then_some(())
    });
    assert!(packets(new_file, "v")[0].key);
    w.terminate(Duration::from_secs(10));
}

/// A raw HTTP/1.1 GET, so the path reaches the server exactly as written (HTTP clients
/// normalise `..` away).
fn raw_get(w: &Worker, path: &str) -> u16 {
    let mut s = TcpStream::connect(w.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn recordings_are_served_with_byte_ranges_and_traversal_is_refused() {
    let clip = default_clip();
    let w = Worker::start(&["--segment-duration", "2s"]);
    let _publisher = Publisher::start(&clip, &w.rtmp_url("cam"));
    w.wait_live("cam", Duration::from_secs(20));
    let entry = wait_for("a closed recording listed", Duration::from_secs(20), || {
        listing(&w, "cam").into_iter().find(|e| e["closed"] == true)
    });
    let url = entry["url"].as_str().unwrap().to_string();
    let path = w
        .data_dir
        .join("recordings/cam")
        .join(entry["file"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(entry["bytes"].as_u64().unwrap(), bytes.len() as u64);

    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let get = |range: Option<&str>| {
        let mut req = agent.get(&w.http_url(&url));
        if let Some(r) = range {
            req = req.set("Range", r);
        }
        match req.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let ctype = r.header("Content-Type").unwrap_or("").to_string();
                let crange = r.header("Content-Range").unwrap_or("").to_string();
                let mut body = Vec::new();
                r.into_reader().read_to_end(&mut body).unwrap();
                (status, ctype, crange, body)
            }
            Err(e) => panic!("GET {url}: {e}"),
        }
    };
    let (status, ctype, _, body) = get(None);
    assert_eq!((status, ctype.as_str()), (200, "video/mp4"));
    assert_eq!(body, bytes);
    let (status, _, crange, body) = get(Some("bytes=100-199"));
    assert_eq!(status, 206);
    assert_eq!(crange, format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(body, bytes[100..200]);
    let (status, _, _, body) = get(Some("bytes=-50"));
    assert_eq!(status, 206);
    assert_eq!(body, bytes[bytes.len() - 50..]);
    let (status, _, _, body) = get(Some(&format!("bytes={}-", bytes.len() - 10)));
    assert_eq!((status, body.as_slice()), (206, &bytes[bytes.len() - 10..]));
    let (status, _, crange, _) = get(Some(&format!("bytes={}-", bytes.len())));
    assert_eq!(status, 416);
    assert_eq!(crange, format!("bytes */{}", bytes.len()));

    // ?from=&to= select the files overlapping the interval.
    let first = listing(&w, "cam").remove(0);
    let to_first = w.get_json(&format!(
        "/recordings/cam/?to={}",
        first["start"].as_str().unwrap()
    ));
    assert_eq!(
        to_first["recordings"].as_array().unwrap(),
        &vec![first.clone()]
    );
    let later = wait_for("a second closed recording", Duration::from_secs(20), || {
        listing(&w, "cam")
            .into_iter()
            .filter(|e| e["closed"] == true)
            .nth(1)
    });
    let from_later = w.get_json(&format!(
        "/recordings/cam/?from={}",
        later["end"].as_str().unwrap()
    ));
    let urls: Vec<&Value> = from_later["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["url"])
        .collect();
    assert!(
        urls.contains(&&later["url"]) && !urls.contains(&&first["url"]),
        "{urls:?}"
    );
    let none = w.get_json("/recordings/cam/?to=2000-01-01T00:00:00Z");
    assert_eq!(none["recordings"].as_array().unwrap().len(), 0);
    assert_eq!(w.get("/recordings/cam/?from=yesterday").0, 400);

    for bad in [
        "/recordings/../../etc/passwd",
        "/recordings/cam/../../../etc/passwd",
        "/recordings/cam/%2e%2e/%2e%2e/etc/passwd",
        "/recordings/cam%2F..%2F..%2Fetc%2Fpasswd",
        "/recordings/..%2F..%2Fetc/passwd",
        "/recordings/cam/2026-01-01/..",
        "/recordings//etc/passwd",
    ] {
        assert_eq!(raw_get(&w, bad), 400, "{bad}");
    }
    assert_eq!(
        raw_get(&w, "/recordings/cam/2000-01-01/cam-20000101T000000Z.mp4"),
        404
    );
    assert_eq!(raw_get(&w, &url), 200);
}
