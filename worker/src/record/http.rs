//! `/recordings/`: the cameras with recordings, each camera's files as JSON (`?from=&to=`),
//! and the files themselves with HTTP Range support so a browser can seek.
//!
//! Paths are parsed strictly from the raw request path: names only ever use a safe alphabet,
//! so anything encoded, `..`, a backslash or an absolute path is refused with 400 before the
//! disk is touched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::catalog::{self, Entry};
use super::naming::{self, PART_SUFFIX};
use super::Shared;
use crate::config::is_valid_camera_name;
use crate::http::json_error;

pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/recordings", get(list_cameras))
        .route("/recordings/", get(list_cameras))
        .route("/recordings/{*rest}", get(recordings))
        .with_state(shared)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T08:05:00.000Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let c = naming::civil(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000)
    )
}

/// What a path below `/recordings/` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `<camera>/`: the camera's listing.
    Listing(String),
    /// `<camera>/<YYYY-MM-DD>/<camera>-<stamp>.mp4`
    File {
        camera: String,
        date: String,
        file: String,
    },
    /// Well-formed but names nothing Kamera serves.
    NotFound,
}

/// Parses the part of the raw (still percent-encoded) path after `/recordings/`.
/// `Err` means a traversal attempt or an encoded name: answer 400.
pub fn parse_target(rest: &str) -> Result<Target, &'static str> {
    if rest.contains('%') {
        return Err("encoded characters are not allowed in recording paths");
    }
    if rest.contains('\\') || rest.starts_with('/') {
        return Err("invalid recording path");
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| *s == ".." || *s == ".") {
        return Err("path traversal is not allowed");
    }
    match segments.as_slice() {
        [camera] | [camera, ""] if !camera.is_empty() => {
            if is_valid_camera_name(camera) {
                Ok(Target::Listing((*camera).to_string()))
            } else {
                Err("invalid camera name")
            }
        }
        [camera, date, file] => {
            if !is_valid_camera_name(camera) || !naming::is_date_dir(date) {
                return Err("invalid recording path");
            }
            match naming::parse_file_name(camera, file) {
                Some(p) if !p.part && naming::date_dir(p.start_secs) == *date => Ok(Target::File {
                    camera: (*camera).to_string(),
                    date: (*date).to_string(),
                    file: (*file).to_string(),
                }),
                _ => Ok(Target::NotFound),
            }
        }
        _ if segments.iter().any(|s| s.is_empty()) => Err("invalid recording path"),
        _ => Ok(Target::NotFound),
    }
}

/// A byte range to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file (no Range header, or one Kamera chooses to ignore as RFC 9110 allows).
    Full,
    /// `start..=end`.
    Partial { start: u64, end: u64 },
    /// No byte of the range exists: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a resource of `len` bytes. One range is served; multiple
/// ranges and malformed headers get the whole file (a valid answer to any Range request).
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Partial {
                    start: len - n.min(len),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|e| e < start) {
                return ByteRange::Full;
            }
            if start >= len {
                return ByteRange::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            ByteRange::Partial { start, end }
        }
        _ => ByteRange::Full,
    }
}

async fn list_cameras(State(shared): State<Arc<Shared>>) -> Response {
    let root = shared.settings.root.clone();
    match tokio::task::spawn_blocking(move || catalog::cameras(&root)).await {
        Ok(cameras) => Json(json!({ "cameras": cameras.iter().map(|c| json!({
            "name": c,
            "url": format!("/recordings/{c}/"),
        })).collect::<Vec<_>>() }))
        .into_response(),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "listing failed"),
    }
}

async fn recordings(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let rest = uri.path().strip_prefix("/recordings/").unwrap_or_default();
    match parse_target(rest) {
        Err(why) => json_error(StatusCode::BAD_REQUEST, why),
        Ok(Target::NotFound) => json_error(StatusCode::NOT_FOUND, "no such recording"),
        Ok(Target::Listing(camera)) => listing(&shared, camera, &query).await,
        Ok(Target::File { camera, date, file }) => {
            let dir = shared.settings.root.join(&camera).join(&date);
            serve_file(
                dir.join(&file),
                dir.join(format!("{file}{PART_SUFFIX}")),
                &headers,
            )
            .await
        }
    }
}

/// Parses `from`/`to`: RFC 3339 (`2026-11-24T08:00:00Z`) or Unix seconds.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    humantime::parse_rfc3339_weak(s).ok().map(catalog::unix_ms)
}

async fn listing(
    shared: &Arc<Shared>,
    camera: String,
    query: &HashMap<String, String>,
) -> Response {
    let mut bounds = [None, None];
    for (i, key) in ["from", "to"].iter().enumerate() {
        if let Some(v) = query.get(*key) {
            match parse_time(v) {
                Some(t) => bounds[i] = Some(t),
                None => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "invalid {key:?}: use RFC 3339 (2026-11-24T08:00:00Z) or Unix seconds"
                        ),
                    )
                }
            }
        }
    }
    let [from, to] = bounds;
    let root = shared.settings.root.clone();
    let cam = camera.clone();
    let Ok(entries) = tokio::task::spawn_blocking(move || catalog::scan_camera(&root, &cam)).await
    else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "listing failed");
    };
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| from.is_none_or(|f| e.end_ms >= f) && to.is_none_or(|t| e.start_ms <= t))
        .map(|e| entry_json(&camera, e))
        .collect();
    Json(json!({ "camera": camera, "recordings": list })).into_response()
}

fn entry_json(camera: &str, e: &Entry) -> Value {
    json!({
        "url": format!("/recordings/{camera}/{}", e.rel),
        "file": e.rel,
        "start": rfc3339_ms(e.start_ms),
        "end": rfc3339_ms(e.end_ms),
        "duration": (e.end_ms - e.start_ms) as f64 / 1000.0,
        "bytes": e.bytes,
        "closed": e.closed,
    })
}

/// Serves a closed file, or the open `.part` of the same name (its length when the request
/// arrives), honouring a single byte range.
async fn serve_file(closed: PathBuf, part: PathBuf, headers: &HeaderMap) -> Response {
    let (mut file, is_open) = match tokio::fs::File::open(&closed).await {
        Ok(f) => (f, false),
        Err(_) => match tokio::fs::File::open(&part).await {
            Ok(f) => (f, true),
            Err(_) => return json_error(StatusCode::NOT_FOUND, "no such recording"),
        },
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading recording: {e}"),
            )
        }
    };
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, start, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    if start > 0 {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading recording: {e}"),
            );
        }
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    // An open file still grows: caches must not keep a truncated copy.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if is_open { "no-store" } else { "max-age=3600" }),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn listing_and_file_paths_are_recognised() {
        assert_eq!(parse_target("cam/"), Ok(Target::Listing("cam".into())));
        assert_eq!(parse_target("cam"), Ok(Target::Listing("cam".into())));
        assert_eq!(
            parse_target("cam/2026-11-24/cam-20261124T080500Z.mp4"),
            Ok(Target::File {
                camera: "cam".into(),
                date: "2026-11-24".into(),
                file: "cam-20261124T080500Z.mp4".into()
            })
        );
        // A file in the wrong day directory, or of another camera, is not served.
        assert_eq!(
            parse_target("cam/2026-11-25/cam-20261124T080500Z.mp4"),
            Ok(Target::NotFound)
        );
        assert_eq!(
            parse_target("cam/2026-11-24/other-20261124T080500Z.mp4"),
            Ok(Target::NotFound)
        );
        assert_eq!(
            parse_target("cam/2026-11-24/cam-20261124T080500Z.mp4.part"),
            Ok(Target::NotFound)
        );
    }

    #[test]
    fn traversal_attempts_are_bad_requests() {
        for bad in [
            "../etc/passwd",
            "cam/../../etc/passwd",
            "cam/2026-11-24/..",
            "..",
            "cam%2F..%2F..%2Fetc%2Fpasswd",
            "cam/2026-11-24/%2e%2e",
            "%2e%2e/",
            "/etc/passwd",
            "cam\\..\\x",
            "cam//2026-11-24/x",
            "./cam/",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), ByteRange::Full);
        assert_eq!(r("bytes=0-99"), ByteRange::Partial { start: 0, end: 99 });
        assert_eq!(
            r("bytes=500-"),
            ByteRange::Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=-100"),
            ByteRange::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(r("bytes=-5000"), ByteRange::Partial { start: 0, end: 999 });
        assert_eq!(
            r("bytes=990-5000"),
            ByteRange::Partial {
                start: 990,
                end: 999
            }
        );
        assert_eq!(r("bytes=1000-"), ByteRange::Unsatisfiable);
        assert_eq!(r("bytes=-0"), ByteRange::Unsatisfiable);
        assert_eq!(r("bytes=5-1"), ByteRange::Full);
        assert_eq!(r("bytes=0-1,5-6"), ByteRange::Full);
        assert_eq!(r("items=0-1"), ByteRange::Full);
        assert_eq!(r("bytes=abc"), ByteRange::Full);
        assert_eq!(r("bytes=-"), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn times_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(1_795_507_500_250), "2026-11-24T08:05:00.250Z");
        assert_eq!(parse_time("2026-11-24T08:05:00Z"), Some(1_795_507_500_000));
        assert_eq!(parse_time("1795507500"), Some(1_795_507_500_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    proptest! {
        #[test]
        fn a_partial_range_always_lies_inside_the_file(h in "bytes=[0-9]{0,5}-[0-9]{0,5}", len in 0u64..20_000) {
            if let ByteRange::Partial { start, end } = parse_range(Some(&h), len) {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn arbitrary_paths_never_escape(p in "[a-z0-9./%\\\\-]{0,40}") {
            if let Ok(Target::File { camera, date, file }) = parse_target(&p) {
                for s in [&camera, &date, &file] {
                    prop_assert!(!s.contains('/') && !s.contains("..") && !s.contains('%'));
                }
            }
        }
    }
}
