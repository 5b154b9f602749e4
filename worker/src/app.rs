//! Wires the pipeline together: listeners, the hub, HTTP and (optionally) the demo camera,
//! and shuts everything down in order on SIGTERM/SIGINT.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::auth::PublishPolicy;
use crate::config::Config;
use crate::http::{self, HttpState};
use crate::hub::Hub;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::rtmp::server;
use crate::rtmp::session::IngestContext;
use crate::stage::Stage;

/// Time allowed for tasks to finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the worker until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;

    let keys = match &config.publish_key_file {
        Some(path) => PublishPolicy::load_keys(path)?,
        None => Default::default(),
    };
    let policy = PublishPolicy {
        cameras: config.cameras.clone(),
        keys,
    };
    let metrics = Arc::new(Metrics::new().context("registering metrics")?);
    let hub = Hub::with_max_cameras(config.max_cameras());
    metrics
        .cameras
        .max
        .set(i64::try_from(config.max_cameras()).unwrap_or(i64::MAX));

    // Before anything listens: a certificate that cannot be used stops the worker at once.
    let tls_files = config
        .tls_files()
        .map(|(cert, key)| http::tls::TlsFiles::load(cert, key, &metrics.registry))
        .transpose()?;

    let rtmp = TcpListener::bind(config.rtmp_listen)
        .await
        .with_context(|| format!("binding RTMP listener on {}", config.rtmp_listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding HTTP listener on {}", config.http_listen))?;
    let rtmp_addr = rtmp.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let mut tasks = JoinSet::new();
    // Consumer stages, each attached to every camera (LL-HLS, recording, frames).
    let mut stages: Vec<Arc<dyn Stage>> = Vec::with_capacity(3);
    stages.push(crate::frames::FramesStage::start(
        &config,
        &metrics.registry,
        &mut tasks,
        shutdown.child_token(),
    )?);
    stages.push(Arc::new(crate::hls::HlsStage::new(
        config.hls_part_duration,
        config.hls_max_segment_duration,
        &metrics.registry,
        config.hls_js.clone(),
    )?));
    if !config.no_recording {
        stages.push(crate::record::Recording::start(
            &config,
            &metrics.registry,
            &mut tasks,
            shutdown.child_token(),
        )?);
    }

    // Pulled cameras are pinned in the hub before anything else can take their places.
    let pulls = crate::rtsp::start(&config, &hub, &metrics, &mut tasks, &shutdown)
        .context("starting the RTSP pulls (--pull)")?;

    let mut http_state = HttpState::new(hub.clone(), metrics.clone());
    for stage in &stages {
        http_state.sections.push(stage.clone());
    }
    http_state.sections.push(pulls);
    let http_state = Arc::new(http_state);
    let mut router = http::router(http_state.clone());
    for stage in &stages {
        router = router.merge(stage.routes());
    }
    let viewer_auth = match &config.http_tokens_file {
        Some(path) => {
            let file = http::auth::TokensFile::load(path, &metrics.registry)?;
            if file.is_empty() {
                warn!(file = %path.display(), "the viewer tokens file has no token: every protected HTTP URL answers 401");
            }
            info!(file = %path.display(), tokens = file.len(), "viewer tokens required on HTTP");
            let auth = file.viewer_auth();
            tasks.spawn(file.watch(http::auth::RELOAD_EVERY, shutdown.child_token()));
            Some(auth)
        }
        None => {
            info!("HTTP is open to anyone who can reach it (no --http-tokens-file)");
            None
        }
    };
    let router = http::finish(router, viewer_auth, &config.http_cors_origins);

    let ingest = Arc::new(IngestContext {
        hub: hub.clone(),
        policy,
        metrics: metrics.clone(),
        takeover: config.takeover,
    });
    tasks.spawn(server::serve(rtmp, ingest, shutdown.child_token()));
    let lifecycle = Lifecycle {
        hub: hub.clone(),
        stages,
        metrics: metrics.clone(),
        idle_release: config.idle_release,
    };
    tasks.spawn(lifecycle.run(shutdown.child_token()));
    let tls = match tls_files {
        Some(files) => {
            let acceptor = files.acceptor()?;
            info!(
                "HTTPS with HTTP/2 and HTTP/1.1; the certificate is re-read when its files change"
            );
            tasks.spawn(files.watch(http::tls::RELOAD_EVERY, shutdown.child_token()));
            Some(acceptor)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tasks.spawn(http::serve::serve(
        http_listener,
        router,
        tls,
        http::serve::Limits::new(
            usize::try_from(config.http_max_connections).unwrap_or(usize::MAX),
        ),
        http::serve::ServeMetrics::register(&metrics.registry)?,
        shutdown.child_token(),
    ));
    if config.demo {
        tasks.spawn(crate::demo::run(rtmp_addr, shutdown.child_token()));
    }

    http_state.ready.store(true, Ordering::Release);
    info!(rtmp = %rtmp_addr, http = %http_addr, scheme, data_dir = %config.data_dir.display(), max_cameras = config.max_cameras(), idle_release = ?config.idle_release, "kamera worker ready");

    shutdown.cancelled().await;
    info!("shutting down");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Cancels the returned token on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = term => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
        t.cancel();
    });
    token
}
