//! The recordings PersistentVolumeClaim and the operator-made publish key Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::camera::Camera;
use crate::reconcile::names::{
    http_tokens_secret_name, labels, publish_key_secret_name, pvc_name, HTTP_TOKENS_FILE,
    PUBLISH_KEY_FILE,
};
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

/// Marks the operator's own line in the tokens file it writes.
pub const OPERATOR_TOKEN_MARK: &str = "# kamera-operator: reads /api for the Camera status";

/// The worker's viewer tokens file: the user's tokens as written, then the operator's own
/// token, which may only read `/api` (scope `api`).
pub fn http_tokens_file(user_tokens: &str, operator_token: &str) -> String {
    let mut file = user_tokens.trim_end().to_string();
    if !file.is_empty() {
        file.push('\n');
    }
    file.push_str(&format!("{OPERATOR_TOKEN_MARK}\n{operator_token} api\n"));
    file
}

/// The operator's token in a tokens file it wrote, if any.
pub fn operator_token_in(file: &str) -> Option<String> {
    let mut lines = file.lines();
    lines.find(|l| l.trim() == OPERATOR_TOKEN_MARK)?;
    let token = lines.next()?.split_whitespace().next()?;
    (token.len() >= 16).then(|| token.to_string())
}

/// The worker's tokens file in a Secret owned by the Camera.
pub fn build_http_tokens_secret(camera: &Camera, at: &CameraRef, file: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(http_tokens_secret_name(&at.name)),
            namespace: Some(at.namespace.clone()),
            labels: Some(labels(&at.name)),
            owner_references: Some(owner_references(camera)),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            HTTP_TOKENS_FILE.to_string(),
            file.to_string(),
        )])),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// A new random token for the operator (hex, 48 characters).
pub fn new_operator_token() -> Result<String, getrandom::Error> {
    random_hex::<24>()
}

/// `N` random bytes from the operating system, as hex (`2 * N` characters).
pub fn random_hex<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
    fn the_tokens_file_keeps_the_users_tokens_and_adds_the_operators_api_token() {
        let token = new_operator_token().expect("random");
        assert_eq!(token.len(), 48);
        assert_ne!(token, new_operator_token().expect("random"));
        let file = http_tokens_file("viewer-token-0123456789 live:*\n", &token);
        assert!(file.starts_with("viewer-token-0123456789 live:*\n"));
        assert!(file.ends_with(&format!("{token} api\n")));
        assert_eq!(operator_token_in(&file), Some(token));
        assert_eq!(operator_token_in("viewer-token-0123456789 live:*\n"), None);
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
