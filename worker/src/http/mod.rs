//! The HTTP server: camera API, metrics and health here; each media stage adds its own routes
//! (LL-HLS, recordings, frames) with [`axum::Router::merge`].

mod api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::CorsLayer;

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

/// Wraps the complete router with what every route needs (CORS for players on other origins).
pub fn finish(router: Router) -> Router {
    router.layer(CorsLayer::permissive())
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
