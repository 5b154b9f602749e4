//! HTTP for LL-HLS: `/hls/<camera>/{index.m3u8, stream.m3u8, init*.mp4, seg*.m4s, part*.m4s}`,
//! with blocking playlist reload (`_HLS_msn`/`_HLS_part`), delta updates (`_HLS_skip`) and
//! held requests for parts announced by `#EXT-X-PRELOAD-HINT`. Plus the player page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use tokio::time::Instant;

use super::packager::Packager;
use super::{page, playlist, timing, CameraHls, Shared};
use crate::http::json_error;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const MP4: &str = "video/mp4";
/// How long `index.m3u8` waits for a camera that is connecting to have a configuration.
const INDEX_WAIT: Duration = Duration::from_secs(5);
/// Highest `_HLS_part` index accepted: parts beyond this could never exist.
pub(crate) const MAX_PART_INDEX: u64 = 10_000;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/hls/{camera}/{file}", get(hls_file))
        .route("/", get(page::index))
        .route("/cameras/{camera}", get(page::player))
        .route("/assets/hls.min.js", get(page::hls_js))
        .route("/assets/kamera-live.js", get(page::kamera_live_js))
        .with_state(shared)
}

fn respond(content_type: &'static str, cache: &'static str, body: impl Into<Bytes>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body.into(),
    )
        .into_response()
}

fn playlist_response(body: String) -> Response {
    respond(PLAYLIST, "no-cache", body)
}

fn media_response(body: Bytes) -> Response {
    // Parts and segments never change once published; names restart with the process, so
    // keep caching short.
    respond(MP4, "public, max-age=60", body)
}

/// Three target durations: how long a blocking request may be held (RFC 8216bis 6.2.5.2).
fn hold_deadline(camera: &CameraHls) -> Instant {
    let td = camera.lock().target_duration_s();
    Instant::now() + Duration::from_secs(3 * td.max(1))
}

/// Counts a held request in `kamera_hls_blocked_requests` while it lives.
struct Held(prometheus::IntGauge);

impl Held {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn hls_file(
    State(shared): State<Arc<Shared>>,
    Path((camera, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(cam) = shared.camera(&camera) else {
        return json_error(StatusCode::NOT_FOUND, format!("unknown camera {camera:?}"));
    };
    let held = || Held::new(&shared.metrics.blocked);
    match parse_file(&file) {
        Some(File::Index) => {
            let _held = held();
            let deadline = Instant::now() + INDEX_WAIT;
            let body = cam
                .wait_for(deadline, |p| {
                    let init = p.current_init()?;
                    let bandwidth = playlist::peak_bandwidth(p).unwrap_or(2_000_000);
                    Some(playlist::multivariant(&init.info, bandwidth))
                })
                .await;
            match body {
                Some(body) => playlist_response(body),
                None => json_error(
                    StatusCode::NOT_FOUND,
                    format!("camera {camera:?} is not live"),
                ),
            }
        }
        Some(File::Media) => media_playlist(&cam, &query, held).await,
        Some(File::Init(id)) => {
            let p = cam.lock();
            let init = match id {
                Some(id) => p.init(id),
                None => p.current_init(),
            };
            match init {
                Some(init) => respond(MP4, "public, max-age=60", init.data.clone()),
                None => json_error(StatusCode::NOT_FOUND, "no such init segment"),
            }
        }
        Some(File::Segment(msn)) => {
            let _held = held();
            serve_when_ready(
                &cam,
                |p| find_segment(p, msn),
                || format!("no segment {msn}"),
            )
            .await
        }
        Some(File::Part(msn, index)) => {
            let _held = held();
            serve_when_ready(
                &cam,
                |p| find_part(p, msn, index),
                || format!("no part {msn}.{index}"),
            )
            .await
        }
        None => json_error(StatusCode::NOT_FOUND, format!("no such file {file:?}")),
    }
}

async fn media_playlist(
    cam: &CameraHls,
    query: &HashMap<String, String>,
    held: impl FnOnce() -> Held,
) -> Response {
    let reload = match Reload::parse(query) {
        Ok(r) => r,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let (part, skip) = (reload.part, reload.skip);
    let render = |p: &Packager| playlist::media(p, skip);

    let Some(msn) = reload.msn else {
        {
            let p = cam.lock();
            if p.segments().is_empty() && !p.is_live() {
                return json_error(StatusCode::NOT_FOUND, "camera is not live");
            }
        }
        // A stream that just started has no part target until its first frames arrive.
        let _held = held();
        let deadline = Instant::now() + INDEX_WAIT;
        return match cam.wait_for(deadline, render).await {
            Some(body) => playlist_response(body),
            None => json_error(StatusCode::NOT_FOUND, "camera is not live"),
        };
    };
    if let Err(message) = within_advance_limit(&cam.lock(), msn, part) {
        return json_error(StatusCode::BAD_REQUEST, message);
    }
    let _held = held();
    let body = cam
        .wait_for(hold_deadline(cam), |p| {
            if has_arrived(p, msn, part) {
                render(p)
            } else {
                None
            }
        })
        .await;
    match body {
        Some(body) => playlist_response(body),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the requested segment or part did not appear in time",
        ),
    }
}

/// The LL-HLS query parameters of a media playlist request (RFC 8216bis 6.2.5), checked as
/// far as they can be without the playlist: numbers, `_HLS_part` only with `_HLS_msn`, and a
/// part index that could exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reload {
    /// `_HLS_msn`: block until this media sequence number is in the playlist.
    pub msn: Option<u64>,
    /// `_HLS_part`: and until this part of it.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): a delta update.
    pub skip: bool,
}

impl Reload {
    /// Reads the parameters from a decoded query; `Err` is the 400 message.
    pub(crate) fn parse(query: &HashMap<String, String>) -> Result<Self, String> {
        let number = |key: &'static str| match query.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{key} must be a number")),
        };
        let msn = number("_HLS_msn")?;
        let part = number("_HLS_part")?;
        let skip = query
            .get("_HLS_skip")
            .is_some_and(|v| v == "YES" || v == "v2");
        if msn.is_none() && part.is_some() {
            return Err("_HLS_part requires _HLS_msn".into());
        }
        if part.is_some_and(|i| i > MAX_PART_INDEX) {
            return Err("_HLS_part is out of range".into());
        }
        Ok(Self { msn, part, skip })
    }
}

/// RFC 8216bis 6.2.5.2: a blocking request for a segment more than two beyond the newest one,
/// or for a part more than the Advance Part Limit beyond the newest part, is a bad request,
/// answered at once. Parts of segments not yet begun count as one each for the segments in
/// between (the fewest there can be), so no request that could be met soon is refused.
pub(super) fn within_advance_limit(
    p: &Packager,
    msn: u64,
    part: Option<u64>,
) -> Result<(), &'static str> {
    let last_msn = p.segments().back().map_or(p.next_part().0, |s| s.msn);
    if msn > last_msn + 2 {
        return Err("_HLS_msn is too far in the future");
    }
    let (Some(index), Some(target)) = (part, p.part_target_ms()) else {
        return Ok(());
    };
    // The newest part: (msn, index), or one before part 0 of the next segment.
    let (newest_msn, newest_index) = match p.segments().back() {
        Some(s) if !s.parts.is_empty() => (s.msn, s.parts.len() as i64 - 1),
        _ => (p.next_part().0, -1),
    };
    let ahead = if msn < newest_msn {
        0
    } else if msn == newest_msn {
        index as i64 - newest_index
    } else {
        // The rest of the newest segment is unknown: count it as ending now.
        (msn - newest_msn - 1) as i64 + index as i64 + 1
    };
    if ahead > timing::advance_part_limit(target) as i64 {
        return Err("_HLS_part is beyond the Advance Part Limit");
    }
    Ok(())
}

/// Whether the playlist now holds segment `msn` (complete) or part `part` of it. A part index
/// past the last part of a complete segment means part 0 of the next one (RFC 8216bis 6.2.5.2).
pub(super) fn has_arrived(p: &Packager, msn: u64, part: Option<u64>) -> bool {
    let segments = p.segments();
    if segments.iter().any(|s| s.msn > msn) {
        return true;
    }
    let Some(s) = segments.iter().find(|s| s.msn == msn) else {
        return false;
    };
    match part {
        None => s.complete,
        Some(i) => s.parts.len() as u64 > i,
    }
}

/// Serves a segment or part, holding the request while it will exist shortly (blocking
/// preload), up to three target durations.
async fn serve_when_ready(
    cam: &CameraHls,
    find: impl Fn(&Packager) -> Lookup,
    missing: impl FnOnce() -> String,
) -> Response {
    let found = cam
        .wait_for(hold_deadline(cam), |p| match find(p) {
            Lookup::Ready(s) => Some(Some(s)),
            Lookup::Gone => Some(None),
            Lookup::Soon => None,
        })
        .await
        .flatten();
    match found {
        Some(data) => media_response(data),
        None => json_error(StatusCode::NOT_FOUND, missing()),
    }
}

enum Lookup {
    Ready(Bytes),
    /// Will exist shortly (the preload-hinted part, the segment being written).
    Soon,
    Gone,
}

fn find_segment(p: &Packager, msn: u64) -> Lookup {
    match p.segments().iter().find(|s| s.msn == msn) {
        Some(s) if s.complete => Lookup::Ready(s.data()),
        Some(_) => Lookup::Soon,
        None if msn == p.next_part().0 && p.is_live() => Lookup::Soon,
        None => Lookup::Gone,
    }
}

fn find_part(p: &Packager, msn: u64, index: usize) -> Lookup {
    if let Some(s) = p.segments().iter().find(|s| s.msn == msn) {
        if let Some(part) = s.parts.get(index) {
            return Lookup::Ready(part.data.clone());
        }
        if s.complete {
            return Lookup::Gone;
        }
    }
    // Only the next part (the preload hint) and the one after it are worth waiting for.
    let (next_msn, next_index) = p.next_part();
    let upcoming =
        (msn == next_msn && index <= next_index + 1) || (msn == next_msn + 1 && index == 0);
    if upcoming && p.is_live() {
        Lookup::Soon
    } else {
        Lookup::Gone
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum File {
    Index,
    Media,
    Init(Option<u64>),
    Segment(u64),
    Part(u64, usize),
}

pub(crate) fn parse_file(name: &str) -> Option<File> {
    match name {
        "index.m3u8" => return Some(File::Index),
        "stream.m3u8" => return Some(File::Media),
        "init.mp4" => return Some(File::Init(None)),
        _ => {}
    }
    if let Some(id) = name
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        return id.parse().ok().map(|id| File::Init(Some(id)));
    }
    if let Some(msn) = name
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        return msn.parse().ok().map(File::Segment);
    }
    let rest = name.strip_prefix("part")?.strip_suffix(".m4s")?;
    let (msn, index) = rest.split_once('.')?;
    Some(File::Part(msn.parse().ok()?, index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{parse_file, File};

    #[test]
    fn file_names_map_to_what_they_serve() {
        assert_eq!(parse_file("index.m3u8"), Some(File::Index));
        assert_eq!(parse_file("stream.m3u8"), Some(File::Media));
        assert_eq!(parse_file("init.mp4"), Some(File::Init(None)));
        assert_eq!(parse_file("init-3.mp4"), Some(File::Init(Some(3))));
        assert_eq!(parse_file("seg12.m4s"), Some(File::Segment(12)));
        assert_eq!(parse_file("part12.3.m4s"), Some(File::Part(12, 3)));
        assert_eq!(parse_file("part12.m4s"), None);
        assert_eq!(parse_file("seg-1.m4s"), None);
        assert_eq!(parse_file("../etc/passwd"), None);
    }
}
