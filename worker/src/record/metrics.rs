//! Recording's metric families (names per docs/metrics.md), registered in the worker's registry.

use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::metrics::Families;

#[derive(Clone)]
pub struct RecordingMetrics {
    pub bytes: IntCounterVec,
    pub files: IntCounterVec,
    pub errors: IntCounterVec,
    pub dropped: IntCounterVec,
    pub deleted: IntCounterVec,
    pub disk_free: IntGauge,
}

impl RecordingMetrics {
    pub fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = Self {
            bytes: IntCounterVec::new(
                Opts::new("kamera_recording_bytes_total", "Bytes written to recording files"),
                &["camera"],
            )?,
            files: IntCounterVec::new(
                Opts::new("kamera_recording_files_total", "Recording files closed"),
                &["camera"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "kamera_recording_errors_total",
                    "Failed disk operations while recording (reason: no_space, read_only, io, permission, other)",
                ),
                &["camera", "reason"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "kamera_recording_dropped_total",
                    "Frames not recorded (reason: disk_low = below --min-free, error = disk failing, lagged = recorder fell behind)",
                ),
                &["camera", "reason"],
            )?,
            deleted: IntCounterVec::new(
                Opts::new(
                    "kamera_recording_deleted_total",
                    "Recording files deleted by retention (reason: age, size, disk_floor)",
                ),
                &["camera", "reason"],
            )?,
            disk_free: IntGauge::new(
                "kamera_recording_disk_free_bytes",
                "Free bytes on the recordings volume",
            )?,
        };
        registry.per_camera(&m.bytes)?;
        registry.per_camera(&m.files)?;
        registry.per_camera(&m.errors)?;
        registry.per_camera(&m.dropped)?;
        registry.per_camera(&m.deleted)?;
        registry.register(Box::new(m.disk_free.clone()))?;
        Ok(m)
    }
}
