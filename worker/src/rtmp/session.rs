//! One RTMP connection: handshake, `connect`/`publish`, then audio/video messages through the
//! demuxer into the hub. Every error ends this session only, with a log line saying why.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::demux::Demuxer;
use crate::auth::PublishPolicy;
use crate::drops::DropLog;
use crate::hub::{Hub, PublishError, Publisher};
use crate::media::Track;
use crate::metrics::Metrics;

/// The handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every session shares.
pub struct IngestContext {
    pub hub: Arc<Hub>,
    pub policy: PublishPolicy,
    pub metrics: Arc<Metrics>,
    pub takeover: bool,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("rtmp protocol: {0}")]
    Protocol(String),
}

thread_local! {
    /// True while this thread is inside an rml_rtmp call made through [`contained`].
    static IN_RML_RTMP: Cell<bool> = const { Cell::new(false) };
}

/// Calls into rml_rtmp, which panics on some malformed input instead of returning an error
/// (0.8.0: an AMF0 command with fewer than three values, found by fuzzing; see
/// docs/fuzzing.md). The panic is caught here and ends this session like any protocol
/// error, with its log line and its cleanup, instead of unwinding through the task.
fn contained<T, E: std::fmt::Display>(
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, SessionError> {
    IN_RML_RTMP.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(call));
    IN_RML_RTMP.with(|c| c.set(false));
    match result {
        Ok(r) => r.map_err(|e| SessionError::Protocol(e.to_string())),
        Err(_) => Err(SessionError::Protocol(
            "malformed message (the RTMP library panicked on it)".into(),
        )),
    }
}

/// True while the current thread is inside an rml_rtmp call whose panic the session catches:
/// a panic hook can leave such a panic alone (the fuzz targets do).
pub fn panicking_in_rml_rtmp() -> bool {
    IN_RML_RTMP.with(Cell::get)
}

/// Runs one connection to its end. The stream is a TCP socket in the server; any byte stream
/// (an in-memory one in tests and fuzzing) drives the same session logic.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    ctx: Arc<IngestContext>,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("rtmp", %peer);
    async move {
        let mut conn = Connection {
            stream,
            peer,
            ctx,
            publisher: None,
            camera: None,
            demuxer: Demuxer::default(),
            malformed: DropLog::default(),
            refused: false,
        };
        match conn.serve(shutdown).await {
            Ok(()) => debug!("connection closed"),
            Err(e) => match &conn.camera {
                Some(camera) => warn!(%camera, error = %e, "publisher session ended"),
                None => info!(error = %e, "connection ended before publishing"),
            },
        }
        conn.finish();
    }
    .instrument(span)
    .await
}

struct Connection<S> {
    stream: S,
    peer: SocketAddr,
    ctx: Arc<IngestContext>,
    publisher: Option<Publisher>,
    camera: Option<String>,
    demuxer: Demuxer,
    malformed: DropLog,
    /// A publish was refused: the refusal is sent, then the connection closes.
    refused: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn serve(&mut self, shutdown: CancellationToken) -> Result<(), SessionError> {
        let remaining = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake())
            .await
            .map_err(|_| SessionError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;

        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        self.apply(&mut session, initial).await?;
        if !remaining.is_empty() {
            let results = contained(|| session.handle_input(&remaining))?;
            self.apply(&mut session, results).await?;
        }

        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let takeover = self.publisher.as_ref().map(|p| p.cancelled());
            let n = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = async { match &takeover { Some(t) => t.cancelled().await, None => std::future::pending().await } } => {
                    info!(camera = ?self.camera, "publisher replaced by a new one (--takeover)");
                    return Ok(());
                }
                read = tokio::time::timeout(IDLE_TIMEOUT, self.stream.read(&mut buf)) => {
                    read.map_err(|_| SessionError::Idle(IDLE_TIMEOUT))??
                }
            };
            if n == 0 {
                return Ok(());
            }
            let results = contained(|| session.handle_input(&buf[..n]))?;
            self.apply(&mut session, results).await?;
            if self.refused {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
        }
    }

    /// Completes the server side of the handshake; returns bytes that followed it.
    async fn handshake(&mut self) -> Result<Vec<u8>, SessionError> {
        let mut handshake = Handshake::new(PeerType::Server);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(SessionError::Handshake(
                    "peer closed during handshake".into(),
                ));
            }
            match handshake
                .process_bytes(&buf[..n])
                .map_err(|e| SessionError::Handshake(format!("{e:?}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.stream.write_all(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.stream.write_all(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    /// Sends responses and reacts to events, in order.
    async fn apply(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), SessionError> {
        let mut queue: std::collections::VecDeque<_> = results.into();
        while let Some(result) = queue.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.stream.write_all(&packet.bytes).await?;
                }
                ServerSessionResult::RaisedEvent(event) => {
                    let more = self.on_event(session, event)?;
                    queue.extend(more);
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, SessionError> {
        let protocol =
            |e: rml_rtmp::sessions::ServerSessionError| SessionError::Protocol(e.to_string());
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                debug!(app = %app_name, "connect");
                session.accept_request(request_id).map_err(protocol)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => self.on_publish(session, request_id, &stream_key),
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => session
                .reject_request(
                    request_id,
                    "NetStream.Play.Failed",
                    "Kamera does not serve RTMP playback; use LL-HLS",
                )
                .map_err(protocol),
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(camera) = self.camera.as_deref() {
                    info!(%camera, "publisher finished");
                }
                self.end_publish();
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(Track::Video, data, timestamp.value);
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(Track::Audio, data, timestamp.value);
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn on_publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        stream_key: &str,
    ) -> Result<Vec<ServerSessionResult>, SessionError> {
        let protocol =
            |e: rml_rtmp::sessions::ServerSessionError| SessionError::Protocol(e.to_string());
        let sessions = &self.ctx.metrics.ingest.sessions;
        if self.publisher.is_some() {
            sessions.with_label_values(&["error"]).inc();
            return session
                .reject_request(
                    request_id,
                    "NetStream.Publish.BadConnection",
                    "already publishing",
                )
                .map_err(protocol);
        }
        let camera = match self.ctx.policy.authorize(stream_key) {
            Ok(camera) => camera,
            Err(refusal) => {
                warn!(reason = %refusal, "publish refused");
                sessions.with_label_values(&[refusal.result_label()]).inc();
                self.refused = true;
                return session
                    .reject_request(
                        request_id,
                        "NetStream.Publish.BadName",
                        &refusal.to_string(),
                    )
                    .map_err(protocol);
            }
        };
        match self.ctx.hub.publish(&camera, self.peer, self.ctx.takeover) {
            Ok(publisher) => {
                info!(%camera, "publisher connected");
                sessions.with_label_values(&["accepted"]).inc();
                self.ctx
                    .metrics
                    .ingest
                    .connected
                    .with_label_values(&[&camera])
                    .set(1);
                self.publisher = Some(publisher);
                self.camera = Some(camera);
                self.demuxer = Demuxer::default();
                session.accept_request(request_id).map_err(protocol)
            }
            Err(e) => {
                let result = match &e {
                    PublishError::AlreadyLive { .. } => {
                        warn!(reason = %e, "publish refused: a second publisher on a live camera");
                        "busy"
                    }
                    PublishError::TooManyCameras { max, .. } => {
                        warn!(%camera, max_cameras = max, reason = %e, "publish refused: the worker holds --max-cameras cameras");
                        "too_many_cameras"
                    }
                    PublishError::Releasing { .. } => {
                        warn!(%camera, reason = %e, "publish refused: the camera is being released");
                        "releasing"
                    }
                    PublishError::Pulled { .. } => {
                        warn!(%camera, reason = %e, "publish refused: the camera is pulled from RTSP");
                        "pulled"
                    }
                };
                sessions.with_label_values(&[result]).inc();
                self.refused = true;
                session
                    .reject_request(request_id, "NetStream.Publish.BadName", &e.to_string())
                    .map_err(protocol)
            }
        }
    }

    fn on_media(&mut self, track: Track, data: Bytes, timestamp: u32) {
        let (Some(publisher), Some(camera)) = (&self.publisher, &self.camera) else {
            return;
        };
        let m = &self.ctx.metrics.ingest;
        m.bytes
            .with_label_values(&[camera])
            .inc_by(data.len() as u64);
        publisher.count_bytes(data.len());
        let outputs = match track {
            Track::Video => self.demuxer.video(&data, timestamp),
            Track::Audio => self.demuxer.audio(&data, timestamp),
        };
        let outputs = match outputs {
            Ok(o) => o,
            Err(e) => {
                let counter = m.malformed.with_label_values(&[camera]);
                if let Some(dropped) = self.malformed.count(&counter, 1, Instant::now()) {
                    warn!(%camera, track = track.as_str(), error = %e, dropped, "malformed messages dropped");
                }
                return;
            }
        };
        super::feed::deliver(outputs, camera, publisher, m);
    }

    fn end_publish(&mut self) {
        if let Some(camera) = &self.camera {
            if self.publisher.take().is_some() {
                self.ctx
                    .metrics
                    .ingest
                    .connected
                    .with_label_values(&[camera])
                    .set(0);
            }
        }
    }

    fn finish(&mut self) {
        if let Some(camera) = &self.camera {
            if self.publisher.is_some() {
                info!(%camera, "publisher disconnected");
            }
        }
        self.end_publish();
    }
}
