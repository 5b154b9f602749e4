//! The Camera's conditions from what the cluster and the worker show: the worker container (and
//! its recorder) decide `Ready` (a processor never does); each processor's container state and
//! its connection to the frame socket decide `ProcessorsReady`; the claim and the recorder decide
//! `Recording`; the publisher (or, for a pulled camera, the worker's pull of its RTSP source)
//! decides `Ingesting`. Pure: the reconciler passes everything in.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::crd::camera::{AttachedProcessor, RecordingStatus};
use crate::observe::{Observation, ProcessorReport, WorkerReport};
use crate::reconcile::health::{
    container_health, current_pod, pod_creation_failure, unschedulable,
};
use crate::reconcile::names::{processor_container_name, WORKER_CONTAINER};
use crate::reconcile::resolve::ResolvedProcessor;
use crate::reconcile::status::{Cond, INGESTING, PROCESSORS_READY, READY, RECORDING};

/// The recordings claim as the reconcile found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Recording is off: no claim.
    Disabled,
    /// Applying the claim failed (e.g. the API refused to shrink it): the message.
    Failed(String),
    /// The claim's phase (`Bound`, `Pending`, `Lost`), `None` before the first status.
    Phase(Option<String>),
}

/// Everything the conditions are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// `spec.suspend`.
    pub suspended: bool,
    /// Attached processors.
    pub processors: &'a [ResolvedProcessor],
    /// The live Deployment, if any.
    pub deployment: Option<&'a Deployment>,
    /// The camera's pods.
    pub pods: &'a [Arc<Pod>],
    /// The recordings claim.
    pub claim: &'a Claim,
    /// The newest word from the worker, if it is running.
    pub worker: Option<&'a Observation>,
    /// The RTSP URL the worker pulls (`source.rtsp.url`); `None` for a camera publishers push to.
    pub pull: Option<&'a str>,
}

/// The status fields the worker reports about its stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    /// A publisher is connected.
    pub live: Option<bool>,
    /// `WIDTHxHEIGHT`.
    pub resolution: Option<String>,
    /// Frames per second.
    pub fps: Option<f64>,
    /// Bits per second.
    pub bitrate: Option<i64>,
    /// RFC 6381 codec string.
    pub codec: Option<String>,
    /// Since when the publisher is connected.
    pub since: Option<String>,
    /// The publisher's address.
    pub publisher: Option<String>,
    /// The recorder.
    pub recording: Option<RecordingStatus>,
}

/// Everything the status says about the camera's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// `Ready`, `Ingesting`, `ProcessorsReady`, `Recording`.
    pub conditions: Vec<Cond>,
    /// Each attached processor's state.
    pub processors: Vec<AttachedProcessor>,
    /// The stream, as the worker reports it.
    pub stream: Stream,
}

/// The conditions `Ready`, `Ingesting`, `ProcessorsReady`, `Recording`, each processor's state,
/// and the stream's fields.
pub fn assess(o: &Observed<'_>) -> Assessment {
    let pod = current_pod(o.pods).map(Arc::as_ref);
    let report = match o.worker {
        Some(Observation::Report(r)) => Some(r.as_ref()),
        _ => None,
    };
    let attached = attached(o.processors, pod, o.suspended, report);
    let recording = recording(o.claim, report);
    let conditions = vec![
        ready(o, pod, &recording),
        ingesting(o),
        processors_ready(&attached),
        recording,
    ];
    Assessment {
        conditions,
        processors: attached,
        stream: report.map(stream).unwrap_or_default(),
    }
}

fn stream(r: &WorkerReport) -> Stream {
    Stream {
        live: Some(r.live),
        resolution: r.resolution.clone().filter(|_| r.live),
        fps: r.fps.filter(|_| r.live),
        bitrate: r
            .bitrate
            .filter(|_| r.live)
            .and_then(|b| i64::try_from(b).ok()),
        codec: r.codec_string.clone().filter(|_| r.live),
        since: r.since.clone().filter(|_| r.live),
        publisher: r.publisher.clone().filter(|_| r.live),
        recording: r.recording.as_ref().map(|rec| RecordingStatus {
            state: rec.state.clone(),
            file: rec.file.clone(),
            bytes: i64::try_from(rec.bytes).unwrap_or(i64::MAX),
            last_error: rec
                .last_error
                .as_ref()
                .map(|e| format!("{}: {}", e.reason, e.message)),
        }),
    }
}

fn ingesting(o: &Observed<'_>) -> Cond {
    let report = match o.worker {
        _ if o.suspended => {
            return Cond::no(INGESTING, "Suspended", "the worker is scaled to zero")
        }
        None => return Cond::no(INGESTING, "WorkerNotRunning", "the worker is not running"),
        Some(Observation::Unreachable(why)) => {
            return Cond::no(
                INGESTING,
                "WorkerUnreachable",
                format!("the worker does not answer: {why}"),
            )
        }
        Some(Observation::NoStream(_)) => None,
        Some(Observation::Report(r)) => Some(r.as_ref()),
    };
    if let Some(url) = o.pull {
        return pulling(url, report);
    }
    let released = match o.worker {
        Some(Observation::NoStream(released)) => released.as_ref(),
        _ => None,
    };
    match report {
        None => match released {
            Some(r) => Cond::no(
                INGESTING,
                "NoPublisher",
                format!(
                    "no publisher since {}; the worker released the camera's stream state at {} (--idle-release)",
                    r.last_seen.as_deref().unwrap_or("its last session"),
                    r.released_at
                ),
            ),
            None => Cond::no(INGESTING, "NoPublisher", "no publisher has connected yet"),
        },
        Some(r) if !r.live => Cond::no(INGESTING, "NoPublisher", "the publisher disconnected"),
        Some(r) if r.codec_string.is_none() && !r.unsupported.is_empty() => Cond::no(
            INGESTING,
            "UnsupportedCodec",
            format!(
                "the publisher sends what Kamera cannot use: {}",
                r.unsupported.join(", ")
            ),
        ),
        Some(r) => Cond::yes(
            INGESTING,
            "Publishing",
            stream_summary(r, r.publisher.as_deref().unwrap_or("a publisher")),
        ),
    }
}

/// `Ingesting` of a camera the worker pulls from `url`: its pull's state (`source`), which
/// older workers do not report.
fn pulling(url: &str, report: Option<&WorkerReport>) -> Cond {
    let source = report.and_then(|r| r.source.as_ref());
    let last_error = source.and_then(|s| s.last_error.as_deref());
    match report {
        Some(r) if r.live && r.codec_string.is_none() && !r.unsupported.is_empty() => Cond::no(
            INGESTING,
            "UnsupportedCodec",
            format!(
                "the RTSP camera {url} sends what Kamera cannot use: {}",
                r.unsupported.join(", ")
            ),
        ),
        Some(r) if r.live => Cond::yes(INGESTING, "Pulling", stream_summary(r, url)),
        _ if source.is_some_and(|s| s.failing()) => Cond::no(
            INGESTING,
            "PullFailed",
            format!(
                "pulling {url} failed: {}; the worker keeps retrying with backoff",
                last_error.unwrap_or("no reason given")
            ),
        ),
        _ if source.is_some_and(|s| s.state == "playing") => Cond::no(
            INGESTING,
            "Connecting",
            format!("{url} plays; waiting for its first video"),
        ),
        _ => Cond::no(
            INGESTING,
            "Connecting",
            format!("the worker is connecting to {url}"),
        ),
    }
}

/// `1920x1080 avc1.640028 from <origin>`.
fn stream_summary(r: &WorkerReport, origin: &str) -> String {
    format!(
        "{} {} from {origin}",
        r.resolution.as_deref().unwrap_or("video"),
        r.codec_string.as_deref().unwrap_or(""),
    )
    .replace("  ", " ")
}

fn ready(o: &Observed<'_>, pod: Option<&Pod>, recording: &Cond) -> Cond {
    let worker = worker_ready(o, pod);
    if !worker.ok {
        return worker;
    }
    // A worker that runs but cannot record is not ready: footage is being lost.
    if !recording.ok && matches!(recording.reason.as_str(), "DiskFull" | "WriteError") {
        return Cond::no(READY, &recording.reason, recording.message.clone());
    }
    worker
}

fn worker_ready(o: &Observed<'_>, pod: Option<&Pod>) -> Cond {
    if o.suspended {
        return Cond::no(
            READY,
            "Suspended",
            "the worker is scaled to zero (spec.suspend)",
        );
    }
    if let Some(message) = o.deployment.and_then(pod_creation_failure) {
        return Cond::no(READY, "PodCreationFailed", message);
    }
    let Some(pod) = pod else {
        return Cond::no(
            READY,
            "WorkerStarting",
            "waiting for the worker pod to be created",
        );
    };
    if let Some(message) = unschedulable(pod) {
        return Cond::no(READY, "Unschedulable", message);
    }
    match container_health(pod, WORKER_CONTAINER) {
        Some(h) if h.ready => Cond::yes(READY, "WorkerReady", "the worker is running and ready"),
        Some(h) if h.reason == "NotReady" => Cond::no(
            READY,
            "WorkerStarting",
            "the worker is running, not yet ready",
        ),
        Some(h) => Cond::no(READY, &h.reason, format!("worker container: {}", h.message)),
        None => Cond::no(
            READY,
            "WorkerStarting",
            "waiting for the worker container to start",
        ),
    }
}

fn attached(
    processors: &[ResolvedProcessor],
    pod: Option<&Pod>,
    suspended: bool,
    report: Option<&WorkerReport>,
) -> Vec<AttachedProcessor> {
    processors
        .iter()
        .map(|p| {
            let health =
                pod.and_then(|pod| container_health(pod, &processor_container_name(&p.name)));
            // The worker's side: is it connected to the frame socket, how far behind is it?
            let socket = report.map(|r| {
                r.frames
                    .iter()
                    .flat_map(|f| &f.processors)
                    .find(|s| s.name == p.name)
            });
            let connected = socket.map(|s| s.is_some_and(|s| s.connected));
            let lag_seconds = socket.flatten().and_then(|s| s.lag_seconds);
            let (ready, state) = if p.is_pool() {
                pool_state(socket, suspended)
            } else {
                match health {
                    Some(h) if h.ready && connected == Some(false) => (
                        false,
                        Some(
                            "NotConnected: running, not connected to the frame socket".to_string(),
                        ),
                    ),
                    Some(h) if h.ready => (true, None),
                    Some(h) if h.message.is_empty() || h.message == h.reason => {
                        (false, Some(h.reason))
                    }
                    Some(h) => (false, Some(format!("{}: {}", h.reason, h.message))),
                    None if suspended => (false, Some("Suspended".to_string())),
                    None => (false, Some("Pending".to_string())),
                }
            };
            let message = match (state, &p.note) {
                (Some(s), Some(n)) => Some(format!("{s}; {n}")),
                (s, n) => s.or_else(|| n.clone()),
            };
            AttachedProcessor {
                name: p.name.clone(),
                ready,
                message,
                connected,
                lag_seconds,
            }
        })
        .collect()
}

/// A pool processor has no container in the camera's pod: it is ready when the worker reports
/// its connection to the pool up.
fn pool_state(socket: Option<Option<&ProcessorReport>>, suspended: bool) -> (bool, Option<String>) {
    match socket {
        _ if suspended => (false, Some("Suspended".to_string())),
        Some(Some(s)) if s.connected => (true, None),
        Some(Some(s)) => (
            false,
            Some(format!(
                "NotConnected: the worker is not connected to the pool{}",
                s.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        ),
        Some(None) => (
            false,
            Some("NotConnected: the worker does not report the pool yet".to_string()),
        ),
        None => (false, Some("Pending".to_string())),
    }
}

fn processors_ready(attached: &[AttachedProcessor]) -> Cond {
    if attached.is_empty() {
        return Cond::yes(
            PROCESSORS_READY,
            "NoProcessors",
            "no FrameProcessor selects this camera",
        );
    }
    let failing: Vec<&AttachedProcessor> = attached.iter().filter(|p| !p.ready).collect();
    let Some(first) = failing.first() else {
        return Cond::yes(
            PROCESSORS_READY,
            "Running",
            format!("{} processor(s) running", attached.len()),
        );
    };
    // The first failing processor's own reason names the condition (`CrashLoopBackOff`, …).
    let reason = first
        .message
        .as_deref()
        .and_then(|m| m.split(':').next())
        .map(|r| r.split(';').next().unwrap_or(r).trim())
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("NotRunning");
    let message = failing
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p.name,
                p.message.as_deref().unwrap_or("not running")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Cond::no(PROCESSORS_READY, reason, message)
}

fn recording(claim: &Claim, report: Option<&WorkerReport>) -> Cond {
    let bound = matches!(claim, Claim::Phase(Some(phase)) if phase == "Bound");
    if let (true, Some(rec)) = (bound, report.and_then(|r| r.recording.as_ref())) {
        let error = rec
            .last_error
            .as_ref()
            .map(|e| format!("{}: {}", e.reason, e.message))
            .unwrap_or_default();
        return match rec.state.as_str() {
            "recording" => Cond::yes(
                RECORDING,
                "Recording",
                format!("writing {}", rec.file.as_deref().unwrap_or("a file")),
            ),
            "disk_low" => Cond::no(
                RECORDING,
                "DiskFull",
                format!(
                    "the recordings volume is below its free-space floor; not recording {error}"
                )
                .trim()
                .to_string(),
            ),
            "error" => Cond::no(RECORDING, "WriteError", format!("the disk failed: {error}")),
            _ => Cond::yes(
                RECORDING,
                "Idle",
                "ready to record when a publisher connects",
            ),
        };
    }
    match claim {
        Claim::Disabled => Cond::no(
            RECORDING,
            "Disabled",
            "recording is off (spec.recording.enabled)",
        ),
        Claim::Failed(message) => Cond::no(RECORDING, "ClaimFailed", message.clone()),
        Claim::Phase(Some(phase)) if phase == "Bound" => {
            Cond::yes(RECORDING, "ClaimBound", "the recordings claim is bound")
        }
        Claim::Phase(Some(phase)) if phase == "Lost" => Cond::no(
            RECORDING,
            "ClaimLost",
            "the recordings claim lost its volume",
        ),
        Claim::Phase(_) => Cond::no(
            RECORDING,
            "ClaimPending",
            "waiting for the recordings claim to be bound",
        ),
    }
}

/// The claim state of a live PVC.
pub fn claim_phase(claim: Option<&PersistentVolumeClaim>) -> Claim {
    Claim::Phase(
        claim
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::processor::FrameProcessorSpec;
    use crate::reconcile::health::tests::{pod, status};

    fn yolo() -> ResolvedProcessor {
        ResolvedProcessor {
            name: "yolo".into(),
            spec: FrameProcessorSpec::default(),
            fps: 1.0,
            note: None,
        }
    }

    fn conditions(o: &Observed<'_>) -> (Vec<Cond>, Vec<AttachedProcessor>) {
        let a = assess(o);
        (a.conditions, a.processors)
    }

    fn find<'a>(conds: &'a [Cond], t: &str) -> &'a Cond {
        conds.iter().find(|c| c.type_ == t).expect("condition")
    }

    #[test]
    fn a_crash_looping_processor_leaves_the_camera_ready_and_says_why() {
        let pods = vec![Arc::new(pod(
            "h",
            vec![
                status("worker", None),
                status("processor-yolo", Some("CrashLoopBackOff")),
            ],
        ))];
        let processors = [yolo()];
        let bound = Claim::Phase(Some("Bound".into()));
        let (conds, attached) = conditions(&Observed {
            suspended: false,
            processors: &processors,
            deployment: None,
            pods: &pods,
            claim: &bound,
            worker: None,
            pull: None,
        });
        assert!(find(&conds, READY).ok, "the worker alone decides Ready");
        let p = find(&conds, PROCESSORS_READY);
        assert!(!p.ok);
        assert_eq!(p.reason, "CrashLoopBackOff");
        assert!(
            p.message.starts_with("yolo: CrashLoopBackOff"),
            "{}",
            p.message
        );
        assert!(!attached[0].ready);
        assert!(find(&conds, RECORDING).ok);
    }

    #[test]
    fn a_camera_the_worker_released_is_not_reported_as_never_published() {
        let bound = Claim::Phase(Some("Bound".into()));
        let released = Observation::NoStream(Some(crate::observe::Released {
            released_at: "2026-12-02T01:02:03.000Z".into(),
            last_seen: Some("2026-12-02T01:01:03.000Z".into()),
        }));
        let never = Observation::NoStream(None);
        let ingesting = |worker: &Observation| {
            let (conds, _) = conditions(&Observed {
                suspended: false,
                processors: &[],
                deployment: None,
                pods: &[],
                claim: &bound,
                worker: Some(worker),
                pull: None,
            });
            find(&conds, INGESTING).clone()
        };
        let after_release = ingesting(&released);
        assert!(!after_release.ok);
        assert_eq!(after_release.reason, "NoPublisher");
        assert!(
            after_release
                .message
                .starts_with("no publisher since 2026-12-02T01:01:03.000Z")
                && after_release.message.contains("released"),
            "{}",
            after_release.message
        );
        assert_eq!(ingesting(&never).message, "no publisher has connected yet");
    }

    #[test]
    fn a_pod_the_api_refused_is_the_reason_not_waiting() {
        use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
        let deployment = Deployment {
            status: Some(DeploymentStatus {
                conditions: Some(vec![DeploymentCondition {
                    type_: Some("ReplicaFailure".into()),
                    status: Some("True".into()),
                    reason: Some("FailedCreate".into()),
                    message: Some(
                        "pods \"lobby-x\" is forbidden: RuntimeClass \"nvidia\" not found".into(),
                    ),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (conds, _) = conditions(&Observed {
            suspended: false,
            processors: &[],
            deployment: Some(&deployment),
            pods: &[],
            claim: &Claim::Disabled,
            worker: None,
            pull: None,
        });
        let ready = find(&conds, READY);
        assert_eq!(ready.reason, "PodCreationFailed");
        assert!(ready.message.contains("RuntimeClass \"nvidia\" not found"));
        assert_eq!(find(&conds, RECORDING).reason, "Disabled");
    }

    #[test]
    fn a_worker_stuck_pulling_its_image_is_not_ready_with_the_kubelets_reason() {
        let pods = vec![Arc::new(pod(
            "h",
            vec![status("worker", Some("ImagePullBackOff"))],
        ))];
        let (conds, _) = conditions(&Observed {
            suspended: false,
            processors: &[],
            deployment: None,
            pods: &pods,
            claim: &Claim::Phase(None),
            worker: None,
            pull: None,
        });
        assert_eq!(find(&conds, READY).reason, "ImagePullBackOff");
        assert_eq!(find(&conds, PROCESSORS_READY).reason, "NoProcessors");
        assert_eq!(find(&conds, RECORDING).reason, "ClaimPending");
    }

    #[test]
    fn a_pool_processor_is_ready_when_the_worker_is_connected_to_it() {
        let mut pool = yolo();
        pool.spec.mode = Some(crate::crd::processor::ProcessorMode::Pool);
        let pods = vec![Arc::new(pod("h", vec![status("worker", None)]))];
        let processors = [pool];
        let assess_with = |worker: Option<&Observation>| {
            conditions(&Observed {
                suspended: false,
                processors: &processors,
                deployment: None,
                pods: &pods,
                claim: &Claim::Disabled,
                worker,
                pull: None,
            })
        };
        let connected = crate::fixtures::pool_report("yolo", true, 0, None);
        let (conds, attached) = assess_with(Some(&connected));
        assert!(attached[0].ready, "no container of its own to wait for");
        assert_eq!(attached[0].connected, Some(true));
        assert!(find(&conds, PROCESSORS_READY).ok);

        let refused =
            crate::fixtures::pool_report("yolo", false, 0, Some("token refused by the pool"));
        let (conds, attached) = assess_with(Some(&refused));
        assert!(!attached[0].ready);
        let processors_ready = find(&conds, PROCESSORS_READY);
        assert_eq!(processors_ready.reason, "NotConnected");
        assert!(
            processors_ready
                .message
                .contains("token refused by the pool"),
            "{}",
            processors_ready.message
        );
        assert!(
            find(&conds, READY).ok,
            "a pool never decides the camera's Ready"
        );

        let (_, attached) = assess_with(None);
        assert_eq!(attached[0].message.as_deref(), Some("Pending"));
    }

    fn pulled_ingesting(answer: serde_json::Value) -> Cond {
        let report: WorkerReport = serde_json::from_value(answer).expect("a report");
        let observation = Observation::Report(Box::new(report));
        let (conds, _) = conditions(&Observed {
            suspended: false,
            processors: &[],
            deployment: None,
            pods: &[],
            claim: &Claim::Disabled,
            worker: Some(&observation),
            pull: Some("rtsp://10.0.0.7/stream1"),
        });
        find(&conds, INGESTING).clone()
    }

    #[test]
    fn a_pull_in_backoff_says_why_in_the_ingesting_message() {
        let c = pulled_ingesting(serde_json::json!({
            "live": false,
            "source": {"kind": "rtsp", "state": "backoff", "last_error": "the camera refused the credentials (401 Unauthorized)",
                       "retry_in_ms": 4000, "failures": 3},
        }));
        assert!(!c.ok);
        assert_eq!(c.reason, "PullFailed");
        assert!(
            c.message.contains("rtsp://10.0.0.7/stream1"),
            "{}",
            c.message
        );
        assert!(c.message.contains("401 Unauthorized"), "{}", c.message);
    }

    #[test]
    fn a_pull_reads_as_connecting_then_pulling_never_as_a_missing_publisher() {
        let connecting = pulled_ingesting(serde_json::json!({
            "live": false, "source": {"kind": "rtsp", "state": "connecting", "last_error": null},
        }));
        assert_eq!(connecting.reason, "Connecting");
        // A worker that does not report `source` yet reads the same.
        let older = pulled_ingesting(serde_json::json!({"live": false}));
        assert_eq!((older.ok, older.reason.as_str()), (false, "Connecting"));
        let live = pulled_ingesting(serde_json::json!({
            "live": true, "resolution": "1920x1080", "codec_string": "avc1.640028",
            "source": {"kind": "rtsp", "state": "playing", "last_error": "timed out"},
        }));
        assert!(live.ok);
        assert_eq!(live.reason, "Pulling");
        assert_eq!(
            live.message,
            "1920x1080 avc1.640028 from rtsp://10.0.0.7/stream1"
        );
    }
}
