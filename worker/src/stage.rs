//! A consumer stage (LL-HLS, recording, frames): attached to every camera the hub knows,
//! serving its own HTTP routes and its own section of `/api/cameras`.
//!
//! The camera lifecycle (`lifecycle.rs`) owns each camera's tasks: it attaches every stage when
//! a camera appears, and when the camera is released it cancels the camera's stop token, closes
//! its hub channel, joins the tasks, and only then calls [`Stage::release`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// A stage's per-camera state, in one place, so that [`Stage::release`] removes all of it.
pub struct Cameras<T> {
    map: Mutex<HashMap<String, T>>,
}

impl<T> Default for Cameras<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Cameras<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, T>> {
        // Plain data: a panic elsewhere must not take every camera's state down with it.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, camera: &str, state: T) {
        self.lock().insert(camera.to_string(), state);
    }

    /// Forgets `camera` (on release).
    pub fn remove(&self, camera: &str) -> Option<T> {
        self.lock().remove(camera)
    }

    /// Changes `camera`'s state, starting from the default if it has none.
    pub fn update(&self, camera: &str, f: impl FnOnce(&mut T))
    where
        T: Default,
    {
        f(self.lock().entry(camera.to_string()).or_default());
    }

    /// Cameras with state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Cameras<T> {
    /// A copy of `camera`'s state (an `Arc` for shared state).
    pub fn get(&self, camera: &str) -> Option<T> {
        self.lock().get(camera).cloned()
    }
}
