//! Second step: which FrameProcessors of the namespace select a Camera, and with what settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;

use crate::crd::camera::Camera;
use crate::crd::processor::{FrameProcessor, FrameProcessorSpec, ProcessorMode};

/// A FrameProcessor as it will run beside one camera's worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProcessor {
    /// Name of the FrameProcessor (and of its sidecar, prefixed).
    pub name: String,
    /// Its spec.
    pub spec: FrameProcessorSpec,
    /// Frames per second it gets: its own rate, capped at the camera's.
    pub fps: f64,
    /// Set when the processor's rate was lowered to the camera's.
    pub note: Option<String>,
}

impl ResolvedProcessor {
    /// Whether it runs as a pool (frames over the network), not as a sidecar of the camera's pod.
    pub fn is_pool(&self) -> bool {
        self.spec.effective_mode() == ProcessorMode::Pool
    }
}

/// Whether `selector` selects an object with `labels`. An invalid selector selects nothing.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    match Selector::try_from(selector.clone()) {
        Ok(selector) => selector.matches(labels),
        Err(_) => false,
    }
}

/// Whether a processor's selector can be parsed at all (unknown operators, values on `Exists`...).
pub fn selector_error(selector: &LabelSelector) -> Option<String> {
    Selector::try_from(selector.clone())
        .err()
        .map(|e| e.to_string())
}

/// The processors, from all known ones, that select `camera`: same namespace, matching labels,
/// not being deleted. Sorted by name so the pod spec is stable.
pub fn resolve_processors(
    camera: &Camera,
    processors: &[Arc<FrameProcessor>],
) -> Vec<ResolvedProcessor> {
    let namespace = camera.namespace();
    let labels = camera.labels();
    let camera_fps = camera.spec.frames.fps;
    let mut resolved: Vec<ResolvedProcessor> = processors
        .iter()
        .filter(|p| p.namespace() == namespace && p.metadata.deletion_timestamp.is_none())
        .filter(|p| selects(&p.spec.camera_selector, labels))
        .map(|p| {
            let (fps, note) = if p.spec.fps > camera_fps {
                (
                    camera_fps,
                    Some(format!(
                        "fps {} capped at the camera's {}",
                        p.spec.fps, camera_fps
                    )),
                )
            } else {
                (p.spec.fps, None)
            };
            ResolvedProcessor {
                name: p.name_any(),
                spec: p.spec.clone(),
                fps,
                note,
            }
        })
        .collect();
    resolved.sort_by(|a, b| a.name.cmp(&b.name));
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use crate::crd::camera::CameraSpec;

    fn camera(labels: &[(&str, &str)]) -> Camera {
        let mut cam = Camera::new("front-door", CameraSpec::default());
        cam.metadata.namespace = Some("cams".into());
        cam.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        cam
    }

    fn processor(name: &str, ns: &str, match_labels: &[(&str, &str)]) -> Arc<FrameProcessor> {
        let mut fp = FrameProcessor::new(
            name,
            FrameProcessorSpec {
                image: "img".into(),
                fps: 1.0,
                max_in_flight: 1,
                ..Default::default()
            },
        );
        fp.metadata.namespace = Some(ns.into());
        if !match_labels.is_empty() {
            fp.spec.camera_selector.match_labels = Some(
                match_labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        Arc::new(fp)
    }

    #[test]
    fn empty_selector_selects_every_camera_of_the_namespace_only() {
        let cam = camera(&[]);
        let all = [
            processor("b", "cams", &[]),
            processor("a", "cams", &[]),
            processor("x", "other", &[]),
        ];
        let names: Vec<_> = resolve_processors(&cam, &all)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn label_selectors_pick_matching_cameras() {
        let cam = camera(&[("zone", "lobby")]);
        let all = [
            processor("lobby", "cams", &[("zone", "lobby")]),
            processor("yard", "cams", &[("zone", "yard")]),
        ];
        let names: Vec<_> = resolve_processors(&cam, &all)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["lobby"]);
    }

    #[test]
    fn processor_rate_is_capped_at_the_camera_rate() {
        let cam = camera(&[]);
        let mut fp = (*processor("fast", "cams", &[])).clone();
        fp.spec.fps = 5.0;
        let resolved = resolve_processors(&cam, &[Arc::new(fp)]);
        assert_eq!(resolved[0].fps, 1.0);
        assert!(resolved[0].note.is_some());
    }

    #[test]
    fn invalid_selectors_select_nothing_and_say_why() {
        let selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: "Near".into(),
                values: None,
            }]),
            match_labels: None,
        };
        assert!(!selects(&selector, &BTreeMap::new()));
        assert!(selector_error(&selector).is_some());
    }
}
