//! The player page (`/`, `/cameras/<camera>`): plays a camera with hls.js in low-latency mode.
//! hls.js comes from npm (`npm ci` in the repository root) and is served from `node_modules`
//! or from `--hls-js`; it is not committed.
//!
//! A page opened with `?token=<token>` passes the viewer token on: in the playlist URL (the
//! worker then carries it into every URI of the playlists) and as a Bearer header to the API.
//! The pages are static; the token is read by the page's script, never written into the HTML.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::Shared;
use crate::config::is_valid_camera_name;
use crate::http::json_error;

const HLS_JS: &str = "node_modules/hls.js/dist/hls.min.js";

/// Where hls.js is: the configured path, else `node_modules` in the working directory, the
/// executable's directory, or any of their ancestors.
fn locate_hls_js(configured: Option<&FsPath>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(FsPath::to_path_buf))
    {
        roots.push(dir);
    }
    roots
        .iter()
        .flat_map(|r| r.ancestors())
        .map(|dir| dir.join(HLS_JS))
        .find(|p| p.is_file())
}

pub(super) async fn hls_js(State(shared): State<Arc<Shared>>) -> Response {
    let configured = shared.hls_js.clone();
    let found = tokio::task::spawn_blocking(move || {
        let path = locate_hls_js(configured.as_deref())?;
        std::fs::read(&path).ok()
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(js) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            js,
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "hls.js is not installed: run `npm ci` in the Kamera repository root, or pass --hls-js",
        ),
    }
}

pub(super) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub(super) async fn player(Path(camera): Path<String>) -> Response {
    if !is_valid_camera_name(&camera) {
        return json_error(StatusCode::NOT_FOUND, format!("unknown camera {camera:?}"));
    }
    // The name is from a safe alphabet, so it can be placed in the page as is.
    Html(PLAYER.replace("{{CAMERA}}", &camera)).into_response()
}

const INDEX: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kamera</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>body{font-family:system-ui,sans-serif;margin:2rem;background:#111;color:#eee}a{color:#8cf}</style>
</head><body>
<h1>Kamera cameras</h1>
<ul id="cameras"><li>Loading…</li></ul>
<script>
const token = new URLSearchParams(location.search).get('token');
async function refresh() {
  const list = document.getElementById('cameras');
  try {
    const r = await fetch('/api/cameras',
      token ? { headers: { Authorization: 'Bearer ' + token } } : {});
    if (r.status === 401 || r.status === 403) {
      list.innerHTML = '<li>This worker needs a viewer token with the <code>api</code> scope:' +
        ' open this page as <code>/?token=&lt;token&gt;</code>.</li>';
      return;
    }
    const { cameras } = await r.json();
    list.innerHTML = '';
    if (!cameras.length) list.innerHTML = '<li>No camera has published yet.</li>';
    for (const c of cameras) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = '/cameras/' + encodeURIComponent(c.name) +
        (token ? '?token=' + encodeURIComponent(token) : '');
      a.textContent = c.name;
      li.append(a, c.hls && c.hls.live ? ' — live' : ' — offline');
      list.append(li);
    }
  } catch (e) { /* the next refresh retries */ }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"#;

const PLAYER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{CAMERA}} — Kamera</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
video{width:100%;max-height:90vh;background:#000}#status{padding:.5rem 1rem;font-size:.9rem}
#missing{display:none;padding:1rem;background:#422}</style>
</head><body>
<video id="video" muted autoplay playsinline controls></video>
<div id="status">{{CAMERA}}: connecting…</div>
<div id="missing">hls.js is not available. Install it with <code>npm ci</code> in the Kamera
repository root (or start the worker with <code>--hls-js /path/to/hls.min.js</code>), then reload.</div>
<script>
  window.kamera = { camera: '{{CAMERA}}', fatal: [], errors: [], recovered: 0, hls: null,
                    latency: [], stalls: [] };
  function hlsMissing() { document.getElementById('missing').style.display = 'block'; }
  // What a viewer sees: for every frame presented, the wall clock minus the frame's
  // EXT-X-PROGRAM-DATE-TIME (the worker's wall clock when the stream's first frame arrived plus
  // stream time), and every stall after playback began with its duration.
  function kameraWatch(video, k, pdtOf) {
    let stalledAt = null, started = false;
    video.addEventListener('playing', function () {
      started = true;
      if (stalledAt !== null) { k.stalls.push((performance.now() - stalledAt) / 1000); stalledAt = null; }
    });
    video.addEventListener('waiting', function () { if (started && stalledAt === null) stalledAt = performance.now(); });
    if (!video.requestVideoFrameCallback) return;
    const onFrame = function (_, meta) {
      const pdt = pdtOf(meta.mediaTime);
      if (pdt !== null) {
        k.latency.push((performance.timeOrigin + meta.expectedDisplayTime - pdt) / 1000);
        if (k.latency.length > 3000) k.latency.splice(0, 1000);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
</script>
<script src="/assets/hls.min.js" onerror="hlsMissing()"></script>
<script>
(function () {
  const k = window.kamera;
  const video = document.getElementById('video');
  const status = document.getElementById('status');
  // A viewer token the page was opened with goes into the playlist URL; the worker carries
  // it into every URI of the playlists it serves, for hls.js and native players alike.
  const token = new URLSearchParams(location.search).get('token');
  const src = '/hls/' + encodeURIComponent(k.camera) + '/index.m3u8' +
    (token ? '?token=' + encodeURIComponent(token) : '');
  if (typeof Hls === 'undefined') { hlsMissing(); return; }
  if (!Hls.isSupported()) {
    // Safari plays LL-HLS natively.
    video.src = src; return;
  }
  // Live edge: start at it, PART-HOLD-BACK behind (lowLatencyMode). hls.js speeds up only with
  // more than a second buffered, which a sub-second target never has; the page steers the rate
  // itself from the measured latency instead (below).
  const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1,
                        manifestLoadingMaxRetry: 30, manifestLoadingRetryDelay: 500 });
  k.hls = hls;
  kameraWatch(video, k, function (mediaTime) {
    // The program date-time of the picture at mediaTime: from the latest segment starting
    // at or before it (hls.js maps each segment's start to the media timeline).
    const level = hls.levels && hls.levels[Math.max(hls.currentLevel, 0)];
    const frags = (level && level.details && level.details.fragments) || [];
    for (let i = frags.length - 1; i >= 0; i--) {
      const f = frags[i];
      if (f.programDateTime != null && f.start <= mediaTime + 0.001) {
        return f.programDateTime + (mediaTime - f.start) * 1000;
      }
    }
    return null;
  });
  hls.on(Hls.Events.ERROR, function (_, data) {
    k.errors.push(data.type + ':' + data.details +
      (data.error && data.error.message ? ' (' + data.error.message + ')' : ''));
    if (!data.fatal) return;
    k.fatal.push(data.type + ':' + data.details);
    // Keep the live view up across publisher reconnects and decoder hiccups.
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); k.recovered++; }
    else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      setTimeout(function () { hls.startLoad(-1); }, 1000); k.recovered++;
    }
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  video.play().catch(function () {});
  // Catch up when behind the target: up to 1.25x while enough is buffered not to stall, back to
  // 1x within 0.1 s of the target (the rate never drops below 1: behind is fixed, ahead is not).
  const TARGET_S = 0.8;
  setInterval(function () {
    const recent = k.latency.slice(-12).sort(function (a, b) { return a - b; });
    if (!recent.length || video.paused) return;
    const behind = recent[recent.length >> 1] - TARGET_S;
    const b = video.buffered;
    const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
    const rate = behind > 0.1 && ahead > 0.3 ? Math.min(1.25, 1 + behind / 2) : 1;
    if (Math.abs(video.playbackRate - rate) > 0.01) video.playbackRate = rate;
  }, 250);
  setInterval(function () {
    const latency = k.latency.length ? k.latency[k.latency.length - 1] : NaN;
    status.textContent = k.camera + ': ' + (video.paused ? 'paused' : 'playing') +
      ' · t=' + video.currentTime.toFixed(1) + ' s' +
      (isFinite(latency) ? ' · latency ' + latency.toFixed(2) + ' s' : '');
  }, 500);
})();
</script></body></html>
"#;
