//! First step of a reconcile: reject a spec the worker could not run, with a message for a human.
//!
//! The CRD schema already checks most of this; checking again here covers clusters that run an
//! older CRD and keeps the builders free of error handling.

use std::time::Duration;

use crate::crd::camera::{Camera, CameraSpec};

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
    /// The frame rate is not a positive number.
    #[error("frames.fps {0} must be a positive number")]
    BadFps(f64),
    /// The JPEG quality is out of range.
    #[error("frames.quality {0} must be within 1-100")]
    BadQuality(u8),
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
    parse_duration("hls.partDuration", &spec.hls.part_duration)?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::camera::RetentionSpec;

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

    #[test]
    fn frame_rate_must_be_positive() {
        let mut cam = camera("c");
        cam.spec.frames.fps = -1.0;
        assert_eq!(validate_camera(&cam), Err(SpecError::BadFps(-1.0)));
        cam.spec.frames.fps = f64::NAN;
        assert!(validate_camera(&cam).is_err());
    }
}
