//! The HTTP listener: accepts connections up to a cap, optionally completes a TLS handshake
//! (within a deadline) and serves each connection with HTTP/1.1 or HTTP/2 — negotiated by ALPN
//! over TLS, or HTTP/2 with prior knowledge (h2c) in cleartext. HTTP/2 lets a player keep all
//! its blocking playlist reloads and part requests on one connection. Shutdown is graceful:
//! no new connection is accepted, requests in flight finish.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Families;

/// A client must finish its TLS handshake (with TLS) and send the start of its first request
/// (enough to tell HTTP/1.1 from HTTP/2) within this, or it is dropped: connections opened and
/// left silent cannot hold the connection slots. After that, the HTTP/1.1 header timeout and
/// the HTTP/2 pings below bound it.
pub const OPENING_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// [`OPENING_TIMEOUT`], shorter in tests.
    pub opening_timeout: Duration,
}

impl Limits {
    /// At most `max_connections` at once, the standard opening deadline.
    pub fn new(max_connections: usize) -> Self {
        Limits {
            max_connections,
            opening_timeout: OPENING_TIMEOUT,
        }
    }
}

/// `kamera_http_connections_open` and `kamera_http_connections_dropped_total`
/// (docs/metrics.md).
#[derive(Clone)]
pub struct ServeMetrics {
    open: IntGauge,
    dropped: IntCounter,
}

impl ServeMetrics {
    pub fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = ServeMetrics {
            open: IntGauge::new(
                "kamera_http_connections_open",
                "HTTP connections open now (TLS handshakes in progress included)",
            )?,
            dropped: IntCounter::new(
                "kamera_http_connections_dropped_total",
                "Connections dropped before their first request: a failed TLS handshake, or no handshake and request start within 10 s",
            )?,
        };
        registry.register(Box::new(m.open.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
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
            let opened = tokio::time::timeout(limits.opening_timeout, open(tcp, tls)).await;
            match opened {
                Ok(Ok(io)) => serve_connection(io, router, &builder, shutdown).await,
                Ok(Err(e)) => {
                    metrics.dropped.inc();
                    debug!(%peer, error = %e, "connection dropped before its first request");
                }
                Err(_) => {
                    metrics.dropped.inc();
                    debug!(%peer, "connection dropped: no TLS handshake or request start in time");
                }
            }
            metrics.open.dec();
        });
    }
    // Stop accepting at once; let every open connection finish what it is serving.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// A connection's byte stream, plain or TLS, with the bytes already read in front.
type Opened = Prefixed<Box<dyn Io>>;

/// What a connection needs of its stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The HTTP/2 connection preface; a request that starts otherwise is HTTP/1.1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Completes the TLS handshake (with `tls`) and reads the start of the first request, as much
/// as hyper needs to tell HTTP/1.1 from HTTP/2; the caller bounds how long this may take.
async fn open(tcp: TcpStream, tls: Option<TlsAcceptor>) -> std::io::Result<Opened> {
    let mut io: Box<dyn Io> = match tls {
        Some(acceptor) => Box::new(acceptor.accept(tcp).await?),
        None => Box::new(tcp),
    };
    let mut start = Vec::with_capacity(H2_PREFACE.len());
    let mut buf = [0u8; 24];
    while start.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&start) {
        let n = io.read(&mut buf[..H2_PREFACE.len() - start.len()]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        start.extend_from_slice(&buf[..n]);
    }
    Ok(Prefixed {
        start,
        read: 0,
        inner: io,
    })
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<I> {
    start: Vec<u8>,
    read: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.start.len() {
            let rest = &this.start[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::routing::get;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A cleartext server with a 200 ms opening deadline; its address.
    async fn server(shutdown: CancellationToken) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", get(|| async { "ok\n" }));
        let limits = Limits {
            max_connections: 2,
            opening_timeout: Duration::from_millis(200),
        };
        let metrics = ServeMetrics::register(&Families::new()).unwrap();
        tokio::spawn(serve(listener, router, None, limits, metrics, shutdown));
        addr
    }

    /// Reads until the server closes the connection (or 30 s pass); what it sent.
    async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let read = stream.read_to_end(&mut out);
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .ok()
            .map(|_| out)
    }

    #[tokio::test]
    async fn silent_and_stalled_openings_are_dropped_and_free_their_slots() {
        let shutdown = CancellationToken::new();
        let addr = server(shutdown.clone()).await;
        // Both slots: one connection says nothing, the other stalls inside the HTTP/2 preface.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"PRI * HTTP").await.unwrap();
        assert_eq!(until_closed(&mut silent).await, Some(Vec::new()));
        assert_eq!(until_closed(&mut stalled).await, Some(Vec::new()));
        // The slots are free again, and a prompt client is served.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8(until_closed(&mut client).await.unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        shutdown.cancel();
    }
}
