//! A consumer stage (LL-HLS, recording, frames): attached to every camera the hub knows,
//! serving its own HTTP routes and its own section of `/api/cameras`.

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http::CameraStatus;
use crate::hub::{Channel, Hub};

pub trait Stage: CameraStatus {
    /// Starts consuming `channel` (subscribe, then spawn a task or thread into `tasks`).
    /// Called once per camera, when the camera first appears; the stage handles the camera's
    /// later sessions itself (`Event::Start`/`Event::End`).
    fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, shutdown: CancellationToken);

    /// The stage's HTTP routes, merged into the worker's router.
    fn routes(&self) -> Router {
        Router::new()
    }
}

/// Attaches every stage to every camera, now and as cameras appear, until `shutdown`.
pub async fn attach_all(hub: Arc<Hub>, stages: Vec<Arc<dyn Stage>>, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    let mut attached = std::collections::HashSet::new();
    let mut cameras = hub.watch_cameras();
    loop {
        for channel in hub.channels() {
            if attached.insert(channel.name().to_string()) {
                for stage in &stages {
                    stage.attach(channel.clone(), &mut tasks, shutdown.child_token());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = cameras.changed() => if changed.is_err() { break },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}
