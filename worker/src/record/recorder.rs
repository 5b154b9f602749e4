//! The per-camera recorder: runs on its own thread, reads the hub, feeds the fMP4 fragmenter
//! and writes fragments to the current file, cutting files at the first keyframe at or after
//! each clock-aligned boundary. Disk trouble stops recording only: the recorder drops frames
//! (counted), retries with backoff and starts a new file at a keyframe when it can.
//!
//! Queue policy: the recorder reads the hub's ring directly; when the disk is slower than the
//! stream, the hub drops the oldest events for this subscriber and the recorder closes the
//! file and starts a new one at the next keyframe (counted as `lagged`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::catalog::unix_ms;
use super::disk;
use super::naming::{next_boundary_ms, WallClock};
use super::writer::{SegmentWriter, WriteError};
use super::{Shared, State};
use crate::drops::DropLog;
use crate::fmp4::{Fragment, Fragmenter};
use crate::hub::{Event, Subscriber};
use crate::media::{Frame, StreamInfo, Track};

/// First retry delay after a disk error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Repeated disk warnings (disk low, write errors) are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The stream clock may drift from the wall clock over a long session; past this the mapping
/// is re-anchored when a file is cut, so file names stay true.
const MAX_CLOCK_DRIFT_MS: i64 = 2_000;

/// Longest wait for start-up recovery before recording anyway (events queue in the hub's
/// ring meanwhile; recovery takes milliseconds).
const RECOVERY_WAIT: Duration = Duration::from_secs(10);

/// Reads `sub` until the hub closes or `shutdown` is cancelled, then closes the open file.
pub fn run(camera: String, mut sub: Subscriber, shared: Arc<Shared>, shutdown: CancellationToken) {
    shared.wait_recovered(RECOVERY_WAIT);
    let mut r = Recorder::new(camera, shared);
    while !shutdown.is_cancelled() {
        let Some(event) = sub.blocking_recv() else {
            break;
        };
        match event {
            Event::Start(info) => r.start(info),
            Event::Frame(frame) => r.frame(&frame),
            Event::Gap { dropped } => r.gap(dropped),
            Event::End => r.end(),
        }
    }
    r.finish("shutdown");
}

/// Why no file is open while frames arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paused {
    /// Not paused: waiting for the first keyframe.
    No,
    DiskLow,
    Error,
    Lagged,
}

impl Paused {
    fn reason(self) -> &'static str {
        match self {
            Paused::No => "waiting",
            Paused::DiskLow => "disk_low",
            Paused::Error => "error",
            Paused::Lagged => "lagged",
        }
    }
}

/// The file being written and the fragmenter feeding it. One fragmenter spans consecutive
/// files of a session, so a cut loses nothing and the files' timestamps join without gaps.
struct Output {
    frag: Fragmenter,
    file: SegmentWriter,
    boundary_ms: i64,
    /// Media end (DTS, ms) of what the file holds.
    end_dts: i64,
}

struct Recorder {
    camera: String,
    shared: Arc<Shared>,
    info: Option<Arc<StreamInfo>>,
    clock: Option<WallClock>,
    out: Option<Output>,
    paused: Paused,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_warn: Option<Instant>,
    lagged_log: DropLog,
}

impl Recorder {
    fn new(camera: String, shared: Arc<Shared>) -> Self {
        shared.set_state(&camera, |s| s.state = State::Idle);
        Self {
            camera,
            shared,
            info: None,
            clock: None,
            out: None,
            paused: Paused::No,
            retry_at: None,
            backoff: Duration::ZERO,
            last_warn: None,
            lagged_log: DropLog::default(),
        }
    }

    fn start(&mut self, info: Arc<StreamInfo>) {
        self.finish("new stream configuration");
        self.info = Some(info);
        self.clock = None;
    }

    fn end(&mut self) {
        self.finish("publisher left");
        self.info = None;
        self.clock = None;
        self.paused = Paused::No;
        self.shared
            .set_state(&self.camera, |s| s.state = State::Idle);
    }

    fn gap(&mut self, dropped: u64) {
        self.finish("recorder fell behind");
        self.paused = Paused::Lagged;
        let counter = self
            .shared
            .metrics
            .dropped
            .with_label_values(&[&self.camera, Paused::Lagged.reason()]);
        if let Some(dropped) = self.lagged_log.count(&counter, dropped, Instant::now()) {
            warn!(camera = %self.camera, dropped, "recording fell behind the stream (slow disk?); frames dropped, continuing in a new file at the next keyframe");
        }
    }

    fn frame(&mut self, frame: &Frame) {
        let Some(info) = self.info.clone() else {
            return;
        };
        let clock = *self
            .clock
            .get_or_insert_with(|| WallClock::new(unix_ms(SystemTime::now()), frame.dts));
        let cut_point = frame.keyframe && (frame.track == Track::Video || info.video.is_none());

        if let Some(out) = self.out.as_mut() {
            out.frag.push(frame);
            if cut_point {
                // Everything before this keyframe belongs to the current file.
                if let Some(f) = out.frag.fragment() {
                    self.write(f);
                }
                let due = self
                    .out
                    .as_ref()
                    .is_some_and(|o| clock.wall_ms(frame.dts) >= o.boundary_ms);
                if due {
                    self.cut(frame.dts);
                }
            } else if out.frag.pending_duration_ms() >= self.shared.settings.fragment_ms {
                if let Some(f) = out.frag.fragment() {
                    self.write(f);
                }
            }
            return;
        }

        if !cut_point || !self.may_open() {
            self.count_dropped(self.paused, 1);
            return;
        }
        self.open(&info, frame);
    }

    /// Whether a new file may be started now (backoff elapsed, disk above the floor).
    fn may_open(&mut self) -> bool {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        match disk::space(&self.shared.settings.root) {
            Ok(space) => {
                self.shared.metrics.disk_free.set(gauge(space.available));
                if !disk::may_write(self.shared.settings.min_free, space, 0) {
                    self.enter_disk_low(space.available);
                    return false;
                }
            }
            // The directory may not exist yet; the create will tell.
            Err(e) => debug!(camera = %self.camera, error = %e, "cannot read free space"),
        }
        true
    }

    fn open(&mut self, info: &Arc<StreamInfo>, frame: &Frame) {
        let mut frag = match Fragmenter::new(info.clone()) {
            Ok(f) => f,
            Err(e) => {
                // Not a disk problem: this configuration cannot be recorded; wait for the next.
                self.warn_throttled(
                    |camera| error!(camera, error = %e, "cannot record this stream"),
                );
                self.info = None;
                return;
            }
        };
        let start_ms = self.anchor(frame.dts);
        let shared = self.shared.clone();
        let s = &shared.settings;
        match SegmentWriter::create(
            &s.root,
            &self.camera,
            start_ms.div_euclid(1000),
            &frag.init_segment(),
            s.fsync,
        ) {
            Ok(file) => {
                frag.push(frame);
                self.opened(&file, start_ms);
                self.out = Some(Output {
                    frag,
                    boundary_ms: next_boundary_ms(start_ms, s.segment_ms),
                    end_dts: frame.dts,
                    file,
                });
                if self.paused != Paused::No {
                    info!(camera = %self.camera, after = self.paused.reason(), "recording resumed");
                }
                self.paused = Paused::No;
            }
            Err(e) => self.failed(e),
        }
    }

    /// The wall-clock time (ms) of `dts` for file names and cut points: the stream clock mapped
    /// to the wall clock once per session, re-anchored when the two drift apart.
    fn anchor(&mut self, dts: i64) -> i64 {
        let now = unix_ms(SystemTime::now());
        let clock = match self.clock {
            Some(c) if (c.wall_ms(dts) - now).abs() <= MAX_CLOCK_DRIFT_MS => c,
            Some(c) => {
                info!(camera = %self.camera, drift_ms = c.wall_ms(dts) - now, "stream clock drifted from the wall clock; re-anchoring file times");
                WallClock::new(now, dts)
            }
            None => WallClock::new(now, dts),
        };
        self.clock = Some(clock);
        clock.wall_ms(dts)
    }

    /// Closes the current file at `dts` (a keyframe already in the fragmenter) and continues
    /// in a new one.
    fn cut(&mut self, dts: i64) {
        let Some(mut out) = self.out.take() else {
            return;
        };
        let clock = self
            .clock
            .unwrap_or_else(|| WallClock::new(unix_ms(SystemTime::now()), dts));
        self.close_file(out.file, clock.wall_ms(dts));
        let start_ms = self.anchor(dts);
        if !self.may_open() {
            self.count_dropped(self.paused, 1);
            return;
        }
        let shared = self.shared.clone();
        let s = &shared.settings;
        match SegmentWriter::create(
            &s.root,
            &self.camera,
            start_ms.div_euclid(1000),
            &out.frag.init_segment(),
            s.fsync,
        ) {
            Ok(file) => {
                self.opened(&file, start_ms);
                out.file = file;
                out.boundary_ms = next_boundary_ms(start_ms, s.segment_ms);
                out.end_dts = dts;
                self.out = Some(out);
            }
            Err(e) => self.failed(e),
        }
    }

    /// Writes one fragment, unless that would take the disk below the floor.
    fn write(&mut self, f: Fragment) {
        let len = f.data.len() as u64;
        match disk::space(&self.shared.settings.root) {
            Ok(space) => {
                self.shared.metrics.disk_free.set(gauge(space.available));
                if !disk::may_write(self.shared.settings.min_free, space, len) {
                    self.stop_output();
                    self.enter_disk_low(space.available);
                    self.count_dropped(Paused::DiskLow, f.samples as u64);
                    return;
                }
            }
            Err(e) => debug!(camera = %self.camera, error = %e, "cannot read free space"),
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        match out.file.append(&f.data) {
            Ok(()) => {
                out.end_dts = f.start_ms + f.duration_ms;
                self.backoff = Duration::ZERO;
                self.shared
                    .metrics
                    .bytes
                    .with_label_values(&[&self.camera])
                    .inc_by(len);
                self.shared.set_state(&self.camera, |s| s.bytes += len);
            }
            Err(e) => {
                self.count_dropped(Paused::Error, f.samples as u64);
                self.failed(e);
            }
        }
    }

    /// Flushes the fragmenter into the current file and closes it.
    fn finish(&mut self, why: &str) {
        let Some(mut out) = self.out.take() else {
            return;
        };
        if let Some(f) = out.frag.flush() {
            self.out = Some(out);
            self.write(f);
            let Some(o) = self.out.take() else {
                return; // the write failed or hit the floor; the file is already closed
            };
            out = o;
        }
        debug!(camera = %self.camera, why, "closing recording");
        let end = self
            .clock
            .map_or_else(|| unix_ms(SystemTime::now()), |c| c.wall_ms(out.end_dts));
        self.close_file(out.file, end);
        self.shared.set_state(&self.camera, |s| {
            s.state = State::Idle;
            s.file = None;
        });
    }

    /// Closes the file as it is (no flush: its last fragment is already complete).
    fn stop_output(&mut self) {
        if let Some(out) = self.out.take() {
            let end = self
                .clock
                .map_or_else(|| unix_ms(SystemTime::now()), |c| c.wall_ms(out.end_dts));
            self.close_file(out.file, end);
        }
    }

    fn close_file(&mut self, file: SegmentWriter, end_ms: i64) {
        let part = file.part_path().to_path_buf();
        match file.close(end_ms) {
            Ok(Some(path)) => {
                info!(camera = %self.camera, file = %path.display(), "recording file closed");
                self.shared
                    .metrics
                    .files
                    .with_label_values(&[&self.camera])
                    .inc();
                self.shared.set_state(&self.camera, |s| s.files += 1);
            }
            Ok(None) => {
                debug!(camera = %self.camera, "removed a recording file closed before its first fragment")
            }
            Err(e) => self.failed(e),
        }
        self.shared.forget_open(&part);
        self.shared.retention_wake.notify_one();
    }

    fn opened(&mut self, file: &SegmentWriter, start_ms: i64) {
        self.shared.remember_open(file.part_path());
        let name = file
            .final_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        debug!(camera = %self.camera, file = ?name, "recording file opened");
        self.shared.set_state(&self.camera, |s| {
            s.state = State::Recording;
            s.file = name;
            s.file_start_ms = Some(start_ms);
        });
    }

    /// A disk operation failed: give up the current file (keeping what is complete), count
    /// the error, and retry at a keyframe after a growing delay.
    fn failed(&mut self, e: WriteError) {
        let reason = e.reason();
        self.shared
            .metrics
            .errors
            .with_label_values(&[&self.camera, reason])
            .inc();
        if let Some(out) = self.out.take() {
            let part = out.file.part_path().to_path_buf();
            let end = self
                .clock
                .map_or_else(|| unix_ms(SystemTime::now()), |c| c.wall_ms(out.end_dts));
            out.file.abandon(end);
            self.shared.forget_open(&part);
        }
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.paused = Paused::Error;
        let message = e.to_string();
        let retry = self.backoff;
        self.warn_throttled(|camera| error!(camera, reason, error = %message, retry_in = ?retry, "recording failed; other stages are unaffected"));
        self.shared.set_state(&self.camera, |s| {
            s.state = State::Error;
            s.file = None;
            s.last_error = Some(super::ErrorStatus {
                reason,
                message,
                at_ms: unix_ms(SystemTime::now()),
            });
        });
    }

    fn enter_disk_low(&mut self, available: u64) {
        if self.paused != Paused::DiskLow {
            self.last_warn = None;
        }
        self.paused = Paused::DiskLow;
        self.shared.retention_wake.notify_one();
        self.shared.set_state(&self.camera, |s| {
            s.state = State::DiskLow;
            s.file = None;
        });
        self.warn_throttled(|camera| {
            error!(camera, available, "free space on the recordings volume is below --min-free; recording stopped until space is freed")
        });
    }

    fn count_dropped(&self, why: Paused, frames: u64) {
        if why != Paused::No && frames > 0 {
            self.shared
                .metrics
                .dropped
                .with_label_values(&[&self.camera, why.reason()])
                .inc_by(frames);
        }
    }

    fn warn_throttled(&mut self, log: impl FnOnce(&str)) {
        if self.last_warn.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last_warn = Some(Instant::now());
            log(&self.camera);
        }
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
