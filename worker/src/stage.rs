//! A consumer stage (LL-HLS, recording, frames): attached to every camera the hub knows,
//! serving its own HTTP routes and its own section of `/api/cameras`.
//!
//! The camera lifecycle (`lifecycle.rs`) owns each camera's tasks: it attaches every stage when
//! a camera appears, and when the camera is released it cancels the camera's stop token, closes
//! its hub channel, joins the tasks, and only then calls [`Stage::release`].

use std::sync::Arc;

use axum::Router;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http::CameraStatus;
use crate::hub::Channel;

pub trait Stage: CameraStatus {
    /// Starts consuming `channel` (subscribe, then spawn the camera's tasks into `tasks`).
    /// Called once per camera, when the camera first appears; the stage handles the camera's
    /// later sessions itself (`Event::Start`/`Event::End`).
    ///
    /// `tasks` and `stop` belong to this camera alone: every task (and every thread, through a
    /// task that joins it) must end soon after `stop` is cancelled or the channel's subscriber
    /// returns `None`, closing what it has open (an LL-HLS window, a recording file).
    fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, stop: CancellationToken);

    /// Forgets everything the stage keeps for `camera` (API state, maps, files it owns such as
    /// extracted frames). Called once the camera's tasks have ended; may block briefly (disk).
    /// The camera's metric series are removed by the caller (`Families::forget_camera`).
    fn release(&self, camera: &str);

    /// The stage's HTTP routes, merged into the worker's router.
    fn routes(&self) -> Router {
        Router::new()
    }
}
