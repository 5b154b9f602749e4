//! The FrameProcessor reconciler: reports which Cameras it selects. Attaching it to their pods
//! is the Camera reconciler's job (FrameProcessor changes requeue those Cameras).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::camera::Camera;
use crate::crd::processor::{FrameProcessor, FrameProcessorStatus};
use crate::error::Error;
use crate::reconcile::names::FIELD_MANAGER;
use crate::reconcile::resolve::{selector_error, selects};
use crate::reconcile::status::{settle_conditions, Cond, READY};

/// The Cameras (names, sorted) a processor selects among `cameras`.
pub fn matched_cameras(processor: &FrameProcessor, cameras: &[Arc<Camera>]) -> Vec<String> {
    let namespace = processor.namespace();
    let mut names: Vec<String> = cameras
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| selects(&processor.spec.camera_selector, c.labels()))
        .map(|c| c.name_any())
        .collect();
    names.sort();
    names
}

/// How many of the processor's Cameras report it connected to their worker's frame socket.
pub fn connected_cameras(processor: &FrameProcessor, cameras: &[Arc<Camera>]) -> i32 {
    let namespace = processor.namespace();
    let name = processor.name_any();
    let count = cameras
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.processors
                    .iter()
                    .any(|p| p.name == name && p.connected == Some(true))
            })
        })
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The status a processor should have, given the Cameras it selects and how many of them
/// report it connected.
pub fn processor_status(
    processor: &FrameProcessor,
    matched: Vec<String>,
    connected: i32,
    now: Timestamp,
) -> FrameProcessorStatus {
    let ready = if let Some(error) = selector_error(&processor.spec.camera_selector) {
        Cond::no(READY, "InvalidSelector", format!("cameraSelector: {error}"))
    } else if processor.spec.image.trim().is_empty() {
        Cond::no(READY, "InvalidSpec", "image is empty")
    } else if matched.is_empty() {
        Cond::yes(
            READY,
            "NoCameras",
            "no Camera in the namespace matches cameraSelector",
        )
    } else {
        Cond::yes(
            READY,
            "Selected",
            format!("attached to {} camera(s)", matched.len()),
        )
    };
    let previous = processor.status.clone().unwrap_or_default();
    FrameProcessorStatus {
        observed_generation: processor.metadata.generation,
        matched_camera_count: i32::try_from(matched.len()).unwrap_or(i32::MAX),
        connected_camera_count: connected,
        matched_cameras: matched,
        conditions: settle_conditions(
            &previous.conditions,
            &[ready],
            processor.metadata.generation,
            now,
        ),
    }
}

/// Reconciles one FrameProcessor: writes `matchedCameras` and `Ready` when they change.
pub async fn reconcile(processor: Arc<FrameProcessor>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.stores.wait_ready(Duration::from_secs(30)).await?;
    let _timer = ctx.metrics.reconcile_timer("frameprocessor");
    let name = processor.meta().name.clone().ok_or(Error::Unnamed {
        kind: "FrameProcessor",
    })?;
    let namespace = processor.namespace().unwrap_or_else(|| "default".into());
    let cameras = ctx.stores.cameras.state();
    let matched = matched_cameras(&processor, &cameras);
    let connected = connected_cameras(&processor, &cameras);
    let status = processor_status(&processor, matched, connected, Timestamp::now());
    if processor.status.as_ref() != Some(&status) {
        let api: Api<FrameProcessor> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = Patch::Apply(serde_json::json!({
            "apiVersion": FrameProcessor::api_version(&()),
            "kind": FrameProcessor::kind(&()),
            "status": status,
        }));
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &patch)
            .await
            .map_err(|source| Error::Status {
                kind: "FrameProcessor",
                namespace,
                name,
                source,
            })?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::processor::FrameProcessorSpec;
    use crate::reconcile::test_camera;

    #[test]
    fn status_lists_selected_cameras_of_the_namespace() {
        let mut lobby = test_camera("lobby");
        lobby.metadata.labels = Some([("zone".to_string(), "lobby".to_string())].into());
        let yard = test_camera("yard");
        let mut fp = FrameProcessor::new(
            "yolo",
            FrameProcessorSpec {
                image: "img".into(),
                ..Default::default()
            },
        );
        fp.metadata.namespace = Some("cams".into());
        fp.spec.camera_selector.match_labels =
            Some([("zone".to_string(), "lobby".to_string())].into());
        lobby.status = Some(crate::crd::camera::CameraStatus {
            processors: vec![crate::crd::camera::AttachedProcessor {
                name: "yolo".into(),
                ready: true,
                connected: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        });
        let cameras = [Arc::new(lobby), Arc::new(yard)];
        let matched = matched_cameras(&fp, &cameras);
        assert_eq!(matched, ["lobby"]);
        let connected = connected_cameras(&fp, &cameras);
        assert_eq!(connected, 1);
        let now = Timestamp::from_second(1).expect("valid");
        let status = processor_status(&fp, matched, connected, now);
        assert_eq!(status.matched_camera_count, 1);
        assert_eq!(status.connected_camera_count, 1);
        assert_eq!(status.conditions[0].reason, "Selected");
    }
}
