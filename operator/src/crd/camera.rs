//! The `Camera` resource: one ingest (RTMP push, or an RTSP camera pulled) with LL-HLS,
//! recording and frames, run as one worker pod.
//!
//! Field names and validation here are a public contract (CRD `cameras.kamera.dev`); the
//! reconciler turns a spec into the worker's flags in `reconcile::worker_args`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{DURATION_PATTERN, SIZE_PATTERN};

/// A camera: publishers push RTMP to it (or the worker pulls RTSP); viewers get LL-HLS;
/// recordings and frames for processors.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kamera.dev",
    version = "v1alpha1",
    kind = "Camera",
    namespaced,
    shortname = "cam",
    category = "kamera",
    status = "CameraStatus",
    doc = "A camera: RTMP push or RTSP pull ingest, LL-HLS live view, recording and frames for processors, run as one worker pod.",
    printcolumn(name = "Live", type_ = "boolean", json_path = ".status.live"),
    printcolumn(name = "Resolution", type_ = "string", json_path = ".status.resolution"),
    printcolumn(name = "FPS", type_ = "number", json_path = ".status.fps"),
    printcolumn(name = "Processors", type_ = "string", json_path = ".status.processorSummary"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Bitrate", type_ = "integer", json_path = ".status.bitrate", priority = 1, description = "Bits per second the publisher sends"),
    printcolumn(name = "Ingest URL", type_ = "string", json_path = ".status.ingestUrl", priority = 1, description = "Where the video comes in: the RTMP URL to publish to, or the RTSP URL the worker pulls"),
    validation = Rule::new("size(self.metadata.name) <= 58 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("a Camera's name must be a DNS-1035 label (lower case letters, digits, '-', starting with a letter, at most 58 characters): it names its Services (`<camera>`, `<camera>-http`) and its stream")
        .field_path(".metadata.name")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.service) || !has(self.ingest) || !has(self.ingest.service)")
    .message("service is the deprecated name of ingest.service: set only ingest.service")
    .field_path(".service")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.source) || !has(self.source.rtsp) || ((!has(self.ingest) || (!has(self.ingest.streamKeySecretRef) && !has(self.ingest.service))) && !has(self.service))")
    .message("a camera that pulls RTSP (source.rtsp) takes no RTMP publishers: remove ingest.streamKeySecretRef, ingest.service and service")
    .field_path(".source.rtsp")
    .reason(Reason::FieldValueForbidden))]
pub struct CameraSpec {
    /// Where the video comes from: unset, publishers push RTMP to the camera; `rtsp`, the
    /// worker pulls an RTSP camera (and refuses RTMP publishers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// How publishers connect.
    #[serde(default)]
    pub ingest: IngestSpec,
    /// The worker's HTTP side: LL-HLS, frames, recordings, API and metrics.
    #[serde(default)]
    pub http: HttpSpec,
    /// LL-HLS live view.
    #[serde(default)]
    pub hls: HlsSpec,
    /// Recording to a PersistentVolumeClaim.
    #[serde(default)]
    pub recording: RecordingSpec,
    /// Frames extracted for processors.
    #[serde(default)]
    pub frames: FramesSpec,
    /// Deprecated: use `ingest.service`. Read as `ingest.service` (RTMP only: HTTP is no longer
    /// exposed through it) when `ingest.service` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    /// The worker pod.
    #[serde(default)]
    pub worker: WorkerSpec,
    /// Scale the worker to zero while keeping recordings and the Service.
    #[serde(default)]
    pub suspend: bool,
}

/// Where a camera's video comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    /// Pull this RTSP camera (reconnecting with backoff while it fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<RtspSource>,
}

/// The longest RTSP URL accepted.
pub const MAX_RTSP_URL: usize = 2048;

/// An RTSP camera the worker pulls.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtspSource {
    /// The camera's stream, `rtsp://host[:port]/path`, without credentials (they go in
    /// `credentialsSecretRef`). `rtsps://` is not supported yet.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(
        validation = Rule::new("!self.startsWith('rtsps://')")
            .message("rtsps:// (RTSP over TLS) is not supported yet: use rtsp:// (inside a trusted network or a VPN)")
            .reason(Reason::FieldValueForbidden),
        validation = Rule::new("self.startsWith('rtsps://') || self.matches('^rtsp://[^/?#@]+([/?]|$)') || self.matches('^rtsp://[^/?#]*@')")
            .message("url must be rtsp://host[:port]/path, e.g. rtsp://10.0.0.7/stream1")
            .reason(Reason::FieldValueInvalid),
        validation = Rule::new("!self.matches('^rtsps?://[^/?#]*@')")
            .message("url must not carry credentials (user:password@host): put them in a kubernetes.io/basic-auth Secret (keys username, password) and name it in credentialsSecretRef")
            .reason(Reason::FieldValueForbidden),
        validation = Rule::new("!self.matches('[[:space:],]')")
            .message("url must not contain whitespace or commas (write a comma as %2C)")
            .reason(Reason::FieldValueInvalid),
    )]
    pub url: String,
    /// A Secret of type `kubernetes.io/basic-auth` (keys `username` and `password`) with the
    /// camera's credentials. It is mounted into the worker container only and read at every
    /// connection attempt, so rotating it needs no restart. Without it the camera is pulled
    /// without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
    /// How RTP reaches the worker: `tcp` (interleaved on the RTSP connection; works through NAT
    /// and firewalls) or `udp` (LAN only; lost packets are not retransmitted).
    #[serde(default)]
    pub transport: RtspTransport,
}

/// A Secret holding a user name and a password (`kubernetes.io/basic-auth`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in the Camera's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// How RTP travels from an RTSP camera to the worker.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved on the RTSP TCP connection.
    #[default]
    Tcp,
    /// Separate UDP ports.
    Udp,
}

impl RtspTransport {
    /// The worker's name for it (`--pull-transport`).
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// How publishers connect.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestSpec {
    /// A Secret key holding the publish key; publishers then use
    /// `rtmp://<service>:1935/live/<camera>?key=<key>`. Without it any publisher is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key_secret_ref: Option<SecretKeyRef>,
    /// The RTMP Service `<camera>` (port 1935 only): `ClusterIP` by default; `LoadBalancer` or
    /// `NodePort` to let cameras outside the cluster publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ExposureSpec>,
}

/// The worker's HTTP side.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.service) || self.service.type == 'ClusterIP' || has(self.tokensSecretRef)")
    .message("exposing HTTP outside the cluster (live video, recordings, frames, API) needs viewer tokens: set http.tokensSecretRef")
    .field_path(".tokensSecretRef")
    .reason(Reason::FieldValueRequired))]
pub struct HttpSpec {
    /// A Secret key holding the worker's viewer tokens file (one `<token> <scope>...` per line;
    /// scopes `live:<camera>`, `live:*`, `recordings`, `api`). With it every LL-HLS, frame,
    /// recording and API request needs a token; rotation is picked up without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_secret_ref: Option<TokensSecretRef>,
    /// The HTTP Service `<camera>-http` (port 8080): `ClusterIP` unless set here. Prometheus
    /// scrapes the pod itself, so metrics stay reachable inside the cluster either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ExposureSpec>,
    /// HTTPS on port 8080 (HTTP/2 and HTTP/1.1), which Apple's players expect for LL-HLS. The
    /// worker then speaks only HTTPS there: probes, the operator and Prometheus use `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HttpTlsSpec>,
}

/// The worker's certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTlsSpec {
    /// A `kubernetes.io/tls` Secret in the Camera's namespace with `tls.crt` (PEM chain, leaf
    /// first) and `tls.key` (PEM PKCS#8, RSA or EC key), e.g. one cert-manager keeps renewed.
    /// It is mounted as it is (never copied); a renewed certificate is served without a restart.
    pub secret_ref: CredentialsSecretRef,
}

/// A Secret key holding a tokens file.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokensSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_tokens_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_tokens_key() -> String {
    "tokens".to_string()
}

/// How one Service of the camera is exposed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.nodePort) || self.type != 'ClusterIP'")
    .message("nodePort needs type NodePort or LoadBalancer")
    .field_path(".nodePort")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("(!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || self.type == 'LoadBalancer') && (!has(self.loadBalancerClass) || self.type == 'LoadBalancer')")
    .message("loadBalancerSourceRanges and loadBalancerClass need type LoadBalancer")
    .field_path(".type")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'")
    .message("externalTrafficPolicy needs type NodePort or LoadBalancer")
    .field_path(".externalTrafficPolicy")
    .reason(Reason::FieldValueForbidden))]
pub struct ExposureSpec {
    /// `ClusterIP` (inside the cluster only), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations for the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Client CIDRs allowed through the load balancer, e.g. `203.0.113.0/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub load_balancer_source_ranges: Vec<String>,
    /// The load balancer implementation, e.g. `service.k8s.aws/nlb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub load_balancer_class: Option<String>,
    /// `Cluster` or `Local` (keeps the client address, only nodes running the worker answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// Fixed node port (NodePort and LoadBalancer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

/// Where external traffic may land.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum TrafficPolicy {
    /// Any node forwards to the worker.
    #[default]
    Cluster,
    /// Only the node running the worker answers; the client's address is kept.
    Local,
}

impl TrafficPolicy {
    /// The name Kubernetes uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        }
    }
}

impl CameraSpec {
    /// How the RTMP Service is exposed: `ingest.service`, else the deprecated `service`.
    pub fn ingest_exposure(&self) -> ExposureSpec {
        if let Some(exposure) = &self.ingest.service {
            return exposure.clone();
        }
        match &self.service {
            Some(legacy) => ExposureSpec {
                type_: legacy.type_,
                annotations: legacy.annotations.clone(),
                node_port: legacy.rtmp_node_port,
                ..Default::default()
            },
            None => ExposureSpec::default(),
        }
    }

    /// How the HTTP Service is exposed (`ClusterIP` unless asked).
    pub fn http_exposure(&self) -> ExposureSpec {
        self.http.service.clone().unwrap_or_default()
    }

    /// The RTSP camera the worker pulls, if the camera has one.
    pub fn rtsp(&self) -> Option<&RtspSource> {
        self.source.as_ref().and_then(|s| s.rtsp.as_ref())
    }
}

/// A key in a Secret of the Camera's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_stream_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_stream_key() -> String {
    "streamKey".to_string()
}

/// LL-HLS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HlsSpec {
    /// Part duration (`#EXT-X-PART-TARGET`), e.g. `200ms`.
    #[serde(default = "default_part_duration")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub part_duration: String,
    /// The longest a segment may get, e.g. `5s`; `#EXT-X-TARGETDURATION` comes from it and
    /// stays fixed for the stream's life. Segments end on the first keyframe after 1 s, and a
    /// camera whose keyframes come further apart is cut here anyway (the segment after such a
    /// cut starts without a keyframe). Set it above the camera's keyframe interval, e.g. `5s`
    /// for a 4 s GOP. Unset: the worker's default, `2s`. Longer than `partDuration`, at most
    /// `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_segment_duration: Option<String>,
}

impl Default for HlsSpec {
    fn default() -> Self {
        Self {
            part_duration: default_part_duration(),
            max_segment_duration: None,
        }
    }
}

fn default_part_duration() -> String {
    "200ms".to_string()
}

/// Recording settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordingSpec {
    /// Record to disk (fragmented MP4 files).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Length of each recording file, e.g. `5m`.
    #[serde(default = "default_segment_duration")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub segment_duration: String,
    /// When old recordings are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// The PersistentVolumeClaim recordings are written to.
    #[serde(default)]
    pub storage: StorageSpec,
}

impl Default for RecordingSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            segment_duration: default_segment_duration(),
            retention: None,
            storage: StorageSpec::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_segment_duration() -> String {
    "5m".to_string()
}

/// Retention of recordings, by age and by total size (both may be set).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.maxAge) || has(self.maxSize)")
    .message("retention needs maxAge, maxSize or both")
    .reason(Reason::FieldValueRequired))]
pub struct RetentionSpec {
    /// Delete recordings older than this, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_age: Option<String>,
    /// Delete the oldest recordings while the camera's total exceeds this, e.g. `80Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub max_size: Option<String>,
}

/// The recordings volume.
///
/// A bound claim keeps its class and cannot shrink, so the CRD refuses those updates up front
/// (transition rules: they compare with the stored object and do not run on create).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)")
        .message("storageClassName cannot be set, changed or removed after the Camera is created: the recordings claim keeps its class (to move recordings to another class, create a new Camera)")
        .field_path(".storageClassName")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0")
        .message("size may grow but never shrink: a PersistentVolumeClaim cannot be made smaller")
        .field_path(".size")
        .reason(Reason::FieldValueForbidden),
)]
pub struct StorageSpec {
    /// Requested size of the PersistentVolumeClaim, e.g. `100Gi`. It may grow (when the
    /// StorageClass allows volume expansion) but never shrink.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = SIZE_PATTERN), length(max = 32))]
    pub size: String,
    /// StorageClass of the claim; the cluster's default when unset. Fixed once the Camera exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the claim (and the recordings) when the Camera is deleted: on by default, because
    /// the footage is what matters most. Set `false` to delete recordings with their Camera.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retain_on_delete: true,
        }
    }
}

fn default_storage_size() -> String {
    "10Gi".to_string()
}

/// Frames extracted for processors.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FramesSpec {
    /// Frames per second: any positive rate up to 120, e.g. `0.5`, `1` or `5`.
    // A rule rather than `minimum`: the server's message for a minimum of 0.001 reads as if 0
    // were allowed.
    #[serde(default = "default_fps")]
    #[schemars(range(max = 120.0))]
    #[x_kube(validation = Rule::new("self > 0.0")
        .message("fps must be greater than 0 (e.g. 0.5, 1 or 5)")
        .reason(Reason::FieldValueInvalid))]
    pub fps: f64,
    /// JPEG quality, 1-100.
    #[serde(default = "default_quality")]
    #[schemars(range(min = 1, max = 100))]
    pub quality: u8,
    /// Scale frames down to at most this width (pixels), keeping the aspect ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 16384))]
    pub max_width: Option<u32>,
    /// On a camera whose keyframe interval is longer than `1/fps`: `exact` decodes the frames
    /// in between to keep `fps`; `keyframes` decodes keyframes only, at the rate the keyframe
    /// interval allows, for a fraction of the CPU.
    #[serde(default, skip_serializing_if = "is_exact")]
    pub sampling: FrameSampling,
}

/// How frames are sampled on a long keyframe interval (the worker's `--frame-sampling`).
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum FrameSampling {
    /// Keep the configured rate.
    #[default]
    Exact,
    /// Keyframes only.
    Keyframes,
}

fn is_exact(s: &FrameSampling) -> bool {
    *s == FrameSampling::Exact
}

impl Default for FramesSpec {
    fn default() -> Self {
        Self {
            fps: default_fps(),
            quality: default_quality(),
            max_width: None,
            sampling: FrameSampling::Exact,
        }
    }
}

fn default_fps() -> f64 {
    1.0
}

fn default_quality() -> u8 {
    80
}

/// Kind of Service in front of the worker.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The name Kubernetes uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The worker's Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.rtmpNodePort) || self.type != 'ClusterIP'")
    .message("rtmpNodePort needs type NodePort or LoadBalancer")
    .field_path(".rtmpNodePort")
    .reason(Reason::FieldValueForbidden))]
pub struct ServiceSpec {
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations for the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fixed node port for RTMP (NodePort and LoadBalancer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub rtmp_node_port: Option<i32>,
}

/// The worker pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerSpec {
    /// Worker image; the operator's default (`--worker-image`) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector of the pod (processors' GPU selectors are merged in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pod (processors' GPU tolerations are added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// A partial PodTemplateSpec (`metadata` and `spec`) merged over the worker pod the operator
    /// builds, for what the fields above do not cover (e.g. a securityContext, an extra sidecar,
    /// a priorityClassName). Objects merge key by key; lists of named items (`containers`,
    /// `volumes`, `env`, `volumeMounts`, `ports`) merge by `name`, so an entry named like a
    /// generated one changes only the keys it sets and a new name is appended; every other list
    /// replaces the generated one. The result must still be a valid PodTemplateSpec. The
    /// worker's own containers and volumes can be changed this way too, at the risk of breaking
    /// the camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_overrides_schema")]
    pub pod_overrides: Option<serde_json::Value>,
}

/// Any object: the PodTemplateSpec schema is too large to embed, and the API server checks the
/// merged pod when the operator applies it.
fn pod_overrides_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Observed state of a Camera.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CameraStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `ProcessorsReady` (and, when the worker reports them, `Ingesting`, `Recording`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the video comes in: the RTMP URL publishers push to, or, for a camera with
    /// `source.rtsp`, the RTSP URL the worker pulls (as written in the spec, without
    /// credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// Where viewers play LL-HLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    /// The FrameProcessors attached to this camera.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<AttachedProcessor>,
    /// Ready processors out of attached ones, e.g. `1/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_summary: Option<String>,
    /// Whether a publisher is connected (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<bool>,
    /// Video resolution of the live stream, e.g. `1920x1080` (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Video frame rate of the live stream (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Bits per second the publisher sends, audio and video (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<i64>,
    /// Video codec of the live stream, e.g. `avc1.640028` (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// When the current publisher connected (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The publisher's address (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// What the recorder is doing (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingStatus>,

    /// Hash of the worker pod configuration last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

/// The recorder's state, as the worker reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStatus {
    /// `idle`, `recording`, `disk_low` or `error`.
    pub state: String,
    /// The file being written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Bytes recorded since the worker started.
    #[serde(default)]
    pub bytes: i64,
    /// The last disk error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A FrameProcessor attached to a camera.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttachedProcessor {
    /// Name of the FrameProcessor.
    pub name: String,
    /// Whether it runs for this camera: its sidecar is part of the running pod (sidecar mode),
    /// or the worker is connected to its pool (pool mode).
    pub ready: bool,
    /// Why it is not ready, or what was adjusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether it is connected to the worker's frame socket, or the worker to its pool (from
    /// the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Seconds between now and the capture of the newest frame it acknowledged (from the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn pod_overrides_keep_a_partial_pod_template_as_written() {
        let yaml = r#"
apiVersion: kamera.dev/v1alpha1
kind: Camera
metadata: {name: lobby}
spec:
  worker:
    podOverrides:
      metadata: {labels: {team: video}}
      spec:
        priorityClassName: cameras
        containers:
          - name: worker
            securityContext: {readOnlyRootFilesystem: true}
"#;
        let cam: Camera = serde_saphyr::from_str(yaml).expect("a Camera");
        let overrides = cam.spec.worker.pod_overrides.expect("kept");
        assert_eq!(overrides["spec"]["priorityClassName"], "cameras");
        assert_eq!(overrides["spec"]["containers"][0]["name"], "worker");
        assert_eq!(overrides["metadata"]["labels"]["team"], "video");
    }

    #[test]
    fn pod_overrides_schema_is_an_open_object_not_the_pod_template_schema() {
        let crd = serde_json::to_value(Camera::crd()).expect("json");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["worker"]["properties"]["podOverrides"];
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
        assert!(schema.get("properties").is_none(), "{schema}");
    }
}
