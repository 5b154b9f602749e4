//! Wiring: the watches that fill the caches, the Camera and FrameProcessor controllers, and
//! which change wakes which Camera.
//!
//! Watches and what they are for:
//! - Cameras and FrameProcessors: the primary objects. Only spec (generation) and label changes
//!   wake their own reconciler, so a status write never triggers another reconcile.
//! - Deployments, Services, claims and pods labelled with a camera: caches the reconciler reads
//!   (so that an unchanged object is never written again) and triggers for status.
//! - Pool Deployments (labelled with a processor): the same for FrameProcessors in pool mode.
//! - Secrets are never watched: a Camera reads the Secrets it names (stream key, viewer tokens,
//!   RTSP credentials) by name, and looks again every minute.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{predicates, watcher, Predicate, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::{Context, Settings, Stores};
use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::error::Error;
use crate::events::EventPublisher;
use crate::metrics::Metrics;
use crate::observe::{self, WorkerProbe};
use crate::reconcile::names::{CAMERA_LABEL, PROCESSOR_LABEL};
use crate::reconcile::resolve::selects;
use crate::reconcile::{camera, processor};
use crate::rollout::RolloutGate;

/// Requeue delay after the n-th consecutive failure of one object: 5 s doubling to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_secs(secs.min(300))
}

/// Per-object failure counts, for exponential backoff.
#[derive(Default)]
struct Failures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Failures {
    fn bump(&self, key: String) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn clear(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Cameras a FrameProcessor selects now, or lists in their status (it used to select them).
fn cameras_of_processor(cameras: &Store<Camera>, fp: &FrameProcessor) -> Vec<ObjectRef<Camera>> {
    let namespace = fp.namespace();
    let name = fp.name_any();
    cameras
        .state()
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            selects(&fp.spec.camera_selector, c.labels())
                || c.status
                    .as_ref()
                    .is_some_and(|s| s.processors.iter().any(|p| p.name == name))
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The Camera an object labelled `kamera.dev/camera` belongs to.
fn camera_of<K: Resource>(object: &K) -> Option<ObjectRef<Camera>> {
    let name = object.meta().labels.as_ref()?.get(CAMERA_LABEL)?;
    let namespace = object.meta().namespace.as_deref()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// The FrameProcessor a pool object (labelled `kamera.dev/processor`) belongs to.
fn processor_of<K: Resource>(object: &K) -> Option<ObjectRef<FrameProcessor>> {
    let name = object.meta().labels.as_ref()?.get(PROCESSOR_LABEL)?;
    let namespace = object.meta().namespace.as_deref()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// A watch of objects carrying `label` (a camera's, or a pool's), reflected into a cache; the
/// stream wakes their owner on every change (deletions included).
fn labelled<K>(
    client: &Client,
    namespace: Option<&str>,
    label: &str,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(
        api::<K>(client, namespace),
        watcher::Config::default().labels(label),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    (reader, stream)
}

/// Only what the user changed wakes a reconcile: spec (generation) and labels.
fn spec_or_labels<K: Resource>() -> impl Predicate<K> {
    (predicates::generation as fn(&K) -> Option<u64>)
        .combine(predicates::labels as fn(&K) -> Option<u64>)
}

/// Runs both controllers until `shutdown` fires.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    probe: WorkerProbe,
    metrics: Metrics,
    identity: &str,
    shutdown: CancellationToken,
) {
    let ns = namespace.as_deref();
    let cameras_api: Api<Camera> = api(&client, ns);
    let processors_api: Api<FrameProcessor> = api(&client, ns);

    let (cameras, camera_writer) = reflector::store();
    let camera_stream = watcher(cameras_api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(camera_writer)
        .applied_objects()
        .predicate_filter(spec_or_labels(), Default::default());
    let (processors, processor_writer) = reflector::store();
    let processor_stream = watcher(processors_api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(processor_writer)
        .applied_objects()
        .predicate_filter(spec_or_labels(), Default::default());
    let (deployments, deployment_stream) = labelled::<Deployment>(&client, ns, CAMERA_LABEL);
    let (services, service_stream) = labelled::<Service>(&client, ns, CAMERA_LABEL);
    let (claims, claim_stream) = labelled::<PersistentVolumeClaim>(&client, ns, CAMERA_LABEL);
    let (pods, pod_stream) = labelled::<Pod>(&client, ns, CAMERA_LABEL);
    let (pools, pool_stream) = labelled::<Deployment>(&client, ns, PROCESSOR_LABEL);

    let ctx = Arc::new(Context {
        client: client.clone(),
        events: EventPublisher::new(client.clone(), "kamera-operator", identity),
        metrics,
        stores: Stores {
            cameras: cameras.clone(),
            processors: processors.clone(),
            deployments,
            pools,
            services,
            claims,
            pods,
        },
        rollouts: Arc::new(RolloutGate::new(settings.max_concurrent_restarts)),
        settings,
        observations: Default::default(),
    });

    // The workers' own word on their cameras; a change wakes that Camera's reconcile.
    let (worker_changed, worker_changes) = tokio::sync::mpsc::channel(256);
    let poller = tokio::spawn(observe::poll(
        ctx.stores.clone(),
        ctx.observations.clone(),
        probe,
        worker_changed,
        shutdown.clone(),
    ));
    let worker_changes = futures::stream::unfold(worker_changes, |mut rx| async move {
        rx.recv().await.map(|camera| (camera, rx))
    });

    let camera_failures = Arc::new(Failures::default());
    let processor_failures = Arc::new(Failures::default());

    // A processor's spec or labels changing, or its deletion, re-plans the Cameras it selects.
    let processor_changes = watcher(processors_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let for_processors = cameras.clone();
    let stop = shutdown.clone();
    let cf = camera_failures.clone();
    let camera_loop = Controller::for_stream(camera_stream, cameras.clone())
        .watches_stream(deployment_stream, |d| camera_of(&d))
        .watches_stream(service_stream, |s| camera_of(&s))
        .watches_stream(claim_stream, |c| camera_of(&c))
        .watches_stream(pod_stream, |p| camera_of(&p))
        .watches_stream(processor_changes, move |fp| {
            cameras_of_processor(&for_processors, &fp)
        })
        .reconcile_on(worker_changes)
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(
            move |cam, ctx| {
                let cf = cf.clone();
                async move {
                    let key = format!("{}/{}", cam.namespace().unwrap_or_default(), cam.name_any());
                    let result = camera::reconcile(cam, ctx).await;
                    if result.is_ok() {
                        cf.clear(&key);
                    }
                    result
                }
            },
            move |cam: Arc<Camera>, error: &Error, ctx: Arc<Context>| {
                let key = format!("{}/{}", cam.namespace().unwrap_or_default(), cam.name_any());
                error_policy("camera", &key, error, &ctx, &camera_failures)
            },
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "camera controller");
            }
        });

    // A Camera appearing, going, or changing labels changes what each processor matches.
    // (Deletions included, so no predicate: a Camera's status write only recomputes matches.)
    let camera_changes = watcher(cameras_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let stop = shutdown.clone();
    let pf = processor_failures.clone();
    let processor_loop = Controller::for_stream(processor_stream, processors.clone())
        .watches_stream(pool_stream, |d| processor_of(&d))
        .watches_stream(camera_changes, move |cam: Camera| {
            processors
                .state()
                .iter()
                .filter(|p| p.namespace() == cam.namespace())
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(
            move |fp, ctx| {
                let pf = pf.clone();
                async move {
                    let key = format!("{}/{}", fp.namespace().unwrap_or_default(), fp.name_any());
                    let result = processor::reconcile(fp, ctx).await;
                    if result.is_ok() {
                        pf.clear(&key);
                    }
                    result
                }
            },
            move |fp: Arc<FrameProcessor>, error: &Error, ctx: Arc<Context>| {
                let key = format!("{}/{}", fp.namespace().unwrap_or_default(), fp.name_any());
                error_policy("frameprocessor", &key, error, &ctx, &processor_failures)
            },
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "frameprocessor controller");
            }
        });

    info!(namespace = ns.unwrap_or("<all>"), "controllers started");
    futures::join!(camera_loop, processor_loop);
    poller.abort();
    info!("controllers stopped");
}

fn error_policy(
    kind: &'static str,
    key: &str,
    error: &Error,
    ctx: &Context,
    failures: &Failures,
) -> Action {
    let n = failures.bump(key.to_string());
    let delay = backoff(n);
    warn!(kind, object = key, error = %error, retry_in = ?delay, "reconcile failed");
    ctx.metrics.reconcile_failed(kind, error.metric_label());
    Action::requeue(delay)
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod controller_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
