//! HTTPS with HTTP/2 end to end: the real worker with `--tls-cert`/`--tls-key` (certificates
//! made by the `openssl` CLI), read by `curl` (HTTP/2 through nghttp2) and `openssl s_client`.

#![allow(clippy::unwrap_used)] // A panic in a test is the failure message.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kamera_tests::{curl, default_clip, run_to_exit, wait_for, Publisher, Worker};

const LIVE: Duration = Duration::from_secs(30);

/// Makes a self-signed EC certificate for `localhost` and 127.0.0.1 in `dir`: `tls.crt`,
/// `tls.key` (the names of a `kubernetes.io/tls` Secret).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", "tls.key", "-out", "tls.crt"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("the openssl CLI (scripts/setup.sh installs it)");
    assert!(status.success(), "openssl req failed");
    (dir.join("tls.crt"), dir.join("tls.key"))
}

/// SHA-256 fingerprint of a PEM certificate, from `openssl x509` reading `pem` on stdin.
fn fingerprint_of(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), pem).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fingerprint of the certificate the worker serves now, as `openssl s_client` sees it.
fn served_fingerprint(w: &Worker) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &w.http.to_string()])
        .args(["-servername", "localhost", "-alpn", "h2"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    fingerprint_of(&out.stdout)
}

fn file_fingerprint(path: &Path) -> String {
    fingerprint_of(&std::fs::read(path).unwrap())
}

/// `curl -k` of `path` on `w`: (HTTP version, status, body).
fn get(w: &Worker, extra: &[&str], path: &str) -> (String, String, String) {
    let url = w.http_url(path);
    let mut args = vec!["-k", "-w", "\n%{http_version} %{http_code}"];
    args.extend(extra);
    args.push(&url);
    let out = curl(&args);
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", &out));
    let (version, status) = tail.split_once(' ').unwrap_or(("", ""));
    (version.into(), status.into(), body.into())
}

/// The part the playlist's `#EXT-X-PRELOAD-HINT` names: (media sequence number, part index).
fn preload_hint(playlist: &str) -> (u64, u64) {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let uri = line
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (m, p) = uri
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .unwrap();
    (m.parse().unwrap(), p.parse().unwrap())
}

/// A Secret volume as the kubelet writes it: `tls.crt`/`tls.key` are links through `..data`,
/// which is swapped atomically to a new directory at each update.
struct MountedSecret {
    dir: PathBuf,
    version: u32,
}

impl MountedSecret {
    fn new(dir: &Path) -> MountedSecret {
        let mut secret = MountedSecret {
            dir: dir.to_path_buf(),
            version: 0,
        };
        secret.update(|d| {
            self_signed(d);
        });
        for name in ["tls.crt", "tls.key"] {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        secret
    }

    /// Writes a new version with `fill`, then points `..data` at it in one rename.
    fn update(&mut self, fill: impl FnOnce(&Path)) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        fill(&self.dir.join(&version));
        let link = self.dir.join("..data_tmp");
        symlink(&version, &link).unwrap();
        std::fs::rename(&link, self.dir.join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

#[test]
fn https_negotiates_h2_and_multiplexes_blocking_reloads_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let w = Worker::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--hls-max-segment-duration",
        "1s",
        "--segment-duration",
        "2s",
    ]);
    let _p = Publisher::start(&default_clip(), &w.rtmp_url("cam"));
    let playlist = wait_for("the live playlist over HTTPS", LIVE, || {
        let (version, status, body) = get(&w, &["--http2"], "/hls/cam/stream.m3u8");
        (status == "200" && body.contains("#EXT-X-PRELOAD-HINT")).then_some((version, body))
    });
    assert_eq!(playlist.0, "2", "ALPN negotiated HTTP/2");
    let (version, status, _) = get(&w, &["--http1.1"], "/hls/cam/stream.m3u8");
    assert_eq!((version.as_str(), status.as_str()), ("1.1", "200"));
    // Nothing served names a scheme: the same URIs work over https.
    for path in [
        "/hls/cam/index.m3u8",
        "/hls/cam/stream.m3u8",
        "/cameras/cam",
        "/",
    ] {
        let (_, status, body) = get(&w, &["--http2"], path);
        assert_eq!(status, "200", "{path}");
        assert!(
            !body.contains("http://"),
            "an absolute URI in {path}:\n{body}"
        );
    }

    // Parts not made yet (the hinted one and parts of the segment after it): each request is
    // held until its part exists. curl waits to multiplex them as streams of one connection.
    let (m, p) = preload_hint(&playlist.1);
    let awaited = [(m, p), (m + 1, 0), (m + 1, 1), (m + 1, 2)];
    let bodies = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["-k", "--http2", "--parallel", "--parallel-max", "10"]
        .map(String::from)
        .to_vec();
    args.extend([
        "-w".into(),
        "%{http_version} %{http_code} %{num_connects}\n".into(),
    ]);
    for (i, (m, p)) in awaited.iter().enumerate() {
        args.push("-o".into());
        args.push(bodies.path().join(i.to_string()).display().to_string());
        args.push(w.http_url(&format!("/hls/cam/stream.m3u8?_HLS_msn={m}&_HLS_part={p}")));
    }
    let out = curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let transfers: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(transfers.len(), awaited.len(), "{out}");
    for t in &transfers {
        assert_eq!(&t[..2], ["2", "200"], "{out}");
    }
    let connections: u32 = transfers.iter().map(|t| t[2].parse::<u32>().unwrap()).sum();
    assert_eq!(connections, 1, "all on one connection:\n{out}");
    for (i, (m, p)) in awaited.iter().enumerate() {
        let body = std::fs::read_to_string(bodies.path().join(i.to_string())).unwrap();
        let part = format!("part{m}.{p}.m4s");
        assert!(body.contains(&part), "the answer lacks {part}:\n{body}");
    }

    // A recording, read in part over HTTP/2.
    let entry = wait_for("a closed recording listed", LIVE, || {
        let (_, status, body) = get(&w, &["--http2"], "/recordings/cam/");
        let list: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == "200").then_some(())?;
        list["recordings"]
            .as_array()?
            .iter()
            .find(|e| e["closed"] == true)
            .cloned()
    });
    let url = entry["url"].as_str().unwrap();
    let (version, status, body) = get(&w, &["--http2", "-r", "0-7"], url);
    assert_eq!((version.as_str(), status.as_str()), ("2", "206"));
    assert_eq!(&body.as_bytes()[4..8], b"ftyp", "the first box of an MP4");
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut secret = MountedSecret::new(&dir.path().join("tls"));
    let w = Worker::start(&[
        "--tls-cert",
        secret.cert().to_str().unwrap(),
        "--tls-key",
        secret.key().to_str().unwrap(),
    ]);
    let first = file_fingerprint(&secret.cert());
    assert_eq!(served_fingerprint(&w), first);

    secret.update(|d| {
        self_signed(d);
    });
    let renewed = file_fingerprint(&secret.cert());
    assert_ne!(renewed, first);
    wait_for("the renewed certificate served", LIVE, || {
        (served_fingerprint(&w) == renewed).then_some(())
    });

    // A new version whose key belongs to another certificate: refused, the renewed one stays.
    secret.update(|d| {
        self_signed(d);
        self_signed(&d.join("other"));
        std::fs::rename(d.join("other/tls.key"), d.join("tls.key")).unwrap();
    });
    let metric = |w: &Worker| {
        let (_, _, text) = get(w, &[], "/metrics");
        text.lines().find_map(|l| {
            l.strip_prefix("kamera_http_tls_files_valid ")
                .map(String::from)
        })
    };
    wait_for("the bad pair refused", LIVE, || {
        (metric(&w).as_deref() == Some("0")).then_some(())
    });
    assert_eq!(served_fingerprint(&w), renewed);
    assert!(
        w.log_text().contains("does not belong to the certificate"),
        "the refusal is logged:\n{}",
        w.log_text()
    );
    let (_, status, _) = get(&w, &["--http2"], "/healthz");
    assert_eq!(status, "200", "still serving");
}

#[test]
fn unusable_tls_files_stop_the_worker_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(&dir.path().join("a"));
    let (_, other_key) = self_signed(&dir.path().join("b"));
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let (ok, out) = run_to_exit(args, &data);
        assert!(!ok, "started with {args:?}: {out}");
        out
    };
    let cert = cert.to_str().unwrap();
    let err = run(&["--tls-cert", cert, "--tls-key", other_key.to_str().unwrap()]);
    assert!(
        err.contains("b/tls.key") && err.contains("does not belong"),
        "{err}"
    );
    let err = run(&["--tls-cert", cert, "--tls-key", "/nonexistent/tls.key"]);
    assert!(err.contains("/nonexistent/tls.key"), "{err}");
    let err = run(&["--tls-cert", cert]);
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn cleartext_http2_with_prior_knowledge_is_served() {
    let w = Worker::start(&[]);
    let (version, status, body) = get(&w, &["--http2-prior-knowledge"], "/healthz");
    assert_eq!(
        (version.as_str(), status.as_str(), body.trim()),
        ("2", "200", "ok")
    );
}
