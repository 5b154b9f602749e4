//! The worker Deployment: one pod with the worker and one sidecar per attached FrameProcessor in
//! `sidecar` mode, sharing `/var/run/kamera` (frame socket + frames), recordings on the claim at
//! `/data`. A processor in `pool` mode adds only its address and its token's mount to the worker.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::context::WorkerDefaults;
use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessorSpec;
use crate::reconcile::build_pool::token_volume;
use crate::reconcile::names::{
    http_port_name, HTTP_TLS_DIR, HTTP_TLS_VOLUME, TLS_CERT_KEY, TLS_KEY_KEY,
};
use crate::reconcile::names::{
    http_tokens_secret_name, labels, processor_container_name, publish_key_secret_name, pvc_name,
    selector_labels, workload_name, CONFIG_HASH_ANNOTATION, DATA_DIR, FRAMES_DIR, FRAME_SOCKET,
    HTTP_PORT, HTTP_TOKENS_DIR, HTTP_TOKENS_FILE, PUBLISH_KEY_DIR, RTMP_PORT, SHARED_DIR,
    WORKER_CONTAINER,
};
use crate::reconcile::names::{pool_token_volume_name, POOL_TOKENS_DIR};
use crate::reconcile::names::{RTSP_CREDENTIALS_DIR, RTSP_CREDENTIALS_VOLUME};
use crate::reconcile::overrides::{apply_overrides, OverrideError};
use crate::reconcile::resolve::ResolvedProcessor;
use crate::reconcile::schedule::PodScheduling;
use crate::reconcile::worker_args::{pool_args, pull_args, worker_args, worker_command};
use crate::reconcile::{owner_references, CameraRef};

/// The user and group every container runs as (the distroless "nonroot" user).
pub const RUN_AS: i64 = 65532;

/// Everything the worker pod is built from.
#[derive(Debug, Clone, Copy)]
pub struct WorkerPod<'a> {
    /// The Camera.
    pub camera: &'a Camera,
    /// Its name and namespace.
    pub at: &'a CameraRef,
    /// Worker image (the Camera's own or the operator's default).
    pub image: &'a str,
    /// Attached processors (sidecars and pools), sorted by name.
    pub processors: &'a [ResolvedProcessor],
    /// Merged scheduling constraints.
    pub scheduling: &'a PodScheduling,
    /// The publish key, when the Camera references one; only its hash reaches the pod.
    pub publish_key: Option<&'a str>,
    /// Pod settings from the operator's configuration.
    pub defaults: &'a WorkerDefaults,
}

/// The Deployment, with a config hash on the pod template that changes whenever anything the pod
/// depends on changes (including the publish key, whose Secret mount alone would not roll it).
/// Fails only when the Camera's `podOverrides` do not make a valid pod template.
pub fn build_deployment(pod: &WorkerPod<'_>) -> Result<Deployment, OverrideError> {
    let camera = pod.camera;
    let mut template = pod_template(pod);
    if let Some(overrides) = &camera.spec.worker.pod_overrides {
        template = apply_overrides(&template, overrides)?;
    }
    let hash = config_hash(&template, pod.publish_key);
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_HASH_ANNOTATION.to_string(), hash);
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(workload_name(&pod.at.name)),
            namespace: Some(pod.at.namespace.clone()),
            labels: Some(labels(&pod.at.name)),
            owner_references: Some(owner_references(camera)),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(if camera.spec.suspend { 0 } else { 1 }),
            // One RTMP owner per camera and a ReadWriteOnce volume: never two pods at once.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&pod.at.name)),
                match_expressions: None,
            },
            template,
            ..Default::default()
        },
        status: None,
    })
}

/// The config hash a Deployment's pod template carries.
pub fn deployment_config_hash(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

fn config_hash(template: &PodTemplateSpec, publish_key: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(template).unwrap_or_default());
    if let Some(key) = publish_key {
        hasher.update(b"\0publish-key\0");
        hasher.update(key.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn pod_template(pod: &WorkerPod<'_>) -> PodTemplateSpec {
    let mut containers = vec![worker_container(pod)];
    containers.extend(sidecars(pod).map(|p| processor_container(&pod.at.name, p)));
    let mut annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), HTTP_PORT.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ]);
    if tls_secret(pod).is_some() {
        // Only then: a new annotation on every pod would restart every camera at an upgrade.
        annotations.insert("prometheus.io/scheme".to_string(), "https".to_string());
    }
    let node_selector = &pod.scheduling.node_selector;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&pod.at.name)),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers,
            volumes: Some(volumes(pod)),
            node_selector: (!node_selector.is_empty()).then(|| node_selector.clone()),
            tolerations: (!pod.scheduling.tolerations.is_empty())
                .then(|| pod.scheduling.tolerations.clone()),
            runtime_class_name: pod.scheduling.runtime_class_name.clone(),
            image_pull_secrets: pull_secrets(pod),
            priority_class_name: pod.defaults.priority_class_name.clone(),
            security_context: Some(pod_security()),
            // The worker finishes its recording fragment and tells processors on SIGTERM.
            termination_grace_period_seconds: Some(30),
            enable_service_links: Some(false),
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
    }
}

fn sidecars<'a>(pod: &WorkerPod<'a>) -> impl Iterator<Item = &'a ResolvedProcessor> {
    pod.processors.iter().filter(|p| !p.is_pool())
}

/// Names of the pool processors, sorted (as `processors` is).
fn pools<'a>(pod: &WorkerPod<'a>) -> Vec<&'a str> {
    pod.processors
        .iter()
        .filter(|p| p.is_pool())
        .map(|p| p.name.as_str())
        .collect()
}

fn worker_container(pod: &WorkerPod<'_>) -> Container {
    let mut mounts = vec![
        mount("shared", SHARED_DIR, false),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    if pod.publish_key.is_some() {
        mounts.push(mount("publish-key", PUBLISH_KEY_DIR, true));
    }
    if pod.camera.spec.http.tokens_secret_ref.is_some() {
        // A whole-Secret mount (no subPath), so the kubelet swaps in rotated tokens and the
        // worker picks them up without a restart.
        mounts.push(mount("http-tokens", HTTP_TOKENS_DIR, true));
    }
    let pools = pools(pod);
    for pool in &pools {
        mounts.push(mount(
            &pool_token_volume_name(pool),
            &format!("{POOL_TOKENS_DIR}/{pool}"),
            true,
        ));
    }
    if rtsp_credentials(pod).is_some() {
        // The user's Secret itself, whole-volume (no subPath): the kubelet swaps in rotated
        // credentials and the worker reads them at its next connection attempt, no restart.
        mounts.push(mount(
            RTSP_CREDENTIALS_VOLUME,
            &format!("{RTSP_CREDENTIALS_DIR}/{}", pod.at.name),
            true,
        ));
    }
    if tls_secret(pod).is_some() {
        // Whole-volume too: cert-manager's renewals reach the worker, which re-reads the files.
        mounts.push(mount(HTTP_TLS_VOLUME, HTTP_TLS_DIR, true));
    }
    let mut args = worker_args(&pod.at.name, &pod.camera.spec, pod.publish_key.is_some());
    args.extend(pull_args(&pod.at.name, &pod.camera.spec));
    args.extend(pool_args(&pools, &pod.at.namespace));
    let https = tls_secret(pod).is_some();
    Container {
        name: WORKER_CONTAINER.into(),
        image: Some(pod.image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(worker_command()),
        args: Some(args),
        ports: Some(vec![
            port("rtmp", RTMP_PORT),
            port(http_port_name(https), HTTP_PORT),
        ]),
        readiness_probe: Some(http_probe("/readyz", 5, 3, https)),
        liveness_probe: Some(http_probe("/healthz", 10, 6, https)),
        resources: pod
            .camera
            .spec
            .worker
            .resources
            .clone()
            .or_else(|| pod.defaults.resources.clone()),
        security_context: Some(restricted(true)),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn processor_container(camera: &str, processor: &ResolvedProcessor) -> Container {
    let spec = &processor.spec;
    let env = processor_env(
        spec,
        [
            env_var("KAMERA_SOCKET", FRAME_SOCKET),
            env_var("KAMERA_CAMERA", camera),
            env_var("KAMERA_PROCESSOR", &processor.name),
            env_var("KAMERA_FRAMES_DIR", FRAMES_DIR),
            env_var("KAMERA_FPS", &processor.fps.to_string()),
            env_var("KAMERA_MAX_IN_FLIGHT", &spec.max_in_flight.to_string()),
        ],
    );
    Container {
        name: processor_container_name(&processor.name),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(env),
        resources: processor_resources(spec),
        // Processor images (Python, model caches) often write to their filesystem.
        security_context: Some(restricted(false)),
        // Read-only: a processor reads frames and talks over the socket (connecting to a socket
        // needs no write access to its filesystem); it cannot fill the worker's volume.
        volume_mounts: Some(
            std::iter::once(mount("shared", SHARED_DIR, true))
                .chain(spec.volume_mounts.iter().cloned())
                .collect(),
        ),
        ..Default::default()
    }
}

/// The user's environment without `KAMERA_*`, then the operator's variables (last, so they win
/// over a user's entry of the same name).
pub(crate) fn processor_env(
    spec: &FrameProcessorSpec,
    operator: impl IntoIterator<Item = EnvVar>,
) -> Vec<EnvVar> {
    let mut env = spec.env.clone();
    env.retain(|e| !e.name.starts_with("KAMERA_"));
    env.extend(operator);
    env
}

/// The processor's own resources plus its GPUs as a limit (extended resources are limits only).
pub(crate) fn processor_resources(spec: &FrameProcessorSpec) -> Option<ResourceRequirements> {
    let mut resources = spec.resources.clone();
    if let Some(gpu) = &spec.gpu {
        let r = resources.get_or_insert_with(ResourceRequirements::default);
        r.limits
            .get_or_insert_with(BTreeMap::new)
            .insert(gpu.resource_name.clone(), Quantity(gpu.count.to_string()));
    }
    resources
}

fn volumes(pod: &WorkerPod<'_>) -> Vec<Volume> {
    let data = if pod.camera.spec.recording.enabled {
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(&pod.at.name),
                read_only: None,
            }),
            ..Default::default()
        }
    } else {
        empty_dir("data", None)
    };
    let mut volumes = vec![
        empty_dir("shared", Some("1Gi")),
        data,
        empty_dir("tmp", Some("256Mi")),
    ];
    // Processors' own volumes (model caches, configuration), each once: `schedule` refused
    // two different volumes of one name.
    for volume in sidecars(pod).flat_map(|p| &p.spec.volumes) {
        if !volumes.iter().any(|v| v.name == volume.name) {
            volumes.push(volume.clone());
        }
    }
    if pod.camera.spec.http.tokens_secret_ref.is_some() {
        volumes.push(Volume {
            name: "http-tokens".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(http_tokens_secret_name(&pod.at.name)),
                default_mode: Some(0o440),
                items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                    key: HTTP_TOKENS_FILE.into(),
                    path: HTTP_TOKENS_FILE.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    for pool in pools(pod) {
        volumes.push(token_volume(&pool_token_volume_name(pool), pool));
    }
    if let Some(secret) = rtsp_credentials(pod) {
        volumes.push(user_secret_volume(
            RTSP_CREDENTIALS_VOLUME,
            secret,
            &["username", "password"],
        ));
    }
    if let Some(secret) = tls_secret(pod) {
        volumes.push(user_secret_volume(
            HTTP_TLS_VOLUME,
            secret,
            &[TLS_CERT_KEY, TLS_KEY_KEY],
        ));
    }
    if pod.publish_key.is_some() {
        volumes.push(Volume {
            name: "publish-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(publish_key_secret_name(&pod.at.name)),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

/// The name of the Secret with the RTSP camera's credentials, if the camera names one.
fn rtsp_credentials<'a>(pod: &WorkerPod<'a>) -> Option<&'a str> {
    let rtsp = pod.camera.spec.rtsp()?;
    rtsp.credentials_secret_ref
        .as_ref()
        .map(|r| r.name.as_str())
}

/// The name of the Camera's `kubernetes.io/tls` Secret, when it serves HTTPS.
fn tls_secret<'a>(pod: &WorkerPod<'a>) -> Option<&'a str> {
    let tls = pod.camera.spec.http.tls.as_ref()?;
    Some(tls.secret_ref.name.as_str())
}

/// A user's Secret (RTSP credentials, TLS certificate), its `keys` only, readable by the pod's
/// group alone. Only its name reaches the pod template, so new content (a rotated password, a
/// renewed certificate) never restarts the pod: the worker re-reads the files. Optional: the
/// reconcile holds a camera whose Secret is missing before it builds anything, and a Secret
/// deleted later must not keep a restarted worker from being scheduled (it then reports the
/// problem, and the Camera says the Secret is missing).
fn user_secret_volume(volume: &str, secret: &str, keys: &[&str]) -> Volume {
    let item = |key: &&str| k8s_openapi::api::core::v1::KeyToPath {
        key: (*key).into(),
        path: (*key).into(),
        ..Default::default()
    };
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            default_mode: Some(0o440),
            items: Some(keys.iter().map(item).collect()),
            optional: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator's default pull secrets and every processor's, each once.
fn pull_secrets(
    pod: &WorkerPod<'_>,
) -> Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>> {
    let mut all = pod.defaults.image_pull_secrets.clone();
    for secret in sidecars(pod).flat_map(|p| &p.spec.image_pull_secrets) {
        if !all.contains(secret) {
            all.push(secret.clone());
        }
    }
    (!all.is_empty()).then_some(all)
}

fn empty_dir(name: &str, size_limit: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            mode: None,
            size_limit: size_limit.map(|s| Quantity(s.into())),
        }),
        ..Default::default()
    }
}

pub(crate) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

pub(crate) fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub(crate) fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// A probe of the worker's HTTP port; `https` when it serves TLS (the kubelet does not verify
/// the certificate of an HTTPS probe).
fn http_probe(path: &str, period: i32, failures: i32, https: bool) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(http_port_name(https).into()),
            scheme: https.then(|| "HTTPS".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// The pod security context of every pod the operator makes: non-root, runtime-default seccomp.
pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        // A large recordings volume is not re-chowned file by file at every start.
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

pub(crate) fn restricted(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: read_only_root.then_some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "build_deployment_tests.rs"]
mod tests;
