//! Hands the demuxer's outputs to the camera's hub channel, counting and logging them the same
//! way for every source (RTMP sessions here, RTSP pulls in `rtsp/`).

use tracing::{info, warn};

use super::demux::Output;
use crate::hub::Publisher;
use crate::metrics::IngestMetrics;

/// Publishes `outputs` of `camera` in order: configurations, frames, and the unsupported
/// codecs and discontinuities the demuxer reported.
pub fn deliver(outputs: Vec<Output>, camera: &str, publisher: &Publisher, m: &IngestMetrics) {
    for out in outputs {
        match out {
            Output::Config { video, audio } => {
                if let Some(v) = &video {
                    info!(%camera, codec = v.codec.name(), codec_string = %v.codec_string(), width = v.width, height = v.height, "video configuration");
                }
                if let Some(a) = &audio {
                    info!(%camera, codec = %a.codec_string(), sample_rate = a.sample_rate, channels = a.channels, "audio configuration");
                }
                publisher.set_info(video, audio);
            }
            Output::Frame(frame) => {
                m.frames
                    .with_label_values(&[camera, frame.track.as_str()])
                    .inc();
                publisher.push(frame);
            }
            Output::Unsupported { track, what } => {
                warn!(%camera, track = track.as_str(), %what, "unsupported codec: track ignored, session kept");
                m.unsupported
                    .with_label_values(&[camera, track.as_str()])
                    .inc();
                publisher.report_unsupported(track, &what);
            }
            Output::Skipped { what } => {
                info!(%camera, %what, "ignored (not needed); reported once per session");
            }
            Output::Discontinuity { track } => {
                info!(%camera, track = track.as_str(), "timestamp discontinuity smoothed");
                m.discontinuities
                    .with_label_values(&[camera, track.as_str()])
                    .inc();
            }
        }
    }
}
