//! Reconciliation, as a list of steps: validate → resolve processors → schedule → build PVC,
//! Service, Secret, Deployment → apply → status → events. Every step but apply is a pure function.

pub mod apply;
pub mod build_deployment;
pub mod build_pool;
pub mod build_service;
pub mod build_storage;
pub mod camera;
pub mod camera_status;
pub mod drift;
pub mod health;
pub mod names;
pub mod overrides;
pub mod ownership;
pub mod processor;
pub mod resolve;
pub mod schedule;
pub mod secrets;
pub mod status;
pub mod urls;
pub mod validate;
pub mod worker_args;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::camera::Camera;

/// Name and namespace of a Camera, checked once so builders need not handle their absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when a manifest has none).
    pub namespace: String,
}

impl CameraRef {
    /// `namespace/name`, the key of per-camera state in the operator.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The Camera's name and namespace, or `None` when it has no name.
    pub fn of(camera: &Camera) -> Option<CameraRef> {
        let name = camera.metadata.name.clone()?;
        Some(CameraRef {
            name,
            namespace: camera.namespace().unwrap_or_else(|| "default".into()),
        })
    }
}

/// The controller owner reference to a Camera (empty until the Camera has a uid).
pub fn owner_references(camera: &Camera) -> Vec<OwnerReference> {
    camera.controller_owner_ref(&()).into_iter().collect()
}

/// A named Camera in namespace `cams` with a uid, for tests.
#[cfg(test)]
pub fn test_camera(name: &str) -> Camera {
    let mut cam = Camera::new(name, crate::crd::camera::CameraSpec::default());
    cam.metadata.namespace = Some("cams".into());
    cam.metadata.uid = Some(format!("uid-{name}"));
    cam.metadata.generation = Some(1);
    cam
}
