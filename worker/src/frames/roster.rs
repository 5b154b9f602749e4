//! The processors a camera's `frames.processors` lists in `/api/cameras/<camera>`: the
//! dispatcher's numbers for each connected processor, and a short, bounded memory of those
//! that disconnected, so an operator sees "yolo disconnected 30 s ago" instead of nothing.
//!
//! Pool processors (network transport) are listed from their camera's links too, so a pool
//! that cannot be reached shows as disconnected with its last error.
//!
//! Plain data and pure functions; the dispatcher owns the lock and passes the time in.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::http::rfc3339_ms;

/// Disconnected processors remembered per camera. Beyond it the oldest departure is
/// forgotten (drop oldest); a processor that reconnects and leaves again replaces its entry.
pub const KEEP_DEPARTED: usize = 16;
/// How long a disconnected processor stays listed.
pub const DEPARTED_FOR: Duration = Duration::from_secs(10 * 60);

/// One processor as seen from one camera (the `frames.processors` entries).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessorStatus {
    pub name: String,
    pub connected: bool,
    #[serde(serialize_with = "time")]
    pub connected_since: SystemTime,
    /// Only on a disconnected processor.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_time"
    )]
    pub disconnected_at: Option<SystemTime>,
    /// Frames notified and not yet acknowledged (0 once disconnected).
    pub in_flight: u32,
    pub max_in_flight: u32,
    /// The rate it receives: what it asked for, at most the worker's extraction rate.
    pub fps: f64,
    pub frames_sent: u64,
    pub frames_acked: u64,
    /// Frames it did not get: replaced while it had no credit, or its queue was full.
    pub frames_dropped: u64,
    #[serde(serialize_with = "optional_time")]
    pub last_ack_at: Option<SystemTime>,
    /// How far behind live, as `kamera_processor_lag_seconds`; `null` before its first ack
    /// and once it disconnected.
    #[serde(serialize_with = "optional_seconds")]
    pub lag_seconds: Option<Duration>,
    /// How frames reach it: `unix` (a sidecar on the frame socket) or `tcp` (a pool).
    pub transport: Transport,
    /// Pools only: `endpoint` and `last_error`.
    #[serde(flatten)]
    pub pool: Option<PoolEndpoint>,
}

/// How a processor receives frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Unix,
    Tcp,
}

/// Where a pool link is connected (or last tried) and why its last attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolEndpoint {
    /// `host:port` connected to, or last tried.
    pub endpoint: String,
    /// The last connection error (`null` while connected).
    pub last_error: Option<String>,
}

/// One camera's link to a pool, as its link task last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    pub name: String,
    pub connected: bool,
    /// When the link started trying (shown as `connected_since` until a first connection).
    pub since: SystemTime,
    pub endpoint: PoolEndpoint,
}

/// Marks the entries of the camera's pools as `tcp` with their endpoint and last error, and
/// adds a disconnected entry for each pool not listed (never connected), sorted as [`roster`].
pub fn with_links(mut list: Vec<ProcessorStatus>, links: Vec<LinkView>) -> Vec<ProcessorStatus> {
    for link in links {
        let mut listed = false;
        for p in list.iter_mut().filter(|p| p.name == link.name) {
            p.transport = Transport::Tcp;
            p.pool = Some(link.endpoint.clone());
            listed = true;
        }
        if !listed {
            list.push(ProcessorStatus {
                name: link.name,
                connected: false,
                connected_since: link.since,
                disconnected_at: None,
                in_flight: 0,
                max_in_flight: 0,
                fps: 0.0,
                frames_sent: 0,
                frames_acked: 0,
                frames_dropped: 0,
                last_ack_at: None,
                lag_seconds: None,
                transport: Transport::Tcp,
                pool: Some(link.endpoint),
            });
        }
    }
    sort(&mut list);
    list
}

fn sort(list: &mut [ProcessorStatus]) {
    list.sort_by(|a, b| {
        (a.name.as_str(), a.connected_since).cmp(&(b.name.as_str(), b.connected_since))
    });
}

/// Disconnected processors per camera, bounded by [`KEEP_DEPARTED`] and [`DEPARTED_FOR`].
#[derive(Debug, Default)]
pub struct Departures {
    by_camera: HashMap<String, VecDeque<ProcessorStatus>>,
}

impl Departures {
    /// Remembers `gone` (already marked disconnected) for `camera`.
    pub fn record(&mut self, camera: &str, gone: ProcessorStatus, now: SystemTime) {
        self.forget_expired(now);
        let list = self.by_camera.entry(camera.to_string()).or_default();
        list.retain(|p| p.name != gone.name);
        if list.len() >= KEEP_DEPARTED {
            list.pop_front();
        }
        list.push_back(gone);
    }

    /// The camera's departures still worth showing at `now`, oldest first.
    pub fn recent(&self, camera: &str, now: SystemTime) -> impl Iterator<Item = &ProcessorStatus> {
        self.by_camera
            .get(camera)
            .into_iter()
            .flatten()
            .filter(move |p| !expired(p, now))
    }

    /// Forgets every departure seen by a released camera.
    pub fn forget_camera(&mut self, camera: &str) {
        self.by_camera.remove(camera);
    }

    pub fn forget_expired(&mut self, now: SystemTime) {
        self.by_camera.retain(|_, list| {
            list.retain(|p| !expired(p, now));
            !list.is_empty()
        });
    }
}

fn expired(p: &ProcessorStatus, now: SystemTime) -> bool {
    p.disconnected_at
        .and_then(|at| now.duration_since(at).ok())
        .is_some_and(|ago| ago > DEPARTED_FOR)
}

/// The list for one camera: the connected processors, then the departed ones no connected
/// processor of the same name supersedes, sorted by name (then by connection time).
pub fn roster(
    connected: Vec<ProcessorStatus>,
    departed: impl IntoIterator<Item = ProcessorStatus>,
) -> Vec<ProcessorStatus> {
    let mut all = connected;
    let departed: Vec<_> = departed
        .into_iter()
        .filter(|d| !all.iter().any(|c| c.name == d.name))
        .collect();
    all.extend(departed);
    sort(&mut all);
    all
}

fn time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_ms(*t))
}

fn optional_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}

/// Seconds with millisecond precision.
fn optional_seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_millis() as f64 / 1000.0),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, since: SystemTime, gone: Option<SystemTime>) -> ProcessorStatus {
        ProcessorStatus {
            name: name.into(),
            connected: gone.is_none(),
            connected_since: since,
            disconnected_at: gone,
            in_flight: 0,
            max_in_flight: 1,
            fps: 1.0,
            frames_sent: 0,
            frames_acked: 0,
            frames_dropped: 0,
            last_ack_at: None,
            lag_seconds: None,
            transport: Transport::Unix,
            pool: None,
        }
    }

    #[test]
    fn serializes_to_the_documented_shape() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_507_500_250);
        let mut p = status("yolo", t, None);
        p.last_ack_at = Some(t);
        p.lag_seconds = Some(Duration::from_micros(412_345));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "name": "yolo", "connected": true, "connected_since": "2026-11-24T08:05:00.250Z",
                "in_flight": 0, "max_in_flight": 1, "fps": 1.0,
                "frames_sent": 0, "frames_acked": 0, "frames_dropped": 0,
                "last_ack_at": "2026-11-24T08:05:00.250Z", "lag_seconds": 0.412,
                "transport": "unix",
            })
        );
        let gone = serde_json::to_value(status("yolo", t, Some(t))).unwrap();
        assert_eq!(gone["connected"], false);
        assert_eq!(gone["disconnected_at"], "2026-11-24T08:05:00.250Z");
        assert_eq!(gone["last_ack_at"], serde_json::Value::Null);
        assert_eq!(gone["lag_seconds"], serde_json::Value::Null);
    }

    #[test]
    fn pool_links_are_listed_connected_or_not_with_endpoint_and_error() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_507_500_250);
        let link = |name: &str, connected: bool, error: Option<&str>| LinkView {
            name: name.into(),
            connected,
            since: t,
            endpoint: PoolEndpoint {
                endpoint: format!("{name}-pool.cams.svc:7700"),
                last_error: error.map(String::from),
            },
        };
        let list = with_links(
            vec![status("yolo", t, None), status("motion", t, None)],
            vec![
                link("yolo", true, None),
                link("locked", false, Some("refused: unauthorized")),
            ],
        );
        let v = serde_json::to_value(&list).unwrap();
        let names: Vec<_> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["locked", "motion", "yolo"]);
        assert_eq!(v[0]["transport"], "tcp");
        assert_eq!(v[0]["connected"], false);
        assert_eq!(v[0]["endpoint"], "locked-pool.cams.svc:7700");
        assert_eq!(v[0]["last_error"], "refused: unauthorized");
        assert_eq!(v[1]["transport"], "unix");
        assert!(v[1].get("endpoint").is_none() && v[1].get("last_error").is_none());
        assert_eq!(v[2]["transport"], "tcp");
        assert_eq!(v[2]["last_error"], serde_json::Value::Null);
        assert_eq!(v[2]["endpoint"], "yolo-pool.cams.svc:7700");
    }

    #[test]
    fn a_reconnected_processor_hides_its_departure() {
        let t = SystemTime::now();
        let list = roster(
            vec![status("yolo", t, None)],
            [status("yolo", t, Some(t)), status("faces", t, Some(t))],
        );
        let shown: Vec<_> = list
            .iter()
            .map(|p| (p.name.as_str(), p.connected))
            .collect();
        assert_eq!(shown, [("faces", false), ("yolo", true)]);
    }

    #[test]
    fn departures_are_bounded_per_camera_and_expire() {
        let t0 = SystemTime::now();
        let mut d = Departures::default();
        for i in 0..KEEP_DEPARTED + 4 {
            let at = t0 + Duration::from_secs(i as u64);
            d.record("a", status(&format!("p{i:02}"), t0, Some(at)), at);
        }
        let later = t0 + Duration::from_secs(60);
        let names: Vec<_> = d.recent("a", later).map(|p| p.name.clone()).collect();
        assert_eq!(names.len(), KEEP_DEPARTED);
        assert_eq!(
            names.first().map(String::as_str),
            Some("p04"),
            "oldest dropped"
        );
        assert_eq!(d.recent("b", later).count(), 0);

        // Ten minutes after p10 left: p04..p09 are older than that, p10 just not.
        let much_later = t0 + DEPARTED_FOR + Duration::from_secs(10);
        let left: Vec<_> = d.recent("a", much_later).map(|p| p.name.clone()).collect();
        let expected: Vec<_> = (10..KEEP_DEPARTED + 4)
            .map(|i| format!("p{i:02}"))
            .collect();
        assert_eq!(left, expected);
        d.forget_expired(t0 + DEPARTED_FOR + Duration::from_secs(60));
        assert!(d.by_camera.is_empty());
    }

    #[test]
    fn leaving_again_replaces_the_earlier_departure() {
        let t = SystemTime::now();
        let mut d = Departures::default();
        d.record("a", status("yolo", t, Some(t)), t);
        let again = t + Duration::from_secs(5);
        d.record("a", status("yolo", again, Some(again)), again);
        let at: Vec<_> = d.recent("a", again).map(|p| p.disconnected_at).collect();
        assert_eq!(at, [Some(again)]);
    }
}
