//! The operator's own metrics (reconciles, errors, duration by kind) and its small HTTP server
//! with `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tokio_util::sync::CancellationToken;

/// Counters and histograms of reconciles.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .with_label_values(&[self.kind])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// New metrics in their own registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "kamera_operator_reconciles_total",
                "Reconciles started, by kind.",
            ),
            &["kind"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "kamera_operator_reconcile_errors_total",
                "Reconciles that failed, by kind and error.",
            ),
            &["kind", "error"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kamera_operator_reconcile_duration_seconds",
                "Duration of reconciles, by kind.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            failures,
            duration,
        })
    }

    /// Counts a reconcile of `kind` and times it until the guard drops.
    pub fn reconcile_timer(&self, kind: &'static str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[kind]).inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.failures.with_label_values(&[kind, error]).inc();
    }

    /// Number of reconciles started for `kind`.
    pub fn reconciles(&self, kind: &str) -> u64 {
        self.reconciles.with_label_values(&[kind]).get()
    }

    /// Number of failures counted for `kind` and `error`.
    pub fn failures(&self, kind: &str, error: &str) -> u64 {
        self.failures.with_label_values(&[kind, error]).get()
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown` fires.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
