//! `kamera-operator render`: the objects the operator would apply for a Camera manifest (and the
//! pools of the pool-mode FrameProcessors that select it), offline.
//! Used to review a Camera before applying it, and by the tests that validate every built object
//! against the Kubernetes schemas.

use std::sync::Arc;

use kube::ResourceExt;
use serde::Serialize;

use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::reconcile::build_deployment::{build_deployment, WorkerPod};
use crate::reconcile::build_pool::{
    build_pool_deployment, build_pool_service, build_pool_token_secret, PoolRef,
};
use crate::reconcile::build_service::{build_http_service, build_ingest_service};
use crate::reconcile::build_storage::{
    build_http_tokens_secret, build_publish_key_secret, build_pvc, http_tokens_file,
};
use crate::reconcile::resolve::resolve_processors;
use crate::reconcile::schedule::{schedule, SchedulingConflict};
use crate::reconcile::validate::{validate_camera, SpecError};
use crate::reconcile::CameraRef;

/// Stands in for the Secret's value when rendering offline.
pub const PLACEHOLDER_KEY: &str = "stream-key-from-secret";
/// Stands in for the viewer tokens when rendering offline.
pub const PLACEHOLDER_TOKENS: &str = "viewer-tokens-from-secret live:*";
/// Stands in for the operator's own token when rendering offline.
pub const PLACEHOLDER_OPERATOR_TOKEN: &str = "operator-token-made-at-apply";

/// Stands in for a pool's token when rendering offline.
pub const PLACEHOLDER_POOL_TOKEN: &str = "pool-token-made-at-apply";

/// Why a Camera cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest is not a Camera.
    #[error("parsing {what}: {message}")]
    Parse {
        /// Which input.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// The Camera has no name.
    #[error("the Camera has no metadata.name")]
    Unnamed,
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Processors conflict.
    #[error(transparent)]
    Conflict(#[from] SchedulingConflict),
    /// `podOverrides` do not make a pod template.
    #[error(transparent)]
    Overrides(#[from] crate::reconcile::overrides::OverrideError),
    /// An object could not be written as YAML.
    #[error("writing YAML: {0}")]
    Yaml(String),
}

/// Parses Camera and FrameProcessor manifests (one or more YAML documents each).
pub fn parse_manifests<K: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<Vec<K>, RenderError> {
    serde_saphyr::from_multiple::<K>(text).map_err(|e| RenderError::Parse {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Every object the operator would apply for `camera`, as one multi-document YAML stream.
pub fn render(
    camera: &Camera,
    processors: &[FrameProcessor],
    worker_image: &str,
) -> Result<String, RenderError> {
    let mut camera = camera.clone();
    if camera.metadata.namespace.is_none() {
        camera.metadata.namespace = Some("default".into());
    }
    // Owner references need a uid; a rendered object shows where it would be.
    if camera.metadata.uid.is_none() {
        camera.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    }
    let mut processors = processors.to_vec();
    for p in &mut processors {
        if p.metadata.namespace.is_none() {
            p.metadata.namespace = camera.metadata.namespace.clone();
        }
        if p.metadata.uid.is_none() {
            p.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
        }
    }
    validate_camera(&camera)?;
    let at = CameraRef::of(&camera).ok_or(RenderError::Unnamed)?;
    let all: Vec<Arc<FrameProcessor>> = processors.into_iter().map(Arc::new).collect();
    let resolved = resolve_processors(&camera, &all);
    let scheduling = schedule(&camera.spec.worker, &resolved)?;
    let key = camera
        .spec
        .ingest
        .stream_key_secret_ref
        .as_ref()
        .map(|_| PLACEHOLDER_KEY);
    let image = camera
        .spec
        .worker
        .image
        .clone()
        .unwrap_or_else(|| worker_image.to_string());
    let mut docs = Vec::new();
    if let Some(pvc) = build_pvc(&camera, &at) {
        docs.push(yaml(&pvc)?);
    }
    if let Some(key) = key {
        docs.push(yaml(&build_publish_key_secret(&camera, &at, key))?);
    }
    if camera.spec.http.tokens_secret_ref.is_some() {
        let file = http_tokens_file(PLACEHOLDER_TOKENS, PLACEHOLDER_OPERATOR_TOKEN);
        docs.push(yaml(&build_http_tokens_secret(&camera, &at, &file))?);
    }
    if camera.spec.rtsp().is_none() {
        docs.push(yaml(&build_ingest_service(&camera, &at))?);
    }
    docs.push(yaml(&build_http_service(&camera, &at))?);
    docs.push(yaml(&build_deployment(&WorkerPod {
        camera: &camera,
        at: &at,
        image: &image,
        processors: &resolved,
        scheduling: &scheduling,
        publish_key: key,
        defaults: &crate::context::WorkerDefaults::default(),
    })?)?);
    // The pools the camera's worker sends frames to (each FrameProcessor's, not the camera's).
    for pool in resolved.iter().filter(|p| p.is_pool()) {
        let Some(fp) = all.iter().find(|p| p.name_any() == pool.name) else {
            continue;
        };
        let Some(pool_at) = PoolRef::of(fp) else {
            continue;
        };
        docs.push(yaml(&build_pool_token_secret(
            fp,
            &pool_at,
            PLACEHOLDER_POOL_TOKEN,
        ))?);
        docs.push(yaml(&build_pool_service(fp, &pool_at))?);
        docs.push(yaml(&build_pool_deployment(fp, &pool_at))?);
    }
    Ok(docs.join("---\n"))
}

fn yaml<T: Serialize>(object: &T) -> Result<String, RenderError> {
    serde_saphyr::to_string(object).map_err(|e| RenderError::Yaml(e.to_string()))
}
