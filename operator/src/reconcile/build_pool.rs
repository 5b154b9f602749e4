//! The objects of a FrameProcessor in `pool` mode: a Deployment of processor pods (with the GPU
//! settings), a Service the cameras' workers dial, and the Secret with the token the pool accepts.
//! All owned by the FrameProcessor. Pure builders; nothing here touches a camera's pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::crd::processor::FrameProcessor;
use crate::reconcile::build_deployment::{
    env_var, mount, pod_security, port, processor_env, processor_resources, restricted,
};
use crate::reconcile::names::{
    pool_labels, pool_name, pool_selector_labels, pool_token_secret_name, POOL_CONTAINER,
    POOL_PORT, POOL_PORT_NAME, POOL_TOKEN_DIR, POOL_TOKEN_KEY,
};

/// The pool pod's volume with the token Secret (the `kamera-` prefix is refused in a
/// processor's own volumes, so it cannot clash with one).
const TOKEN_VOLUME: &str = "kamera-pool-token";

/// A pool FrameProcessor's name and namespace, checked once so builders need not handle their
/// absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    /// The FrameProcessor's `metadata.name`.
    pub name: String,
    /// Its namespace (`default` when a manifest has none).
    pub namespace: String,
}

impl PoolRef {
    /// The processor's name and namespace, or `None` when it has no name.
    pub fn of(processor: &FrameProcessor) -> Option<PoolRef> {
        Some(PoolRef {
            name: processor.metadata.name.clone()?,
            namespace: processor
                .namespace()
                .unwrap_or_else(|| "default".to_string()),
        })
    }
}

fn meta(processor: &FrameProcessor, at: &PoolRef, name: String) -> ObjectMeta {
    let owner: Vec<OwnerReference> = processor.controller_owner_ref(&()).into_iter().collect();
    ObjectMeta {
        name: Some(name),
        namespace: Some(at.namespace.clone()),
        labels: Some(pool_labels(&at.name)),
        owner_references: Some(owner),
        ..Default::default()
    }
}

/// The pool's Deployment: `spec.replicas` pods of the processor image with the GPU settings, the
/// pool environment and the token, ready once they accept connections on the frames port.
pub fn build_pool_deployment(processor: &FrameProcessor, at: &PoolRef) -> Deployment {
    let spec = &processor.spec;
    let env = processor_env(
        spec,
        [
            env_var("KAMERA_POOL_LISTEN", &format!("0.0.0.0:{POOL_PORT}")),
            env_var(
                "KAMERA_POOL_TOKEN_FILE",
                &format!("{POOL_TOKEN_DIR}/{POOL_TOKEN_KEY}"),
            ),
            env_var("KAMERA_PROCESSOR", &at.name),
            env_var("KAMERA_FPS", &spec.fps.to_string()),
            env_var("KAMERA_MAX_IN_FLIGHT", &spec.max_in_flight.to_string()),
        ],
    );
    let container = Container {
        name: POOL_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(env),
        ports: Some(vec![port(POOL_PORT_NAME, POOL_PORT)]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(POOL_PORT_NAME.into()),
                host: None,
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            timeout_seconds: Some(2),
            ..Default::default()
        }),
        resources: processor_resources(spec),
        // Processor images (Python, model caches) often write to their filesystem.
        security_context: Some(restricted(false)),
        volume_mounts: Some(
            std::iter::once(mount(TOKEN_VOLUME, POOL_TOKEN_DIR, true))
                .chain(spec.volume_mounts.iter().cloned())
                .collect(),
        ),
        ..Default::default()
    };
    // A whole-Secret mount (no subPath), so the kubelet swaps in a rotated token.
    let mut volumes = vec![token_volume(TOKEN_VOLUME, &at.name)];
    volumes.extend(spec.volumes.iter().cloned());
    let gpu = spec.gpu.as_ref();
    let node_selector = gpu
        .map(|g| g.node_selector.clone())
        .filter(|s| !s.is_empty());
    let tolerations = gpu.map(|g| g.tolerations.clone()).filter(|t| !t.is_empty());
    Deployment {
        metadata: meta(processor, at, pool_name(&at.name)),
        spec: DeploymentSpec {
            replicas: Some(spec.pool_replicas()),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(pool_selector_labels(&at.name)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pool_labels(&at.name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    node_selector,
                    tolerations,
                    runtime_class_name: gpu.and_then(|g| g.runtime_class_name.clone()),
                    image_pull_secrets: (!spec.image_pull_secrets.is_empty())
                        .then(|| spec.image_pull_secrets.clone()),
                    security_context: Some(pod_security()),
                    // The SDK finishes the frames in hand (and acks them) on SIGTERM.
                    termination_grace_period_seconds: Some(30),
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// The pool's Service: the address every selected camera's worker dials.
pub fn build_pool_service(processor: &FrameProcessor, at: &PoolRef) -> Service {
    Service {
        metadata: meta(processor, at, pool_name(&at.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(pool_selector_labels(&at.name)),
            ports: Some(vec![ServicePort {
                name: Some(POOL_PORT_NAME.into()),
                port: POOL_PORT,
                target_port: Some(IntOrString::String(POOL_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Secret with the token the pool accepts and the cameras' workers present. Created once
/// with `token`; a Secret that exists is never written again (a user replaces it to rotate).
pub fn build_pool_token_secret(processor: &FrameProcessor, at: &PoolRef, token: &str) -> Secret {
    Secret {
        metadata: meta(processor, at, pool_token_secret_name(&at.name)),
        string_data: Some(BTreeMap::from([(
            POOL_TOKEN_KEY.to_string(),
            token.to_string(),
        )])),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// A volume with the `token` key of a pool's token Secret, as file `token`; not optional, so a
/// pod never starts without it.
pub fn token_volume(volume: &str, processor: &str) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(pool_token_secret_name(processor)),
            default_mode: Some(0o440),
            optional: Some(false),
            items: Some(vec![KeyToPath {
                key: POOL_TOKEN_KEY.into(),
                path: POOL_TOKEN_KEY.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "build_pool_tests.rs"]
mod tests;
