//! What every reconcile gets: the API client, the watch caches, the event publisher, metrics,
//! the operator's settings and the rollout gate. Kept beside the controller wiring, not in it,
//! so that reconcilers and the wiring both depend on this module and not on each other.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    LocalObjectReference, PersistentVolumeClaim, Pod, ResourceRequirements, Service,
};
use kube::runtime::reflector::Store;
use kube::Client;
use serde::Deserialize;

use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::events::EventPublisher;
use crate::metrics::Metrics;
use crate::observe::Observations;
use crate::rollout::RolloutGate;

/// Operator-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker image for Cameras that name none.
    pub worker_image: String,
    /// Pod settings every worker gets unless its Camera says otherwise.
    pub worker_defaults: WorkerDefaults,
    /// At most this many cameras restart at once for changes not in their own spec.
    pub max_concurrent_restarts: usize,
}

/// Worker pod settings from the chart (`KAMERA_WORKER_DEFAULTS`, one JSON object).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerDefaults {
    /// Resources of the worker container when the Camera sets none.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Pull secrets of every worker pod (processors' own are added).
    #[serde(default)]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Priority class of every worker pod.
    #[serde(default)]
    pub priority_class_name: Option<String>,
}

/// The watch caches a reconcile reads. A reconcile runs only once every one of them has been
/// filled by its first complete list: deciding from a half-filled cache (no processors yet, no
/// Deployment yet) would rewrite, and restart, running cameras.
#[derive(Clone)]
pub struct Stores {
    /// All Cameras in scope.
    pub cameras: Store<Camera>,
    /// All FrameProcessors in scope.
    pub processors: Store<FrameProcessor>,
    /// Deployments labelled with a camera.
    pub deployments: Store<Deployment>,
    /// Pool Deployments (labelled with a processor).
    pub pools: Store<Deployment>,
    /// Services labelled with a camera.
    pub services: Store<Service>,
    /// PersistentVolumeClaims labelled with a camera.
    pub claims: Store<PersistentVolumeClaim>,
    /// Worker pods (labelled with a camera).
    pub pods: Store<Pod>,
}

/// The caches were not filled in time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the watch caches were not filled within {0:?}")]
pub struct NotReady(pub Duration);

impl Stores {
    /// Waits until every cache has been filled once.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), NotReady> {
        let all = async {
            let _ = futures::join!(
                self.cameras.wait_until_ready(),
                self.processors.wait_until_ready(),
                self.deployments.wait_until_ready(),
                self.pools.wait_until_ready(),
                self.services.wait_until_ready(),
                self.claims.wait_until_ready(),
                self.pods.wait_until_ready(),
            );
        };
        tokio::time::timeout(within, all)
            .await
            .map_err(|_| NotReady(within))
    }
}

/// What every reconcile gets.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Publishes Kubernetes Events (best-effort, rate-limited).
    pub events: EventPublisher,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// The watch caches.
    pub stores: Stores,
    /// Operator settings.
    pub settings: Settings,
    /// The newest word from every camera's worker.
    pub observations: std::sync::Arc<Observations>,
    /// Throttles worker pod restarts the user did not ask for.
    pub rollouts: std::sync::Arc<RolloutGate>,
}
