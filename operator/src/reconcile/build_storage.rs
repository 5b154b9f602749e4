//! The recordings PersistentVolumeClaim and the operator-made publish key Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::camera::Camera;
use crate::reconcile::names::{labels, publish_key_secret_name, pvc_name, PUBLISH_KEY_FILE};
use crate::reconcile::{owner_references, CameraRef};

/// The recordings claim, or `None` when recording is off. Owner-referenced (deleted with the
/// Camera) only when `retainOnDelete` is false; by default it outlives the Camera.
pub fn build_pvc(camera: &Camera, at: &CameraRef) -> Option<PersistentVolumeClaim> {
    let recording = &camera.spec.recording;
    if !recording.enabled {
        return None;
    }
    let owners = if recording.storage.retain_on_delete {
        None
    } else {
        Some(owner_references(camera))
    };
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(pvc_name(&at.name)),
            namespace: Some(at.namespace.clone()),
            labels: Some(labels(&at.name)),
            owner_references: owners,
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: recording.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(recording.storage.size.clone()),
                )])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// The worker's publish key file (`<camera>=<key>`), in a Secret owned by the Camera.
pub fn build_publish_key_secret(camera: &Camera, at: &CameraRef, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(publish_key_secret_name(&at.name)),
            namespace: Some(at.namespace.clone()),
            labels: Some(labels(&at.name)),
            owner_references: Some(owner_references(camera)),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            PUBLISH_KEY_FILE.to_string(),
            publish_key_file(&at.name, key),
        )])),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// One line in the worker's key file format.
pub fn publish_key_file(camera: &str, key: &str) -> String {
    format!("{camera}={}\n", key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_camera;

    #[test]
    fn pvc_requests_the_spec_size_and_class_and_is_owned() {
        let mut cam = test_camera("front-door");
        cam.spec.recording.storage.size = "100Gi".into();
        cam.spec.recording.storage.storage_class_name = Some("fast".into());
        cam.spec.recording.storage.retain_on_delete = false;
        let at = CameraRef::of(&cam).expect("named");
        let pvc = build_pvc(&cam, &at).expect("recording is on");
        assert_eq!(pvc.metadata.name.as_deref(), Some("front-door-recordings"));
        let spec = pvc.spec.expect("spec");
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        let requests = spec.resources.and_then(|r| r.requests).expect("requests");
        assert_eq!(requests["storage"], Quantity("100Gi".into()));
        let owners = pvc.metadata.owner_references.expect("owned");
        assert_eq!(owners[0].kind, "Camera");
        assert_eq!(owners[0].controller, Some(true));
    }

    #[test]
    fn retained_pvc_has_no_owner_and_disabled_recording_has_no_pvc() {
        let mut cam = test_camera("front-door");
        let at = CameraRef::of(&cam).expect("named");
        cam.spec.recording.storage.retain_on_delete = true;
        let pvc = build_pvc(&cam, &at).expect("recording is on");
        assert_eq!(pvc.metadata.owner_references, None);
        cam.spec.recording.enabled = false;
        assert!(build_pvc(&cam, &at).is_none());
    }

    #[test]
    fn publish_key_secret_holds_the_worker_key_file() {
        let cam = test_camera("front-door");
        let at = CameraRef::of(&cam).expect("named");
        let secret = build_publish_key_secret(&cam, &at, "s3cret\n");
        let data = secret.string_data.expect("data");
        assert_eq!(data["publish-keys"], "front-door=s3cret\n");
    }
}
