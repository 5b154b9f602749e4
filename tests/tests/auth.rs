//! Viewer authentication end to end: the real worker with `--http-tokens-file`, fed by a real
//! `ffmpeg` publisher, read back with tokens as Bearer headers and query parameters, played
//! by `ffmpeg` from a tokenised playlist URL, and with its tokens file rotated while it runs.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kamera_tests::{default_clip, run_to_exit, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(30);
/// The worker re-reads its tokens file every 2 s; allow for a slow, busy machine.
const RELOAD: Duration = Duration::from_secs(20);

/// `live:*`, `recordings` and `api`: sees everything.
const ADMIN: &str = "admin-0123456789abcdef";
/// `live:a` only.
const VIEWER_A: &str = "viewer-a-0123456789abcdef";
const CHALLENGE: &str = "Bearer realm=\"kamera\"";

/// A temporary directory with a tokens file in it.
struct TokensFile {
    dir: tempfile::TempDir,
}

impl TokensFile {
    fn new(text: &str) -> TokensFile {
        let file = TokensFile {
            dir: tempfile::tempdir().unwrap(),
        };
        file.replace(text);
        file
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Replaces the file atomically, as a config manager (or kubelet's symlink swap) does.
    fn replace(&self, text: &str) {
        let tmp = self.dir.path().join("tokens.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }
}

fn standard_tokens() -> TokensFile {
    TokensFile::new(&format!(
        "# end-to-end test tokens\n{ADMIN} live:* recordings api\n{VIEWER_A} live:a\n"
    ))
}

fn start(tokens: &TokensFile, extra: &[&str]) -> Worker {
    let path = tokens.path();
    let mut args = vec!["--http-tokens-file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    Worker::start(&args)
}

/// Waits until `camera` has complete LL-HLS segments, reading with the admin token.
fn wait_segments(w: &Worker, camera: &str) {
    wait_for(&format!("LL-HLS segments of {camera}"), LIVE, || {
        let r = w.request(&format!("/hls/{camera}/stream.m3u8"), Some(ADMIN));
        (r.status == 200 && r.body.contains("#EXTINF")).then_some(())
    });
}

/// The quoted `URI` attributes and the URI lines of a playlist.
fn playlist_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            if let Some(rest) = line.split("URI=\"").nth(1) {
                uris.push(rest.split('"').next().unwrap().to_string());
            }
        } else if !line.trim().is_empty() {
            uris.push(line.to_string());
        }
    }
    uris
}

#[test]
fn without_a_token_every_protected_url_answers_401_while_metrics_and_health_stay_open() {
    let tokens = standard_tokens();
    let w = start(&tokens, &[]);
    let _p = Publisher::start(&default_clip(), &w.rtmp_url("a"));
    wait_segments(&w, "a");
    let playlist = w.request("/hls/a/stream.m3u8", Some(ADMIN)).body;
    let uris = playlist_uris(&playlist);
    let init = uris.iter().find(|u| u.starts_with("init")).unwrap();
    let part = uris.iter().find(|u| u.starts_with("part")).unwrap();
    wait_for("a frame of camera a", LIVE, || {
        (w.request("/frames/a/latest.jpg", Some(ADMIN)).status == 200).then_some(())
    });
    let recording = wait_for("a recording of camera a", LIVE, || {
        let listing = w.request("/recordings/a/", Some(ADMIN)).body;
        let json: serde_json::Value = serde_json::from_str(&listing).ok()?;
        json["recordings"][0]["url"].as_str().map(str::to_string)
    });

    let protected = [
        "/hls/a/index.m3u8".to_string(),
        "/hls/a/stream.m3u8".to_string(),
        format!("/hls/a/{init}"),
        format!("/hls/a/{part}"),
        "/cameras/a".to_string(),
        "/frames/a/latest.jpg".to_string(),
        "/recordings/".to_string(),
        "/recordings/a/".to_string(),
        recording,
        "/api/cameras".to_string(),
        "/api/cameras/a".to_string(),
    ];
    for path in &protected {
        let anonymous = w.request(path, None);
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.body);
        assert_eq!(
            anonymous.header("www-authenticate"),
            Some(CHALLENGE),
            "{path}"
        );
        let wrong = w.request(path, Some("not-a-known-token-0000"));
        assert_eq!(wrong.status, 401, "{path} with an unknown token");
        // The same URL is there for the right token: the 401 is auth, not a missing file.
        assert_eq!(
            w.request(path, Some(ADMIN)).status,
            200,
            "{path} with the admin token"
        );
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(w.request(path, None).status, 200, "{path}");
    }
    let denied = w
        .metric("kamera_http_auth_denied_total{reason=\"missing_token\"}")
        .unwrap();
    assert!(denied >= protected.len() as f64, "{denied}");
    // Tokens never reach the log.
    let log = w.log_text();
    for token in [ADMIN, VIEWER_A, "not-a-known-token-0000"] {
        assert!(!log.contains(token), "the log holds a token:\n{log}");
    }
}

#[test]
fn a_token_for_camera_a_cannot_read_camera_b_nor_recordings_nor_the_api() {
    let tokens = standard_tokens();
    let w = start(&tokens, &[]);
    let clip = default_clip();
    let _a = Publisher::start(&clip, &w.rtmp_url("a"));
    let _b = Publisher::start(&clip, &w.rtmp_url("b"));
    wait_segments(&w, "a");
    wait_segments(&w, "b");

    for path in ["/hls/a/index.m3u8", "/hls/a/stream.m3u8", "/cameras/a"] {
        assert_eq!(w.request(path, Some(VIEWER_A)).status, 200, "{path}");
    }
    for path in [
        "/hls/b/index.m3u8",
        "/hls/b/stream.m3u8",
        "/cameras/b",
        "/frames/b/latest.jpg",
        "/recordings/",
        "/recordings/a/",
        "/api/cameras",
    ] {
        let r = w.request(path, Some(VIEWER_A));
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        // And as a query token too.
        let r = w.request(&format!("{path}?token={VIEWER_A}"), None);
        assert_eq!(r.status, 403, "{path}?token=: {}", r.body);
    }
}

#[test]
fn a_query_token_playlist_carries_the_token_into_every_uri_and_ffmpeg_plays_it() {
    let tokens = standard_tokens();
    let w = start(&tokens, &["--no-recording"]);
    let _p = Publisher::start(&default_clip(), &w.rtmp_url("a"));
    wait_segments(&w, "a");
    let q = format!("token={VIEWER_A}");

    let index = w.request(&format!("/hls/a/index.m3u8?{q}"), None);
    assert_eq!(index.status, 200, "{}", index.body);
    match m3u8_rs::parse_playlist_res(index.body.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            assert_eq!(m.variants[0].uri, format!("stream.m3u8?{q}"));
        }
        other => panic!("not a multivariant playlist: {other:?}"),
    }

    let media = w.request(&format!("/hls/a/stream.m3u8?{q}"), None).body;
    let uris = playlist_uris(&media);
    for prefix in ["init", "part", "seg"] {
        assert!(
            uris.iter().any(|u| u.starts_with(prefix)),
            "no {prefix} URI:\n{media}"
        );
    }
    assert!(media.contains("#EXT-X-PRELOAD-HINT"), "{media}");
    for uri in &uris {
        assert!(
            uri.ends_with(&format!("?{q}")),
            "{uri} lacks the token:\n{media}"
        );
        // Each URI as listed works with no header at all.
        let r = w.request(&format!("/hls/a/{uri}"), None);
        assert_eq!(r.status, 200, "{uri}");
    }
    match m3u8_rs::parse_playlist_res(media.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => assert!(!m.segments.is_empty()),
        other => panic!("not a media playlist: {other:?}"),
    }

    // Blocking reload and delta updates work beside the token, in any order of parameters.
    let hint = media
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .and_then(|l| l.split("URI=\"part").nth(1))
        .and_then(|r| r.split(".m4s").next())
        .unwrap()
        .to_string();
    let (msn, part) = hint.split_once('.').unwrap();
    for query in [
        format!("{q}&_HLS_msn={msn}&_HLS_part={part}"),
        format!("_HLS_msn={msn}&{q}&_HLS_part={part}"),
        format!("_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES&{q}"),
    ] {
        let r = w.request(&format!("/hls/a/stream.m3u8?{query}"), None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let wanted = format!("URI=\"part{msn}.{part}.m4s?{q}\"");
        assert!(
            r.body.contains(&wanted),
            "{query}: {wanted} missing:\n{}",
            r.body
        );
        for uri in playlist_uris(&r.body) {
            assert!(uri.ends_with(&format!("?{q}")), "{query}: {uri}");
        }
    }

    // ffmpeg, which cannot send a header here, follows the tokenised URIs and decodes.
    let url = w.http_url(&format!("/hls/a/index.m3u8?{q}"));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &url, "-t", "4"])
        .args(["-map", "0:v:0", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .count();
    assert!(frames >= 3 * 25, "only {frames} frames decoded; {stderr}");

    // Without the token, the same player gets nothing.
    let anonymous = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(w.http_url("/hls/a/index.m3u8"))
        .args(["-t", "1", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
}

#[test]
fn tokens_added_and_removed_in_the_file_take_effect_without_a_restart() {
    const NEWCOMER: &str = "newcomer-0123456789abcdef";
    let tokens = standard_tokens();
    let w = start(&tokens, &["--no-recording"]);
    let pid = w.pid();
    assert_eq!(w.request("/api/cameras", Some(ADMIN)).status, 200);
    assert_eq!(w.request("/api/cameras", Some(NEWCOMER)).status, 401);

    // NEWCOMER added, ADMIN removed, in one rotation.
    tokens.replace(&format!("{NEWCOMER} api\n{VIEWER_A} live:a\n"));
    wait_for("the added token to be accepted", RELOAD, || {
        (w.request("/api/cameras", Some(NEWCOMER)).status == 200).then_some(())
    });
    assert_eq!(w.request("/api/cameras", Some(ADMIN)).status, 401);

    // A broken file is refused, said once in the log, and the last good tokens stay.
    tokens.replace(&format!("{NEWCOMER} api\n{ADMIN} everything\n"));
    wait_for("the broken file to be refused", RELOAD, || {
        (w.metric("kamera_http_tokens_file_valid") == Some(0.0)).then_some(())
    });
    assert_eq!(w.request("/api/cameras", Some(NEWCOMER)).status, 200);
    assert_eq!(w.request("/api/cameras", Some(ADMIN)).status, 401);
    assert!(
        w.log_text().contains("line 2: word 2 is not a scope"),
        "{}",
        w.log_text()
    );

    // Fixed again: ADMIN is back.
    tokens.replace(&format!("{NEWCOMER} api\n{ADMIN} api\n"));
    wait_for("the fixed file to be applied", RELOAD, || {
        (w.request("/api/cameras", Some(ADMIN)).status == 200).then_some(())
    });
    assert_eq!(w.metric("kamera_http_tokens_file_valid"), Some(1.0));
    assert_eq!(w.pid(), pid, "the worker was restarted");
    // Polls went on while the file was broken; each change was logged once.
    let log = w.log_text();
    assert_eq!(
        log.matches("viewer tokens file not applied").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("viewer tokens reloaded").count(), 2, "{log}");
}

#[test]
fn a_missing_or_invalid_tokens_file_stops_the_worker_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("missing");
    let (ok, out) = run_to_exit(&["--http-tokens-file", missing.to_str().unwrap()], &data);
    assert!(!ok, "started without its tokens file: {out}");
    assert!(out.contains("cannot read the viewer tokens file"), "{out}");

    let bad = TokensFile::new(&format!(
        "# tokens\n{ADMIN} api\n{ADMIN} live:a\nshort api\n"
    ));
    let (ok, out) = run_to_exit(&["--http-tokens-file", bad.path().to_str().unwrap()], &data);
    assert!(!ok, "started with an invalid tokens file: {out}");
    assert!(
        out.contains("line 3: the same token is already on line 2"),
        "{out}"
    );
    assert!(out.contains("line 4: the token must be"), "{out}");
    assert!(!out.contains(ADMIN), "the error shows a token: {out}");
}

#[test]
fn without_a_tokens_file_http_stays_open_and_says_so() {
    let w = Worker::start(&[]);
    for path in ["/api/cameras", "/recordings/", "/cameras/a", "/metrics"] {
        assert_eq!(w.request(path, None).status, 200, "{path}");
    }
    let r = w.request("/api/cameras", None);
    assert_eq!(r.header("www-authenticate"), None);
    assert!(
        w.log_text()
            .contains("HTTP is open to anyone who can reach it"),
        "{}",
        w.log_text()
    );
}
