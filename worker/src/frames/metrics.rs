//! The frame stage's metric families (names per docs/metrics.md).

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::metrics::Families;

#[derive(Clone)]
pub struct FrameMetrics {
    pub extracted: IntCounterVec,
    pub extract_seconds: HistogramVec,
    pub dropped: IntCounterVec,
    pub lag: GaugeVec,
    pub latency: HistogramVec,
    pub connected: IntGaugeVec,
    pub detections: IntCounterVec,
    pub pool_batch_size: HistogramVec,
    pub pool_inference_seconds: HistogramVec,
    pub pool_connections: IntCounterVec,
    pub pool_failures: IntCounterVec,
}

impl FrameMetrics {
    pub fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = Self {
            extracted: IntCounterVec::new(
                Opts::new("kamera_frames_extracted_total", "JPEG frames extracted for processors"),
                &["camera"],
            )?,
            extract_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "kamera_frame_extract_seconds",
                    "Access unit received → JPEG written (decode, scale, encode, file)",
                )
                .buckets(vec![0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.5, 1.0]),
                &["camera"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "kamera_frames_dropped_total",
                    "Frames not delivered, by reason (processor_busy, queue_full, extract_behind, decode_error, write_error); processor is empty for drops before any processor",
                ),
                &["camera", "processor", "reason"],
            )?,
            lag: GaugeVec::new(
                Opts::new(
                    "kamera_processor_lag_seconds",
                    "How far behind live the processor is: age of the frame it is working on, or capture → ack of its newest acknowledged frame while idle",
                ),
                &["camera", "processor"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "kamera_processor_latency_seconds",
                    "Capture of a frame → its acknowledgement by the processor",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
                &["camera", "processor"],
            )?,
            connected: IntGaugeVec::new(
                Opts::new(
                    "kamera_processor_connected",
                    "Connected processor sessions receiving this camera's frames",
                ),
                &["camera", "processor"],
            )?,
            detections: IntCounterVec::new(
                Opts::new("kamera_detections_total", "Detections reported in processor acks"),
                &["camera", "processor", "label"],
            )?,
            pool_batch_size: HistogramVec::new(
                HistogramOpts::new(
                    "kamera_pool_batch_size",
                    "Frames acknowledged by a pool, by the size of the batch each was processed in (as the pool reports it)",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
                &["processor"],
            )?,
            pool_inference_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "kamera_pool_inference_seconds",
                    "Frames acknowledged by a pool, by the time its model took for the batch each was in (as the pool reports it)",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["processor"],
            )?,
            pool_connections: IntCounterVec::new(
                Opts::new(
                    "kamera_pool_connections_total",
                    "Connections to a pool that were welcomed (one per camera, plus one per reconnect)",
                ),
                &["processor"],
            )?,
            pool_failures: IntCounterVec::new(
                Opts::new(
                    "kamera_pool_connection_failures_total",
                    "Pool connections that failed or were lost, by reason (token, unreachable, timeout, refused, protocol, lost, idle, hung)",
                ),
                &["processor", "reason"],
            )?,
        };
        registry.per_camera(&m.extracted)?;
        registry.per_camera(&m.extract_seconds)?;
        registry.per_camera(&m.dropped)?;
        registry.per_camera(&m.lag)?;
        registry.per_camera(&m.latency)?;
        registry.per_camera(&m.connected)?;
        registry.per_camera(&m.detections)?;
        registry.register(Box::new(m.pool_batch_size.clone()))?;
        registry.register(Box::new(m.pool_inference_seconds.clone()))?;
        registry.register(Box::new(m.pool_connections.clone()))?;
        registry.register(Box::new(m.pool_failures.clone()))?;
        Ok(m)
    }

    /// A set of families not served anywhere (tests).
    pub fn unregistered() -> Self {
        match Self::register(&Families::new()) {
            Ok(m) => m,
            Err(e) => panic!("metric definitions are static and valid: {e}"),
        }
    }
}
