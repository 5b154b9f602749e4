//! The whole operator (watches, caches, both controllers) against the in-process fake API:
//! an operator restart or a leader change over running cameras and pools writes no Deployment.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::apps::v1::Deployment;

use super::*;
use crate::crd::camera::CameraSpec;
use crate::crd::processor::{FrameProcessorSpec, GpuSpec};
use crate::fixtures::kubelet::{kubelet_step, pool_ready};
use crate::fixtures::{context_on, context_with, test_settings, FakeApi};
use crate::observe::WorkerProbe;
use crate::rollout::RolloutGate;

const IMAGE: &str = "kamera-worker:1";

/// A worker endpoint on the loopback address that knows no stream yet (404 for every camera), as
/// freshly started workers answer; returns its port and how many questions it answered.
async fn idle_workers() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async {
            (
                axum::http::StatusCode::NOT_FOUND,
                "{\"error\":\"unknown camera\"}",
            )
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, asked)
}

/// A cluster as a previous operator left it: cameras with processors, every object applied,
/// every pod running, the status as the workers (`probe`) report.
async fn running_cluster(cameras: usize, probe: &WorkerProbe) -> FakeApi {
    let api = FakeApi::new();
    for i in 0..cameras {
        let mut cam = Camera::new(&format!("cam-{i}"), CameraSpec::default());
        cam.metadata.namespace = Some("cams".into());
        cam.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "lobby".to_string())]));
        api.insert(&cam);
    }
    // `motion` runs as a sidecar of every camera, `yolo` (with a GPU) as a pool they share.
    for name in ["motion", "yolo"] {
        let mut fp = FrameProcessor::new(
            name,
            FrameProcessorSpec {
                image: format!("{name}:1"),
                fps: 1.0,
                max_in_flight: 1,
                gpu: (name == "yolo").then(GpuSpec::default),
                ..Default::default()
            },
        );
        fp.metadata.namespace = Some("cams".into());
        api.insert(&fp);
    }
    let gate = Arc::new(RolloutGate::new(cameras));
    for i in 0..cameras {
        let ctx = context_on(&api, test_settings(IMAGE), &gate);
        let cam = api
            .get::<Camera>("cams", &format!("cam-{i}"))
            .expect("camera");
        camera::reconcile(Arc::new(cam), ctx).await.expect("set up");
    }
    kubelet_step(&api);
    kubelet_step(&api);
    let heard = Arc::new(crate::observe::Observations::default());
    let ctx = context_with(&api, test_settings(IMAGE), &gate, &heard);
    crate::observe::poll_once(&ctx.stores, &ctx.observations, probe).await;
    for i in 0..cameras {
        let ctx = context_with(&api, test_settings(IMAGE), &gate, &heard);
        let cam = api
            .get::<Camera>("cams", &format!("cam-{i}"))
            .expect("camera");
        camera::reconcile(Arc::new(cam), ctx)
            .await
            .expect("status of the running pods");
    }
    for name in ["motion", "yolo"] {
        let ctx = context_on(&api, test_settings(IMAGE), &gate);
        let fp = api.get::<FrameProcessor>("cams", name).expect("processor");
        processor::reconcile(Arc::new(fp), ctx)
            .await
            .expect("processor status");
    }
    pool_ready(&api, "yolo", 1);
    for name in ["motion", "yolo"] {
        let ctx = context_on(&api, test_settings(IMAGE), &gate);
        let fp = api.get::<FrameProcessor>("cams", name).expect("processor");
        processor::reconcile(Arc::new(fp), ctx)
            .await
            .expect("processor status with its pool ready");
    }
    let pool = api.get::<Deployment>("cams", "yolo-pool");
    assert!(pool.is_some(), "yolo runs as a pool");
    for d in api.all::<Deployment>() {
        if d.metadata.name.as_deref() == Some("yolo-pool") {
            continue;
        }
        let containers = d.spec.template.spec.map(|s| s.containers.len());
        assert_eq!(containers, Some(2), "worker and the motion sidecar");
    }
    api
}

/// Runs one operator process on `api` with the FrameProcessor list held back until every other
/// list has been answered, then lets it reconcile every camera several times, and stops it.
async fn start_operator_with_processors_loading_last(
    api: &FakeApi,
    cameras: u64,
    probe: &WorkerProbe,
) {
    let hold = api.hold_lists("frameprocessors");
    let metrics = Metrics::new().expect("metrics");
    let shutdown = CancellationToken::new();
    let operator = tokio::spawn(run(
        api.client(),
        None,
        test_settings(IMAGE),
        probe.clone(),
        metrics.clone(),
        "operator-under-test",
        shutdown.clone(),
    ));
    let listed = |resource: &str| {
        api.received().iter().any(|r| {
            r.method == Method::GET && r.path.ends_with(resource) && !r.query.contains("watch=true")
        })
    };
    let others = [
        "cameras",
        "deployments",
        "services",
        "persistentvolumeclaims",
        "pods",
    ];
    tokio::time::timeout(Duration::from_secs(60), async {
        while !others.iter().all(|r| listed(r)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every other cache was listed");
    // Cameras are known now; time passes while the processors are still loading.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        metrics.reconciles("camera"),
        0,
        "no camera was reconciled without its processors"
    );
    hold.send(true).expect("release the processor list");
    tokio::time::timeout(Duration::from_secs(3_600), async {
        while metrics.reconciles("camera") < 3 * cameras {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
    .expect("every camera reconciled several times");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), operator)
        .await
        .expect("the operator stops")
        .expect("operator task");
}

#[tokio::test(start_paused = true)]
async fn a_restart_and_a_leader_change_write_no_deployment_even_when_processors_load_last() {
    let (port, asked) = idle_workers().await;
    let probe = WorkerProbe::new(port).expect("probe");
    let api = running_cluster(4, &probe).await;
    let asked_in_setup = asked.load(std::sync::atomic::Ordering::SeqCst);
    let before = api.received().len();

    // The operator restarts.
    start_operator_with_processors_loading_last(&api, 4, &probe).await;
    // Another replica takes over (a leader change): a fresh process with empty caches.
    start_operator_with_processors_loading_last(&api, 4, &probe).await;

    let deployment_writes: Vec<String> = api.received()[before..]
        .iter()
        .filter(|r| r.is_write() && r.path.contains("/deployments"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(deployment_writes.is_empty(), "wrote {deployment_writes:?}");
    assert!(
        asked.load(std::sync::atomic::Ordering::SeqCst) >= asked_in_setup + 4,
        "each operator asked the workers, and what they said changed nothing"
    );
    let other_writes: Vec<String> = api.received()[before..]
        .iter()
        .filter(|r| r.method == Method::PATCH)
        .map(|r| r.path.clone())
        .collect();
    assert!(
        other_writes.is_empty(),
        "applied or patched {other_writes:?}"
    );
    let secrets_watched = api.received().iter().any(|r| {
        r.path.contains("/secrets") && r.method == Method::GET && !r.path.contains("/namespaces/")
    });
    assert!(!secrets_watched, "Secrets are never listed or watched");
    api.assert_rbac();
}
