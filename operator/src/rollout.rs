//! Throttled worker restarts. When the operator, its default worker image or a FrameProcessor
//! changes, many camera pods want a new template at once; restarting them all together would
//! take every camera offline together (and, with a bad image, keep them offline). The gate lets
//! at most `max` cameras restart at a time; each holds its slot until its new worker is ready.
//! A change to a camera's own spec is not throttled: the user asked for that restart.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;

/// The gate's answer to a camera that wants to restart its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Apply the new pod template now.
    Go,
    /// Wait: these cameras are restarting.
    Wait(Vec<String>),
}

/// At most `max` cameras restarting at once.
#[derive(Debug)]
pub struct RolloutGate {
    max: usize,
    /// Cameras admitted (`namespace/name`) and the template hash each is rolling to.
    admitted: Mutex<HashMap<String, String>>,
}

impl RolloutGate {
    /// A gate of `max` slots (at least one).
    pub fn new(max: usize) -> Self {
        RolloutGate {
            max: max.max(1),
            admitted: Mutex::new(HashMap::new()),
        }
    }

    /// The number of slots.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits `camera` to roll to `hash` if fewer than `max` other cameras are restarting.
    ///
    /// `still_rolling(camera, hash)` says whether an admitted camera has yet to finish (its new
    /// worker is not ready and it still exists); `visibly_rolling` are the cameras whose
    /// Deployment shows a rollout in progress (which also covers rollouts begun before an
    /// operator restart).
    pub fn admit(
        &self,
        camera: &str,
        hash: &str,
        still_rolling: impl Fn(&str, &str) -> bool,
        visibly_rolling: &[String],
    ) -> Admission {
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        admitted.retain(|c, h| still_rolling(c, h));
        if admitted.contains_key(camera) {
            admitted.insert(camera.to_string(), hash.to_string());
            return Admission::Go;
        }
        let mut busy: Vec<String> = admitted
            .keys()
            .chain(visibly_rolling)
            .filter(|c| c.as_str() != camera)
            .cloned()
            .collect();
        busy.sort();
        busy.dedup();
        if busy.len() < self.max {
            admitted.insert(camera.to_string(), hash.to_string());
            Admission::Go
        } else {
            Admission::Wait(busy)
        }
    }

    /// Records a restart that was not throttled (the camera's own spec changed), so that it
    /// counts against the others until it is done.
    pub fn record(&self, camera: &str, hash: &str) {
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(camera.to_string(), hash.to_string());
    }
}

/// Whether the Deployment controller shows a rollout in progress: it has not yet seen the
/// newest spec, or not every replica runs the newest template.
pub fn deployment_rolling(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return wanted > 0;
    };
    let generation = deployment.metadata.generation.unwrap_or(0);
    status.observed_generation.unwrap_or(0) < generation
        || status.updated_replicas.unwrap_or(0) < wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_cameras_are_admitted_until_one_finishes() {
        let gate = RolloutGate::new(2);
        let rolling = |_: &str, _: &str| true;
        assert_eq!(gate.admit("cams/a", "h2", rolling, &[]), Admission::Go);
        assert_eq!(gate.admit("cams/b", "h2", rolling, &[]), Admission::Go);
        assert_eq!(
            gate.admit("cams/c", "h2", rolling, &[]),
            Admission::Wait(vec!["cams/a".into(), "cams/b".into()])
        );
        // a is done: its new worker is ready.
        let a_done = |c: &str, _: &str| c != "cams/a";
        assert_eq!(gate.admit("cams/c", "h2", a_done, &[]), Admission::Go);
    }

    #[test]
    fn a_camera_already_admitted_keeps_its_slot() {
        let gate = RolloutGate::new(1);
        let rolling = |_: &str, _: &str| true;
        assert_eq!(gate.admit("cams/a", "h2", rolling, &[]), Admission::Go);
        assert_eq!(gate.admit("cams/a", "h3", rolling, &[]), Admission::Go);
    }

    #[test]
    fn rollouts_seen_in_deployments_count_after_an_operator_restart() {
        let gate = RolloutGate::new(1);
        let visible = vec!["cams/x".to_string()];
        assert!(matches!(
            gate.admit("cams/a", "h2", |_, _| true, &visible),
            Admission::Wait(_)
        ));
    }

    #[test]
    fn a_deployment_is_rolling_until_its_controller_caught_up() {
        use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
        let mut d = Deployment {
            spec: DeploymentSpec {
                replicas: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        d.metadata.generation = Some(2);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            updated_replicas: Some(1),
            ..Default::default()
        });
        assert!(deployment_rolling(&d));
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            updated_replicas: Some(1),
            ..Default::default()
        });
        assert!(!deployment_rolling(&d));
    }
}
