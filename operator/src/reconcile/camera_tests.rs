//! The Camera reconciler against the in-process fake API: what it writes, what it leaves alone.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use super::*;
use crate::crd::camera::AttachedProcessor;
use crate::crd::processor::{FrameProcessor, FrameProcessorSpec, GpuSpec, ProcessorMode};
use crate::fixtures::kubelet::{kubelet_step, restarting, run_pod};
use crate::fixtures::{context_on, test_settings, FakeApi, Received};
use crate::reconcile::names::labels;
use crate::reconcile::status::RECORDING;
use crate::reconcile::test_camera;
use crate::rollout::RolloutGate;

const PVC: &str = "/api/v1/namespaces/cams/persistentvolumeclaims/lobby-recordings";
const SVC: &str = "/api/v1/namespaces/cams/services/lobby";
const SVC_HTTP: &str = "/api/v1/namespaces/cams/services/lobby-http";
const DEPLOY: &str = "/apis/apps/v1/namespaces/cams/deployments/lobby";
const STATUS: &str = "/apis/kamera.dev/v1alpha1/namespaces/cams/cameras/lobby/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/cams/events";
const IMAGE: &str = "kamera-worker:1";

fn camera(name: &str) -> Camera {
    let mut cam = test_camera(name);
    cam.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    cam
}

/// A processor of the lobby cameras; with `gpu_node`, a GPU sidecar (`mode: sidecar`).
fn processor(name: &str, gpu_node: Option<&str>) -> FrameProcessor {
    let mut fp = FrameProcessor::new(
        name,
        FrameProcessorSpec {
            image: format!("{name}:1"),
            fps: 1.0,
            max_in_flight: 1,
            mode: gpu_node.map(|_| ProcessorMode::Sidecar),
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

/// A fake API holding these Cameras and processors.
fn api_with(cameras: &[Camera], processors: &[FrameProcessor]) -> FakeApi {
    let api = FakeApi::new();
    for c in cameras {
        api.insert(c);
    }
    for p in processors {
        api.insert(p);
    }
    api
}

/// Reconciles the Camera `name` as the API holds it now, with caches filled from the API.
async fn reconcile_on(
    api: &FakeApi,
    name: &str,
    image: &str,
    gate: &Arc<RolloutGate>,
) -> Result<Action, Error> {
    let ctx = context_on(api, test_settings(image), gate);
    let cam = api.get::<Camera>("cams", name).expect("camera in the API");
    tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(cam), ctx))
        .await
        .expect("reconcile finished")
}

async fn once(api: &FakeApi, name: &str) -> Result<Action, Error> {
    reconcile_on(api, name, IMAGE, &Arc::new(RolloutGate::new(2))).await
}

fn status_of(api: &FakeApi, name: &str) -> CameraStatus {
    api.get::<Camera>("cams", name)
        .and_then(|c| c.status)
        .expect("status written")
}

fn condition<'a>(status: &'a CameraStatus, type_: &str) -> &'a Condition {
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

fn events(api: &FakeApi) -> Vec<Received> {
    api.writes_to(EVENTS)
}

fn event_reasons(api: &FakeApi) -> Vec<String> {
    events(api)
        .iter()
        .map(|e| e.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_camera_is_created_server_side_with_rights_the_chart_grants() {
    let api = api_with(&[camera("lobby")], &[processor("motion", None)]);
    once(&api, "lobby").await.expect("reconciled");

    let applies: Vec<Received> = api
        .received()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && !r.path.ends_with("/status"))
        .collect();
    let paths: Vec<&str> = applies.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, [PVC, SVC, SVC_HTTP, DEPLOY]);
    for apply in &applies {
        assert!(
            apply.query.contains("fieldManager=kamera-operator"),
            "{}",
            apply.query
        );
        assert!(apply.query.contains("force=true"), "{}", apply.query);
        assert_eq!(apply.content_type, "application/apply-patch+yaml");
    }
    let deployment = &applies[3].body;
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["kind"],
        "Camera"
    );
    assert_eq!(containers(deployment), ["worker", "processor-motion"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(applies[1].body["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(applies[1].body["spec"]["ports"][0]["port"], 1935);
    assert_eq!(applies[2].body["spec"]["ports"][0]["port"], 8080);
    assert_eq!(applies[2].body["spec"]["type"], "ClusterIP");
    assert!(
        applies[0].body["metadata"]["ownerReferences"].is_null(),
        "recordings are retained by default: the claim has no owner"
    );
    // Every apply created its object, so it needed `create` as well as `patch`.
    api.assert_rbac();

    let status = status_of(&api, "lobby");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, READY).reason, "WorkerStarting");
    assert_eq!(condition(&status, PROCESSORS_READY).status, "False");
    assert_eq!(status.processor_summary.as_deref(), Some("0/1"));
    assert_eq!(
        status.ingest_url.as_deref(),
        Some("rtmp://lobby.cams.svc:1935/live/lobby")
    );
    let created = events(&api)
        .into_iter()
        .find(|e| e.body["reason"] == "Created")
        .expect("Created event");
    assert_eq!(
        created.body["note"],
        "created the recordings claim, Service lobby, Service lobby-http, worker Deployment"
    );
}

#[tokio::test]
async fn a_camera_without_recording_is_not_told_it_got_a_claim() {
    let mut cam = camera("lobby");
    cam.spec.recording.enabled = false;
    let api = api_with(&[cam], &[]);
    once(&api, "lobby").await.expect("reconciled");
    assert!(api.writes_to(PVC).is_empty());
    let notes: Vec<String> = events(&api)
        .iter()
        .map(|e| e.body["note"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        notes.contains(
            &"created the Service lobby, Service lobby-http, worker Deployment".to_string()
        ),
        "{notes:?}"
    );
    assert_eq!(
        condition(&status_of(&api, "lobby"), RECORDING).reason,
        "Disabled"
    );
}

#[tokio::test]
async fn a_second_reconcile_with_nothing_changed_writes_nothing() {
    let api = api_with(&[camera("lobby")], &[processor("motion", None)]);
    once(&api, "lobby").await.expect("first");
    run_pod(&api, "lobby", &[]);
    once(&api, "lobby")
        .await
        .expect("second: status from the pod");
    let before = api.received().len();
    once(&api, "lobby").await.expect("third");
    let writes: Vec<String> = api.received()[before..]
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "an unchanged camera wrote {writes:?}");
    let status = status_of(&api, "lobby");
    assert_eq!(condition(&status, READY).reason, "WorkerReady");
    assert_eq!(condition(&status, PROCESSORS_READY).status, "True");
}

#[tokio::test]
async fn a_service_kamera_did_not_create_is_left_untouched_and_reported() {
    let api = api_with(&[camera("lobby")], &[]);
    let mut theirs = Service::default();
    theirs.metadata.name = Some("lobby".into());
    theirs.metadata.namespace = Some("cams".into());
    api.insert(&theirs);

    once(&api, "lobby").await.expect("reconciled");
    let applies: Vec<_> = api
        .received()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && !r.path.ends_with("/status"))
        .collect();
    assert!(applies.is_empty(), "applied {applies:?}");
    let status = status_of(&api, "lobby");
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NameConflict")
    );
    assert!(
        ready.message.contains("Service cams/lobby"),
        "{}",
        ready.message
    );
    assert!(event_reasons(&api).contains(&"NameConflict".to_string()));
    let svc: Service = api.get("cams", "lobby").expect("still there");
    assert_eq!(
        svc.metadata.owner_references, None,
        "not adopted, not owned"
    );
}

#[tokio::test]
async fn a_crash_looping_processor_keeps_the_camera_routable_and_says_why() {
    let api = api_with(&[camera("lobby")], &[processor("yolo", None)]);
    once(&api, "lobby").await.expect("created");
    run_pod(&api, "lobby", &[("processor-yolo", "CrashLoopBackOff")]);
    once(&api, "lobby").await.expect("observed");

    let svc: Service = api.get("cams", "lobby").expect("service");
    assert_eq!(
        svc.spec.and_then(|s| s.publish_not_ready_addresses),
        Some(true),
        "the NotReady pod stays behind its Service"
    );
    let status = status_of(&api, "lobby");
    assert_eq!(
        condition(&status, READY).status,
        "True",
        "the worker alone decides Ready"
    );
    let processors = condition(&status, PROCESSORS_READY);
    assert_eq!(
        (processors.status.as_str(), processors.reason.as_str()),
        ("False", "CrashLoopBackOff")
    );
    assert!(
        processors.message.contains("yolo"),
        "{}",
        processors.message
    );
    assert_eq!(status.processor_summary.as_deref(), Some("0/1"));
    assert!(event_reasons(&api).contains(&"CrashLoopBackOff".to_string()));
}

#[tokio::test]
async fn a_refused_claim_is_a_condition_and_the_stream_still_gets_its_pod() {
    let api = api_with(&[camera("lobby")], &[]);
    api.fail(
        Method::PATCH,
        PVC,
        StatusCode::UNPROCESSABLE_ENTITY,
        "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
    );
    once(&api, "lobby")
        .await
        .expect("reconciled despite the claim");
    assert!(api.get::<Service>("cams", "lobby").is_some());
    assert!(api.get::<Deployment>("cams", "lobby").is_some());
    let status = status_of(&api, "lobby");
    let recording = condition(&status, RECORDING);
    assert_eq!(recording.reason, "ClaimFailed");
    assert!(
        recording.message.contains("less than previous value"),
        "{}",
        recording.message
    );
    assert!(event_reasons(&api).contains(&"ClaimFailed".to_string()));
}

#[tokio::test]
async fn a_refused_event_never_keeps_the_status_from_being_written() {
    let api = api_with(&[camera("lobby")], &[]);
    api.fail(
        Method::POST,
        EVENTS,
        StatusCode::UNPROCESSABLE_ENTITY,
        "note too long",
    );
    once(&api, "lobby").await.expect("reconciled");
    assert_eq!(api.writes_to(STATUS).len(), 1);
    assert_eq!(
        condition(&status_of(&api, "lobby"), READY).reason,
        "WorkerStarting"
    );
}

#[tokio::test]
async fn a_retained_claim_is_adopted_by_a_camera_of_the_same_name() {
    let api = api_with(&[camera("lobby")], &[]);
    let mut kept = PersistentVolumeClaim::default();
    kept.metadata.name = Some("lobby-recordings".into());
    kept.metadata.namespace = Some("cams".into());
    kept.metadata.labels = Some(labels("lobby"));
    api.insert(&kept);
    once(&api, "lobby").await.expect("reconciled");
    assert_eq!(
        api.writes_to(PVC).len(),
        1,
        "the retained claim is applied, not refused"
    );
    assert_ne!(
        condition(&status_of(&api, "lobby"), READY).reason,
        "NameConflict"
    );
}

#[tokio::test]
async fn conflicting_gpu_processors_leave_the_pod_and_report_why() {
    let api = api_with(&[camera("lobby")], &[]);
    once(&api, "lobby").await.expect("created");
    let before = api.writes_to(DEPLOY).len();
    api.insert(&processor("yolo-l4", Some("l4")));
    api.insert(&processor("yolo-h100", Some("h100")));
    once(&api, "lobby").await.expect("reconciled");
    assert_eq!(
        api.writes_to(DEPLOY).len(),
        before,
        "the running pod is left as it is"
    );
    let status = status_of(&api, "lobby");
    let processors_ready = condition(&status, PROCESSORS_READY);
    assert_eq!(processors_ready.reason, "SchedulingConflict");
    assert!(
        processors_ready.message.contains("gpu"),
        "{}",
        processors_ready.message
    );
    assert!(event_reasons(&api).contains(&"SchedulingConflict".to_string()));
}

#[tokio::test]
async fn a_deleted_processor_loses_its_sidecar_and_the_event_says_so() {
    let api = api_with(
        &[camera("lobby")],
        &[processor("motion", None), processor("yolo", None)],
    );
    once(&api, "lobby").await.expect("created");
    api.remove::<FrameProcessor>("cams", "yolo");
    once(&api, "lobby").await.expect("updated");
    let deployment: Deployment = api.get("cams", "lobby").expect("deployment");
    let names: Vec<String> = deployment
        .spec
        .template
        .spec
        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    assert_eq!(names, ["worker", "processor-motion"]);
    let updated = events(&api)
        .into_iter()
        .find(|e| e.body["reason"] == "Updated")
        .expect("Updated event");
    let note = updated.body["note"].as_str().unwrap_or_default();
    assert!(note.contains("detached processor(s) yolo"), "{note}");
    assert!(!note.contains("motion"), "{note}");
    let attached: Vec<AttachedProcessor> = status_of(&api, "lobby").processors;
    assert_eq!(attached.len(), 1);
}

#[tokio::test]
async fn an_invalid_spec_is_reported_without_applying_anything() {
    let mut cam = camera("lobby");
    cam.spec.hls.part_duration = "soon".into();
    let api = api_with(&[cam], &[]);
    once(&api, "lobby").await.expect("reconciled");
    assert!(api.writes_to(DEPLOY).is_empty());
    assert_eq!(
        condition(&status_of(&api, "lobby"), READY).reason,
        "InvalidSpec"
    );
    assert!(event_reasons(&api).contains(&"InvalidSpec".to_string()));
}

#[tokio::test]
async fn a_new_default_image_restarts_at_most_max_cameras_at_a_time() {
    let names: Vec<String> = (0..10).map(|i| format!("cam-{i}")).collect();
    let cameras: Vec<Camera> = names.iter().map(|n| camera(n)).collect();
    let api = api_with(&cameras, &[]);
    let gate = Arc::new(RolloutGate::new(2));
    for n in &names {
        reconcile_on(&api, n, "kamera-worker:1", &gate)
            .await
            .expect("created");
    }
    for _ in 0..2 {
        kubelet_step(&api);
    }
    assert!(restarting(&api).is_empty(), "all ten run version 1");

    // The operator is upgraded: a new default worker image.
    let mut most = 0;
    for round in 0..40 {
        for n in &names {
            reconcile_on(&api, n, "kamera-worker:2", &gate)
                .await
                .expect("reconciled");
            let now = restarting(&api);
            most = most.max(now.len());
            assert!(
                now.len() <= 2,
                "round {round}: {} restarting at once: {now:?}",
                now.len()
            );
        }
        kubelet_step(&api);
        let images: Vec<String> = api
            .all::<Pod>()
            .into_iter()
            .filter_map(|p| p.spec?.containers.first()?.image.clone())
            .collect();
        if restarting(&api).is_empty()
            && images.iter().all(|i| i == "kamera-worker:2")
            && images.len() == 10
        {
            assert_eq!(most, 2, "the rollout used its two slots");
            assert!(event_reasons(&api).contains(&"UpdateQueued".to_string()));
            return;
        }
    }
    panic!("the rollout did not finish in 40 rounds");
}

#[tokio::test]
async fn a_change_to_the_cameras_own_spec_is_not_throttled() {
    let names: Vec<String> = (0..3).map(|i| format!("cam-{i}")).collect();
    let cameras: Vec<Camera> = names.iter().map(|n| camera(n)).collect();
    let api = api_with(&cameras, &[]);
    let gate = Arc::new(RolloutGate::new(1));
    for n in &names {
        reconcile_on(&api, n, "kamera-worker:1", &gate)
            .await
            .expect("created");
    }
    kubelet_step(&api);
    kubelet_step(&api);
    // cam-0 takes the only slot for an image change and stays restarting.
    reconcile_on(&api, "cam-0", "kamera-worker:2", &gate)
        .await
        .expect("admitted");
    assert_eq!(restarting(&api), ["cam-0"]);
    // The user edits cam-1: that restart goes ahead at once.
    let mut edited = api.get::<Camera>("cams", "cam-1").expect("cam-1");
    edited.spec.frames.fps = 2.0;
    edited.metadata.generation = Some(2);
    api.insert(&edited);
    reconcile_on(&api, "cam-1", "kamera-worker:1", &gate)
        .await
        .expect("applied");
    let d: Deployment = api.get("cams", "cam-1").expect("deployment");
    let args = d
        .spec
        .template
        .spec
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--frame-fps" && w[1] == "2"),
        "{args:?}"
    );
}

#[tokio::test]
async fn pod_overrides_that_break_the_pod_keep_the_running_worker_and_say_why() {
    let api = api_with(&[camera("lobby")], &[]);
    once(&api, "lobby").await.expect("created");
    let before = api.writes_to(DEPLOY).len();
    let mut cam = api.get::<Camera>("cams", "lobby").expect("camera");
    cam.spec.worker.pod_overrides = Some(serde_json::json!({"spec": {"containers": "worker"}}));
    cam.metadata.generation = Some(2);
    api.insert(&cam);
    once(&api, "lobby").await.expect("reconciled");
    assert_eq!(
        api.writes_to(DEPLOY).len(),
        before,
        "the running worker is left as it is"
    );
    let ready = condition(&status_of(&api, "lobby"), READY).clone();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(ready.message.contains("podOverrides"), "{}", ready.message);
}

#[tokio::test]
async fn a_camera_whose_secrets_are_read_not_watched_looks_again_every_minute() {
    use crate::crd::camera::TokensSecretRef;
    let mut cam = camera("lobby");
    cam.spec.http.tokens_secret_ref = Some(TokensSecretRef {
        name: "viewers".into(),
        key: "tokens".into(),
    });
    let api = api_with(&[cam], &[]);
    api.insert(&crate::fixtures::viewers_secret());
    let action = once(&api, "lobby").await.expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let plain = api_with(&[camera("yard")], &[]);
    let action = once(&plain, "yard").await.expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

/// The lobby camera pulling RTSP with the credentials Secret `lobby-creds`.
fn pulling_camera() -> Camera {
    use crate::crd::camera::{CredentialsSecretRef, RtspSource, SourceSpec};
    let mut cam = camera("lobby");
    cam.spec.source = Some(SourceSpec {
        rtsp: Some(RtspSource {
            url: "rtsp://10.0.0.7/stream1".into(),
            credentials_secret_ref: Some(CredentialsSecretRef {
                name: "lobby-creds".into(),
            }),
            transport: Default::default(),
        }),
    });
    cam
}

fn basic_auth(password: &str) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::ByteString;
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("lobby-creds".into()),
            namespace: Some("cams".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(BTreeMap::from([
            ("username".to_string(), ByteString(b"viewer".to_vec())),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pulled_camera_waits_for_its_credentials_secret_and_says_so() {
    let api = api_with(&[pulling_camera()], &[]);
    let action = once(&api, "lobby").await.expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    assert!(
        api.writes_to(DEPLOY).is_empty(),
        "no pod without its Secret"
    );
    let ready = condition(&status_of(&api, "lobby"), READY).clone();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CredentialsMissing")
    );
    assert!(ready.message.contains("lobby-creds"), "{}", ready.message);

    api.insert(&basic_auth("hunter2"));
    once(&api, "lobby").await.expect("reconciled");
    let deployment = &api.writes_to(DEPLOY)[0].body;
    let volume = &deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "kamera-rtsp-credentials")
        .expect("the credentials volume")["secret"];
    assert_eq!(volume["secretName"], "lobby-creds");
    let status = status_of(&api, "lobby");
    assert_eq!(
        status.ingest_url.as_deref(),
        Some("rtsp://10.0.0.7/stream1")
    );
    assert!(
        !deployment.to_string().contains("hunter2"),
        "the password stays in its Secret"
    );
    api.assert_rbac();
}

#[tokio::test]
async fn a_pulled_camera_gets_no_rtmp_service_and_a_camera_that_starts_pulling_loses_its_own() {
    let api = api_with(&[pulling_camera()], &[]);
    api.insert(&basic_auth("hunter2"));
    once(&api, "lobby").await.expect("created");
    let rtmp_writes = |api: &FakeApi| {
        api.writes_to(SVC)
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(SVC))
            .count()
    };
    assert_eq!(rtmp_writes(&api), 0, "an RTMP Service for a pulled camera");
    assert_eq!(api.writes_to(SVC_HTTP).len(), 1, "its HTTP Service");
    assert!(status_of(&api, "lobby")
        .playback_url
        .is_some_and(|u| u.contains("lobby-http")));

    // A pushed camera switches to pulling: its own RTMP Service goes, once.
    let api = api_with(&[camera("lobby")], &[]);
    api.insert(&basic_auth("hunter2"));
    once(&api, "lobby").await.expect("pushed");
    assert_eq!(rtmp_writes(&api), 1);
    let mut pulled = pulling_camera();
    pulled.metadata.uid = api
        .get::<Camera>("cams", "lobby")
        .and_then(|c| c.metadata.uid);
    api.insert(&pulled);
    once(&api, "lobby").await.expect("now pulling");
    let deletes: Vec<String> = api
        .received()
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deletes, [SVC.to_string()]);
    assert!(api.get::<Service>("cams", "lobby").is_none());
    assert!(event_reasons(&api).contains(&"Removed".to_string()));
    once(&api, "lobby").await.expect("again");
    assert_eq!(
        api.received()
            .iter()
            .filter(|r| r.method == Method::DELETE)
            .count(),
        1,
        "deleted once"
    );
    api.assert_rbac();
}

#[tokio::test]
async fn a_service_kamera_did_not_create_survives_its_camera_starting_to_pull() {
    let api = api_with(&[pulling_camera()], &[]);
    api.insert(&basic_auth("hunter2"));
    let mut theirs = Service::default();
    theirs.metadata.name = Some("lobby".into());
    theirs.metadata.namespace = Some("cams".into());
    api.insert(&theirs);
    once(&api, "lobby").await.expect("reconciled");
    assert!(api.received().iter().all(|r| r.method != Method::DELETE));
    assert!(api.get::<Service>("cams", "lobby").is_some());
}

#[tokio::test]
async fn rotated_or_deleted_rtsp_credentials_never_restart_or_stop_the_running_worker() {
    let api = api_with(&[pulling_camera()], &[]);
    api.insert(&basic_auth("hunter2"));
    once(&api, "lobby").await.expect("created");
    run_pod(&api, "lobby", &[]);
    once(&api, "lobby").await.expect("running");
    let deployments = api.writes_to(DEPLOY).len();

    // New content: the kubelet updates the mounted files; the pod template stays as it is.
    api.insert(&basic_auth("correct horse battery staple"));
    once(&api, "lobby").await.expect("rotated");
    assert_eq!(
        api.writes_to(DEPLOY).len(),
        deployments,
        "rotation restarted the pod"
    );
    assert_eq!(
        condition(&status_of(&api, "lobby"), READY).reason,
        "WorkerReady"
    );

    // Gone: the camera says so, and the running worker is left as it is.
    api.remove::<k8s_openapi::api::core::v1::Secret>("cams", "lobby-creds");
    once(&api, "lobby").await.expect("held");
    assert_eq!(api.writes_to(DEPLOY).len(), deployments);
    let deletes = api
        .received()
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .count();
    assert_eq!(deletes, 0);
    assert_eq!(
        condition(&status_of(&api, "lobby"), READY).reason,
        "CredentialsMissing"
    );
}
