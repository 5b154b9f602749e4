//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated offline by kube-cel (kube's `cel`
//! feature, with the Kubernetes quantity library) against the schemas `crds()` ships, the way
//! the API server evaluates them on create and update (defaults applied first; transition rules
//! only on update). What kube-cel does not do: type-check rules and estimate their cost, as the
//! API server does when the CRD is applied.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use kamera_operator::crd::camera::{
    Camera, CameraSpec, CredentialsSecretRef, ExposureSpec, RetentionSpec, RtspSource,
    RtspTransport, ServiceSpec, ServiceType, SourceSpec, TokensSecretRef,
};
use kamera_operator::crd::crds;
use kamera_operator::crd::processor::{FrameProcessor, FrameProcessorSpec, GpuSpec, ProcessorMode};
use kube::core::cel::{compile_schema, CompiledSchema, ErrorKind, ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

const FPS_MESSAGE: &str = "fps must be greater than 0 (e.g. 0.5, 1 or 5)";

/// The `openAPIV3Schema` of the CRD for `kind`, as `crds()` renders it.
fn schema(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema is JSON")
}

fn json(obj: &impl Serialize) -> Value {
    serde_json::to_value(obj).expect("object is JSON")
}

/// The rule failures for `obj` of `kind` (created when `old` is `None`, else updated from `old`).
fn failures(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<ValidationError> {
    match Validator::new().validate(&schema(kind), obj, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec(),
    }
}

fn camera_failures(cam: &Camera, old: Option<&Camera>) -> Vec<ValidationError> {
    failures("Camera", &json(cam), old.map(json).as_ref())
}

fn processor_failures(fp: &FrameProcessor) -> Vec<ValidationError> {
    failures("FrameProcessor", &json(fp), None)
}

/// The one failure expected, as (field path, reason, message).
fn only(errors: &[ValidationError]) -> (&str, Option<&str>, &str) {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::ValidationFailure, "{e:#?}");
    (
        e.field_path.as_str(),
        e.reason.as_deref(),
        e.message.as_str(),
    )
}

fn camera(name: &str) -> Camera {
    Camera::new(name, CameraSpec::default())
}

fn camera_with_storage(size: &str, class: Option<&str>) -> Camera {
    let mut cam = camera("front-door");
    cam.spec.recording.storage.size = size.into();
    cam.spec.recording.storage.storage_class_name = class.map(Into::into);
    cam
}

fn processor(volumes: &[&str], mounts: &[&str]) -> FrameProcessor {
    let volumes = volumes
        .iter()
        .map(|name| Volume {
            name: name.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: "labels".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let volume_mounts = mounts
        .iter()
        .map(|name| VolumeMount {
            name: name.to_string(),
            mount_path: format!("/mnt/{name}"),
            ..Default::default()
        })
        .collect();
    FrameProcessor::new(
        "yolo",
        FrameProcessorSpec {
            image: "example/yolo:1".into(),
            fps: 1.0,
            max_in_flight: 1,
            volumes,
            volume_mounts,
            ..Default::default()
        },
    )
}

#[test]
fn every_rule_compiles() {
    fn walk(node: &CompiledSchema, kind: &str) {
        let errors = node.compilation_errors();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
        node.properties.values().for_each(|p| walk(p, kind));
        node.items.iter().for_each(|i| walk(i, kind));
        node.additional_properties
            .iter()
            .for_each(|a| walk(a, kind));
    }
    for kind in ["Camera", "FrameProcessor"] {
        walk(&compile_schema(&schema(kind)), kind);
    }
}

#[test]
fn every_rule_has_a_reason_and_its_field_path_names_a_field() {
    fn walk(node: &Value, at: &str, rules: &mut usize) {
        for rule in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            *rules += 1;
            assert!(rule["reason"].is_string(), "{at}: {rule}");
            if let Some(path) = rule["fieldPath"].as_str() {
                // The API server resolves a fieldPath against the structural schema.
                let mut target = node;
                for field in path.trim_start_matches('.').split('.') {
                    target = &target["properties"][field];
                    assert!(target.is_object(), "{at}: {path} is not a field");
                }
            }
        }
        for (name, child) in node["properties"].as_object().into_iter().flatten() {
            walk(child, &format!("{at}.{name}"), rules);
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{at}[]"), rules);
        }
    }
    let mut rules = 0;
    walk(&schema("Camera"), "Camera", &mut rules);
    walk(&schema("FrameProcessor"), "FrameProcessor", &mut rules);
    assert_eq!(rules, 24, "a rule was added or lost: count it here");
}

#[test]
fn the_default_camera_passes_on_create_and_on_an_unchanged_update() {
    let cam = camera_with_storage("100Gi", Some("fast"));
    assert!(camera_failures(&cam, None).is_empty());
    assert!(camera_failures(&cam, Some(&cam)).is_empty());
}

#[test]
fn a_camera_name_that_cannot_name_a_service_is_refused_at_metadata_name() {
    for bad in ["Front_Door", "front_door", "1cam", "cam-"] {
        let errors = camera_failures(&camera(bad), None);
        let (path, reason, message) = only(&errors);
        assert_eq!(path, ".metadata.name", "{bad}");
        assert_eq!(reason, Some("FieldValueInvalid"));
        assert!(message.contains("DNS-1035 label"), "{message}");
    }
    // `<camera>-http` must still be a Service name: at most 58 characters.
    assert!(camera_failures(&camera(&"a".repeat(58)), None).is_empty());
    assert_eq!(
        only(&camera_failures(&camera(&"a".repeat(59)), None)).0,
        ".metadata.name"
    );
}

#[test]
fn a_processor_name_longer_than_a_container_name_allows_is_refused() {
    let mut fp = processor(&[], &[]);
    fp.metadata.name = Some("a".repeat(41));
    let errors = processor_failures(&fp);
    assert_eq!(only(&errors).0, ".metadata.name");
}

#[test]
fn recording_size_may_grow() {
    for (old, new) in [
        ("10Gi", "20Gi"),
        ("10Gi", "10Gi"),
        ("1000Gi", "1Ti"),
        ("100G", "100Gi"),
    ] {
        let errors = camera_failures(
            &camera_with_storage(new, None),
            Some(&camera_with_storage(old, None)),
        );
        assert!(errors.is_empty(), "{old} -> {new}: {errors:#?}");
    }
}

#[test]
fn recording_size_never_shrinks_compared_as_quantities() {
    // 1Ti > 1000Gi and 100Gi > 100G: a string or digit comparison would get both wrong.
    for (old, new) in [("20Gi", "10Gi"), ("1Ti", "1000Gi"), ("100Gi", "100G")] {
        let errors = camera_failures(
            &camera_with_storage(new, None),
            Some(&camera_with_storage(old, None)),
        );
        let (path, reason, message) = only(&errors);
        assert_eq!(path, "spec.recording.storage.size", "{old} -> {new}");
        assert_eq!(reason, Some("FieldValueForbidden"));
        assert!(message.contains("never shrink"), "{message}");
    }
}

#[test]
fn a_small_size_is_fine_on_create() {
    assert!(camera_failures(&camera_with_storage("1Gi", Some("fast")), None).is_empty());
}

#[test]
fn storage_class_cannot_be_changed_added_or_removed() {
    for (old, new) in [
        (Some("fast"), Some("slow")),
        (None, Some("fast")),
        (Some("fast"), None),
    ] {
        let errors = camera_failures(
            &camera_with_storage("10Gi", new),
            Some(&camera_with_storage("10Gi", old)),
        );
        let (path, reason, message) = only(&errors);
        assert_eq!(
            path, "spec.recording.storage.storageClassName",
            "{old:?} -> {new:?}"
        );
        assert_eq!(reason, Some("FieldValueForbidden"));
        assert!(
            message.contains("cannot be set, changed or removed"),
            "{message}"
        );
    }
}

#[test]
fn zero_fps_is_refused_with_a_message_that_says_greater_than_zero() {
    for fps in [0.0, -1.0] {
        let mut cam = camera("front-door");
        cam.spec.frames.fps = fps;
        let errors = camera_failures(&cam, None);
        assert_eq!(
            only(&errors),
            ("spec.frames.fps", Some("FieldValueInvalid"), FPS_MESSAGE)
        );

        let mut fp = processor(&[], &[]);
        fp.spec.fps = fps;
        let errors = processor_failures(&fp);
        assert_eq!(
            only(&errors),
            ("spec.fps", Some("FieldValueInvalid"), FPS_MESSAGE)
        );
    }
}

#[test]
fn a_written_integer_zero_fps_is_refused_too() {
    // `fps: 0` in YAML is an integer; the rule compares it as the schema's number.
    let mut obj = json(&camera("front-door"));
    obj["spec"]["frames"] = serde_json::json!({"fps": 0});
    let errors = failures("Camera", &obj, None);
    assert_eq!(only(&errors).2, FPS_MESSAGE);
}

#[test]
fn slow_frame_rates_are_fine() {
    let mut cam = camera("front-door");
    cam.spec.frames.fps = 0.01;
    assert!(camera_failures(&cam, None).is_empty());
    let mut fp = processor(&[], &[]);
    fp.spec.fps = 0.5;
    assert!(processor_failures(&fp).is_empty());
}

#[test]
fn empty_retention_is_refused() {
    let mut cam = camera("front-door");
    cam.spec.recording.retention = Some(RetentionSpec::default());
    let errors = camera_failures(&cam, None);
    let (path, reason, _) = only(&errors);
    assert_eq!(path, "spec.recording.retention");
    assert_eq!(reason, Some("FieldValueRequired"));
}

#[test]
fn a_node_port_on_a_cluster_ip_service_is_refused_at_the_port() {
    let mut cam = camera("front-door");
    cam.spec.service = Some(ServiceSpec {
        rtmp_node_port: Some(31935),
        ..Default::default()
    });
    let errors = camera_failures(&cam, None);
    assert_eq!(only(&errors).0, "spec.service.rtmpNodePort");
    cam.spec.service = Some(ServiceSpec {
        rtmp_node_port: Some(31935),
        type_: ServiceType::NodePort,
        ..Default::default()
    });
    assert!(camera_failures(&cam, None).is_empty());

    let mut cam = camera("front-door");
    cam.spec.ingest.service = Some(ExposureSpec {
        node_port: Some(31935),
        ..Default::default()
    });
    assert_eq!(
        only(&camera_failures(&cam, None)).0,
        "spec.ingest.service.nodePort"
    );
}

#[test]
fn source_ranges_need_a_load_balancer() {
    let mut cam = camera("front-door");
    cam.spec.ingest.service = Some(ExposureSpec {
        type_: ServiceType::NodePort,
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..Default::default()
    });
    assert_eq!(
        only(&camera_failures(&cam, None)).0,
        "spec.ingest.service.type"
    );
    cam.spec.ingest.service = Some(ExposureSpec {
        type_: ServiceType::LoadBalancer,
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..Default::default()
    });
    assert!(camera_failures(&cam, None).is_empty());
}

#[test]
fn exposing_http_needs_viewer_tokens() {
    let mut cam = camera("front-door");
    cam.spec.http.service = Some(ExposureSpec {
        type_: ServiceType::LoadBalancer,
        ..Default::default()
    });
    let errors = camera_failures(&cam, None);
    let (path, _, message) = only(&errors);
    assert_eq!(path, "spec.http.tokensSecretRef");
    assert!(message.contains("viewer tokens"), "{message}");
    cam.spec.http.tokens_secret_ref = Some(TokensSecretRef {
        name: "viewers".into(),
        key: "tokens".into(),
    });
    assert!(camera_failures(&cam, None).is_empty());
}

#[test]
fn the_deprecated_service_and_ingest_service_are_not_both_set() {
    let mut cam = camera("front-door");
    cam.spec.service = Some(ServiceSpec::default());
    cam.spec.ingest.service = Some(ExposureSpec::default());
    assert_eq!(only(&camera_failures(&cam, None)).0, "spec.service");
}

fn pulling(url: &str) -> Camera {
    let mut cam = camera("gate");
    cam.spec.source = Some(SourceSpec {
        rtsp: Some(RtspSource {
            url: url.into(),
            credentials_secret_ref: Some(CredentialsSecretRef {
                name: "gate-creds".into(),
            }),
            transport: RtspTransport::Udp,
        }),
    });
    cam
}

#[test]
fn rtsp_urls_the_worker_can_pull_pass_every_rule() {
    for ok in [
        "rtsp://10.0.0.7/stream1",
        "rtsp://cam.local:8554/Streaming/Channels/101?transportmode=unicast",
        "rtsp://[2001:db8::7]/live",
        "rtsp://10.0.0.7",
        "rtsp://10.0.0.7/a%2Cb",
    ] {
        let errors = camera_failures(&pulling(ok), None);
        assert!(errors.is_empty(), "{ok}: {errors:#?}");
    }
}

#[test]
fn credentials_in_an_rtsp_url_are_refused_pointing_at_the_secret() {
    for bad in [
        "rtsp://admin:hunter2@10.0.0.7/stream1",
        "rtsp://admin@10.0.0.7/",
    ] {
        let errors = camera_failures(&pulling(bad), None);
        let (path, reason, message) = only(&errors);
        assert_eq!(path, "spec.source.rtsp.url", "{bad}");
        assert_eq!(reason, Some("FieldValueForbidden"));
        assert!(message.contains("credentialsSecretRef"), "{message}");
    }
}

#[test]
fn other_schemes_rtsps_and_malformed_rtsp_urls_are_refused_with_one_message_each() {
    let rtsps = camera_failures(&pulling("rtsps://10.0.0.7/stream1"), None);
    assert!(only(&rtsps).2.contains("not supported yet"), "{rtsps:#?}");
    for bad in [
        "http://10.0.0.7/",
        "rtsp://",
        "rtsp:///x",
        "10.0.0.7/stream1",
    ] {
        let errors = camera_failures(&pulling(bad), None);
        let (path, reason, message) = only(&errors);
        assert_eq!(path, "spec.source.rtsp.url", "{bad}");
        assert_eq!(reason, Some("FieldValueInvalid"));
        assert!(
            message.contains("rtsp://host[:port]/path"),
            "{bad}: {message}"
        );
    }
    for bad in ["rtsp://10.0.0.7/a,b", "rtsp://10.0.0.7/a b"] {
        let errors = camera_failures(&pulling(bad), None);
        assert!(only(&errors).2.contains("commas"), "{bad}: {errors:#?}");
    }
}

#[test]
fn a_pulled_camera_refuses_settings_for_publishers() {
    let mut cam = pulling("rtsp://10.0.0.7/stream1");
    cam.spec.ingest.service = Some(ExposureSpec {
        type_: ServiceType::LoadBalancer,
        ..Default::default()
    });
    let errors = camera_failures(&cam, None);
    let (path, _, message) = only(&errors);
    assert_eq!(path, "spec.source.rtsp");
    assert!(message.contains("takes no RTMP publishers"), "{message}");
}

#[test]
fn processor_volumes_with_names_the_worker_pod_uses_are_refused() {
    for reserved in [
        "kamera-models",
        "kamera-",
        "pool-yolo",
        "shared",
        "data",
        "tmp",
        "publish-key",
    ] {
        let errors = processor_failures(&processor(&["models", reserved], &[]));
        let (path, reason, message) = only(&errors);
        assert_eq!(path, "spec.volumes", "{reserved}");
        assert_eq!(reason, Some("FieldValueForbidden"));
        assert!(message.contains("reserved by the worker pod"), "{message}");
    }
}

#[test]
fn processor_volumes_with_other_names_are_fine_and_mounted() {
    let mut fp = processor(
        &["models", "labels", "datasets", "my-tmp"],
        &["models", "labels"],
    );
    fp.spec.volumes[0].config_map = None;
    fp.spec.volumes[0].persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
        claim_name: "yolo-models".into(),
        read_only: Some(true),
    });
    assert!(processor_failures(&fp).is_empty());
}

const REPLICAS_MESSAGE: &str = "replicas applies to pool mode only: set mode: pool (the default when gpu is set), or remove replicas";

#[test]
fn replicas_are_refused_for_a_sidecar_and_accepted_for_a_pool() {
    let sidecar = |mode: Option<ProcessorMode>, gpu: bool| {
        let mut fp = processor(&[], &[]);
        fp.spec.mode = mode;
        fp.spec.gpu = gpu.then(GpuSpec::default);
        fp.spec.replicas = Some(2);
        fp
    };
    for (mode, gpu) in [
        (None, false),
        (Some(ProcessorMode::Sidecar), false),
        (Some(ProcessorMode::Sidecar), true),
    ] {
        let errors = processor_failures(&sidecar(mode, gpu));
        let (path, reason, message) = only(&errors);
        assert_eq!(path, "spec.replicas", "{mode:?} gpu={gpu}");
        assert_eq!(reason, Some("FieldValueForbidden"));
        assert_eq!(message, REPLICAS_MESSAGE);
    }
    for (mode, gpu) in [
        (None, true),
        (Some(ProcessorMode::Pool), false),
        (Some(ProcessorMode::Pool), true),
    ] {
        assert!(
            processor_failures(&sidecar(mode, gpu)).is_empty(),
            "{mode:?} gpu={gpu}"
        );
    }
    let mut plain = sidecar(None, false);
    plain.spec.replicas = None;
    assert!(
        processor_failures(&plain).is_empty(),
        "no replicas, no rule"
    );
}

#[test]
fn a_processor_mount_must_name_one_of_its_volumes() {
    for (volumes, mounts) in [
        (&["models"][..], &["cache"][..]),
        (&[][..], &["models"][..]),
    ] {
        let errors = processor_failures(&processor(volumes, mounts));
        let (path, _, message) = only(&errors);
        assert_eq!(path, "spec.volumeMounts", "{volumes:?} {mounts:?}");
        assert!(
            message.contains("one of this processor's volumes"),
            "{message}"
        );
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn manifests(dir: &Path) -> Vec<(PathBuf, String, Value)> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("manifest is readable");
            let obj: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text, obj)
        })
        .collect()
}

fn kind_of(obj: &Value) -> &str {
    obj["kind"].as_str().expect("manifest has a kind")
}

#[test]
fn every_example_passes_every_rule_on_create_and_on_reapply() {
    let mut count = 0;
    for dir in ["examples/cameras", "examples/processors"] {
        for (path, _, obj) in manifests(&repo(dir)) {
            let kind = kind_of(&obj);
            let errors = failures(kind, &obj, None);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            let errors = failures(kind, &obj, Some(&obj));
            assert!(
                errors.is_empty(),
                "{} reapplied: {errors:#?}",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count >= 6, "examples went missing: {count}");
}

/// Invalid manifests that only a CEL rule refuses say so in a `# rejected by CEL: <message>`
/// line; `scripts/operator_validate.py` (JSON Schema only) leaves them to this test.
#[test]
fn invalid_manifests_marked_for_cel_are_refused_by_their_rule() {
    let mut count = 0;
    for (path, text, obj) in manifests(&repo("operator/tests/data/invalid")) {
        let Some(expected) = text
            .lines()
            .find_map(|l| l.strip_prefix("# rejected by CEL:"))
            .map(str::trim)
        else {
            continue;
        };
        let errors = failures(kind_of(&obj), &obj, None);
        assert!(
            errors.iter().any(|e| e.message.contains(expected)),
            "{} should be refused with {expected:?}: {errors:#?}",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 2, "no manifest is marked for CEL: {count}");
}
