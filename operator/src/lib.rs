//! kamera-operator: reconciles `Camera` and `FrameProcessor` resources into worker pods.
//!
//! `crd` holds the resource types, `reconcile` the steps from spec to objects (pure builders plus
//! the thin async shells that apply them), `controller` the watches, `leader` the election and
//! `metrics` the operator's own endpoint.

pub mod controller;
pub mod crd;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;

#[cfg(test)]
mod fixtures;
