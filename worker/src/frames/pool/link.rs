//! One camera's link to one pool: dial an endpoint, say `hello` with the token, wait for
//! `welcome`, then act as a processor connection of the dispatcher (frames out with their
//! JPEG, acks in) until the connection ends; then back off and dial again, another endpoint
//! first.
//!
//! Bounds: connect, handshake, write, idle and hang timeouts; lines and frames by size; the
//! dispatcher's credits in flight. Failures go to a counter and a log line at most once per
//! interval per link ([`DropLog`]); the last one is shown in `/api/cameras/<camera>`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::backoff::{self, Backoff};
use super::wire::{self, FromPool, ToPool, Welcome, MAX_FRAME_BYTES, MAX_TOKEN};
use super::PoolLink;
use crate::config::PoolSpec;
use crate::drops::DropLog;
use crate::frames::dispatch::{Dispatcher, OUTBOUND_QUEUE};
use crate::frames::metrics::FrameMetrics;
use crate::frames::protocol::{self, Hello, LineError, Outbound, VERSION};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From connected to `welcome`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The worker pings this often; the pool answers `pong` even while its model is busy.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// Nothing at all from the pool (not even a `pong`) for this long: the connection is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames in flight and no ack for this long: the pool's model is stuck (as on the Unix
/// socket; generous, because a model on a CPU may take many seconds per batch).
pub const HANG_TIMEOUT: Duration = Duration::from_secs(120);
/// A connection that lasted this long was healthy: the next failure backs off from the start.
const STABLE: Duration = Duration::from_secs(5);
/// While disconnected, the lag gauge is brought up to date this often.
const LAG_TICK: Duration = Duration::from_millis(250);

/// Why an attempt failed or a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("token file {path}: {source}")]
    Token { path: PathBuf, source: io::Error },
    #[error("token file {path} is longer than {MAX_TOKEN} bytes")]
    TokenTooLong { path: PathBuf },
    #[error("connecting to {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("connecting to {endpoint}: no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout { endpoint: String },
    #[error("pool at {endpoint} sent no welcome within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout { endpoint: String },
    #[error("pool at {endpoint} refused the connection: {code}: {message}")]
    Refused {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("pool at {endpoint} broke the protocol: {detail}")]
    Protocol { endpoint: String, detail: String },
    #[error("connection to {endpoint}: {source}")]
    Io { endpoint: String, source: io::Error },
    #[error("pool at {endpoint} closed the connection")]
    Closed { endpoint: String },
    #[error("pool at {endpoint} sent nothing for {IDLE_TIMEOUT:?}")]
    Idle { endpoint: String },
    #[error("pool at {endpoint} acknowledged nothing for {HANG_TIMEOUT:?} with frames in flight")]
    Hung { endpoint: String },
    #[error("frame {seq} is {size} bytes, over the {MAX_FRAME_BYTES}-byte limit of the network transport")]
    TooLarge { seq: u64, size: usize },
    #[error("reading frame file {path}: {source}")]
    FrameFile { path: String, source: io::Error },
}

impl LinkError {
    /// The `reason` label of `kamera_pool_connection_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            LinkError::Token { .. } | LinkError::TokenTooLong { .. } => "token",
            LinkError::Connect { .. } => "unreachable",
            LinkError::ConnectTimeout { .. } | LinkError::HandshakeTimeout { .. } => "timeout",
            LinkError::Refused { .. } => "refused",
            LinkError::Protocol { .. } | LinkError::TooLarge { .. } => "protocol",
            LinkError::Io { .. } | LinkError::Closed { .. } | LinkError::FrameFile { .. } => "lost",
            LinkError::Idle { .. } => "idle",
            LinkError::Hung { .. } => "hung",
        }
    }
}

/// What a link needs, fixed for its life.
pub struct LinkContext {
    pub camera: String,
    pub pool: PoolSpec,
    pub token_dir: Option<PathBuf>,
    /// The worker's extraction rate (sent in `hello`).
    pub worker_fps: f64,
    pub dispatcher: Arc<Dispatcher>,
    pub metrics: FrameMetrics,
}

/// Runs the camera's link to `ctx.pool` until `shutdown`.
pub async fn run(ctx: LinkContext, link: Arc<PoolLink>, shutdown: CancellationToken) {
    let name = ctx.pool.name.clone();
    let mut backoff = Backoff::default();
    let mut avoid: Option<usize> = None;
    let mut failures = DropLog::default();
    let mut connects = DropLog::default();
    // Capture time of the newest frame the pool acknowledged, kept across connections: while
    // away, the lag gauge keeps growing from it.
    let mut newest_acked: Option<SystemTime> = None;
    let lag = ctx.metrics.lag.with_label_values(&[&ctx.camera, &name]);
    // Listed at 0 from the start, so "never connected" is visible in the metrics too.
    ctx.metrics
        .connected
        .with_label_values(&[&ctx.camera, &name]);
    loop {
        let index = backoff::pick(ctx.pool.endpoints.len(), avoid, fastrand::f64());
        let Some(endpoint) = ctx.pool.endpoints.get(index) else {
            return;
        };
        link.trying(endpoint);
        let greeted = tokio::select! {
            _ = shutdown.cancelled() => break,
            g = greet(&ctx, endpoint) => g,
        };
        let error = match greeted {
            Ok((reader, writer, welcome)) => {
                let counter = ctx.metrics.pool_connections.with_label_values(&[&name]);
                if let Some(n) = connects.count(&counter, 1, std::time::Instant::now()) {
                    info!(camera = %ctx.camera, processor = %name, %endpoint, version = welcome.version,
                        max_in_flight = welcome.max_in_flight, connects = n, "connected to pool");
                }
                let started = Instant::now();
                let ended = session(
                    &ctx,
                    &link,
                    endpoint,
                    (reader, writer),
                    &welcome,
                    newest_acked,
                    &shutdown,
                )
                .await;
                if started.elapsed() >= STABLE {
                    backoff.reset();
                }
                match ended {
                    Ended::Shutdown => break,
                    Ended::Lost(e, acked) => {
                        newest_acked = acked.or(newest_acked);
                        e
                    }
                }
            }
            Err(e) => e,
        };
        avoid = Some(index);
        let counter = ctx
            .metrics
            .pool_failures
            .with_label_values(&[&name, error.reason()]);
        if let Some(n) = failures.count(&counter, 1, std::time::Instant::now()) {
            warn!(camera = %ctx.camera, processor = %name, %endpoint, error = %error, failures = n,
                "pool connection failed; retrying with backoff");
        }
        link.failed(error.to_string());
        let retry_at = Instant::now() + backoff.next(fastrand::f64());
        loop {
            if let Some(t) = newest_acked {
                let behind = SystemTime::now().duration_since(t).unwrap_or_default();
                lag.set(behind.as_secs_f64());
            }
            let tick = (Instant::now() + LAG_TICK).min(retry_at);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = ctx.metrics.lag.remove_label_values(&[&ctx.camera, &name]);
                    return;
                }
                _ = tokio::time::sleep_until(tick) => {}
            }
            if Instant::now() >= retry_at {
                break;
            }
        }
    }
    debug!(camera = %ctx.camera, processor = %name, "pool link stopped");
}

/// Reads the token, connects, says hello and waits for the welcome.
async fn greet(
    ctx: &LinkContext,
    endpoint: &str,
) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf, Welcome), LinkError> {
    let token = match &ctx.token_dir {
        Some(dir) => read_token(&dir.join(&ctx.pool.name).join("token")).await?,
        None => None,
    };
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(LinkError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })
        }
        Err(_) => {
            return Err(LinkError::ConnectTimeout {
                endpoint: endpoint.to_string(),
            })
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let worker = format!("kamera-worker/{}", env!("CARGO_PKG_VERSION"));
    let hello = ToPool::Hello {
        versions: wire::VERSIONS,
        camera: &ctx.camera,
        token: token.as_deref(),
        worker: &worker,
        fps: ctx.worker_fps,
    };
    send(&mut write, &hello.to_line(), endpoint).await?;
    let mut buf = Vec::new();
    let first = timeout(
        HANDSHAKE_TIMEOUT,
        read_message(&mut reader, &mut buf, endpoint),
    )
    .await
    .map_err(|_| LinkError::HandshakeTimeout {
        endpoint: endpoint.to_string(),
    })??;
    let protocol_error = |detail: String| LinkError::Protocol {
        endpoint: endpoint.to_string(),
        detail,
    };
    match first {
        FromPool::Welcome(w) => {
            w.validate().map_err(|e| protocol_error(e.to_string()))?;
            Ok((reader, write, w))
        }
        FromPool::Error { code, message } => Err(LinkError::Refused {
            endpoint: endpoint.to_string(),
            code,
            message,
        }),
        other => Err(protocol_error(format!("expected a welcome, got {other:?}"))),
    }
}

/// The token for the pool, or none when its file does not exist.
async fn read_token(path: &Path) -> Result<Option<String>, LinkError> {
    match tokio::fs::read(path).await {
        Ok(raw) if raw.len() > MAX_TOKEN => Err(LinkError::TokenTooLong {
            path: path.to_path_buf(),
        }),
        Ok(raw) => Ok(wire::clean_token(&String::from_utf8_lossy(&raw)).map(String::from)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LinkError::Token {
            path: path.to_path_buf(),
            source,
        }),
    }
}

enum Ended {
    Shutdown,
    /// With the capture time of the newest frame acknowledged on this connection.
    Lost(LinkError, Option<SystemTime>),
}

/// One welcomed connection, registered with the dispatcher as a processor of this camera.
async fn session(
    ctx: &LinkContext,
    link: &PoolLink,
    endpoint: &str,
    (mut reader, mut writer): (BufReader<OwnedReadHalf>, OwnedWriteHalf),
    welcome: &Welcome,
    newest_acked: Option<SystemTime>,
    shutdown: &CancellationToken,
) -> Ended {
    let name = &ctx.pool.name;
    if let Some(theirs) = welcome.processor.as_deref().filter(|p| p != name) {
        debug!(camera = %ctx.camera, processor = %name, pool_says = theirs, "pool calls itself by another name");
    }
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let id = ctx.dispatcher.register(
        Hello {
            version: VERSION,
            processor: name.clone(),
            cameras: vec![ctx.camera.clone()],
            max_in_flight: welcome.max_in_flight,
            fps: welcome.fps,
        },
        tx,
    );
    if let Some(captured) = newest_acked {
        ctx.dispatcher.carry_lag(id, &ctx.camera, captured);
    }
    link.connected();
    let result: Result<(), LinkError> = async {
        let mut buf = Vec::new();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let idle = tokio::time::sleep(IDLE_TIMEOUT);
        let hang = tokio::time::sleep(HANG_TIMEOUT);
        tokio::pin!(idle, hang);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let bye = ToPool::Bye { reason: "shutdown" }.to_line();
                    let _ = timeout(Duration::from_secs(1), writer.write_all(&bye)).await;
                    return Ok(());
                }
                msg = rx.recv() => {
                    let Some(Outbound::Frame(note)) = msg else { continue };
                    let jpeg = match note.jpeg.clone() {
                        Some(j) => j,
                        None => tokio::fs::read(&note.path).await.map_err(|source| {
                            LinkError::FrameFile { path: note.path.clone(), source }
                        })?.into(),
                    };
                    if jpeg.len() > MAX_FRAME_BYTES {
                        return Err(LinkError::TooLarge { seq: note.seq, size: jpeg.len() });
                    }
                    send(&mut writer, &wire::frame_message(&note, &jpeg), endpoint).await?;
                    hang.as_mut().reset(Instant::now() + HANG_TIMEOUT);
                }
                m = read_message(&mut reader, &mut buf, endpoint) => {
                    idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                    match m? {
                        FromPool::Ack(ack) => {
                            hang.as_mut().reset(Instant::now() + HANG_TIMEOUT);
                            if let Some(size) = ack.batch_size {
                                ctx.metrics.pool_batch_size.with_label_values(&[name]).observe(f64::from(size));
                            }
                            if let Some(s) = ack.inference_seconds.filter(|s| s.is_finite() && *s >= 0.0) {
                                ctx.metrics.pool_inference_seconds.with_label_values(&[name]).observe(s);
                            }
                            ctx.dispatcher.ack(id, &ack.camera, ack.seq, &ack.detections);
                        }
                        FromPool::Pong => {}
                        FromPool::Error { code, message } => {
                            return Err(LinkError::Refused { endpoint: endpoint.to_string(), code, message });
                        }
                        FromPool::Welcome(_) => {
                            return Err(LinkError::Protocol { endpoint: endpoint.to_string(), detail: "a second welcome".into() });
                        }
                    }
                }
                _ = ping.tick() => send(&mut writer, &ToPool::Ping.to_line(), endpoint).await?,
                _ = &mut idle => return Err(LinkError::Idle { endpoint: endpoint.to_string() }),
                _ = &mut hang, if ctx.dispatcher.has_in_flight(id) => {
                    return Err(LinkError::Hung { endpoint: endpoint.to_string() });
                }
            }
        }
    }
    .await;
    let acked = ctx.dispatcher.newest_acked(id, &ctx.camera);
    ctx.dispatcher.unregister(id);
    match result {
        Ok(()) => Ended::Shutdown,
        Err(e) => Ended::Lost(e, acked),
    }
}

/// The next known message from the pool (unknown types are skipped).
async fn read_message(
    reader: &mut BufReader<OwnedReadHalf>,
    buf: &mut Vec<u8>,
    endpoint: &str,
) -> Result<FromPool, LinkError> {
    loop {
        let line = protocol::read_line(reader, buf, wire::MAX_LINE)
            .await
            .map_err(|e| match e {
                LineError::Io(source) => LinkError::Io {
                    endpoint: endpoint.to_string(),
                    source,
                },
                LineError::TooLong(_) => LinkError::Protocol {
                    endpoint: endpoint.to_string(),
                    detail: e.to_string(),
                },
            })?
            .ok_or_else(|| LinkError::Closed {
                endpoint: endpoint.to_string(),
            })?;
        match wire::parse(&line) {
            Ok(Some(m)) => return Ok(m),
            Ok(None) => debug!(%endpoint, "ignoring a pool message of an unknown type"),
            Err(e) => {
                return Err(LinkError::Protocol {
                    endpoint: endpoint.to_string(),
                    detail: e.to_string(),
                })
            }
        }
    }
}

async fn send(writer: &mut OwnedWriteHalf, bytes: &[u8], endpoint: &str) -> Result<(), LinkError> {
    match timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(LinkError::Io {
            endpoint: endpoint.to_string(),
            source,
        }),
        Err(_) => Err(LinkError::Io {
            endpoint: endpoint.to_string(),
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("a write blocked for {WRITE_TIMEOUT:?}"),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::detections::{Detections, Limits};
    use serde_json::{json, Value};
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    fn ctx(endpoint: &str, token_dir: Option<PathBuf>) -> LinkContext {
        let metrics = FrameMetrics::unregistered();
        LinkContext {
            camera: "door".into(),
            pool: PoolSpec {
                name: "yolo".into(),
                endpoints: vec![endpoint.into()],
            },
            token_dir,
            worker_fps: 1.0,
            dispatcher: Arc::new(Dispatcher::new(
                metrics.clone(),
                Arc::new(Detections::new(Limits::default())),
                1.0,
            )),
            metrics,
        }
    }

    /// A pool that reads one hello, answers `reply` and hangs up; yields the hello.
    async fn one_shot_pool(reply: Vec<u8>) -> (String, tokio::task::JoinHandle<Value>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            // The worker may hang up first (an oversize line): not this pool's problem.
            let _ = write.write_all(&reply).await;
            serde_json::from_str(&line).unwrap()
        });
        (addr, task)
    }

    fn line(v: Value) -> Vec<u8> {
        let mut l = v.to_string().into_bytes();
        l.push(b'\n');
        l
    }

    #[tokio::test]
    async fn the_token_is_read_at_every_attempt_and_a_refusal_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("yolo/token");
        std::fs::create_dir_all(token.parent().unwrap()).unwrap();
        std::fs::write(&token, "first\n").unwrap();

        let refusal =
            json!({"type":"error","code":"unauthorized","message":"invalid or missing token"});
        let (addr, pool) = one_shot_pool(line(refusal)).await;
        let err = greet(&ctx(&addr, Some(dir.path().into())), &addr)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, LinkError::Refused { code, .. } if code == "unauthorized"),
            "{err}"
        );
        assert_eq!(err.reason(), "refused");
        assert!(err.to_string().contains(&addr), "{err}");
        let hello = pool.await.unwrap();
        assert_eq!(
            (
                &hello["type"],
                &hello["token"],
                &hello["camera"],
                &hello["versions"]
            ),
            (
                &json!("hello"),
                &json!("first"),
                &json!("door"),
                &json!([1])
            )
        );

        std::fs::write(&token, "rotated").unwrap();
        let welcome =
            json!({"type":"welcome","version":1,"processor":"yolo","max_in_flight":2,"fps":null});
        let (addr, pool) = one_shot_pool(line(welcome)).await;
        let (_, _, w) = greet(&ctx(&addr, Some(dir.path().into())), &addr)
            .await
            .unwrap();
        assert_eq!(w.max_in_flight, 2);
        assert_eq!(pool.await.unwrap()["token"], "rotated");

        std::fs::remove_file(&token).unwrap();
        let welcome = json!({"type":"welcome","version":1});
        let (addr, pool) = one_shot_pool(line(welcome)).await;
        greet(&ctx(&addr, Some(dir.path().into())), &addr)
            .await
            .unwrap();
        assert!(
            pool.await.unwrap().get("token").is_none(),
            "no file, no token"
        );
    }

    #[tokio::test]
    async fn garbage_oversize_lines_and_bad_welcomes_end_the_attempt() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"\x00\xffnot json\n".to_vec(), "protocol"),
            (vec![b'x'; wire::MAX_LINE + 10], "protocol"),
            (line(json!({"type":"welcome","version":7})), "protocol"),
            (
                line(json!({"type":"welcome","version":1,"max_in_flight":0})),
                "protocol",
            ),
            (
                line(json!({"type":"ack","camera":"door","seq":1})),
                "protocol",
            ),
            (Vec::new(), "lost"),
        ];
        for (reply, reason) in cases {
            let shown = String::from_utf8_lossy(&reply[..reply.len().min(60)]).into_owned();
            let (addr, pool) = one_shot_pool(reply).await;
            let err = greet(&ctx(&addr, None), &addr).await.err().unwrap();
            assert_eq!(err.reason(), reason, "{shown}: {err}");
            pool.await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_unreachable_pool_is_typed_with_its_endpoint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = greet(&ctx(&addr, None), &addr).await.err().unwrap();
        assert_eq!(err.reason(), "unreachable", "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
    }
}
