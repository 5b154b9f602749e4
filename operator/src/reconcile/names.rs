//! Names and labels of the objects the operator owns, in one place so builders and watches agree.

use std::collections::BTreeMap;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "kamera-operator";
/// Label naming the Camera an object belongs to.
pub const CAMERA_LABEL: &str = "kamera.dev/camera";
/// Pod template annotation whose change rolls the pod (stream key, processors).
pub const CONFIG_HASH_ANNOTATION: &str = "kamera.dev/config-hash";
/// Deployment annotation: the Camera generation it was last applied for. A different one means
/// the user changed this camera's spec, whose restart is never throttled.
pub const CAMERA_GENERATION_ANNOTATION: &str = "kamera.dev/camera-generation";
/// Mount point of the volume shared by the worker and its processors (socket + frames).
pub const SHARED_DIR: &str = "/var/run/kamera";
/// The frame socket inside the pod.
pub const FRAME_SOCKET: &str = "/var/run/kamera/frames.sock";
/// The frames directory inside the pod.
pub const FRAMES_DIR: &str = "/var/run/kamera/frames";
/// Mount point of the recordings volume (the worker's data dir).
pub const DATA_DIR: &str = "/data";
/// Where the publish key file is mounted.
pub const PUBLISH_KEY_DIR: &str = "/etc/kamera/publish-key";
/// Key of the publish key file inside the operator-made Secret.
pub const PUBLISH_KEY_FILE: &str = "publish-keys";
/// Mount point of the viewer tokens file the worker reads (the operator's Secret).
pub const HTTP_TOKENS_DIR: &str = "/etc/kamera/http-tokens";
/// Key (and file name) of the viewer tokens in the operator-made Secret.
pub const HTTP_TOKENS_FILE: &str = "tokens";
/// Where the worker finds RTSP credentials: `<dir>/<camera>/username` and `.../password`, the
/// camera's `kubernetes.io/basic-auth` Secret mounted as it is (never copied).
pub const RTSP_CREDENTIALS_DIR: &str = "/var/run/kamera-rtsp";
/// The worker pod's volume with the RTSP credentials Secret (`kamera-` names are reserved).
pub const RTSP_CREDENTIALS_VOLUME: &str = "kamera-rtsp-credentials";
/// Where the worker finds its certificate: the camera's `kubernetes.io/tls` Secret mounted as
/// it is (never copied), `tls.crt` and `tls.key`.
pub const HTTP_TLS_DIR: &str = "/etc/kamera/tls";
/// The worker pod's volume with the TLS Secret (`kamera-` names are reserved).
pub const HTTP_TLS_VOLUME: &str = "kamera-http-tls";
/// The keys of a `kubernetes.io/tls` Secret, and the file names under [`HTTP_TLS_DIR`].
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
/// RTMP port of the worker.
pub const RTMP_PORT: i32 = 1935;
/// HTTP port of the worker (LL-HLS, API, metrics, health).
pub const HTTP_PORT: i32 = 8080;
/// Name of the worker container's HTTP port (probes, the HTTP Service, Prometheus).
pub const HTTP_PORT_NAME: &str = "http-metrics";
/// Its name when the worker serves HTTPS (`http.tls`): monitors that scrape by port name find
/// the scheme in it, so one PodMonitor scrapes HTTP and HTTPS workers each the right way.
pub const HTTPS_PORT_NAME: &str = "https-metrics";

/// The worker's HTTP port name, with TLS or without.
pub fn http_port_name(tls: bool) -> &'static str {
    if tls {
        HTTPS_PORT_NAME
    } else {
        HTTP_PORT_NAME
    }
}

/// Name of the worker container.
pub const WORKER_CONTAINER: &str = "worker";

/// The worker Deployment and the Service share the Camera's name.
pub fn workload_name(camera: &str) -> String {
    camera.to_string()
}

/// The HTTP Service (LL-HLS, frames, recordings, API, metrics).
pub fn http_service_name(camera: &str) -> String {
    format!("{camera}-http")
}

/// The recordings claim.
pub fn pvc_name(camera: &str) -> String {
    format!("{camera}-recordings")
}

/// The operator-made Secret holding the worker's publish key file.
pub fn publish_key_secret_name(camera: &str) -> String {
    format!("{camera}-publish-key")
}

/// The operator-made Secret holding the worker's viewer tokens: the user's, plus the
/// operator's own read-only token for `/api`.
pub fn http_tokens_secret_name(camera: &str) -> String {
    format!("{camera}-http-tokens")
}

/// The sidecar container of a processor.
pub fn processor_container_name(processor: &str) -> String {
    format!("processor-{processor}")
}

/// Labels that select a camera's worker pods; never change them (Deployment selectors are immutable).
pub fn selector_labels(camera: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "kamera-worker".to_string(),
        ),
        (CAMERA_LABEL.to_string(), camera.to_string()),
    ])
}

/// Labels on every object the operator makes for a camera.
pub fn labels(camera: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(camera);
    labels.insert("app.kubernetes.io/instance".into(), camera.to_string());
    labels.insert("app.kubernetes.io/component".into(), "worker".into());
    labels.insert("app.kubernetes.io/part-of".into(), "kamera".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels
}

/// Label naming the FrameProcessor a pool object belongs to.
pub const PROCESSOR_LABEL: &str = "kamera.dev/processor";
/// Port of a pool's Service and pods (the frame protocol's network transport).
pub const POOL_PORT: i32 = 7700;
/// Name of that port.
pub const POOL_PORT_NAME: &str = "frames";
/// Key (and file name) of the token in a pool's token Secret.
pub const POOL_TOKEN_KEY: &str = "token";
/// Where a pool pod mounts its token Secret.
pub const POOL_TOKEN_DIR: &str = "/var/run/kamera-pool";
/// Where a camera's worker mounts the token of each pool, one directory per pool.
pub const POOL_TOKENS_DIR: &str = "/var/run/kamera-pools";
/// Name of the processor container in a pool pod.
pub const POOL_CONTAINER: &str = "processor";

/// The pool's Deployment and Service.
pub fn pool_name(processor: &str) -> String {
    format!("{processor}-pool")
}

/// The Secret holding the token a pool accepts.
pub fn pool_token_secret_name(processor: &str) -> String {
    format!("{processor}-pool-token")
}

/// The camera pod's volume with one pool's token.
pub fn pool_token_volume_name(processor: &str) -> String {
    format!("pool-{processor}")
}

/// The address a camera's worker dials for a pool in `namespace`.
pub fn pool_address(processor: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc:{POOL_PORT}", pool_name(processor))
}

/// Labels that select a pool's pods; never change them (Deployment selectors are immutable).
pub fn pool_selector_labels(processor: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "kamera-pool".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            processor.to_string(),
        ),
        (PROCESSOR_LABEL.to_string(), processor.to_string()),
    ])
}

/// Labels on every object the operator makes for a pool.
pub fn pool_labels(processor: &str) -> BTreeMap<String, String> {
    let mut labels = pool_selector_labels(processor);
    labels.insert("app.kubernetes.io/component".into(), "processor".into());
    labels.insert("app.kubernetes.io/part-of".into(), "kamera".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels
}
