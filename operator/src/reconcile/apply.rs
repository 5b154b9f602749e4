//! The reconciler's I/O with the API server: read an object (cache first, then by name) and
//! apply one, with errors that name the object.

use std::sync::Arc;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use crate::context::Context;
use crate::error::Error;
use crate::events::Note;
use crate::reconcile::build_pool::PoolRef;
use crate::reconcile::names::FIELD_MANAGER;
use crate::reconcile::CameraRef;

/// The object the applied objects belong to (their owner), for where and whose they are.
pub trait Owner {
    /// The namespace of the owner and of everything it owns.
    fn namespace(&self) -> &str;
    /// Kind and name, for logs: `Camera lobby`.
    fn owner(&self) -> String;
}

impl Owner for CameraRef {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn owner(&self) -> String {
        format!("Camera {}", self.name)
    }
}

impl Owner for PoolRef {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn owner(&self) -> String {
        format!("FrameProcessor {}", self.name)
    }
}

/// Deletes an object the owner no longer wants (a pool after its processor became a sidecar);
/// one that is already gone is fine.
pub async fn delete<K>(ctx: &Context, at: &impl Owner, name: &str) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), at.namespace());
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => {
            warn!(owner = %at.owner(), namespace = %at.namespace(), kind = kind_name::<K>(), %name, error = %source, "delete failed");
            Err(Error::Delete {
                kind: kind_name::<K>(),
                namespace: at.namespace().to_string(),
                name: name.to_string(),
                source,
            })
        }
    }
}

/// The live object: from the cache (which holds only labelled objects), else read by name,
/// so that an unlabelled object of the same name is found and left alone.
pub async fn live<K>(
    ctx: &Context,
    store: &Store<K>,
    at: &impl Owner,
    name: &str,
) -> Result<Option<Arc<K>>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(found) = store.get(&ObjectRef::new(name).within(at.namespace())) {
        return Ok(Some(found));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), at.namespace());
    api.get_opt(name)
        .await
        .map(|o| o.map(Arc::new))
        .map_err(|source| Error::Get {
            kind: kind_name::<K>(),
            namespace: at.namespace().to_string(),
            name: name.to_string(),
            source,
        })
}

/// Server-side apply of one owned object.
pub async fn apply<K>(ctx: &Context, at: &impl Owner, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), at.namespace());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| {
        warn!(owner = %at.owner(), namespace = %at.namespace(), kind = kind_name::<K>(), %name, error = %source, "apply failed");
        Error::Apply {
            kind: kind_name::<K>(),
            namespace: at.namespace().to_string(),
            name,
            source,
        }
    })
}

/// Adds an `ApplyFailed` warning for `error` and hands the error back.
pub fn warned(events: &mut Vec<Note>, error: Error) -> Error {
    events.push(Note::warning("ApplyFailed", "Apply", error.to_string()));
    error
}

pub fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        "PersistentVolumeClaim" => "PersistentVolumeClaim",
        "Secret" => "Secret",
        _ => "object",
    }
}
