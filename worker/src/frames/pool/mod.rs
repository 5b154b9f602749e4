//! Processor pools over the network: for each camera and `--pool`, one link task dials the
//! pool, authenticates, and then serves the frame hub's credits over TCP with the JPEG bytes
//! inline (docs/frame-protocol.md, "Network transport").
//!
//! Boundaries: a link is one more processor connection of the dispatcher (same credits,
//! latest-wins, acks, detections, metrics); it owns its socket and nothing else. Its state for
//! `/api/cameras` lives in a [`PoolLink`] the camera's frames state holds, so it goes away with
//! the camera.

pub mod backoff;
pub mod link;
pub mod wire;

use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::roster::{LinkView, PoolEndpoint};

/// One camera's link to one pool, as `/api/cameras/<camera>` shows it.
#[derive(Debug)]
pub struct PoolLink {
    name: String,
    since: SystemTime,
    state: Mutex<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    connected: bool,
    endpoint: String,
    last_error: Option<String>,
}

impl PoolLink {
    pub fn new(name: &str, first_endpoint: &str) -> Self {
        Self {
            name: name.to_string(),
            since: SystemTime::now(),
            state: Mutex::new(LinkState {
                connected: false,
                endpoint: first_endpoint.to_string(),
                last_error: None,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trying(&self, endpoint: &str) {
        endpoint.clone_into(&mut self.lock().endpoint);
    }

    fn connected(&self) {
        let mut s = self.lock();
        s.connected = true;
        s.last_error = None;
    }

    fn failed(&self, error: String) {
        let mut s = self.lock();
        s.connected = false;
        s.last_error = Some(error);
    }

    /// The link as the roster lists it.
    pub fn view(&self) -> LinkView {
        let s = self.lock();
        LinkView {
            name: self.name.clone(),
            connected: s.connected,
            since: self.since,
            endpoint: PoolEndpoint {
                endpoint: s.endpoint.clone(),
                last_error: s.last_error.clone(),
            },
        }
    }
}
