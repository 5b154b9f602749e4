//! One camera's extraction: an async sampler task reads the hub and hands the access units
//! worth decoding to a dedicated extractor thread (decode → JPEG → files → notify).
//!
//! Queue policy: the sampler → extractor queue holds [`JOB_QUEUE`] packets. When it is full
//! the packet is dropped (`extract_behind`), and decoding starts over at the next keyframe,
//! so ingest and the other stages never wait for a slow decoder.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::decode::{self, Decoder, Picture};
use super::dispatch::Dispatcher;
use super::jpeg::Encoder;
use super::metrics::FrameMetrics;
use super::protocol::FrameNote;
use super::sampler::{Decision, Mode, Sampler};
use super::store::FrameStore;
use super::CameraFrames;
use crate::config::FrameSampling;
use crate::drops::DropLog;
use crate::hub::{Channel, Event};
use crate::media::{Frame, StreamInfo, Track};

/// Packets queued for the extractor thread: about two seconds of 30 fps video.
pub const JOB_QUEUE: usize = 64;
/// Decoded-picture targets remembered in all-frames mode (pictures awaited by PTS).
const MAX_TARGETS: usize = 16;

/// What the extractor needs, fixed for the worker's life.
#[derive(Clone)]
pub struct Settings {
    pub fps: f64,
    pub sampling: FrameSampling,
    /// Skip the loop filter on frames decoded only as references (`--frame-skip-loop-filter`).
    pub skip_loop_filter: bool,
    pub quality: u8,
    pub max_width: Option<u32>,
    pub keep: usize,
    pub frames_dir: PathBuf,
}

/// What the sampler hands the extractor thread.
enum Work {
    Decode(Job),
    /// The publisher left: free the decoder (megabytes at 1080p) while the camera is idle.
    Idle,
}

struct Job {
    info: Arc<StreamInfo>,
    frame: Arc<Frame>,
    emit: bool,
    reset: bool,
    mode: Mode,
    received: Instant,
    captured: SystemTime,
}

/// Runs one camera's sampler until `shutdown` or the hub goes away; joins its thread.
pub async fn run(
    channel: Arc<Channel>,
    settings: Settings,
    camera: Arc<CameraFrames>,
    metrics: FrameMetrics,
    dispatcher: Arc<Dispatcher>,
    shutdown: CancellationToken,
) {
    let name = channel.name().to_string();
    let store = match FrameStore::open(settings.frames_dir.join(&name), settings.keep) {
        Ok(s) => s,
        Err(e) => {
            warn!(camera = %name, error = %e, "frames disabled for this camera");
            return;
        }
    };
    let (tx, rx) = mpsc::sync_channel::<Work>(JOB_QUEUE);
    let extractor = Extractor {
        camera: name.clone(),
        settings: settings.clone(),
        store,
        state: camera.clone(),
        metrics: metrics.clone(),
        dispatcher,
        seq: 0,
        failures: DropLog::default(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("frames-{name}"))
        .spawn(move || extractor.run(rx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            warn!(camera = %name, error = %e, "cannot start the frame extractor thread");
            return;
        }
    };

    let mut sub = channel.subscribe();
    let mut sampler = Sampler::new(settings.fps, settings.sampling);
    let mut info: Option<Arc<StreamInfo>> = None;
    let behind = metrics
        .dropped
        .with_label_values(&[&name, "", "extract_behind"]);
    let mut behind_log = DropLog::default();
    let mut fell_behind = |n: u64| {
        if let Some(dropped) = behind_log.count(&behind, n, Instant::now()) {
            warn!(camera = %name, dropped, "frame extraction fell behind the stream (slow decoder?); frames skipped until the next keyframe");
        }
    };
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = sub.recv() => ev,
        };
        match event {
            None => break,
            Some(Event::Start(i)) => {
                sampler.restart();
                camera.set_mode(None, None);
                info = Some(i);
            }
            Some(Event::End) => {
                sampler.restart();
                camera.set_mode(None, None);
                info = None;
                // Best effort: a full queue means the decoder is freed at release instead.
                let _ = tx.try_send(Work::Idle);
            }
            Some(Event::Gap { .. }) => {
                sampler.lost();
                fell_behind(1);
            }
            Some(Event::Frame(frame)) => {
                let Some(info) = &info else { continue };
                if frame.track != Track::Video || info.video.is_none() {
                    continue;
                }
                let decision = sampler.on_video(frame.dts, frame.keyframe);
                camera.set_mode(Some(sampler.mode()), sampler.gop_ms());
                let Decision::Decode { emit, reset } = decision else {
                    continue;
                };
                let job = Job {
                    info: info.clone(),
                    frame,
                    emit,
                    reset,
                    mode: sampler.mode(),
                    received: Instant::now(),
                    captured: SystemTime::now(),
                };
                match tx.try_send(Work::Decode(job)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        sampler.lost();
                        fell_behind(1);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
    }
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

struct Extractor {
    camera: String,
    settings: Settings,
    store: FrameStore,
    state: Arc<CameraFrames>,
    metrics: FrameMetrics,
    dispatcher: Arc<Dispatcher>,
    seq: u64,
    failures: DropLog,
}

impl Extractor {
    fn run(mut self, rx: Receiver<Work>) {
        decode::init();
        let mut encoder = match Encoder::new(self.settings.quality, self.settings.max_width) {
            Ok(e) => e,
            Err(e) => {
                warn!(camera = %self.camera, error = %e, "frames disabled: no JPEG encoder");
                return;
            }
        };
        let mut decoder: Option<(u64, Decoder)> = None;
        let mut targets: VecDeque<(i64, Instant, SystemTime)> = VecDeque::new();
        while let Ok(work) = rx.recv() {
            let job = match work {
                Work::Decode(job) => job,
                Work::Idle => {
                    decoder = None;
                    targets.clear();
                    continue;
                }
            };
            let Some(video) = &job.info.video else {
                continue;
            };
            if decoder.as_ref().map(|(v, _)| *v) != Some(job.info.version) {
                match Decoder::new(video) {
                    Ok(d) => {
                        info!(camera = %self.camera, width = video.width, height = video.height, "frame decoder ready");
                        decoder = Some((job.info.version, d));
                        targets.clear();
                    }
                    Err(e) => {
                        self.failed("decode_error", &e);
                        continue;
                    }
                }
            }
            let Some((_, dec)) = decoder.as_mut() else {
                continue;
            };
            if job.reset {
                dec.reset();
                targets.clear();
            }
            match job.mode {
                Mode::KeyframesOnly => {
                    if !job.emit {
                        continue;
                    }
                    match dec.decode_keyframe(&job.frame) {
                        Ok(Some(p)) => self.emit(&mut encoder, &p, job.received, job.captured),
                        Ok(None) => self.failed("decode_error", &"keyframe gave no picture"),
                        Err(e) => self.failed("decode_error", &e),
                    }
                }
                Mode::AllFrames => {
                    if job.emit {
                        if targets.len() >= MAX_TARGETS {
                            targets.pop_front();
                        }
                        targets.push_back((job.frame.pts, job.received, job.captured));
                    }
                    dec.skip_loop_filter(self.settings.skip_loop_filter && !job.emit);
                    match dec.decode(&job.frame) {
                        Ok(pictures) => {
                            for p in pictures {
                                let Some(pos) = targets.iter().position(|t| t.0 == p.pts) else {
                                    continue;
                                };
                                // Older targets can no longer come out of the decoder.
                                let (_, received, captured) = targets[pos];
                                targets.drain(..=pos);
                                self.emit(&mut encoder, &p, received, captured);
                            }
                        }
                        Err(e) => self.failed("decode_error", &e),
                    }
                }
            }
        }
    }

    fn emit(
        &mut self,
        encoder: &mut Encoder,
        p: &Picture,
        received: Instant,
        captured: SystemTime,
    ) {
        let jpeg = match encoder.encode(&p.frame) {
            Ok(j) => j,
            Err(e) => return self.failed("encode_error", &e),
        };
        self.seq += 1;
        let path = match self.store.write(self.seq, &jpeg.data) {
            Ok(p) => p,
            Err(e) => return self.failed("write_error", &e),
        };
        self.metrics
            .extracted
            .with_label_values(&[&self.camera])
            .inc();
        self.metrics
            .extract_seconds
            .with_label_values(&[&self.camera])
            .observe(received.elapsed().as_secs_f64());
        let captured_at = humantime::format_rfc3339_millis(captured).to_string();
        let data = bytes::Bytes::from(jpeg.data);
        self.state.set_latest(
            self.seq,
            data.clone(),
            jpeg.width,
            jpeg.height,
            captured_at.clone(),
        );
        self.dispatcher.publish(FrameNote {
            camera: self.camera.clone(),
            seq: self.seq,
            path: path.to_string_lossy().into_owned(),
            captured_at,
            pts_ms: p.pts,
            width: jpeg.width,
            height: jpeg.height,
            captured: Some(captured),
            jpeg: Some(data),
        });
    }

    fn failed(&mut self, reason: &'static str, error: &dyn std::fmt::Display) {
        let counter = self
            .metrics
            .dropped
            .with_label_values(&[&self.camera, "", reason]);
        self.state.count_error();
        // One throttle for all failure reasons: the line names the latest one.
        if let Some(dropped) = self.failures.count(&counter, 1, Instant::now()) {
            warn!(camera = %self.camera, reason, error = %error, dropped, "frames dropped");
        }
    }
}
