//! Pool processors against the in-process fake API, both reconcilers together: what a GPU
//! FrameProcessor makes, what changing it writes (and does not write), and switching modes.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{EnvVar, Secret};
use serde_json::Value;

use super::*;
use crate::crd::processor::FrameProcessorSpec;
use crate::fixtures::kubelet::{kubelet_step, pool_ready, restarting};
use crate::fixtures::{context_on, context_with, l4_gpu, pool_report, test_settings, FakeApi};
use crate::reconcile::camera;
use crate::reconcile::test_camera;
use crate::rollout::RolloutGate;

const IMAGE: &str = "kamera-worker:1";
const POOL_DEPLOY: &str = "/apis/apps/v1/namespaces/cams/deployments/yolo-pool";
const POOL_SVC: &str = "/api/v1/namespaces/cams/services/yolo-pool";
const POOL_TOKEN: &str = "/api/v1/namespaces/cams/secrets/yolo-pool-token";
const FP_STATUS: &str = "/apis/kamera.dev/v1alpha1/namespaces/cams/frameprocessors/yolo/status";

fn lobby_camera(name: &str) -> Camera {
    let mut cam = test_camera(name);
    cam.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    cam
}

/// `yolo` on a GPU node for the lobby cameras, in its default mode (a pool).
fn yolo() -> FrameProcessor {
    let mut fp = FrameProcessor::new(
        "yolo",
        FrameProcessorSpec {
            image: "yolo:1".into(),
            fps: 1.0,
            max_in_flight: 1,
            gpu: Some(l4_gpu(1)),
            ..Default::default()
        },
    );
    fp.metadata.namespace = Some("cams".into());
    fp.spec.camera_selector.match_labels =
        Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
    fp
}

fn cluster(cameras: &[&str], processor: FrameProcessor) -> FakeApi {
    let api = FakeApi::new();
    for name in cameras {
        api.insert(&lobby_camera(name));
    }
    api.insert(&processor);
    api
}

async fn camera_pass(api: &FakeApi, name: &str, gate: &Arc<RolloutGate>) {
    let ctx = context_on(api, test_settings(IMAGE), gate);
    let cam = api.get::<Camera>("cams", name).expect("camera");
    tokio::time::timeout(
        Duration::from_secs(5),
        camera::reconcile(Arc::new(cam), ctx),
    )
    .await
    .expect("camera reconcile finished")
    .expect("camera reconciled");
}

async fn processor_pass_with(api: &FakeApi, observations: &Arc<Observations>) {
    let ctx = context_with(
        api,
        test_settings(IMAGE),
        &Arc::new(RolloutGate::new(2)),
        observations,
    );
    let fp = api
        .get::<FrameProcessor>("cams", "yolo")
        .expect("processor");
    tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(fp), ctx))
        .await
        .expect("processor reconcile finished")
        .expect("processor reconciled");
}

async fn processor_pass(api: &FakeApi) {
    processor_pass_with(api, &Arc::default()).await;
}

/// Edits the processor the way `kubectl apply` would (a new generation).
fn edit(api: &FakeApi, change: impl FnOnce(&mut FrameProcessor)) {
    let mut fp = api
        .get::<FrameProcessor>("cams", "yolo")
        .expect("processor");
    change(&mut fp);
    fp.metadata.generation = fp.metadata.generation.map(|g| g + 1);
    api.insert(&fp);
}

fn pod_spec(d: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    d.spec.template.spec.as_ref().expect("pod spec")
}

fn containers(d: &Deployment) -> Vec<String> {
    pod_spec(d)
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn worker_args(d: &Deployment) -> Vec<String> {
    pod_spec(d).containers[0].args.clone().unwrap_or_default()
}

/// Whether any key or string anywhere in `value` mentions a GPU.
fn mentions_gpu(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("gpu") || s == "nvidia",
        Value::Array(items) => items.iter().any(mentions_gpu),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains("gpu") || k == "runtimeClassName" || mentions_gpu(v)),
        _ => false,
    }
}

#[tokio::test]
async fn a_gpu_processor_yields_a_pool_and_no_camera_pod_carries_gpu_settings() {
    let api = cluster(&["lobby", "hall"], yolo());
    let gate = Arc::new(RolloutGate::new(2));
    processor_pass(&api).await;
    for cam in ["lobby", "hall"] {
        camera_pass(&api, cam, &gate).await;
    }
    api.assert_rbac();

    let pool: Deployment = api.get("cams", "yolo-pool").expect("pool Deployment");
    let pod = pod_spec(&pool);
    assert_eq!(pod.node_selector.as_ref().expect("selector")["gpu"], "l4");
    assert_eq!(pod.runtime_class_name.as_deref(), Some("nvidia"));
    assert!(pod.tolerations.is_some());
    let limits = pod.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits");
    assert!(limits.contains_key("nvidia.com/gpu"));
    let owner = &pool.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("FrameProcessor", "yolo")
    );
    let service: k8s_openapi::api::core::v1::Service =
        api.get("cams", "yolo-pool").expect("pool Service");
    assert_eq!(
        service.spec.and_then(|s| s.ports).expect("ports")[0].port,
        7700
    );
    let token: Secret = api.get("cams", "yolo-pool-token").expect("token Secret");
    let token = token.data.expect("data")["token"].0.clone();
    assert_eq!(token.len(), 64, "32 random bytes as hex");

    for cam in ["lobby", "hall"] {
        let d: Deployment = api.get("cams", cam).expect("camera Deployment");
        assert_eq!(containers(&d), ["worker"], "no sidecar for a pool");
        let json = serde_json::to_value(&d.spec.template).expect("json");
        assert!(!mentions_gpu(&json), "{cam}'s pod mentions a GPU: {json}");
        let args = worker_args(&d);
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--pool" && w[1] == "yolo=yolo-pool.cams.svc:7700"),
            "{args:?}"
        );
        let mounts = pod_spec(&d).containers[0]
            .volume_mounts
            .clone()
            .expect("mounts");
        assert!(mounts
            .iter()
            .any(|m| m.name == "pool-yolo" && m.mount_path == "/var/run/kamera-pools/yolo"));
    }
}

#[tokio::test]
async fn the_token_secret_is_created_once_and_never_overwritten() {
    let api = cluster(&["lobby"], yolo());
    // The camera gets there first: the Secret its pod mounts exists before the pod.
    camera_pass(&api, "lobby", &Arc::new(RolloutGate::new(2))).await;
    let made: Secret = api
        .get("cams", "yolo-pool-token")
        .expect("made by the camera");
    // A user rotates the token by replacing the Secret.
    let mut rotated = made.clone();
    rotated.metadata.owner_references = None;
    rotated.data = Some(BTreeMap::from([(
        "token".to_string(),
        k8s_openapi::ByteString(b"rotated-by-a-user".to_vec()),
    )]));
    api.insert(&rotated);
    let before = api.received().len();
    processor_pass(&api).await;
    processor_pass(&api).await;
    let secret_writes: Vec<_> = api.received()[before..]
        .iter()
        .filter(|r| r.is_write() && r.path.contains("/secrets"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(secret_writes.is_empty(), "{secret_writes:?}");
    let kept: Secret = api.get("cams", "yolo-pool-token").expect("kept");
    assert_eq!(kept.data.expect("data")["token"].0, b"rotated-by-a-user");
    api.assert_rbac();
}

#[tokio::test]
async fn a_service_kamera_did_not_create_is_left_alone_and_the_pool_waits() {
    let api = cluster(&["lobby"], yolo());
    let mut theirs = k8s_openapi::api::core::v1::Service::default();
    theirs.metadata.name = Some("yolo-pool".into());
    theirs.metadata.namespace = Some("cams".into());
    api.insert(&theirs);
    processor_pass(&api).await;
    assert!(
        api.writes_to(POOL_SVC).is_empty(),
        "their Service is untouched"
    );
    assert!(api.get::<Deployment>("cams", "yolo-pool").is_none());
    let status = api
        .get::<FrameProcessor>("cams", "yolo")
        .and_then(|fp| fp.status)
        .expect("status");
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NameConflict")
    );
    assert!(
        ready.message.contains("Service cams/yolo-pool"),
        "{}",
        ready.message
    );
    api.assert_rbac();
}

#[tokio::test]
async fn scaling_or_changing_the_pool_writes_no_camera_deployment() {
    let api = cluster(&["lobby", "hall"], yolo());
    let gate = Arc::new(RolloutGate::new(2));
    processor_pass(&api).await;
    for cam in ["lobby", "hall"] {
        camera_pass(&api, cam, &gate).await;
    }
    kubelet_step(&api);
    kubelet_step(&api);
    let before = api.received().len();

    type Change = Box<dyn FnOnce(&mut FrameProcessor)>;
    let changes: Vec<Change> = vec![
        Box::new(|fp| fp.spec.replicas = Some(4)),
        Box::new(|fp| fp.spec.image = "yolo:2".into()),
        Box::new(|fp| fp.spec.fps = 0.5),
        Box::new(|fp| fp.spec.max_in_flight = 8),
        Box::new(|fp| {
            fp.spec.env = vec![EnvVar {
                name: "BATCH".into(),
                value: Some("16".into()),
                value_from: None,
            }]
        }),
        Box::new(|fp| {
            if let Some(gpu) = fp.spec.gpu.as_mut() {
                gpu.count = 2;
                gpu.node_selector.insert("gpu".into(), "h100".into());
            }
        }),
    ];
    let rounds = changes.len();
    for change in changes {
        edit(&api, change);
        processor_pass(&api).await;
        for cam in ["lobby", "hall"] {
            camera_pass(&api, cam, &gate).await;
        }
    }

    let writes = &api.received()[before..];
    let camera_deployment_writes: Vec<String> = writes
        .iter()
        .filter(|r| r.is_write() && r.path.contains("/deployments/") && !r.path.contains("pool"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        camera_deployment_writes.is_empty(),
        "{camera_deployment_writes:?}"
    );
    let pool_writes = writes
        .iter()
        .filter(|r| r.method == Method::PATCH && r.path == POOL_DEPLOY)
        .count();
    assert_eq!(pool_writes, rounds, "each change reached the pool once");
    assert!(restarting(&api).is_empty(), "no camera restarted");
    let pool: Deployment = api.get("cams", "yolo-pool").expect("pool");
    assert_eq!(pool.spec.replicas, Some(4));
    api.assert_rbac();
}

/// Reconciles every camera until none restarts, checking the throttle after each reconcile;
/// true when `done` holds for every camera's Deployment at the end.
async fn roll_cameras(
    api: &FakeApi,
    cameras: &[&str],
    gate: &Arc<RolloutGate>,
    done: impl Fn(&Deployment) -> bool,
) -> usize {
    let mut most = 0;
    for round in 0..30 {
        for cam in cameras {
            camera_pass(api, cam, gate).await;
            let now = restarting(api);
            most = most.max(now.len());
            assert!(now.len() <= 1, "round {round}: {now:?} restart at once");
        }
        kubelet_step(api);
        let all_done = cameras
            .iter()
            .all(|c| api.get::<Deployment>("cams", c).is_some_and(|d| done(&d)));
        if all_done && restarting(api).is_empty() {
            return most;
        }
    }
    panic!("the cameras did not settle in 30 rounds");
}

#[tokio::test]
async fn switching_modes_moves_the_processor_cleanly_with_throttled_restarts() {
    let mut sidecar = yolo();
    sidecar.spec.mode = Some(ProcessorMode::Sidecar);
    let cameras = ["cam-0", "cam-1", "cam-2"];
    let api = cluster(&cameras, sidecar);
    let gate = Arc::new(RolloutGate::new(1));
    processor_pass(&api).await;
    for cam in cameras {
        camera_pass(&api, cam, &gate).await;
    }
    kubelet_step(&api);
    kubelet_step(&api);
    for cam in cameras {
        let d: Deployment = api.get("cams", cam).expect("deployment");
        assert_eq!(containers(&d), ["worker", "processor-yolo"]);
    }
    assert!(api.get::<Deployment>("cams", "yolo-pool").is_none());

    // sidecar → pool
    edit(&api, |fp| fp.spec.mode = Some(ProcessorMode::Pool));
    processor_pass(&api).await;
    assert!(api.get::<Deployment>("cams", "yolo-pool").is_some());
    let most = roll_cameras(&api, &cameras, &gate, |d| {
        containers(d) == ["worker"] && worker_args(d).contains(&"--pool".to_string())
    })
    .await;
    assert_eq!(most, 1, "one camera at a time");
    let queued = api
        .writes_to("/events")
        .iter()
        .any(|e| e.body["reason"] == "UpdateQueued");
    assert!(queued, "the other cameras waited their turn");
    for cam in cameras {
        let d: Deployment = api.get("cams", cam).expect("deployment");
        assert!(!mentions_gpu(
            &serde_json::to_value(&d.spec.template).expect("json")
        ));
    }

    // pool → sidecar
    let before = api.received().len();
    edit(&api, |fp| fp.spec.mode = Some(ProcessorMode::Sidecar));
    processor_pass(&api).await;
    assert!(
        api.get::<Deployment>("cams", "yolo-pool").is_none(),
        "pool Deployment deleted"
    );
    assert!(
        api.get::<k8s_openapi::api::core::v1::Service>("cams", "yolo-pool")
            .is_none(),
        "pool Service deleted"
    );
    let deletes: Vec<String> = api.received()[before..]
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deletes, [POOL_DEPLOY, POOL_SVC]);
    let most = roll_cameras(&api, &cameras, &gate, |d| {
        containers(d) == ["worker", "processor-yolo"]
            && !worker_args(d).contains(&"--pool".to_string())
    })
    .await;
    assert_eq!(most, 1, "one camera at a time");
    // A later pass finds nothing more to delete.
    let before = api.received().len();
    processor_pass(&api).await;
    assert!(api.received()[before..]
        .iter()
        .all(|r| r.method != Method::DELETE));
    assert!(
        api.writes_to(POOL_TOKEN).len() <= 1,
        "the token was made once"
    );
    let status = api
        .get::<FrameProcessor>("cams", "yolo")
        .and_then(|fp| fp.status)
        .expect("status");
    assert_eq!(status.mode, Some(ProcessorMode::Sidecar));
    assert_eq!(status.pool, None);
    api.assert_rbac();
}

#[tokio::test]
async fn the_processor_status_follows_the_pool_deployment_and_the_workers() {
    let api = cluster(&["lobby", "hall"], yolo());
    let gate = Arc::new(RolloutGate::new(2));
    let heard = Arc::new(Observations::default());
    processor_pass_with(&api, &heard).await;
    let status = |api: &FakeApi| {
        api.get::<FrameProcessor>("cams", "yolo")
            .and_then(|fp| fp.status)
            .expect("status")
    };
    let first = status(&api);
    assert_eq!(first.pool.as_ref().map(|p| p.summary.as_str()), Some("0/1"));
    assert_eq!(first.conditions[0].reason, "PoolStarting");

    // The pool's pod turns ready; lobby's worker sends frames to it, hall's cannot reach it.
    pool_ready(&api, "yolo", 1);
    let t0 = tokio::time::Instant::now();
    heard.record_at("cams/lobby", pool_report("yolo", true, 100, None), t0);
    heard.record_at(
        "cams/lobby",
        pool_report("yolo", true, 120, None),
        t0 + Duration::from_secs(10),
    );
    heard.record_at(
        "cams/hall",
        pool_report(
            "yolo",
            false,
            0,
            Some("connecting to yolo-pool.cams.svc:7700: connection refused"),
        ),
        t0,
    );
    for cam in ["lobby", "hall"] {
        let ctx = context_with(&api, test_settings(IMAGE), &gate, &heard);
        let c = api.get::<Camera>("cams", cam).expect("camera");
        camera::reconcile(Arc::new(c), ctx).await.expect("camera");
    }
    kubelet_step(&api);
    for cam in ["lobby", "hall"] {
        let ctx = context_with(&api, test_settings(IMAGE), &gate, &heard);
        let c = api.get::<Camera>("cams", cam).expect("camera");
        camera::reconcile(Arc::new(c), ctx).await.expect("camera");
    }
    let hall = api
        .get::<Camera>("cams", "hall")
        .and_then(|c| c.status)
        .expect("hall");
    let attached = &hall.processors[0];
    assert!(!attached.ready);
    assert!(
        attached
            .message
            .as_deref()
            .is_some_and(|m| m.contains("connection refused")),
        "{attached:?}"
    );
    processor_pass_with(&api, &heard).await;
    let now = status(&api);
    assert_eq!(now.pool.as_ref().map(|p| p.summary.as_str()), Some("1/1"));
    assert_eq!(now.conditions[0].reason, "PoolReady");
    assert_eq!(now.conditions[0].status, "True");
    assert_eq!(now.connected_cameras, ["lobby"]);
    assert_eq!(now.connected_camera_count, 1);
    assert_eq!(now.matched_cameras, ["hall", "lobby"]);
    assert_eq!(now.frames_per_second, Some(2.0));
    assert_eq!(
        now.last_error.as_deref(),
        Some("hall: connecting to yolo-pool.cams.svc:7700: connection refused")
    );

    // Nothing changed: nothing is written.
    let before = api.writes_to(FP_STATUS).len();
    processor_pass_with(&api, &heard).await;
    assert_eq!(
        api.writes_to(FP_STATUS).len(),
        before,
        "status patched only on change"
    );
    api.assert_rbac();
}
