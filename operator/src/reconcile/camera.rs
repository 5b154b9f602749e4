//! The Camera reconciler: the recipe, in order. Each step is a pure function from `super`;
//! this file only does the I/O between them (read the stream key, apply, status, events).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn};

use crate::controller::Context;
use crate::crd::camera::{AttachedProcessor, Camera, CameraStatus, SecretKeyRef};
use crate::error::Error;
use crate::reconcile::build_deployment::{build_deployment, deployment_config_hash, WorkerPod};
use crate::reconcile::build_service::build_service;
use crate::reconcile::build_storage::{build_publish_key_secret, build_pvc};
use crate::reconcile::names::{workload_name, FIELD_MANAGER, HTTP_PORT, RTMP_PORT};
use crate::reconcile::resolve::{resolve_processors, ResolvedProcessor};
use crate::reconcile::schedule::schedule;
use crate::reconcile::status::{find, settle_conditions, Cond, PROCESSORS_READY, READY};
use crate::reconcile::validate::validate_camera;
use crate::reconcile::CameraRef;

/// How often a healthy Camera is looked at again without any change.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a Camera waiting on something outside its spec (a Secret) is retried.
const RETRY: Duration = Duration::from_secs(60);

/// What one reconcile decided: the status to write and the events to publish.
struct Outcome {
    status: CameraStatus,
    conditions: Vec<Cond>,
    events: Vec<Event>,
    action: Action,
}

/// Reconciles one Camera.
pub async fn reconcile(camera: Arc<Camera>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer("camera");
    let at = CameraRef::of(&camera).ok_or(Error::Unnamed { kind: "Camera" })?;
    if camera.metadata.deletion_timestamp.is_some() {
        // Owned objects go with the Camera (garbage collection); a retained PVC stays.
        return Ok(Action::await_change());
    }
    let outcome = plan_and_apply(&camera, &at, &ctx).await?;
    finish(&camera, &at, &ctx, outcome).await
}

async fn plan_and_apply(camera: &Camera, at: &CameraRef, ctx: &Context) -> Result<Outcome, Error> {
    let previous = camera.status.clone().unwrap_or_default();

    // 1. validate
    if let Err(e) = validate_camera(camera) {
        let message = e.to_string();
        warn!(camera = %at.name, namespace = %at.namespace, error = %message, "invalid Camera spec");
        return Ok(Outcome {
            status: previous.clone(),
            conditions: vec![Cond::no(READY, "InvalidSpec", message.clone())],
            events: warn_if_new(&previous, READY, "InvalidSpec", &message),
            action: Action::await_change(),
        });
    }

    // 2. resolve the processors that select this camera
    let processors = resolve_processors(camera, &ctx.processors.state());

    // 3. schedule: a conflict leaves the running pod as it is
    let scheduling = match schedule(&camera.spec.worker, &processors) {
        Ok(s) => s,
        Err(conflict) => {
            let message = format!("processors cannot share one pod: {conflict}");
            warn!(camera = %at.name, namespace = %at.namespace, %message, "scheduling conflict");
            let mut conditions = vec![Cond::no(
                PROCESSORS_READY,
                "SchedulingConflict",
                message.clone(),
            )];
            conditions.extend(keep(&previous, READY));
            return Ok(Outcome {
                status: previous.clone(),
                conditions,
                events: warn_if_new(&previous, PROCESSORS_READY, "SchedulingConflict", &message),
                action: Action::requeue(RESYNC),
            });
        }
    };

    // 4. the stream key, when one is referenced
    let publish_key = match &camera.spec.ingest.stream_key_secret_ref {
        None => None,
        Some(reference) => match read_stream_key(ctx, at, reference).await? {
            Some(key) => Some(key),
            None => {
                let message = format!(
                    "Secret {} has no key {:?} for the stream key",
                    reference.name, reference.key
                );
                return Ok(Outcome {
                    status: previous.clone(),
                    conditions: vec![Cond::no(READY, "StreamKeyMissing", message.clone())],
                    events: warn_if_new(&previous, READY, "StreamKeyMissing", &message),
                    action: Action::requeue(RETRY),
                });
            }
        },
    };

    // 5. build
    let image = camera
        .spec
        .worker
        .image
        .clone()
        .unwrap_or_else(|| ctx.settings.worker_image.clone());
    let deployment = build_deployment(&WorkerPod {
        camera,
        at,
        image: &image,
        processors: &processors,
        scheduling: &scheduling,
        publish_key: publish_key.as_deref(),
    });
    let config_hash = deployment_config_hash(&deployment);

    // 6. apply
    if let Some(pvc) = build_pvc(camera, at) {
        apply::<PersistentVolumeClaim>(ctx, camera, at, &pvc).await?;
    }
    if let Some(key) = &publish_key {
        apply::<Secret>(ctx, camera, at, &build_publish_key_secret(camera, at, key)).await?;
    }
    apply::<Service>(ctx, camera, at, &build_service(camera, at)).await?;
    let applied = apply::<Deployment>(ctx, camera, at, &deployment).await?;

    // 7. status
    let available = applied
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        >= 1;
    let ready = if camera.spec.suspend {
        Cond::no(
            READY,
            "Suspended",
            "the worker is scaled to zero (spec.suspend)",
        )
    } else if available {
        Cond::yes(READY, "WorkerAvailable", "the worker is running")
    } else {
        Cond::no(
            READY,
            "WorkerStarting",
            "waiting for the worker pod to become ready",
        )
    };
    let attached = attached(&processors, available);
    let processors_ready = Cond::yes(
        PROCESSORS_READY,
        "Attached",
        format!("{} processor(s) attached", processors.len()),
    );
    let mut status = previous.clone();
    status.ingest_url = Some(format!(
        "rtmp://{svc}.{ns}.svc:{RTMP_PORT}/live/{camera}",
        svc = workload_name(&at.name),
        ns = at.namespace,
        camera = at.name
    ));
    status.playback_url = Some(format!(
        "http://{svc}.{ns}.svc:{HTTP_PORT}/hls/{camera}/index.m3u8",
        svc = workload_name(&at.name),
        ns = at.namespace,
        camera = at.name
    ));
    status.processor_summary = Some(format!(
        "{}/{}",
        attached.iter().filter(|p| p.ready).count(),
        attached.len()
    ));
    status.processors = attached;
    status.config_hash = config_hash.clone();

    // 8. events
    let mut events = Vec::new();
    if previous.config_hash.is_none() {
        info!(camera = %at.name, namespace = %at.namespace, "created worker");
        events.push(normal(
            "Created",
            "created the worker Deployment, Service and recordings claim",
        ));
    } else if previous.config_hash != config_hash {
        let names: Vec<&str> = processors.iter().map(|p| p.name.as_str()).collect();
        let message = format!(
            "updated the worker pod (processors: [{}])",
            names.join(", ")
        );
        info!(camera = %at.name, namespace = %at.namespace, %message, "updated worker");
        events.push(normal("Updated", &message));
    }
    Ok(Outcome {
        status,
        conditions: vec![ready, processors_ready],
        events,
        action: Action::requeue(RESYNC),
    })
}

/// Publishes the events, then writes the status if anything in it changed.
async fn finish(
    camera: &Camera,
    at: &CameraRef,
    ctx: &Context,
    outcome: Outcome,
) -> Result<Action, Error> {
    let reference = camera.object_ref(&());
    for event in &outcome.events {
        ctx.recorder
            .publish(event, &reference)
            .await
            .map_err(|source| Error::Event {
                kind: "Camera",
                namespace: at.namespace.clone(),
                name: at.name.clone(),
                reason: event.reason.clone(),
                source,
            })?;
    }
    let previous = camera.status.clone().unwrap_or_default();
    let mut status = outcome.status;
    status.observed_generation = camera.metadata.generation;
    status.conditions = settle_conditions(
        &previous.conditions,
        &outcome.conditions,
        camera.metadata.generation,
        Timestamp::now(),
    );
    if status != previous {
        let api: Api<Camera> = Api::namespaced(ctx.client.clone(), &at.namespace);
        let patch = Patch::Apply(serde_json::json!({
            "apiVersion": Camera::api_version(&()),
            "kind": Camera::kind(&()),
            "status": status,
        }));
        api.patch_status(&at.name, &PatchParams::apply(FIELD_MANAGER).force(), &patch)
            .await
            .map_err(|source| Error::Status {
                kind: "Camera",
                namespace: at.namespace.clone(),
                name: at.name.clone(),
                source,
            })?;
    }
    Ok(outcome.action)
}

/// Server-side apply of one owned object; a failure is also told as a Warning event.
async fn apply<K>(ctx: &Context, camera: &Camera, at: &CameraRef, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &at.namespace);
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
    {
        Ok(applied) => Ok(applied),
        Err(source) => {
            let kind = K::kind(&()).to_string();
            warn!(camera = %at.name, namespace = %at.namespace, %kind, %name, error = %source, "apply failed");
            let event = Event {
                type_: EventType::Warning,
                reason: "ApplyFailed".into(),
                note: Some(format!("applying {kind} {name}: {source}")),
                action: "Apply".into(),
                secondary: None,
            };
            // The apply error is what matters; a failed event is only logged.
            if let Err(e) = ctx.recorder.publish(&event, &camera.object_ref(&())).await {
                warn!(camera = %at.name, error = %e, "could not publish ApplyFailed event");
            }
            Err(Error::Apply {
                kind: kind_name::<K>(),
                namespace: at.namespace.clone(),
                name,
                source,
            })
        }
    }
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        "PersistentVolumeClaim" => "PersistentVolumeClaim",
        "Secret" => "Secret",
        _ => "object",
    }
}

/// The stream key from the referenced Secret; `None` when the Secret or its key is missing.
async fn read_stream_key(
    ctx: &Context,
    at: &CameraRef,
    reference: &SecretKeyRef,
) -> Result<Option<String>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &at.namespace);
    let secret = api
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Secret {
            camera: at.name.clone(),
            namespace: at.namespace.clone(),
            name: reference.name.clone(),
            source,
        })?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|data| data.get(&reference.key).cloned())
        .and_then(|bytes| String::from_utf8(bytes.0).ok())
        .map(|key| key.trim().to_string())
        .filter(|key| !key.is_empty()))
}

fn attached(processors: &[ResolvedProcessor], worker_available: bool) -> Vec<AttachedProcessor> {
    processors
        .iter()
        .map(|p| AttachedProcessor {
            name: p.name.clone(),
            ready: worker_available,
            message: p.note.clone(),
        })
        .collect()
}

/// The previous condition of a type, carried over unchanged.
fn keep(previous: &CameraStatus, type_: &'static str) -> Option<Cond> {
    let c = find(&previous.conditions, type_)?;
    Some(Cond {
        type_,
        ok: c.status == "True",
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}

/// A Warning event, unless the same condition already says the same.
fn warn_if_new(previous: &CameraStatus, type_: &str, reason: &str, message: &str) -> Vec<Event> {
    let same = find(&previous.conditions, type_)
        .is_some_and(|c| c.reason == reason && c.message == message);
    if same {
        return Vec::new();
    }
    vec![Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(message.into()),
        action: "Reconcile".into(),
        secondary: None,
    }]
}

fn normal(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

#[cfg(test)]
#[path = "camera_tests.rs"]
mod tests;
