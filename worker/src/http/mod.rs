//! The HTTP server: camera API, metrics and health here; each media stage adds its own routes
//! (LL-HLS, recordings, frames) with [`axum::Router::merge`]; [`finish`] wraps the whole router
//! in viewer authentication and CORS; [`serve`] runs the listener (HTTP/1.1 and HTTP/2, over
//! TLS with [`tls`] when configured).

mod api;
pub mod auth;
pub mod gzip;
mod reload;
pub mod serve;
#[cfg(test)]
mod tests;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::hub::Hub;
use crate::metrics::Metrics;

/// Adds a section to each camera's entry in `/api/cameras` (e.g. `"hls"`, `"recording"`).
pub trait CameraStatus: Send + Sync {
    /// The key of the section.
    fn section(&self) -> &'static str;
    /// The section for `camera`, or `None` to leave it out.
    fn status(&self, camera: &str) -> Option<serde_json::Value>;
}

/// What the HTTP handlers share.
pub struct HttpState {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub sections: Vec<Arc<dyn CameraStatus>>,
    /// Set once every listener is bound and every stage started.
    pub ready: AtomicBool,
}

impl HttpState {
    pub fn new(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Self {
        Self {
            hub,
            metrics,
            sections: Vec::new(),
            ready: AtomicBool::new(false),
        }
    }
}

/// The worker's own routes; media stages merge theirs into it.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/api/cameras", get(api::list_cameras))
        .route("/api/cameras/{camera}", get(api::get_camera))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Wraps the complete router with what every route needs: viewer authentication when tokens
/// are configured (`auth`), gzip for playlists (`gzip`), then CORS for players on other
/// origins.
pub fn finish(
    router: Router,
    auth: Option<Arc<auth::ViewerAuth>>,
    cors_origins: &[String],
) -> Router {
    let protected = auth.is_some();
    let router = match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_token,
        )),
        None => router,
    };
    // Outside auth: a token is carried into a playlist before the playlist is compressed.
    let router = router.layer(axum::middleware::from_fn(gzip::playlists));
    // Outermost, so that preflight requests (which carry no token) are answered, and refusals
    // carry CORS headers a page on another origin can read.
    match cors(cors_origins, protected) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The CORS policy: any origin while HTTP is open (as before viewer tokens existed); with
/// tokens, only the configured origins (`*` for any), and none (same origin only) by default.
fn cors(origins: &[String], protected: bool) -> Option<CorsLayer> {
    if origins.is_empty() {
        return (!protected).then(CorsLayer::permissive);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD])
            // `Authorization` must be named: a wildcard does not cover it.
            .allow_headers([header::AUTHORIZATION, header::RANGE])
            .expose_headers([
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::ACCEPT_RANGES,
                header::WWW_AUTHENTICATE,
            ]),
    )
}

async fn metrics(axum::extract::State(state): axum::extract::State<Arc<HttpState>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
        .into_response()
}

async fn readyz(axum::extract::State(state): axum::extract::State<Arc<HttpState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// A JSON error body: `{"error": "..."}` with the given status.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// A time as the API shows it: RFC 3339, UTC, milliseconds (`2026-11-24T08:05:00.250Z`).
/// Times outside years 1970–9999 (a broken clock) are clamped rather than panicking.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_millis(t.clamp(UNIX_EPOCH, last)).to_string()
}
