//! One pulled camera's task: connect → `DESCRIBE` → `SETUP` (H.264 or H.265 video, AAC audio when the
//! camera has it) → `PLAY`, then every frame through the shared demuxer into the camera's hub
//! channel, exactly as an RTMP publisher's would go. Any failure ends the session; the task
//! tries again after an exponential backoff with full jitter, and logs failures at most once
//! per [`LOG_INTERVAL`](crate::drops::LOG_INTERVAL), so a wrong password or a dead camera
//! never floods the log. It stops when its token is cancelled (worker shutdown).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials as RtspCredentials, Demuxed, InitialTimestampPolicy, PlayOptions, Session,
    SessionOptions, SetupOptions, TeardownPolicy, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters, VideoParametersCodec};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::source::{CredentialsError, PullSpec};
use super::status::PullStatus;
use crate::config::PullTransport;
use crate::drops::DropLog;
use crate::frames::pool::backoff::Backoff;
use crate::hub::{Hub, PublishError, Publisher};
use crate::media::{Track, VideoConfig};
use crate::metrics::Metrics;
use crate::rtmp::demux::Demuxer;
use crate::rtmp::feed::deliver;
use crate::rtmp::{flv, h264, h265};

/// First backoff ceiling: a camera that dropped once is retried within this.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What every pull shares.
pub struct PullContext {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub credentials_dir: Option<PathBuf>,
    pub transport: PullTransport,
    /// Each step of the connection, and the gap between two frames, must take less than this.
    pub timeout: Duration,
}

/// Why an attempt or a session ended. Messages never hold the URL's user information (the
/// URL given to retina has none).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("the camera asks for credentials and none are configured (--pull-credentials-dir/<camera> or user:password in the URL): {message}")]
    CredentialsNeeded { message: String },
    #[error("the camera refused the credentials (401 Unauthorized): {message}")]
    Unauthorized { message: String },
    #[error("{step}: {message}")]
    Rtsp {
        step: &'static str,
        status: Option<u16>,
        message: String,
    },
    #[error("{step} took longer than {timeout:?}")]
    StepTimeout {
        step: &'static str,
        timeout: Duration,
    },
    #[error("the camera offers no video stream")]
    NoVideo,
    #[error("video codec {0:?} is not supported: Kamera takes H.264 and H.265")]
    UnsupportedVideo(String),
    #[error("invalid H.264 parameters: {0}")]
    H264Config(#[from] h264::H264Error),
    #[error("invalid H.265 parameters: {0}")]
    H265Config(#[from] h265::H265Error),
    #[error("no frame for {0:?}")]
    NoFrames(Duration),
    #[error("the camera ended the stream")]
    Ended,
    #[error(transparent)]
    Hub(#[from] PublishError),
}

impl PullError {
    /// The `reason` label of `kamera_pull_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Credentials(_) => "credentials",
            PullError::CredentialsNeeded { .. } | PullError::Unauthorized { .. } => "unauthorized",
            PullError::Rtsp {
                step: "DESCRIBE",
                status: None,
                ..
            } => "connect",
            PullError::Rtsp {
                status: Some(_), ..
            }
            | PullError::Hub(_) => "refused",
            PullError::Rtsp { .. } | PullError::H264Config(_) | PullError::H265Config(_) => {
                "protocol"
            }
            PullError::StepTimeout { .. } | PullError::NoFrames(_) => "timeout",
            PullError::NoVideo | PullError::UnsupportedVideo(_) => "unsupported_codec",
            PullError::Ended => "ended",
        }
    }

    fn rtsp(step: &'static str, had_credentials: bool) -> impl FnOnce(retina::Error) -> Self {
        move |e| {
            // retina's messages carry connection context on further lines; the first says why.
            let message = e.to_string().lines().next().unwrap_or_default().to_string();
            match e.status_code() {
                Some(401) if had_credentials => PullError::Unauthorized { message },
                Some(401) => PullError::CredentialsNeeded { message },
                status => PullError::Rtsp {
                    step,
                    status,
                    message,
                },
            }
        }
    }
}

/// Pulls `spec` into the hub until `shutdown`. The camera must already be pinned
/// ([`Hub::pull`]).
pub async fn run(
    spec: PullSpec,
    status: Arc<PullStatus>,
    ctx: Arc<PullContext>,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("rtsp", camera = %spec.camera);
    async move {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        let mut failures = DropLog::default();
        let mut puller = Puller {
            spec: &spec,
            ctx: &ctx,
            status: &status,
            reported_audio: false,
        };
        info!(url = %spec.redacted_url(), transport = ?ctx.transport, "pulling the camera from RTSP");
        loop {
            status.connecting();
            let mut played = false;
            let ended = tokio::select! {
                _ = shutdown.cancelled() => break,
                ended = puller.session(&mut played) => ended,
            };
            if played {
                backoff.reset();
            }
            let ceiling = backoff.ceiling();
            let delay = backoff.next(fastrand::f64());
            status.backoff(ended.to_string(), delay, ceiling);
            let counter = ctx
                .metrics
                .pull
                .failures
                .with_label_values(&[&spec.camera, ended.reason()]);
            if let Some(failed) = failures.count(&counter, 1, Instant::now()) {
                warn!(url = %spec.redacted_url(), error = %ended, reason = ended.reason(), failed, retry_in_ms = delay.as_millis() as u64, "RTSP pull failed; retrying with backoff (logged at most every 10 s)");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        info!("RTSP pull stopped");
    }
    .instrument(span)
    .await
}

struct Puller<'a> {
    spec: &'a PullSpec,
    ctx: &'a PullContext,
    status: &'a PullStatus,
    /// A dropped audio codec is logged once per pull, not once per session.
    reported_audio: bool,
}

/// The streams of a session that Kamera takes.
struct Chosen {
    video: usize,
    /// The video is H.265 (else H.264).
    h265: bool,
    audio: Option<usize>,
    /// A non-AAC audio codec that is left out.
    dropped_audio: Option<String>,
}

impl Puller<'_> {
    /// One session, from connecting to its end (always an error: a camera's stream has no
    /// natural end). `played` is set once frames flow.
    async fn session(&mut self, played: &mut bool) -> PullError {
        match self.try_session(played).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn try_session(
        &mut self,
        played: &mut bool,
    ) -> Result<std::convert::Infallible, PullError> {
        let timeout = self.ctx.timeout;
        let step = |step: &'static str| {
            move |_: tokio::time::error::Elapsed| PullError::StepTimeout { step, timeout }
        };
        let (spec, ctx) = (self.spec, self.ctx);

        let owned = spec.clone();
        let dir = ctx.credentials_dir.clone();
        // A small file or two, but still disk: off the reactor.
        let creds = tokio::task::spawn_blocking(move || owned.credentials(dir.as_deref()))
            .await
            .map_err(|e| PullError::Rtsp {
                step: "reading credentials",
                status: None,
                message: e.to_string(),
            })??;
        let had_credentials = creds.is_some();
        let options = SessionOptions::default()
            .creds(creds.map(|c| RtspCredentials {
                username: c.username,
                password: c.password,
            }))
            .user_agent(format!("Kamera/{}", env!("CARGO_PKG_VERSION")))
            .teardown(TeardownPolicy::Auto);
        let mut session =
            tokio::time::timeout(timeout, Session::describe(spec.url.clone(), options))
                .await
                .map_err(step("DESCRIBE"))?
                .map_err(PullError::rtsp("DESCRIBE", had_credentials))?;

        let chosen = choose_streams(session.streams())?;
        let transport = match ctx.transport {
            PullTransport::Tcp => Transport::Tcp(Default::default()),
            PullTransport::Udp => Transport::Udp(Default::default()),
        };
        for i in std::iter::once(chosen.video).chain(chosen.audio) {
            let setup = SetupOptions::default()
                .transport(transport.clone())
                .frame_format(FrameFormat::MP4);
            tokio::time::timeout(timeout, session.setup(i, setup))
                .await
                .map_err(step("SETUP"))?
                .map_err(PullError::rtsp("SETUP", had_credentials))?;
        }
        let playing = tokio::time::timeout(
            timeout,
            session
                .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive)),
        )
        .await
        .map_err(step("PLAY"))?
        .map_err(PullError::rtsp("PLAY", had_credentials))?;
        let mut demuxed = playing
            .demuxed()
            .map_err(PullError::rtsp("PLAY", had_credentials))?;

        let publisher = ctx.hub.publish_pulled(&spec.camera, peer(spec).await)?;
        let _connected = Connected::new(ctx, &spec.camera);
        *played = true;
        self.status.playing();
        info!(url = %spec.redacted_url(), audio = chosen.audio.is_some(), "RTSP pull playing");
        self.play(&mut demuxed, &chosen, &publisher).await
    }

    /// Feeds frames into the hub until the stream fails, ends or stalls.
    async fn play(
        &mut self,
        demuxed: &mut Demuxed,
        chosen: &Chosen,
        publisher: &Publisher,
    ) -> Result<std::convert::Infallible, PullError> {
        let (spec, ctx) = (self.spec, self.ctx);
        let camera = spec.camera.as_str();
        let m = &ctx.metrics.ingest;
        let mut demuxer = Demuxer::default();
        if let Some(what) = &chosen.dropped_audio {
            let outputs = demuxer.unsupported(Track::Audio, what.clone());
            if self.reported_audio {
                publisher.report_unsupported(Track::Audio, what);
            } else {
                self.reported_audio = true;
                deliver(outputs, camera, publisher, m);
            }
        }
        if let Some(i) = chosen.audio {
            if let Some(ParametersRef::Audio(params)) = demuxed.streams()[i].parameters() {
                match flv::parse_audio_specific_config(Bytes::copy_from_slice(params.extra_data()))
                {
                    Ok(config) => demuxer.configure_audio(config),
                    Err(e) => {
                        warn!(%camera, error = %e, "invalid AAC configuration: audio dropped")
                    }
                }
            }
        }
        // Usually known from the session description already (`sprop-parameter-sets`).
        let mut video_configured = false;
        if let Some(ParametersRef::Video(params)) = demuxed.streams()[chosen.video].parameters() {
            demuxer.configure_video(video_config(params)?);
            video_configured = true;
        }
        let mut last_frame = tokio::time::Instant::now();
        loop {
            let item = tokio::time::timeout_at(last_frame + ctx.timeout, demuxed.next())
                .await
                .map_err(|_| PullError::NoFrames(ctx.timeout))?
                .ok_or(PullError::Ended)?
                .map_err(PullError::rtsp("stream", true))?;
            let outputs = match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == chosen.video => {
                    if frame.has_new_parameters() || !video_configured {
                        if let Some(ParametersRef::Video(params)) =
                            demuxed.streams()[chosen.video].parameters()
                        {
                            demuxer.configure_video(video_config(params)?);
                            video_configured = true;
                        }
                    }
                    // retina counts only IDR pictures as random access points in H.265; a CRA
                    // picture (what x265 and many cameras send at each GOP with open GOPs)
                    // starts decoding as well, so Kamera looks for any IRAP, as for RTMP.
                    let rap = frame.is_random_access_point();
                    let millis = to_millis(frame.timestamp());
                    let data = Bytes::from(frame.into_data());
                    let keyframe = rap || (chosen.h265 && h265::is_irap(&data, 4));
                    count_bytes(m, camera, publisher, data.len());
                    demuxer.access_unit(Track::Video, millis, keyframe, data)
                }
                // Audio waits for the video configuration, so that the session starts with one
                // configuration holding both (not an audio-only one, then a second).
                CodecItem::AudioFrame(frame)
                    if Some(frame.stream_id()) == chosen.audio && video_configured =>
                {
                    let millis = to_millis(frame.timestamp());
                    let data = Bytes::copy_from_slice(frame.data());
                    count_bytes(m, camera, publisher, data.len());
                    demuxer.access_unit(Track::Audio, millis, true, data)
                }
                _ => continue,
            };
            last_frame = tokio::time::Instant::now();
            deliver(outputs, camera, publisher, m);
        }
    }
}

/// The camera's address, for the statistics (`publisher` in the API).
async fn peer(spec: &PullSpec) -> SocketAddr {
    let port = spec.url.port().unwrap_or(554);
    let fallback = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let Some(host) = spec.url.host_str() else {
        return fallback;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => addrs.next().unwrap_or(fallback),
        Err(_) => fallback,
    }
}

/// The configuration of retina's video parameters: its `extra_data` is the decoder
/// configuration record (`avcC` or `hvcC`, as `FrameFormat::MP4` asks), parsed like an RTMP
/// sequence header.
fn video_config(params: &VideoParameters) -> Result<VideoConfig, PullError> {
    let record = Bytes::copy_from_slice(params.extra_data());
    match params.codec_params() {
        VideoParametersCodec::H265 { .. } => Ok(h265::parse_hvcc(record)?),
        _ => Ok(h264::parse_avcc(record)?),
    }
}

/// Picks the first video stream (H.264 or H.265) and the first audio stream (AAC only).
fn choose_streams(streams: &[retina::client::Stream]) -> Result<Chosen, PullError> {
    let video = streams
        .iter()
        .position(|s| s.media() == "video")
        .ok_or(PullError::NoVideo)?;
    let codec = streams[video].encoding_name();
    if codec != "h264" && codec != "h265" {
        return Err(PullError::UnsupportedVideo(codec.to_string()));
    }
    let (audio, dropped_audio) = match streams.iter().position(|s| s.media() == "audio") {
        Some(i) if streams[i].encoding_name() == "mpeg4-generic" => (Some(i), None),
        Some(i) => (
            None,
            Some(format!(
                "audio codec {:?} (Kamera keeps AAC only)",
                streams[i].encoding_name()
            )),
        ),
        None => (None, None),
    };
    Ok(Chosen {
        video,
        h265: codec == "h265",
        audio,
        dropped_audio,
    })
}

/// retina's 64-bit RTP time (since the stream's start) in milliseconds.
fn to_millis(t: retina::Timestamp) -> i64 {
    let ms = i128::from(t.elapsed()) * 1000 / i128::from(t.clock_rate().get());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn count_bytes(m: &crate::metrics::IngestMetrics, camera: &str, publisher: &Publisher, n: usize) {
    m.bytes.with_label_values(&[camera]).inc_by(n as u64);
    publisher.count_bytes(n);
}

/// `kamera_ingest_connected` and `kamera_pull_connected` at 1 while it lives.
struct Connected<'a> {
    ctx: &'a PullContext,
    camera: &'a str,
}

impl<'a> Connected<'a> {
    fn new(ctx: &'a PullContext, camera: &'a str) -> Self {
        ctx.metrics
            .ingest
            .connected
            .with_label_values(&[camera])
            .set(1);
        ctx.metrics
            .pull
            .connected
            .with_label_values(&[camera])
            .set(1);
        Self { ctx, camera }
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        let m = &self.ctx.metrics;
        m.ingest.connected.with_label_values(&[self.camera]).set(0);
        m.pull.connected.with_label_values(&[self.camera]).set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_time_becomes_milliseconds_past_the_32_bit_wrap() {
        let clock = std::num::NonZeroU32::new(90_000).expect("non-zero");
        let t =
            |ticks: i64, start: u32| retina::Timestamp::new(ticks, clock, start).expect("valid");
        assert_eq!(to_millis(t(90_000, 0)), 1000);
        assert_eq!(to_millis(t(3_000 + 9_000, 3_000)), 100);
        let past_wrap = i64::from(u32::MAX) + 90_001;
        assert_eq!(to_millis(t(past_wrap, 0)), past_wrap * 1000 / 90_000);
    }

    #[test]
    fn failures_are_labelled_by_what_an_operator_must_fix() {
        let rtsp = |step, status| PullError::Rtsp {
            step,
            status,
            message: String::new(),
        };
        let cases = [
            (rtsp("DESCRIBE", None), "connect"),
            (rtsp("DESCRIBE", Some(404)), "refused"),
            (rtsp("SETUP", None), "protocol"),
            (
                PullError::Unauthorized {
                    message: String::new(),
                },
                "unauthorized",
            ),
            (
                PullError::CredentialsNeeded {
                    message: String::new(),
                },
                "unauthorized",
            ),
            (
                PullError::UnsupportedVideo("jpeg".into()),
                "unsupported_codec",
            ),
            (PullError::NoFrames(Duration::from_secs(1)), "timeout"),
            (PullError::Ended, "ended"),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason, "{error}");
        }
        let mjpeg = PullError::UnsupportedVideo("jpeg".into()).to_string();
        assert!(mjpeg.contains("H.264 and H.265"), "{mjpeg}");
    }
}
