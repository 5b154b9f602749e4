//! The worker Deployment for a Camera with a CPU and a GPU processor, field by field.

use super::*;
use crate::crd::processor::{FrameProcessorSpec, GpuSpec, ProcessorMode};
use crate::reconcile::schedule::schedule;
use crate::reconcile::test_camera;

fn cpu() -> ResolvedProcessor {
    ResolvedProcessor {
        name: "motion".into(),
        spec: FrameProcessorSpec {
            image: "motion:1".into(),
            args: vec!["--threshold".into(), "0.02".into()],
            env: vec![EnvVar {
                name: "MODE".into(),
                value: Some("fast".into()),
                value_from: None,
            }],
            fps: 1.0,
            max_in_flight: 2,
            ..Default::default()
        },
        fps: 1.0,
        note: None,
    }
}

/// A GPU processor run as a sidecar of the camera's pod (`mode: sidecar`).
fn gpu() -> ResolvedProcessor {
    let mut p = pool();
    p.spec.mode = Some(ProcessorMode::Sidecar);
    p
}

/// A GPU processor in its default mode: a pool.
fn pool() -> ResolvedProcessor {
    ResolvedProcessor {
        name: "yolo".into(),
        spec: FrameProcessorSpec {
            image: "yolo:1".into(),
            fps: 1.0,
            max_in_flight: 1,
            gpu: Some(crate::fixtures::l4_gpu(2)),
            ..Default::default()
        },
        fps: 1.0,
        note: None,
    }
}

fn build(camera: &Camera, processors: &[ResolvedProcessor], key: Option<&str>) -> Deployment {
    build_full(camera, processors, key, &WorkerDefaults::default())
}

fn build_full(
    camera: &Camera,
    processors: &[ResolvedProcessor],
    key: Option<&str>,
    defaults: &WorkerDefaults,
) -> Deployment {
    let at = CameraRef::of(camera).expect("named");
    let scheduling = schedule(&camera.spec.worker, processors).expect("no conflict");
    build_deployment(&WorkerPod {
        camera,
        at: &at,
        image: "kamera-worker:test",
        processors,
        scheduling: &scheduling,
        publish_key: key,
        defaults,
    })
    .expect("no overrides to refuse")
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.template.spec.as_ref().expect("pod spec")
}

fn container<'a>(d: &'a Deployment, name: &str) -> &'a Container {
    pod(d)
        .containers
        .iter()
        .find(|c| c.name == name)
        .expect("container")
}

fn env(c: &Container, name: &str) -> Option<String> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[test]
fn a_pool_processor_adds_only_its_address_and_token_to_the_worker_and_no_gpu_settings() {
    let cam = test_camera("lobby");
    let mut yolo = pool();
    yolo.spec.volumes = vec![Volume {
        name: "models".into(),
        empty_dir: Some(Default::default()),
        ..Default::default()
    }];
    yolo.spec.image_pull_secrets = vec![k8s_openapi::api::core::v1::LocalObjectReference {
        name: "gpu-registry".into(),
    }];
    let d = build(&cam, &[cpu(), yolo], None);
    let spec = pod(&d);
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["worker", "processor-motion"],
        "no container for the pool"
    );
    assert_eq!(spec.node_selector, None);
    assert_eq!(spec.tolerations, None);
    assert_eq!(spec.runtime_class_name, None);
    assert_eq!(
        spec.image_pull_secrets, None,
        "the pool's image is not pulled here"
    );
    for c in &spec.containers {
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert!(
            limits.is_none_or(|l| !l.contains_key("nvidia.com/gpu")),
            "{} asks for a GPU",
            c.name
        );
    }
    let w = container(&d, "worker");
    let args = w.args.clone().expect("args");
    let at = |flag: &str| args.iter().position(|a| a == flag).expect(flag);
    assert_eq!(args[at("--pool") + 1], "yolo=yolo-pool.cams.svc:7700");
    assert_eq!(args[at("--pool-token-dir") + 1], "/var/run/kamera-pools");
    let token_mount = w
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "pool-yolo")
        .expect("token mounted");
    assert_eq!(token_mount.mount_path, "/var/run/kamera-pools/yolo");
    assert_eq!(token_mount.read_only, Some(true));
    let volumes = spec.volumes.as_ref().expect("volumes");
    assert!(
        !volumes.iter().any(|v| v.name == "models"),
        "the pool's volumes stay in the pool"
    );
    let token = volumes
        .iter()
        .find(|v| v.name == "pool-yolo")
        .and_then(|v| v.secret.as_ref())
        .expect("token volume");
    assert_eq!(token.secret_name.as_deref(), Some("yolo-pool-token"));
    assert_eq!(token.optional, Some(false));
    let items = token.items.as_ref().expect("items");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("token", "token")
    );
}

#[test]
fn the_camera_pod_does_not_depend_on_the_pools_image_size_rate_gpu_or_env() {
    let cam = test_camera("lobby");
    let before = build(&cam, &[cpu(), pool()], None);
    let mut changed = pool();
    changed.spec.image = "yolo:2".into();
    changed.spec.replicas = Some(8);
    changed.spec.fps = 5.0;
    changed.fps = 5.0;
    changed.spec.max_in_flight = 16;
    changed.spec.command = vec!["python".into()];
    changed.spec.env = vec![EnvVar {
        name: "BATCH".into(),
        value: Some("32".into()),
        value_from: None,
    }];
    changed.spec.resources = Some(ResourceRequirements::default());
    changed.spec.gpu = Some(GpuSpec {
        count: 4,
        resource_name: "amd.com/gpu".into(),
        ..Default::default()
    });
    assert_eq!(build(&cam, &[cpu(), changed], None), before);
}

#[test]
fn one_recreated_replica_owned_by_the_camera() {
    let cam = test_camera("front-door");
    let d = build(&cam, &[], None);
    assert_eq!(d.metadata.name.as_deref(), Some("front-door"));
    assert_eq!(d.spec.replicas, Some(1));
    assert_eq!(
        d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate")
    );
    assert_eq!(
        d.spec.selector.match_labels,
        Some(selector_labels("front-door"))
    );
    let owner = &d.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Camera", "front-door", "uid-front-door")
    );
    assert_eq!(
        d.metadata.labels.as_ref().expect("labels")["app.kubernetes.io/managed-by"],
        "kamera-operator"
    );
}

#[test]
fn suspend_scales_to_zero() {
    let mut cam = test_camera("front-door");
    cam.spec.suspend = true;
    assert_eq!(build(&cam, &[], None).spec.replicas, Some(0));
}

#[test]
fn worker_container_runs_the_spec_hardened_with_probes() {
    let cam = test_camera("front-door");
    let d = build(&cam, &[], None);
    let w = container(&d, "worker");
    assert_eq!(w.image.as_deref(), Some("kamera-worker:test"));
    assert_eq!(w.command, Some(vec!["kamera-worker".to_string()]));
    assert_eq!(w.args, Some(worker_args("front-door", &cam.spec, false)));
    let ports: Vec<_> = w
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("rtmp".to_string(), 1935),
            ("http-metrics".to_string(), 8080)
        ]
    );
    let path = |p: &Option<Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&w.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(path(&w.liveness_probe).as_deref(), Some("/healthz"));
    let sc = w.security_context.as_ref().expect("security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let psc = pod(&d)
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
}

#[test]
fn volumes_share_the_socket_dir_and_mount_recordings_at_data() {
    let cam = test_camera("front-door");
    let d = build(&cam, &[cpu()], None);
    let volumes = pod(&d).volumes.as_ref().expect("volumes");
    let data = volumes
        .iter()
        .find(|v| v.name == "data")
        .expect("data volume");
    assert_eq!(
        data.persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("front-door-recordings")
    );
    assert!(volumes
        .iter()
        .any(|v| v.name == "shared" && v.empty_dir.is_some()));
    for c in &pod(&d).containers {
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert!(
            mounts.contains(&("shared", "/var/run/kamera")),
            "{} lacks the shared dir",
            c.name
        );
    }
    let worker_mounts: Vec<_> = container(&d, "worker")
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    assert!(worker_mounts.contains(&"/data".to_string()));
}

#[test]
fn recording_off_uses_an_empty_dir_for_data() {
    let mut cam = test_camera("front-door");
    cam.spec.recording.enabled = false;
    let d = build(&cam, &[], None);
    let data = pod(&d)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .expect("data volume");
    assert!(data.empty_dir.is_some() && data.persistent_volume_claim.is_none());
}

#[test]
fn each_processor_is_a_sidecar_with_its_settings_and_kamera_env() {
    let cam = test_camera("lobby");
    let d = build(&cam, &[cpu(), gpu()], None);
    let names: Vec<_> = pod(&d).containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["worker", "processor-motion", "processor-yolo"]);
    let m = container(&d, "processor-motion");
    assert_eq!(m.image.as_deref(), Some("motion:1"));
    assert_eq!(
        m.args,
        Some(vec!["--threshold".to_string(), "0.02".to_string()])
    );
    assert_eq!(env(m, "MODE").as_deref(), Some("fast"));
    assert_eq!(
        env(m, "KAMERA_SOCKET").as_deref(),
        Some("/var/run/kamera/frames.sock")
    );
    assert_eq!(env(m, "KAMERA_CAMERA").as_deref(), Some("lobby"));
    assert_eq!(env(m, "KAMERA_PROCESSOR").as_deref(), Some("motion"));
    assert_eq!(env(m, "KAMERA_MAX_IN_FLIGHT").as_deref(), Some("2"));
    assert_eq!(
        m.resources, None,
        "a CPU processor without resources gets none"
    );
}

#[test]
fn gpu_processor_adds_its_limit_selector_tolerations_and_runtime_class() {
    let cam = test_camera("lobby");
    let d = build(&cam, &[cpu(), gpu()], None);
    let y = container(&d, "processor-yolo");
    let limits = y
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
    let spec = pod(&d);
    assert_eq!(spec.node_selector.as_ref().expect("selector")["gpu"], "l4");
    assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(1));
    assert_eq!(spec.runtime_class_name.as_deref(), Some("nvidia"));
}

#[test]
fn publish_key_is_mounted_and_its_change_rolls_the_pod() {
    let cam = test_camera("front-door");
    let a = build(&cam, &[], Some("one"));
    let b = build(&cam, &[], Some("two"));
    assert_ne!(deployment_config_hash(&a), deployment_config_hash(&b));
    assert_eq!(
        deployment_config_hash(&a),
        deployment_config_hash(&build(&cam, &[], Some("one")))
    );
    let w = container(&a, "worker");
    assert!(w.args.iter().flatten().any(|a| a == "--publish-key-file"));
    let secret = pod(&a)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "publish-key")
        .and_then(|v| v.secret.clone());
    assert_eq!(
        secret.and_then(|s| s.secret_name).as_deref(),
        Some("front-door-publish-key")
    );
}

fn pulling(name: &str, credentials: Option<&str>) -> Camera {
    use crate::crd::camera::{CredentialsSecretRef, RtspSource, SourceSpec};
    let mut cam = test_camera(name);
    cam.spec.source = Some(SourceSpec {
        rtsp: Some(RtspSource {
            url: "rtsp://10.0.0.7/stream1".into(),
            credentials_secret_ref: credentials.map(|n| CredentialsSecretRef { name: n.into() }),
            transport: Default::default(),
        }),
    });
    cam
}

/// The Secret volume `name` of the pod.
fn secret_volume(d: &Deployment, name: &str) -> SecretVolumeSource {
    pod(d)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .and_then(|v| v.secret.clone())
        .expect("a Secret volume")
}

/// The keys a Secret volume projects.
fn secret_keys(volume: &SecretVolumeSource) -> Vec<&str> {
    volume
        .items
        .iter()
        .flatten()
        .map(|i| i.key.as_str())
        .collect()
}

fn pod_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

fn mounts_of(c: &Container) -> Vec<(&str, &str, Option<bool>)> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
        .collect()
}

#[test]
fn rtsp_credentials_are_the_users_secret_mounted_read_only_into_the_worker_alone() {
    let cam = pulling("gate", Some("gate-creds"));
    let d = build(&cam, &[cpu()], None);
    let w = container(&d, "worker");
    let args: Vec<&str> = w.args.iter().flatten().map(String::as_str).collect();
    let tail = [
        "--pull",
        "gate=rtsp://10.0.0.7/stream1",
        "--pull-credentials-dir",
        "/var/run/kamera-rtsp",
        "--pull-transport",
        "tcp",
    ];
    assert!(args.windows(tail.len()).any(|w| w == tail), "{args:?}");
    assert!(mounts_of(w).contains(&(
        "kamera-rtsp-credentials",
        "/var/run/kamera-rtsp/gate",
        Some(true)
    )));
    let sidecar = container(&d, "processor-motion");
    assert!(
        !mounts_of(sidecar)
            .iter()
            .any(|(name, path, _)| name.contains("rtsp") || path.contains("rtsp")),
        "a processor never sees the camera's credentials: {:?}",
        mounts_of(sidecar)
    );
    let volume = secret_volume(&d, "kamera-rtsp-credentials");
    assert_eq!(volume.secret_name.as_deref(), Some("gate-creds"));
    assert_eq!(
        volume.default_mode,
        Some(0o440),
        "group-readable through the pod's fsGroup"
    );
    assert_eq!(
        pod(&d).security_context.as_ref().and_then(|s| s.fs_group),
        Some(RUN_AS)
    );
    let keys = secret_keys(&volume);
    assert_eq!(keys, ["username", "password"]);
}

#[test]
fn a_pulled_camera_without_credentials_mounts_nothing_for_them() {
    let d = build(&pulling("gate", None), &[], None);
    let w = container(&d, "worker");
    let args: Vec<&str> = w.args.iter().flatten().map(String::as_str).collect();
    assert!(args.contains(&"--pull"), "{args:?}");
    assert!(!args.contains(&"--pull-credentials-dir"), "{args:?}");
    assert!(!mounts_of(w)
        .iter()
        .any(|(name, _, _)| name.contains("rtsp")));
    assert!(!pod(&d)
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name.contains("rtsp")));
    let pushed = build(&test_camera("door"), &[], None);
    assert!(!container(&pushed, "worker")
        .args
        .iter()
        .flatten()
        .any(|a| a.starts_with("--pull")));
}

#[test]
fn new_rtsp_credentials_never_restart_the_pod_but_another_secret_does() {
    // The reconcile never reads the credentials into the build: the pod template only names
    // the Secret, so rotating its content leaves the config hash (and the pod) as it is.
    let a = build(&pulling("gate", Some("gate-creds")), &[], None);
    let same = build(&pulling("gate", Some("gate-creds")), &[], None);
    let other = build(&pulling("gate", Some("gate-creds-v2")), &[], None);
    assert_eq!(deployment_config_hash(&a), deployment_config_hash(&same));
    assert_ne!(deployment_config_hash(&a), deployment_config_hash(&other));
}

#[test]
fn a_processor_change_changes_the_config_hash() {
    let cam = test_camera("lobby");
    let before = build(&cam, &[cpu()], None);
    let mut changed = cpu();
    changed.spec.image = "motion:2".into();
    assert_ne!(
        deployment_config_hash(&before),
        deployment_config_hash(&build(&cam, &[changed], None))
    );
}

fn build_with(
    camera: &Camera,
    processors: &[ResolvedProcessor],
    defaults: &WorkerDefaults,
) -> Deployment {
    build_full(camera, processors, None, defaults)
}

fn chart_defaults() -> WorkerDefaults {
    serde_json::from_value(serde_json::json!({
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "cameras",
    }))
    .expect("the chart's KAMERA_WORKER_DEFAULTS shape")
}

#[test]
fn worker_defaults_apply_unless_the_camera_sets_its_own_resources() {
    let cam = test_camera("front-door");
    let d = build_with(&cam, &[], &chart_defaults());
    let limits = container(&d, "worker")
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits");
    assert_eq!(limits["memory"], Quantity("512Mi".into()));
    assert_eq!(pod(&d).priority_class_name.as_deref(), Some("cameras"));
    assert_eq!(
        pod(&d)
            .image_pull_secrets
            .as_ref()
            .map(|s| s[0].name.clone()),
        Some("registry".to_string())
    );
    assert_eq!(
        pod(&d)
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group_change_policy.as_deref()),
        Some("OnRootMismatch"),
        "a large recordings volume is not re-chowned at every start"
    );

    let mut own = test_camera("front-door");
    own.spec.worker.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("2Gi".into()),
        )])),
        ..Default::default()
    });
    let d = build_with(&own, &[], &chart_defaults());
    let limits = container(&d, "worker")
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone());
    assert_eq!(limits.expect("limits")["memory"], Quantity("2Gi".into()));
}

#[test]
fn processors_bring_their_volumes_mounts_and_pull_secrets_and_see_frames_read_only() {
    use k8s_openapi::api::core::v1::{LocalObjectReference, PersistentVolumeClaimVolumeSource};
    let mut yolo = gpu();
    yolo.spec.volumes = vec![Volume {
        name: "models".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "yolo-models".into(),
            read_only: Some(true),
        }),
        ..Default::default()
    }];
    yolo.spec.volume_mounts = vec![mount("models", "/models", true)];
    yolo.spec.image_pull_secrets = vec![
        LocalObjectReference {
            name: "registry".into(),
        },
        LocalObjectReference {
            name: "gpu-registry".into(),
        },
    ];
    let d = build_with(&test_camera("lobby"), &[cpu(), yolo], &chart_defaults());
    assert!(pod(&d).volumes.iter().flatten().any(|v| v.name == "models"));
    let secrets: Vec<String> = pod(&d)
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        secrets,
        ["registry", "gpu-registry"],
        "each pull secret once"
    );
    let mounts = container(&d, "processor-yolo")
        .volume_mounts
        .clone()
        .unwrap_or_default();
    assert!(mounts
        .iter()
        .any(|m| m.name == "models" && m.mount_path == "/models"));
    for name in ["processor-yolo", "processor-motion"] {
        let shared = container(&d, name)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "shared")
            .expect("shared dir");
        assert_eq!(
            shared.read_only,
            Some(true),
            "{name} cannot fill the worker's volume"
        );
    }
    let worker_shared = container(&d, "worker")
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "shared")
        .expect("shared dir");
    assert_eq!(
        worker_shared.read_only, None,
        "the worker writes frames and the socket"
    );
}

#[test]
fn pod_overrides_merge_over_the_built_pod_and_change_its_hash() {
    let plain = build(&test_camera("lobby"), &[], None);
    let mut cam = test_camera("lobby");
    cam.spec.worker.pod_overrides = Some(serde_json::json!({
        "metadata": {"labels": {"team": "video"}},
        "spec": {
            "containers": [{"name": "worker", "env": [{"name": "RUST_LOG", "value": "debug"}]}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        },
    }));
    let d = build(&cam, &[], None);
    assert!(pod(&d).affinity.is_some());
    let worker = container(&d, "worker");
    assert_eq!(env(worker, "RUST_LOG").as_deref(), Some("debug"));
    assert_eq!(
        worker.image.as_deref(),
        Some("kamera-worker:test"),
        "the rest is kept"
    );
    let labels = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("labels");
    assert_eq!(labels["team"], "video");
    assert_eq!(
        labels[CAMERA_LABEL_FOR_TESTS], "lobby",
        "selector labels are kept"
    );
    assert_ne!(deployment_config_hash(&d), deployment_config_hash(&plain));
}

const CAMERA_LABEL_FOR_TESTS: &str = crate::reconcile::names::CAMERA_LABEL;

#[test]
fn pod_overrides_that_break_the_template_are_refused() {
    let mut cam = test_camera("lobby");
    cam.spec.worker.pod_overrides = Some(serde_json::json!({"spec": {"containers": 3}}));
    let at = CameraRef::of(&cam).expect("named");
    let result = build_deployment(&WorkerPod {
        camera: &cam,
        at: &at,
        image: "kamera-worker:test",
        processors: &[],
        scheduling: &PodScheduling::default(),
        publish_key: None,
        defaults: &WorkerDefaults::default(),
    });
    assert!(result.is_err());
}

fn serving_https(name: &str) -> Camera {
    use crate::crd::camera::{CredentialsSecretRef, HttpTlsSpec};
    let mut cam = test_camera(name);
    cam.spec.http.tls = Some(HttpTlsSpec {
        secret_ref: CredentialsSecretRef {
            name: format!("{name}-tls"),
        },
    });
    cam
}

#[test]
fn https_mounts_the_tls_secret_passes_the_files_and_probes_with_https() {
    let d = build(&serving_https("gate"), &[cpu()], None);
    let w = container(&d, "worker");
    let args: Vec<&str> = w.args.iter().flatten().map(String::as_str).collect();
    let tls = [
        "--tls-cert",
        "/etc/kamera/tls/tls.crt",
        "--tls-key",
        "/etc/kamera/tls/tls.key",
    ];
    assert!(args.windows(tls.len()).any(|w| w == tls), "{args:?}");
    assert!(mounts_of(w).contains(&("kamera-http-tls", "/etc/kamera/tls", Some(true))));
    assert!(
        !mounts_of(container(&d, "processor-motion"))
            .iter()
            .any(|(name, _, _)| name.contains("tls")),
        "a processor never sees the camera's key"
    );
    let volume = secret_volume(&d, "kamera-http-tls");
    assert_eq!(volume.secret_name.as_deref(), Some("gate-tls"));
    assert_eq!(volume.default_mode, Some(0o440));
    let keys = secret_keys(&volume);
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    for probe in [&w.readiness_probe, &w.liveness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("httpGet");
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.port, IntOrString::String("https-metrics".into()));
    }
    let annotations = pod_annotations(&d);
    assert_eq!(
        annotations.get("prometheus.io/scheme").map(String::as_str),
        Some("https")
    );
    // The port's name carries the scheme, for the monitors that scrape by name.
    let ports: Vec<_> = w
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert!(ports.contains(&(Some("https-metrics"), 8080)), "{ports:?}");
    let cam = serving_https("gate");
    let at = CameraRef::of(&cam).expect("named");
    let svc = crate::reconcile::build_service::build_http_service(&cam, &at);
    let port = &svc.spec.and_then(|s| s.ports).expect("ports")[0];
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("https-metrics".into()))
    );
    assert_eq!(port.app_protocol.as_deref(), Some("https"));
}

#[test]
fn without_tls_nothing_changes_for_existing_pods() {
    let d = build(&test_camera("gate"), &[], None);
    let w = container(&d, "worker");
    assert!(!w.args.iter().flatten().any(|a| a.starts_with("--tls")));
    assert!(!mounts_of(w).iter().any(|(name, _, _)| name.contains("tls")));
    let get = w
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("httpGet");
    assert_eq!(get.scheme, None, "the default (HTTP), as before");
    let annotations = pod_annotations(&d);
    assert!(!annotations.contains_key("prometheus.io/scheme"));
    // A renewed certificate is new content in the same Secret: the pod stays.
    assert_eq!(
        deployment_config_hash(&build(&serving_https("gate"), &[], None)),
        deployment_config_hash(&build(&serving_https("gate"), &[], None))
    );
}
