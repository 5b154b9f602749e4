//! Whether an object may be written for a Camera: Kamera never takes over an object it did not
//! create. Ours is an object whose controller is this Camera (by uid), or one that carries this
//! Camera's labels and no controller at all (a recordings claim kept after its Camera was
//! deleted, adopted by a Camera of the same name).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::reconcile::names::{CAMERA_LABEL, FIELD_MANAGER};

/// What the live object is to the Camera that wants to apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No such object: applying creates it.
    Missing,
    /// The Camera's own (or adoptable): applying may change it.
    Ours,
    /// Someone else's: leave it alone. Says whose.
    Foreign(String),
}

/// Classifies `live` for the Camera `camera` with uid `uid`.
pub fn ownership(live: Option<&ObjectMeta>, camera: &str, uid: &str) -> Ownership {
    ownership_by(live, "Camera", (CAMERA_LABEL, camera), uid)
}

/// Classifies `live` for the object of `kind` with uid `uid` whose objects carry `label`
/// (`kamera.dev/camera: lobby`, `kamera.dev/processor: yolo`).
pub fn ownership_by(
    live: Option<&ObjectMeta>,
    kind: &str,
    label: (&str, &str),
    uid: &str,
) -> Ownership {
    let Some(meta) = live else {
        return Ownership::Missing;
    };
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match controller {
        Some(owner) if owner.kind == kind && owner.uid == uid => Ownership::Ours,
        Some(owner) => Ownership::Foreign(format!(
            "it is controlled by {} {} (uid {})",
            owner.kind, owner.name, owner.uid
        )),
        None => {
            let (key, value) = label;
            let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
            let labelled = label(key).as_deref() == Some(value)
                && label("app.kubernetes.io/managed-by").as_deref() == Some(FIELD_MANAGER);
            if labelled {
                Ownership::Ours
            } else {
                Ownership::Foreign("it was not created by Kamera".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::names::labels;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned_by(kind: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: kind.into(),
                name: "x".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn an_object_controlled_by_this_camera_is_ours() {
        let meta = owned_by("Camera", "uid-lobby");
        assert_eq!(
            ownership(Some(&meta), "lobby", "uid-lobby"),
            Ownership::Ours
        );
        assert_eq!(ownership(None, "lobby", "uid-lobby"), Ownership::Missing);
    }

    #[test]
    fn a_service_someone_else_made_is_foreign_even_with_the_cameras_name() {
        let meta = ObjectMeta {
            name: Some("lobby".into()),
            ..Default::default()
        };
        assert!(matches!(
            ownership(Some(&meta), "lobby", "uid-lobby"),
            Ownership::Foreign(_)
        ));
        let helm = owned_by("HelmRelease", "uid-other");
        let Ownership::Foreign(why) = ownership(Some(&helm), "lobby", "uid-lobby") else {
            panic!("foreign");
        };
        assert!(why.contains("HelmRelease"), "{why}");
    }

    #[test]
    fn a_camera_of_the_same_name_but_another_uid_does_not_own_it() {
        let old = owned_by("Camera", "uid-old-lobby");
        assert!(matches!(
            ownership(Some(&old), "lobby", "uid-lobby"),
            Ownership::Foreign(_)
        ));
    }

    #[test]
    fn a_retained_claim_with_the_cameras_labels_is_adopted() {
        let retained = ObjectMeta {
            labels: Some(labels("lobby")),
            ..Default::default()
        };
        assert_eq!(
            ownership(Some(&retained), "lobby", "uid-new"),
            Ownership::Ours
        );
        assert!(matches!(
            ownership(Some(&retained), "yard", "uid-yard"),
            Ownership::Foreign(_)
        ));
    }
}
