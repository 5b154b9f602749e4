//! `spec.worker.podOverrides`: a partial pod template merged over the one the operator builds,
//! for the settings Kamera has no field for (affinity, extra volumes, a debugging sidecar).
//!
//! Objects merge key by key; lists of named items (containers, volumes, env, volumeMounts,
//! ports, …) merge item by item on `name`; other lists and plain values replace; `null` removes
//! a key. The result must still be a valid pod template.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The overrides do not make a pod template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker.podOverrides does not make a valid pod template: {0}")]
pub struct OverrideError(pub String);

/// `template` with `overrides` merged over it.
pub fn apply_overrides(
    template: &PodTemplateSpec,
    overrides: &Value,
) -> Result<PodTemplateSpec, OverrideError> {
    let Some(fields) = overrides.as_object() else {
        return Err(OverrideError(
            "it must be an object with metadata and/or spec".into(),
        ));
    };
    // The schema keeps the object open; a misspelt key must not vanish silently.
    if let Some(unknown) = fields.keys().find(|k| *k != "metadata" && *k != "spec") {
        return Err(OverrideError(format!(
            "unknown key {unknown:?} (a pod template has only metadata and spec)"
        )));
    }
    let mut merged = serde_json::to_value(template).map_err(|e| OverrideError(e.to_string()))?;
    merge(&mut merged, overrides);
    serde_json::from_value(merged).map_err(|e| OverrideError(e.to_string()))
}

/// Merges `patch` into `base` (see the module's rules).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (key, value) in p {
                if value.is_null() {
                    b.remove(key);
                } else if let Some(existing) = b.get_mut(key) {
                    merge(existing, value);
                } else {
                    b.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if named(b) && named(p) => {
            for item in p {
                let name = &item["name"];
                match b.iter_mut().find(|existing| &existing["name"] == name) {
                    Some(existing) => merge(existing, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// A list whose items are all objects with a string `name`.
fn named(list: &[Value]) -> bool {
    list.iter()
        .all(|v| v.get("name").is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
    use serde_json::json;

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "worker".into(),
                    image: Some("kamera-worker:1".into()),
                    env: Some(vec![EnvVar {
                        name: "A".into(),
                        value: Some("1".into()),
                        value_from: None,
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn containers_merge_by_name_and_keep_what_the_override_does_not_say() {
        let overrides = json!({"spec": {
            "containers": [{"name": "worker", "env": [{"name": "B", "value": "2"}]}],
            "affinity": {"nodeAffinity": {}},
        }});
        let merged = apply_overrides(&template(), &overrides).expect("valid");
        let spec = merged.spec.expect("spec");
        let worker = &spec.containers[0];
        assert_eq!(worker.image.as_deref(), Some("kamera-worker:1"));
        let env: Vec<&str> = worker
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(env, ["A", "B"]);
        assert!(spec.affinity.is_some());
    }

    #[test]
    fn a_new_named_item_is_added_and_null_removes_a_key() {
        let overrides = json!({"spec": {"containers": [
            {"name": "debug", "image": "busybox"},
            {"name": "worker", "env": null},
        ]}});
        let merged = apply_overrides(&template(), &overrides).expect("valid");
        let containers = merged.spec.expect("spec").containers;
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].env, None);
        assert_eq!(containers[1].name, "debug");
    }

    #[test]
    fn an_override_that_breaks_the_template_is_refused_with_the_reason() {
        let err = apply_overrides(&template(), &json!({"spec": {"containers": "worker"}}))
            .expect_err("invalid");
        assert!(err.to_string().contains("podOverrides"), "{err}");
        assert!(apply_overrides(&template(), &json!([1])).is_err());
        let typo = apply_overrides(&template(), &json!({"sepc": {}})).expect_err("typo");
        assert!(typo.to_string().contains("sepc"), "{typo}");
    }
}
