//! The network transport's messages (docs/frame-protocol.md, "Network transport"): JSON lines
//! like the Unix socket, except that the worker dials, says `hello` with its token and the
//! versions it speaks, and each `frame` line is followed by `length` bytes of JPEG.
//!
//! Pure: encoding, parsing and validation, no sockets. Parsing is strict about structure and
//! lenient about extra fields and unknown message types, so newer pools work with older workers.

use serde::{Deserialize, Serialize};

use crate::frames::protocol::FrameNote;

/// Versions of the network transport this worker speaks, oldest first.
pub const VERSIONS: &[u32] = &[1];
/// Longest line accepted from a pool (an ack with its detections).
pub const MAX_LINE: usize = 256 * 1024;
/// Largest JPEG sent inline; pools accept at least this much (the SDK's default limit).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Longest token sent (a token file beyond it is an error, not a token).
pub const MAX_TOKEN: usize = 4096;

/// Worker → pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToPool<'a> {
    Hello {
        versions: &'a [u32],
        camera: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
        worker: &'a str,
        /// The worker's extraction rate for this camera.
        fps: f64,
    },
    /// Followed by `length` bytes of JPEG.
    Frame {
        camera: &'a str,
        seq: u64,
        captured_at: &'a str,
        pts_ms: i64,
        width: u32,
        height: u32,
        length: usize,
    },
    /// Sent every [`super::link::PING_EVERY`]; the pool answers `pong`.
    Ping,
    Bye {
        reason: &'a str,
    },
}

impl ToPool<'_> {
    /// The message as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| br#"{"type":"ping"}"#.to_vec());
        line.push(b'\n');
        line
    }
}

/// The bytes of one `frame` message: its line and the JPEG.
pub fn frame_message(note: &FrameNote, jpeg: &[u8]) -> Vec<u8> {
    let line = ToPool::Frame {
        camera: &note.camera,
        seq: note.seq,
        captured_at: &note.captured_at,
        pts_ms: note.pts_ms,
        width: note.width,
        height: note.height,
        length: jpeg.len(),
    }
    .to_line();
    let mut out = Vec::with_capacity(line.len() + jpeg.len());
    out.extend_from_slice(&line);
    out.extend_from_slice(jpeg);
    out
}

/// Pool → worker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromPool {
    Welcome(Welcome),
    Ack(PoolAck),
    Pong,
    Error {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Welcome {
    /// The version the pool chose among the worker's.
    pub version: u32,
    /// The pool's own name for itself (informational; metrics use the `--pool` name).
    #[serde(default)]
    pub processor: Option<String>,
    /// Credits for this camera: frames sent and not yet acknowledged.
    #[serde(default = "one")]
    pub max_in_flight: u32,
    /// Frames per second the pool wants (at most the worker's rate); `null` = all.
    #[serde(default)]
    pub fps: Option<f64>,
}

fn one() -> u32 {
    1
}

/// An ack, with what a batching pool reports about the batch the frame was in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PoolAck {
    pub camera: String,
    pub seq: u64,
    #[serde(default)]
    pub detections: Vec<serde_json::Value>,
    /// Frames in the batch this one was processed in.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Time the model took for that batch.
    #[serde(default)]
    pub inference_seconds: Option<f64>,
}

/// Why a message from a pool is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("the pool chose version {chose}, which this worker does not speak ({VERSIONS:?})")]
    Version { chose: u32 },
    #[error("welcome with max_in_flight {0} (must be 1-64)")]
    MaxInFlight(u32),
    #[error("welcome with fps {0} (must be a positive number)")]
    Fps(f64),
}

/// Parses one line from a pool. `Ok(None)`: a well-formed message of a type this worker does
/// not know (ignored).
pub fn parse(line: &[u8]) -> Result<Option<FromPool>, WireError> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| WireError::Invalid(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| WireError::Invalid("not an object with a string \"type\"".into()))?
        .to_string();
    if !matches!(kind.as_str(), "welcome" | "ack" | "pong" | "error") {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| WireError::Invalid(format!("{kind}: {e}")))
}

impl Welcome {
    /// Checks the pool's choices against what this worker offered.
    pub fn validate(&self) -> Result<(), WireError> {
        if !VERSIONS.contains(&self.version) {
            return Err(WireError::Version {
                chose: self.version,
            });
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return Err(WireError::MaxInFlight(self.max_in_flight));
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(WireError::Fps(fps));
            }
        }
        Ok(())
    }
}

/// A token as read from its file: surrounding whitespace removed, empty = none.
pub fn clean_token(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hello_carries_versions_camera_and_token() {
        let line = ToPool::Hello {
            versions: VERSIONS,
            camera: "door",
            token: Some("s3cret"),
            worker: "kamera-worker/0.1.0",
            fps: 1.0,
        }
        .to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"hello","versions":[1],"camera":"door","token":"s3cret",
                "worker":"kamera-worker/0.1.0","fps":1.0})
        );
        let anonymous = ToPool::Hello {
            versions: VERSIONS,
            camera: "door",
            token: None,
            worker: "w",
            fps: 1.0,
        }
        .to_line();
        assert!(!String::from_utf8_lossy(&anonymous).contains("token"));
    }

    #[test]
    fn a_frame_is_its_line_then_exactly_length_bytes() {
        let note = FrameNote {
            camera: "door".into(),
            seq: 7,
            path: "/not/sent".into(),
            captured_at: "2026-11-24T08:00:01.000Z".into(),
            pts_ms: 7000,
            width: 320,
            height: 240,
            captured: None,
            jpeg: None,
        };
        let jpeg = [0xff, 0xd8, b'\n', 0x00, 0xff, 0xd9];
        let msg = frame_message(&note, &jpeg);
        let newline = msg.iter().position(|b| *b == b'\n').unwrap();
        let v: serde_json::Value = serde_json::from_slice(&msg[..newline]).unwrap();
        assert_eq!(v["type"], "frame");
        assert_eq!(v["length"], 6);
        assert_eq!(v["seq"], 7);
        assert!(v.get("path").is_none(), "pools get bytes, not paths");
        assert_eq!(&msg[newline + 1..], &jpeg);
    }

    #[test]
    fn welcome_acks_and_errors_parse() {
        let w = parse(br#"{"type":"welcome","version":1,"processor":"yolo","max_in_flight":2,"fps":null,"server":"x"}"#)
            .unwrap();
        let Some(FromPool::Welcome(w)) = w else {
            panic!("{w:?}")
        };
        assert_eq!((w.version, w.max_in_flight, w.fps), (1, 2, None));
        assert!(w.validate().is_ok());
        let a = parse(br#"{"type":"ack","camera":"door","seq":3,"detections":[{"label":"car"}],"batch_size":5,"inference_seconds":0.02}"#)
            .unwrap();
        let Some(FromPool::Ack(a)) = a else {
            panic!("{a:?}")
        };
        assert_eq!((a.seq, a.batch_size, a.detections.len()), (3, Some(5), 1));
        assert_eq!(
            parse(br#"{"type":"error","code":"unauthorized","message":"bad token"}"#).unwrap(),
            Some(FromPool::Error {
                code: "unauthorized".into(),
                message: "bad token".into()
            })
        );
        assert_eq!(
            parse(br#"{"type":"stats","x":1}"#).unwrap(),
            None,
            "unknown types are ignored"
        );
    }

    #[test]
    fn welcomes_outside_the_offer_are_refused() {
        let ok = Welcome {
            version: 1,
            processor: None,
            max_in_flight: 1,
            fps: Some(2.0),
        };
        assert!(ok.validate().is_ok());
        let bad = [
            (
                Welcome {
                    version: 9,
                    ..ok.clone()
                },
                WireError::Version { chose: 9 },
            ),
            (
                Welcome {
                    max_in_flight: 0,
                    ..ok.clone()
                },
                WireError::MaxInFlight(0),
            ),
            (
                Welcome {
                    max_in_flight: 65,
                    ..ok.clone()
                },
                WireError::MaxInFlight(65),
            ),
            (
                Welcome {
                    fps: Some(-1.0),
                    ..ok.clone()
                },
                WireError::Fps(-1.0),
            ),
        ];
        for (w, e) in bad {
            assert_eq!(w.validate(), Err(e));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for line in [
            &b""[..],
            b"nope",
            b"{}",
            b"[1,2]",
            b"{\"type\":7}",
            b"{\"type\":\"ack\",\"seq\":\"x\"}",
            b"{\"type\":\"welcome\"}",
            b"\xff\xfe",
        ] {
            assert!(parse(line).is_err(), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn tokens_are_trimmed_and_empty_means_none() {
        assert_eq!(clean_token("abc\n"), Some("abc"));
        assert_eq!(clean_token("  \n"), None);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&line);
        }
    }
}
