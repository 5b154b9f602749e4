//! The RTMP listener: accepts connections and runs each in its own task, so one broken
//! publisher can only end its own session.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::session::{self, IngestContext};

/// Serves RTMP on `listener` until `shutdown` is cancelled, then waits for sessions to end.
pub async fn serve(listener: TcpListener, ctx: Arc<IngestContext>, shutdown: CancellationToken) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = ctx.clone();
                    let shutdown = shutdown.child_token();
                    sessions.spawn(session::run(stream, peer, ctx, shutdown));
                }
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    info!(open = sessions.len(), "rtmp server stopping");
    while sessions.join_next().await.is_some() {}
}
