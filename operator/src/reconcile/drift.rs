//! Whether an object needs applying: the operator writes only when the object it wants differs
//! from the live one, so that a restart, a leader change or a periodic resync writes nothing.
//!
//! Every applied object carries the hash of what was applied ([`APPLIED_HASH_ANNOTATION`]): a
//! change of the wanted object (including a removed field) changes the hash. The live object
//! must also still hold every wanted value, which catches edits made by hand.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotation holding the hash of the object as the operator last applied it.
pub const APPLIED_HASH_ANNOTATION: &str = "kamera.dev/applied-hash";

/// Short hex SHA-256 of a JSON value.
pub fn hash_json(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Stamps `object` with the hash of itself (as serialised without the stamp).
pub fn stamp<K: serde::Serialize>(object: &mut K, meta: impl Fn(&mut K) -> &mut ObjectMeta) {
    let hash = serde_json::to_value(&*object)
        .map(|v| hash_json(&v))
        .unwrap_or_default();
    meta(object)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
}

/// True when every value in `wanted` is present and equal in `live` (objects recursively, lists
/// element by element with equal length). Fields the API server or others added are ignored.
pub fn contains(live: &Value, wanted: &Value) -> bool {
    match (wanted, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => contains(lv, wv),
            None => wv.is_null(),
        }),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(wv, lv)| contains(lv, wv))
        }
        (Value::Number(w), Value::Number(l)) => w.as_f64() == l.as_f64(),
        (w, l) => w == l,
    }
}

/// Whether applying `wanted` over `live` would change anything the operator manages.
pub fn needs_apply<K: serde::Serialize>(live: Option<&K>, wanted: &K) -> bool {
    let Some(live) = live else {
        return true;
    };
    match (serde_json::to_value(live), serde_json::to_value(wanted)) {
        (Ok(mut live), Ok(mut wanted)) => {
            // Status is never applied; the live one must not count as a difference.
            if let Some(o) = live.as_object_mut() {
                o.remove("status");
            }
            if let Some(o) = wanted.as_object_mut() {
                o.remove("status");
            }
            !contains(&live, &wanted)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_added_by_the_server_are_not_a_difference() {
        let wanted = json!({"spec": {"containers": [{"name": "worker", "image": "w:1"}]}});
        let live = json!({"spec": {"containers": [{"name": "worker", "image": "w:1",
            "terminationMessagePath": "/dev/termination-log"}], "dnsPolicy": "ClusterFirst"},
            "metadata": {"resourceVersion": "7"}});
        assert!(contains(&live, &wanted));
    }

    #[test]
    fn a_changed_value_or_a_removed_list_item_is_a_difference() {
        let live =
            json!({"spec": {"containers": [{"name": "worker"}, {"name": "processor-yolo"}]}});
        assert!(!contains(
            &live,
            &json!({"spec": {"containers": [{"name": "worker"}]}})
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 1}}),
            &json!({"spec": {"replicas": 0}})
        ));
        assert!(contains(
            &json!({"spec": {"replicas": 1}}),
            &json!({"spec": {"replicas": 1.0}})
        ));
    }

    #[test]
    fn a_removed_field_changes_the_applied_hash() {
        use k8s_openapi::api::core::v1::Service;
        let mut with = Service::default();
        with.metadata.annotations = Some(BTreeMap::from([("lb".to_string(), "nlb".to_string())]));
        let mut without = Service::default();
        stamp(&mut with, |s| &mut s.metadata);
        stamp(&mut without, |s| &mut s.metadata);
        // The live object still holds the old annotation, so only the hash tells them apart.
        assert!(needs_apply(Some(&with), &without));
        assert!(!needs_apply(Some(&with.clone()), &with));
    }
}
