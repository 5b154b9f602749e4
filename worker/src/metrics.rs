//! The worker's Prometheus metrics. Names are a public contract (docs/metrics.md).
//! Each pipeline stage registers its own families in the one [`Registry`] served at `/metrics`.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

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

/// All metric families of one worker process.
pub struct Metrics {
    pub registry: Registry,
    pub ingest: IngestMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
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
                    "RTMP publish attempts by result (accepted, unknown_camera, bad_key, busy, invalid_name, error)",
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
        registry.register(Box::new(ingest.connected.clone()))?;
        registry.register(Box::new(ingest.bytes.clone()))?;
        registry.register(Box::new(ingest.frames.clone()))?;
        registry.register(Box::new(ingest.sessions.clone()))?;
        registry.register(Box::new(ingest.unsupported.clone()))?;
        registry.register(Box::new(ingest.malformed.clone()))?;
        registry.register(Box::new(ingest.discontinuities.clone()))?;
        Ok(Self { registry, ingest })
    }

    /// The text exposition of every registered family.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}
