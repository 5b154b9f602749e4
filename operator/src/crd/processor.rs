//! The `FrameProcessor` resource: a container that receives the frames of the Cameras it selects,
//! either as a sidecar of every selected camera's worker pod (`sidecar` mode) or as a shared pool
//! of pods that every selected camera's worker sends frames to over the network (`pool` mode).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, LocalObjectReference, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A frame processor: a sidecar of the worker of every Camera it selects, or a pool they share.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kamera.dev",
    version = "v1alpha1",
    kind = "FrameProcessor",
    namespaced,
    shortname = "fp",
    category = "kamera",
    status = "FrameProcessorStatus",
    doc = "A frame processor: a container that receives frames of the Cameras it selects, as a sidecar of their worker pods or as a pool of pods they all send frames to.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".status.mode", description = "sidecar (in every camera pod) or pool (a Deployment the cameras send frames to)"),
    printcolumn(name = "GPU", type_ = "integer", json_path = ".spec.gpu.count"),
    printcolumn(name = "Cameras", type_ = "integer", json_path = ".status.matchedCameraCount"),
    printcolumn(name = "Connected", type_ = "integer", json_path = ".status.connectedCameraCount", description = "Cameras whose worker reports this processor connected"),
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.pool.summary", description = "Ready/desired pool replicas (pool mode)"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Frames/s", type_ = "number", json_path = ".status.framesPerSecond", priority = 1, description = "Frames per second acknowledged, summed over the cameras"),
    validation = Rule::new("size(self.metadata.name) <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("a FrameProcessor's name must be a DNS-1035 label of at most 40 characters: it names a container")
        .field_path(".metadata.name")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// `in` over the mapped names, not `exists(v, v.name == m.name)`: the API server estimates a
// comparison of two strings without maxLength (volume names have none) as megabytes long, and
// a CRD whose rule may cost too much is refused.
#[x_kube(validation = Rule::new("!has(self.replicas) || (has(self.mode) ? self.mode == 'pool' : has(self.gpu))")
    .message("replicas applies to pool mode only: set mode: pool (the default when gpu is set), or remove replicas")
    .field_path(".replicas")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.volumeMounts) || (has(self.volumes) && self.volumeMounts.all(m, m.name in self.volumes.map(v, v.name)))")
    .message("every volumeMounts[].name must name one of this processor's volumes")
    .field_path(".volumeMounts")
    .reason(Reason::FieldValueInvalid))]
pub struct FrameProcessorSpec {
    /// Which Cameras of the namespace get this processor; empty selects all.
    #[serde(default)]
    pub camera_selector: LabelSelector,
    /// Where the processor runs (see [`ProcessorMode`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProcessorMode>,
    /// Pods of the pool (pool mode only); 0 stops the pool without detaching the cameras.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Container image of the processor.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables (`KAMERA_*` are set by the operator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Compute resources of the processor container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Volumes added to every pod the processor runs in (each Camera's worker pod in `sidecar`
    /// mode, each pool pod in `pool` mode), e.g. a model cache PersistentVolumeClaim or a
    /// ConfigMap. Names starting with `kamera-` or `pool-` and `shared`, `data`, `tmp`,
    /// `publish-key` are the worker pod's own.
    // maxItems (here and on volumeMounts) bounds the rules' estimated cost: without it the API
    // server assumes lists as long as a request allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(v, !v.name.startsWith('kamera-') && !v.name.startsWith('pool-') && !(v.name in ['shared', 'data', 'tmp', 'publish-key']))")
        .message("volume names starting with 'kamera-' or 'pool-' and the names shared, data, tmp and publish-key are reserved by the worker pod")
        .reason(Reason::FieldValueForbidden))]
    pub volumes: Vec<Volume>,
    /// Where the processor container mounts its `volumes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub volume_mounts: Vec<VolumeMount>,
    /// Secrets for pulling the processor's image, added to the pod's `imagePullSecrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Frames per second this processor wants (any positive rate up to 120); capped at the
    /// camera's rate.
    // A rule rather than `minimum`: the server's message for a minimum of 0.001 reads as if 0
    // were allowed.
    #[serde(default = "default_fps")]
    #[schemars(range(max = 120.0))]
    #[x_kube(validation = Rule::new("self > 0.0")
        .message("fps must be greater than 0 (e.g. 0.5, 1 or 5)")
        .reason(Reason::FieldValueInvalid))]
    pub fps: f64,
    /// Frames in flight (sent, not yet acknowledged) per camera; newer frames replace a pending one.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1, max = 64))]
    pub max_in_flight: u32,
    /// GPU needs; the pod the processor runs in (the pool's pods in `pool` mode, every selected
    /// camera's worker pod in `sidecar` mode) is scheduled onto a GPU node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
}

impl FrameProcessorSpec {
    /// The mode the processor runs in: the one set, else `pool` with a GPU and `sidecar` without.
    pub fn effective_mode(&self) -> ProcessorMode {
        self.mode.unwrap_or(if self.gpu.is_some() {
            ProcessorMode::Pool
        } else {
            ProcessorMode::Sidecar
        })
    }

    /// Pods of the pool (1 unless set).
    pub fn pool_replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// Where a processor runs: `sidecar` (a container in every selected camera's worker pod, frames
/// over a shared volume and a Unix socket) or `pool` (a Deployment and Service of processor pods
/// that every selected camera's worker sends frames to over the network). Default: `pool` when
/// `gpu` is set, else `sidecar`.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "camelCase")]
pub enum ProcessorMode {
    /// A container in every selected camera's worker pod (shared volume + Unix socket).
    #[default]
    Sidecar,
    /// A Deployment and Service of processor pods shared by the selected cameras (network
    /// transport of the frame protocol).
    Pool,
}

impl ProcessorMode {
    /// The name the spec and status use.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorMode::Sidecar => "sidecar",
            ProcessorMode::Pool => "pool",
        }
    }
}

fn default_fps() -> f64 {
    1.0
}

fn default_max_in_flight() -> u32 {
    1
}

/// GPU scheduling of a processor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuSpec {
    /// Number of GPUs.
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 1, max = 64))]
    pub count: u32,
    /// Extended resource name of the device plugin.
    #[serde(default = "default_gpu_resource")]
    #[schemars(regex(
        pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"
    ))]
    pub resource_name: String,
    /// Node labels the pod needs (merged into the pod's node selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for GPU node taints (added to the pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// RuntimeClass for the pod, e.g. `nvidia`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

impl Default for GpuSpec {
    fn default() -> Self {
        Self {
            count: default_gpu_count(),
            resource_name: default_gpu_resource(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            runtime_class_name: None,
        }
    }
}

fn default_gpu_count() -> u32 {
    1
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".to_string()
}

/// Observed state of a FrameProcessor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrameProcessorStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Names of the Cameras this processor selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched_cameras: Vec<String>,
    /// Number of selected Cameras.
    #[serde(default)]
    pub matched_camera_count: i32,
    /// Number of selected Cameras whose worker reports this processor connected.
    #[serde(default)]
    pub connected_camera_count: i32,
    /// The mode the processor runs in (`spec.mode`, or its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProcessorMode>,
    /// Names of the selected Cameras whose worker reports this processor connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected_cameras: Vec<String>,
    /// Frames per second the processor acknowledges, summed over its cameras (from the workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_per_second: Option<f64>,
    /// The latest error a camera's worker reports for this processor, with the camera's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The pool's Deployment (pool mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The pool's Deployment, as its status reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Desired pods.
    #[serde(default)]
    pub replicas: i32,
    /// Pods ready to receive frames.
    #[serde(default)]
    pub ready_replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default)]
    pub summary: String,
}
