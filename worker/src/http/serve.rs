//! The HTTP listener: accepts connections up to a cap, optionally completes a TLS handshake
//! (within a deadline) and serves each connection with HTTP/1.1 or HTTP/2 — negotiated by ALPN
//! over TLS, or HTTP/2 with prior knowledge (h2c) in cleartext. HTTP/2 lets a player keep all
//! its blocking playlist reloads and part requests on one connection. Shutdown is graceful:
//! no new connection is accepted, requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Families;

/// A TLS client that has not finished its handshake by then is dropped, so that connections
/// opened and left silent cannot hold the connection slots.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1.1 client must send a request's headers within this (also bounds an idle
/// keep-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent requests (streams) on one HTTP/2 connection. A player needs a few (a blocking
/// playlist reload, a part, a preload hint per rendition); the rest of the browser's page has
/// room too.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// An HTTP/2 connection is pinged after this long without a frame, and closed when the ping is
/// not answered within the same time: a vanished peer does not hold its slot.
pub const H2_KEEPALIVE: Duration = Duration::from_secs(20);
/// Back-off after a failed `accept` (e.g. out of file descriptors), so that the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Bounds on what clients may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at once (`--http-max-connections`); beyond it the listener stops
    /// accepting until one closes, and new clients wait in the kernel's backlog.
    pub max_connections: usize,
}

/// `kamera_http_connections_open` and `kamera_http_tls_handshake_failures_total`
/// (docs/metrics.md).
#[derive(Clone)]
pub struct ServeMetrics {
    open: IntGauge,
    handshake_failures: IntCounter,
}

impl ServeMetrics {
    pub fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = ServeMetrics {
            open: IntGauge::new(
                "kamera_http_connections_open",
                "HTTP connections open now (TLS handshakes in progress included)",
            )?,
            handshake_failures: IntCounter::new(
                "kamera_http_tls_handshake_failures_total",
                "TLS connections dropped before or during the handshake (failed or timed out)",
            )?,
        };
        registry.register(Box::new(m.open.clone()))?;
        registry.register(Box::new(m.handshake_failures.clone()))?;
        Ok(m)
    }
}

/// One HTTP/1.1 + HTTP/2 connection builder with the bounds above.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE);
    builder
}

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is given; then lets the
/// open connections finish their requests (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    metrics: ServeMetrics,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let builder = Arc::new(connection_builder());
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (router, builder, tls, metrics, shutdown) = (
            router.clone(),
            builder.clone(),
            tls.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            let _slot = slot;
            metrics.open.inc();
            match tls {
                None => serve_connection(tcp, router, &builder, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, &builder, shutdown).await;
                        }
                        Ok(Err(e)) => {
                            metrics.handshake_failures.inc();
                            debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics.handshake_failures.inc();
                            debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
            metrics.open.dec();
        });
    }
    // Stop accepting at once; let every open connection finish what it is serving.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it or, after `shutdown`, until its requests
/// in flight are answered.
async fn serve_connection<I>(
    io: I,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}
