//! The operator builds the worker's command line; the worker's own clap parser must accept it
//! and read back the values the Camera asked for.

use std::time::Duration;

use kamera_operator::crd::camera::{CameraSpec, RetentionSpec};
use kamera_operator::reconcile::worker_args::{pull_args, worker_args, worker_command};
use kamera_worker::config::Config;

fn parse(name: &str, spec: &CameraSpec, publish_key: bool) -> Config {
    let argv: Vec<String> = worker_command()
        .into_iter()
        .chain(worker_args(name, spec, publish_key))
        .chain(pull_args(name, spec))
        .collect();
    match Config::try_parse_from(&argv) {
        Ok(config) => config,
        Err(e) => panic!("the worker rejects {argv:?}:\n{e}"),
    }
}

use clap::Parser as _;

#[test]
fn default_camera_args_parse_with_pod_paths() {
    let config = parse("front-door", &CameraSpec::default(), false);
    assert_eq!(config.cameras, ["front-door"]);
    assert_eq!(config.data_dir.to_str(), Some("/data"));
    assert_eq!(
        config.frame_socket().to_str(),
        Some("/var/run/kamera/frames.sock")
    );
    assert_eq!(config.frames_dir().to_str(), Some("/var/run/kamera/frames"));
    assert_eq!(config.rtmp_listen.port(), 1935);
    assert_eq!(config.http_listen.port(), 8080);
    assert_eq!(config.hls_part_duration, Duration::from_millis(200));
    assert_eq!(config.segment_duration, Duration::from_secs(300));
    assert!(!config.no_recording);
    assert!(config.publish_key_file.is_none());
    assert!(config.tls_files().is_none(), "HTTP unless http.tls is set");
    // Unset, the flag is not passed and the worker's default holds.
    assert_eq!(config.hls_max_segment_duration, Duration::from_secs(2));
}

#[test]
fn every_camera_setting_reaches_the_worker() {
    let mut spec = CameraSpec::default();
    spec.hls.part_duration = "250ms".into();
    spec.hls.max_segment_duration = Some("5s".into());
    spec.recording.segment_duration = "1h30m".into();
    spec.recording.retention = Some(RetentionSpec {
        max_age: Some("7d".into()),
        max_size: Some("80Gi".into()),
    });
    spec.frames.fps = 0.5;
    spec.frames.quality = 90;
    spec.frames.max_width = Some(1280);
    spec.frames.sampling = kamera_operator::crd::camera::FrameSampling::Keyframes;
    spec.http.tls = Some(kamera_operator::crd::camera::HttpTlsSpec {
        secret_ref: kamera_operator::crd::camera::CredentialsSecretRef {
            name: "lobby-tls".into(),
        },
    });
    let config = parse("lobby", &spec, true);
    let (cert, key) = config.tls_files().expect("HTTPS");
    assert_eq!(
        (cert.to_str(), key.to_str()),
        (
            Some("/etc/kamera/tls/tls.crt"),
            Some("/etc/kamera/tls/tls.key")
        )
    );
    assert_eq!(config.hls_part_duration, Duration::from_millis(250));
    assert_eq!(config.hls_max_segment_duration, Duration::from_secs(5));
    assert_eq!(config.segment_duration, Duration::from_secs(5400));
    assert_eq!(
        config.retention_max_age,
        Some(Duration::from_secs(7 * 86400))
    );
    assert_eq!(config.retention_max_size, Some(80 * 1024 * 1024 * 1024));
    assert_eq!(config.frame_fps, 0.5);
    assert_eq!(config.frame_quality, 90);
    assert_eq!(config.frame_max_width, Some(1280));
    assert_eq!(
        config.frame_sampling,
        kamera_worker::config::FrameSampling::Keyframes
    );
    assert_eq!(
        config.publish_key_file.as_deref().and_then(|p| p.to_str()),
        Some("/etc/kamera/publish-key/publish-keys")
    );
}

#[test]
fn disabled_recording_parses() {
    let mut spec = CameraSpec::default();
    spec.recording.enabled = false;
    assert!(parse("c", &spec, false).no_recording);
}

#[test]
fn every_example_camera_builds_args_the_worker_accepts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cameras");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/cameras exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        let cameras: Vec<kamera_operator::crd::Camera> =
            kamera_operator::render::parse_manifests(&path.display().to_string(), &text)
                .expect("a Camera");
        for camera in cameras {
            let name = camera.metadata.name.clone().expect("named");
            parse(
                &name,
                &camera.spec,
                camera.spec.ingest.stream_key_secret_ref.is_some(),
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected at least four example Cameras, found {seen}"
    );
}

#[test]
fn pool_args_parse_into_the_workers_pools_and_token_dir() {
    use kamera_operator::reconcile::worker_args::pool_args;
    let argv: Vec<String> = worker_command()
        .into_iter()
        .chain(worker_args("lobby", &CameraSpec::default(), false))
        .chain(pool_args(&["detect", "yolo"], "cams"))
        .collect();
    let config = Config::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the worker rejects {argv:?}:\n{e}"));
    let pools: Vec<(String, Vec<String>)> = config
        .pools()
        .expect("pools")
        .into_iter()
        .map(|p| (p.name, p.endpoints))
        .collect();
    assert_eq!(
        pools,
        [
            (
                "detect".to_string(),
                vec!["detect-pool.cams.svc:7700".to_string()]
            ),
            (
                "yolo".to_string(),
                vec!["yolo-pool.cams.svc:7700".to_string()]
            ),
        ]
    );
    assert_eq!(
        config.pool_token_dir.as_deref().and_then(|p| p.to_str()),
        Some("/var/run/kamera-pools")
    );
}

#[test]
fn a_pulled_camera_reaches_the_worker_as_a_pull_with_its_credentials_dir_and_transport() {
    use kamera_operator::crd::camera::{
        CredentialsSecretRef, RtspSource, RtspTransport, SourceSpec,
    };
    use kamera_worker::config::PullTransport;
    let spec = CameraSpec {
        source: Some(SourceSpec {
            rtsp: Some(RtspSource {
                url: "rtsp://10.0.0.7:554/Streaming/Channels/101?transportmode=unicast".into(),
                credentials_secret_ref: Some(CredentialsSecretRef {
                    name: "gate-creds".into(),
                }),
                transport: RtspTransport::Udp,
            }),
        }),
        ..Default::default()
    };
    let config = parse("gate", &spec, false);
    let pulls: Vec<(&str, &str)> = config
        .pulls
        .iter()
        .map(|p| (p.camera.as_str(), p.url.as_str()))
        .collect();
    assert_eq!(
        pulls,
        [(
            "gate",
            "rtsp://10.0.0.7:554/Streaming/Channels/101?transportmode=unicast"
        )]
    );
    assert_eq!(
        config
            .pull_credentials_dir
            .as_deref()
            .and_then(|p| p.to_str()),
        Some("/var/run/kamera-rtsp")
    );
    assert_eq!(config.pull_transport, PullTransport::Udp);
    assert_eq!(config.cameras, ["gate"]);
    assert_eq!(
        config.max_cameras(),
        1,
        "the pulled camera is the pod's one camera"
    );
}
