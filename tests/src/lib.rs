//! Helpers for Kamera's end-to-end tests: start the real `kamera-worker` on free ports in a
//! temporary data directory, publish with the real `ffmpeg` CLI, and wait for conditions
//! with deadlines (never fixed sleeps).

#![allow(clippy::unwrap_used)] // Test helpers: a panic is a test failure with its message.

pub mod rtmp_client;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The worker binary: `$KAMERA_WORKER_BIN`, else `<target>/debug/kamera-worker`.
pub fn worker_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KAMERA_WORKER_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/kamera-worker");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        bin.display()
    );
    bin
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `kamera-worker`, killed (SIGTERM, then SIGKILL) when dropped.
pub struct Worker {
    child: Option<Child>,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Started with `--tls-cert`: the HTTP listener speaks HTTPS only.
    pub tls: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Worker {
    /// Starts a worker with a fresh data directory and `extra` flags; waits until ready.
    pub fn start(extra: &[&str]) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut w = Worker::start_in(&data_dir, extra);
        w._dir = Some(dir);
        w
    }

    /// Like [`Worker::start`], with extra environment variables for the worker process.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut w = Worker::launch(&data_dir, extra, env);
        w._dir = Some(dir);
        w
    }

    /// Starts a worker on `data_dir` (kept after the worker stops; restarts can reuse it).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Worker {
        Worker::launch(data_dir, extra, &[])
    }

    fn launch(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Worker {
        let rtmp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(worker_bin())
            .arg("--rtmp-listen")
            .arg(rtmp.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("KAMERA_LOG", "info,kamera_worker=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut w = Worker {
            child: Some(child),
            rtmp,
            http,
            data_dir: data_dir.to_path_buf(),
            log,
            tls: extra.contains(&"--tls-cert"),
            _dir: None,
        };
        let ready = wait_for_opt(Duration::from_secs(20), || {
            if let Some(status) = w.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("worker exited early ({status}):\n{}", w.log_text());
            }
            let status = if w.tls {
                curl(&[
                    "-k",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &w.http_url("/readyz"),
                ])
            } else {
                w.get("/readyz").0.to_string()
            };
            (status == "200").then_some(())
        });
        if ready.is_none() {
            panic!("worker not ready in 20 s:\n{}", w.log_text());
        }
        w
    }

    /// `rtmp://127.0.0.1:<port>/live/<key>`.
    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// `http://` (or `https://` with TLS) `127.0.0.1:<port><path>`.
    pub fn http_url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.http)
    }

    /// GET `path`: (status, body). Status 0 means the request failed to connect.
    pub fn get(&self, path: &str) -> (u16, String) {
        let reply = self.request(path, None);
        (reply.status, reply.body)
    }

    /// GET `path`, with `Authorization: Bearer <bearer>` when given. Status 0 means the
    /// request failed to connect.
    pub fn request(&self, path: &str, bearer: Option<&str>) -> Reply {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let mut request = agent.get(&self.http_url(path));
        if let Some(token) = bearer {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(_) => return Reply::default(),
        };
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                let value = response.header(&name)?.to_string();
                Some((name, value))
            })
            .collect();
        Reply {
            status: response.status(),
            headers,
            body: response.into_string().unwrap_or_default(),
        }
    }

    /// GET `path` as bytes; panics if the status is not 200.
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        let resp = ureq::get(&self.http_url(path)).call().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let mut out = Vec::new();
        resp.into_reader().read_to_end(&mut out).unwrap();
        out
    }

    /// GET `path` as JSON; panics if the status is not 200.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `/api/cameras` entry of `camera`, if the worker knows it.
    pub fn camera(&self, camera: &str) -> Option<Value> {
        let all = self.get_json("/api/cameras");
        all["cameras"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == camera)
            .cloned()
    }

    /// Waits until `camera` is live with its video configuration known.
    pub fn wait_live(&self, camera: &str, timeout: Duration) -> Value {
        wait_for(&format!("camera {camera} live"), timeout, || {
            self.camera(camera)
                .filter(|c| c["live"] == true && c["width"].is_number())
        })
    }

    /// The value of a metric sample, e.g. `kamera_ingest_frames_total{camera="a",track="video"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics");
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The worker process, to signal or kill it.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGKILL and waits (no cleanup by the worker).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
        if std::thread::panicking() {
            eprintln!(
                "---- worker log ({}) ----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// An HTTP answer: status (0 when the connection failed), headers and body as text.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn wait_for_opt<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Recording files of `camera` under `data` (closed `.mp4` and open `.part`), sorted by name.
pub fn recording_files(data: &Path, camera: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let cam = data.join("recordings").join(camera);
    for day in std::fs::read_dir(&cam).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(f.path());
        }
    }
    out.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    out
}

/// Runs the worker binary until it exits (or 20 s pass); returns (success, stderr + stdout).
pub fn run_to_exit(args: &[&str], data: &Path) -> (bool, String) {
    let mut child = Command::new(worker_bin())
        .args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the worker kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

/// Runs the `curl` CLI quietly with `args`; returns its standard output (empty when it failed).
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .expect("the curl CLI (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends a signal by name (`TERM`, `KILL`, `STOP`, `CONT`) with the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A test clip in FLV, encoded once per machine and shared by tests: H.264 + AAC
/// ([`clip`]) or H.265 in enhanced RTMP tags ([`hevc_clip`]).
#[derive(Debug, Clone)]
pub struct Clip {
    pub path: PathBuf,
    /// The `ffmpeg` that reads and publishes it (Debian's 5.1 reads no enhanced FLV).
    pub ffmpeg: PathBuf,
    /// Output options the publisher adds for this clip.
    pub publish_args: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// Average video bitrate of the file in bits per second (measured with ffprobe).
    pub video_bitrate: f64,
}

/// `<target>/kamera-test-clips/<name>`, written by `encode` (given a temporary path to write)
/// the first time any test asks for it; one encode at a time.
fn cached_clip(name: &str, encode: impl FnOnce(&Path) -> std::process::ExitStatus) -> PathBuf {
    static LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _guard = LOCK
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kamera-test-clips");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        assert!(
            encode(&tmp).success(),
            "encoding the test clip {name} failed"
        );
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// Encodes (once, cached under the target dir) a 10 s test-pattern clip with a tone.
/// `-c copy` publishing of this clip costs almost no CPU, unlike live encoding.
pub fn clip(width: u32, height: u32, fps: u32, gop: u32) -> Clip {
    let path = cached_clip(
        &format!("clip-{width}x{height}-{fps}fps-g{gop}.flv"),
        |tmp| {
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i"])
                .arg(format!(
                    "testsrc2=size={width}x{height}:rate={fps}:duration=10"
                ))
                .args([
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=44100:duration=10",
                ])
                .args([
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
                ])
                .args([
                    "-g",
                    &gop.to_string(),
                    "-keyint_min",
                    &gop.to_string(),
                    "-sc_threshold",
                    "0",
                ])
                .args(["-b:v", "1M", "-maxrate", "1M", "-bufsize", "500k"])
                .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
                .arg(tmp)
                .status()
                .unwrap()
        },
    );
    let video_bitrate = probe_video_bitrate(&path);
    Clip {
        path,
        ffmpeg: PathBuf::from("ffmpeg"),
        publish_args: Vec::new(),
        width,
        height,
        fps,
        gop,
        video_bitrate,
    }
}

/// The static FFmpeg of the `imageio-ffmpeg` package in the project's `.venv`
/// (`scripts/setup.d/10-python.sh`): it has libx265, and its flv muxer writes H.265 as
/// enhanced RTMP (`hvc1`), as OBS 30+ and FFmpeg 6.1+ publish it.
pub fn hevc_ffmpeg() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        let out = Command::new(&python)
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", python.display()));
        assert!(
            out.status.success(),
            "imageio-ffmpeg is missing from .venv (run scripts/setup.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// Encodes (once, cached under the target dir) a `seconds`-long H.265 test pattern with
/// libx265 (`-preset ultrafast`, no audio) into FLV with enhanced RTMP `hvc1` tags.
pub fn hevc_clip(width: u32, height: u32, fps: u32, gop: u32, seconds: u32) -> Clip {
    let ffmpeg = hevc_ffmpeg();
    let name = format!("hevc-{width}x{height}-{fps}fps-g{gop}-{seconds}s.flv");
    let path = cached_clip(&name, |tmp| {
        Command::new(&ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
            ))
            .args([
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg("-x265-params")
            .arg(format!(
                "log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0"
            ))
            .args(["-b:v", "1M", "-an", "-f", "flv"])
            .arg(tmp)
            .status()
            .unwrap()
    });
    // Debian's ffprobe cannot read enhanced FLV: the file's size over its length is close
    // enough for a clip without audio.
    let bytes = std::fs::metadata(&path).unwrap().len();
    Clip {
        video_bitrate: bytes as f64 * 8.0 / f64::from(seconds),
        path,
        ffmpeg,
        // Announce the enhanced codecs in `connect` (`fourCcList`), as OBS does.
        publish_args: vec!["-rtmp_enhanced_codecs".into(), "hvc1".into()],
        width,
        height,
        fps,
        gop,
    }
}

/// The default test clip: 640x360, 25 fps, GOP 1 s.
pub fn default_clip() -> Clip {
    clip(640, 360, 25, 25)
}

/// Sum of video packet sizes over the stream duration, in bits per second.
fn probe_video_bitrate(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=size,dts_time", "-of", "compact=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut bytes = 0f64;
    let mut first = None;
    let mut last = 0f64;
    for line in text.lines() {
        let field = |name: &str| {
            line.split('|')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let (Some(size), Some(t)) = (field("size"), field("dts_time")) else {
            continue;
        };
        bytes += size;
        first.get_or_insert(t);
        last = t;
    }
    let span = last - first.unwrap_or(0.0);
    assert!(span > 0.0, "could not measure the clip's bitrate");
    bytes * 8.0 / span
}

/// An `ffmpeg` process publishing to RTMP, killed when dropped.
pub struct Publisher {
    child: Option<Child>,
    pub url: String,
}

impl Publisher {
    /// Publishes `clip` in a loop at real-time speed without re-encoding.
    pub fn start(clip: &Clip, url: &str) -> Publisher {
        let child = Command::new(&clip.ffmpeg)
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(&clip.path)
            .args(["-c", "copy"])
            .args(&clip.publish_args)
            .args(["-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Publisher {
            child: Some(child),
            url: url.to_string(),
        }
    }

    /// Publishes the first `seconds` of `clip` at real-time speed, then ends the stream
    /// cleanly (a short-lived camera).
    pub fn start_for(clip: &Clip, url: &str, seconds: f64) -> Publisher {
        let child = Command::new(&clip.ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(&clip.path)
            .args(["-t", &seconds.to_string(), "-c", "copy"])
            .args(&clip.publish_args)
            .args(["-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Publisher {
            child: Some(child),
            url: url.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits up to `timeout` for ffmpeg to exit; returns its success flag and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(bool, String)> {
        let child = self.child.as_mut()?;
        let status = wait_for_opt(timeout, || child.try_wait().unwrap())?;
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        self.child = None;
        Some((status.success(), err))
    }

    /// SIGKILL, as if the camera lost power.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill9();
    }
}
