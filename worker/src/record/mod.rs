//! Recording: every camera's stream written as crash-safe fragmented MP4 files, one per
//! clock-aligned segment, with retention and a free-space floor, served at `/recordings/`.
//!
//! Each camera has a recorder on its own thread ([`recorder`]); one maintenance task recovers
//! leftover `.part` files at start and applies retention every minute and whenever a file
//! closes ([`retention`], [`catalog`]). Disk trouble stops recording only, never ingest or the
//! other stages.

pub mod catalog;
pub mod disk;
pub(crate) mod http;
mod metrics;
pub mod naming;
mod recorder;
pub mod retention;
pub mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, FsyncPolicy, MinFree};
use crate::http::CameraStatus;
use crate::hub::Channel;
use crate::stage::{Cameras, Stage};
pub use metrics::RecordingMetrics;

/// How often retention runs when nothing else wakes it.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// On shutdown, time given to a recorder with an open file to close it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The recording settings, from the worker's flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub segment_ms: i64,
    pub fragment_ms: i64,
    pub fsync: FsyncPolicy,
    pub min_free: MinFree,
    pub policy: retention::Policy,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
        Self {
            root: config.recordings_dir(),
            segment_ms: ms(config.segment_duration),
            fragment_ms: ms(config.recording_fragment),
            fsync: config.recording_fsync,
            min_free: config.min_free,
            policy: retention::Policy {
                max_age: config.retention_max_age,
                max_size: config.retention_max_size,
            },
        }
    }
}

/// What a camera's recorder is doing (shown in `/api/cameras`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Idle,
    Recording,
    /// Free space below `--min-free`: not writing until space is freed.
    DiskLow,
    /// The last disk operation failed; retrying with backoff.
    Error,
}

/// The last disk error of a camera's recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorStatus {
    pub reason: &'static str,
    pub message: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct CameraState {
    state: State,
    file: Option<String>,
    file_start_ms: Option<i64>,
    files: u64,
    bytes: u64,
    last_error: Option<ErrorStatus>,
}

/// What the recorders, the maintenance task and the HTTP handlers share.
pub struct Shared {
    pub settings: Settings,
    metrics: RecordingMetrics,
    /// `.part` files being written: recovery and retention never touch them.
    open: Mutex<HashSet<PathBuf>>,
    cameras: Cameras<CameraState>,
    /// Wakes the maintenance task (a file closed, or the disk ran low).
    retention_wake: Notify,
    /// Set once leftover `.part` files are recovered: recorders open no file before, so
    /// recovery can never mistake a new file for a leftover.
    recovered: (Mutex<bool>, Condvar),
}

impl Shared {
    fn set_state(&self, camera: &str, f: impl FnOnce(&mut CameraState)) {
        self.cameras.update(camera, f);
    }

    fn remember_open(&self, part: &Path) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.insert(part.to_path_buf());
    }

    fn forget_open(&self, part: &Path) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(part);
    }

    fn open_files(&self) -> HashSet<PathBuf> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_recovered(&self) {
        let (lock, cvar) = &self.recovered;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }

    /// Blocks (recorder threads only) until recovery is done, or `timeout` passes.
    fn wait_recovered(&self, timeout: Duration) {
        let (lock, cvar) = &self.recovered;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cvar.wait_timeout_while(guard, timeout, |done| !*done);
    }
}

/// The recording stage.
pub struct Recording {
    shared: Arc<Shared>,
}

impl Recording {
    /// Registers recording's metrics and starts the maintenance task (recovery, retention),
    /// which stops with `shutdown`. Recorders start as cameras attach.
    pub fn start(
        config: &Config,
        registry: &crate::metrics::Families,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, prometheus::Error> {
        let metrics = RecordingMetrics::register(registry)?;
        let recording = Self::with_settings(Settings::from_config(config), metrics);
        tasks.spawn(recording.clone().maintain(shutdown));
        Ok(recording)
    }

    pub fn with_settings(settings: Settings, metrics: RecordingMetrics) -> Arc<Self> {
        Arc::new(Self {
            shared: Arc::new(Shared {
                settings,
                metrics,
                open: Mutex::new(HashSet::new()),
                cameras: Cameras::default(),
                retention_wake: Notify::new(),
                recovered: (Mutex::new(false), Condvar::new()),
            }),
        })
    }

    /// Recovers leftover `.part` files, then applies retention at start, every minute and
    /// whenever a file closes, until `shutdown`.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken) {
        let shared = self.shared.clone();
        let recover = tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::create_dir_all(&shared.settings.root) {
                warn!(dir = %shared.settings.root.display(), error = %e, "cannot create the recordings directory");
            }
            let recovered = catalog::recover(&shared.settings.root, &shared.open_files());
            shared.set_recovered();
            recovered
        });
        if let Ok(recovered) = recover.await {
            if !recovered.is_empty() {
                info!(
                    files = recovered.len(),
                    "recovered recordings left open by an earlier run"
                );
            }
        }
        loop {
            let shared = self.shared.clone();
            let _ = tokio::task::spawn_blocking(move || apply_retention(&shared)).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.shared.retention_wake.notified() => {}
                _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
            }
        }
    }
}

/// One retention pass: scan, decide, delete.
fn apply_retention(shared: &Shared) {
    let s = &shared.settings;
    let deficit = match disk::space(&s.root) {
        Ok(space) => {
            shared
                .metrics
                .disk_free
                .set(i64::try_from(space.available).unwrap_or(i64::MAX));
            disk::deficit(s.min_free, space)
        }
        Err(_) => 0,
    };
    if !s.policy.allows_deletion() {
        return;
    }
    let open = shared.open_files();
    let facts: Vec<retention::FileFacts> = catalog::scan_all(&s.root)
        .into_iter()
        .map(|e| retention::FileFacts {
            open: !e.closed || open.contains(&e.path),
            camera: e.camera,
            path: e.path,
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            bytes: e.bytes,
        })
        .collect();
    let now = catalog::unix_ms(SystemTime::now());
    for d in retention::plan(&facts, now, &s.policy, deficit) {
        match std::fs::remove_file(&d.path) {
            Ok(()) => {
                info!(camera = %d.camera, file = %d.path.display(), reason = d.reason.as_str(), bytes = d.bytes, "deleted recording");
                shared
                    .metrics
                    .deleted
                    .with_label_values(&[&d.camera, d.reason.as_str()])
                    .inc();
                if let Some(day) = d.path.parent() {
                    // Removes the day directory once it is empty; fails harmlessly otherwise.
                    let _ = std::fs::remove_dir(day);
                }
            }
            Err(e) => {
                warn!(camera = %d.camera, file = %d.path.display(), error = %e, "cannot delete recording")
            }
        }
    }
}

impl Stage for Recording {
    fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, stop: CancellationToken) {
        let camera = channel.name().to_string();
        let sub = channel.subscribe();
        let shared = self.shared.clone();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_shutdown = stop.clone();
        let thread_camera = camera.clone();
        // A dedicated thread: file writes and fsync block, and must never stall the reactor.
        let spawned = std::thread::Builder::new()
            .name(format!("rec-{camera}"))
            .spawn(move || {
                recorder::run(thread_camera, sub, shared, thread_shutdown);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            warn!(camera = %camera, error = %e, "cannot start the recorder thread; this camera is not recorded");
            return;
        }
        tasks.spawn(async move {
            tokio::select! {
                _ = &mut done_rx => {}
                _ = stop.cancelled() => {
                    // The hub closes the channel with the stop (release, shutdown): the recorder
                    // reads what is left, closes its file and ends. A thread stuck on a dead disk
                    // is given up on after the grace.
                    if tokio::time::timeout(CLOSE_GRACE, done_rx).await.is_err() {
                        warn!(camera = %camera, "the recorder did not stop within {CLOSE_GRACE:?}");
                    }
                }
            }
        });
    }

    /// The recorder closed its file when its thread ended; forget the camera's API state.
    fn release(&self, camera: &str) {
        self.shared.cameras.remove(camera);
    }

    fn routes(&self) -> Router {
        http::routes(self.shared.clone())
    }
}

impl CameraStatus for Recording {
    fn section(&self) -> &'static str {
        "recording"
    }

    fn status(&self, camera: &str) -> Option<serde_json::Value> {
        let c = self.shared.cameras.get(camera)?;
        Some(json!({
            "state": c.state,
            "file": c.file,
            "file_started": c.file_start_ms.map(http::rfc3339_ms),
            "files": c.files,
            "bytes": c.bytes,
            "last_error": c.last_error.as_ref().map(|e| json!({
                "reason": e.reason,
                "message": e.message,
                "at": http::rfc3339_ms(e.at_ms),
            })),
        }))
    }
}
