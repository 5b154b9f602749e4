//! The Camera reconciler against a mock API server: the exact requests it sends.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::*;
use crate::controller::Context;
use crate::crd::processor::{FrameProcessor, FrameProcessorSpec, GpuSpec};
use crate::fixtures::{Expect, Received, Reply};
use crate::reconcile::test_camera;

const PVC: &str = "/api/v1/namespaces/cams/persistentvolumeclaims/lobby-recordings";
const SVC: &str = "/api/v1/namespaces/cams/services/lobby";
const DEPLOY: &str = "/apis/apps/v1/namespaces/cams/deployments/lobby";
const STATUS: &str = "/apis/kamera.dev/v1alpha1/namespaces/cams/cameras/lobby/status";

fn lobby() -> Camera {
    let mut cam = test_camera("lobby");
    cam.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    cam
}

fn processor(name: &str, gpu_node: Option<&str>) -> FrameProcessor {
    let mut fp = FrameProcessor::new(
        name,
        FrameProcessorSpec {
            image: format!("{name}:1"),
            fps: 1.0,
            max_in_flight: 1,
            gpu: gpu_node.map(|node| GpuSpec {
                node_selector: BTreeMap::from([("gpu".to_string(), node.to_string())]),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    fp.metadata.namespace = Some("cams".into());
    fp.spec.camera_selector.match_labels =
        Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    fp
}

async fn run(
    cam: Camera,
    processors: Vec<FrameProcessor>,
    script: Vec<Expect>,
) -> (Result<Action, Error>, Vec<Received>) {
    let (ctx, server): (Arc<Context>, _) = Context::test(vec![cam.clone()], processors);
    let served = server.run(script);
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(cam), ctx))
        .await
        .expect("reconcile finished: it sent no request the script lacks");
    let received = tokio::time::timeout(Duration::from_secs(1), served)
        .await
        .expect("every scripted request came")
        .expect("mock server task");
    (result, received)
}

fn status_of(request: &Received) -> CameraStatus {
    serde_json::from_value(request.body["status"].clone()).expect("status body")
}

fn condition<'a>(
    status: &'a CameraStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    find(&status.conditions, type_).unwrap_or_else(|| panic!("condition {type_}"))
}

fn containers(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn with_status(mut cam: Camera, status: CameraStatus) -> Camera {
    cam.status = Some(status);
    cam
}

#[tokio::test]
async fn new_camera_is_applied_server_side_then_gets_an_event_and_status() {
    let cam = lobby();
    let script = vec![
        Expect::apply(PVC),
        Expect::apply(SVC),
        Expect::apply(DEPLOY),
        Expect::event("cams"),
        Expect::status(STATUS, serde_json::to_value(&cam).expect("json")),
    ];
    let (result, got) = run(cam, vec![processor("motion", None)], script).await;
    result.expect("reconciled");
    for apply in &got[..3] {
        assert!(
            apply.query.contains("fieldManager=kamera-operator"),
            "{}",
            apply.query
        );
        assert!(apply.query.contains("force=true"), "{}", apply.query);
        assert_eq!(apply.content_type, "application/apply-patch+yaml");
    }
    // The recordings claim outlives the Camera by default (`retainOnDelete`); the rest is owned.
    assert_eq!(got[0].body["metadata"]["ownerReferences"], Value::Null);
    for owned in &got[1..3] {
        assert_eq!(
            owned.body["metadata"]["ownerReferences"][0]["kind"],
            "Camera"
        );
    }
    assert_eq!(got[1].body["spec"]["ports"][0]["port"], 1935);
    assert_eq!(containers(&got[2].body), ["worker", "processor-motion"]);
    assert_eq!(got[2].body["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(got[3].body["reason"], "Created");
    assert_eq!(got[3].body["type"], "Normal");
    let status = status_of(&got[4]);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, READY).reason, "WorkerStarting");
    assert_eq!(condition(&status, PROCESSORS_READY).status, "True");
    assert_eq!(
        status.ingest_url.as_deref(),
        Some("rtmp://lobby.cams.svc:1935/live/lobby")
    );
    assert_eq!(
        status.playback_url.as_deref(),
        Some("http://lobby.cams.svc:8080/hls/lobby/index.m3u8")
    );
    assert_eq!(status.processor_summary.as_deref(), Some("0/1"));
    assert!(status.config_hash.is_some());
}

#[tokio::test]
async fn a_second_reconcile_with_no_change_writes_no_status_and_no_event() {
    let first_script = vec![
        Expect::apply(PVC),
        Expect::apply(SVC),
        Expect::apply(DEPLOY),
        Expect::event("cams"),
        Expect::status(STATUS, serde_json::to_value(lobby()).expect("json")),
    ];
    let (_, first) = run(lobby(), vec![], first_script).await;
    let settled = with_status(lobby(), status_of(&first[4]));
    let again = vec![
        Expect::apply(PVC),
        Expect::apply(SVC),
        Expect::apply(DEPLOY),
    ];
    let (result, second) = run(settled, vec![], again).await;
    result.expect("reconciled");
    assert_eq!(
        second[2].body, first[2].body,
        "the same Deployment is applied again"
    );
}

#[tokio::test]
async fn conflicting_gpu_processors_leave_the_pod_and_report_why() {
    let previous = CameraStatus {
        config_hash: Some("running".into()),
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: READY.into(),
            status: "True".into(),
            reason: "WorkerAvailable".into(),
            message: "the worker is running".into(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::from_second(1_000).expect("valid"),
            ),
        }],
        ..Default::default()
    };
    let cam = with_status(lobby(), previous);
    let script = vec![
        Expect::event("cams"),
        Expect::status(STATUS, serde_json::to_value(&cam).expect("json")),
    ];
    let processors = vec![
        processor("yolo-l4", Some("l4")),
        processor("yolo-h100", Some("h100")),
    ];
    let (result, got) = run(cam, processors, script).await;
    result.expect("reconciled");
    assert_eq!(got[0].body["type"], "Warning");
    assert_eq!(got[0].body["reason"], "SchedulingConflict");
    let status = status_of(&got[1]);
    let processors_ready = condition(&status, PROCESSORS_READY);
    assert_eq!(
        (
            processors_ready.status.as_str(),
            processors_ready.reason.as_str()
        ),
        ("False", "SchedulingConflict")
    );
    assert!(
        processors_ready.message.contains("gpu"),
        "{}",
        processors_ready.message
    );
    assert_eq!(
        condition(&status, READY).status,
        "True",
        "the running pod is left as it is"
    );
    assert_eq!(status.config_hash.as_deref(), Some("running"));
}

#[tokio::test]
async fn a_deleted_processor_loses_its_sidecar() {
    let previous = CameraStatus {
        config_hash: Some("with-two-processors".into()),
        processors: vec![
            AttachedProcessor {
                name: "motion".into(),
                ready: true,
                message: None,
            },
            AttachedProcessor {
                name: "yolo".into(),
                ready: true,
                message: None,
            },
        ],
        ..Default::default()
    };
    let cam = with_status(lobby(), previous);
    let script = vec![
        Expect::apply(PVC),
        Expect::apply(SVC),
        Expect::apply(DEPLOY),
        Expect::event("cams"),
        Expect::status(STATUS, serde_json::to_value(&cam).expect("json")),
    ];
    let (result, got) = run(cam, vec![processor("motion", None)], script).await;
    result.expect("reconciled");
    assert_eq!(containers(&got[2].body), ["worker", "processor-motion"]);
    assert_eq!(got[3].body["reason"], "Updated");
    let names: Vec<_> = status_of(&got[4])
        .processors
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["motion"]);
}

#[tokio::test]
async fn a_failed_apply_is_an_error_and_a_warning_event() {
    let script = vec![
        Expect::apply(PVC),
        Expect::apply(SVC),
        Expect {
            method: http::Method::PATCH,
            path: DEPLOY.into(),
            reply: Reply::Status(StatusCode::INTERNAL_SERVER_ERROR),
        },
        Expect::event("cams"),
    ];
    let (result, got) = run(lobby(), vec![], script).await;
    assert!(
        matches!(
            result,
            Err(Error::Apply {
                kind: "Deployment",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(got[3].body["reason"], "ApplyFailed");
}

#[tokio::test]
async fn an_invalid_spec_is_reported_without_applying_anything() {
    let mut cam = lobby();
    cam.spec.hls.part_duration = "soon".into();
    let script = vec![
        Expect::event("cams"),
        Expect::status(STATUS, serde_json::to_value(&cam).expect("json")),
    ];
    let (result, got) = run(cam, vec![], script).await;
    result.expect("reconciled");
    assert_eq!(got[0].body["reason"], "InvalidSpec");
    assert_eq!(condition(&status_of(&got[1]), READY).reason, "InvalidSpec");
}
