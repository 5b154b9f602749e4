//! The Camera status from a worker over real HTTP: a fake worker endpoint on the loopback
//! address answers `/api/cameras/<camera>` as the operator's pods would, the operator polls it
//! and reconciles against the in-process fake API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use http::Method;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

use super::*;
use crate::crd::camera::{CameraSpec, CameraStatus, TokensSecretRef};
use crate::crd::processor::{FrameProcessor, FrameProcessorSpec};
use crate::fixtures::kubelet::run_pod;
use crate::fixtures::{context_on, context_with, test_settings, FakeApi};
use crate::reconcile::camera::reconcile;
use crate::reconcile::status::{find, INGESTING, PROCESSORS_READY, READY, RECORDING};
use crate::rollout::RolloutGate;

/// What the fake worker answers, and the Authorization headers it was sent.
#[derive(Clone)]
struct FakeWorker {
    /// What the operator process has heard from it (kept across rounds, as in the operator).
    heard: Arc<Observations>,
    answer: Arc<Mutex<(StatusCode, Value)>>,
    seen_auth: Arc<Mutex<Vec<Option<String>>>>,
    required_token: Arc<Mutex<Option<String>>>,
    port: u16,
}

impl FakeWorker {
    async fn start(answer: Value) -> FakeWorker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let worker = FakeWorker {
            heard: Arc::default(),
            answer: Arc::new(Mutex::new((StatusCode::OK, answer))),
            seen_auth: Arc::default(),
            required_token: Arc::default(),
            port,
        };
        let app = Router::new()
            .route("/api/cameras/{camera}", get(answer_camera))
            .with_state(worker.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        worker
    }

    fn answer(&self, status: StatusCode, body: Value) {
        *self.answer.lock().expect("lock") = (status, body);
    }
}

async fn answer_camera(
    State(worker): State<FakeWorker>,
    Path(_camera): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    worker.seen_auth.lock().expect("lock").push(auth.clone());
    let required = worker.required_token.lock().expect("lock").clone();
    if let Some(token) = required {
        if auth.as_deref() != Some(format!("Bearer {token}").as_str()) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "token"})));
        }
    }
    let (status, body) = worker.answer.lock().expect("lock").clone();
    (status, Json(body))
}

fn live_answer() -> Value {
    json!({
        "name": "lobby", "live": true, "since": "2026-12-01T10:00:00.000Z",
        "publisher": "203.0.113.9:51234", "codec": "h264", "codec_string": "avc1.640028",
        "resolution": "1920x1080", "fps": 25.0, "bitrate": 4_012_000, "unsupported": [],
        "recording": {"state": "recording", "file": "lobby/2026-12-01/lobby-20261201T100000Z.mp4",
                      "bytes": 1_000_000, "last_error": null},
        "frames": {"processors": [{"name": "motion", "connected": true, "lag_seconds": 0.4}]},
    })
}

fn lobby() -> Camera {
    let mut cam = Camera::new("lobby", CameraSpec::default());
    cam.metadata.namespace = Some("cams".into());
    cam.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    cam
}

fn motion() -> FrameProcessor {
    let mut fp = FrameProcessor::new(
        "motion",
        FrameProcessorSpec {
            image: "motion:1".into(),
            fps: 1.0,
            max_in_flight: 1,
            ..Default::default()
        },
    );
    fp.metadata.namespace = Some("cams".into());
    fp
}

/// A camera with a running pod (all containers ready) and a bound claim.
async fn running(cam: Camera) -> FakeApi {
    let api = FakeApi::new();
    api.insert(&cam);
    api.insert(&motion());
    round_without_worker(&api).await;
    run_pod(&api, "lobby", &[]);
    let mut claim: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        api.get("cams", "lobby-recordings").expect("claim");
    claim.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        ..Default::default()
    });
    api.insert(&claim);
    api
}

async fn round_without_worker(api: &FakeApi) {
    let ctx = context_on(
        api,
        test_settings("kamera-worker:1"),
        &Arc::new(RolloutGate::new(2)),
    );
    let cam = api.get::<Camera>("cams", "lobby").expect("camera");
    reconcile(Arc::new(cam), ctx).await.expect("reconciled");
}

/// One poll of the worker, then one reconcile with what it said.
async fn round(api: &FakeApi, worker: &FakeWorker) -> CameraStatus {
    let ctx = context_with(
        api,
        test_settings("kamera-worker:1"),
        &Arc::new(RolloutGate::new(2)),
        &worker.heard,
    );
    // The operator's token is known once a reconcile wrote it; ask with it like the poller.
    let cam = api.get::<Camera>("cams", "lobby").expect("camera");
    reconcile(Arc::new(cam), ctx.clone())
        .await
        .expect("reconciled");
    poll_once(
        &ctx.stores,
        &ctx.observations,
        &WorkerProbe::new(worker.port).expect("probe"),
    )
    .await;
    let cam = api.get::<Camera>("cams", "lobby").expect("camera");
    reconcile(Arc::new(cam), ctx).await.expect("reconciled");
    api.get::<Camera>("cams", "lobby")
        .and_then(|c| c.status)
        .expect("status")
}

fn reason(status: &CameraStatus, type_: &str) -> (String, String) {
    let c = find(&status.conditions, type_).unwrap_or_else(|| panic!("{type_}"));
    (c.status.clone(), c.reason.clone())
}

/// Every request other than a GET since the `before`-th, as `METHOD path`.
fn writes_since(api: &FakeApi, before: usize) -> Vec<String> {
    api.received()[before..]
        .iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn event_reasons(api: &FakeApi) -> Vec<String> {
    api.writes_to("/events")
        .iter()
        .map(|e| e.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_live_camera_fills_every_status_field_and_condition() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    let status = round(&api, &worker).await;
    assert_eq!(status.live, Some(true));
    assert_eq!(status.resolution.as_deref(), Some("1920x1080"));
    assert_eq!(status.fps, Some(25.0));
    assert_eq!(status.bitrate, Some(4_012_000));
    assert_eq!(status.codec.as_deref(), Some("avc1.640028"));
    assert_eq!(status.since.as_deref(), Some("2026-12-01T10:00:00.000Z"));
    assert_eq!(status.publisher.as_deref(), Some("203.0.113.9:51234"));
    let recording = status.recording.clone().expect("recording");
    assert_eq!(recording.state, "recording");
    assert_eq!(status.processors[0].connected, Some(true));
    assert_eq!(
        status.processors[0].lag_seconds,
        Some(0.0),
        "lag in whole seconds"
    );
    assert_eq!(
        reason(&status, READY),
        ("True".into(), "WorkerReady".into())
    );
    assert_eq!(
        reason(&status, INGESTING),
        ("True".into(), "Publishing".into())
    );
    assert_eq!(
        reason(&status, PROCESSORS_READY),
        ("True".into(), "Running".into())
    );
    assert_eq!(
        reason(&status, RECORDING),
        ("True".into(), "Recording".into())
    );
    assert!(event_reasons(&api).contains(&"Live".to_string()));
    assert_eq!(
        worker.seen_auth.lock().expect("lock").last(),
        Some(&None),
        "no token needed"
    );
    api.assert_rbac();
}

#[tokio::test]
async fn an_unchanged_worker_state_patches_nothing() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    round(&api, &worker).await;
    let before = api.received().len();
    // Measured rates move a little, as they always do.
    let mut noisy = live_answer();
    noisy["fps"] = json!(24.97);
    noisy["bitrate"] = json!(3_990_000);
    worker.answer(StatusCode::OK, noisy);
    round(&api, &worker).await;
    let writes = writes_since(&api, before);
    assert!(writes.is_empty(), "wrote {writes:?}");
}

#[tokio::test]
async fn a_worker_that_stops_answering_is_a_condition_not_an_error() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    round(&api, &worker).await;
    worker.answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "boom"}));
    let status = round(&api, &worker).await;
    assert_eq!(
        reason(&status, INGESTING),
        ("False".into(), "WorkerUnreachable".into())
    );
    assert_eq!(status.live, None, "no stale live flag");
    assert!(event_reasons(&api).contains(&"Offline".to_string()));
}

#[tokio::test]
async fn a_camera_the_worker_released_says_since_when_nobody_publishes() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    round(&api, &worker).await;
    worker.answer(
        StatusCode::NOT_FOUND,
        json!({"error": "camera \"lobby\" was released: no publisher for --idle-release",
               "released_at": "2026-12-01T10:06:00.000Z", "last_seen": "2026-12-01T10:05:00.000Z"}),
    );
    let status = round(&api, &worker).await;
    let (ok, why) = reason(&status, INGESTING);
    assert_eq!((ok.as_str(), why.as_str()), ("False", "NoPublisher"));
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == INGESTING)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("no publisher since 2026-12-01T10:05:00.000Z"),
        "{message}"
    );
}

#[tokio::test]
async fn a_full_disk_stops_recording_and_says_so() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    round(&api, &worker).await;
    let mut full = live_answer();
    full["recording"] = json!({"state": "disk_low", "file": null, "bytes": 5,
        "last_error": {"reason": "no_space", "message": "free space below 5%"}});
    worker.answer(StatusCode::OK, full);
    let status = round(&api, &worker).await;
    assert_eq!(
        reason(&status, RECORDING),
        ("False".into(), "DiskFull".into())
    );
    assert_eq!(reason(&status, READY), ("False".into(), "DiskFull".into()));
    assert_eq!(
        reason(&status, INGESTING).0,
        "True",
        "the live stream goes on"
    );
    assert!(event_reasons(&api).contains(&"RecordingStopped".to_string()));
}

#[tokio::test]
async fn a_processor_that_runs_but_is_not_connected_is_reported() {
    let api = running(lobby()).await;
    let mut answer = live_answer();
    answer["frames"]["processors"] = json!([{"name": "motion", "connected": false}]);
    let worker = FakeWorker::start(answer).await;
    let status = round(&api, &worker).await;
    assert_eq!(
        reason(&status, PROCESSORS_READY),
        ("False".into(), "NotConnected".into())
    );
    assert_eq!(status.processors[0].connected, Some(false));
    assert_eq!(
        reason(&status, READY).0,
        "True",
        "a processor never makes the camera unready"
    );
}

#[tokio::test]
async fn a_camera_with_viewer_tokens_is_asked_with_the_operators_own_token() {
    let mut cam = lobby();
    cam.spec.http.tokens_secret_ref = Some(TokensSecretRef {
        name: "viewers".into(),
        key: "tokens".into(),
    });
    let api = FakeApi::new();
    api.insert(&crate::fixtures::viewers_secret());
    api.insert(&cam);
    api.insert(&motion());
    round_without_worker(&api).await;
    run_pod(&api, "lobby", &[]);

    let written: Secret = api.get("cams", "lobby-http-tokens").expect("tokens Secret");
    let file = written
        .data
        .and_then(|d| d.get("tokens").cloned())
        .map(|b| String::from_utf8(b.0).expect("utf-8"))
        .expect("tokens file");
    assert!(
        file.starts_with("viewer-token-0123456789 live:*\n"),
        "{file}"
    );
    let token = crate::reconcile::build_storage::operator_token_in(&file).expect("operator token");

    let worker = FakeWorker::start(live_answer()).await;
    *worker.required_token.lock().expect("lock") = Some(token.clone());
    let status = round(&api, &worker).await;
    assert_eq!(
        reason(&status, INGESTING).1,
        "Publishing",
        "the worker let the operator in"
    );
    assert_eq!(
        worker
            .seen_auth
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .flatten(),
        Some(format!("Bearer {token}"))
    );
    // The token survives reconciles: the Secret is not rewritten.
    let before = api.writes_to("/secrets/lobby-http-tokens").len();
    round(&api, &worker).await;
    assert_eq!(api.writes_to("/secrets/lobby-http-tokens").len(), before);

    let deployment: k8s_openapi::api::apps::v1::Deployment =
        api.get("cams", "lobby").expect("deployment");
    let args = deployment.spec.template.spec.expect("pod").containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--http-tokens-file" && w[1] == "/etc/kamera/http-tokens/tokens"),
        "{args:?}"
    );
    api.assert_rbac();
}

#[tokio::test]
async fn a_restarted_operator_keeps_the_workers_word_until_it_answers_again() {
    let api = running(lobby()).await;
    let worker = FakeWorker::start(live_answer()).await;
    round(&api, &worker).await;
    let before = api.received().len();
    // A new operator process: nothing heard yet, the worker not asked yet.
    let ctx = context_on(
        &api,
        test_settings("kamera-worker:1"),
        &Arc::new(RolloutGate::new(2)),
    );
    let cam = api.get::<Camera>("cams", "lobby").expect("camera");
    reconcile(Arc::new(cam), ctx).await.expect("reconciled");
    let writes: Vec<String> = api.received()[before..]
        .iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "a restart is not the camera going offline: {writes:?}"
    );
}

fn pulled_lobby() -> Camera {
    use crate::crd::camera::{RtspSource, SourceSpec};
    let mut cam = lobby();
    cam.spec.source = Some(SourceSpec {
        rtsp: Some(RtspSource {
            url: "rtsp://10.0.0.7/stream1".into(),
            ..Default::default()
        }),
    });
    cam
}

fn pull_answer(state: &str, last_error: Option<&str>, retry_in_ms: u64) -> Value {
    json!({
        "name": "lobby", "live": false, "unsupported": [],
        "source": {"kind": "rtsp", "url": "rtsp://10.0.0.7/stream1", "state": state,
                   "since": "2026-12-01T10:00:00.000Z", "last_error": last_error,
                   "failures": retry_in_ms / 1000, "retry_in_ms": retry_in_ms},
    })
}

#[tokio::test]
async fn a_failing_pull_is_ingesting_false_with_the_workers_error_and_its_retries_write_nothing() {
    let api = running(pulled_lobby()).await;
    let refused = "the camera refused the credentials (401 Unauthorized)";
    let worker = FakeWorker::start(pull_answer("backoff", Some(refused), 4000)).await;
    let status = round(&api, &worker).await;
    assert_eq!(
        status.ingest_url.as_deref(),
        Some("rtsp://10.0.0.7/stream1")
    );
    let ingesting = find(&status.conditions, INGESTING).expect("Ingesting");
    assert_eq!(
        (ingesting.status.as_str(), ingesting.reason.as_str()),
        ("False", "PullFailed")
    );
    assert!(ingesting.message.contains(refused), "{}", ingesting.message);

    // The worker retries: connecting again, backing off again, counters moving.
    let before = api.received().len();
    worker.answer(StatusCode::OK, pull_answer("connecting", Some(refused), 0));
    round(&api, &worker).await;
    worker.answer(StatusCode::OK, pull_answer("backoff", Some(refused), 8000));
    round(&api, &worker).await;
    let writes = writes_since(&api, before);
    assert!(writes.is_empty(), "wrote {writes:?}");
}

#[tokio::test]
async fn a_pull_that_plays_is_ingesting_with_its_url_and_a_live_event() {
    let api = running(pulled_lobby()).await;
    let mut playing = live_answer();
    playing["publisher"] = Value::Null;
    playing["source"] = json!({"kind": "rtsp", "state": "playing", "last_error": null});
    let worker = FakeWorker::start(playing).await;
    let status = round(&api, &worker).await;
    let ingesting = find(&status.conditions, INGESTING).expect("Ingesting");
    assert_eq!(
        (ingesting.status.as_str(), ingesting.reason.as_str()),
        ("True", "Pulling")
    );
    assert!(
        ingesting.message.ends_with("from rtsp://10.0.0.7/stream1"),
        "{}",
        ingesting.message
    );
    let live = api
        .writes_to("/events")
        .into_iter()
        .find(|e| e.body["reason"] == "Live")
        .expect("a Live event");
    assert_eq!(
        live.body["note"],
        "the camera went live: pulling rtsp://10.0.0.7/stream1"
    );
}
