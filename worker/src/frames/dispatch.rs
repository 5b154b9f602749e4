//! The frame hub: which processor is told about which frame, with credits.
//!
//! Each processor has, per camera, at most `max_in_flight` frames notified and not yet
//! acknowledged. While it has none left, a newer frame replaces the one waiting (latest
//! wins; the replaced one is counted as `processor_busy`), so a slow processor always gets
//! the newest frame next and never a backlog. Outgoing messages go through a bounded queue
//! per connection; a full queue drops the message (`queue_full`).
//!
//! It also keeps the per-processor counts behind `frames.processors` in `/api/cameras`
//! (roster.rs): plain counters bumped under the lock the frame path already takes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::detections::Detections;
use super::metrics::FrameMetrics;
use super::protocol::{Detection, FrameNote, Hello, Outbound, MAX_DETECTIONS};
use super::roster::{self, Departures, ProcessorStatus};
use crate::drops::DropLog;

/// Messages queued per connection. Credits keep far fewer than this in flight; the bound
/// only matters for a processor subscribed to very many cameras that stopped reading.
pub const OUTBOUND_QUEUE: usize = 256;

/// A connection's handle on the hub.
pub type ProcessorId = u64;

#[derive(Default)]
struct Slot {
    /// Notified, unacknowledged: seq → capture time.
    in_flight: VecDeque<(u64, SystemTime)>,
    /// The newest frame waiting for a credit.
    pending: Option<Arc<FrameNote>>,
    last_taken_pts: Option<i64>,
    /// Capture → ack of the newest acknowledged frame.
    last_ack_lag: Option<Duration>,
    newest_acked: Option<SystemTime>,
    /// A pool link's previous connection acknowledged a frame captured then, and this one
    /// has acknowledged none yet: the lag counts from it, so a reconnect shows as a gap.
    carried: Option<SystemTime>,
    /// For the API (the metrics count the same events, per name rather than per connection).
    sent: u64,
    acked: u64,
    dropped: u64,
    last_ack_at: Option<SystemTime>,
    busy_log: DropLog,
    queue_log: DropLog,
}

impl Slot {
    /// How far behind live: the age of the oldest frame in flight, else the capture → ack
    /// time of the newest acknowledged frame.
    fn lag(&self, now: SystemTime) -> Option<Duration> {
        let lag = match self.in_flight.front() {
            Some((_, captured)) => now.duration_since(*captured).ok(),
            None => self.last_ack_lag,
        };
        match self.carried.and_then(|c| now.duration_since(c).ok()) {
            Some(gap) => Some(lag.map_or(gap, |l| l.max(gap))),
            None => lag,
        }
    }
}

struct Processor {
    name: String,
    hello: Hello,
    tx: mpsc::Sender<Outbound>,
    slots: HashMap<String, Slot>,
    connected_since: SystemTime,
}

impl Processor {
    /// This processor as `camera`'s `frames.processors` shows it.
    fn status(&self, slot: &Slot, camera_fps: f64, now: SystemTime) -> ProcessorStatus {
        ProcessorStatus {
            name: self.name.clone(),
            connected: true,
            connected_since: self.connected_since,
            disconnected_at: None,
            in_flight: u32::try_from(slot.in_flight.len()).unwrap_or(u32::MAX),
            max_in_flight: self.hello.max_in_flight,
            fps: self.hello.fps.map_or(camera_fps, |f| f.min(camera_fps)),
            frames_sent: slot.sent,
            frames_acked: slot.acked,
            frames_dropped: slot.dropped,
            last_ack_at: slot.last_ack_at,
            lag_seconds: slot
                .last_ack_at
                .or(slot.carried)
                .and_then(|_| slot.lag(now)),
            transport: roster::Transport::Unix,
            pool: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    next_id: ProcessorId,
    processors: HashMap<ProcessorId, Processor>,
    cameras: HashSet<String>,
    departed: Departures,
}

/// Shared by the extractors (which publish) and the socket connections (which receive).
pub struct Dispatcher {
    inner: Mutex<Inner>,
    metrics: FrameMetrics,
    detections: Arc<Detections>,
    /// The worker's extraction rate, and its interval for per-processor subsampling tolerance.
    camera_fps: f64,
    camera_interval_ms: f64,
}

impl Dispatcher {
    pub fn new(metrics: FrameMetrics, detections: Arc<Detections>, camera_fps: f64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            metrics,
            detections,
            camera_fps,
            camera_interval_ms: 1000.0 / camera_fps,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `camera` known, so processors that want it show as connected before its first frame.
    pub fn add_camera(&self, camera: &str) {
        let mut inner = self.lock();
        if !inner.cameras.insert(camera.to_string()) {
            return;
        }
        for p in inner.processors.values_mut() {
            if p.hello.wants(camera) && !p.slots.contains_key(camera) {
                p.slots.insert(camera.to_string(), Slot::default());
                self.metrics
                    .connected
                    .with_label_values(&[camera, &p.name])
                    .inc();
            }
        }
    }

    /// Forgets a released camera: its credits and pending frame at every processor, and the
    /// processors it remembers as departed. (Its metric series go with the camera's.)
    pub fn remove_camera(&self, camera: &str) {
        let mut inner = self.lock();
        inner.cameras.remove(camera);
        for p in inner.processors.values_mut() {
            p.slots.remove(camera);
        }
        inner.departed.forget_camera(camera);
    }

    /// Cameras known to the frame hub (tests of release).
    pub fn cameras(&self) -> usize {
        self.lock().cameras.len()
    }

    /// Adds a processor after its hello; frames for it arrive on the returned receiver.
    pub fn register(&self, hello: Hello, tx: mpsc::Sender<Outbound>) -> ProcessorId {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let name = hello.processor.clone();
        let mut slots = HashMap::new();
        for camera in inner.cameras.iter().filter(|c| hello.wants(c)) {
            slots.insert(camera.clone(), Slot::default());
            self.metrics
                .connected
                .with_label_values(&[camera, &name])
                .inc();
        }
        inner.processors.insert(
            id,
            Processor {
                name,
                hello,
                tx,
                slots,
                connected_since: SystemTime::now(),
            },
        );
        id
    }

    /// Removes a processor (disconnected or dropped); its credits and pending frames go with
    /// it, and each of its cameras remembers it for a while as disconnected.
    pub fn unregister(&self, id: ProcessorId) {
        let now = SystemTime::now();
        let p = {
            let mut inner = self.lock();
            let Some(p) = inner.processors.remove(&id) else {
                return;
            };
            for (camera, slot) in &p.slots {
                let gone = ProcessorStatus {
                    connected: false,
                    disconnected_at: Some(now),
                    in_flight: 0,
                    lag_seconds: None,
                    ..p.status(slot, self.camera_fps, now)
                };
                inner.departed.record(camera, gone, now);
            }
            p
        };
        for camera in p.slots.keys() {
            let gauge = self.metrics.connected.with_label_values(&[camera, &p.name]);
            gauge.dec();
            if gauge.get() <= 0 {
                let _ = self.metrics.lag.remove_label_values(&[camera, &p.name]);
            }
        }
    }

    /// Tells every processor that wants `note.camera` about a new frame, within its credits.
    pub fn publish(&self, note: FrameNote) {
        let note = Arc::new(note);
        let mut inner = self.lock();
        let Inner {
            processors,
            cameras,
            ..
        } = &mut *inner;
        cameras.insert(note.camera.clone());
        for p in processors.values_mut() {
            if !p.hello.wants(&note.camera) {
                continue;
            }
            let slot = p.slots.entry(note.camera.clone()).or_insert_with(|| {
                self.metrics
                    .connected
                    .with_label_values(&[&note.camera, &p.name])
                    .inc();
                Slot::default()
            });
            // Per-processor rate: skip frames that come sooner than it asked for. Not a drop.
            if let (Some(fps), Some(last)) = (p.hello.fps, slot.last_taken_pts) {
                let min_gap = 1000.0 / fps - self.camera_interval_ms / 2.0;
                if ((note.pts_ms - last) as f64) < min_gap && note.pts_ms >= last {
                    continue;
                }
            }
            slot.last_taken_pts = Some(note.pts_ms);
            if slot.in_flight.len() < p.hello.max_in_flight as usize {
                send(&self.metrics, &p.name, &p.tx, slot, note.clone());
            } else if slot.pending.replace(note.clone()).is_some() {
                slot.dropped += 1;
                let counter = self.metrics.dropped.with_label_values(&[
                    &note.camera,
                    &p.name,
                    "processor_busy",
                ]);
                // Latest wins by design: a processor slower than the frame rate is normal.
                if let Some(dropped) = slot.busy_log.count(&counter, 1, Instant::now()) {
                    debug!(processor = %p.name, camera = %note.camera, dropped, "processor busy; older frames replaced by newer ones");
                }
            }
        }
    }

    /// Handles an ack: frees the credit, records latency and detections, and sends the
    /// waiting frame if there is one. An ack for a frame not in flight is ignored.
    pub fn ack(&self, id: ProcessorId, camera: &str, seq: u64, detections: &[serde_json::Value]) {
        let now = SystemTime::now();
        let mut inner = self.lock();
        let Some(p) = inner.processors.get_mut(&id) else {
            return;
        };
        let Some(slot) = p.slots.get_mut(camera) else {
            debug!(processor = %p.name, camera, seq, "ack for a camera never sent");
            return;
        };
        let Some(pos) = slot.in_flight.iter().position(|(s, _)| *s == seq) else {
            debug!(processor = %p.name, camera, seq, "ack for a frame not in flight");
            return;
        };
        let Some((_, captured)) = slot.in_flight.remove(pos) else {
            return;
        };
        let latency = now.duration_since(captured).unwrap_or(Duration::ZERO);
        slot.acked += 1;
        slot.last_ack_at = Some(now);
        self.metrics
            .latency
            .with_label_values(&[camera, &p.name])
            .observe(latency.as_secs_f64());
        if slot.newest_acked.is_none_or(|t| captured > t) {
            slot.newest_acked = Some(captured);
            // The first ack after a pool reconnect: behind live by the whole gap until now
            // (held until the next frame goes out).
            let gap = slot
                .carried
                .take()
                .and_then(|c| now.duration_since(c).ok())
                .map_or(latency, |g| g.max(latency));
            slot.last_ack_lag = Some(gap);
            self.metrics
                .lag
                .with_label_values(&[camera, &p.name])
                .set(gap.as_secs_f64());
        }

        let found: Vec<Detection> = detections
            .iter()
            .take(MAX_DETECTIONS)
            .filter_map(Detection::from_value)
            .collect();
        for d in &found {
            let label = self.detections.metric_label(camera, &p.name, &d.label);
            self.metrics
                .detections
                .with_label_values(&[camera, &p.name, label])
                .inc();
        }
        if !found.is_empty() {
            self.detections
                .record(camera, &p.name, seq, captured, now, found);
        }

        if let Some(next) = slot.pending.take() {
            send(&self.metrics, &p.name, &p.tx, slot, next);
        }
    }

    /// Refreshes every lag gauge: how far behind live the processor is. While it works on a
    /// frame, that frame's age (so a stalled processor's lag keeps growing); while idle, the
    /// capture → ack time of the newest frame it acknowledged. A processor slower than the
    /// frame rate thus shows at most about one callback duration plus one interval, because
    /// latest-wins hands it a fresh frame each time.
    pub fn refresh_lag(&self, now: SystemTime) {
        let inner = self.lock();
        for p in inner.processors.values() {
            for (camera, slot) in &p.slots {
                if let Some(lag) = slot.lag(now) {
                    self.metrics
                        .lag
                        .with_label_values(&[camera, &p.name])
                        .set(lag.as_secs_f64());
                }
            }
        }
    }

    /// True when `id` has frames in flight (the connection uses it for hang detection).
    pub fn has_in_flight(&self, id: ProcessorId) -> bool {
        self.lock()
            .processors
            .get(&id)
            .is_some_and(|p| p.slots.values().any(|s| !s.in_flight.is_empty()))
    }

    /// Capture time of the newest frame `id` acknowledged for `camera` (a pool link keeps it
    /// across a reconnect, so its lag keeps counting while it is away).
    pub fn newest_acked(&self, id: ProcessorId, camera: &str) -> Option<SystemTime> {
        self.lock()
            .processors
            .get(&id)
            .and_then(|p| p.slots.get(camera))
            .and_then(|s| s.newest_acked)
    }

    /// Makes `id`'s lag on `camera` count from `captured` (the newest frame acknowledged on a
    /// pool link's previous connection) until it acknowledges a frame.
    pub fn carry_lag(&self, id: ProcessorId, camera: &str, captured: SystemTime) {
        let mut inner = self.lock();
        if let Some(slot) = inner
            .processors
            .get_mut(&id)
            .and_then(|p| p.slots.get_mut(camera))
        {
            slot.carried = Some(captured);
            slot.newest_acked = Some(captured);
        }
    }

    /// Number of connected processors.
    pub fn processors(&self) -> usize {
        self.lock().processors.len()
    }

    /// Every processor subscribed to `camera`, connected or recently disconnected, sorted by
    /// name (`frames.processors` in `/api/cameras/<camera>`). Copies counters under the lock;
    /// sorting and formatting happen after it is released.
    pub fn processor_status(&self, camera: &str, now: SystemTime) -> Vec<ProcessorStatus> {
        let (connected, departed) = {
            let mut inner = self.lock();
            inner.departed.forget_expired(now);
            let connected: Vec<_> = inner
                .processors
                .values()
                .filter_map(|p| Some(p.status(p.slots.get(camera)?, self.camera_fps, now)))
                .collect();
            let departed: Vec<_> = inner.departed.recent(camera, now).cloned().collect();
            (connected, departed)
        };
        roster::roster(connected, departed)
    }
}

fn send(
    metrics: &FrameMetrics,
    name: &str,
    tx: &mpsc::Sender<Outbound>,
    slot: &mut Slot,
    note: Arc<FrameNote>,
) {
    let captured = note.captured.unwrap_or_else(SystemTime::now);
    let (camera, seq) = (note.camera.clone(), note.seq);
    match tx.try_send(Outbound::Frame(Arc::unwrap_or_clone(note))) {
        Ok(()) => {
            slot.in_flight.push_back((seq, captured));
            slot.sent += 1;
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            slot.dropped += 1;
            let counter = metrics
                .dropped
                .with_label_values(&[&camera, name, "queue_full"]);
            if let Some(dropped) = slot.queue_log.count(&counter, 1, Instant::now()) {
                warn!(processor = %name, %camera, dropped, "processor connection not keeping up; frames dropped");
            }
        }
        // The connection is going away; it unregisters itself.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::detections::Limits;

    fn hub() -> (Dispatcher, FrameMetrics) {
        let metrics = FrameMetrics::unregistered();
        let d = Dispatcher::new(
            metrics.clone(),
            Arc::new(Detections::new(Limits::default())),
            1.0,
        );
        (d, metrics)
    }

    fn hello(name: &str, max_in_flight: u32, fps: Option<f64>) -> Hello {
        Hello {
            version: 1,
            processor: name.into(),
            cameras: vec!["*".into()],
            max_in_flight,
            fps,
        }
    }

    fn hello_for(name: &str, cameras: &[&str], max_in_flight: u32, fps: Option<f64>) -> Hello {
        Hello {
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            ..hello(name, max_in_flight, fps)
        }
    }

    fn note(camera: &str, seq: u64) -> FrameNote {
        FrameNote {
            camera: camera.into(),
            seq,
            path: format!("/f/{camera}/{seq:08}.jpg"),
            captured_at: String::new(),
            pts_ms: seq as i64 * 1000,
            width: 2,
            height: 2,
            captured: Some(SystemTime::now()),
            jpeg: None,
        }
    }

    fn seqs(rx: &mut mpsc::Receiver<Outbound>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Outbound::Frame(f) = m {
                out.push(f.seq);
            }
        }
        out
    }

    #[test]
    fn busy_processor_gets_the_newest_frame_not_a_backlog() {
        let (d, metrics) = hub();
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("slow", 1, None), tx);
        for seq in 1..=5 {
            d.publish(note("cam", seq));
        }
        assert_eq!(seqs(&mut rx), [1]);
        d.ack(id, "cam", 1, &[]);
        assert_eq!(seqs(&mut rx), [5], "latest wins");
        let busy = metrics
            .dropped
            .with_label_values(&["cam", "slow", "processor_busy"])
            .get();
        assert_eq!(busy, 3);
    }

    #[test]
    fn a_fast_processor_is_not_held_back_by_a_slow_one() {
        let (d, _) = hub();
        let (slow_tx, mut slow_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (fast_tx, mut fast_rx) = mpsc::channel(OUTBOUND_QUEUE);
        d.register(hello("slow", 1, None), slow_tx);
        let fast = d.register(hello("fast", 1, None), fast_tx);
        let mut got = Vec::new();
        for seq in 1..=10 {
            d.publish(note("cam", seq));
            let s = seqs(&mut fast_rx);
            for seq in &s {
                d.ack(fast, "cam", *seq, &[]);
            }
            got.extend(s);
        }
        assert_eq!(got, (1..=10).collect::<Vec<_>>());
        assert_eq!(seqs(&mut slow_rx), [1]);
    }

    #[test]
    fn credits_are_per_camera_and_max_in_flight() {
        let (d, _) = hub();
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("p", 2, None), tx);
        d.publish(note("a", 1));
        d.publish(note("a", 2));
        d.publish(note("a", 3));
        d.publish(note("b", 1));
        assert_eq!(seqs(&mut rx), [1, 2, 1]);
        d.ack(id, "a", 2, &[]);
        assert_eq!(seqs(&mut rx), [3]);
        d.ack(id, "a", 99, &[]);
        assert!(seqs(&mut rx).is_empty(), "unknown acks free nothing");
    }

    #[test]
    fn per_processor_fps_subsamples() {
        let (d, _) = hub();
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("half", 4, Some(0.5)), tx);
        for seq in 1..=6 {
            d.publish(note("cam", seq));
            for s in seqs(&mut rx) {
                assert_eq!(s % 2, 1, "every other frame, got {s}");
                d.ack(id, "cam", s, &[]);
            }
        }
    }

    #[test]
    fn detections_become_metrics_and_recent_entries() {
        let metrics = FrameMetrics::unregistered();
        let detections = Arc::new(Detections::new(Limits::default()));
        let d = Dispatcher::new(metrics.clone(), detections.clone(), 1.0);
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("yolo", 1, None), tx);
        d.publish(note("cam", 1));
        assert_eq!(seqs(&mut rx), [1]);
        let dets = serde_json::json!([{"label":"person","confidence":0.9,"box":[1,2,3,4]}]);
        d.ack(
            id,
            "cam",
            1,
            dets.as_array().map(Vec::as_slice).unwrap_or_default(),
        );
        assert_eq!(
            metrics
                .detections
                .with_label_values(&["cam", "yolo", "person"])
                .get(),
            1
        );
        assert_eq!(detections.recent("cam").len(), 1);
        assert!(metrics.lag.with_label_values(&["cam", "yolo"]).get() >= 0.0);
    }

    #[test]
    fn a_processor_with_endless_labels_gets_64_series_and_other() {
        let metrics = FrameMetrics::unregistered();
        let detections = Arc::new(Detections::new(Limits::default()));
        let d = Dispatcher::new(metrics.clone(), detections.clone(), 1.0);
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("noisy", 1, None), tx);
        for seq in 1..=4u64 {
            d.publish(note("cam", seq));
            assert_eq!(seqs(&mut rx), [seq]);
            let dets: Vec<serde_json::Value> = (0..50)
                .map(|i| serde_json::json!({"label": format!("track-{seq}-{i}")}))
                .collect();
            d.ack(id, "cam", seq, &dets);
        }
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(metrics.detections.clone()))
            .expect("register");
        let series: Vec<(String, u64)> = registry
            .gather()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| {
                let label = m
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "label")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                (label, m.get_counter().get_value() as u64)
            })
            .collect();
        assert_eq!(series.len(), 64 + 1, "64 labels and other");
        let other = series.iter().find(|(l, _)| l == "other").map(|(_, n)| *n);
        assert_eq!(other, Some(4 * 50 - 64));
        assert_eq!(series.iter().map(|(_, n)| n).sum::<u64>(), 4 * 50);
    }

    #[test]
    fn a_stalled_processor_shows_growing_lag() {
        let (d, metrics) = hub();
        let (tx, _rx) = mpsc::channel(OUTBOUND_QUEUE);
        d.register(hello("stalled", 1, None), tx);
        d.publish(note("cam", 1));
        d.refresh_lag(SystemTime::now() + Duration::from_secs(30));
        let lag = metrics.lag.with_label_values(&["cam", "stalled"]).get();
        assert!(lag >= 30.0, "lag {lag}");
    }

    #[test]
    fn unregistering_frees_everything() {
        let (d, metrics) = hub();
        d.add_camera("cam");
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello("p", 1, None), tx);
        assert_eq!(metrics.connected.with_label_values(&["cam", "p"]).get(), 1);
        drop(rx);
        d.publish(note("cam", 1));
        d.unregister(id);
        assert_eq!(metrics.connected.with_label_values(&["cam", "p"]).get(), 0);
        assert_eq!(d.processors(), 0);
    }

    fn view(d: &Dispatcher, camera: &str) -> Vec<ProcessorStatus> {
        d.processor_status(camera, SystemTime::now())
    }

    fn names(list: &[ProcessorStatus]) -> Vec<(&str, bool)> {
        list.iter()
            .map(|p| (p.name.as_str(), p.connected))
            .collect()
    }

    #[test]
    fn each_camera_lists_its_subscribers_with_their_own_counts() {
        let (d, _) = hub();
        d.add_camera("a");
        d.add_camera("b");
        let (all_tx, mut all_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (a_tx, mut a_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let all = d.register(hello("yolo", 1, None), all_tx);
        d.register(hello_for("faces", &["a"], 2, Some(0.5)), a_tx);

        let a = view(&d, "a");
        assert_eq!(names(&a), [("faces", true), ("yolo", true)]);
        assert_eq!(names(&view(&d, "b")), [("yolo", true)], "`*` counts for b");
        assert!(a
            .iter()
            .all(|p| p.frames_sent == 0 && p.lag_seconds.is_none()));

        // yolo: a1 sent, a2 replaced by a3 while it has no credit. faces (0.5 fps): a1, a3.
        for seq in 1..=3 {
            d.publish(note("a", seq));
        }
        d.publish(note("b", 1));
        assert_eq!(seqs(&mut all_rx), [1, 1]);
        assert_eq!(seqs(&mut a_rx), [1, 3]);
        let [faces, yolo] = &view(&d, "a")[..] else {
            panic!("two processors on a");
        };
        assert_eq!(
            (faces.in_flight, faces.max_in_flight, faces.fps),
            (2, 2, 0.5)
        );
        assert_eq!(
            (faces.frames_sent, faces.frames_acked, faces.frames_dropped),
            (2, 0, 0)
        );
        assert_eq!((yolo.in_flight, yolo.max_in_flight, yolo.fps), (1, 1, 1.0));
        assert_eq!(
            (yolo.frames_sent, yolo.frames_acked, yolo.frames_dropped),
            (1, 0, 1)
        );
        assert!(yolo.lag_seconds.is_none() && yolo.last_ack_at.is_none());

        d.ack(all, "a", 1, &[]);
        assert_eq!(seqs(&mut all_rx), [3], "the waiting frame follows the ack");
        let yolo = view(&d, "a").pop().unwrap();
        assert_eq!(
            (yolo.in_flight, yolo.frames_sent, yolo.frames_acked),
            (1, 2, 1)
        );
        assert!(yolo.last_ack_at.is_some());
        assert!(yolo.lag_seconds.is_some(), "lag known after the first ack");

        let on_b = view(&d, "b");
        assert_eq!(
            (on_b[0].frames_sent, on_b[0].frames_acked, on_b[0].in_flight),
            (1, 0, 1),
            "counts are per camera"
        );
    }

    #[test]
    fn a_pool_reconnect_shows_as_lag_until_its_first_ack() {
        let (d, metrics) = hub();
        d.add_camera("a");
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello_for("pool", &["a"], 1, None), tx);
        let lag = || metrics.lag.with_label_values(&["a", "pool"]).get();
        // The previous connection's newest acknowledged frame was captured 3 s ago.
        d.carry_lag(id, "a", SystemTime::now() - Duration::from_secs(3));
        d.refresh_lag(SystemTime::now());
        assert!(lag() >= 3.0, "the gap counts before any frame: {}", lag());
        assert!(view(&d, "a")[0].lag_seconds >= Some(Duration::from_secs(3)));

        d.publish(note("a", 1));
        assert_eq!(seqs(&mut rx), [1]);
        d.ack(id, "a", 1, &[]);
        assert!(
            lag() >= 3.0,
            "the first ack after the gap reports it: {}",
            lag()
        );
        d.publish(note("a", 2));
        assert_eq!(seqs(&mut rx), [2]);
        d.ack(id, "a", 2, &[]);
        assert!(lag() < 1.0, "then live again: {}", lag());
    }

    #[test]
    fn a_disconnected_processor_stays_listed_for_ten_minutes() {
        let (d, _) = hub();
        d.add_camera("a");
        d.add_camera("b");
        let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = d.register(hello_for("faces", &["a"], 1, None), tx);
        d.publish(note("a", 1));
        d.ack(id, "a", 1, &[]);
        d.publish(note("a", 2));
        assert_eq!(seqs(&mut rx), [1, 2]);
        d.unregister(id);

        let gone = view(&d, "a");
        assert_eq!(names(&gone), [("faces", false)]);
        let gone = &gone[0];
        assert!(gone.disconnected_at.is_some());
        assert_eq!((gone.frames_sent, gone.frames_acked), (2, 1));
        assert_eq!(gone.in_flight, 0);
        assert!(gone.last_ack_at.is_some() && gone.lag_seconds.is_none());
        assert!(view(&d, "b").is_empty(), "never subscribed to b");

        let later = SystemTime::now() + roster::DEPARTED_FOR + Duration::from_secs(1);
        assert!(d.processor_status("a", later).is_empty());
    }

    #[test]
    fn disconnected_entries_are_bounded_and_a_reconnect_replaces_one() {
        let (d, _) = hub();
        d.add_camera("a");
        let extra = 4;
        for i in 0..roster::KEEP_DEPARTED + extra {
            let (tx, _rx) = mpsc::channel(OUTBOUND_QUEUE);
            let id = d.register(hello(&format!("p{i:02}"), 1, None), tx);
            d.unregister(id);
        }
        let list = view(&d, "a");
        assert_eq!(list.len(), roster::KEEP_DEPARTED);
        assert_eq!(
            list[0].name,
            format!("p{extra:02}"),
            "the oldest are dropped"
        );

        let (tx, _rx) = mpsc::channel(OUTBOUND_QUEUE);
        d.register(hello("p10", 1, None), tx);
        let list = view(&d, "a");
        assert_eq!(list.len(), roster::KEEP_DEPARTED);
        let p10: Vec<_> = list
            .iter()
            .filter(|p| p.name == "p10")
            .map(|p| p.connected)
            .collect();
        assert_eq!(p10, [true], "connected again, its departure hidden");
    }
}
