//! What each pull is doing, for the `source` section of `/api/cameras/<camera>`: written by
//! the pull task, read by HTTP. A pushed camera has no such section.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::http::{rfc3339_ms, CameraStatus};

/// Where a pull is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    /// Connecting, describing, setting up or starting to play.
    Connecting,
    /// Frames flow into the camera's hub channel.
    Playing,
    /// The last attempt failed; waiting before the next.
    Backoff,
}

impl PullState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullState::Connecting => "connecting",
            PullState::Playing => "playing",
            PullState::Backoff => "backoff",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: PullState,
    since: SystemTime,
    last_error: Option<String>,
    /// Consecutive failed attempts since the last session that played.
    failures: u32,
    retry_at: Option<Instant>,
    retry_ceiling: Duration,
}

/// One pull's status.
#[derive(Debug)]
pub struct PullStatus {
    /// The URL with user information redacted.
    url: String,
    inner: Mutex<Inner>,
}

impl PullStatus {
    pub fn new(redacted_url: String) -> Self {
        Self {
            url: redacted_url,
            inner: Mutex::new(Inner {
                state: PullState::Connecting,
                since: SystemTime::now(),
                last_error: None,
                failures: 0,
                retry_at: None,
                retry_ceiling: Duration::ZERO,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self, state: PullState) -> MutexGuard<'_, Inner> {
        let mut s = self.lock();
        if s.state != state {
            s.state = state;
            s.since = SystemTime::now();
        }
        s.retry_at = None;
        s
    }

    pub fn connecting(&self) {
        drop(self.enter(PullState::Connecting));
    }

    /// A session plays: the failures before it are forgotten (the last error stays shown).
    pub fn playing(&self) {
        self.enter(PullState::Playing).failures = 0;
    }

    /// An attempt or a session failed with `error`; the next one is due after `delay`, drawn
    /// below `ceiling`.
    pub fn backoff(&self, error: String, delay: Duration, ceiling: Duration) {
        let mut s = self.enter(PullState::Backoff);
        s.last_error = Some(error);
        s.failures = s.failures.saturating_add(1);
        s.retry_at = Some(Instant::now() + delay);
        s.retry_ceiling = ceiling;
    }

    pub fn state(&self) -> PullState {
        self.lock().state
    }

    /// The `source` section of the camera's API entry.
    pub fn json(&self, now: Instant) -> Value {
        let s = self.lock();
        let retry_in_ms = s
            .retry_at
            .map(|at| at.saturating_duration_since(now).as_millis() as u64);
        json!({
            "kind": "rtsp",
            "url": self.url,
            "state": s.state.as_str(),
            "since": rfc3339_ms(s.since),
            "last_error": s.last_error,
            "failures": s.failures,
            "retry_in_ms": retry_in_ms,
            "retry_ceiling_ms": (s.state == PullState::Backoff).then(|| s.retry_ceiling.as_millis() as u64),
        })
    }
}

/// Every pull's status by camera: the `source` section of `/api/cameras`.
#[derive(Debug, Default)]
pub struct Pulls {
    by_camera: HashMap<String, Arc<PullStatus>>,
}

impl Pulls {
    pub fn insert(&mut self, camera: &str, status: Arc<PullStatus>) {
        self.by_camera.insert(camera.to_string(), status);
    }
}

impl CameraStatus for Pulls {
    fn section(&self) -> &'static str {
        "source"
    }

    fn status(&self, camera: &str) -> Option<Value> {
        self.by_camera.get(camera).map(|s| s.json(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_shows_the_error_the_wait_and_the_growing_ceiling() {
        let status = PullStatus::new("rtsp://redacted@cam/live".into());
        let now = Instant::now();
        assert_eq!(status.json(now)["state"], "connecting");
        status.backoff(
            "401 Unauthorized".into(),
            Duration::from_millis(300),
            Duration::from_secs(1),
        );
        status.backoff(
            "401 Unauthorized".into(),
            Duration::from_millis(700),
            Duration::from_secs(2),
        );
        let v = status.json(now);
        assert_eq!(v["state"], "backoff");
        assert_eq!(v["kind"], "rtsp");
        assert_eq!(v["url"], "rtsp://redacted@cam/live");
        assert_eq!(v["last_error"], "401 Unauthorized");
        assert_eq!(v["failures"], 2);
        assert_eq!(v["retry_ceiling_ms"], 2000);
        assert!(v["retry_in_ms"].as_u64().is_some_and(|ms| ms <= 700), "{v}");
        status.playing();
        let v = status.json(now);
        assert_eq!(
            (v["state"].as_str(), v["failures"].as_u64()),
            (Some("playing"), Some(0))
        );
        assert!(v["retry_in_ms"].is_null());
    }
}
