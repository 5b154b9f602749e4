//! Who may publish: the camera allowlist (`--camera`) and publish keys (`--publish-key-file`).

use std::collections::HashMap;
use std::path::Path;

use subtle::ConstantTimeEq;

use crate::config::is_valid_camera_name;

/// Why a publish request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid camera name {0:?}")]
    InvalidName(String),
    #[error("camera {0:?} is not in the configured camera list")]
    UnknownCamera(String),
    #[error("wrong or missing publish key for camera {0:?}")]
    BadKey(String),
}

impl Refusal {
    /// Label for `kamera_ingest_sessions_total{result}`.
    pub fn result_label(&self) -> &'static str {
        match self {
            Refusal::InvalidName(_) => "invalid_name",
            Refusal::UnknownCamera(_) => "unknown_camera",
            Refusal::BadKey(_) => "bad_key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read publish key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("publish key file {path}, line {line}: expected `camera=key`")]
    Syntax { path: String, line: usize },
}

/// The publish rules of one worker.
#[derive(Debug, Default, Clone)]
pub struct PublishPolicy {
    /// Accepted camera names; empty accepts any valid name.
    pub cameras: Vec<String>,
    /// Per-camera keys; `*` applies to cameras without their own.
    pub keys: HashMap<String, String>,
}

impl PublishPolicy {
    /// Reads a key file: `camera=key` per line, `#` comments, `*=key` as the default.
    pub fn load_keys(path: &Path) -> Result<HashMap<String, String>, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        parse_keys(&text).map_err(|line| KeyFileError::Syntax {
            path: path.display().to_string(),
            line,
        })
    }

    /// Checks a stream key as sent by the publisher (`<camera>` or `<camera>?key=<key>`) and
    /// returns the camera name.
    pub fn authorize(&self, stream_key: &str) -> Result<String, Refusal> {
        let (camera, query) = stream_key.split_once('?').unwrap_or((stream_key, ""));
        if !is_valid_camera_name(camera) {
            return Err(Refusal::InvalidName(camera.chars().take(80).collect()));
        }
        if !self.cameras.is_empty() && !self.cameras.iter().any(|c| c == camera) {
            return Err(Refusal::UnknownCamera(camera.to_string()));
        }
        let expected = self.keys.get(camera).or_else(|| self.keys.get("*"));
        if let Some(expected) = expected {
            let given = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("key="))
                .unwrap_or("");
            let same: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
            if !same {
                return Err(Refusal::BadKey(camera.to_string()));
            }
        }
        Ok(camera.to_string())
    }
}

/// Parses key file text; the error is the 1-based line number of a bad line.
fn parse_keys(text: &str) -> Result<HashMap<String, String>, usize> {
    let mut keys = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (camera, key) = line.split_once('=').ok_or(i + 1)?;
        let (camera, key) = (camera.trim(), key.trim());
        if key.is_empty() || (camera != "*" && !is_valid_camera_name(camera)) {
            return Err(i + 1);
        }
        keys.insert(camera.to_string(), key.to_string());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cameras: &[&str], keys: &str) -> PublishPolicy {
        PublishPolicy {
            cameras: cameras.iter().map(|s| s.to_string()).collect(),
            keys: parse_keys(keys).expect("valid keys"),
        }
    }

    #[test]
    fn any_valid_name_is_accepted_by_default() {
        assert_eq!(
            policy(&[], "").authorize("front-door"),
            Ok("front-door".into())
        );
        assert!(matches!(
            policy(&[], "").authorize("../x"),
            Err(Refusal::InvalidName(_))
        ));
        assert!(matches!(
            policy(&[], "").authorize(""),
            Err(Refusal::InvalidName(_))
        ));
    }

    #[test]
    fn allowlist_refuses_unknown_cameras() {
        let p = policy(&["a"], "");
        assert_eq!(p.authorize("a"), Ok("a".into()));
        assert_eq!(p.authorize("b"), Err(Refusal::UnknownCamera("b".into())));
    }

    #[test]
    fn keys_are_checked_per_camera_with_a_default() {
        let p = policy(&[], "# keys\na=secret-a\n*=shared\n");
        assert_eq!(p.authorize("a?key=secret-a"), Ok("a".into()));
        assert_eq!(
            p.authorize("a?key=shared"),
            Err(Refusal::BadKey("a".into()))
        );
        assert_eq!(p.authorize("a"), Err(Refusal::BadKey("a".into())));
        assert_eq!(p.authorize("b?x=1&key=shared"), Ok("b".into()));
    }

    #[test]
    fn bad_key_file_lines_are_reported() {
        assert_eq!(parse_keys("a=1\nnonsense\n"), Err(2));
        assert_eq!(parse_keys("a=\n"), Err(1));
    }
}
