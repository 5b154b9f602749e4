//! What each worker says about its camera: the operator reads `GET /api/cameras/<camera>` from
//! every running worker pod (bounded concurrency, every [`POLL_EVERY`], and soon after a pod
//! turns ready), keeps the newest answer per camera, and wakes a Camera's reconcile only when
//! something worth a status change changed. A worker that does not answer is an observation
//! ("unreachable"), not an error loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::context::Stores;
use crate::crd::camera::Camera;
use crate::reconcile::health::{container_health, current_pod};
use crate::reconcile::names::{CAMERA_LABEL, HTTP_PORT, WORKER_CONTAINER};

/// How often every worker is asked.
pub const POLL_EVERY: Duration = Duration::from_secs(10);
/// How long one answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Workers asked at once.
const CONCURRENCY: usize = 16;
/// The largest answer read (a camera's JSON is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

/// The recorder, as the worker reports it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RecordingReport {
    /// `idle`, `recording`, `disk_low` or `error`.
    #[serde(default)]
    pub state: String,
    /// The file being written.
    #[serde(default)]
    pub file: Option<String>,
    /// Bytes recorded.
    #[serde(default)]
    pub bytes: u64,
    /// The last disk error.
    #[serde(default)]
    pub last_error: Option<ErrorReport>,
}

/// A disk error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorReport {
    /// Short reason, e.g. `no_space`.
    #[serde(default)]
    pub reason: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

/// One processor on the frame socket, as the worker reports it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProcessorReport {
    /// The processor's name (its `hello`).
    pub name: String,
    /// Whether it is connected now.
    #[serde(default)]
    pub connected: bool,
    /// Seconds since the capture of the newest frame it acknowledged.
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    /// `unix` (a sidecar on the frame socket) or `tcp` (a pool).
    #[serde(default)]
    pub transport: Option<String>,
    /// The pool address connected to, or last tried.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Why the last connection to the pool failed or ended, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Frames it acknowledged since the worker started. Turned into a rate by [`Observations`]
    /// and not kept in the observation, so that a moving counter never counts as a change.
    #[serde(default)]
    pub frames_acked: u64,
}

/// The frames section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FramesReport {
    /// Processors connected (or recently connected) for this camera.
    #[serde(default)]
    pub processors: Vec<ProcessorReport>,
}

/// A pulled camera's source, as the worker reports it (`source` in `/api/cameras/<camera>`;
/// absent for a pushed camera and from workers before RTSP pull). Only what the status shows is
/// kept: the worker's counters and countdowns (`failures`, `retry_in_ms`, `since`) move at
/// every poll and would count as a change each time.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SourceReport {
    /// `rtsp`.
    #[serde(default)]
    pub kind: String,
    /// `connecting`, `playing` or `backoff`.
    #[serde(default)]
    pub state: String,
    /// Why the last attempt or session failed (kept after a later success).
    #[serde(default)]
    pub last_error: Option<String>,
}

impl SourceReport {
    /// Failing: waiting to retry, or retrying after a failure. Polls catch a failing pull in
    /// either state, so both read the same and flipping between them is no change.
    pub fn failing(&self) -> bool {
        self.state == "backoff" || (self.state == "connecting" && self.last_error.is_some())
    }
}

/// What a worker says about its camera (the fields of `/api/cameras/<camera>` the operator uses).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct WorkerReport {
    /// A publisher is connected.
    #[serde(default)]
    pub live: bool,
    /// Since when.
    #[serde(default)]
    pub since: Option<String>,
    /// The publisher's address.
    #[serde(default)]
    pub publisher: Option<String>,
    /// RFC 6381 codec string, e.g. `avc1.640028`.
    #[serde(default)]
    pub codec_string: Option<String>,
    /// `WIDTHxHEIGHT`.
    #[serde(default)]
    pub resolution: Option<String>,
    /// Measured frame rate.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Measured bits per second.
    #[serde(default)]
    pub bitrate: Option<u64>,
    /// What the publisher sends that Kamera cannot use (e.g. AV1 video over enhanced RTMP).
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// The recorder.
    #[serde(default)]
    pub recording: Option<RecordingReport>,
    /// Frames and processors.
    #[serde(default)]
    pub frames: Option<FramesReport>,
    /// The RTSP source of a pulled camera.
    #[serde(default)]
    pub source: Option<SourceReport>,
}

/// A worker's word that it released a camera it no longer holds (its 404 answer's body).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Released {
    /// When the worker released the camera.
    pub released_at: String,
    /// When the camera's last publisher left.
    #[serde(default)]
    pub last_seen: Option<String>,
}

/// The newest word from a camera's worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The worker answered about its camera.
    Report(Box<WorkerReport>),
    /// The worker answered that it has no stream of that camera (404): none yet, or, with the
    /// release, none since it released the camera after its publisher left.
    NoStream(Option<Released>),
    /// The worker did not answer usefully: why.
    Unreachable(String),
}

impl Observation {
    /// The observation with measured rates kept at `previous`'s values while they moved less
    /// than a few percent, so that noise in fps and bitrate never causes a status write.
    pub fn settled(self, previous: Option<&Observation>) -> Observation {
        let (Observation::Report(mut new), Some(Observation::Report(old))) =
            (self.clone(), previous)
        else {
            return self;
        };
        new.fps = steady(old.fps, new.fps, 0.05);
        if let (Some(now), Some(before)) = (new.source.as_mut(), old.source.as_ref()) {
            if now.failing() && before.failing() && now.last_error == before.last_error {
                now.state.clone_from(&before.state);
            }
        }
        new.bitrate = steady(
            old.bitrate.map(|b| b as f64),
            new.bitrate.map(|b| b as f64),
            0.10,
        )
        .map(|b| b as u64);
        for p in new.frames.iter_mut().flat_map(|f| f.processors.iter_mut()) {
            let before = old
                .frames
                .iter()
                .flat_map(|f| &f.processors)
                .find(|o| o.name == p.name)
                .and_then(|o| o.lag_seconds);
            p.lag_seconds = steady_lag(before, p.lag_seconds);
        }
        Observation::Report(new)
    }
}

/// `new`, unless it is within `tolerance` (relative) of `old`.
pub fn steady(old: Option<f64>, new: Option<f64>, tolerance: f64) -> Option<f64> {
    match (old, new) {
        (Some(o), Some(n)) if o != 0.0 && ((n - o) / o).abs() <= tolerance => Some(o),
        _ => new.map(|n| (n * 100.0).round() / 100.0),
    }
}

/// Lag in whole seconds, kept while it moved by less than a second or 20 %.
pub fn steady_lag(old: Option<f64>, new: Option<f64>) -> Option<f64> {
    let new = new.map(|n| n.round());
    match (old, new) {
        (Some(o), Some(n)) if (n - o).abs() < 1.0 || (o > 0.0 && ((n - o) / o).abs() <= 0.2) => {
            Some(o)
        }
        _ => new,
    }
}

/// The newest observation of every camera (`namespace/name`), and the token the operator reads
/// a worker's `/api` with when viewer tokens protect it.
#[derive(Debug, Default)]
pub struct Observations {
    seen: Mutex<HashMap<String, Observation>>,
    tokens: Mutex<HashMap<String, String>>,
    acks: Mutex<HashMap<String, HashMap<String, AckSample>>>,
}

/// A processor's acknowledged-frames counter when last asked, and the rate since the ask before.
#[derive(Debug, Clone, Copy)]
struct AckSample {
    acked: u64,
    at: Instant,
    rate: Option<f64>,
}

impl AckSample {
    /// The sample after `acked` frames at `at`; a counter that went back (the worker restarted)
    /// starts over without a rate.
    fn next(previous: Option<AckSample>, acked: u64, at: Instant) -> AckSample {
        let rate = previous.and_then(|p| {
            let seconds = at.checked_duration_since(p.at)?.as_secs_f64();
            (seconds > 0.0 && acked >= p.acked).then(|| (acked - p.acked) as f64 / seconds)
        });
        AckSample { acked, at, rate }
    }
}

impl Observations {
    /// The newest observation of a camera.
    pub fn get(&self, camera: &str) -> Option<Observation> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .cloned()
    }

    /// Sets (or, with `None`, forgets) the token for a camera's worker.
    pub fn set_token(&self, camera: &str, token: Option<String>) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match token {
            Some(t) => tokens.insert(camera.to_string(), t),
            None => tokens.remove(camera),
        };
    }

    /// The token for a camera's worker, if its HTTP needs one.
    pub fn token(&self, camera: &str) -> Option<String> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .cloned()
    }

    /// Records an observation (settled against the previous one); true when it changed.
    pub fn record(&self, camera: &str, observation: Observation) -> bool {
        self.record_at(camera, observation, Instant::now())
    }

    /// [`Self::record`], observed at `at`: each processor's acknowledged-frames counter becomes
    /// its rate since the previous observation.
    pub fn record_at(&self, camera: &str, mut observation: Observation, at: Instant) -> bool {
        if let Observation::Report(report) = &mut observation {
            let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
            let before = acks.remove(camera).unwrap_or_default();
            let mut now = HashMap::new();
            for p in report
                .frames
                .iter_mut()
                .flat_map(|f| f.processors.iter_mut())
            {
                let sample = AckSample::next(before.get(&p.name).copied(), p.frames_acked, at);
                now.insert(p.name.clone(), sample);
                p.frames_acked = 0;
            }
            acks.insert(camera.to_string(), now);
        }
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let settled = observation.settled(all.get(camera));
        let changed = all.get(camera) != Some(&settled);
        all.insert(camera.to_string(), settled);
        changed
    }

    /// Frames per second `processor` acknowledged for `camera` between the last two
    /// observations; `None` before two reports.
    pub fn ack_rate(&self, camera: &str, processor: &str) -> Option<f64> {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)?
            .get(processor)?
            .rate
    }

    /// Forgets cameras that no longer exist.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }
}

/// Asks workers inside the cluster, over HTTP or, for a camera with `http.tls`, HTTPS.
///
/// Over HTTPS the worker's certificate is not verified: the operator dials the pod's IP, which
/// no certificate for the camera's public name covers, and the answer is status that the
/// operator only displays. The handshake still proves the peer holds the key of the
/// certificate it shows. This is what the kubelet does for an HTTPS probe, and no weaker than
/// the plain HTTP the status read used before (a viewer token it sends travels encrypted now).
#[derive(Clone)]
pub struct WorkerProbe {
    http: HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    port: u16,
}

impl WorkerProbe {
    /// A probe of workers listening on `port`.
    pub fn new(port: u16) -> Result<Self, rustls::Error> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(ANSWER_WITHIN));
        connector.enforce_http(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyWorkerCertificate(provider)))
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(WorkerProbe {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
            port,
        })
    }

    /// The probe of workers on their standard port.
    pub fn standard() -> Result<Self, rustls::Error> {
        Self::new(u16::try_from(HTTP_PORT).unwrap_or(8080))
    }

    /// Asks the worker at `ip` about `camera`, with `token` when its HTTP needs one, over HTTPS
    /// when `https`.
    pub async fn ask(
        &self,
        ip: &str,
        camera: &str,
        token: Option<&str>,
        https: bool,
    ) -> Observation {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let scheme = if https { "https" } else { "http" };
        let uri = format!("{scheme}://{host}:{}/api/cameras/{camera}", self.port);
        let mut request = http::Request::get(&uri);
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match request.body(Empty::new()) {
            Ok(r) => r,
            Err(e) => return Observation::Unreachable(format!("bad request {uri}: {e}")),
        };
        let answer = tokio::time::timeout(ANSWER_WITHIN, async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await;
        match answer {
            Err(_) => Observation::Unreachable(format!("no answer within {ANSWER_WITHIN:?}")),
            Ok(Err(e)) => Observation::Unreachable(e),
            Ok(Ok((status, body))) if status == http::StatusCode::NOT_FOUND => {
                Observation::NoStream(serde_json::from_slice::<Released>(&body).ok())
            }
            Ok(Ok((status, _))) if !status.is_success() => {
                Observation::Unreachable(format!("the worker answered {status}"))
            }
            Ok(Ok((_, body))) => match serde_json::from_slice::<WorkerReport>(&body) {
                Ok(report) => Observation::Report(Box::new(report)),
                Err(e) => Observation::Unreachable(format!("unreadable answer: {e}")),
            },
        }
    }
}

/// Takes any certificate a worker shows (see [`WorkerProbe`]) but checks the handshake's
/// signatures with it, so the peer must hold its key.
#[derive(Debug)]
struct AnyWorkerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyWorkerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A camera to ask: its worker pod's IP, and whether the worker serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub camera: ObjectRef<Camera>,
    pub ip: String,
    pub https: bool,
}

/// Whether the worker container of `pod` was started with `--tls-cert` (the running pod says,
/// not the Camera's spec: during a rollout the old pod still speaks what it was started with).
pub fn serves_https(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| c.name == WORKER_CONTAINER)
        .flat_map(|c| c.args.iter().flatten())
        .any(|a| a == "--tls-cert")
}

/// The cameras to ask now: those whose worker container is ready, with the pod's IP.
pub fn targets(stores: &Stores) -> Vec<Target> {
    let mut pods_by_camera: HashMap<(String, String), Vec<Arc<k8s_openapi::api::core::v1::Pod>>> =
        HashMap::new();
    for pod in stores.pods.state() {
        if let Some(camera) = pod.labels().get(CAMERA_LABEL) {
            let ns = pod.namespace().unwrap_or_default();
            pods_by_camera
                .entry((ns, camera.clone()))
                .or_default()
                .push(pod);
        }
    }
    stores
        .cameras
        .state()
        .iter()
        .filter_map(|cam| {
            let key = (cam.namespace().unwrap_or_default(), cam.name_any());
            let pods = pods_by_camera.get(&key)?;
            let pod = current_pod(pods)?;
            let ready = container_health(pod, WORKER_CONTAINER).is_some_and(|h| h.ready);
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            ready.then(|| Target {
                camera: ObjectRef::from_obj(cam.as_ref()),
                ip,
                https: serves_https(pod),
            })
        })
        .collect()
}

/// Asks every running worker once; returns the cameras whose observation changed, and forgets
/// cameras whose worker is not running.
pub async fn poll_once(
    stores: &Stores,
    observations: &Observations,
    probe: &WorkerProbe,
) -> Vec<ObjectRef<Camera>> {
    let targets = targets(stores);
    let asked: std::collections::HashSet<String> = targets
        .iter()
        .map(|t| {
            let c = &t.camera;
            format!("{}/{}", c.namespace.as_deref().unwrap_or_default(), c.name)
        })
        .collect();
    let changed = futures::stream::iter(targets)
        .map(|Target { camera, ip, https }| async move {
            let key = format!(
                "{}/{}",
                camera.namespace.as_deref().unwrap_or_default(),
                camera.name
            );
            let token = observations.token(&key);
            let observation = probe.ask(&ip, &camera.name, token.as_deref(), https).await;
            observations.record(&key, observation).then_some(camera)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|c| async move { c })
        .collect::<Vec<_>>()
        .await;
    observations.retain(|k| asked.contains(k));
    changed
}

/// Asks every running worker every [`POLL_EVERY`] until `shutdown`; sends the cameras whose
/// observation changed to `changed`.
pub async fn poll(
    stores: Stores,
    observations: Arc<Observations>,
    probe: WorkerProbe,
    changed: mpsc::Sender<ObjectRef<Camera>>,
    shutdown: CancellationToken,
) {
    while stores.wait_ready(Duration::from_secs(60)).await.is_err() {
        if shutdown.is_cancelled() {
            return;
        }
    }
    loop {
        for camera in poll_once(&stores, &observations, &probe).await {
            debug!(camera = %camera.name, "worker state changed");
            if changed.send(camera).await.is_err() {
                return;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod observe_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(fps: f64, bitrate: u64) -> Observation {
        Observation::Report(Box::new(WorkerReport {
            live: true,
            fps: Some(fps),
            bitrate: Some(bitrate),
            ..Default::default()
        }))
    }

    #[test]
    fn noise_in_measured_rates_is_not_a_change() {
        let obs = Observations::default();
        assert!(obs.record("cams/a", report(25.0, 4_000_000)));
        assert!(
            !obs.record("cams/a", report(24.9, 4_150_000)),
            "within tolerance"
        );
        assert!(
            obs.record("cams/a", report(15.0, 4_000_000)),
            "a real change"
        );
        assert!(obs.record("cams/a", Observation::NoStream(None)));
    }

    /// A report whose processor acknowledged `frames`, connected unless there is an error.
    fn acked(name: &str, frames: u64, last_error: Option<&str>) -> Observation {
        crate::fixtures::pool_report(name, last_error.is_none(), frames, last_error)
    }

    #[test]
    fn acknowledged_frames_become_a_rate_without_counting_as_a_change() {
        let obs = Observations::default();
        let t0 = Instant::now();
        assert!(obs.record_at("cams/a", acked("yolo", 100, None), t0));
        assert_eq!(
            obs.ack_rate("cams/a", "yolo"),
            None,
            "one sample is no rate"
        );
        let t1 = t0 + Duration::from_secs(10);
        assert!(
            !obs.record_at("cams/a", acked("yolo", 120, None), t1),
            "a moving counter alone wakes nobody"
        );
        assert_eq!(obs.ack_rate("cams/a", "yolo"), Some(2.0));
        // The worker restarted: its counter starts over, and so does the rate.
        obs.record_at(
            "cams/a",
            acked("yolo", 3, None),
            t1 + Duration::from_secs(10),
        );
        assert_eq!(obs.ack_rate("cams/a", "yolo"), None);
        assert!(obs.record_at(
            "cams/a",
            acked("yolo", 3, Some("connection refused")),
            t1 + Duration::from_secs(20)
        ));
        obs.retain(|_| false);
        assert_eq!(obs.ack_rate("cams/a", "yolo"), None);
    }

    #[test]
    fn the_workers_json_parses_with_unknown_fields_ignored() {
        let json = serde_json::json!({
            "name": "lobby", "live": true, "since": "2026-12-01T10:00:00.000Z",
            "publisher": "10.0.0.7:51234", "codec": "h264", "codec_string": "avc1.640028",
            "resolution": "1920x1080", "fps": 25.0, "bitrate": 4_000_000, "unsupported": [],
            "recording": {"state": "disk_low", "file": null, "bytes": 10,
                          "last_error": {"reason": "no_space", "message": "free space below 5%", "at": "x"}},
            "frames": {"processors": [{"name": "yolo", "connected": false, "lag_seconds": null},
                                      {"name": "detect", "connected": false, "transport": "tcp",
                                       "endpoint": "detect-pool.cams.svc:7700", "frames_acked": 12,
                                       "last_error": "connection refused"}]},
            "hls": {"parts": 3},
        });
        let report: WorkerReport = serde_json::from_value(json).expect("parses");
        assert_eq!(report.recording.expect("recording").state, "disk_low");
        let processors = report.frames.expect("frames").processors;
        assert!(!processors[0].connected);
        assert_eq!(processors[1].transport.as_deref(), Some("tcp"));
        assert_eq!(
            processors[1].last_error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(processors[1].frames_acked, 12);
    }

    #[test]
    fn the_workers_own_roster_of_a_pool_parses_into_a_processor_report() {
        use kamera_worker::frames::roster::{with_links, LinkView, PoolEndpoint};
        let link = LinkView {
            name: "yolo".into(),
            connected: false,
            since: std::time::SystemTime::UNIX_EPOCH,
            endpoint: PoolEndpoint {
                endpoint: "yolo-pool.cams.svc:7700".into(),
                last_error: Some("connection refused".into()),
            },
        };
        let json = serde_json::to_value(with_links(Vec::new(), vec![link])).expect("json");
        let parsed: Vec<ProcessorReport> = serde_json::from_value(json).expect("parses");
        assert_eq!(parsed.len(), 1);
        let p = &parsed[0];
        assert_eq!(p.name, "yolo");
        assert!(!p.connected);
        assert_eq!(p.transport.as_deref(), Some("tcp"));
        assert_eq!(p.endpoint.as_deref(), Some("yolo-pool.cams.svc:7700"));
        assert_eq!(p.last_error.as_deref(), Some("connection refused"));
        assert_eq!(p.frames_acked, 0);
    }

    /// The worker's own HTTPS listener, with a self-signed certificate for a name the operator
    /// never dials (it dials the pod's IP); its port.
    async fn https_worker(shutdown: CancellationToken) -> u16 {
        use axum::routing::get;
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=lobby.cams.example.com",
            ])
            .args(["-keyout", "tls.key", "-out", "tls.crt"])
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl CLI");
        assert!(status.success());
        let registry = kamera_worker::metrics::Families::new();
        let files = kamera_worker::http::tls::TlsFiles::load(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            &registry,
        )
        .expect("a usable pair");
        let router = axum::Router::new().route(
            "/api/cameras/{camera}",
            get(|| async { axum::Json(serde_json::json!({"live": true, "fps": 25.0})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let serve = kamera_worker::http::serve::serve(
            listener,
            router,
            Some(files.acceptor().expect("acceptor")),
            kamera_worker::http::serve::Limits::new(4),
            kamera_worker::http::serve::ServeMetrics::register(&registry).expect("metrics"),
            shutdown,
        );
        tokio::spawn(serve);
        port
    }

    #[tokio::test]
    async fn a_worker_serving_https_is_read_without_verifying_its_certificate() {
        let shutdown = CancellationToken::new();
        let port = https_worker(shutdown.clone()).await;
        let probe = WorkerProbe::new(port).expect("probe");
        match probe.ask("127.0.0.1", "lobby", None, true).await {
            Observation::Report(report) => {
                assert!(report.live);
                assert_eq!(report.fps, Some(25.0));
            }
            other => panic!("no report over HTTPS: {other:?}"),
        }
        assert!(
            matches!(
                probe.ask("127.0.0.1", "lobby", None, false).await,
                Observation::Unreachable(_)
            ),
            "plain HTTP to the HTTPS port reads nothing"
        );
        shutdown.cancel();
    }

    #[test]
    fn the_running_pod_says_whether_its_worker_serves_https() {
        use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
        let pod = |args: &[&str]| Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: WORKER_CONTAINER.into(),
                    args: Some(args.iter().map(|a| a.to_string()).collect()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(serves_https(&pod(&[
            "--tls-cert",
            "/etc/kamera/tls/tls.crt"
        ])));
        assert!(!serves_https(&pod(&["--camera", "lobby"])));
    }

    #[tokio::test]
    async fn a_worker_that_does_not_listen_is_unreachable_not_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let probe = WorkerProbe::new(port).expect("probe");
        assert!(matches!(
            probe.ask("127.0.0.1", "lobby", None, false).await,
            Observation::Unreachable(_)
        ));
    }
}
