//! Secrets a Camera uses: read the ones it names (by name, never listed or watched) and write
//! the operator's own (the publish key file, the viewer tokens file with the operator's token,
//! and each pool's token, created once). The RTSP credentials Secret is only checked here: the
//! worker mounts it as it is.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use tracing::warn;

use crate::context::Context;
use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::error::Error;
use crate::reconcile::apply::apply;
use crate::reconcile::build_pool::{build_pool_token_secret, PoolRef};
use crate::reconcile::build_storage::random_hex;
use crate::reconcile::build_storage::{
    build_http_tokens_secret, build_publish_key_secret, http_tokens_file, new_operator_token,
    operator_token_in,
};
use crate::reconcile::names::{
    http_tokens_secret_name, pool_token_secret_name, FIELD_MANAGER, HTTP_TOKENS_FILE,
};
use crate::reconcile::names::{TLS_CERT_KEY, TLS_KEY_KEY};
use crate::reconcile::ownership::{ownership, Ownership};
use crate::reconcile::CameraRef;

/// A Secret the Camera references, by name; `None` when it does not exist.
pub async fn read_secret(
    ctx: &Context,
    at: &CameraRef,
    name: &str,
) -> Result<Option<Secret>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &at.namespace);
    api.get_opt(name).await.map_err(|source| Error::Secret {
        camera: at.name.clone(),
        namespace: at.namespace.clone(),
        name: name.to_string(),
        source,
    })
}

/// A value from a Secret the Camera references; `None` when the Secret or its key is missing.
pub async fn read_secret_value(
    ctx: &Context,
    at: &CameraRef,
    name: &str,
    key: &str,
) -> Result<Option<String>, Error> {
    Ok(read_secret(ctx, at, name)
        .await?
        .and_then(|s| s.data)
        .and_then(|data| data.get(key).cloned())
        .and_then(|bytes| String::from_utf8(bytes.0).ok()))
}

/// What is wrong with the RTSP credentials Secret `name` (as read: `None` when missing), for
/// the Camera's condition; `None` when it has a non-empty `username` and a `password`. Never
/// says anything of the values.
pub fn rtsp_credentials_problem(name: &str, secret: Option<&Secret>) -> Option<String> {
    keys_problem(
        name,
        "source.rtsp.credentialsSecretRef",
        secret,
        &[("username", false), ("password", true)],
        "it needs the keys username and password, as a kubernetes.io/basic-auth Secret has",
    )
}

/// What is wrong with the TLS Secret `name` (`http.tls.secretRef`), as for
/// [`rtsp_credentials_problem`]: it needs a non-empty `tls.crt` and `tls.key`. Whether they
/// hold a usable pair is the worker's to say (it refuses to start, or keeps its last good pair).
pub fn tls_secret_problem(name: &str, secret: Option<&Secret>) -> Option<String> {
    keys_problem(
        name,
        "http.tls.secretRef",
        secret,
        &[(TLS_CERT_KEY, false), (TLS_KEY_KEY, false)],
        "it needs the keys tls.crt and tls.key, as a kubernetes.io/tls Secret has",
    )
}

/// The problem of a Secret the Camera references at `field` that lacks one of `keys` (each
/// with whether an empty value is allowed); `None` when it has them all.
fn keys_problem(
    name: &str,
    field: &str,
    secret: Option<&Secret>,
    keys: &[(&str, bool)],
    needs: &str,
) -> Option<String> {
    let Some(secret) = secret else {
        return Some(format!("Secret {name} ({field}) does not exist"));
    };
    let data = secret.data.as_ref();
    let value = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice());
    let missing: Vec<&str> = keys
        .iter()
        .filter(|(key, empty_ok)| value(key).is_none_or(|v| v.is_empty() && !empty_ok))
        .map(|(key, _)| *key)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "Secret {name} ({field}) has no {}: {needs}",
            missing.join(" and no ")
        )
    })
}

/// Applies the operator-made publish key Secret, unless a Secret of that name is not ours.
pub async fn apply_publish_key(
    ctx: &Context,
    camera: &Camera,
    at: &CameraRef,
    uid: &str,
    key: &str,
) -> Result<(), Error> {
    let secret = build_publish_key_secret(camera, at, key);
    if our_secret(ctx, at, uid, &secret.name_any())
        .await?
        .is_some()
    {
        apply(ctx, at, &secret).await?;
    }
    Ok(())
}

/// The operator's own Secret `name` as it is now (`Some(None)` when missing), or `None` when a
/// Secret of that name belongs to someone else (logged; it is left untouched).
async fn our_secret(
    ctx: &Context,
    at: &CameraRef,
    uid: &str,
    name: &str,
) -> Result<Option<Option<Secret>>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &at.namespace);
    let existing = api.get_opt(name).await.map_err(|source| Error::Get {
        kind: "Secret",
        namespace: at.namespace.clone(),
        name: name.to_string(),
        source,
    })?;
    let meta: Option<&ObjectMeta> = existing.as_ref().map(|s| &s.metadata);
    if let Ownership::Foreign(why) = ownership(meta, &at.name, uid) {
        warn!(camera = %at.name, namespace = %at.namespace, secret = %name, %why, "Secret not Kamera's; left untouched");
        return Ok(None);
    }
    Ok(Some(existing))
}

/// Writes the worker's tokens file (the user's tokens and the operator's own `api` token) into
/// the operator's Secret when it changed, and remembers the operator's token for the status
/// poll. The token is kept across reconciles and operator restarts (read back from the Secret).
pub async fn apply_http_tokens(
    ctx: &Context,
    camera: &Camera,
    at: &CameraRef,
    uid: &str,
    user_tokens: &str,
) -> Result<(), Error> {
    let name = http_tokens_secret_name(&at.name);
    let Some(existing) = our_secret(ctx, at, uid, &name).await? else {
        return Ok(());
    };
    let current = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(HTTP_TOKENS_FILE))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let token = match current.as_deref().and_then(operator_token_in) {
        Some(t) => t,
        None => new_operator_token().map_err(|e| Error::Random(e.to_string()))?,
    };
    let file = http_tokens_file(user_tokens, &token);
    if current.as_deref() != Some(file.as_str()) {
        apply(ctx, at, &build_http_tokens_secret(camera, at, &file)).await?;
    }
    ctx.observations.set_token(&at.key(), Some(token));
    Ok(())
}

/// Creates a pool's token Secret (a new random token) when none exists; a Secret of that name
/// is never written again, so a user may replace it to rotate the token. True when created.
pub async fn ensure_pool_token(
    ctx: &Context,
    processor: &FrameProcessor,
    at: &PoolRef,
) -> Result<bool, Error> {
    let name = pool_token_secret_name(&at.name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &at.namespace);
    let get_error = |source| Error::Get {
        kind: "Secret",
        namespace: at.namespace.clone(),
        name: name.clone(),
        source,
    };
    if api.get_opt(&name).await.map_err(get_error)?.is_some() {
        return Ok(false);
    }
    let token = random_hex::<32>().map_err(|e| Error::Random(e.to_string()))?;
    let secret = build_pool_token_secret(processor, at, &token);
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    match api.create(&params, &secret).await {
        Ok(_) => Ok(true),
        // Made meanwhile (by the other reconciler, or a user): theirs stands.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(Error::Apply {
            kind: "Secret",
            namespace: at.namespace.clone(),
            name,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            type_: Some("kubernetes.io/basic-auth".into()),
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn basic_auth_credentials_are_fine() {
        let s = secret(&[("username", "viewer"), ("password", "hunter2")]);
        assert_eq!(rtsp_credentials_problem("gate-creds", Some(&s)), None);
    }

    #[test]
    fn a_missing_secret_or_key_says_which_without_the_values() {
        let none = rtsp_credentials_problem("gate-creds", None).expect("missing");
        assert!(
            none.contains("gate-creds") && none.contains("does not exist"),
            "{none}"
        );
        let s = secret(&[("username", "viewer"), ("pass", "hunter2")]);
        let message = rtsp_credentials_problem("gate-creds", Some(&s)).expect("no password");
        assert!(message.contains("has no password"), "{message}");
        assert!(
            !message.contains("hunter2") && !message.contains("viewer"),
            "{message}"
        );
        let empty = rtsp_credentials_problem("c", Some(&Secret::default())).expect("empty");
        assert!(empty.contains("no username and no password"), "{empty}");
        let blank = secret(&[("username", ""), ("password", "x")]);
        assert!(rtsp_credentials_problem("c", Some(&blank)).is_some());
    }

    #[test]
    fn a_tls_secret_needs_a_certificate_and_a_key() {
        let pem = "-----BEGIN CERTIFICATE-----";
        let s = secret(&[("tls.crt", pem), ("tls.key", "k")]);
        assert_eq!(tls_secret_problem("gate-tls", Some(&s)), None);
        let none = tls_secret_problem("gate-tls", None).expect("missing");
        assert!(
            none.contains("gate-tls") && none.contains("http.tls.secretRef"),
            "{none}"
        );
        let half = secret(&[("tls.crt", pem), ("tls.key", "")]);
        let message = tls_secret_problem("gate-tls", Some(&half)).expect("empty key");
        assert!(message.contains("has no tls.key"), "{message}");
        assert!(!message.contains(pem), "{message}");
    }
}
