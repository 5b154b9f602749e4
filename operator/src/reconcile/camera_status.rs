//! The Camera's conditions from what the cluster shows: the worker container decides `Ready`
//! (a processor never does), each processor container's state decides `ProcessorsReady`, the
//! recordings claim decides `Recording`. Pure: the reconciler passes in the cached objects.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::crd::camera::AttachedProcessor;
use crate::reconcile::health::{
    container_health, current_pod, pod_creation_failure, unschedulable,
};
use crate::reconcile::names::{processor_container_name, WORKER_CONTAINER};
use crate::reconcile::resolve::ResolvedProcessor;
use crate::reconcile::status::{Cond, PROCESSORS_READY, READY, RECORDING};

/// The recordings claim as the reconcile found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Recording is off: no claim.
    Disabled,
    /// Applying the claim failed (e.g. the API refused to shrink it): the message.
    Failed(String),
    /// The claim's phase (`Bound`, `Pending`, `Lost`), `None` before the first status.
    Phase(Option<String>),
}

/// Everything the conditions are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// `spec.suspend`.
    pub suspended: bool,
    /// Attached processors.
    pub processors: &'a [ResolvedProcessor],
    /// The live Deployment, if any.
    pub deployment: Option<&'a Deployment>,
    /// The camera's pods.
    pub pods: &'a [Arc<Pod>],
    /// The recordings claim.
    pub claim: &'a Claim,
}

/// The conditions `Ready`, `ProcessorsReady`, `Recording`, and each processor's state.
pub fn conditions(o: &Observed<'_>) -> (Vec<Cond>, Vec<AttachedProcessor>) {
    let pod = current_pod(o.pods).map(Arc::as_ref);
    let attached = attached(o.processors, pod, o.suspended);
    let conds = vec![
        ready(o, pod),
        processors_ready(&attached),
        recording(o.claim),
    ];
    (conds, attached)
}

fn ready(o: &Observed<'_>, pod: Option<&Pod>) -> Cond {
    if o.suspended {
        return Cond::no(
            READY,
            "Suspended",
            "the worker is scaled to zero (spec.suspend)",
        );
    }
    if let Some(message) = o.deployment.and_then(pod_creation_failure) {
        return Cond::no(READY, "PodCreationFailed", message);
    }
    let Some(pod) = pod else {
        return Cond::no(
            READY,
            "WorkerStarting",
            "waiting for the worker pod to be created",
        );
    };
    if let Some(message) = unschedulable(pod) {
        return Cond::no(READY, "Unschedulable", message);
    }
    match container_health(pod, WORKER_CONTAINER) {
        Some(h) if h.ready => Cond::yes(READY, "WorkerReady", "the worker is running and ready"),
        Some(h) if h.reason == "NotReady" => Cond::no(
            READY,
            "WorkerStarting",
            "the worker is running, not yet ready",
        ),
        Some(h) => Cond::no(READY, &h.reason, format!("worker container: {}", h.message)),
        None => Cond::no(
            READY,
            "WorkerStarting",
            "waiting for the worker container to start",
        ),
    }
}

fn attached(
    processors: &[ResolvedProcessor],
    pod: Option<&Pod>,
    suspended: bool,
) -> Vec<AttachedProcessor> {
    processors
        .iter()
        .map(|p| {
            let health =
                pod.and_then(|pod| container_health(pod, &processor_container_name(&p.name)));
            let (ready, state) = match health {
                Some(h) if h.ready => (true, None),
                Some(h) if h.message.is_empty() || h.message == h.reason => (false, Some(h.reason)),
                Some(h) => (false, Some(format!("{}: {}", h.reason, h.message))),
                None if suspended => (false, Some("Suspended".to_string())),
                None => (false, Some("Pending".to_string())),
            };
            let message = match (state, &p.note) {
                (Some(s), Some(n)) => Some(format!("{s}; {n}")),
                (s, n) => s.or_else(|| n.clone()),
            };
            AttachedProcessor {
                name: p.name.clone(),
                ready,
                message,
            }
        })
        .collect()
}

fn processors_ready(attached: &[AttachedProcessor]) -> Cond {
    if attached.is_empty() {
        return Cond::yes(
            PROCESSORS_READY,
            "NoProcessors",
            "no FrameProcessor selects this camera",
        );
    }
    let failing: Vec<&AttachedProcessor> = attached.iter().filter(|p| !p.ready).collect();
    let Some(first) = failing.first() else {
        return Cond::yes(
            PROCESSORS_READY,
            "Running",
            format!("{} processor(s) running", attached.len()),
        );
    };
    // The first failing processor's own reason names the condition (`CrashLoopBackOff`, …).
    let reason = first
        .message
        .as_deref()
        .and_then(|m| m.split(':').next())
        .map(|r| r.split(';').next().unwrap_or(r).trim())
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("NotRunning");
    let message = failing
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p.name,
                p.message.as_deref().unwrap_or("not running")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Cond::no(PROCESSORS_READY, reason, message)
}

fn recording(claim: &Claim) -> Cond {
    match claim {
        Claim::Disabled => Cond::no(
            RECORDING,
            "Disabled",
            "recording is off (spec.recording.enabled)",
        ),
        Claim::Failed(message) => Cond::no(RECORDING, "ClaimFailed", message.clone()),
        Claim::Phase(Some(phase)) if phase == "Bound" => {
            Cond::yes(RECORDING, "ClaimBound", "the recordings claim is bound")
        }
        Claim::Phase(Some(phase)) if phase == "Lost" => Cond::no(
            RECORDING,
            "ClaimLost",
            "the recordings claim lost its volume",
        ),
        Claim::Phase(_) => Cond::no(
            RECORDING,
            "ClaimPending",
            "waiting for the recordings claim to be bound",
        ),
    }
}

/// The claim state of a live PVC.
pub fn claim_phase(claim: Option<&PersistentVolumeClaim>) -> Claim {
    Claim::Phase(
        claim
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::processor::FrameProcessorSpec;
    use crate::reconcile::health::tests::{pod, status};

    fn yolo() -> ResolvedProcessor {
        ResolvedProcessor {
            name: "yolo".into(),
            spec: FrameProcessorSpec::default(),
            fps: 1.0,
            note: None,
        }
    }

    fn find<'a>(conds: &'a [Cond], t: &str) -> &'a Cond {
        conds.iter().find(|c| c.type_ == t).expect("condition")
    }

    #[test]
    fn a_crash_looping_processor_leaves_the_camera_ready_and_says_why() {
        let pods = vec![Arc::new(pod(
            "h",
            vec![
                status("worker", None),
                status("processor-yolo", Some("CrashLoopBackOff")),
            ],
        ))];
        let processors = [yolo()];
        let bound = Claim::Phase(Some("Bound".into()));
        let (conds, attached) = conditions(&Observed {
            suspended: false,
            processors: &processors,
            deployment: None,
            pods: &pods,
            claim: &bound,
        });
        assert!(find(&conds, READY).ok, "the worker alone decides Ready");
        let p = find(&conds, PROCESSORS_READY);
        assert!(!p.ok);
        assert_eq!(p.reason, "CrashLoopBackOff");
        assert!(
            p.message.starts_with("yolo: CrashLoopBackOff"),
            "{}",
            p.message
        );
        assert!(!attached[0].ready);
        assert!(find(&conds, RECORDING).ok);
    }

    #[test]
    fn a_pod_the_api_refused_is_the_reason_not_waiting() {
        use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
        let deployment = Deployment {
            status: Some(DeploymentStatus {
                conditions: Some(vec![DeploymentCondition {
                    type_: Some("ReplicaFailure".into()),
                    status: Some("True".into()),
                    reason: Some("FailedCreate".into()),
                    message: Some(
                        "pods \"lobby-x\" is forbidden: RuntimeClass \"nvidia\" not found".into(),
                    ),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (conds, _) = conditions(&Observed {
            suspended: false,
            processors: &[],
            deployment: Some(&deployment),
            pods: &[],
            claim: &Claim::Disabled,
        });
        let ready = find(&conds, READY);
        assert_eq!(ready.reason, "PodCreationFailed");
        assert!(ready.message.contains("RuntimeClass \"nvidia\" not found"));
        assert_eq!(find(&conds, RECORDING).reason, "Disabled");
    }

    #[test]
    fn a_worker_stuck_pulling_its_image_is_not_ready_with_the_kubelets_reason() {
        let pods = vec![Arc::new(pod(
            "h",
            vec![status("worker", Some("ImagePullBackOff"))],
        ))];
        let (conds, _) = conditions(&Observed {
            suspended: false,
            processors: &[],
            deployment: None,
            pods: &pods,
            claim: &Claim::Phase(None),
        });
        assert_eq!(find(&conds, READY).reason, "ImagePullBackOff");
        assert_eq!(find(&conds, PROCESSORS_READY).reason, "NoProcessors");
        assert_eq!(find(&conds, RECORDING).reason, "ClaimPending");
    }
}
