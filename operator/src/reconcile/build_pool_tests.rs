//! The pool's Deployment, Service and token Secret for a GPU FrameProcessor, field by field.

use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;
use crate::crd::processor::FrameProcessorSpec;
use crate::fixtures::l4_gpu;
use crate::reconcile::build_deployment::RUN_AS;

fn yolo() -> FrameProcessor {
    let mut fp = FrameProcessor::new(
        "yolo",
        FrameProcessorSpec {
            image: "yolo:1".into(),
            command: vec!["python".into()],
            args: vec!["/app/processor.py".into()],
            env: vec![
                EnvVar {
                    name: "YOLO_WEIGHTS".into(),
                    value: Some("/models/yolov8n.pt".into()),
                    value_from: None,
                },
                EnvVar {
                    name: "KAMERA_POOL_LISTEN".into(),
                    value: Some("0.0.0.0:1".into()),
                    value_from: None,
                },
            ],
            fps: 2.0,
            max_in_flight: 4,
            replicas: Some(3),
            volumes: vec![Volume {
                name: "models".into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }],
            volume_mounts: vec![VolumeMount {
                name: "models".into(),
                mount_path: "/models".into(),
                read_only: Some(true),
                ..Default::default()
            }],
            image_pull_secrets: vec![LocalObjectReference {
                name: "gpu-registry".into(),
            }],
            gpu: Some(l4_gpu(2)),
            ..Default::default()
        },
    );
    fp.metadata.namespace = Some("cams".into());
    fp.metadata.uid = Some("uid-yolo".into());
    fp
}

fn at(fp: &FrameProcessor) -> PoolRef {
    PoolRef::of(fp).expect("named")
}

fn env(c: &Container, name: &str) -> Option<String> {
    let mut found = c.env.iter().flatten().filter(|e| e.name == name);
    let value = found.next().and_then(|e| e.value.clone());
    assert!(found.next().is_none(), "{name} set twice");
    value
}

fn owned_by_the_processor(meta: &ObjectMeta) {
    let owner = &meta.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("FrameProcessor", "yolo", "uid-yolo")
    );
    assert_eq!(owner.controller, Some(true));
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels["app.kubernetes.io/name"], "kamera-pool");
    assert_eq!(labels["app.kubernetes.io/instance"], "yolo");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kamera-operator");
    assert_eq!(labels["kamera.dev/processor"], "yolo");
}

#[test]
fn the_pool_deployment_runs_the_processor_with_its_gpu_settings() {
    let fp = yolo();
    let d = build_pool_deployment(&fp, &at(&fp));
    assert_eq!(d.metadata.name.as_deref(), Some("yolo-pool"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("cams"));
    owned_by_the_processor(&d.metadata);
    assert_eq!(d.spec.replicas, Some(3));
    let template_labels = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    let selector = d.spec.selector.match_labels.clone().expect("selector");
    for (k, v) in &selector {
        assert_eq!(template_labels.as_ref().and_then(|l| l.get(k)), Some(v));
    }
    let pod = d.spec.template.spec.as_ref().expect("pod");
    assert_eq!(pod.node_selector.as_ref().expect("selector")["gpu"], "l4");
    assert_eq!(
        pod.tolerations.as_ref().expect("tolerations")[0]
            .key
            .as_deref(),
        Some("nvidia.com/gpu")
    );
    assert_eq!(pod.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(
        pod.image_pull_secrets.as_ref().expect("pull secrets")[0].name,
        "gpu-registry"
    );
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("yolo:1"));
    assert_eq!(c.command.as_deref(), Some(&["python".to_string()][..]));
    assert_eq!(
        c.args.as_deref(),
        Some(&["/app/processor.py".to_string()][..])
    );
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits");
    assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
    let mounts: Vec<(&str, &str)> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("kamera-pool-token", "/var/run/kamera-pool"),
            ("models", "/models")
        ]
    );
    let volumes: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["kamera-pool-token", "models"]);
}

#[test]
fn the_pool_environment_is_the_operators_and_wins_over_the_users() {
    let fp = yolo();
    let d = build_pool_deployment(&fp, &at(&fp));
    let c = &d.spec.template.spec.as_ref().expect("pod").containers[0];
    assert_eq!(
        env(c, "KAMERA_POOL_LISTEN").as_deref(),
        Some("0.0.0.0:7700")
    );
    assert_eq!(
        env(c, "KAMERA_POOL_TOKEN_FILE").as_deref(),
        Some("/var/run/kamera-pool/token")
    );
    assert_eq!(env(c, "KAMERA_PROCESSOR").as_deref(), Some("yolo"));
    assert_eq!(env(c, "KAMERA_FPS").as_deref(), Some("2"));
    assert_eq!(env(c, "KAMERA_MAX_IN_FLIGHT").as_deref(), Some("4"));
    assert_eq!(
        env(c, "YOLO_WEIGHTS").as_deref(),
        Some("/models/yolov8n.pt")
    );
    assert_eq!(env(c, "KAMERA_SOCKET"), None, "no frame socket in a pool");
}

#[test]
fn pool_pods_are_ready_when_they_accept_connections_and_run_hardened() {
    let fp = yolo();
    let d = build_pool_deployment(&fp, &at(&fp));
    let pod = d.spec.template.spec.as_ref().expect("pod");
    let c = &pod.containers[0];
    let ports = c.ports.as_ref().expect("ports");
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].container_port),
        (Some("frames"), 7700)
    );
    let probe = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.tcp_socket.as_ref())
        .expect("TCP readiness probe");
    assert_eq!(probe.port, IntOrString::String("frames".into()));
    let security = c.security_context.as_ref().expect("container security");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let pod_security = pod.security_context.as_ref().expect("pod security");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(RUN_AS));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn a_pool_without_gpu_settings_has_no_placement_and_one_replica() {
    let mut fp = yolo();
    fp.spec.gpu = None;
    fp.spec.replicas = None;
    fp.spec.image_pull_secrets.clear();
    let d = build_pool_deployment(&fp, &at(&fp));
    assert_eq!(d.spec.replicas, Some(1));
    let pod = d.spec.template.spec.as_ref().expect("pod");
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.tolerations, None);
    assert_eq!(pod.runtime_class_name, None);
    assert_eq!(pod.image_pull_secrets, None);
}

#[test]
fn the_pool_service_is_the_frames_port_of_the_pool_pods() {
    let fp = yolo();
    let s = build_pool_service(&fp, &at(&fp));
    assert_eq!(s.metadata.name.as_deref(), Some("yolo-pool"));
    owned_by_the_processor(&s.metadata);
    let spec = s.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("frames"), 7700, Some("TCP"))
    );
    let d = build_pool_deployment(&fp, &at(&fp));
    assert_eq!(spec.selector, d.spec.selector.match_labels);
}

#[test]
fn the_token_secret_holds_the_token_under_its_key() {
    let fp = yolo();
    let token = crate::reconcile::build_storage::random_hex::<32>().expect("random");
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let secret = build_pool_token_secret(&fp, &at(&fp), &token);
    assert_eq!(secret.metadata.name.as_deref(), Some("yolo-pool-token"));
    owned_by_the_processor(&secret.metadata);
    assert_eq!(secret.string_data.expect("data")["token"], token);
}
