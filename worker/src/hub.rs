//! The stream hub: one channel per camera, one producer (the RTMP session) and any number
//! of independent subscribers (LL-HLS, recording, frames).
//!
//! Queue policy: each channel is one bounded ring (`tokio::sync::broadcast`, [`RING`] events).
//! A subscriber that falls behind loses the oldest events (drop-oldest), is told so once with
//! [`Event::Gap`], and then receives nothing until the next video keyframe, so it never sees
//! media with a hole in it. The producer never waits for a subscriber.
//!
//! A late subscriber starts with the codec configuration and the current GOP, so it can
//! begin decoding or muxing at once.
//!
//! Lifetime: a channel exists from its first publish until it is released (see
//! `lifecycle.rs`): at most `max_cameras` exist at once, a camera idle (no publisher) for the
//! grace period is marked releasing, its channel closed (every subscriber's `recv` then
//! returns `None`), and it is forgotten once every stage let go of it. A pulled camera
//! (`--pull`, see `rtsp/`) is created at start-up by [`Hub::pull`] and pinned: it is never
//! released, and only its pull task may publish to it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::media::{AudioConfig, Frame, StreamInfo, Track, VideoConfig};
use crate::stats::{CameraStats, StatsSnapshot};

/// Events per camera kept in the ring: about 6 s of 30 fps video with AAC audio.
pub const RING: usize = 512;
/// The cached GOP is dropped (late subscribers then wait for the next keyframe) past this many
/// frames, so a publisher that never sends a keyframe cannot grow memory without bound.
pub const MAX_GOP_FRAMES: usize = 900;

/// What a subscriber receives, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// A publish session started or changed its codec configuration; the frames that follow use it.
    Start(Arc<StreamInfo>),
    /// One access unit.
    Frame(Arc<Frame>),
    /// This subscriber fell behind and lost `dropped` events; the next frame is a keyframe.
    Gap { dropped: u64 },
    /// The publisher went away. A later `Start` begins a new session.
    End,
}

#[derive(Debug, Clone)]
enum Item {
    Frame(Arc<StreamInfo>, Arc<Frame>),
    Start(Arc<StreamInfo>),
    End,
}

/// Cameras a worker holds at once unless told otherwise (`--max-cameras`).
pub const DEFAULT_MAX_CAMERAS: usize = 256;

/// Why a publish attempt was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("camera {camera:?} is already live (publisher {current})")]
    AlreadyLive { camera: String, current: SocketAddr },
    #[error("camera {camera:?} refused: this worker already holds {max} cameras (--max-cameras {max}); an idle camera frees its place when it is released")]
    TooManyCameras { camera: String, max: usize },
    #[error("camera {camera:?} was idle and is being released; publish again in a moment")]
    Releasing { camera: String },
    #[error(
        "camera {camera:?} is pulled from its RTSP source (--pull); it takes no RTMP publisher"
    )]
    Pulled { camera: String },
}

/// Released cameras the hub remembers for the API (oldest forgotten first).
pub const RELEASED_KEPT: usize = 256;

/// A camera the worker released after it stayed without a publisher for the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub camera: String,
    /// When the worker released it.
    pub at: SystemTime,
    /// When its last publisher left.
    pub last_seen: Option<SystemTime>,
}

/// All cameras known to this worker.
pub struct Hub {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// Recently released cameras, newest last, at most [`RELEASED_KEPT`]: so that the API can
    /// tell "released after its publisher left" from "never published".
    released: Mutex<VecDeque<Released>>,
    /// Bumped whenever a camera is added or loses its publisher, so the lifecycle task can
    /// attach stages to new cameras and schedule the release of idle ones.
    generation: watch::Sender<u64>,
    max_cameras: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            released: Mutex::new(VecDeque::new()),
            generation: watch::Sender::new(0),
            max_cameras: DEFAULT_MAX_CAMERAS,
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A hub that holds at most `max_cameras` cameras at once (at least one).
    pub fn with_max_cameras(max_cameras: usize) -> Arc<Self> {
        Arc::new(Self {
            max_cameras: max_cameras.max(1),
            ..Self::default()
        })
    }

    fn lock_channels(&self) -> MutexGuard<'_, HashMap<String, Arc<Channel>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_released(&self) -> MutexGuard<'_, VecDeque<Released>> {
        self.released.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts a new camera's channel (the hub lock held); its name is no longer "released".
    fn insert(&self, channels: &mut HashMap<String, Arc<Channel>>, channel: Arc<Channel>) {
        self.lock_released().retain(|r| r.camera != channel.name);
        channels.insert(channel.name.clone(), channel);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The record of `camera`'s release, while it is among the last [`RELEASED_KEPT`] released
    /// and has not been published again.
    pub fn released(&self, camera: &str) -> Option<Released> {
        self.lock_released()
            .iter()
            .rev()
            .find(|r| r.camera == camera)
            .cloned()
    }

    /// Starts publishing `camera` from `peer`. With `takeover`, a live publisher is cancelled
    /// and replaced; otherwise a live camera refuses a second publisher. A new camera is
    /// refused while the worker holds `max_cameras`.
    pub fn publish(
        &self,
        camera: &str,
        peer: SocketAddr,
        takeover: bool,
    ) -> Result<Publisher, PublishError> {
        self.publish_as(camera, peer, takeover, false)
    }

    /// Creates the pulled camera `camera` (if new) and pins it: it is never released, and
    /// RTMP publishers are refused for it ([`PublishError::Pulled`]). Counts under
    /// `max_cameras` like any camera.
    pub fn pull(&self, camera: &str) -> Result<(), PublishError> {
        let mut channels = self.lock_channels();
        if let Some(c) = channels.get(camera) {
            c.lock().pulled = true;
            return Ok(());
        }
        if channels.len() >= self.max_cameras {
            return Err(PublishError::TooManyCameras {
                camera: camera.to_string(),
                max: self.max_cameras,
            });
        }
        let c = Arc::new(Channel::new(camera));
        c.lock().pulled = true;
        self.insert(&mut channels, c);
        Ok(())
    }

    /// Starts a session of the pulled camera `camera` (see [`Hub::pull`]) from its source at
    /// `peer`; the camera must have been pulled first.
    pub fn publish_pulled(
        &self,
        camera: &str,
        peer: SocketAddr,
    ) -> Result<Publisher, PublishError> {
        self.publish_as(camera, peer, false, true)
    }

    fn publish_as(
        &self,
        camera: &str,
        peer: SocketAddr,
        takeover: bool,
        pulled: bool,
    ) -> Result<Publisher, PublishError> {
        // The hub lock is held throughout, so a camera cannot be released between being found
        // and getting its publisher (lock order: hub, then channel).
        let mut channels = self.lock_channels();
        let channel = match channels.get(camera) {
            Some(c) => c.clone(),
            // Only `Hub::pull` creates a pulled camera (a pull never outlives its camera).
            None if pulled => {
                return Err(PublishError::Pulled {
                    camera: camera.to_string(),
                })
            }
            None => {
                if channels.len() >= self.max_cameras {
                    return Err(PublishError::TooManyCameras {
                        camera: camera.to_string(),
                        max: self.max_cameras,
                    });
                }
                let c = Arc::new(Channel::new(camera));
                self.insert(&mut channels, c.clone());
                c
            }
        };
        let cancel = CancellationToken::new();
        let session = {
            let mut state = channel.lock();
            if state.releasing {
                return Err(PublishError::Releasing {
                    camera: camera.to_string(),
                });
            }
            if state.pulled != pulled {
                return Err(PublishError::Pulled {
                    camera: camera.to_string(),
                });
            }
            if let Some(current) = &state.publisher {
                if !takeover {
                    return Err(PublishError::AlreadyLive {
                        camera: camera.to_string(),
                        current: current.peer,
                    });
                }
                current.cancel.cancel();
                channel.end_session(&mut state);
            }
            state.session += 1;
            state.idle_since = None;
            state.publisher = Some(PublisherSlot {
                peer,
                cancel: cancel.clone(),
                session: state.session,
            });
            state.stats.on_publish(peer, SystemTime::now());
            state.session
        };
        drop(channels);
        Ok(Publisher {
            session,
            channel,
            cancel,
            hub_changed: self.generation.clone(),
        })
    }

    /// The channel of `camera`, created (without a publisher) on first use, ignoring the cap.
    #[cfg(test)]
    pub fn channel(&self, camera: &str) -> Arc<Channel> {
        let mut channels = self.lock_channels();
        if let Some(c) = channels.get(camera) {
            return c.clone();
        }
        let channel = Arc::new(Channel::new(camera));
        self.insert(&mut channels, channel.clone());
        channel
    }

    /// The channel of `camera`, unless it is unknown or being released.
    pub fn get(&self, camera: &str) -> Option<Arc<Channel>> {
        let channels = self.lock_channels();
        channels
            .get(camera)
            .filter(|c| !c.lock().releasing)
            .cloned()
    }

    /// All channels not being released, sorted by camera name.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        let channels = self.lock_channels();
        let mut all: Vec<_> = channels
            .values()
            .filter(|c| !c.lock().releasing)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Cameras held, including those being released (what `max_cameras` counts).
    pub fn len(&self) -> usize {
        self.lock_channels().len()
    }

    /// True when the hub holds no camera.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever a camera is added or loses its publisher; see [`Hub::channels`] and
    /// [`Hub::next_release`].
    pub fn watch_cameras(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// When the next camera without a publisher becomes due for release after `grace`
    /// (`None` while every camera is live or already releasing).
    pub fn next_release(&self, grace: Duration) -> Option<Instant> {
        let channels = self.lock_channels();
        channels
            .values()
            .filter_map(|c| {
                let state = c.lock();
                (!state.releasing && !state.pulled).then_some(state.idle_since?)
            })
            .min()
            .map(|idle| idle + grace)
    }

    /// Marks every camera idle for at least `grace` at `now` as releasing and closes its
    /// channel: publishers are refused for it (`Releasing`) and it leaves the API until
    /// [`Hub::forget`] removes it. Returns the released channels.
    pub fn begin_release(&self, now: Instant, grace: Duration) -> Vec<Arc<Channel>> {
        let channels = self.lock_channels();
        let mut due: Vec<Arc<Channel>> = Vec::new();
        for c in channels.values() {
            let mut state = c.lock();
            let idle_for = state.idle_since.map(|t| now.saturating_duration_since(t));
            if !state.releasing
                && !state.pulled
                && state.publisher.is_none()
                && idle_for >= Some(grace)
            {
                state.releasing = true;
                state.close();
                due.push(c.clone());
            }
        }
        due.sort_by(|a, b| a.name.cmp(&b.name));
        due
    }

    /// Closes every channel (worker shutdown): subscribers blocked on the ring wake up and end.
    pub fn close_all(&self) {
        for c in self.lock_channels().values() {
            c.lock().close();
        }
    }

    /// Removes a released camera; its name can be published again as a new camera. The
    /// release is remembered (see [`Hub::released`]).
    pub fn forget(&self, camera: &str) {
        let mut channels = self.lock_channels();
        if !channels.get(camera).is_some_and(|c| c.lock().releasing) {
            return;
        }
        let Some(channel) = channels.remove(camera) else {
            return;
        };
        let last_seen = channel.lock().stats.last_seen();
        let mut released = self.lock_released();
        released.retain(|r| r.camera != camera);
        if released.len() >= RELEASED_KEPT {
            released.pop_front();
        }
        released.push_back(Released {
            camera: camera.to_string(),
            at: SystemTime::now(),
            last_seen,
        });
    }
}

struct PublisherSlot {
    peer: SocketAddr,
    cancel: CancellationToken,
    session: u64,
}

struct ChannelState {
    /// The ring's sending side; `None` once the channel is closed (released or shut down).
    tx: Option<broadcast::Sender<Item>>,
    /// Since when the camera has had no publisher (`None` while live).
    idle_since: Option<Instant>,
    /// Released: refused to publishers, hidden from the API, about to be forgotten.
    releasing: bool,
    /// Pulled from an RTSP source (`--pull`): pinned, and published only by its pull task.
    pulled: bool,
    info: Option<Arc<StreamInfo>>,
    /// Frames since the last video keyframe (or every audio frame of an audio-only stream).
    gop: Vec<Arc<Frame>>,
    gop_starts_clean: bool,
    publisher: Option<PublisherSlot>,
    session: u64,
    next_info_version: u64,
    stats: CameraStats,
}

impl ChannelState {
    /// Sends `item` to every subscriber; nothing once the channel is closed.
    fn send(&self, item: Item) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(item);
        }
    }

    /// Drops the sending side: subscribers read what is left, then get `None`.
    fn close(&mut self) {
        self.tx = None;
    }
}

/// One camera: its ring, its current configuration and GOP, and its statistics.
pub struct Channel {
    name: String,
    state: Mutex<ChannelState>,
}

impl Channel {
    fn new(name: &str) -> Self {
        let (tx, _) = broadcast::channel(RING);
        Self {
            name: name.to_string(),
            state: Mutex::new(ChannelState {
                tx: Some(tx),
                idle_since: Some(Instant::now()),
                releasing: false,
                pulled: false,
                info: None,
                gop: Vec::new(),
                gop_starts_clean: false,
                publisher: None,
                session: 0,
                next_info_version: 1,
                stats: CameraStats::default(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, ChannelState> {
        // A panic while holding this lock cannot leave the state half-written in a way that
        // matters more than losing the camera, so recover the data rather than poison forever.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes at the current position: the configuration and current GOP come first.
    pub fn subscribe(&self) -> Subscriber {
        let state = self.lock();
        let mut backlog = VecDeque::new();
        let mut delivered = None;
        if let Some(info) = &state.info {
            backlog.push_back(Event::Start(info.clone()));
            delivered = Some(info.version);
            if state.gop_starts_clean {
                backlog.extend(state.gop.iter().cloned().map(Event::Frame));
            }
        }
        let resync = state.info.is_some() && !state.gop_starts_clean;
        let rx = match &state.tx {
            Some(tx) => tx.subscribe(),
            // Closed: a receiver whose sender is gone reads `None` at once.
            None => broadcast::channel(1).1,
        };
        Subscriber {
            rx,
            backlog,
            delivered_info: delivered,
            resync,
        }
    }

    /// True while a publisher is connected.
    pub fn is_live(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// The current codec configuration, while live.
    pub fn info(&self) -> Option<Arc<StreamInfo>> {
        self.lock().info.clone()
    }

    /// A copy of the camera's statistics.
    pub fn stats(&self) -> StatsSnapshot {
        let state = self.lock();
        state.stats.snapshot(state.publisher.is_some())
    }

    fn end_session(&self, state: &mut ChannelState) {
        state.publisher = None;
        state.info = None;
        state.gop.clear();
        state.gop_starts_clean = false;
        state.stats.on_end();
        state.idle_since = Some(Instant::now());
        state.send(Item::End);
    }
}

/// The producing side of a channel, held by one RTMP session. Dropping it ends the session.
pub struct Publisher {
    channel: Arc<Channel>,
    session: u64,
    cancel: CancellationToken,
    /// Told when this session ends, so the camera's release can be scheduled.
    hub_changed: watch::Sender<u64>,
}

impl Publisher {
    pub fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// Cancelled when another publisher takes this camera over (`--takeover`).
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Sets a new codec configuration (or the first one) for the frames that follow.
    /// Returns false (and changes nothing) if the configuration is unchanged.
    pub fn set_info(&self, video: Option<VideoConfig>, audio: Option<AudioConfig>) -> bool {
        let mut state = self.channel.lock();
        if !self.owns(&state) {
            return false;
        }
        if let Some(cur) = &state.info {
            if cur.video == video && cur.audio == audio {
                return false;
            }
        }
        let info = Arc::new(StreamInfo {
            version: state.next_info_version,
            video,
            audio,
        });
        state.next_info_version += 1;
        state.info = Some(info.clone());
        // Frames cached under the old configuration cannot be decoded with the new one.
        state.gop.clear();
        state.gop_starts_clean = false;
        state.stats.on_info(&info);
        state.send(Item::Start(info));
        true
    }

    /// Publishes one access unit. Frames before the first configuration are discarded.
    pub fn push(&self, frame: Frame) {
        let mut state = self.channel.lock();
        if !self.owns(&state) {
            return;
        }
        let Some(info) = state.info.clone() else {
            return;
        };
        state.stats.on_frame(&frame);
        let frame = Arc::new(frame);
        let starts_gop = is_random_access(&info, &frame);
        if starts_gop {
            state.gop.clear();
            state.gop_starts_clean = true;
        }
        if state.gop.len() >= MAX_GOP_FRAMES {
            state.gop.clear();
            state.gop_starts_clean = false;
        }
        if state.gop_starts_clean {
            state.gop.push(frame.clone());
        }
        state.send(Item::Frame(info, frame));
    }

    /// Records that the publisher sent something Kamera cannot use (shown in the API).
    pub fn report_unsupported(&self, track: Track, what: &str) {
        let mut state = self.channel.lock();
        if self.owns(&state) {
            state.stats.on_unsupported(track, what);
        }
    }

    /// Counts received bytes (RTMP payload) for the ingest statistics.
    pub fn count_bytes(&self, n: usize) {
        let mut state = self.channel.lock();
        if self.owns(&state) {
            state.stats.on_bytes(n);
        }
    }

    fn owns(&self, state: &ChannelState) -> bool {
        state
            .publisher
            .as_ref()
            .is_some_and(|p| p.session == self.session)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut state = self.channel.lock();
        if self.owns(&state) {
            self.channel.end_session(&mut state);
            drop(state);
            self.hub_changed.send_modify(|g| *g += 1);
        }
    }
}

/// A frame a consumer can start from after losing data: a video keyframe, or any audio frame
/// of a stream without video.
fn is_random_access(info: &StreamInfo, frame: &Frame) -> bool {
    frame.keyframe && (frame.track == Track::Video || info.video.is_none())
}

/// The consuming side: reads at its own pace, never blocks the producer.
pub struct Subscriber {
    rx: broadcast::Receiver<Item>,
    backlog: VecDeque<Event>,
    delivered_info: Option<u64>,
    /// Dropping frames until the next random access point.
    resync: bool,
}

impl Subscriber {
    /// The next event, or `None` when the hub is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                return Some(ev);
            }
            let received = self.rx.recv().await;
            if let Some(outcome) = self.on_received(received) {
                return outcome;
            }
        }
    }

    /// Like [`Subscriber::recv`] for blocking threads (recording, decoding).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                return Some(ev);
            }
            let received = self.rx.blocking_recv();
            if let Some(outcome) = self.on_received(received) {
                return outcome;
            }
        }
    }

    /// What to return for one ring read: `None` to read again (a filtered frame).
    fn on_received(
        &mut self,
        received: Result<Item, broadcast::error::RecvError>,
    ) -> Option<Option<Event>> {
        match received {
            Ok(item) => self.accept(item).map(Some),
            Err(broadcast::error::RecvError::Lagged(dropped)) => {
                self.resync = true;
                Some(Some(Event::Gap { dropped }))
            }
            Err(broadcast::error::RecvError::Closed) => Some(None),
        }
    }

    fn accept(&mut self, item: Item) -> Option<Event> {
        match item {
            Item::Start(info) => {
                self.delivered_info = Some(info.version);
                // A new configuration starts clean only at its first keyframe.
                self.resync = true;
                Some(Event::Start(info))
            }
            Item::End => {
                self.delivered_info = None;
                self.resync = false;
                Some(Event::End)
            }
            Item::Frame(info, frame) => {
                if self.resync {
                    if !is_random_access(&info, &frame) {
                        return None;
                    }
                    self.resync = false;
                }
                if self.delivered_info != Some(info.version) {
                    // The `Start` of this configuration was lost in a gap: deliver it first.
                    self.delivered_info = Some(info.version);
                    self.backlog.push_back(Event::Frame(frame));
                    return Some(Event::Start(info));
                }
                Some(Event::Frame(frame))
            }
        }
    }
}

#[cfg(test)]
mod tests;
