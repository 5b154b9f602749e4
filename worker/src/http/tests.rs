//! The finished router's viewer authentication and CORS, driven request by request through
//! axum (no socket), over stand-in routes shaped like the real ones; and the API's time format.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::metrics::Families;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::auth::TokensFile;
use super::finish;

const LIVE_A: &str = "live-a-0123456789abcdef";
const ALL: &str = "all-0123456789abcdef";

const MEDIA: &str = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n\
    #EXT-X-PART:DURATION=0.200,URI=\"part1.0.m4s\",INDEPENDENT=YES\n\
    #EXTINF:1.000,\nseg1.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.0.m4s\"\n";

/// Routes shaped like the worker's: a playlist, a part, the API, recordings and metrics.
fn routes() -> Router {
    Router::new()
        .route(
            "/hls/{camera}/{file}",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    MEDIA,
                )
                    .into_response()
            }),
        )
        .route(
            "/frames/{camera}/latest.jpg",
            get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "jpeg") }),
        )
        .route("/api/cameras", get(|| async { "{}" }))
        .route("/recordings", get(|| async { "[]" }))
        .route("/recordings/{*rest}", get(|| async { "[]" }))
        .route("/metrics", get(|| async { "# metrics" }))
        .route("/healthz", get(|| async { "ok" }))
}

fn tokens_file(dir: &Path, text: &str) -> TokensFile {
    let path = dir.join("tokens");
    std::fs::write(&path, text).unwrap();
    TokensFile::load(&path, &Families::new()).unwrap()
}

fn protected(dir: &Path) -> Router {
    let file = tokens_file(
        dir,
        &format!("{LIVE_A} live:a\n{ALL} live:* recordings api\n"),
    );
    finish(routes(), Some(file.viewer_auth()), &[])
}

async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn without_a_token_protected_paths_answer_401_with_a_challenge_and_open_ones_200() {
    let dir = tempfile::tempdir().unwrap();
    let router = protected(dir.path());
    for path in [
        "/hls/a/index.m3u8",
        "/hls/a/part1.0.m4s",
        "/frames/a/latest.jpg",
        "/api/cameras",
        "/recordings",
        "/nowhere",
    ] {
        let (status, headers, _) = send(&router, get_req(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"kamera\"",
            "{path}"
        );
    }
    for path in ["/metrics", "/healthz"] {
        assert_eq!(
            send(&router, get_req(path)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, headers, _) =
        send(&router, get_req("/api/cameras?token=not-a-token-at-all")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test]
async fn a_token_opens_only_its_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let router = protected(dir.path());
    let status = |req| {
        let router = router.clone();
        async move { send(&router, req).await.0 }
    };
    assert_eq!(
        status(bearer("/hls/a/index.m3u8", LIVE_A)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(bearer("/frames/a/latest.jpg", LIVE_A)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(bearer("/hls/b/index.m3u8", LIVE_A)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(bearer("/api/cameras", LIVE_A)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(bearer("/recordings/a/", LIVE_A)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(bearer("/nowhere", ALL)).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status(bearer("/hls/b/index.m3u8", ALL)).await,
        StatusCode::OK
    );
    assert_eq!(status(bearer("/recordings", ALL)).await, StatusCode::OK);
    assert_eq!(status(bearer("/api/cameras", ALL)).await, StatusCode::OK);
    // The header wins over the query; the scheme name is case-insensitive.
    let req = Request::get(format!("/api/cameras?token={ALL}"))
        .header(header::AUTHORIZATION, format!("bearer {LIVE_A}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(req).await, StatusCode::FORBIDDEN);
    let (_, _, body) = send(&router, bearer("/hls/b/index.m3u8", LIVE_A)).await;
    assert!(body.contains("live:b"), "{body}");
}

#[tokio::test]
async fn a_query_token_is_carried_into_the_playlist_and_a_header_token_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let router = protected(dir.path());
    let (status, headers, body) = send(
        &router,
        get_req(&format!(
            "/hls/a/stream.m3u8?_HLS_msn=1&token={LIVE_A}&_HLS_part=0"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/vnd.apple.mpegurl"
    );
    assert!(headers
        .get(header::CONTENT_LENGTH)
        .is_none_or(|l| l == body.len().to_string().as_str()));
    assert_eq!(body, super::auth::playlist::with_token(MEDIA, LIVE_A));
    assert_eq!(
        body.matches(&format!("?token={LIVE_A}")).count(),
        4,
        "{body}"
    );

    let (_, _, body) = send(&router, bearer("/hls/a/stream.m3u8", LIVE_A)).await;
    assert_eq!(body, MEDIA);
}

#[tokio::test]
async fn responses_to_token_holders_are_not_publicly_cacheable() {
    let dir = tempfile::tempdir().unwrap();
    let router = protected(dir.path());
    let (_, headers, _) = send(&router, bearer("/frames/a/latest.jpg", LIVE_A)).await;
    assert_eq!(headers[header::CACHE_CONTROL], "private, max-age=60");
    let open = finish(routes(), None, &[]);
    let (_, headers, _) = send(&open, get_req("/frames/a/latest.jpg")).await;
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=60");
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/hls/a/index.m3u8")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_allows_any_origin_when_open_and_only_configured_ones_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let allow_origin = |h: &axum::http::HeaderMap| {
        h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap().to_string())
    };

    let open = finish(routes(), None, &[]);
    let (_, headers, _) = send(&open, preflight("https://anywhere.example")).await;
    assert!(allow_origin(&headers).is_some());

    // Tokens and no configured origin: same origin only.
    let (_, headers, _) = send(
        &protected(dir.path()),
        preflight("https://anywhere.example"),
    )
    .await;
    assert_eq!(allow_origin(&headers), None);

    let file = tokens_file(dir.path(), &format!("{LIVE_A} live:a\n"));
    let router = finish(
        routes(),
        Some(file.viewer_auth()),
        &["https://ops.example.com".to_string()],
    );
    let (status, headers, _) = send(&router, preflight("https://ops.example.com")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        allow_origin(&headers).as_deref(),
        Some("https://ops.example.com")
    );
    let allowed_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let (_, headers, _) = send(&router, preflight("https://evil.example")).await;
    assert_eq!(allow_origin(&headers), None);
    // A refusal still carries CORS headers, so the page can tell 401 from a network error.
    let req = Request::get("/hls/a/index.m3u8")
        .header(header::ORIGIN, "https://ops.example.com")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&router, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        allow_origin(&headers).as_deref(),
        Some("https://ops.example.com")
    );
}

/// Polls until `check` holds or panics after five seconds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_secret_swapped_by_symlink_like_kubelet_does_is_picked_up_and_a_broken_one_is_not() {
    // kubelet's layout: tokens -> ..data/tokens, ..data -> ..<timestamp>/, swapped by renaming a
    // new ..data link over the old one. The file's own path never changes.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let version = |name: &str, text: &str| {
        std::fs::create_dir(d.join(name)).unwrap();
        std::fs::write(d.join(name).join("tokens"), text).unwrap();
        std::os::unix::fs::symlink(name, d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    };
    version("..v1", &format!("{LIVE_A} live:a\n"));
    std::os::unix::fs::symlink("..data/tokens", d.join("tokens")).unwrap();
    let registry = Families::new();
    let file = TokensFile::load(&d.join("tokens"), &registry).unwrap();
    let router = finish(routes(), Some(file.viewer_auth()), &[]);
    let shutdown = CancellationToken::new();
    let watcher = tokio::spawn(file.watch(Duration::from_millis(20), shutdown.clone()));
    let file_valid = || {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "kamera_http_tokens_file_valid")
            .map(|f| f.get_metric()[0].get_gauge().get_value())
    };

    let status = async |token: &str| send(&router, bearer("/hls/a/index.m3u8", token)).await.0;
    assert_eq!(status(LIVE_A).await, StatusCode::OK);
    assert_eq!(status(ALL).await, StatusCode::UNAUTHORIZED);

    // Rotation: ALL added, LIVE_A removed.
    version("..v2", &format!("{ALL} live:*\n"));
    eventually("the new token to be accepted", async || {
        status(ALL).await == StatusCode::OK
    })
    .await;
    assert_eq!(status(LIVE_A).await, StatusCode::UNAUTHORIZED);

    // A broken file, and later a missing one, keep the last good tokens.
    version("..v3", "this is not a tokens file\n");
    eventually("the broken file to be refused", async || {
        file_valid() == Some(0.0)
    })
    .await;
    assert_eq!(status(ALL).await, StatusCode::OK);
    version("..v4", &format!("{ALL} live:*\n{LIVE_A} live:a\n"));
    eventually("the repaired file to be applied", async || {
        file_valid() == Some(1.0)
    })
    .await;
    assert_eq!(status(LIVE_A).await, StatusCode::OK);
    std::fs::remove_file(d.join("tokens")).unwrap();
    eventually("the missing file to be refused", async || {
        file_valid() == Some(0.0)
    })
    .await;
    assert_eq!(status(ALL).await, StatusCode::OK);

    shutdown.cancel();
    watcher.await.unwrap();
}

#[test]
fn api_times_are_rfc3339_with_milliseconds_and_never_panic() {
    use std::time::UNIX_EPOCH;
    let t = UNIX_EPOCH + Duration::from_millis(1_795_507_500_250);
    assert_eq!(super::rfc3339_ms(t), "2026-11-24T08:05:00.250Z");
    let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(super::rfc3339_ms(before_1970), "1970-01-01T00:00:00.000Z");
    let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
    assert_eq!(super::rfc3339_ms(far), "9999-12-31T23:59:59.000Z");
}
