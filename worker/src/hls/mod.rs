//! LL-HLS live view: one packager per camera fed from the hub, served from memory over HTTP
//! with blocking playlist reload, delta updates and preload hints, plus a player page.
//!
//! Boundaries: `packager` and `playlist` are pure; this module owns the per-camera tasks and
//! shared state; `routes` is the HTTP shell; `page` the player page and hls.js.

pub mod packager;
mod page;
pub mod playlist;
pub(crate) mod routes;
#[cfg(test)]
mod tests;
pub mod timing;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::drops::DropLog;
use crate::http::CameraStatus;
use crate::hub::{Channel, Event, Subscriber};
use crate::media::{Millis, Track};
use crate::metrics::Families;
use crate::stage::{Cameras, Stage};
use packager::{Packager, PackagerConfig, Published};

/// After the publisher leaves, the window stays this long (players ride out a reconnect),
/// then its memory is released.
const RELEASE_AFTER: Duration = Duration::from_secs(30);
/// Arrival times remembered for the part-delay metric: a few seconds of frames.
const ARRIVALS: usize = 256;

/// The HLS metric families (`docs/metrics.md`).
#[derive(Clone)]
pub struct HlsMetrics {
    pub parts: IntCounterVec,
    pub segments: IntCounterVec,
    pub part_delay: HistogramVec,
    pub blocked: IntGauge,
    pub dropped: IntCounterVec,
}

impl HlsMetrics {
    pub fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = Self {
            parts: IntCounterVec::new(
                Opts::new("kamera_hls_parts_total", "LL-HLS parts published"),
                &["camera"],
            )?,
            segments: IntCounterVec::new(
                Opts::new("kamera_hls_segments_total", "LL-HLS segments completed"),
                &["camera"],
            )?,
            part_delay: HistogramVec::new(
                HistogramOpts::new(
                    "kamera_hls_part_delay_seconds",
                    "Time from the arrival of a part's last sample to the part being available",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
                ]),
                &["camera"],
            )?,
            blocked: IntGauge::new(
                "kamera_hls_blocked_requests",
                "LL-HLS requests currently held until a playlist update or part exists",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "kamera_hls_dropped_total",
                    "Frames LL-HLS did not package, by reason (lagged: fell behind the stream)",
                ),
                &["camera", "reason"],
            )?,
        };
        registry.per_camera(&m.parts)?;
        registry.per_camera(&m.segments)?;
        registry.per_camera(&m.part_delay)?;
        registry.register(Box::new(m.blocked.clone()))?;
        registry.per_camera(&m.dropped)?;
        Ok(m)
    }
}

/// One camera's LL-HLS state, shared by its packaging task and the HTTP handlers.
pub struct CameraHls {
    name: String,
    packager: Mutex<Packager>,
    /// Bumped after every change handlers may wait for (a part, a segment, a session change).
    revision: watch::Sender<u64>,
}

impl CameraHls {
    fn new(name: &str, config: PackagerConfig) -> Self {
        Self {
            name: name.to_string(),
            packager: Mutex::new(Packager::new(config)),
            revision: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Packager> {
        // The packager is plain data; a panic elsewhere must not take the live view down.
        self.packager.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update<R>(&self, f: impl FnOnce(&mut Packager) -> R) -> R {
        let r = f(&mut self.lock());
        self.revision.send_modify(|r| *r = r.wrapping_add(1));
        r
    }

    /// Waits until `check` returns something or `deadline` passes.
    async fn wait_for<T>(
        &self,
        deadline: tokio::time::Instant,
        check: impl Fn(&Packager) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.revision.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(t) = check(&self.lock()) {
                return Some(t);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

/// What the packaging tasks and the HTTP handlers share.
pub(crate) struct Shared {
    cameras: Cameras<Arc<CameraHls>>,
    metrics: HlsMetrics,
    /// hls.js, if configured; otherwise `node_modules` is searched.
    hls_js: Option<PathBuf>,
}

impl Shared {
    fn camera(&self, name: &str) -> Option<Arc<CameraHls>> {
        self.cameras.get(name)
    }
}

/// The LL-HLS stage: a packaging task per camera and the `/hls/…` routes.
pub struct HlsStage {
    shared: Arc<Shared>,
    config: PackagerConfig,
}

impl HlsStage {
    pub fn new(
        part_duration: Duration,
        max_segment_duration: Duration,
        registry: &Families,
        hls_js: Option<PathBuf>,
    ) -> Result<Self, prometheus::Error> {
        let part_target_ms = Millis::try_from(part_duration.as_millis()).unwrap_or(200);
        Ok(Self {
            shared: Arc::new(Shared {
                cameras: Cameras::default(),
                metrics: HlsMetrics::register(registry)?,
                hls_js,
            }),
            config: PackagerConfig {
                part_target_ms,
                target_duration_s: timing::target_duration_s(max_segment_duration),
                ..Default::default()
            },
        })
    }
}

impl CameraStatus for HlsStage {
    fn section(&self) -> &'static str {
        "hls"
    }

    fn status(&self, camera: &str) -> Option<serde_json::Value> {
        let cam = self.shared.camera(camera)?;
        let p = cam.lock();
        let segments = p.segments();
        Some(serde_json::json!({
            "live": p.is_live(),
            "playlist": format!("/hls/{camera}/index.m3u8"),
            "player": format!("/cameras/{camera}"),
            "part_target_ms": p.part_target_ms(),
            "target_duration_s": p.target_duration_s(),
            "media_sequence": segments.front().map(|s| s.msn),
            "segments": segments.len(),
            "bytes": segments.iter().map(packager::Segment::bytes).sum::<usize>(),
        }))
    }
}

impl Stage for HlsStage {
    fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, stop: CancellationToken) {
        let camera = Arc::new(CameraHls::new(channel.name(), self.config.clone()));
        self.shared.cameras.insert(channel.name(), camera.clone());
        let subscriber = channel.subscribe();
        tasks.spawn(run(camera, subscriber, self.shared.metrics.clone(), stop));
    }

    /// The window was released when the camera's task ended; now `/hls/<camera>/…` is 404.
    fn release(&self, camera: &str) {
        self.shared.cameras.remove(camera);
    }

    fn routes(&self) -> Router {
        routes::router(self.shared.clone())
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Feeds one camera's hub events into its packager until the hub or the worker stops.
async fn run(
    camera: Arc<CameraHls>,
    mut events: Subscriber,
    metrics: HlsMetrics,
    shutdown: CancellationToken,
) {
    let name = camera.name.clone();
    let parts = metrics.parts.with_label_values(&[&name]);
    let segments = metrics.segments.with_label_values(&[&name]);
    let delay = metrics.part_delay.with_label_values(&[&name]);
    let lagged = metrics.dropped.with_label_values(&[&name, "lagged"]);
    let mut lagged_log = DropLog::default();
    // Bounded: the oldest arrival is forgotten first; parts are cut within a few frames.
    let mut arrivals: VecDeque<(Millis, Instant)> = VecDeque::with_capacity(ARRIVALS);
    let mut lead = Track::Video;
    let mut release_at: Option<tokio::time::Instant> = None;
    loop {
        let release = async {
            match release_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = release => {
                release_at = None;
                camera.update(Packager::release);
                info!(camera = %name, "publisher gone; released the LL-HLS window");
                continue;
            }
            event = events.recv() => event,
        };
        let Some(event) = event else { break };
        let published = match event {
            Event::Start(info) => {
                release_at = None;
                lead = if info.video.is_some() {
                    Track::Video
                } else {
                    Track::Audio
                };
                arrivals.clear();
                match camera.update(|p| p.start(info.clone())) {
                    Ok(published) => {
                        debug!(camera = %name, version = info.version, "LL-HLS session started");
                        published
                    }
                    Err(e) => {
                        warn!(camera = %name, error = %e, "cannot package this stream as LL-HLS");
                        Vec::new()
                    }
                }
            }
            Event::Frame(frame) => {
                if frame.track == lead {
                    if arrivals.len() == ARRIVALS {
                        arrivals.pop_front();
                    }
                    arrivals.push_back((frame.dts, Instant::now()));
                }
                let published = camera.lock().push(&frame, wall_ms());
                if !published.is_empty() {
                    camera.revision.send_modify(|r| *r = r.wrapping_add(1));
                }
                published
            }
            Event::Gap { dropped } => {
                if let Some(dropped) = lagged_log.count(&lagged, dropped, Instant::now()) {
                    warn!(camera = %name, dropped, "LL-HLS fell behind the stream; frames dropped, continuing after a discontinuity");
                }
                camera.update(Packager::gap)
            }
            Event::End => {
                release_at = Some(tokio::time::Instant::now() + RELEASE_AFTER);
                camera.update(Packager::end)
            }
        };
        for p in published {
            match p {
                Published::Part {
                    last_sample_dts, ..
                } => {
                    parts.inc();
                    if let Some((_, at)) =
                        arrivals.iter().rev().find(|(d, _)| *d == last_sample_dts)
                    {
                        delay.observe(at.elapsed().as_secs_f64());
                    }
                }
                Published::Segment { .. } => segments.inc(),
            }
        }
    }
    camera.update(Packager::release);
}
