//! The worker's Prometheus metrics. Names are a public contract (docs/metrics.md).
//! Each pipeline stage registers its own families in the one [`Families`] served at `/metrics`.
//!
//! Per-camera series must not outlive their camera: a family with a `camera` label can only be
//! registered with [`Families::per_camera`], and [`Families::forget_camera`] removes every
//! series of a released camera from all of them. [`Families::register`] refuses a family with
//! a `camera` label, so a new per-camera family cannot be added without its removal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The label that names a camera in every per-camera family.
pub const CAMERA_LABEL: &str = "camera";

/// A family whose series can be removed camera by camera.
trait CameraFamily: Send + Sync {
    /// Removes every series whose `camera` label is `camera`; returns how many.
    fn forget(&self, camera: &str) -> usize;
}

impl<T: MetricVecBuilder + 'static> CameraFamily for MetricVec<T> {
    fn forget(&self, camera: &str) -> usize {
        let mut removed = 0;
        for family in self.collect() {
            for metric in family.get_metric() {
                let labels: HashMap<&str, &str> = metric
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                if labels.get(CAMERA_LABEL) == Some(&camera) && self.remove(&labels).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// The registry served at `/metrics`, and the per-camera families in it.
#[derive(Clone, Default)]
pub struct Families {
    registry: Registry,
    per_camera: Arc<Mutex<Vec<Box<dyn CameraFamily>>>>,
}

impl Families {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a family without a `camera` label (use [`Families::per_camera`] for those).
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        let per_camera = collector
            .desc()
            .iter()
            .any(|d| d.variable_labels.iter().any(|l| l == CAMERA_LABEL));
        if per_camera {
            let names: Vec<_> = collector.desc().iter().map(|d| d.fq_name.clone()).collect();
            return Err(prometheus::Error::Msg(format!(
                "{names:?} has a camera label: register it with Families::per_camera so released cameras lose their series"
            )));
        }
        self.registry.register(collector)
    }

    /// Registers a family labelled by camera; a released camera's series are removed from it.
    pub fn per_camera<T: MetricVecBuilder + 'static>(
        &self,
        family: &MetricVec<T>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(family.clone()))?;
        self.per_camera
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(family.clone()));
        Ok(())
    }

    /// Removes every series of `camera` from every per-camera family; returns how many.
    pub fn forget_camera(&self, camera: &str) -> usize {
        let families = self.per_camera.lock().unwrap_or_else(|e| e.into_inner());
        families.iter().map(|f| f.forget(camera)).sum()
    }

    /// Every registered family with its series.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// The text exposition of every registered family.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}

/// Ingest metrics, labelled by camera.
pub struct IngestMetrics {
    pub connected: IntGaugeVec,
    pub bytes: IntCounterVec,
    pub frames: IntCounterVec,
    pub sessions: IntCounterVec,
    pub unsupported: IntCounterVec,
    pub malformed: IntCounterVec,
    pub discontinuities: IntCounterVec,
}

/// RTSP pulls (`--pull`), labelled by camera.
pub struct PullMetrics {
    pub connected: IntGaugeVec,
    pub failures: IntCounterVec,
}

/// How many cameras the worker holds, and how many it released.
pub struct CameraCountMetrics {
    pub held: IntGauge,
    pub max: IntGauge,
    pub released: IntCounter,
}

/// All metric families of one worker process.
pub struct Metrics {
    pub registry: Families,
    pub ingest: IngestMetrics,
    pub pull: PullMetrics,
    pub cameras: CameraCountMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Families::new();
        let ingest = IngestMetrics {
            connected: IntGaugeVec::new(
                Opts::new("kamera_ingest_connected", "1 while a publisher is connected"),
                &["camera"],
            )?,
            bytes: IntCounterVec::new(
                Opts::new("kamera_ingest_bytes_total", "RTMP audio/video payload bytes received"),
                &["camera"],
            )?,
            frames: IntCounterVec::new(
                Opts::new("kamera_ingest_frames_total", "Access units received"),
                &["camera", "track"],
            )?,
            sessions: IntCounterVec::new(
                Opts::new(
                    "kamera_ingest_sessions_total",
                    "RTMP publish attempts by result (accepted, unknown_camera, bad_key, busy, too_many_cameras, releasing, pulled, invalid_name, error)",
                ),
                &["result"],
            )?,
            unsupported: IntCounterVec::new(
                Opts::new(
                    "kamera_ingest_unsupported_total",
                    "Publish sessions that sent a codec Kamera does not accept",
                ),
                &["camera", "track"],
            )?,
            malformed: IntCounterVec::new(
                Opts::new("kamera_ingest_malformed_total", "Malformed audio/video messages dropped"),
                &["camera"],
            )?,
            discontinuities: IntCounterVec::new(
                Opts::new(
                    "kamera_ingest_discontinuities_total",
                    "Timestamp jumps smoothed over by the demuxer",
                ),
                &["camera", "track"],
            )?,
        };
        registry.per_camera(&ingest.connected)?;
        registry.per_camera(&ingest.bytes)?;
        registry.per_camera(&ingest.frames)?;
        registry.register(Box::new(ingest.sessions.clone()))?;
        registry.per_camera(&ingest.unsupported)?;
        registry.per_camera(&ingest.malformed)?;
        registry.per_camera(&ingest.discontinuities)?;
        let pull = PullMetrics {
            connected: IntGaugeVec::new(
                Opts::new(
                    "kamera_pull_connected",
                    "1 while the camera's RTSP source is playing (--pull)",
                ),
                &["camera"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "kamera_pull_failures_total",
                    "RTSP pull attempts or sessions that failed, by reason (connect, unauthorized, refused, unsupported_codec, timeout, ended, protocol, credentials)",
                ),
                &["camera", "reason"],
            )?,
        };
        registry.per_camera(&pull.connected)?;
        registry.per_camera(&pull.failures)?;
        let cameras = CameraCountMetrics {
            held: IntGauge::new(
                "kamera_cameras",
                "Cameras this worker holds (live, idle within --idle-release, or being released)",
            )?,
            max: IntGauge::new("kamera_cameras_max", "The --max-cameras cap")?,
            released: IntCounter::new(
                "kamera_cameras_released_total",
                "Cameras released after --idle-release without a publisher",
            )?,
        };
        registry.register(Box::new(cameras.held.clone()))?;
        registry.register(Box::new(cameras.max.clone()))?;
        registry.register(Box::new(cameras.released.clone()))?;
        Ok(Self {
            registry,
            ingest,
            pull,
            cameras,
        })
    }

    /// The text exposition of every registered family.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{GaugeVec, HistogramOpts, HistogramVec};

    #[test]
    fn a_camera_labelled_family_must_be_registered_per_camera() {
        let families = Families::new();
        let gauge =
            GaugeVec::new(Opts::new("t_gauge", "t"), &["processor", "camera"]).expect("family");
        let refused = families.register(Box::new(gauge.clone()));
        assert!(refused.is_err(), "a camera family slipped past release");
        assert!(families.per_camera(&gauge).is_ok());
        let plain = IntCounterVec::new(Opts::new("t_plain", "t"), &["result"]).expect("family");
        assert!(families.register(Box::new(plain)).is_ok());
    }

    #[test]
    fn forgetting_a_camera_removes_all_its_series_and_only_its() {
        let families = Families::new();
        let counter =
            IntCounterVec::new(Opts::new("t_total", "t"), &["camera", "reason"]).expect("family");
        let histogram =
            HistogramVec::new(HistogramOpts::new("t_seconds", "t"), &["camera"]).expect("family");
        families.per_camera(&counter).expect("register");
        families.per_camera(&histogram).expect("register");
        for camera in ["gone", "kept"] {
            for reason in ["a", "b"] {
                counter.with_label_values(&[camera, reason]).inc();
            }
            histogram.with_label_values(&[camera]).observe(1.0);
        }
        assert_eq!(families.forget_camera("gone"), 3);
        let text = families.render();
        assert!(!text.contains("camera=\"gone\""), "{text}");
        assert!(text.contains("camera=\"kept\""), "{text}");
        assert_eq!(families.forget_camera("gone"), 0);
    }
}
