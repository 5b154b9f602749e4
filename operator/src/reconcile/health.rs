//! What the worker pod's containers say: whether the worker is ready and each processor is
//! running, with the kubelet's own reasons (`CrashLoopBackOff`, `ImagePullBackOff`, …). Pure
//! functions over the Pod and Deployment objects from the watch caches.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::reconcile::names::CONFIG_HASH_ANNOTATION;

/// The state of one container, as a condition would state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Running and (for the worker) passing its readiness probe.
    pub ready: bool,
    /// CamelCase reason: `Running`, or the kubelet's reason (`CrashLoopBackOff`, …).
    pub reason: String,
    /// Details for a human.
    pub message: String,
}

impl Health {
    fn new(ready: bool, reason: &str, message: impl Into<String>) -> Self {
        Health {
            ready,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The pod to report on: the newest one not being deleted (a Recreate rollout briefly has the
/// old one terminating).
pub fn current_pod(pods: &[Arc<Pod>]) -> Option<&Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .max_by(|a, b| {
            let at = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            at(a).cmp(&at(b))
        })
}

/// The config hash a pod was created from.
pub fn pod_config_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .map(String::as_str)
}

/// Whether some pod of `hash` has a ready worker container: a restart to `hash` is done.
pub fn worker_ready_with(pods: &[Arc<Pod>], worker: &str, hash: &str) -> bool {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| pod_config_hash(p) == Some(hash))
        .any(|p| container_health(p, worker).is_some_and(|h| h.ready))
}

/// A container's health from the pod status; `None` when the pod has no status for it yet.
pub fn container_health(pod: &Pod, container: &str) -> Option<Health> {
    let status = pod.status.as_ref()?;
    let cs: &ContainerStatus = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == container)?;
    let state = cs.state.as_ref();
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.clone().unwrap_or_else(|| "Waiting".into());
        let mut message = waiting.message.clone().unwrap_or_default();
        if let Some(last) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            let why = last.reason.clone().unwrap_or_default();
            let tail = format!("last exit code {} {why}", last.exit_code);
            message = if message.is_empty() {
                tail
            } else {
                format!("{message}; {tail}")
            };
        }
        return Some(Health::new(false, &reason, message.trim().to_string()));
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        let reason = terminated
            .reason
            .clone()
            .unwrap_or_else(|| "Terminated".into());
        return Some(Health::new(
            false,
            &reason,
            format!("exited with code {}", terminated.exit_code),
        ));
    }
    if state.and_then(|s| s.running.as_ref()).is_some() {
        return Some(if cs.ready {
            Health::new(true, "Running", "running")
        } else {
            Health::new(false, "NotReady", "running, not yet ready")
        });
    }
    None
}

/// Why the pod is not running at all, if the scheduler said so.
pub fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "the pod cannot be scheduled".into())
        })
}

/// The Deployment controller could not create the pod (admission refused it, a RuntimeClass
/// is missing, a quota is exceeded): its `ReplicaFailure` condition, with the API's message.
pub fn pod_creation_failure(deployment: &Deployment) -> Option<String> {
    deployment
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        })
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "the worker pod could not be created".into())
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodStatus,
    };
    use std::collections::BTreeMap;

    /// A container status: `ready`, or waiting with `reason`.
    pub fn status(name: &str, waiting: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready: waiting.is_none(),
            state: Some(match waiting {
                None => ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                },
                Some(reason) => ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.into()),
                        message: Some(format!("{name}: {reason}")),
                    }),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    /// A pod of `hash` with these container statuses.
    pub fn pod(hash: &str, containers: Vec<ContainerStatus>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_HASH_ANNOTATION.to_string(),
            hash.to_string(),
        )]));
        pod.status = Some(PodStatus {
            container_statuses: Some(containers),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn a_crash_looping_processor_has_the_kubelets_reason_and_last_exit() {
        let mut p = pod(
            "h1",
            vec![
                status("worker", None),
                status("processor-yolo", Some("CrashLoopBackOff")),
            ],
        );
        if let Some(cs) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
            .and_then(|c| c.get_mut(1))
        {
            cs.last_state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("OOMKilled".into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let yolo = container_health(&p, "processor-yolo").expect("status");
        assert!(!yolo.ready);
        assert_eq!(yolo.reason, "CrashLoopBackOff");
        assert!(yolo.message.contains("137 OOMKilled"), "{}", yolo.message);
        assert!(container_health(&p, "worker").expect("status").ready);
    }

    #[test]
    fn a_restart_is_done_only_when_a_pod_of_the_new_hash_has_a_ready_worker() {
        let old = Arc::new(pod("h1", vec![status("worker", None)]));
        let starting = Arc::new(pod("h2", vec![status("worker", Some("ContainerCreating"))]));
        assert!(!worker_ready_with(&[old.clone(), starting], "worker", "h2"));
        let ready = Arc::new(pod("h2", vec![status("worker", None)]));
        assert!(worker_ready_with(&[old, ready], "worker", "h2"));
    }
}
