//! Errors of a reconcile, each with the object it concerns; their `metric_label` names them in
//! the operator's error counter.

/// A reconcile step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no name (never true for objects read from the API).
    #[error("{kind} without a name")]
    Unnamed {
        /// Kind of the object.
        kind: &'static str,
    },
    /// A server-side apply of an owned object failed.
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Apply {
        /// Kind of the applied object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Deleting an object the operator no longer wants failed.
    #[error("deleting {kind} {namespace}/{name}: {source}")]
    Delete {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Writing the status subresource failed.
    #[error("updating the status of {kind} {namespace}/{name}: {source}")]
    Status {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Reading the Secret that holds a Camera's stream key failed.
    #[error("reading Secret {namespace}/{name} (the stream key of Camera {camera}): {source}")]
    Secret {
        /// The Camera.
        camera: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Reading an object (to check who owns it) failed.
    #[error("reading {kind} {namespace}/{name}: {source}")]
    Get {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The system's random source failed (making the operator's worker token or a pool token).
    #[error("no random bytes for a token: {0}")]
    Random(String),
    /// The watch caches are not filled yet: deciding now could undo running cameras.
    #[error(transparent)]
    NotReady(#[from] crate::context::NotReady),
}

impl Error {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unnamed { .. } => "unnamed",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::Status { .. } => "status",
            Error::Secret { .. } => "secret",
            Error::Get { .. } => "get",
            Error::NotReady(_) => "caches_not_ready",
            Error::Random(_) => "random",
        }
    }
}
