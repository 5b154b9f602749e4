//! The FrameProcessor reconciler. In `pool` mode it applies the pool (token Secret, Deployment,
//! Service) and follows the pool Deployment; in `sidecar` mode it removes a pool left from
//! `pool` mode. Either way it reports which Cameras it selects and what their workers say about
//! it. Attaching it to the camera pods is the Camera reconciler's job (FrameProcessor changes
//! requeue those Cameras).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::context::Context;
use crate::crd::camera::Camera;
use crate::crd::processor::{FrameProcessor, FrameProcessorStatus, PoolStatus, ProcessorMode};
use crate::error::Error;
use crate::events::Note;
use crate::observe::{steady, Observation, Observations};
use crate::reconcile::apply::{apply, delete, live};
use crate::reconcile::build_pool::{build_pool_deployment, build_pool_service, PoolRef};
use crate::reconcile::drift::{needs_apply, stamp};
use crate::reconcile::names::{pool_name, FIELD_MANAGER, PROCESSOR_LABEL};
use crate::reconcile::ownership::{ownership_by, Ownership};
use crate::reconcile::resolve::{selector_error, selects};
use crate::reconcile::secrets::ensure_pool_token;
use crate::reconcile::status::{settle_conditions, Cond, READY};

/// How often a sidecar processor is looked at again without any change.
const RESYNC: Duration = Duration::from_secs(300);
/// How often a pool processor is looked at again: its frame rate and errors come from the
/// workers, which wake no processor by themselves.
const POOL_RESYNC: Duration = Duration::from_secs(60);

/// The Cameras (names, sorted) a processor selects among `cameras`.
pub fn matched_cameras(processor: &FrameProcessor, cameras: &[Arc<Camera>]) -> Vec<String> {
    let namespace = processor.namespace();
    let mut names: Vec<String> = cameras
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| selects(&processor.spec.camera_selector, c.labels()))
        .map(|c| c.name_any())
        .collect();
    names.sort();
    names
}

/// The processor's Cameras (names, sorted) whose status says their worker is connected to it
/// (over the frame socket, or to its pool).
pub fn connected_cameras(processor: &FrameProcessor, cameras: &[Arc<Camera>]) -> Vec<String> {
    let namespace = processor.namespace();
    let name = processor.name_any();
    let mut names: Vec<String> = cameras
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.processors
                    .iter()
                    .any(|p| p.name == name && p.connected == Some(true))
            })
        })
        .map(|c| c.name_any())
        .collect();
    names.sort();
    names
}

/// What one camera's worker says about the processor (from its newest report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraWord {
    /// The camera.
    pub camera: String,
    /// Why its last connection to the processor failed or ended, if it did.
    pub last_error: Option<String>,
    /// Frames per second the processor acknowledged for it lately.
    pub ack_rate: Option<f64>,
}

/// What the workers of `cameras` (names) say about `processor`, from the operator's newest
/// observations.
pub fn camera_words(
    observations: &Observations,
    namespace: &str,
    processor: &str,
    cameras: &[String],
) -> Vec<CameraWord> {
    cameras
        .iter()
        .filter_map(|camera| {
            let key = format!("{namespace}/{camera}");
            let Some(Observation::Report(report)) = observations.get(&key) else {
                return None;
            };
            let entry = report
                .frames
                .iter()
                .flat_map(|f| &f.processors)
                .find(|p| p.name == processor)?
                .clone();
            Some(CameraWord {
                camera: camera.clone(),
                last_error: entry.last_error,
                ack_rate: observations.ack_rate(&key, processor),
            })
        })
        .collect()
}

/// Everything a processor's status is computed from.
#[derive(Debug, Clone, Default)]
pub struct ProcessorObserved<'a> {
    /// The Cameras it selects (names, sorted).
    pub matched: Vec<String>,
    /// Those whose status says their worker is connected to it (names, sorted).
    pub connected: Vec<String>,
    /// What the selected cameras' workers say about it.
    pub words: Vec<CameraWord>,
    /// The pool's live Deployment (pool mode).
    pub pool: Option<&'a Deployment>,
    /// Why the pool could not be applied (an object of its name is someone else's).
    pub conflict: Option<String>,
}

/// The status a processor should have. Pure: `now` only stamps changed conditions.
pub fn processor_status(
    processor: &FrameProcessor,
    observed: ProcessorObserved<'_>,
    now: Timestamp,
) -> FrameProcessorStatus {
    let previous = processor.status.clone().unwrap_or_default();
    let spec = &processor.spec;
    let mode = spec.effective_mode();
    let pool = (mode == ProcessorMode::Pool).then(|| {
        let replicas = spec.pool_replicas();
        let ready_replicas = observed
            .pool
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        PoolStatus {
            replicas,
            ready_replicas,
            summary: format!("{ready_replicas}/{replicas}"),
        }
    });
    let matched = observed.matched;
    let connected = observed.connected;
    let attached = format!(
        "{} of {} camera(s) connected",
        connected.len(),
        matched.len()
    );
    let ready = if let Some(error) = selector_error(&spec.camera_selector) {
        Cond::no(READY, "InvalidSelector", format!("cameraSelector: {error}"))
    } else if spec.image.trim().is_empty() {
        Cond::no(READY, "InvalidSpec", "image is empty")
    } else if let Some(conflict) = observed.conflict {
        Cond::no(READY, "NameConflict", conflict)
    } else if let Some(pool) = &pool {
        if pool.replicas == 0 {
            Cond::no(
                READY,
                "ScaledToZero",
                "replicas is 0: no pool pod runs, and the cameras' workers keep trying to connect",
            )
        } else if pool.ready_replicas >= 1 {
            Cond::yes(
                READY,
                "PoolReady",
                format!("{} pool pod(s) ready; {attached}", pool.summary),
            )
        } else {
            Cond::no(
                READY,
                "PoolStarting",
                format!("no pool pod is ready yet ({}); {attached}", pool.summary),
            )
        }
    } else if matched.is_empty() {
        Cond::yes(
            READY,
            "NoCameras",
            "no Camera in the namespace matches cameraSelector",
        )
    } else {
        Cond::yes(
            READY,
            "Selected",
            format!("attached to {} camera(s)", matched.len()),
        )
    };
    let rates: Vec<f64> = observed.words.iter().filter_map(|w| w.ack_rate).collect();
    let frames_per_second = if observed.words.is_empty() && !matched.is_empty() {
        // No worker asked yet (the operator just started) is not a processor gone idle.
        previous.frames_per_second
    } else {
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>())
    };
    // The newest error stays until another replaces it; one still reported is kept as it is,
    // so that the status does not flip between two cameras' errors.
    let errors: Vec<String> = observed
        .words
        .iter()
        .filter_map(|w| Some(format!("{}: {}", w.camera, w.last_error.as_ref()?)))
        .collect();
    let last_error = match &previous.last_error {
        Some(kept) if errors.contains(kept) => Some(kept.clone()),
        kept => errors.first().cloned().or_else(|| kept.clone()),
    };
    FrameProcessorStatus {
        observed_generation: processor.metadata.generation,
        matched_camera_count: i32::try_from(matched.len()).unwrap_or(i32::MAX),
        connected_camera_count: i32::try_from(connected.len()).unwrap_or(i32::MAX),
        matched_cameras: matched,
        connected_cameras: connected,
        mode: Some(mode),
        // Measured rates are kept while they only wobble, so that they never cause a write.
        frames_per_second: steady(previous.frames_per_second, frames_per_second, 0.10),
        last_error,
        pool,
        conditions: settle_conditions(
            &previous.conditions,
            &[ready],
            processor.metadata.generation,
            now,
        ),
    }
}

/// Reconciles one FrameProcessor: applies or removes its pool, then writes its status when it
/// changed.
pub async fn reconcile(processor: Arc<FrameProcessor>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.stores.wait_ready(Duration::from_secs(30)).await?;
    let _timer = ctx.metrics.reconcile_timer("frameprocessor");
    let at = PoolRef::of(&processor).ok_or(Error::Unnamed {
        kind: "FrameProcessor",
    })?;
    if processor.metadata.deletion_timestamp.is_some() {
        // The pool goes with the FrameProcessor (garbage collection of owned objects).
        return Ok(Action::await_change());
    }
    let mut notes = Vec::new();
    let mode = processor.spec.effective_mode();
    let (pool, conflict) = match mode {
        ProcessorMode::Pool => match apply_pool(&processor, &at, &ctx, &mut notes).await? {
            Ok(pool) => (pool, None),
            Err(conflict) => (None, Some(conflict)),
        },
        ProcessorMode::Sidecar => {
            remove_pool(&processor, &at, &ctx, &mut notes).await?;
            (None, None)
        }
    };
    let cameras = ctx.stores.cameras.state();
    let matched = matched_cameras(&processor, &cameras);
    let connected = connected_cameras(&processor, &cameras);
    let words = camera_words(&ctx.observations, &at.namespace, &at.name, &matched);
    let status = processor_status(
        &processor,
        ProcessorObserved {
            matched,
            connected,
            words,
            pool: pool.as_deref(),
            conflict,
        },
        Timestamp::now(),
    );
    let written = if processor.status.as_ref() != Some(&status) {
        let api: Api<FrameProcessor> = Api::namespaced(ctx.client.clone(), &at.namespace);
        let patch = Patch::Apply(serde_json::json!({
            "apiVersion": FrameProcessor::api_version(&()),
            "kind": FrameProcessor::kind(&()),
            "status": status,
        }));
        api.patch_status(&at.name, &PatchParams::apply(FIELD_MANAGER).force(), &patch)
            .await
            .map(|_| ())
            .map_err(|source| Error::Status {
                kind: "FrameProcessor",
                namespace: at.namespace.clone(),
                name: at.name.clone(),
                source,
            })
    } else {
        Ok(())
    };
    ctx.events.publish(&reference(&processor), &notes).await;
    written.map(|()| {
        Action::requeue(match mode {
            ProcessorMode::Pool => POOL_RESYNC,
            ProcessorMode::Sidecar => RESYNC,
        })
    })
}

fn reference(processor: &FrameProcessor) -> ObjectReference {
    processor.object_ref(&())
}

/// Whether `live` may be written (or deleted) for this processor.
fn pool_ownership(
    processor: &FrameProcessor,
    at: &PoolRef,
    live: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Ownership {
    let uid = processor.metadata.uid.clone().unwrap_or_default();
    ownership_by(live, "FrameProcessor", (PROCESSOR_LABEL, &at.name), &uid)
}

/// Applies what changed of the pool (the token Secret only when missing); the live Deployment,
/// or why an object of the pool's name is left alone.
async fn apply_pool(
    processor: &FrameProcessor,
    at: &PoolRef,
    ctx: &Context,
    notes: &mut Vec<Note>,
) -> Result<Result<Option<Arc<Deployment>>, String>, Error> {
    let mut deployment = build_pool_deployment(processor, at);
    stamp(&mut deployment, |d| &mut d.metadata);
    let mut service = build_pool_service(processor, at);
    stamp(&mut service, |s| &mut s.metadata);
    let name = pool_name(&at.name);
    let live_deployment = live(ctx, &ctx.stores.pools, at, &name).await?;
    let live_service = live(ctx, &ctx.stores.services, at, &name).await?;
    for (kind, meta) in [
        ("Deployment", live_deployment.as_ref().map(|d| &d.metadata)),
        ("Service", live_service.as_ref().map(|s| &s.metadata)),
    ] {
        if let Ownership::Foreign(why) = pool_ownership(processor, at, meta) {
            warn!(processor = %at.name, namespace = %at.namespace, %kind, %name, "name conflict with an object Kamera did not create");
            return Ok(Err(format!(
                "{kind} {}/{name} already exists and {why}; Kamera leaves it untouched and runs no pool (rename the FrameProcessor or remove that {kind})",
                at.namespace
            )));
        }
    }
    let mut created = Vec::new();
    if ensure_pool_token(ctx, processor, at).await? {
        created.push("token Secret");
    }
    if needs_apply(live_service.as_deref(), &service) {
        apply(ctx, at, &service).await?;
        if live_service.is_none() {
            created.push("Service");
        }
    }
    let mut current = live_deployment.clone();
    if needs_apply(live_deployment.as_deref(), &deployment) {
        current = Some(Arc::new(apply(ctx, at, &deployment).await?));
        if live_deployment.is_none() {
            created.push("Deployment");
        }
    }
    if !created.is_empty() {
        info!(processor = %at.name, namespace = %at.namespace, created = ?created, "pool created");
        notes.push(Note::normal(
            "PoolCreated",
            "Apply",
            format!("created the pool's {}", created.join(", ")),
        ));
    }
    Ok(Ok(current))
}

/// Deletes the pool's Deployment and Service left from `pool` mode (ours only). The token
/// Secret stays until the FrameProcessor goes, so switching back keeps the token.
async fn remove_pool(
    processor: &FrameProcessor,
    at: &PoolRef,
    ctx: &Context,
    notes: &mut Vec<Note>,
) -> Result<(), Error> {
    let name = pool_name(&at.name);
    let was_pool = processor.status.as_ref().is_some_and(|s| s.pool.is_some());
    let cached = ctx
        .stores
        .pools
        .get(&kube::runtime::reflector::ObjectRef::new(&name).within(&at.namespace));
    if cached.is_none() && !was_pool {
        return Ok(());
    }
    let mut removed = Vec::new();
    let deployment = live(ctx, &ctx.stores.pools, at, &name).await?;
    if let Some(d) = deployment {
        if pool_ownership(processor, at, Some(&d.metadata)) == Ownership::Ours
            && delete::<Deployment>(ctx, at, &name).await?
        {
            removed.push("Deployment");
        }
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &at.namespace);
    let service = api.get_opt(&name).await.map_err(|source| Error::Get {
        kind: "Service",
        namespace: at.namespace.clone(),
        name: name.clone(),
        source,
    })?;
    if let Some(s) = service {
        if pool_ownership(processor, at, Some(&s.metadata)) == Ownership::Ours
            && delete::<Service>(ctx, at, &name).await?
        {
            removed.push("Service");
        }
    }
    if !removed.is_empty() {
        info!(processor = %at.name, namespace = %at.namespace, removed = ?removed, "pool removed: the processor runs as a sidecar");
        notes.push(Note::normal(
            "PoolRemoved",
            "Delete",
            format!(
                "removed the pool's {}: the processor runs as a sidecar of each camera",
                removed.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use tokio::time::Instant;

    use crate::crd::processor::FrameProcessorSpec;
    use crate::fixtures::{l4_gpu, pool_report};
    use crate::reconcile::test_camera;

    #[test]
    fn status_lists_selected_cameras_of_the_namespace() {
        let mut lobby = test_camera("lobby");
        lobby.metadata.labels = Some([("zone".to_string(), "lobby".to_string())].into());
        let yard = test_camera("yard");
        let mut fp = FrameProcessor::new(
            "yolo",
            FrameProcessorSpec {
                image: "img".into(),
                ..Default::default()
            },
        );
        fp.metadata.namespace = Some("cams".into());
        fp.spec.camera_selector.match_labels =
            Some([("zone".to_string(), "lobby".to_string())].into());
        lobby.status = Some(crate::crd::camera::CameraStatus {
            processors: vec![crate::crd::camera::AttachedProcessor {
                name: "yolo".into(),
                ready: true,
                connected: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        });
        let cameras = [Arc::new(lobby), Arc::new(yard)];
        let matched = matched_cameras(&fp, &cameras);
        assert_eq!(matched, ["lobby"]);
        let connected = connected_cameras(&fp, &cameras);
        assert_eq!(connected, ["lobby"]);
        let now = Timestamp::from_second(1).expect("valid");
        let observed = ProcessorObserved {
            matched,
            connected,
            ..Default::default()
        };
        let status = processor_status(&fp, observed, now);
        assert_eq!(status.matched_camera_count, 1);
        assert_eq!(status.connected_camera_count, 1);
        assert_eq!(status.connected_cameras, ["lobby"]);
        assert_eq!(status.mode, Some(ProcessorMode::Sidecar));
        assert_eq!(status.pool, None);
        assert_eq!(status.conditions[0].reason, "Selected");
    }

    fn pool_processor() -> FrameProcessor {
        let mut fp = FrameProcessor::new(
            "yolo",
            FrameProcessorSpec {
                image: "yolo:1".into(),
                gpu: Some(l4_gpu(1)),
                replicas: Some(2),
                ..Default::default()
            },
        );
        fp.metadata.namespace = Some("cams".into());
        fp
    }

    fn pool_deployment(ready: i32) -> Deployment {
        let fp = pool_processor();
        let mut d = build_pool_deployment(&fp, &PoolRef::of(&fp).expect("named"));
        d.status = Some(DeploymentStatus {
            replicas: Some(2),
            ready_replicas: Some(ready),
            ..Default::default()
        });
        d
    }

    #[test]
    fn pool_status_sums_the_cameras_frame_rates_and_names_the_last_error() {
        let observations = Observations::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        // Two cameras acknowledged 1 and 0.5 frames a second; the third cannot reach the pool.
        observations.record_at("cams/a", pool_report("yolo", true, 100, None), t0);
        observations.record_at("cams/a", pool_report("yolo", true, 110, None), t1);
        observations.record_at("cams/b", pool_report("yolo", true, 40, None), t0);
        observations.record_at("cams/b", pool_report("yolo", true, 45, None), t1);
        observations.record_at(
            "cams/c",
            pool_report("yolo", false, 0, Some("connection refused")),
            t0,
        );
        let cameras: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let words = camera_words(&observations, "cams", "yolo", &cameras);
        assert_eq!(words.len(), 3, "camera d's worker has not answered yet");
        let deployment = pool_deployment(1);
        let fp = pool_processor();
        let status = processor_status(
            &fp,
            ProcessorObserved {
                matched: cameras,
                connected: vec!["a".into(), "b".into()],
                words,
                pool: Some(&deployment),
                conflict: None,
            },
            Timestamp::from_second(1).expect("valid"),
        );
        assert_eq!(status.mode, Some(ProcessorMode::Pool));
        assert_eq!(status.frames_per_second, Some(1.5));
        assert_eq!(status.last_error.as_deref(), Some("c: connection refused"));
        assert_eq!(status.connected_cameras, ["a", "b"]);
        assert_eq!(status.connected_camera_count, 2);
        assert_eq!(
            status.pool,
            Some(PoolStatus {
                replicas: 2,
                ready_replicas: 1,
                summary: "1/2".into(),
            })
        );
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "PoolReady")
        );
        assert_eq!(
            ready.message,
            "1/2 pool pod(s) ready; 2 of 4 camera(s) connected"
        );
    }

    #[test]
    fn a_pool_is_ready_only_with_a_ready_pod_and_never_when_scaled_to_zero() {
        let mut fp = pool_processor();
        let now = Timestamp::from_second(1).expect("valid");
        let reason = |fp: &FrameProcessor, pool: Option<&Deployment>| {
            let status = processor_status(
                fp,
                ProcessorObserved {
                    pool,
                    ..Default::default()
                },
                now,
            );
            let c = &status.conditions[0];
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(reason(&fp, None), ("False".into(), "PoolStarting".into()));
        let starting = pool_deployment(0);
        assert_eq!(
            reason(&fp, Some(&starting)),
            ("False".into(), "PoolStarting".into())
        );
        let ready = pool_deployment(2);
        assert_eq!(
            reason(&fp, Some(&ready)),
            ("True".into(), "PoolReady".into())
        );
        fp.spec.replicas = Some(0);
        assert_eq!(
            reason(&fp, Some(&starting)),
            ("False".into(), "ScaledToZero".into())
        );
    }

    #[test]
    fn the_last_error_stays_while_reported_and_after_it_clears() {
        let mut fp = pool_processor();
        let word = |camera: &str, error: Option<&str>| CameraWord {
            camera: camera.into(),
            last_error: error.map(str::to_string),
            ack_rate: None,
        };
        let now = Timestamp::from_second(1).expect("valid");
        let with = |fp: &FrameProcessor, words: Vec<CameraWord>| {
            processor_status(
                fp,
                ProcessorObserved {
                    words,
                    ..Default::default()
                },
                now,
            )
        };
        fp.status = Some(with(&fp, vec![word("b", Some("timed out"))]));
        // Another camera's error appears: the one shown does not flip while still reported.
        let both = with(
            &fp,
            vec![word("a", Some("refused")), word("b", Some("timed out"))],
        );
        assert_eq!(both.last_error.as_deref(), Some("b: timed out"));
        // Every connection is fine again: the last error stays visible.
        let fine = with(&fp, vec![word("a", None), word("b", None)]);
        assert_eq!(fine.last_error.as_deref(), Some("b: timed out"));
        assert_eq!(fine.frames_per_second, None, "no rate reported yet");
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod pool_tests;
