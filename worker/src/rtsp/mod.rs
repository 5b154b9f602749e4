//! RTSP pull: cameras that Kamera fetches from an RTSP URL (`--pull NAME=URL`) instead of
//! waiting for an RTMP publisher. Each pulled camera has one task ([`pull::run`]) that feeds
//! the camera's hub channel through the same demuxer rules as RTMP, so LL-HLS, recording,
//! frames, `/api/cameras` and the metrics work unchanged. A pulled camera is pinned in the hub:
//! it exists from start-up, is never idle-released, and takes no RTMP publisher.
//!
//! retina (the RTSP client Moonfire NVR uses) does the protocol: digest/basic
//! authentication, keepalives, RTP depacketisation and 64-bit RTP timestamps.

pub mod pull;
pub mod source;
pub mod status;

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::{Hub, PublishError};
use crate::metrics::Metrics;
use pull::PullContext;
use status::{PullStatus, Pulls};

/// Pins every `--pull` camera in the hub and starts its task in `tasks` (joined by the caller
/// on shutdown). Returns the `source` section of `/api/cameras`.
pub fn start(
    config: &Config,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<Arc<Pulls>, PublishError> {
    let ctx = Arc::new(PullContext {
        hub: hub.clone(),
        metrics: metrics.clone(),
        credentials_dir: config.pull_credentials_dir.clone(),
        transport: config.pull_transport,
        timeout: config.pull_timeout,
    });
    let mut pulls = Pulls::default();
    for spec in &config.pulls {
        hub.pull(&spec.camera)?;
        metrics
            .pull
            .connected
            .with_label_values(&[&spec.camera])
            .set(0);
        let status = Arc::new(PullStatus::new(spec.redacted_url()));
        pulls.insert(&spec.camera, status.clone());
        tasks.spawn(pull::run(
            spec.clone(),
            status,
            ctx.clone(),
            shutdown.child_token(),
        ));
    }
    Ok(Arc::new(pulls))
}
