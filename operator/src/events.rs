//! Kubernetes Events about Cameras and FrameProcessors: best-effort, rate-limited, and valid.
//!
//! Each event is created as itself (no client-side series): a series merged by reason alone
//! would keep showing the first note ("processors: [yolo]") after the situation changed. The
//! same (object, reason, note) is not repeated within [`REPEAT_AFTER`]. A failure to publish is
//! logged and never fails the reconcile that wanted to tell it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::time::Instant;
use tracing::warn;

/// The API server refuses notes longer than this (bytes).
pub const NOTE_LIMIT: usize = 1024;
/// The same event for the same object is not published again sooner than this.
pub const REPEAT_AFTER: Duration = Duration::from_secs(600);
/// Remembered events beyond this are pruned (oldest first) so the map stays bounded.
const REMEMBERED: usize = 10_000;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something expected happened.
    Normal,
    /// Something needs attention.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub severity: Severity,
    /// CamelCase reason, e.g. `Created`.
    pub reason: String,
    /// What the operator did, e.g. `Apply`.
    pub action: String,
    /// The human text (cut to [`NOTE_LIMIT`] when published).
    pub text: String,
}

impl Note {
    /// A `Normal` event.
    pub fn normal(reason: &str, action: &str, text: impl Into<String>) -> Self {
        Note {
            severity: Severity::Normal,
            reason: reason.into(),
            action: action.into(),
            text: text.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, action: &str, text: impl Into<String>) -> Self {
        Note {
            severity: Severity::Warning,
            reason: reason.into(),
            action: action.into(),
            text: text.into(),
        }
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
pub fn truncate_note(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    const MARK: &str = " …";
    let mut end = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

/// Publishes events as the operator.
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<(String, String, String), Instant>>,
}

impl EventPublisher {
    /// A publisher reporting as `controller`/`instance`.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        EventPublisher {
            client,
            controller: controller.into(),
            instance: instance.into(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this (object, reason, text) is new or old enough to be told again; remembers it.
    fn should_publish(&self, regarding: &ObjectReference, note: &Note, now: Instant) -> bool {
        let key = (
            regarding.uid.clone().unwrap_or_default(),
            note.reason.clone(),
            note.text.clone(),
        );
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = recent.get(&key) {
            if now.duration_since(*at) < REPEAT_AFTER {
                return false;
            }
        }
        if recent.len() >= REMEMBERED {
            recent.retain(|_, at| now.duration_since(*at) < REPEAT_AFTER);
            if recent.len() >= REMEMBERED {
                recent.clear();
            }
        }
        recent.insert(key, now);
        true
    }

    /// The Event object for `note` about `regarding`.
    pub fn event(&self, regarding: &ObjectReference, note: &Note, now: Timestamp) -> Event {
        let name = regarding.name.clone().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.")),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(truncate_note(&note.action, 128)),
            reason: Some(truncate_note(&note.reason, 128)),
            note: Some(truncate_note(&note.text, NOTE_LIMIT)),
            type_: Some(note.severity.as_str().into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(truncate_note(&self.instance, 128)),
            ..Default::default()
        }
    }

    /// Publishes each note (unless told recently); failures are logged, never returned.
    pub async fn publish(&self, regarding: &ObjectReference, notes: &[Note]) {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        for note in notes {
            if !self.should_publish(regarding, note, Instant::now()) {
                continue;
            }
            let event = self.event(regarding, note, Timestamp::now());
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                warn!(
                    object = regarding.name.as_deref().unwrap_or_default(),
                    %namespace, reason = %note.reason, error = %e,
                    "could not publish event"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> EventPublisher {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        EventPublisher::new(Client::new(service, "default"), "kamera-operator", "test")
    }

    fn camera_ref() -> ObjectReference {
        ObjectReference {
            kind: Some("Camera".into()),
            name: Some("lobby".into()),
            namespace: Some("cams".into()),
            uid: Some("uid-lobby".into()),
            ..Default::default()
        }
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary_under_the_limit() {
        let long = "é".repeat(2_000);
        let cut = truncate_note(&long, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_note("short", NOTE_LIMIT), "short");
    }

    #[tokio::test]
    async fn an_event_is_valid_even_for_a_huge_error() {
        let p = publisher();
        let error = format!("applying Deployment: {}", "x".repeat(5_000));
        let event = p.event(
            &camera_ref(),
            &Note::warning("ApplyFailed", "Apply", error),
            Timestamp::from_second(1).expect("valid"),
        );
        assert!(event.note.expect("note").len() <= NOTE_LIMIT);
        assert_eq!(event.metadata.generate_name.as_deref(), Some("lobby."));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_event_is_not_repeated_within_the_window_but_a_new_note_is() {
        let p = publisher();
        let at = camera_ref();
        let yolo = Note::normal("Updated", "Apply", "processors: [yolo]");
        let none = Note::normal("Updated", "Apply", "processors: []");
        let t0 = Instant::now();
        assert!(p.should_publish(&at, &yolo, t0));
        assert!(!p.should_publish(&at, &yolo, t0 + Duration::from_secs(60)));
        assert!(
            p.should_publish(&at, &none, t0 + Duration::from_secs(61)),
            "a changed note is its own event, not a repeat of the old one"
        );
        assert!(p.should_publish(&at, &yolo, t0 + REPEAT_AFTER + Duration::from_secs(1)));
    }
}
