//! What a pulled camera is: its name and RTSP URL (`--pull NAME=URL`), the URL as logs and
//! the API show it (user information redacted), and its credentials (read from
//! `--pull-credentials-dir` at every connection attempt, so a rotated Secret needs no restart).
//!
//! Pure apart from [`Credentials::load`], which reads one small file or two.

use std::path::{Path, PathBuf};

use url::Url;

use crate::config::is_valid_camera_name;

/// What replaces user information in a URL shown to anyone.
const REDACTED: &str = "redacted";

/// One `--pull NAME=URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct PullSpec {
    pub camera: String,
    /// The URL without user information (what is sent to the camera and shown).
    pub url: Url,
    /// User information given in the URL itself, used when no credentials file exists.
    url_credentials: Option<Credentials>,
}

impl std::fmt::Debug for PullSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSpec")
            .field("camera", &self.camera)
            .field("url", &self.redacted_url())
            .finish_non_exhaustive()
    }
}

impl PullSpec {
    /// The URL as logs and `/api/cameras` show it: `rtsp://redacted@host/path` when the URL
    /// carried user information, else the URL as given.
    pub fn redacted_url(&self) -> String {
        match &self.url_credentials {
            Some(_) => {
                let mut shown = self.url.clone();
                let _ = shown.set_username(REDACTED);
                shown.to_string()
            }
            None => self.url.to_string(),
        }
    }

    /// The credentials to use now: the camera's file under `dir` if there is one, else those
    /// in the URL, else none (the camera may need none).
    pub fn credentials(&self, dir: Option<&Path>) -> Result<Option<Credentials>, CredentialsError> {
        if let Some(dir) = dir {
            if let Some(found) = Credentials::load(dir, &self.camera)? {
                return Ok(Some(found));
            }
        }
        Ok(self.url_credentials.clone())
    }
}

/// Parses one `--pull` value: `NAME=rtsp://[user:password@]host[:port]/path`.
pub fn parse_pull(s: &str) -> Result<PullSpec, String> {
    let s = s.trim();
    let Some((camera, url)) = s.split_once('=') else {
        return Err(
            "expected NAME=rtsp://host/path, e.g. front-door=rtsp://10.0.0.7/stream1".into(),
        );
    };
    let camera = camera.trim();
    if !is_valid_camera_name(camera) {
        return Err(format!(
            "invalid camera name {camera:?}: use 1-64 characters from a-z, A-Z, 0-9, '-', '_', '.', not starting with '.'"
        ));
    }
    // Errors never echo the URL: it may carry a password.
    let mut url = Url::parse(url.trim())
        .map_err(|e| format!("invalid RTSP URL for camera {camera:?}: {e}"))?;
    if url.scheme() != "rtsp" || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "invalid RTSP URL for camera {camera:?}: expected rtsp://host[:port]/path"
        ));
    }
    let url_credentials =
        (!url.username().is_empty() || url.password().is_some()).then(|| Credentials {
            username: percent_decode(url.username()),
            password: percent_decode(url.password().unwrap_or("")),
        });
    // Not sent on the wire: RTSP authenticates with headers.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(PullSpec {
        camera: camera.to_string(),
        url,
        url_credentials,
    })
}

/// A camera's user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading credentials {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials {path}: expected one line `user:password`")]
    Format { path: PathBuf },
}

impl Credentials {
    /// The credentials of `camera` under `dir`, in one of two layouts:
    /// - `<dir>/<camera>/username` and `<dir>/<camera>/password` (a Kubernetes Secret of type
    ///   `kubernetes.io/basic-auth` mounted at `<dir>/<camera>`);
    /// - `<dir>/<camera>`, a file holding `user:password` (the password may contain `:`).
    ///
    /// `None` when neither exists.
    pub fn load(dir: &Path, camera: &str) -> Result<Option<Self>, CredentialsError> {
        let path = dir.join(camera);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        if path.is_dir() {
            let username = read(&path.join("username"))?;
            let password = read(&path.join("password"))?;
            return Ok(Some(Self {
                username: strip_newline(&username).to_string(),
                password: strip_newline(&password).to_string(),
            }));
        }
        if !path.exists() {
            return Ok(None);
        }
        let text = read(&path)?;
        let line = strip_newline(&text);
        match line.split_once(':') {
            Some((username, password)) if !line.contains('\n') => Ok(Some(Self {
                username: username.to_string(),
                password: password.to_string(),
            })),
            _ => Err(CredentialsError::Format { path }),
        }
    }
}

/// Drops one trailing newline (`echo` and editors add it; Secrets usually have none).
fn strip_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// Decodes `%XX` escapes of URL user information (a password with `@` is written `%40`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_names_a_camera_and_an_rtsp_url() {
        let spec = parse_pull("front-door=rtsp://10.0.0.7:554/stream1").expect("valid");
        assert_eq!(spec.camera, "front-door");
        assert_eq!(spec.url.as_str(), "rtsp://10.0.0.7:554/stream1");
        assert_eq!(spec.redacted_url(), "rtsp://10.0.0.7:554/stream1");
        assert_eq!(spec.credentials(None).expect("none"), None);
        for bad in [
            "rtsp://10.0.0.7/stream1",
            "../x=rtsp://h/p",
            "cam=http://h/p",
            "cam=rtsps://h/p",
            "cam=not a url",
            "cam=rtsp:///p",
        ] {
            assert!(parse_pull(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn credentials_in_the_url_are_used_but_never_shown() {
        let spec = parse_pull("cam=rtsp://admin:s%40cret@cam.local/live").expect("valid");
        assert_eq!(
            spec.url.as_str(),
            "rtsp://cam.local/live",
            "stripped from the wire URL"
        );
        assert_eq!(spec.redacted_url(), "rtsp://redacted@cam.local/live");
        assert!(!format!("{spec:?}").contains("cret"));
        let creds = spec.credentials(None).expect("ok").expect("from the URL");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "s@cret")
        );
        assert!(!format!("{creds:?}").contains("cret"));
        let err = parse_pull("cam=rtsp://admin:s3cret@[bad/live").expect_err("invalid");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn credentials_files_win_over_the_url_in_both_layouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), "viewer:pa:ss\n").expect("write");
        std::fs::create_dir(dir.path().join("b")).expect("mkdir");
        std::fs::write(dir.path().join("b/username"), "admin").expect("write");
        std::fs::write(dir.path().join("b/password"), "secret\n").expect("write");
        std::fs::write(dir.path().join("c"), "no colon").expect("write");

        let a = parse_pull("a=rtsp://u:p@h/x").expect("valid");
        let got = a.credentials(Some(dir.path())).expect("ok").expect("some");
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("viewer", "pa:ss")
        );
        let got = Credentials::load(dir.path(), "b")
            .expect("ok")
            .expect("some");
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("admin", "secret")
        );
        assert!(matches!(
            Credentials::load(dir.path(), "c"),
            Err(CredentialsError::Format { .. })
        ));
        let d = parse_pull("d=rtsp://u:p@h/x").expect("valid");
        let got = d
            .credentials(Some(dir.path()))
            .expect("ok")
            .expect("from the URL");
        assert_eq!(got.username, "u");
    }
}
