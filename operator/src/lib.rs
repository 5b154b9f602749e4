//! kamera-operator: reconciles `Camera` and `FrameProcessor` resources into worker pods.
//!
//! `crd` holds the resource types, `reconcile` the steps from spec to objects (pure builders plus
//! the thin async shells that apply them), `context` what every reconcile gets,
//! `controller` the watches, `events` the Kubernetes Events, `rollout` the restart throttle, `leader` the election and
//! `metrics` the operator's own endpoint.

pub mod context;
pub mod controller;
pub mod crd;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod render;
pub mod rollout;

#[cfg(test)]
mod fixtures;
