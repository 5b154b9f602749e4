//! First step of a reconcile: reject a spec the worker could not run, with a message for a human.
//!
//! The CRD schema already checks most of this; checking again here covers clusters that run an
//! older CRD and keeps the builders free of error handling.

use std::time::Duration;

use crate::crd::camera::{Camera, CameraSpec, MAX_RTSP_URL};

/// Why a Camera's spec cannot be reconciled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The name cannot name a Service or a stream.
    #[error("camera name {0:?} must be a DNS-1035 label of at most 58 characters (it names the Service `<camera>-http`)")]
    InvalidName(String),
    /// A duration field does not parse or is zero.
    #[error("{field} {value:?} is not a positive duration such as 200ms, 5m or 7d")]
    BadDuration {
        /// The field, as written in the spec.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// A size field does not parse.
    #[error("{field} {value:?} is not a size such as 500M or 80Gi")]
    BadSize {
        /// The field, as written in the spec.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The longest segment is not longer than a part, or longer than a minute.
    #[error("hls.maxSegmentDuration {value:?} must be longer than hls.partDuration ({part}) and at most 60s")]
    BadMaxSegment {
        /// The value found.
        value: String,
        /// The part duration it must exceed.
        part: String,
    },
    /// The frame rate is not a positive number.
    #[error("frames.fps {0} must be a positive number")]
    BadFps(f64),
    /// The JPEG quality is out of range.
    #[error("frames.quality {0} must be within 1-100")]
    BadQuality(u8),
    /// The RTSP URL cannot be pulled. The message never quotes the URL: it may hold a password.
    #[error("source.rtsp.url {0}")]
    BadRtspUrl(&'static str),
    /// The RTSP URL carries user information.
    #[error("source.rtsp.url must not carry credentials (user:password@host): put them in a kubernetes.io/basic-auth Secret (keys username, password) and name it in source.rtsp.credentialsSecretRef")]
    CredentialsInUrl,
    /// A pulled camera also configures RTMP publishing.
    #[error("a camera that pulls RTSP (source.rtsp) takes no RTMP publishers: remove {0}")]
    PushSettingsOnPull(&'static str),
}

/// The longest Camera name: `<camera>-http` must still be a Service name (63 characters).
pub const MAX_CAMERA_NAME: usize = 58;

/// True for DNS-1035 labels: what a Service name (and therefore a Camera name) must be.
pub fn is_dns1035_label(name: &str, max_len: usize) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last() != Some(&b'-')
}

/// Parses a spec duration the way the worker does (`humantime`), refusing zero.
pub fn parse_duration(field: &'static str, value: &str) -> Result<Duration, SpecError> {
    match humantime::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(SpecError::BadDuration {
            field,
            value: value.to_string(),
        }),
    }
}

/// Checks a size in the units the CRD allows (a Kubernetes quantity the worker also parses).
pub fn check_size(field: &'static str, value: &str) -> Result<(), SpecError> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let unit_ok = matches!(unit, "" | "Ki" | "Mi" | "Gi" | "Ti" | "k" | "M" | "G" | "T");
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && unit_ok {
        Ok(())
    } else {
        Err(SpecError::BadSize {
            field,
            value: value.to_string(),
        })
    }
}

/// The longest `hls.maxSegmentDuration` accepted: players buffer at least a few segments.
const MAX_SEGMENT_LIMIT: Duration = Duration::from_secs(60);

/// Validates a Camera: its name and every field the worker's flags are built from.
pub fn validate_camera(camera: &Camera) -> Result<(), SpecError> {
    let name = camera.metadata.name.clone().unwrap_or_default();
    if !is_dns1035_label(&name, MAX_CAMERA_NAME) {
        return Err(SpecError::InvalidName(name));
    }
    validate_spec(&camera.spec)
}

/// Validates the fields of a Camera spec.
pub fn validate_spec(spec: &CameraSpec) -> Result<(), SpecError> {
    let part = parse_duration("hls.partDuration", &spec.hls.part_duration)?;
    if let Some(value) = &spec.hls.max_segment_duration {
        let max = parse_duration("hls.maxSegmentDuration", value)?;
        if max <= part || max > MAX_SEGMENT_LIMIT {
            return Err(SpecError::BadMaxSegment {
                value: value.clone(),
                part: spec.hls.part_duration.clone(),
            });
        }
    }
    parse_duration(
        "recording.segmentDuration",
        &spec.recording.segment_duration,
    )?;
    check_size("recording.storage.size", &spec.recording.storage.size)?;
    if let Some(retention) = &spec.recording.retention {
        if let Some(age) = &retention.max_age {
            parse_duration("recording.retention.maxAge", age)?;
        }
        if let Some(size) = &retention.max_size {
            check_size("recording.retention.maxSize", size)?;
        }
    }
    if !(spec.frames.fps.is_finite() && spec.frames.fps > 0.0) {
        return Err(SpecError::BadFps(spec.frames.fps));
    }
    if !(1..=100).contains(&spec.frames.quality) {
        return Err(SpecError::BadQuality(spec.frames.quality));
    }
    if let Some(rtsp) = spec.rtsp() {
        check_rtsp_url(&rtsp.url)?;
        check_pull_only(spec)?;
    }
    Ok(())
}

/// Checks an RTSP URL the way the worker's `--pull` parser will read it: `rtsp://host[:port]/path`
/// without user information, and nothing that would split the flag (commas) or the URL.
pub fn check_rtsp_url(url: &str) -> Result<(), SpecError> {
    if url.len() > MAX_RTSP_URL {
        return Err(SpecError::BadRtspUrl("is longer than 2048 characters"));
    }
    if url.starts_with("rtsps://") {
        return Err(SpecError::BadRtspUrl(
            "uses rtsps:// (RTSP over TLS), which is not supported yet: use rtsp://",
        ));
    }
    let Some(rest) = url.strip_prefix("rtsp://") else {
        return Err(SpecError::BadRtspUrl(
            "must be rtsp://host[:port]/path, e.g. rtsp://10.0.0.7/stream1",
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(SpecError::CredentialsInUrl);
    }
    if authority.is_empty() || rest[authority.len()..].starts_with('#') {
        return Err(SpecError::BadRtspUrl(
            "must be rtsp://host[:port]/path, e.g. rtsp://10.0.0.7/stream1",
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(SpecError::BadRtspUrl(
            "must not contain whitespace or commas (write a comma as %2C)",
        ));
    }
    Ok(())
}

/// A pulled camera refuses publishers, so settings for them would only mislead.
fn check_pull_only(spec: &CameraSpec) -> Result<(), SpecError> {
    if spec.ingest.stream_key_secret_ref.is_some() {
        return Err(SpecError::PushSettingsOnPull("ingest.streamKeySecretRef"));
    }
    if spec.ingest.service.is_some() {
        return Err(SpecError::PushSettingsOnPull("ingest.service"));
    }
    if spec.service.is_some() {
        return Err(SpecError::PushSettingsOnPull("service"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::camera::{RetentionSpec, RtspSource, SourceSpec};

    fn camera(name: &str) -> Camera {
        Camera::new(name, CameraSpec::default())
    }

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(validate_camera(&camera("front-door")), Ok(()));
    }

    #[test]
    fn names_that_cannot_name_a_service_are_refused() {
        for bad in ["", "Front", "1cam", "cam-", "cam_1", &"a".repeat(59)] {
            assert!(validate_camera(&camera(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_longest_segment_must_exceed_a_part_and_stay_within_a_minute() {
        let mut cam = camera("c");
        for good in ["5s", "201ms", "60s"] {
            cam.spec.hls.max_segment_duration = Some(good.into());
            assert_eq!(validate_camera(&cam), Ok(()), "{good}");
        }
        for bad in ["200ms", "100ms", "61s"] {
            cam.spec.hls.max_segment_duration = Some(bad.into());
            assert!(
                matches!(validate_camera(&cam), Err(SpecError::BadMaxSegment { .. })),
                "{bad} accepted"
            );
        }
        cam.spec.hls.max_segment_duration = Some("later".into());
        assert!(matches!(
            validate_camera(&cam),
            Err(SpecError::BadDuration {
                field: "hls.maxSegmentDuration",
                ..
            })
        ));
    }

    #[test]
    fn bad_durations_name_their_field() {
        let mut cam = camera("c");
        cam.spec.hls.part_duration = "soon".into();
        assert_eq!(
            validate_camera(&cam),
            Err(SpecError::BadDuration {
                field: "hls.partDuration",
                value: "soon".into()
            })
        );
        cam.spec.hls.part_duration = "0ms".into();
        assert!(validate_camera(&cam).is_err());
    }

    #[test]
    fn retention_sizes_and_ages_are_checked() {
        let mut cam = camera("c");
        cam.spec.recording.retention = Some(RetentionSpec {
            max_age: Some("7d".into()),
            max_size: Some("80Gi".into()),
        });
        assert_eq!(validate_camera(&cam), Ok(()));
        cam.spec.recording.retention = Some(RetentionSpec {
            max_age: None,
            max_size: Some("80 parsecs".into()),
        });
        assert!(matches!(
            validate_camera(&cam),
            Err(SpecError::BadSize { .. })
        ));
    }

    fn pulling(url: &str) -> Camera {
        let mut cam = camera("gate");
        cam.spec.source = Some(SourceSpec {
            rtsp: Some(RtspSource {
                url: url.into(),
                ..Default::default()
            }),
        });
        cam
    }

    #[test]
    fn rtsp_urls_the_worker_can_pull_are_valid() {
        for ok in [
            "rtsp://10.0.0.7/stream1",
            "rtsp://10.0.0.7:8554/Streaming/Channels/101?transportmode=unicast",
            "rtsp://[2001:db8::7]:554/live",
            "rtsp://cam.local",
            "rtsp://10.0.0.7/a%2Cb",
        ] {
            assert_eq!(validate_camera(&pulling(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn credentials_in_the_rtsp_url_are_refused_pointing_at_the_secret_without_echoing_them() {
        for bad in [
            "rtsp://admin:hunter2@10.0.0.7/stream1",
            "rtsp://admin@10.0.0.7/stream1",
            "rtsp://:hunter2@10.0.0.7/",
        ] {
            let err = validate_camera(&pulling(bad)).expect_err(bad);
            assert_eq!(err, SpecError::CredentialsInUrl);
            let message = err.to_string();
            assert!(message.contains("credentialsSecretRef"), "{message}");
            assert!(
                !message.contains("hunter2") && !message.contains("admin"),
                "{message}"
            );
        }
    }

    #[test]
    fn other_schemes_rtsps_and_malformed_urls_are_refused() {
        for bad in [
            "http://10.0.0.7/stream1",
            "rtmp://10.0.0.7/live/x",
            "RTSP://10.0.0.7/",
            "rtsp://",
            "rtsp:///path",
            "10.0.0.7/stream1",
            "rtsp://10.0.0.7/a,b",
            "rtsp://10.0.0.7/a b",
        ] {
            assert!(
                matches!(
                    validate_camera(&pulling(bad)),
                    Err(SpecError::BadRtspUrl(_))
                ),
                "{bad:?} accepted"
            );
        }
        let rtsps = validate_camera(&pulling("rtsps://10.0.0.7/stream1")).expect_err("rtsps");
        assert!(rtsps.to_string().contains("not supported yet"), "{rtsps}");
        let long = format!("rtsp://10.0.0.7/{}", "a".repeat(MAX_RTSP_URL));
        assert!(validate_camera(&pulling(&long)).is_err());
    }

    #[test]
    fn a_pulled_camera_refuses_settings_for_publishers() {
        let mut cam = pulling("rtsp://10.0.0.7/stream1");
        cam.spec.ingest.stream_key_secret_ref = Some(Default::default());
        assert_eq!(
            validate_camera(&cam),
            Err(SpecError::PushSettingsOnPull("ingest.streamKeySecretRef"))
        );
    }

    #[test]
    fn frame_rate_must_be_positive() {
        let mut cam = camera("c");
        cam.spec.frames.fps = -1.0;
        assert_eq!(validate_camera(&cam), Err(SpecError::BadFps(-1.0)));
        cam.spec.frames.fps = f64::NAN;
        assert!(validate_camera(&cam).is_err());
    }
}
