//! `--demo`: a synthetic camera named `demo`, published by the `ffmpeg` CLI to the worker's
//! own RTMP port and restarted if it dies, so a newcomer sees a live stream at once.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The `ffmpeg` arguments that publish a 720p30 test pattern with a tone, GOP 1 s.
pub fn ffmpeg_args(rtmp_url: &str) -> Vec<String> {
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-b:v",
        "2M",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-f",
        "flv",
        rtmp_url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the demo publisher until `shutdown`.
pub async fn run(rtmp: SocketAddr, shutdown: CancellationToken) {
    let host = if rtmp.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        rtmp.ip().to_string()
    };
    let url = format!("rtmp://{host}:{}/live/demo", rtmp.port());
    let mut backoff = Duration::from_secs(1);
    loop {
        let child = Command::new("ffmpeg")
            .args(ffmpeg_args(&url))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot start ffmpeg for the demo camera; is ffmpeg installed?");
                return;
            }
        };
        info!(%url, "demo camera publishing");
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = child.kill().await;
                return;
            }
            status = child.wait() => {
                warn!(?status, retry_in = ?backoff, "demo publisher exited; restarting");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
