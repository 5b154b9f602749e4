//! The worker's configuration: every flag has a `KAMERA_*` environment twin.
//!
//! This is a public contract: the operator builds these flags for each Camera, and a test
//! parses the operator's arguments with this very parser (`Config::try_parse_from`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::hub::DEFAULT_MAX_CAMERAS;
use crate::rtsp::source::PullSpec;

/// Kamera worker: RTMP ingest, LL-HLS live view, recording and frames for AI processors.
#[derive(Debug, Clone, Parser)]
#[command(name = "kamera-worker", version, about, long_about = None)]
pub struct Config {
    /// Address the RTMP ingest listens on (rtmp://host:port/<app>/<camera>).
    #[arg(long, env = "KAMERA_RTMP_LISTEN", default_value = "0.0.0.0:1935")]
    pub rtmp_listen: SocketAddr,

    /// Address the HTTP server (LL-HLS, API, metrics, health) listens on.
    #[arg(long, env = "KAMERA_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,

    /// Directory for recordings, frames and the frame socket.
    #[arg(long, env = "KAMERA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Accept only these camera names (stream keys); repeatable. Without it, any valid name is accepted.
    #[arg(long = "camera", env = "KAMERA_CAMERAS", value_delimiter = ',', value_parser = parse_camera_name)]
    pub cameras: Vec<String>,

    /// File of publish keys: one `camera=key` per line (`*=key` for every camera without its own).
    /// Publishers pass the key as `rtmp://host/live/<camera>?key=<key>`.
    #[arg(long, env = "KAMERA_PUBLISH_KEY_FILE")]
    pub publish_key_file: Option<PathBuf>,

    /// File of viewer tokens: one `<token> <scope>...` per line, scopes `live:<camera>`,
    /// `live:*`, `recordings`, `recordings:<camera>`, `api`; `#` comments. With it, every HTTP
    /// URL except `/metrics`, `/healthz`, `/readyz` and the index page needs a token, sent as
    /// `Authorization: Bearer <token>` or `?token=<token>`; the file is re-read when it changes.
    /// Without it, HTTP is open to anyone who can reach it.
    #[arg(long, env = "KAMERA_HTTP_TOKENS_FILE")]
    pub http_tokens_file: Option<PathBuf>,

    /// Origin allowed to read the HTTP endpoints from a browser page (CORS), e.g.
    /// `https://ops.example.com`, or `*`; repeatable. Default: any origin without
    /// `--http-tokens-file`, none (same origin only) with it.
    #[arg(long = "http-cors-origin", env = "KAMERA_HTTP_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub http_cors_origins: Vec<String>,

    /// PEM certificate chain (leaf first) for HTTPS on `--http-listen`; needs `--tls-key`. With
    /// both, the listener speaks TLS only, offering HTTP/2 and HTTP/1.1 (ALPN `h2`, `http/1.1`),
    /// as Apple's players expect for LL-HLS. Both files are re-read every 2 s and a changed,
    /// valid pair is served from the next handshake on (a renewed Secret needs no restart); a
    /// pair that cannot be used is logged and the previous one kept.
    #[arg(
        long,
        env = "KAMERA_TLS_CERT",
        requires = "tls_key",
        value_name = "PATH"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 RSA or SEC1 EC); needs `--tls-cert`.
    #[arg(
        long,
        env = "KAMERA_TLS_KEY",
        requires = "tls_cert",
        value_name = "PATH"
    )]
    pub tls_key: Option<PathBuf>,

    /// Most HTTP connections open at once; beyond it new clients wait until one closes. A
    /// client must finish its TLS handshake and start its first request within 10 s, and one
    /// HTTP/2 connection carries at most 100 requests at once.
    #[arg(long, env = "KAMERA_HTTP_MAX_CONNECTIONS", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,

    /// Release everything a camera holds (its LL-HLS window, recorder and frame extractor with
    /// their threads, its API entry and its metric series) once it has had no publisher for
    /// this long. A publisher that returns sooner continues the same camera; `0s` releases at
    /// once.
    #[arg(long, env = "KAMERA_IDLE_RELEASE", default_value = "60s", value_parser = parse_duration)]
    pub idle_release: Duration,

    /// Most cameras held at once (live or idle within `--idle-release`); a publisher of a new
    /// camera beyond it is refused. Default: the number of `--camera` names (plus `--pull` cameras
    /// not among them) if given, else 256.
    #[arg(long, env = "KAMERA_MAX_CAMERAS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_cameras: Option<u32>,

    /// Let a new publisher on a live camera replace the current one instead of being refused.
    #[arg(long, env = "KAMERA_TAKEOVER")]
    pub takeover: bool,

    /// Also publish a synthetic test camera named `demo` (needs the `ffmpeg` CLI).
    #[arg(long, env = "KAMERA_DEMO")]
    pub demo: bool,

    /// LL-HLS part duration (`#EXT-X-PART-TARGET`).
    #[arg(long, env = "KAMERA_HLS_PART_DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub hls_part_duration: Duration,

    /// Longest LL-HLS segment; sets `#EXT-X-TARGETDURATION` (whole seconds, fixed). Segments
    /// end on the first keyframe after 1 s; a stream whose keyframes come further apart than
    /// this is cut here anyway, and the segment after the cut does not start with a keyframe.
    #[arg(long, env = "KAMERA_HLS_MAX_SEGMENT_DURATION", default_value = "2s", value_parser = parse_duration)]
    pub hls_max_segment_duration: Duration,

    /// hls.js for the player page (default: `node_modules/hls.js/dist/hls.min.js` found from
    /// the working directory or the executable's directory upwards).
    #[arg(long, env = "KAMERA_HLS_JS")]
    pub hls_js: Option<PathBuf>,

    /// Disable recording to disk.
    #[arg(long, env = "KAMERA_NO_RECORDING")]
    pub no_recording: bool,

    /// Length of each recording file; files are cut at the first keyframe after each
    /// wall-clock multiple of it.
    #[arg(long, env = "KAMERA_SEGMENT_DURATION", default_value = "5m", value_parser = parse_duration)]
    pub segment_duration: Duration,

    /// Duration of each fragment (`moof`/`mdat`) inside a recording file.
    #[arg(long, env = "KAMERA_RECORDING_FRAGMENT", default_value = "1s", value_parser = parse_duration)]
    pub recording_fragment: Duration,

    /// When recordings are flushed to stable storage.
    #[arg(
        long,
        env = "KAMERA_RECORDING_FSYNC",
        value_enum,
        default_value = "fragment"
    )]
    pub recording_fsync: FsyncPolicy,

    /// Delete recordings older than this (e.g. `7d`).
    #[arg(long, env = "KAMERA_RETENTION_MAX_AGE", value_parser = parse_duration)]
    pub retention_max_age: Option<Duration>,

    /// Delete a camera's oldest recordings while its total exceeds this (e.g. `80Gi`, `500MB`).
    #[arg(long, env = "KAMERA_RETENTION_MAX_SIZE", value_parser = parse_bytes)]
    pub retention_max_size: Option<u64>,

    /// Stop recording when free space on the data volume drops below this: `5%`, `1GiB`, or
    /// both (`5%,1GiB`: the smaller of the two, so a large shared disk does not hold back
    /// tens of gigabytes while a small volume keeps a proportionate reserve).
    #[arg(long, env = "KAMERA_MIN_FREE", default_value = "5%,1GiB", value_parser = parse_min_free)]
    pub min_free: MinFree,

    /// Frames extracted per second per camera for processors (e.g. `1`, `0.5`, `5`).
    #[arg(long, env = "KAMERA_FRAME_FPS", default_value = "1", value_parser = parse_positive_f64)]
    pub frame_fps: f64,

    /// How samples are taken when the keyframe interval is longer than the sampling interval:
    /// `exact` decodes the frames in between to keep `--frame-fps` (the default), `keyframes`
    /// decodes keyframes only, at the rate the GOP allows (a fraction of the CPU).
    #[arg(long, env = "KAMERA_FRAME_SAMPLING", value_enum, default_value_t = FrameSampling::Exact)]
    pub frame_sampling: FrameSampling,

    /// With `exact` sampling on a GOP longer than the sampling interval: skip the deblocking
    /// filter on the frames decoded only to reach a sample (less decoding CPU; the sample is
    /// decoded from unfiltered references and may show faint blocking).
    #[arg(long, env = "KAMERA_FRAME_SKIP_LOOP_FILTER")]
    pub frame_skip_loop_filter: bool,

    /// JPEG quality of extracted frames (1-100).
    #[arg(long, env = "KAMERA_FRAME_QUALITY", default_value = "80", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub frame_quality: u8,

    /// Scale frames down to at most this width (keeping the aspect ratio).
    #[arg(long, env = "KAMERA_FRAME_MAX_WIDTH")]
    pub frame_max_width: Option<u32>,

    /// Number of numbered frames kept per camera beside `latest.jpg`.
    #[arg(long, env = "KAMERA_FRAME_KEEP", default_value = "8")]
    pub frame_keep: usize,

    /// Directory for frames (default: `<data-dir>/frames`).
    #[arg(long, env = "KAMERA_FRAMES_DIR")]
    pub frames_dir: Option<PathBuf>,

    /// Unix socket processors connect to (default: `<data-dir>/frames.sock`).
    #[arg(long, env = "KAMERA_FRAME_SOCKET")]
    pub frame_socket: Option<PathBuf>,

    /// A processor pool this worker sends every camera's frames to over the network (frame
    /// protocol, network transport): `NAME=HOST:PORT`, with more addresses after commas
    /// (`NAME=HOST:PORT,HOST:PORT`) for several pool endpoints, one picked at random per
    /// connection and another after a failure; repeatable. One connection per camera and pool.
    #[arg(long = "pool", env = "KAMERA_POOLS", value_delimiter = ',', value_parser = parse_pool_item)]
    pub pool_items: Vec<PoolItem>,

    /// Directory of pool tokens: the token for pool NAME is read from `<dir>/NAME/token` at every
    /// connection attempt (a rotated Secret works without a restart). Without a token file the
    /// worker connects without a token and the pool decides.
    #[arg(long, env = "KAMERA_POOL_TOKEN_DIR")]
    pub pool_token_dir: Option<PathBuf>,

    /// Pull a camera from an RTSP source instead of waiting for an RTMP publisher:
    /// `NAME=rtsp://host[:port]/path`; repeatable (commas separate several in the env twin;
    /// write a comma inside a URL as `%2C`). The camera is live while its source plays, is
    /// never idle-released, and refuses RTMP publishers. Credentials come from
    /// `--pull-credentials-dir` (or `user:password@` in the URL, never logged or shown).
    #[arg(long = "pull", env = "KAMERA_PULL", value_delimiter = ',', value_parser = PullParser)]
    pub pulls: Vec<PullSpec>,

    /// Directory of RTSP credentials, read at every connection attempt (a rotated Secret
    /// works without a restart): `<dir>/NAME/username` and `<dir>/NAME/password` (a
    /// `kubernetes.io/basic-auth` Secret mounted at `<dir>/NAME`), or a file `<dir>/NAME`
    /// holding `user:password`.
    #[arg(long, env = "KAMERA_PULL_CREDENTIALS_DIR")]
    pub pull_credentials_dir: Option<PathBuf>,

    /// How RTP reaches the worker from pulled cameras: interleaved on the RTSP TCP connection
    /// (works through NAT and firewalls) or UDP (LAN only; lost packets are not retransmitted).
    #[arg(long, env = "KAMERA_PULL_TRANSPORT", value_enum, default_value = "tcp")]
    pub pull_transport: PullTransport,

    /// A pulled camera's connection step (DESCRIBE, SETUP, PLAY) or gap between two frames
    /// longer than this ends its session; it reconnects with backoff.
    #[arg(long, env = "KAMERA_PULL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub pull_timeout: Duration,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `kamera_worker=debug`.
    #[arg(long, env = "KAMERA_LOG", default_value = "info")]
    pub log: String,

    /// Only check the configuration and exit (used by the operator's tests and by humans).
    #[arg(long)]
    pub check_config: bool,
}

impl Config {
    /// The cap on cameras held at once: `--max-cameras`, else one per `--camera` name and
    /// `--pull` camera, else [`DEFAULT_MAX_CAMERAS`].
    pub fn max_cameras(&self) -> usize {
        let pulled_only = self
            .pulls
            .iter()
            .filter(|p| !self.cameras.contains(&p.camera))
            .count();
        match self.max_cameras {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None if !self.cameras.is_empty() => self.cameras.len() + pulled_only,
            None => DEFAULT_MAX_CAMERAS.max(self.pulls.len()),
        }
    }

    /// Directory of frames for processors.
    pub fn frames_dir(&self) -> PathBuf {
        self.frames_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("frames"))
    }

    /// Path of the frame socket.
    pub fn frame_socket(&self) -> PathBuf {
        self.frame_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("frames.sock"))
    }

    /// The certificate and key files of `--tls-cert`/`--tls-key`, when HTTPS is on.
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Directory of recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// The pools of `--pool`, their addresses grouped under their names.
    pub fn pools(&self) -> Result<Vec<PoolSpec>, String> {
        group_pools(&self.pool_items)
    }
}

/// Parses `--pull` like [`crate::rtsp::source::parse_pull`], with an error that does not
/// quote the value (clap's own would, and the URL may carry a password).
#[derive(Debug, Clone, Copy)]
pub struct PullParser;

impl clap::builder::TypedValueParser for PullParser {
    type Value = PullSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PullSpec, clap::Error> {
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --pull value: {why}\n"),
            )
            .with_cmd(cmd)
        };
        let value = value.to_str().ok_or_else(|| invalid("not UTF-8".into()))?;
        crate::rtsp::source::parse_pull(value).map_err(invalid)
    }
}

/// How RTP travels from a pulled camera (`--pull-transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullTransport {
    Tcp,
    Udp,
}

/// A processor pool: its name (the FrameProcessor's, used as `processor` in metrics) and the
/// `host:port` endpoints serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    pub endpoints: Vec<String>,
}

/// One comma-separated item of `--pool`: `NAME=HOST:PORT` starts a pool, a bare `HOST:PORT`
/// adds an endpoint to the pool before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolItem {
    pub name: Option<String>,
    pub endpoint: String,
}

/// Parses one item of `--pool` (see [`PoolItem`]).
pub fn parse_pool_item(s: &str) -> Result<PoolItem, String> {
    let s = s.trim();
    let (name, endpoint) = match s.split_once('=') {
        Some((name, endpoint)) => {
            let name = name.trim();
            if !is_valid_camera_name(name) {
                return Err(format!(
                    "invalid pool name {name:?} in {s:?}: use 1-64 characters from a-z, A-Z, 0-9, '-', '_', '.'"
                ));
            }
            (Some(name.to_string()), endpoint.trim())
        }
        None => (None, s),
    };
    let valid_endpoint = endpoint.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !valid_endpoint {
        return Err(format!(
            "invalid pool endpoint {endpoint:?} in {s:?}: expected HOST:PORT, e.g. yolo-pool.cams.svc:7700"
        ));
    }
    Ok(PoolItem {
        name,
        endpoint: endpoint.to_string(),
    })
}

/// Groups `--pool` items into pools: `a=h1:1,h2:2,b=h3:3` is pool `a` on two endpoints and
/// pool `b` on one. A name given twice adds endpoints to the same pool.
pub fn group_pools(items: &[PoolItem]) -> Result<Vec<PoolSpec>, String> {
    let mut pools: Vec<PoolSpec> = Vec::new();
    let mut current: Option<usize> = None;
    for item in items {
        let index = match &item.name {
            Some(name) => match pools.iter().position(|p| &p.name == name) {
                Some(i) => i,
                None => {
                    pools.push(PoolSpec {
                        name: name.clone(),
                        endpoints: Vec::new(),
                    });
                    pools.len() - 1
                }
            },
            None => current.ok_or_else(|| {
                format!(
                    "pool endpoint {:?} has no pool name: write NAME=HOST:PORT first",
                    item.endpoint
                )
            })?,
        };
        current = Some(index);
        if !pools[index].endpoints.contains(&item.endpoint) {
            pools[index].endpoints.push(item.endpoint.clone());
        }
    }
    Ok(pools)
}

/// Camera names end up in URLs and file paths, so they are restricted to a safe alphabet.
pub fn parse_camera_name(name: &str) -> Result<String, String> {
    if is_valid_camera_name(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid camera name {name:?}: use 1-64 characters from a-z, A-Z, 0-9, '-', '_', '.', not starting with '.'"
        ))
    }
}

/// True when `name` can be used as a camera name (and therefore in paths and URLs).
pub fn is_valid_camera_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses a CORS origin: `*`, or `http(s)://host[:port]` exactly as browsers send it.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let valid = s == "*"
        || rest.is_some_and(|host| {
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                })
        });
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid origin {s:?}: expected `*` or scheme://host[:port] without a path, e.g. https://ops.example.com"
        ))
    }
}

/// Parses a human duration such as `200ms`, `5m` or `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a size such as `500MB`, `80Gi`, `1GiB` or `1048576`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number with an optional unit"))?;
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "k" | "K" | "KB" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "Ti" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("invalid size {s:?}: unknown unit {other:?}")),
    };
    Ok((value * multiplier) as u64)
}

/// Free space to keep on the data volume: a share of it, a size, or the smaller of both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinFree {
    /// A share of the volume, in percent.
    pub percent: Option<f64>,
    /// An absolute number of bytes.
    pub bytes: Option<u64>,
}

impl MinFree {
    pub const fn percent(p: f64) -> Self {
        MinFree {
            percent: Some(p),
            bytes: None,
        }
    }

    pub const fn bytes(b: u64) -> Self {
        MinFree {
            percent: None,
            bytes: Some(b),
        }
    }

    /// The threshold in bytes for a volume of `total` bytes.
    pub fn bytes_for(&self, total: u64) -> u64 {
        let share = self.percent.map(|p| (total as f64 * p / 100.0) as u64);
        match (share, self.bytes) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 0,
        }
    }
}

/// Parses `5%`, a size such as `1GiB`, or both separated by a comma (the smaller applies).
pub fn parse_min_free(s: &str) -> Result<MinFree, String> {
    let mut out = MinFree {
        percent: None,
        bytes: None,
    };
    for part in s.split(',') {
        match part.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid percentage {part:?}"))?;
                if !(0.0..100.0).contains(&p) {
                    return Err(format!("invalid percentage {part:?}: must be in 0..100"));
                }
                if out.percent.replace(p).is_some() {
                    return Err(format!("{s:?}: more than one percentage"));
                }
            }
            None => {
                if out.bytes.replace(parse_bytes(part)?).is_some() {
                    return Err(format!("{s:?}: more than one size"));
                }
            }
        }
    }
    Ok(out)
}

/// Parses a strictly positive, finite number (frame rates).
pub fn parse_positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("invalid value {s:?}: expected a positive number")),
    }
}

/// How frames are sampled on a GOP longer than the sampling interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameSampling {
    /// Keep the configured rate: decode from each keyframe up to the sample.
    Exact,
    /// Keyframes only: never decode a predicted frame; the rate is at most the keyframe rate.
    Keyframes,
}

/// How eagerly the recorder flushes to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncPolicy {
    /// After every fragment (at most one fragment is lost on power failure).
    Fragment,
    /// When a file is closed.
    Segment,
    /// Never; leave it to the kernel.
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_laptop() {
        let c = Config::try_parse_from(["kamera-worker"]).expect("defaults parse");
        assert_eq!(c.rtmp_listen.port(), 1935);
        assert_eq!(c.http_listen.port(), 8080);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.cameras.is_empty());
    }

    #[test]
    fn camera_flag_is_repeatable_and_validated() {
        let c = Config::try_parse_from(["kamera-worker", "--camera", "a", "--camera", "b-2"])
            .expect("valid cameras");
        assert_eq!(c.cameras, vec!["a", "b-2"]);
        assert!(Config::try_parse_from(["kamera-worker", "--camera", "../etc"]).is_err());
        assert!(Config::try_parse_from(["kamera-worker", "--camera", ""]).is_err());
    }

    #[test]
    fn cors_origins_are_repeatable_and_validated() {
        let c = Config::try_parse_from([
            "kamera-worker",
            "--http-cors-origin",
            "https://ops.example.com",
            "--http-cors-origin",
            "http://localhost:3000",
        ])
        .expect("valid origins");
        assert_eq!(
            c.http_cors_origins,
            vec!["https://ops.example.com", "http://localhost:3000"]
        );
        assert_eq!(parse_origin("*"), Ok("*".into()));
        for bad in [
            "ops.example.com",
            "https://ops.example.com/",
            "https://",
            "ftp://x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_and_free_space() {
        assert_eq!(parse_bytes("80Gi"), Ok(80 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("5 parsecs").is_err());
        assert_eq!(parse_min_free("5%"), Ok(MinFree::percent(5.0)));
        assert_eq!(parse_min_free("1GiB"), Ok(MinFree::bytes(1 << 30)));
        let both = parse_min_free("5%, 1GiB").unwrap();
        assert_eq!(
            both.bytes_for(10 << 30),
            512 << 20,
            "5 % of a 10 GiB volume"
        );
        assert_eq!(both.bytes_for(1 << 40), 1 << 30, "1 GiB of a 1 TiB disk");
        assert!(parse_min_free("5%,6%").is_err());
        assert!(parse_min_free("1GiB,2GiB").is_err());
        assert_eq!(MinFree::percent(5.0).bytes_for(1000), 50);
        assert!(parse_min_free("150%").is_err());
    }

    #[test]
    fn pull_flags_parse_and_never_echo_a_password() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("kamera-worker").chain(args.iter().copied()))
        };
        let c = parse(&[
            "--pull",
            "door=rtsp://10.0.0.7/s1",
            "--pull",
            "yard=rtsp://u:p@10.0.0.8:8554/s2",
            "--pull-transport",
            "udp",
        ])
        .expect("valid");
        let names: Vec<_> = c.pulls.iter().map(|p| p.camera.as_str()).collect();
        assert_eq!(names, ["door", "yard"]);
        assert_eq!(c.pull_transport, PullTransport::Udp);
        assert_eq!(c.pull_timeout, Duration::from_secs(10));
        assert!(!format!("{c:?}").contains("u:p@"), "credentials in Debug");
        let err = parse(&["--pull", "door=ftp://u:hunter2@h/x"]).expect_err("not rtsp");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn camera_cap_follows_the_pinned_cameras_unless_given() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("kamera-worker").chain(args.iter().copied()))
        };
        assert_eq!(
            parse(&[]).expect("defaults").max_cameras(),
            DEFAULT_MAX_CAMERAS
        );
        assert_eq!(parse(&["--camera", "a"]).expect("pinned").max_cameras(), 1);
        let two = parse(&["--camera", "a,b", "--max-cameras", "5"]).expect("explicit");
        assert_eq!(two.max_cameras(), 5);
        assert!(parse(&["--max-cameras", "0"]).is_err());
        let pulled =
            parse(&["--camera", "a", "--pull", "a=rtsp://h/1,b=rtsp://h/2"]).expect("pulls");
        assert_eq!(pulled.max_cameras(), 2, "a pulled camera has its place");
        let c = parse(&["--idle-release", "2s"]).expect("idle release");
        assert_eq!(c.idle_release, Duration::from_secs(2));
        assert_eq!(
            parse(&[]).expect("defaults").idle_release,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn pools_group_their_endpoints_from_flags_and_env_lists() {
        let c = Config::try_parse_from([
            "kamera-worker",
            "--pool",
            "yolo=yolo-pool.cams.svc:7700,10.0.0.8:7700",
            "--pool",
            "faces=127.0.0.1:7701",
            "--pool-token-dir",
            "/var/run/kamera-pools",
        ])
        .expect("valid pools");
        let pools = c.pools().expect("grouped");
        assert_eq!(
            pools,
            [
                PoolSpec {
                    name: "yolo".into(),
                    endpoints: vec!["yolo-pool.cams.svc:7700".into(), "10.0.0.8:7700".into()],
                },
                PoolSpec {
                    name: "faces".into(),
                    endpoints: vec!["127.0.0.1:7701".into()],
                },
            ]
        );
        assert_eq!(
            c.pool_token_dir,
            Some(PathBuf::from("/var/run/kamera-pools"))
        );
        for bad in [
            "yolo",
            "yolo=",
            "yolo=host",
            "yolo=host:0",
            "../x=h:1",
            "=h:1",
        ] {
            assert!(
                Config::try_parse_from(["kamera-worker", "--pool", bad]).is_err(),
                "{bad}"
            );
        }
        let orphan = Config::try_parse_from(["kamera-worker", "--pool", "h:1"]).expect("parses");
        assert!(orphan.pools().is_err(), "an endpoint needs a name first");
    }

    #[test]
    fn tls_cert_and_key_come_together() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("kamera-worker").chain(args.iter().copied()))
        };
        let c = parse(&["--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key"]).expect("both");
        let (cert, key) = c.tls_files().expect("HTTPS on");
        assert_eq!(
            (cert, key),
            (
                std::path::Path::new("/tls/tls.crt"),
                std::path::Path::new("/tls/tls.key")
            )
        );
        assert!(parse(&[]).expect("neither").tls_files().is_none());
        for alone in [
            ["--tls-cert", "/tls/tls.crt"],
            ["--tls-key", "/tls/tls.key"],
        ] {
            let err = parse(&alone).expect_err("one without the other");
            let other = if alone[0] == "--tls-cert" {
                "--tls-key"
            } else {
                "--tls-cert"
            };
            assert!(err.to_string().contains(other), "{err}");
        }
        assert_eq!(parse(&[]).expect("defaults").http_max_connections, 1024);
        assert!(parse(&["--http-max-connections", "0"]).is_err());
    }

    #[test]
    fn frame_rate_must_be_positive() {
        assert!(Config::try_parse_from(["kamera-worker", "--frame-fps", "0.5"]).is_ok());
        assert!(Config::try_parse_from(["kamera-worker", "--frame-fps", "0"]).is_err());
        assert!(Config::try_parse_from(["kamera-worker", "--frame-fps", "-1"]).is_err());
    }
}
