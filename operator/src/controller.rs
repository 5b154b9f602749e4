//! Wiring: the Camera and FrameProcessor controllers, their watches and the shared context.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::reconcile::names::{publish_key_secret_name, CAMERA_LABEL};
use crate::reconcile::resolve::selects;
use crate::reconcile::{camera, processor};

/// Operator-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker image for Cameras that name none.
    pub worker_image: String,
}

/// What every reconcile gets.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// All FrameProcessors in scope (kept by the FrameProcessor controller's watch).
    pub processors: Store<FrameProcessor>,
    /// All Cameras in scope (kept by the Camera controller's watch).
    pub cameras: Store<Camera>,
    /// Operator settings.
    pub settings: Settings,
}

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
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
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

/// Cameras that reference a Secret as their stream key, or own it (the publish key Secret).
fn cameras_of_secret(cameras: &Store<Camera>, secret: &Secret) -> Vec<ObjectRef<Camera>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    cameras
        .state()
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            let referenced = c
                .spec
                .ingest
                .stream_key_secret_ref
                .as_ref()
                .is_some_and(|r| r.name == name);
            referenced || publish_key_secret_name(&c.name_any()) == name
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Runs both controllers until `shutdown` fires.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: Metrics,
    reporter: Reporter,
    shutdown: CancellationToken,
) {
    let ns = namespace.as_deref();
    let cameras_api: Api<Camera> = api(&client, ns);
    let processors_api: Api<FrameProcessor> = api(&client, ns);
    let owned = watcher::Config::default().labels(CAMERA_LABEL);

    let camera_controller = Controller::new(cameras_api.clone(), watcher::Config::default());
    let processor_controller = Controller::new(processors_api.clone(), watcher::Config::default());
    let cameras = camera_controller.store();
    let processors = processor_controller.store();

    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        processors,
        cameras: cameras.clone(),
        settings,
    });

    let for_processors = cameras.clone();
    let for_secrets = cameras.clone();
    let camera_failures = Arc::new(Failures::default());
    let processor_failures = Arc::new(Failures::default());

    let stop = shutdown.clone();
    let cf = camera_failures.clone();
    let camera_loop = camera_controller
        .owns(api::<Deployment>(&client, ns), owned.clone())
        .owns(api::<Service>(&client, ns), owned.clone())
        .owns(api::<PersistentVolumeClaim>(&client, ns), owned)
        .watches(
            processors_api.clone(),
            watcher::Config::default(),
            move |fp| cameras_of_processor(&for_processors, &fp),
        )
        .watches(
            api::<Secret>(&client, ns),
            watcher::Config::default(),
            move |s| cameras_of_secret(&for_secrets, &s),
        )
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

    let stop = shutdown.clone();
    let pf = processor_failures.clone();
    let processor_loop = processor_controller
        .watches(cameras_api, watcher::Config::default(), {
            let processors = ctx.processors.clone();
            move |cam: Camera| {
                processors
                    .state()
                    .iter()
                    .filter(|p| p.namespace() == cam.namespace())
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            }
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
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
