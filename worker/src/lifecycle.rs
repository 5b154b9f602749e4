//! The camera lifecycle: attaches every stage to a camera when it first publishes, and
//! releases everything the camera holds once it has had no publisher for `--idle-release`:
//! its stage tasks and threads (joined, after they closed the LL-HLS window and the recording
//! file), the stages' per-camera state, its metric series, and its place in the hub (and so in
//! `/api/cameras` and under `--max-cameras`).
//!
//! This task is the single owner of per-camera tasks: one [`Camera`] per attached camera, with
//! its stop token and its join set. Release decisions come from the hub ([`Hub::begin_release`])
//! with the time passed in, so they are tested without waiting.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::hub::{Channel, Hub};
use crate::metrics::Metrics;
use crate::stage::Stage;

/// What one attached camera holds: a stop token and the tasks of every stage.
struct Camera {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Camera {
    fn attach(
        channel: &Arc<Channel>,
        stages: &[Arc<dyn Stage>],
        shutdown: &CancellationToken,
    ) -> Self {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        for stage in stages {
            stage.attach(channel.clone(), &mut tasks, stop.clone());
        }
        Self { stop, tasks }
    }

    /// Stops every task of the camera and waits for them (each closes what it has open).
    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Settings of the lifecycle.
#[derive(Clone)]
pub struct Lifecycle {
    pub hub: Arc<Hub>,
    pub stages: Vec<Arc<dyn Stage>>,
    pub metrics: Arc<Metrics>,
    /// How long a camera without a publisher is kept.
    pub idle_release: Duration,
}

impl Lifecycle {
    /// Attaches and releases cameras until `shutdown`, then stops every camera's tasks.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut cameras: HashMap<String, Camera> = HashMap::new();
        let mut releasing: JoinSet<()> = JoinSet::new();
        let mut releasing_names: HashMap<Id, String> = HashMap::new();
        let mut changes = self.hub.watch_cameras();
        loop {
            changes.borrow_and_update();
            // A name still being released is attached once its release is done.
            let busy: HashSet<&str> = releasing_names.values().map(String::as_str).collect();
            for channel in self.hub.channels() {
                let name = channel.name();
                if !cameras.contains_key(name) && !busy.contains(name) {
                    cameras.insert(
                        name.to_string(),
                        Camera::attach(&channel, &self.stages, &shutdown),
                    );
                }
            }
            for channel in self.hub.begin_release(Instant::now(), self.idle_release) {
                let name = channel.name().to_string();
                let camera = cameras.remove(&name);
                let id = releasing
                    .spawn(self.clone().release(name.clone(), camera))
                    .id();
                releasing_names.insert(id, name);
            }
            self.metrics
                .cameras
                .held
                .set(i64::try_from(self.hub.len()).unwrap_or(i64::MAX));
            let next = self.hub.next_release(self.idle_release);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = changes.changed() => if changed.is_err() { break },
                _ = sleep_until(next) => {}
                Some(done) = releasing.join_next_with_id(), if !releasing.is_empty() => {
                    let id = match &done { Ok((id, ())) => *id, Err(e) => e.id() };
                    if let Some(name) = releasing_names.remove(&id) {
                        if let Err(e) = done {
                            // The camera's state may be left behind; its name must not stay blocked.
                            warn!(camera = %name, error = %e, "releasing the camera failed");
                            self.hub.forget(&name);
                        }
                    }
                }
            }
        }
        // Shutdown: wake every subscriber blocked on its ring, then join every camera's tasks.
        self.hub.close_all();
        for (_, camera) in cameras.drain() {
            camera.stop().await;
        }
        while releasing.join_next().await.is_some() {}
    }

    /// Releases one camera whose channel the hub already closed and marked releasing.
    async fn release(self, name: String, camera: Option<Camera>) {
        let started = Instant::now();
        if let Some(camera) = camera {
            camera.stop().await;
        }
        let stages = self.stages.clone();
        let camera = name.clone();
        // Stages may touch the disk (extracted frames): off the reactor.
        let released = tokio::task::spawn_blocking(move || {
            for stage in &stages {
                stage.release(&camera);
            }
        })
        .await;
        if let Err(e) = released {
            warn!(camera = %name, error = %e, "a stage failed to release the camera");
        }
        let series = self.metrics.registry.forget_camera(&name);
        self.hub.forget(&name);
        self.metrics.cameras.released.inc();
        self.metrics
            .cameras
            .held
            .set(i64::try_from(self.hub.len()).unwrap_or(i64::MAX));
        info!(camera = %name, idle_release = ?self.idle_release, series, took_ms = started.elapsed().as_millis() as u64, "camera released: no publisher for --idle-release");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use prometheus::{IntCounterVec, Opts};

    use super::*;
    use crate::http::CameraStatus;

    /// A stage whose per-camera task runs until its stop, counting what is alive.
    #[derive(Default)]
    struct Probe {
        running: Arc<AtomicUsize>,
        released: Mutex<Vec<(String, usize)>>,
    }

    impl CameraStatus for Probe {
        fn section(&self) -> &'static str {
            "probe"
        }
        fn status(&self, _camera: &str) -> Option<serde_json::Value> {
            None
        }
    }

    impl Stage for Probe {
        fn attach(&self, channel: Arc<Channel>, tasks: &mut JoinSet<()>, stop: CancellationToken) {
            let running = self.running.clone();
            running.fetch_add(1, Ordering::SeqCst);
            let mut sub = channel.subscribe();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        ev = sub.recv() => if ev.is_none() { break },
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }

        fn release(&self, camera: &str) {
            let alive = self.running.load(Ordering::SeqCst);
            let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
            released.push((camera.to_string(), alive));
        }
    }

    #[tokio::test]
    async fn an_idle_camera_loses_its_tasks_then_its_state_then_its_series() {
        let hub = Hub::with_max_cameras(4);
        let probe = Arc::new(Probe::default());
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let series = IntCounterVec::new(Opts::new("t_total", "t"), &["camera"]).expect("family");
        metrics.registry.per_camera(&series).expect("register");
        let lifecycle = Lifecycle {
            hub: hub.clone(),
            stages: vec![probe.clone()],
            metrics: metrics.clone(),
            idle_release: Duration::from_millis(50),
        };
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(lifecycle.run(shutdown.clone()));

        let peer = "127.0.0.1:5000".parse().expect("addr");
        let gone = hub.publish("gone", peer, false).expect("publish");
        let _kept = hub.publish("kept", peer, false).expect("publish");
        series.with_label_values(&["gone"]).inc();
        series.with_label_values(&["kept"]).inc();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while probe.running.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(gone);
            while metrics.cameras.released.get() < 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the idle camera was never released");

        let released = probe.released.lock().expect("lock").clone();
        assert_eq!(
            released,
            [("gone".to_string(), 1)],
            "released once, after its task ended; the live camera's task still runs"
        );
        let text = metrics.render();
        assert!(!text.contains("camera=\"gone\""), "{text}");
        assert!(text.contains("camera=\"kept\""), "{text}");
        assert_eq!(hub.len(), 1);
        assert!(hub.get("gone").is_none());

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the lifecycle stops")
            .expect("no panic");
        assert_eq!(probe.running.load(Ordering::SeqCst), 0, "every task joined");
    }
}
