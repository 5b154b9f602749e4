//! The Camera reconciler: the recipe, in order. Each decision is a pure function from `super`;
//! this file only does the I/O between them (read the caches and the stream key, apply what
//! changed, write the status, tell events).
//!
//! The availability invariant shapes every step: a running camera's worker is rewritten only
//! when something it runs from changed, never because a cache was half-filled, an object
//! belongs to someone else, a claim failed, or many cameras want to restart at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::context::Context;
use crate::crd::camera::{Camera, CameraStatus};
use crate::error::Error;
use crate::events::Note;
use crate::observe::{steady, steady_lag};
use crate::reconcile::apply::{apply, delete, live, warned};
use crate::reconcile::build_deployment::{build_deployment, deployment_config_hash, WorkerPod};
use crate::reconcile::build_pool::PoolRef;
use crate::reconcile::build_service::{build_http_service, build_ingest_service};
use crate::reconcile::build_storage::build_pvc;
use crate::reconcile::camera_status::{assess, claim_phase, Claim, Observed, Stream};
use crate::reconcile::drift::{needs_apply, stamp};
use crate::reconcile::health::worker_ready_with;
use crate::reconcile::names::{
    workload_name, CAMERA_GENERATION_ANNOTATION, CAMERA_LABEL, FIELD_MANAGER, WORKER_CONTAINER,
};
use crate::reconcile::ownership::{ownership, Ownership};
use crate::reconcile::resolve::{resolve_processors, ResolvedProcessor};
use crate::reconcile::schedule::schedule;
use crate::reconcile::secrets::{
    apply_http_tokens, apply_publish_key, ensure_pool_token, read_secret, read_secret_value,
    rtsp_credentials_problem, tls_secret_problem,
};
use crate::reconcile::status::{
    find, settle_conditions, Cond, INGESTING, PROCESSORS_READY, READY, RECORDING,
};
use crate::reconcile::urls::{ingest_url, playback_url};
use crate::reconcile::validate::validate_camera;
use crate::reconcile::CameraRef;
use crate::rollout::{deployment_rolling, Admission};

/// How often a healthy Camera is looked at again without any change.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a Camera waiting on something outside its spec (a Secret, a name conflict) is
/// retried; also how soon a rotated stream key, or a fixed RTSP credentials Secret, is noticed
/// (Secrets are read, never watched).
const RETRY: Duration = Duration::from_secs(60);
/// How soon a Camera whose restart is queued behind others asks again.
const QUEUED: Duration = Duration::from_secs(10);
/// How long a reconcile waits for the watch caches before giving up (and backing off).
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// What one reconcile decided: the status to write and the events to publish.
struct Outcome {
    status: CameraStatus,
    conditions: Vec<Cond>,
    events: Vec<Note>,
    action: Action,
}

impl Outcome {
    /// Leaves everything running as it is and reports one condition (others kept as they were).
    fn hold(previous: &CameraStatus, cond: Cond, action: Action) -> Self {
        let events = warn_if_new(previous, &cond);
        let mut conditions: Vec<Cond> = previous
            .conditions
            .iter()
            .filter(|c| c.type_ != cond.type_)
            .filter_map(|c| keep(previous, &c.type_))
            .collect();
        conditions.insert(0, cond);
        Outcome {
            status: previous.clone(),
            conditions,
            events,
            action,
        }
    }
}

/// Reconciles one Camera.
pub async fn reconcile(camera: Arc<Camera>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Never decide from a half-filled cache: no processors yet would drop every sidecar and
    // restart every camera that has one.
    ctx.stores.wait_ready(CACHE_WAIT).await?;
    let _timer = ctx.metrics.reconcile_timer("camera");
    let at = CameraRef::of(&camera).ok_or(Error::Unnamed { kind: "Camera" })?;
    if camera.metadata.deletion_timestamp.is_some() {
        // Owned objects go with the Camera (garbage collection); a retained claim stays.
        return Ok(Action::await_change());
    }
    let outcome = plan_and_apply(&camera, &at, &ctx).await?;
    finish(&camera, &at, &ctx, outcome).await
}

async fn plan_and_apply(camera: &Camera, at: &CameraRef, ctx: &Context) -> Result<Outcome, Error> {
    let previous = camera.status.clone().unwrap_or_default();

    // 1. validate
    if let Err(e) = validate_camera(camera) {
        warn!(camera = %at.name, namespace = %at.namespace, error = %e, "invalid Camera spec");
        let cond = Cond::no(READY, "InvalidSpec", e.to_string());
        return Ok(Outcome::hold(&previous, cond, Action::await_change()));
    }

    // 2. resolve the processors that select this camera
    let processors = resolve_processors(camera, &ctx.stores.processors.state());

    // 3. schedule: a conflict leaves the running pod as it is
    let scheduling = match schedule(&camera.spec.worker, &processors) {
        Ok(s) => s,
        Err(conflict) => {
            let message = format!("processors cannot share one pod: {conflict}");
            warn!(camera = %at.name, namespace = %at.namespace, %message, "scheduling conflict");
            let cond = Cond::no(PROCESSORS_READY, "SchedulingConflict", message);
            return Ok(Outcome::hold(&previous, cond, Action::requeue(RESYNC)));
        }
    };

    // 4. the stream key, when one is referenced
    let publish_key = match &camera.spec.ingest.stream_key_secret_ref {
        None => None,
        Some(reference) => match read_secret_value(ctx, at, &reference.name, &reference.key)
            .await?
            .map(|key| key.trim().to_string())
            .filter(|key| !key.is_empty())
        {
            Some(key) => Some(key),
            None => {
                let message = format!(
                    "Secret {} has no key {:?} for the stream key; the running worker is left as it is",
                    reference.name, reference.key
                );
                let cond = Cond::no(READY, "StreamKeyMissing", message);
                return Ok(Outcome::hold(&previous, cond, Action::requeue(RETRY)));
            }
        },
    };

    // 4b. the viewer tokens, when HTTP is protected: the user's, plus the operator's own
    let tokens = match &camera.spec.http.tokens_secret_ref {
        None => None,
        Some(reference) => {
            match read_secret_value(ctx, at, &reference.name, &reference.key).await? {
                Some(user) => Some(user),
                None => {
                    let message = format!(
                        "Secret {} has no key {:?} for the viewer tokens; the running worker is left as it is",
                        reference.name, reference.key
                    );
                    let cond = Cond::no(READY, "TokensMissing", message);
                    return Ok(Outcome::hold(&previous, cond, Action::requeue(RETRY)));
                }
            }
        }
    };

    // 4c. the RTSP camera's credentials: checked, never read into the pod (the worker mounts
    // the Secret itself and reads it at every connection attempt)
    let rtsp_credentials = camera
        .spec
        .rtsp()
        .and_then(|rtsp| rtsp.credentials_secret_ref.as_ref());
    if let Some(reference) = rtsp_credentials {
        let secret = read_secret(ctx, at, &reference.name).await?;
        if let Some(problem) = rtsp_credentials_problem(&reference.name, secret.as_ref()) {
            let message = format!("{problem}; the running worker is left as it is");
            let cond = Cond::no(READY, "CredentialsMissing", message);
            return Ok(Outcome::hold(&previous, cond, Action::requeue(RETRY)));
        }
    }

    // 4d. the TLS certificate: checked, never read into the pod (mounted as it is)
    let tls_secret = camera.spec.http.tls.as_ref().map(|t| &t.secret_ref);
    if let Some(reference) = tls_secret {
        let secret = read_secret(ctx, at, &reference.name).await?;
        if let Some(problem) = tls_secret_problem(&reference.name, secret.as_ref()) {
            let message = format!("{problem}; the running worker is left as it is");
            let cond = Cond::no(READY, "TlsSecretMissing", message);
            return Ok(Outcome::hold(&previous, cond, Action::requeue(RETRY)));
        }
    }

    // 5. build
    let image = camera
        .spec
        .worker
        .image
        .clone()
        .unwrap_or_else(|| ctx.settings.worker_image.clone());
    let built = build_deployment(&WorkerPod {
        camera,
        at,
        image: &image,
        processors: &processors,
        scheduling: &scheduling,
        publish_key: publish_key.as_deref(),
        defaults: &ctx.settings.worker_defaults,
    });
    let mut deployment = match built {
        Ok(d) => d,
        Err(e) => {
            warn!(camera = %at.name, namespace = %at.namespace, error = %e, "invalid podOverrides");
            let cond = Cond::no(READY, "InvalidSpec", e.to_string());
            return Ok(Outcome::hold(&previous, cond, Action::await_change()));
        }
    };
    if let Some(generation) = camera.metadata.generation {
        deployment
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CAMERA_GENERATION_ANNOTATION.into(), generation.to_string());
    }
    stamp(&mut deployment, |d| &mut d.metadata);
    let config_hash = deployment_config_hash(&deployment);
    // A pulled camera takes no publisher: no RTMP Service to route (or pay) for.
    let pulled = camera.spec.rtsp().is_some();
    let services: Vec<Service> = [
        (!pulled).then(|| build_ingest_service(camera, at)),
        Some(build_http_service(camera, at)),
    ]
    .into_iter()
    .flatten()
    .map(|mut s| {
        stamp(&mut s, |s| &mut s.metadata);
        s
    })
    .collect();
    let pvc = build_pvc(camera, at).map(|mut pvc| {
        stamp(&mut pvc, |p| &mut p.metadata);
        pvc
    });

    // 6. who owns what: never write over an object Kamera did not create
    let uid = camera.metadata.uid.clone().unwrap_or_default();
    let live_deployment = live(ctx, &ctx.stores.deployments, at, &deployment.name_any()).await?;
    let mut live_services = Vec::new();
    for service in &services {
        live_services.push(live(ctx, &ctx.stores.services, at, &service.name_any()).await?);
    }
    let live_pvc = match &pvc {
        Some(p) => live(ctx, &ctx.stores.claims, at, &p.name_any()).await?,
        None => None,
    };
    let mut owners = vec![
        (
            "Deployment",
            live_deployment.as_ref().map(|d| &d.metadata),
            deployment.name_any(),
        ),
        (
            "PersistentVolumeClaim",
            live_pvc.as_ref().map(|p| &p.metadata),
            pvc.as_ref().map(|p| p.name_any()).unwrap_or_default(),
        ),
    ];
    for (service, live_service) in services.iter().zip(&live_services) {
        owners.push((
            "Service",
            live_service.as_ref().map(|s| &s.metadata),
            service.name_any(),
        ));
    }
    for (kind, meta, name) in owners {
        if let Ownership::Foreign(why) = ownership(meta, &at.name, &uid) {
            return Ok(name_conflict(&previous, at, kind, &name, &why));
        }
    }

    // 7. apply what changed, claim first; a failing claim does not stop the live stream
    let mut events = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let claim = match &pvc {
        None => Claim::Disabled,
        Some(pvc) if needs_apply(live_pvc.as_deref(), pvc) => match apply(ctx, at, pvc).await {
            Ok(applied) => {
                if live_pvc.is_none() {
                    created.push("recordings claim".to_string());
                }
                claim_phase(Some(&applied))
            }
            Err(e) => {
                warn!(camera = %at.name, namespace = %at.namespace, error = %e, "recordings claim not applied");
                events.push(Note::warning("ClaimFailed", "Apply", e.to_string()));
                Claim::Failed(e.to_string())
            }
        },
        Some(_) => claim_phase(live_pvc.as_deref()),
    };
    let worker_changes = config_hash
        != live_deployment
            .as_ref()
            .and_then(|d| deployment_config_hash(d));
    if let Some(key) = &publish_key {
        if worker_changes {
            apply_publish_key(ctx, camera, at, &uid, key).await?;
        }
    }
    if worker_changes {
        // The worker mounts each pool's token (not optional): the Secret exists before the pod
        // that needs it, whichever reconciler gets there first.
        for pool in processors.iter().filter(|p| p.is_pool()) {
            let key = ObjectRef::new(&pool.name).within(&at.namespace);
            if let Some(fp) = ctx.stores.processors.get(&key) {
                if let Some(pool_at) = PoolRef::of(&fp) {
                    ensure_pool_token(ctx, &fp, &pool_at).await?;
                }
            }
        }
    }
    match &tokens {
        Some(user_tokens) => apply_http_tokens(ctx, camera, at, &uid, user_tokens).await?,
        None => ctx.observations.set_token(&at.key(), None),
    }
    let mut current_services = Vec::new();
    for (service, live_service) in services.iter().zip(&live_services) {
        if needs_apply(live_service.as_deref(), service) {
            let applied = apply(ctx, at, service)
                .await
                .map_err(|e| warned(&mut events, e))?;
            if live_service.is_none() {
                created.push(format!("Service {}", service.name_any()));
            }
            current_services.push(Some(Arc::new(applied)));
        } else {
            current_services.push(live_service.clone());
        }
    }
    if pulled {
        remove_ingest_service(ctx, at, &uid, &mut events).await?;
    }
    let mut queued = None;
    let mut current = live_deployment.clone();
    if needs_apply(live_deployment.as_deref(), &deployment) {
        let restart = live_deployment.is_some() && worker_changes && !camera.spec.suspend;
        let own_change = live_deployment
            .as_ref()
            .and_then(|d| d.annotations().get(CAMERA_GENERATION_ANNOTATION).cloned())
            .is_some_and(|g| Some(g) != camera.metadata.generation.map(|g| g.to_string()));
        let hash = config_hash.clone().unwrap_or_default();
        let admission = if restart && !own_change {
            admit_restart(ctx, at, &hash)
        } else {
            Admission::Go
        };
        match admission {
            Admission::Wait(busy) => {
                info!(camera = %at.name, namespace = %at.namespace, restarting = busy.len(), "worker update queued behind other restarts");
                queued = Some(busy);
            }
            Admission::Go => {
                if restart && own_change {
                    ctx.rollouts.record(&at.key(), &hash);
                }
                let applied = apply(ctx, at, &deployment)
                    .await
                    .map_err(|e| warned(&mut events, e))?;
                current = Some(Arc::new(applied));
                if live_deployment.is_none() {
                    created.push("worker Deployment".to_string());
                } else if worker_changes {
                    events.push(Note::normal(
                        "Updated",
                        "Apply",
                        describe_update(&previous, &processors, &image),
                    ));
                }
            }
        }
    }
    if !created.is_empty() {
        info!(camera = %at.name, namespace = %at.namespace, created = ?created, "created");
        events.push(Note::normal(
            "Created",
            "Apply",
            format!("created the {}", created.join(", ")),
        ));
    }

    // 8. status, from the worker's own containers
    let pods = pods_of(&ctx.stores.pods, at);
    let observation = ctx.observations.get(&at.key());
    let assessment = assess(&Observed {
        suspended: camera.spec.suspend,
        processors: &processors,
        deployment: current.as_deref(),
        pods: &pods,
        claim: &claim,
        worker: observation.as_ref(),
        pull: camera.spec.rtsp().map(|r| r.url.as_str()),
    });
    let mut conds = assessment.conditions;
    let mut attached = assessment.processors;
    let mut stream = assessment.stream;
    // A running worker not asked yet (the operator just started) is not a camera gone offline:
    // what the status said stays until the worker answers.
    let worker_up = conds.iter().any(|c| c.type_ == READY && c.ok);
    if observation.is_none() && worker_up {
        for type_ in [INGESTING, RECORDING] {
            if let (Some(kept), Some(slot)) = (
                keep(&previous, type_),
                conds.iter_mut().find(|c| c.type_ == type_),
            ) {
                // The claim's own trouble is known without the worker; keep only its word.
                if slot.ok || type_ == INGESTING {
                    *slot = kept;
                }
            }
        }
        stream = previous_stream(&previous);
        for p in &mut attached {
            if let Some(before) = previous.processors.iter().find(|o| o.name == p.name) {
                p.connected = before.connected;
                p.lag_seconds = before.lag_seconds;
            }
        }
    }
    // Secrets are read, never watched: a Camera that uses one looks again every minute.
    let reads_secrets = publish_key.is_some()
        || tokens.is_some()
        || rtsp_credentials.is_some()
        || tls_secret.is_some();
    let mut action = Action::requeue(if reads_secrets { RETRY } else { RESYNC });
    if let Some(busy) = &queued {
        let max = ctx.rollouts.max();
        events.push(Note::normal(
            "UpdateQueued",
            "Apply",
            format!(
                "the worker pod will be updated when fewer than {max} other cameras are restarting"
            ),
        ));
        if let Some(ready) = conds.iter_mut().find(|c| c.type_ == READY) {
            ready.message = format!(
                "{}; an update of the worker pod is queued behind {} restarting camera(s)",
                ready.message,
                busy.len()
            );
        }
        action = Action::requeue(QUEUED);
    }
    let mut status = previous.clone();
    let http_service = current_services.last().cloned().flatten();
    status.ingest_url = Some(match camera.spec.rtsp() {
        Some(rtsp) => rtsp.url.clone(),
        None => ingest_url(at, current_services.first().cloned().flatten().as_deref()),
    });
    status.playback_url = Some(playback_url(
        at,
        http_service.as_deref(),
        camera.spec.http.tls.is_some(),
    ));
    status.processor_summary = Some(format!(
        "{}/{}",
        attached.iter().filter(|p| p.ready).count(),
        attached.len()
    ));
    status.processors = attached;
    status.config_hash = current.as_deref().and_then(deployment_config_hash);
    status.live = stream.live;
    status.resolution = stream.resolution;
    // Measured rates are kept while they only wobble, so that they never cause a write.
    status.fps = steady(previous.fps, stream.fps, 0.05);
    status.bitrate = steady(
        previous.bitrate.map(|b| b as f64),
        stream.bitrate.map(|b| b as f64),
        0.10,
    )
    .map(|b| b as i64);
    for p in &mut status.processors {
        let before = previous
            .processors
            .iter()
            .find(|o| o.name == p.name)
            .and_then(|o| o.lag_seconds);
        p.lag_seconds = steady_lag(before, p.lag_seconds);
    }
    status.codec = stream.codec;
    status.since = stream.since;
    status.publisher = stream.publisher;
    status.recording = stream.recording;
    let origin = match camera.spec.rtsp() {
        Some(rtsp) => Origin::Pulled(&rtsp.url),
        None => Origin::Pushed(status.publisher.as_deref()),
    };
    events.extend(transitions(&previous, &conds, origin));
    Ok(Outcome {
        status,
        conditions: conds,
        events,
        action,
    })
}

/// Writes the status if anything in it changed, then tells the events (best-effort: an event
/// the API refuses never keeps the status from being written).
async fn finish(
    camera: &Camera,
    at: &CameraRef,
    ctx: &Context,
    outcome: Outcome,
) -> Result<Action, Error> {
    let previous = camera.status.clone().unwrap_or_default();
    let mut status = outcome.status;
    status.observed_generation = camera.metadata.generation;
    status.conditions = settle_conditions(
        &previous.conditions,
        &outcome.conditions,
        camera.metadata.generation,
        Timestamp::now(),
    );
    let written = if status != previous {
        let api: Api<Camera> = Api::namespaced(ctx.client.clone(), &at.namespace);
        let patch = Patch::Apply(serde_json::json!({
            "apiVersion": Camera::api_version(&()),
            "kind": Camera::kind(&()),
            "status": status,
        }));
        api.patch_status(&at.name, &PatchParams::apply(FIELD_MANAGER).force(), &patch)
            .await
            .map(|_| ())
            .map_err(|source| Error::Status {
                kind: "Camera",
                namespace: at.namespace.clone(),
                name: at.name.clone(),
                source,
            })
    } else {
        Ok(())
    };
    ctx.events
        .publish(&reference(camera), &outcome.events)
        .await;
    written.map(|()| outcome.action)
}

fn reference(camera: &Camera) -> ObjectReference {
    camera.object_ref(&())
}

/// Asks the rollout gate whether this camera's worker may restart now.
fn admit_restart(ctx: &Context, at: &CameraRef, hash: &str) -> Admission {
    let stores = &ctx.stores;
    let still_rolling = |key: &str, hash: &str| {
        let Some((ns, name)) = key.split_once('/') else {
            return false;
        };
        let exists = stores
            .cameras
            .get(&ObjectRef::new(name).within(ns))
            .is_some();
        let camera = CameraRef {
            name: name.to_string(),
            namespace: ns.to_string(),
        };
        exists && !worker_ready_with(&pods_of(&stores.pods, &camera), WORKER_CONTAINER, hash)
    };
    let visibly_rolling: Vec<String> = stores
        .deployments
        .state()
        .iter()
        .filter(|d| deployment_rolling(d))
        .filter_map(|d| {
            let camera = d.labels().get(CAMERA_LABEL)?;
            Some(format!("{}/{camera}", d.namespace().unwrap_or_default()))
        })
        .collect();
    ctx.rollouts
        .admit(&at.key(), hash, still_rolling, &visibly_rolling)
}

/// The camera's pods from the cache.
fn pods_of(pods: &Store<Pod>, at: &CameraRef) -> Vec<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(at.namespace.as_str()))
        .filter(|p| p.labels().get(CAMERA_LABEL) == Some(&at.name))
        .collect()
}

/// Leaves everything as it is: an object of the Camera's name belongs to someone else.
fn name_conflict(
    previous: &CameraStatus,
    at: &CameraRef,
    kind: &str,
    name: &str,
    why: &str,
) -> Outcome {
    let message = format!(
        "{kind} {}/{name} already exists and {why}; Kamera leaves it untouched and applies nothing for this camera (rename the Camera or remove that {kind})",
        at.namespace
    );
    warn!(camera = %at.name, namespace = %at.namespace, %kind, %name, "name conflict with an object Kamera did not create");
    Outcome::hold(
        previous,
        Cond::no(READY, "NameConflict", message),
        Action::requeue(RETRY),
    )
}

/// What an update of the worker pod changed, for its event.
fn describe_update(
    previous: &CameraStatus,
    processors: &[ResolvedProcessor],
    image: &str,
) -> String {
    let before: BTreeSet<&str> = previous
        .processors
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let after: BTreeSet<&str> = processors.iter().map(|p| p.name.as_str()).collect();
    let mut parts = Vec::new();
    let attached: Vec<&str> = after.difference(&before).copied().collect();
    let detached: Vec<&str> = before.difference(&after).copied().collect();
    if !attached.is_empty() {
        parts.push(format!("attached processor(s) {}", attached.join(", ")));
    }
    if !detached.is_empty() {
        parts.push(format!("detached processor(s) {}", detached.join(", ")));
    }
    if parts.is_empty() {
        parts.push("its configuration changed".to_string());
    }
    format!(
        "updated the worker pod ({}; image {image})",
        parts.join("; ")
    )
}

/// Where a camera's video comes from, for its events.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// Publishers push RTMP; the current one's address, if known.
    Pushed(Option<&'a str>),
    /// The worker pulls this RTSP URL.
    Pulled(&'a str),
}

/// Events for what changed: a camera went live or offline, recording stopped or resumed, the
/// worker or a processor turned bad.
fn transitions(previous: &CameraStatus, conds: &[Cond], origin: Origin<'_>) -> Vec<Note> {
    let mut notes = Vec::new();
    for c in conds {
        let before = find(&previous.conditions, c.type_);
        let was_ok = before.map(|p| p.status == "True");
        let same_reason = before.is_some_and(|p| p.reason == c.reason);
        match c.type_ {
            INGESTING if c.ok && was_ok != Some(true) => {
                let how = match origin {
                    Origin::Pulled(url) => format!("pulling {url}"),
                    // The host only: a reconnecting publisher's new port is not news.
                    Origin::Pushed(publisher) => format!(
                        "{} publishes",
                        publisher
                            .map(|p| p.rsplit_once(':').map_or(p, |(h, _)| h))
                            .unwrap_or("a publisher")
                    ),
                };
                notes.push(Note::normal(
                    "Live",
                    "Observe",
                    format!("the camera went live: {how}"),
                ));
            }
            INGESTING if !c.ok && was_ok == Some(true) => {
                notes.push(Note::normal(
                    "Offline",
                    "Observe",
                    format!("the camera went offline: {}", c.message),
                ));
            }
            RECORDING if !c.ok && was_ok == Some(true) && c.reason != "Disabled" => {
                notes.push(Note::warning(
                    "RecordingStopped",
                    "Observe",
                    c.message.clone(),
                ));
            }
            RECORDING
                if c.ok
                    && was_ok == Some(false)
                    && before.is_some_and(|p| {
                        matches!(p.reason.as_str(), "DiskFull" | "WriteError")
                    }) =>
            {
                notes.push(Note::normal(
                    "RecordingResumed",
                    "Observe",
                    c.message.clone(),
                ));
            }
            // A worker or processor still starting is not news.
            READY | PROCESSORS_READY
                if !c.ok
                    && !same_reason
                    && !matches!(c.reason.as_str(), "WorkerStarting" | "Pending") =>
            {
                notes.push(Note::warning(&c.reason, "Observe", c.message.clone()));
            }
            _ => {}
        }
    }
    notes
}

/// The stream fields as the previous status had them.
fn previous_stream(previous: &CameraStatus) -> Stream {
    Stream {
        live: previous.live,
        resolution: previous.resolution.clone(),
        fps: previous.fps,
        bitrate: previous.bitrate,
        codec: previous.codec.clone(),
        since: previous.since.clone(),
        publisher: previous.publisher.clone(),
        recording: previous.recording.clone(),
    }
}

/// The previous condition of a type, carried over unchanged.
fn keep(previous: &CameraStatus, type_: &str) -> Option<Cond> {
    let c = find(&previous.conditions, type_)?;
    let type_: &'static str = match c.type_.as_str() {
        READY => READY,
        PROCESSORS_READY => PROCESSORS_READY,
        RECORDING => RECORDING,
        INGESTING => INGESTING,
        _ => return None,
    };
    Some(Cond {
        type_,
        ok: c.status == "True",
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}

/// A Warning event, unless the same condition already says the same.
fn warn_if_new(previous: &CameraStatus, cond: &Cond) -> Vec<Note> {
    let same = find(&previous.conditions, cond.type_)
        .is_some_and(|c| c.reason == cond.reason && c.message == cond.message);
    if same || cond.ok {
        return Vec::new();
    }
    vec![Note::warning(
        &cond.reason,
        "Reconcile",
        cond.message.clone(),
    )]
}

/// Deletes the camera's own RTMP Service once it pulls RTSP (it was pushed before); a Service
/// of that name Kamera did not create is left alone.
async fn remove_ingest_service(
    ctx: &Context,
    at: &CameraRef,
    uid: &str,
    events: &mut Vec<Note>,
) -> Result<(), Error> {
    let name = workload_name(&at.name);
    // The cache holds every Service Kamera labelled; one it lacks is not the camera's own.
    let key = ObjectRef::new(&name).within(&at.namespace);
    let Some(service) = ctx.stores.services.get(&key) else {
        return Ok(());
    };
    if ownership(Some(&service.metadata), &at.name, uid) != Ownership::Ours {
        return Ok(());
    }
    if delete::<Service>(ctx, at, &name)
        .await
        .map_err(|e| warned(events, e))?
    {
        info!(camera = %at.name, namespace = %at.namespace, service = %name, "RTMP Service removed: the camera pulls RTSP");
        events.push(Note::normal(
            "Removed",
            "Delete",
            format!(
                "removed the RTMP Service {name}: the camera pulls RTSP and takes no publisher"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "camera_tests.rs"]
mod tests;
