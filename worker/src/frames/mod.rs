//! Frames for processors: per camera, a sampler picks one access unit per tick (keyframes
//! only when the GOP allows), a thread decodes it and encodes a JPEG into the frames
//! directory, and the frame hub notifies connected processors over the frame socket.
//!
//! Pools (`--pool`) get the same frames over the network: one link task per camera and pool
//! (pool/), a processor connection of the same hub.
//!
//! Boundaries: reads the stream hub like any consumer; never calls back into ingest.
//! Serves `/frames/<camera>/latest.jpg` and `/api/cameras/<camera>/detections`.

pub mod decode;
pub mod detections;
pub mod dispatch;
pub mod jpeg;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod protocol;
pub mod roster;
pub mod sampler;
pub mod socket;
pub mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{is_valid_camera_name, Config, PoolSpec};
use crate::http::{json_error, CameraStatus};
use crate::hub::Channel;
use crate::stage::{Cameras, Stage};

use self::detections::{Detections, Limits};
use self::dispatch::Dispatcher;
use self::metrics::FrameMetrics;
use self::pipeline::Settings;
use self::pool::PoolLink;
use self::roster::LinkView;
use self::sampler::Mode;

#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    #[error("registering frame metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("--pool: {0}")]
    Pools(String),
    #[error("frames directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One camera's extraction state, shared by its pipeline and the HTTP handlers.
#[derive(Default)]
pub struct CameraFrames {
    inner: Mutex<CameraFramesInner>,
    /// The camera's links to pools (their tasks run as long as the camera's pipeline).
    links: Vec<Arc<PoolLink>>,
}

#[derive(Default)]
struct CameraFramesInner {
    status: FrameStatus,
    latest: Option<Bytes>,
}

/// The `frames` section of `/api/cameras`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrameStatus {
    /// `keyframes_only` or `all_frames`; absent while no video arrives.
    pub mode: Option<Mode>,
    pub gop_ms: Option<i64>,
    pub extracted: u64,
    pub errors: u64,
    pub last_seq: Option<u64>,
    pub last_captured_at: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl CameraFrames {
    fn lock(&self) -> MutexGuard<'_, CameraFramesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_mode(&self, mode: Option<Mode>, gop_ms: Option<i64>) {
        let mut inner = self.lock();
        inner.status.mode = mode;
        inner.status.gop_ms = gop_ms;
    }

    fn set_latest(&self, seq: u64, jpeg: Bytes, width: u32, height: u32, captured_at: String) {
        let mut inner = self.lock();
        inner.latest = Some(jpeg);
        let s = &mut inner.status;
        s.extracted += 1;
        s.last_seq = Some(seq);
        s.last_captured_at = Some(captured_at);
        s.width = Some(width);
        s.height = Some(height);
    }

    fn count_error(&self) {
        self.lock().status.errors += 1;
    }

    /// The newest JPEG, from memory (no disk read per request).
    pub fn latest(&self) -> Option<Bytes> {
        self.lock().latest.clone()
    }

    pub fn status(&self) -> FrameStatus {
        self.lock().status.clone()
    }

    /// The camera's pool links as the roster lists them.
    pub fn links(&self) -> Vec<LinkView> {
        self.links.iter().map(|l| l.view()).collect()
    }
}

struct Shared {
    settings: Settings,
    pools: Vec<PoolSpec>,
    pool_token_dir: Option<PathBuf>,
    metrics: FrameMetrics,
    dispatcher: Arc<Dispatcher>,
    detections: Arc<Detections>,
    cameras: Cameras<Arc<CameraFrames>>,
}

impl Shared {
    fn camera(&self, name: &str) -> Option<Arc<CameraFrames>> {
        self.cameras.get(name)
    }
}

/// The frames stage.
pub struct FramesStage {
    shared: Arc<Shared>,
}

impl FramesStage {
    /// Binds the frame socket, registers the metrics and starts serving processors until
    /// `shutdown` (processors can connect before any camera publishes).
    pub fn start(
        config: &Config,
        registry: &crate::metrics::Families,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, FramesError> {
        let pools = config.pools().map_err(FramesError::Pools)?;
        let frames_dir = config.frames_dir();
        std::fs::create_dir_all(&frames_dir).map_err(|source| FramesError::Dir {
            path: frames_dir.clone(),
            source,
        })?;
        // Notifications carry absolute paths: processors run with other working directories.
        let frames_dir = std::path::absolute(&frames_dir).unwrap_or(frames_dir);
        let metrics = FrameMetrics::register(registry)?;
        let detections = Arc::new(Detections::new(Limits::default()));
        let dispatcher = Arc::new(Dispatcher::new(
            metrics.clone(),
            detections.clone(),
            config.frame_fps,
        ));
        let socket_path = config.frame_socket();
        let listener = socket::bind(&socket_path)?;
        info!(socket = %socket_path.display(), frames_dir = %frames_dir.display(), fps = config.frame_fps, "frame socket listening");
        let welcome = socket::Welcome {
            worker: format!("kamera-worker/{}", env!("CARGO_PKG_VERSION")),
            fps: config.frame_fps,
        };
        // Stops with `shutdown`: it says goodbye to processors and removes the socket; the app
        // joins it before exiting.
        tasks.spawn(socket::serve(
            listener,
            socket_path,
            dispatcher.clone(),
            welcome,
            shutdown,
        ));
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                settings: Settings {
                    fps: config.frame_fps,
                    sampling: config.frame_sampling,
                    skip_loop_filter: config.frame_skip_loop_filter,
                    quality: config.frame_quality,
                    max_width: config.frame_max_width,
                    keep: config.frame_keep,
                    frames_dir,
                },
                pools,
                pool_token_dir: config.pool_token_dir.clone(),
                metrics,
                dispatcher,
                detections,
                cameras: Cameras::default(),
            }),
        }))
    }
}

impl CameraStatus for FramesStage {
    fn section(&self) -> &'static str {
        "frames"
    }

    fn status(&self, camera: &str) -> Option<serde_json::Value> {
        let cam = self.shared.camera(camera)?;
        let mut v = serde_json::to_value(cam.status()).ok()?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("fps".into(), self.shared.settings.fps.into());
            obj.insert(
                "sampling".into(),
                serde_json::to_value(self.shared.settings.sampling).unwrap_or_default(),
            );
            obj.insert(
                "latest_url".into(),
                format!("/frames/{camera}/latest.jpg").into(),
            );
            let processors = roster::with_links(
                self.shared
                    .dispatcher
                    .processor_status(camera, SystemTime::now()),
                cam.links(),
            );
            obj.insert(
                "processors".into(),
                serde_json::to_value(processors)
                    .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
            );
        }
        Some(v)
    }
}

impl Stage for FramesStage {
    /// The camera's sampler task (which joins its extractor thread) ends on `stop`; anything
    /// else a camera needs in this stage (connections to processors included) must hang off
    /// `stop` too, and be forgotten in [`Stage::release`].
    fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, stop: CancellationToken) {
        let name = channel.name().to_string();
        let links: Vec<_> = self
            .shared
            .pools
            .iter()
            .filter_map(|pool| {
                let first = pool.endpoints.first()?;
                Some((pool.clone(), Arc::new(PoolLink::new(&pool.name, first))))
            })
            .collect();
        let camera = Arc::new(CameraFrames {
            links: links.iter().map(|(_, link)| link.clone()).collect(),
            ..CameraFrames::default()
        });
        self.shared.cameras.insert(&name, camera.clone());
        self.shared.dispatcher.add_camera(&name);
        // One link per pool, stopped with the camera's pipeline (same token) and joined by
        // the same owner.
        for (pool, link) in links {
            let ctx = pool::link::LinkContext {
                camera: name.clone(),
                pool,
                token_dir: self.shared.pool_token_dir.clone(),
                worker_fps: self.shared.settings.fps,
                dispatcher: self.shared.dispatcher.clone(),
                metrics: self.shared.metrics.clone(),
            };
            tasks.spawn(pool::link::run(ctx, link, stop.clone()));
        }
        tasks.spawn(pipeline::run(
            channel,
            self.shared.settings.clone(),
            camera,
            self.shared.metrics.clone(),
            self.shared.dispatcher.clone(),
            stop,
        ));
    }

    fn release(&self, camera: &str) {
        self.shared.cameras.remove(camera);
        self.shared.dispatcher.remove_camera(camera);
        self.shared.detections.forget(camera);
        // The frames directory is a short ring for processors, not an archive.
        let dir = self.shared.settings.frames_dir.join(camera);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(camera, dir = %dir.display(), error = %e, "cannot remove the released camera's frames")
            }
        }
    }

    fn routes(&self) -> Router {
        Router::new()
            .route("/frames/{camera}/latest.jpg", get(latest_jpeg))
            .route("/api/cameras/{camera}/detections", get(recent_detections))
            .with_state(self.shared.clone())
    }
}

async fn latest_jpeg(State(shared): State<Arc<Shared>>, Path(camera): Path<String>) -> Response {
    if !is_valid_camera_name(&camera) {
        return json_error(StatusCode::BAD_REQUEST, "invalid camera name");
    }
    match shared.camera(&camera).and_then(|c| c.latest()) {
        Some(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("no frame yet for camera {camera:?}"),
        ),
    }
}

async fn recent_detections(
    State(shared): State<Arc<Shared>>,
    Path(camera): Path<String>,
) -> Response {
    if !is_valid_camera_name(&camera) {
        return json_error(StatusCode::BAD_REQUEST, "invalid camera name");
    }
    if shared.camera(&camera).is_none() {
        return json_error(StatusCode::NOT_FOUND, format!("unknown camera {camera:?}"));
    }
    Json(serde_json::json!({
        "camera": camera,
        "detections": shared.detections.recent(&camera),
    }))
    .into_response()
}
