//! The frame protocol's messages (docs/frame-protocol.md): JSON objects, one per line, over
//! a Unix stream socket. Parsing is strict about structure and lenient about extra fields, so
//! newer processors keep working with older workers.

use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The protocol version this worker speaks.
pub const VERSION: u32 = 1;
/// Longest line accepted from a processor; a longer one is garbage and ends the connection.
pub const MAX_LINE: usize = 256 * 1024;
/// Most detections kept from one ack (the rest are ignored).
pub const MAX_DETECTIONS: usize = 256;
/// Longest processor name or detection label kept, in bytes (longer labels are cut).
pub const MAX_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Inbound {
    Hello(Hello),
    Ack(Ack),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub processor: String,
    #[serde(default = "all_cameras")]
    pub cameras: Vec<String>,
    #[serde(default = "one")]
    pub max_in_flight: u32,
    /// Frames per second this processor wants (at most the camera's rate).
    #[serde(default)]
    pub fps: Option<f64>,
}

fn all_cameras() -> Vec<String> {
    vec!["*".to_string()]
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Ack {
    pub camera: String,
    pub seq: u64,
    #[serde(default)]
    pub detections: Vec<serde_json::Value>,
}

/// One detection as the worker keeps it (label, confidence and box; other fields dropped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
}

impl Detection {
    /// Reads what it can from one entry of an ack's `detections`; entries that are not
    /// objects are ignored, a missing label becomes `unknown`.
    pub fn from_value(v: &serde_json::Value) -> Option<Self> {
        let obj = v.as_object()?;
        let label = obj
            .get("label")
            .and_then(|l| l.as_str())
            .map(clean_label)
            .unwrap_or_else(|| "unknown".to_string());
        let confidence = obj
            .get("confidence")
            .and_then(|c| c.as_f64())
            .filter(|c| c.is_finite());
        let bbox = obj.get("box").and_then(|b| {
            let a = b.as_array()?;
            if a.len() != 4 {
                return None;
            }
            let mut out = [0.0; 4];
            for (o, v) in out.iter_mut().zip(a) {
                *o = v.as_f64().filter(|x| x.is_finite())?;
            }
            Some(out)
        });
        Some(Self {
            label,
            confidence,
            bbox,
        })
    }
}

/// Labels become metric label values: keep them printable and at most [`MAX_NAME`] bytes
/// (cut on a character boundary).
pub fn clean_label(s: &str) -> String {
    let mut cleaned = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if cleaned.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        cleaned.push(c);
    }
    if cleaned.is_empty() {
        "unknown".to_string()
    } else {
        cleaned
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    /// The answer to a valid hello.
    Welcome {
        version: u32,
        worker: String,
        /// The worker's extraction rate (frames per second per camera).
        fps: f64,
    },
    Frame(FrameNote),
    /// Sent before the worker closes a connection for a protocol error.
    Error {
        message: String,
    },
    /// The worker is shutting down; reconnect later.
    Bye {
        reason: String,
    },
}

/// A new frame file, as processors are told about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameNote {
    pub camera: String,
    pub seq: u64,
    pub path: String,
    /// When the access unit reached the worker (RFC 3339, UTC, milliseconds).
    pub captured_at: String,
    /// Presentation time within the publish session, in milliseconds.
    pub pts_ms: i64,
    pub width: u32,
    pub height: u32,
    #[serde(skip)]
    pub captured: Option<SystemTime>,
    /// The JPEG itself, for the network transport (pools get the bytes inline, not a path).
    #[serde(skip)]
    pub jpeg: Option<Bytes>,
}

impl Outbound {
    /// The message as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","message":"unserialisable"}"#.to_string());
        s.push('\n');
        s
    }
}

/// Why a hello is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HelloError {
    #[error("unsupported protocol version {0} (this worker speaks {VERSION})")]
    Version(u32),
    #[error("processor name must be 1-{MAX_NAME} printable characters")]
    Name,
    #[error("max_in_flight must be 1-64")]
    MaxInFlight,
    #[error("fps must be a positive number")]
    Fps,
    #[error("cameras must list at least one name or \"*\"")]
    Cameras,
}

impl Hello {
    pub fn validate(&self) -> Result<(), HelloError> {
        if self.version != VERSION {
            return Err(HelloError::Version(self.version));
        }
        let name_ok = !self.processor.is_empty()
            && self.processor.len() <= MAX_NAME
            && self.processor.chars().all(|c| !c.is_control());
        if !name_ok {
            return Err(HelloError::Name);
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return Err(HelloError::MaxInFlight);
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(HelloError::Fps);
            }
        }
        if self.cameras.is_empty() {
            return Err(HelloError::Cameras);
        }
        Ok(())
    }

    /// True when this processor asked for `camera` (`*` matches all, `lobby-*` a prefix).
    pub fn wants(&self, camera: &str) -> bool {
        self.cameras.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => camera.starts_with(prefix),
            None => p == camera,
        })
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("line longer than {0} bytes")]
    TooLong(usize),
}

/// Reads one line (without its newline) of at most `max` bytes, or `None` at end of stream;
/// blank lines are skipped. Cancel-safe: a partial line stays in `buf` for the next call.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Option<Vec<u8>>, LineError> {
    loop {
        let limit = (max + 1).saturating_sub(buf.len()) as u64;
        let n = (&mut *reader).take(limit).read_until(b'\n', buf).await?;
        if buf.last() == Some(&b'\n') {
            let mut line = std::mem::take(buf);
            line.pop();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line));
        }
        if buf.len() > max {
            return Err(LineError::TooLong(max));
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_from_design_parses_with_defaults() {
        let m: Inbound = serde_json::from_str(
            r#"{"type":"hello","version":1,"processor":"yolo","cameras":["*"],"max_in_flight":1}"#,
        )
        .expect("hello");
        let Inbound::Hello(h) = m else {
            panic!("not a hello")
        };
        assert!(h.validate().is_ok());
        assert!(h.wants("front-door"));
        let minimal: Inbound =
            serde_json::from_str(r#"{"type":"hello","version":1,"processor":"p","extra":true}"#)
                .expect("minimal hello");
        let Inbound::Hello(h) = minimal else {
            panic!("not a hello")
        };
        assert_eq!(
            (h.max_in_flight, h.cameras.clone()),
            (1, vec!["*".to_string()])
        );
    }

    #[test]
    fn hello_is_validated() {
        let base = Hello {
            version: 1,
            processor: "p".into(),
            cameras: vec!["lobby-*".into(), "door".into()],
            max_in_flight: 1,
            fps: None,
        };
        assert!(base.wants("lobby-1") && base.wants("door") && !base.wants("doors"));
        assert_eq!(
            Hello {
                version: 2,
                ..base.clone()
            }
            .validate(),
            Err(HelloError::Version(2))
        );
        assert_eq!(
            Hello {
                processor: String::new(),
                ..base.clone()
            }
            .validate(),
            Err(HelloError::Name)
        );
        assert_eq!(
            Hello {
                max_in_flight: 0,
                ..base.clone()
            }
            .validate(),
            Err(HelloError::MaxInFlight)
        );
        assert_eq!(
            Hello {
                fps: Some(0.0),
                ..base.clone()
            }
            .validate(),
            Err(HelloError::Fps)
        );
        assert_eq!(
            Hello {
                cameras: vec![],
                ..base
            }
            .validate(),
            Err(HelloError::Cameras)
        );
    }

    #[test]
    fn garbage_does_not_parse() {
        for line in [
            "",
            "nope",
            "{}",
            r#"{"type":"frame"}"#,
            r#"{"type":"ack","seq":"x"}"#,
            "[1,2]",
        ] {
            assert!(serde_json::from_str::<Inbound>(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn detections_are_read_leniently() {
        let v: serde_json::Value = serde_json::json!([
            {"label":"person","confidence":0.91,"box":[1,2,3,4]},
            {"confidence":0.5},
            {"label":"car","box":[1,2]},
            7
        ]);
        let d: Vec<Detection> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Detection::from_value)
            .collect();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].bbox, Some([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(d[1].label, "unknown");
        assert_eq!(d[2].bbox, None);
    }

    #[test]
    fn labels_are_cut_to_max_name_bytes_on_a_character_boundary() {
        let long = clean_label(&"\u{20ac}".repeat(100));
        assert!(long.len() <= MAX_NAME, "{} bytes", long.len());
        assert_eq!(long, "\u{20ac}".repeat(MAX_NAME / 3));
        assert_eq!(clean_label(&"a".repeat(100)).len(), MAX_NAME);
        assert_eq!(clean_label("per\u{0}son\n"), "person");
        assert_eq!(clean_label("\u{7}"), "unknown");
    }

    #[test]
    fn frame_note_serialises_as_in_the_design() {
        let line = Outbound::Frame(FrameNote {
            camera: "front-door".into(),
            seq: 1234,
            path: "/f/front-door/00001234.jpg".into(),
            captured_at: "2026-11-24T08:00:01.000Z".into(),
            pts_ms: 61000,
            width: 1920,
            height: 1080,
            captured: None,
            jpeg: None,
        })
        .to_line();
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("json");
        assert_eq!(v["type"], "frame");
        assert_eq!(v["seq"], 1234);
        assert_eq!(v["width"], 1920);
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    }
}
