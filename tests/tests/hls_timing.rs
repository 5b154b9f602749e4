//! LL-HLS timing rules end to end (RFC 8216bis): real `ffmpeg` publishers at the frame rates
//! cameras use (12.5, 15, 25, 29.97, 30 fps, a jittery variable rate, and a GOP longer than
//! the maximum segment duration) into one worker; every playlist they produce is read with a
//! real parser (`m3u8-rs`) and checked against the part and segment duration rules. Plus the
//! blocking-request limits and gzip for playlists.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kamera_tests::{default_clip, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(40);
/// The worker's default `--hls-max-segment-duration`, in seconds.
const TARGET_DURATION: u64 = 2;

/// A short 160x96 H.264 clip at `rate` (an ffmpeg rate: `25`, `30000/1001`, `12.5`) with a
/// keyframe every `gop_s` seconds, `filter` applied (e.g. timestamp jitter); encoded once and
/// cached under the target dir.
fn clip(name: &str, rate: &str, gop_s: u32, seconds: u32, filter: Option<&str>) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kamera-test-clips");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("timing-{name}-g{gop_s}-{seconds}s.flv"));
    if path.exists() {
        return path;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg(format!(
        "testsrc2=size=160x96:rate={rate}:duration={seconds}"
    ));
    if let Some(f) = filter {
        cmd.args(["-vf", f, "-fps_mode", "vfr"]);
    }
    let status = cmd
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
        .args(["-force_key_frames"])
        .arg(format!("expr:gte(t,n_forced*{gop_s})"))
        .args(["-sc_threshold", "0", "-g", "1000", "-f", "flv"])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(status.success(), "encoding {name} failed");
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn attrs(list: &str) -> HashMap<&str, &str> {
    let mut out = HashMap::new();
    let mut rest = list;
    while let Some((k, after)) = rest.split_once('=') {
        let (v, next) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"').unwrap();
                (&q[..end], q[end + 1..].trim_start_matches(','))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(k, v);
        rest = next;
    }
    out
}

fn ms(seconds: &str) -> i64 {
    (seconds.parse::<f64>().unwrap() * 1000.0).round() as i64
}

/// What one playlist showed: PART-TARGET (ms), target duration, and the complete segments as
/// (EXTINF ms, parts as (duration ms, independent)).
struct Seen {
    part_target: i64,
    target_duration: u64,
    segments: Vec<(i64, Vec<(i64, bool)>)>,
}

/// Parses a media playlist with `m3u8-rs` and checks it against RFC 8216bis: every part at
/// most PART-TARGET; every part but a segment's last (and an independent one) at least 85 %
/// of it; every EXTINF, rounded, at most TARGETDURATION. `None` before a segment completes
/// (`m3u8-rs` hands out the LL-HLS tags with the segment that follows them).
fn check(name: &str, text: &str) -> Option<Seen> {
    let playlist = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        other => panic!("{name}: not a media playlist ({other:?}):\n{text}"),
    };
    let first_tags = playlist.segments.first().map(|s| &s.unknown_tags[..]);
    let part_inf = playlist
        .unknown_tags
        .iter()
        .chain(first_tags.unwrap_or_default())
        .find(|t| t.tag == "X-PART-INF")
        .and_then(|t| t.rest.clone())?;
    let part_target = ms(attrs(&part_inf)["PART-TARGET"]);
    let mut segments = Vec::new();
    for seg in &playlist.segments {
        let extinf = (f64::from(seg.duration) * 1000.0).round() as i64;
        assert!(
            (extinf + 500) / 1000 <= playlist.target_duration as i64,
            "{name}: EXTINF {extinf} ms > TARGETDURATION {}:\n{text}",
            playlist.target_duration
        );
        let parts: Vec<(i64, bool)> = seg
            .unknown_tags
            .iter()
            .filter(|t| t.tag == "X-PART")
            .map(|t| {
                let a = attrs(t.rest.as_deref().unwrap_or_default());
                (ms(a["DURATION"]), a.get("INDEPENDENT") == Some(&"YES"))
            })
            .collect();
        for (i, (d, independent)) in parts.iter().enumerate() {
            assert!(
                *d <= part_target,
                "{name}: part {i} of {} lasts {d} ms > PART-TARGET {part_target} ms:\n{text}",
                seg.uri
            );
            let last = i + 1 == parts.len();
            assert!(
                last || *independent || d * 100 >= part_target * 85,
                "{name}: part {i} of {} lasts {d} ms < 85 % of PART-TARGET {part_target} ms:\n{text}",
                seg.uri
            );
        }
        if !parts.is_empty() {
            segments.push((extinf, parts));
        }
    }
    Some(Seen {
        part_target,
        target_duration: playlist.target_duration,
        segments,
    })
}

struct Stream {
    name: &'static str,
    rate: &'static str,
    gop_s: u32,
    filter: Option<&'static str>,
}

const STREAMS: [Stream; 7] = [
    Stream {
        name: "fps12-5",
        rate: "12.5",
        gop_s: 1,
        filter: None,
    },
    Stream {
        name: "fps15",
        rate: "15",
        gop_s: 1,
        filter: None,
    },
    Stream {
        name: "fps25",
        rate: "25",
        gop_s: 2,
        filter: None,
    },
    Stream {
        name: "fps29-97",
        rate: "30000/1001",
        gop_s: 1,
        filter: None,
    },
    Stream {
        name: "fps30",
        rate: "30",
        gop_s: 1,
        filter: None,
    },
    // Variable frame rate: 25 fps whose timestamps wobble by up to ±3 ms.
    Stream {
        name: "vfr",
        rate: "25",
        gop_s: 1,
        filter: Some("setpts=(N/25+0.003*sin(N*1.7))/TB"),
    },
    // A keyframe every 5 s: longer than the 2 s maximum segment duration.
    Stream {
        name: "longgop",
        rate: "25",
        gop_s: 5,
        filter: None,
    },
];

#[test]
fn parts_and_segments_keep_the_spec_at_every_frame_rate() {
    let w = Worker::start(&["--no-recording", "--frame-fps", "0.1"]);
    let _publishers: Vec<Publisher> = STREAMS
        .iter()
        .map(|s| {
            let seconds = if s.gop_s > 2 { 12 } else { 6 };
            let path = clip(s.name, s.rate, s.gop_s, seconds, s.filter);
            let c = kamera_tests::Clip {
                path,
                ..default_clip()
            };
            Publisher::start(&c, &w.rtmp_url(s.name))
        })
        .collect();
    // Every stream, polled in turn, until each shows enough complete segments with parts.
    let mut targets: HashMap<&str, i64> = HashMap::new();
    let mut done: HashMap<&str, Seen> = HashMap::new();
    let mut last: HashMap<&str, String> = HashMap::new();
    let deadline = std::time::Instant::now() + LIVE;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "streams without enough segments: {:#?}",
            last.iter()
                .filter(|(k, _)| !done.contains_key(*k))
                .collect::<Vec<_>>()
        );
        for s in &STREAMS {
            if done.contains_key(s.name) {
                continue;
            }
            let (status, text) = w.get(&format!("/hls/{}/stream.m3u8", s.name));
            last.insert(s.name, format!("{status} {text}"));
            if status != 200 {
                continue;
            }
            let Some(seen) = check(s.name, &text) else {
                continue;
            };
            // Both are fixed for the stream's life.
            assert_eq!(seen.target_duration, TARGET_DURATION, "{}", s.name);
            let target = *targets.entry(s.name).or_insert(seen.part_target);
            assert_eq!(seen.part_target, target, "{}: PART-TARGET changed", s.name);
            // Parts are listed for the newest three target durations: two or three segments.
            let enough = if s.gop_s > 2 {
                seen.segments.len() >= 2 && seen.segments.iter().any(|(_, p)| !p[0].1)
            } else {
                seen.segments.len() >= 3
            };
            if enough {
                done.insert(s.name, seen);
            }
        }
        if done.len() == STREAMS.len() {
            break;
        }
        // Polling, not synchronisation: each round re-reads every playlist.
        std::thread::sleep(Duration::from_millis(100));
    }

    for s in &STREAMS {
        let seen = &done[s.name];
        // A whole number of frames near the configured 200 ms.
        let frame = match s.rate {
            "30000/1001" => 1001.0 / 30.0,
            r => 1000.0 / r.parse::<f64>().unwrap(),
        };
        let frames = (200.0 / frame - 1e-6).ceil();
        assert!(
            seen.part_target as f64 >= frames * frame - 1.0
                && (seen.part_target as f64) <= frames * frame * 1.05 + 3.0,
            "{}: PART-TARGET {} ms for {frames} frames of {frame:.2} ms",
            s.name,
            seen.part_target
        );
        if s.gop_s <= 2 {
            // Segments start on a keyframe.
            for (extinf, parts) in &seen.segments {
                assert!(
                    parts[0].1,
                    "{}: a segment starts without a keyframe",
                    s.name
                );
                // At least a second, up to the keyframe that follows it.
                assert!(*extinf >= 1000 - frame as i64, "{}: {extinf} ms", s.name);
            }
        } else {
            // Cut at the cap; the segment after a cut is not claimed independent.
            assert!(
                seen.segments.iter().any(|(_, parts)| !parts[0].1),
                "{}: no segment cut without a keyframe",
                s.name
            );
        }
    }
    // The multivariant playlist does not claim that every segment starts independently.
    let (status, index) = w.get("/hls/longgop/index.m3u8");
    assert_eq!(status, 200);
    assert!(!index.contains("INDEPENDENT-SEGMENTS"), "{index}");
}

/// The newest part in a playlist: (msn, index).
fn newest_part(text: &str) -> (u64, u64) {
    let uri = text
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| {
            attrs(l.split_once(':').unwrap().1)
                .get("URI")
                .map(|u| u.to_string())
        })
        .unwrap();
    let (m, i) = uri
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .unwrap();
    (m.parse().unwrap(), i.parse().unwrap())
}

fn part_target_ms(text: &str) -> i64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PART-INF:"))
        .unwrap();
    ms(attrs(line.split_once(':').unwrap().1)["PART-TARGET"])
}

#[test]
fn blocking_requests_past_the_advance_part_limit_are_refused_and_past_a_segment_wait_for_the_next()
{
    let w = Worker::start(&["--no-recording"]);
    let _p = Publisher::start(&default_clip(), &w.rtmp_url("cam"));
    let text = wait_for("parts", LIVE, || {
        let (status, text) = w.get("/hls/cam/stream.m3u8");
        (status == 200 && text.contains("#EXTINF")).then_some(text)
    });
    // RFC 8216bis 6.2.5.2: three seconds of parts ahead at most, then 400 at once.
    let limit = 3000 / part_target_ms(&text) as u64;
    let (msn, index) = newest_part(&text);
    let far = format!(
        "/hls/cam/stream.m3u8?_HLS_msn={msn}&_HLS_part={}",
        index + limit + 1
    );
    let (status, body) = w.get(&far);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Advance Part Limit"), "{body}");

    // A part index past the last part of a segment means part 0 of the next segment: the
    // request for part 10 of a 1 s segment (five 200 ms parts) returns once the next segment
    // has begun, not when this one ends.
    let text = w.get("/hls/cam/stream.m3u8").1;
    let (msn, index) = newest_part(&text);
    let beyond = (index + 8).max(10).min(index + limit);
    let (status, body) = w.get(&format!(
        "/hls/cam/stream.m3u8?_HLS_msn={msn}&_HLS_part={beyond}"
    ));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("part{}.0.m4s\"", msn + 1)),
        "answered before segment {} began:\n{body}",
        msn + 1
    );
}

fn get_raw(w: &Worker, path: &str, gzip: bool) -> (HashMap<String, String>, Vec<u8>) {
    let mut req = ureq::get(&w.http_url(path));
    if gzip {
        req = req.set("Accept-Encoding", "gzip");
    }
    let resp = req.call().unwrap();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or_default().to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (headers, body)
}

#[test]
fn playlists_are_gzipped_for_clients_that_accept_it_and_media_never_is() {
    let w = Worker::start(&["--no-recording"]);
    let mut p = Publisher::start(&default_clip(), &w.rtmp_url("cam"));
    wait_for("a complete segment", LIVE, || {
        w.get("/hls/cam/stream.m3u8")
            .1
            .contains("#EXTINF")
            .then_some(())
    });
    // Once the publisher is gone the playlist stops changing, so both forms can be compared.
    p.kill9();
    wait_for("the session to end", LIVE, || {
        (!w.get("/hls/cam/stream.m3u8").1.contains("PRELOAD-HINT")).then_some(())
    });
    let (plain_headers, plain) = get_raw(&w, "/hls/cam/stream.m3u8", false);
    let (gz_headers, gz) = get_raw(&w, "/hls/cam/stream.m3u8", true);
    assert_eq!(plain_headers.get("content-encoding"), None);
    assert_eq!(
        gz_headers.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
    assert_eq!(
        gz_headers.get("vary").map(String::as_str),
        Some("accept-encoding")
    );
    assert!(plain.starts_with(b"#EXTM3U"));
    assert!(gz.len() < plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(
        String::from_utf8(unzipped).unwrap(),
        String::from_utf8(plain).unwrap()
    );

    let (_, index) = get_raw(&w, "/hls/cam/index.m3u8", true);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&index[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(unzipped.contains("#EXT-X-STREAM-INF"));

    // Media is compressed already: served as is.
    let (headers, init) = get_raw(&w, "/hls/cam/init.mp4", true);
    assert_eq!(headers.get("content-encoding"), None);
    assert_eq!(&init[4..8], b"ftyp");
    let (headers, part) = get_raw(&w, "/hls/cam/part0.0.m4s", true);
    assert_eq!(headers.get("content-encoding"), None);
    assert_eq!(&part[4..8], b"moof");
}
