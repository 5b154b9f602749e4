//! `/api/cameras`: what every camera is doing, as JSON.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{json_error, rfc3339_ms, HttpState};
use crate::hub::{Channel, Released};

pub async fn list_cameras(State(state): State<Arc<HttpState>>) -> Json<Value> {
    let cameras: Vec<Value> = state
        .hub
        .channels()
        .iter()
        .map(|c| camera_json(&state, c))
        .collect();
    Json(json!({ "cameras": cameras }))
}

pub async fn get_camera(
    State(state): State<Arc<HttpState>>,
    Path(camera): Path<String>,
) -> Response {
    match state.hub.get(&camera) {
        Some(channel) => Json(camera_json(&state, &channel)).into_response(),
        None => match state.hub.released(&camera) {
            Some(released) => released_json(&released),
            None => json_error(StatusCode::NOT_FOUND, format!("unknown camera {camera:?}")),
        },
    }
}

/// A camera the worker released: still 404 (it holds nothing of it), with when and why, so
/// that a reader can tell it from a camera that never published.
fn released_json(released: &Released) -> Response {
    let body = json!({
        "error": format!(
            "camera {:?} was released: no publisher for --idle-release",
            released.camera
        ),
        "released_at": rfc3339_ms(released.at),
        "last_seen": released.last_seen.map(rfc3339_ms),
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn camera_json(state: &HttpState, channel: &Channel) -> Value {
    let mut v = serde_json::to_value(channel.stats()).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("name".into(), json!(channel.name()));
        for section in &state.sections {
            if let Some(s) = section.status(channel.name()) {
                map.insert(section.section().into(), s);
            }
        }
    }
    v
}
