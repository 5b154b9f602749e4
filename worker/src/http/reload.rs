//! Files the HTTP server re-reads while the worker runs (viewer tokens, the TLS certificate):
//! one polling loop for them, reading off the reactor.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Calls `read` on a blocking thread every `every` until `shutdown` and hands each result to
/// `apply`. A read that panicked is logged and skipped: the next tick reads again.
pub(crate) async fn poll<T, R, A>(
    every: Duration,
    shutdown: CancellationToken,
    read: R,
    mut apply: A,
) where
    T: Send + 'static,
    R: Fn() -> T + Clone + Send + 'static,
    A: FnMut(T),
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match tokio::task::spawn_blocking(read.clone()).await {
            Ok(value) => apply(value),
            Err(e) => warn!(error = %e, "re-reading a file failed"),
        }
    }
}
