//! Third step: where the pod may run. GPU sidecars bring node selectors, tolerations and a
//! runtime class; two that disagree make a pod that can never be scheduled, so that is refused.
//! Pool processors bring nothing: their GPU settings go to the pool's pods, never to a camera's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;

use crate::crd::camera::WorkerSpec;
use crate::reconcile::resolve::ResolvedProcessor;

/// Scheduling constraints of a worker pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodScheduling {
    /// Merged node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Union of tolerations, in first-seen order.
    pub tolerations: Vec<Toleration>,
    /// The one runtime class the pod needs, if any.
    pub runtime_class_name: Option<String>,
}

/// Two sources of scheduling constraints that cannot both hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulingConflict {
    /// The same node label is required with two values.
    #[error("node selector {key}: {first} wants {first_value:?}, {second} wants {second_value:?}")]
    NodeSelector {
        /// The label key.
        key: String,
        /// Who set it first (`camera` or `processor <name>`).
        first: String,
        /// Its value.
        first_value: String,
        /// Who disagrees.
        second: String,
        /// Their value.
        second_value: String,
    },
    /// Two processors define a pod volume of the same name differently.
    #[error("volume {name:?}: {first} and {second} define it differently")]
    Volume {
        /// The volume's name.
        name: String,
        /// The first processor.
        first: String,
        /// The processor that disagrees.
        second: String,
    },
    /// Two processors need different runtime classes.
    #[error("runtime class: {first} wants {first_value:?}, {second} wants {second_value:?}")]
    RuntimeClass {
        /// The first processor.
        first: String,
        /// Its runtime class.
        first_value: String,
        /// The processor that disagrees.
        second: String,
        /// Its runtime class.
        second_value: String,
    },
}

/// Merges the camera's placement with every GPU sidecar's, or names the conflict.
pub fn schedule(
    worker: &WorkerSpec,
    processors: &[ResolvedProcessor],
) -> Result<PodScheduling, SchedulingConflict> {
    let mut out = PodScheduling {
        node_selector: worker.node_selector.clone(),
        tolerations: Vec::new(),
        runtime_class_name: None,
    };
    let mut selector_source: BTreeMap<String, String> = worker
        .node_selector
        .keys()
        .map(|k| (k.clone(), "camera".to_string()))
        .collect();
    let mut runtime_source = String::new();
    check_volumes(processors)?;
    for toleration in &worker.tolerations {
        push_unique(&mut out.tolerations, toleration);
    }
    for processor in processors.iter().filter(|p| !p.is_pool()) {
        let Some(gpu) = &processor.spec.gpu else {
            continue;
        };
        let who = format!("processor {}", processor.name);
        for (key, value) in &gpu.node_selector {
            match out.node_selector.get(key) {
                Some(existing) if existing != value => {
                    return Err(SchedulingConflict::NodeSelector {
                        key: key.clone(),
                        first: selector_source.get(key).cloned().unwrap_or_default(),
                        first_value: existing.clone(),
                        second: who,
                        second_value: value.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    out.node_selector.insert(key.clone(), value.clone());
                    selector_source.insert(key.clone(), who.clone());
                }
            }
        }
        if let Some(class) = &gpu.runtime_class_name {
            match &out.runtime_class_name {
                Some(existing) if existing != class => {
                    return Err(SchedulingConflict::RuntimeClass {
                        first: runtime_source,
                        first_value: existing.clone(),
                        second: who,
                        second_value: class.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    out.runtime_class_name = Some(class.clone());
                    runtime_source = who.clone();
                }
            }
        }
        for toleration in &gpu.tolerations {
            push_unique(&mut out.tolerations, toleration);
        }
    }
    Ok(out)
}

/// Processors' volumes share one pod: the same name must mean the same volume (two processors
/// mounting one model cache is fine; two different volumes of one name is not).
fn check_volumes(processors: &[ResolvedProcessor]) -> Result<(), SchedulingConflict> {
    let mut seen: BTreeMap<&str, (&str, &k8s_openapi::api::core::v1::Volume)> = BTreeMap::new();
    for p in processors.iter().filter(|p| !p.is_pool()) {
        for v in &p.spec.volumes {
            match seen.get(v.name.as_str()) {
                Some((first, existing)) if *existing != v => {
                    return Err(SchedulingConflict::Volume {
                        name: v.name.clone(),
                        first: format!("processor {first}"),
                        second: format!("processor {}", p.name),
                    });
                }
                Some(_) => {}
                None => {
                    seen.insert(&v.name, (&p.name, v));
                }
            }
        }
    }
    Ok(())
}

fn push_unique(list: &mut Vec<Toleration>, toleration: &Toleration) {
    if !list.contains(toleration) {
        list.push(toleration.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::processor::{FrameProcessorSpec, GpuSpec, ProcessorMode};

    /// A GPU processor run as a sidecar (`mode: sidecar`: with a GPU the default is a pool).
    fn gpu_processor(
        name: &str,
        selector: &[(&str, &str)],
        runtime: Option<&str>,
    ) -> ResolvedProcessor {
        ResolvedProcessor {
            name: name.into(),
            spec: FrameProcessorSpec {
                image: "img".into(),
                mode: Some(ProcessorMode::Sidecar),
                gpu: Some(GpuSpec {
                    node_selector: selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    tolerations: vec![Toleration {
                        key: Some("nvidia.com/gpu".into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoSchedule".into()),
                        ..Default::default()
                    }],
                    runtime_class_name: runtime.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            fps: 1.0,
            note: None,
        }
    }

    #[test]
    fn gpu_constraints_merge_into_the_pod() {
        let worker = WorkerSpec {
            node_selector: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            ..Default::default()
        };
        let a = gpu_processor("a", &[("gpu", "l4")], Some("nvidia"));
        let b = gpu_processor("b", &[("gpu", "l4")], Some("nvidia"));
        let s = schedule(&worker, &[a, b]).expect("compatible");
        assert_eq!(s.node_selector.len(), 2);
        assert_eq!(s.node_selector["gpu"], "l4");
        assert_eq!(s.tolerations.len(), 1, "identical tolerations are merged");
        assert_eq!(s.runtime_class_name.as_deref(), Some("nvidia"));
    }

    #[test]
    fn pool_processors_bring_no_gpu_settings_and_no_conflict_to_the_camera_pod() {
        let worker = WorkerSpec {
            node_selector: BTreeMap::from([("gpu".to_string(), "none".to_string())]),
            ..Default::default()
        };
        let mut pool = gpu_processor("yolo", &[("gpu", "l4")], Some("nvidia"));
        pool.spec.mode = None;
        assert!(pool.is_pool(), "a GPU processor is a pool by default");
        let s = schedule(&worker, &[pool]).expect("a pool never conflicts with the camera");
        assert_eq!(s.node_selector, worker.node_selector);
        assert!(s.tolerations.is_empty());
        assert_eq!(s.runtime_class_name, None);
    }

    #[test]
    fn conflicting_node_selectors_are_refused_with_both_sides() {
        let a = gpu_processor("a", &[("gpu", "l4")], None);
        let b = gpu_processor("b", &[("gpu", "h100")], None);
        let err = schedule(&WorkerSpec::default(), &[a, b]).expect_err("conflict");
        assert_eq!(
            err,
            SchedulingConflict::NodeSelector {
                key: "gpu".into(),
                first: "processor a".into(),
                first_value: "l4".into(),
                second: "processor b".into(),
                second_value: "h100".into(),
            }
        );
    }

    #[test]
    fn processor_disagreeing_with_the_camera_is_a_conflict() {
        let worker = WorkerSpec {
            node_selector: BTreeMap::from([("gpu".to_string(), "none".to_string())]),
            ..Default::default()
        };
        let err =
            schedule(&worker, &[gpu_processor("a", &[("gpu", "l4")], None)]).expect_err("conflict");
        assert!(err.to_string().contains("camera wants \"none\""), "{err}");
    }

    #[test]
    fn one_volume_name_for_two_different_volumes_is_refused_but_a_shared_one_is_fine() {
        use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume};
        let claim = |name: &str| Volume {
            name: "models".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name.into(),
                read_only: Some(true),
            }),
            ..Default::default()
        };
        let mut a = gpu_processor("a", &[], None);
        let mut b = gpu_processor("b", &[], None);
        a.spec.volumes = vec![claim("yolo-models")];
        b.spec.volumes = vec![claim("yolo-models")];
        assert!(schedule(&WorkerSpec::default(), &[a.clone(), b.clone()]).is_ok());
        b.spec.volumes = vec![claim("other-models")];
        assert!(matches!(
            schedule(&WorkerSpec::default(), &[a, b]),
            Err(SchedulingConflict::Volume { .. })
        ));
    }

    #[test]
    fn conflicting_runtime_classes_are_refused() {
        let a = gpu_processor("a", &[], Some("nvidia"));
        let b = gpu_processor("b", &[], Some("kata"));
        assert!(matches!(
            schedule(&WorkerSpec::default(), &[a, b]),
            Err(SchedulingConflict::RuntimeClass { .. })
        ));
    }
}
