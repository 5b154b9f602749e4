//! The worker's command line for a Camera: the contract with `kamera_worker::config::Config`
//! (a test parses this output with the worker's own parser).

use crate::crd::camera::{CameraSpec, FrameSampling};
use crate::reconcile::names::{pool_address, POOL_TOKENS_DIR, RTSP_CREDENTIALS_DIR};
use crate::reconcile::names::{
    DATA_DIR, FRAMES_DIR, FRAME_SOCKET, HTTP_PORT, HTTP_TOKENS_DIR, HTTP_TOKENS_FILE,
    PUBLISH_KEY_DIR, PUBLISH_KEY_FILE, RTMP_PORT,
};
use crate::reconcile::names::{HTTP_TLS_DIR, TLS_CERT_KEY, TLS_KEY_KEY};

/// The worker binary, as the container's command.
pub fn worker_command() -> Vec<String> {
    vec!["kamera-worker".to_string()]
}

/// The flags that express `spec` for the camera `name`; `publish_key` when the pod mounts a
/// publish key file.
pub fn worker_args(name: &str, spec: &CameraSpec, publish_key: bool) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    flag("rtmp-listen", format!("0.0.0.0:{RTMP_PORT}"));
    flag("http-listen", format!("0.0.0.0:{HTTP_PORT}"));
    flag("data-dir", DATA_DIR.to_string());
    flag("camera", name.to_string());
    flag("frame-socket", FRAME_SOCKET.to_string());
    flag("frames-dir", FRAMES_DIR.to_string());
    flag("hls-part-duration", spec.hls.part_duration.clone());
    // Only when set, like every flag added after the first release: an operator upgrade must
    // not change the command line (and restart) every camera.
    if let Some(max) = &spec.hls.max_segment_duration {
        flag("hls-max-segment-duration", max.clone());
    }
    flag("frame-fps", spec.frames.fps.to_string());
    flag("frame-quality", spec.frames.quality.to_string());
    if let Some(width) = spec.frames.max_width {
        flag("frame-max-width", width.to_string());
    }
    // Only when asked: the worker's default is `exact`, and a flag added to every pod would
    // restart every camera when the operator is upgraded.
    if spec.frames.sampling == FrameSampling::Keyframes {
        flag("frame-sampling", "keyframes".to_string());
    }
    if publish_key {
        flag(
            "publish-key-file",
            format!("{PUBLISH_KEY_DIR}/{PUBLISH_KEY_FILE}"),
        );
    }
    if spec.http.tokens_secret_ref.is_some() {
        flag(
            "http-tokens-file",
            format!("{HTTP_TOKENS_DIR}/{HTTP_TOKENS_FILE}"),
        );
    }
    if spec.http.tls.is_some() {
        flag("tls-cert", format!("{HTTP_TLS_DIR}/{TLS_CERT_KEY}"));
        flag("tls-key", format!("{HTTP_TLS_DIR}/{TLS_KEY_KEY}"));
    }
    let recording = &spec.recording;
    if recording.enabled {
        flag("segment-duration", recording.segment_duration.clone());
        if let Some(retention) = &recording.retention {
            if let Some(age) = &retention.max_age {
                flag("retention-max-age", age.clone());
            }
            if let Some(size) = &retention.max_size {
                flag("retention-max-size", size.clone());
            }
        }
    } else {
        args.push("--no-recording".to_string());
    }
    args
}

/// The flags that make the worker pull the camera `name` from its RTSP source, if it has one:
/// `--pull NAME=URL`, the credentials directory when a Secret is named (the worker reads
/// `<dir>/NAME/username` and `password` at every attempt), and the transport. The URL never
/// carries credentials (validation refuses them).
pub fn pull_args(name: &str, spec: &CameraSpec) -> Vec<String> {
    let Some(rtsp) = spec.rtsp() else {
        return Vec::new();
    };
    let mut args = vec!["--pull".to_string(), format!("{name}={}", rtsp.url)];
    if rtsp.credentials_secret_ref.is_some() {
        args.push("--pull-credentials-dir".to_string());
        args.push(RTSP_CREDENTIALS_DIR.to_string());
    }
    args.push("--pull-transport".to_string());
    args.push(rtsp.transport.as_str().to_string());
    args
}

/// The flags that point the worker at the pools of `processors` (pool processors' names, sorted)
/// in `namespace`: one `--pool NAME=ADDR` each, then the directory of their tokens once. Only
/// names and addresses: nothing of a pool's image, size, rate or GPU reaches the camera's pod.
pub fn pool_args(processors: &[&str], namespace: &str) -> Vec<String> {
    let mut args = Vec::new();
    for name in processors {
        args.push("--pool".to_string());
        args.push(format!("{name}={}", pool_address(name, namespace)));
    }
    if !processors.is_empty() {
        args.push("--pool-token-dir".to_string());
        args.push(POOL_TOKENS_DIR.to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::camera::{
        CredentialsSecretRef, RetentionSpec, RtspSource, RtspTransport, SourceSpec,
    };

    #[test]
    fn keyframe_sampling_is_passed_on() {
        let mut spec = CameraSpec::default();
        spec.frames.sampling = FrameSampling::Keyframes;
        let p = pairs(&worker_args("gate", &spec, false));
        assert!(p.contains(&("--frame-sampling".into(), "keyframes".into())));
    }

    fn pairs(args: &[String]) -> Vec<(String, String)> {
        args.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect()
    }

    #[test]
    fn default_spec_passes_pod_paths_and_defaults() {
        let args = worker_args("front-door", &CameraSpec::default(), false);
        let p = pairs(&args);
        assert!(p.contains(&("--camera".into(), "front-door".into())));
        assert!(p.contains(&(
            "--frame-socket".into(),
            "/var/run/kamera/frames.sock".into()
        )));
        assert!(p.contains(&("--frames-dir".into(), "/var/run/kamera/frames".into())));
        assert!(p.contains(&("--data-dir".into(), "/data".into())));
        assert!(p.contains(&("--frame-fps".into(), "1".into())));
        assert!(p.contains(&("--segment-duration".into(), "5m".into())));
        // The worker's default: no flag, so existing pods keep their exact command line.
        assert!(!args.iter().any(|a| a == "--frame-sampling"));
        assert!(!args.iter().any(|a| a == "--publish-key-file"));
    }

    #[test]
    fn retention_and_disabled_recording_become_flags() {
        let mut spec = CameraSpec::default();
        spec.recording.retention = Some(RetentionSpec {
            max_age: Some("7d".into()),
            max_size: Some("80Gi".into()),
        });
        let p = pairs(&worker_args("c", &spec, true));
        assert!(p.contains(&("--retention-max-age".into(), "7d".into())));
        assert!(p.contains(&("--retention-max-size".into(), "80Gi".into())));
        assert!(p.contains(&(
            "--publish-key-file".into(),
            "/etc/kamera/publish-key/publish-keys".into()
        )));
        spec.recording.enabled = false;
        let args = worker_args("c", &spec, false);
        assert_eq!(args.last().map(String::as_str), Some("--no-recording"));
        assert!(!args.iter().any(|a| a.starts_with("--retention")));
    }

    #[test]
    fn fractional_rates_are_written_plainly() {
        let mut spec = CameraSpec::default();
        spec.frames.fps = 0.5;
        spec.frames.max_width = Some(1280);
        let p = pairs(&worker_args("c", &spec, false));
        assert!(p.contains(&("--frame-fps".into(), "0.5".into())));
        assert!(p.contains(&("--frame-max-width".into(), "1280".into())));
    }

    #[test]
    fn a_pushed_camera_has_no_pull_flags() {
        assert!(pull_args("door", &CameraSpec::default()).is_empty());
    }

    #[test]
    fn a_pulled_camera_names_its_url_credentials_dir_and_transport() {
        let mut spec = CameraSpec {
            source: Some(SourceSpec {
                rtsp: Some(RtspSource {
                    url: "rtsp://10.0.0.7/stream1".into(),
                    credentials_secret_ref: Some(CredentialsSecretRef {
                        name: "gate-creds".into(),
                    }),
                    transport: RtspTransport::Udp,
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            pull_args("gate", &spec),
            [
                "--pull",
                "gate=rtsp://10.0.0.7/stream1",
                "--pull-credentials-dir",
                "/var/run/kamera-rtsp",
                "--pull-transport",
                "udp",
            ]
        );
        if let Some(rtsp) = spec.source.as_mut().and_then(|s| s.rtsp.as_mut()) {
            rtsp.credentials_secret_ref = None;
            rtsp.transport = RtspTransport::default();
        }
        assert_eq!(
            pull_args("gate", &spec),
            [
                "--pull",
                "gate=rtsp://10.0.0.7/stream1",
                "--pull-transport",
                "tcp"
            ]
        );
    }

    #[test]
    fn each_pool_is_one_flag_with_its_service_address_and_the_token_dir_comes_once() {
        assert!(pool_args(&[], "cams").is_empty());
        assert_eq!(
            pool_args(&["detect", "yolo"], "cams"),
            [
                "--pool",
                "detect=detect-pool.cams.svc:7700",
                "--pool",
                "yolo=yolo-pool.cams.svc:7700",
                "--pool-token-dir",
                "/var/run/kamera-pools",
            ]
        );
    }
}
