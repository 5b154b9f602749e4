//! Detections from processor acks: recent ones per camera, in memory, for
//! `/api/cameras/<camera>/detections`, and the label values allowed in
//! `kamera_detections_total`. Processors choose their labels and how much they report, so
//! everything here is bounded: entries and detections per camera (drop oldest), and distinct
//! metric labels per camera and processor (the rest count under [`OTHER_LABEL`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use tracing::warn;

use super::protocol::Detection;
use crate::http::rfc3339_ms;

/// The metric label that stands for every label past a camera and processor's budget.
pub const OTHER_LABEL: &str = "other";

/// One processor's detections for one frame.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub processor: String,
    pub seq: u64,
    pub captured_at: String,
    pub acked_at: String,
    pub detections: Vec<Detection>,
}

/// How much is kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Acks with detections kept per camera.
    pub entries: usize,
    /// Detections kept per camera over all its entries (an ack with more keeps its first ones).
    pub detections: usize,
    /// Distinct `label` values per camera and processor in `kamera_detections_total`.
    pub metric_labels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            entries: 100,
            detections: 1000,
            metric_labels: 64,
        }
    }
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<Entry>,
    detections: usize,
}

pub struct Detections {
    limits: Limits,
    recent: Mutex<HashMap<String, Ring>>,
    labels: Mutex<LabelBudget>,
}

impl Detections {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                entries: limits.entries.max(1),
                detections: limits.detections.max(1),
                metric_labels: limits.metric_labels,
            },
            recent: Mutex::new(HashMap::new()),
            labels: Mutex::new(LabelBudget::new(limits.metric_labels)),
        }
    }

    pub fn record(
        &self,
        camera: &str,
        processor: &str,
        seq: u64,
        captured: SystemTime,
        acked: SystemTime,
        mut detections: Vec<Detection>,
    ) {
        detections.truncate(self.limits.detections);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let ring = recent.entry(camera.to_string()).or_default();
        ring.detections += detections.len();
        ring.entries.push_back(Entry {
            processor: processor.to_string(),
            seq,
            captured_at: rfc3339_ms(captured),
            acked_at: rfc3339_ms(acked),
            detections,
        });
        while ring.entries.len() > self.limits.entries || ring.detections > self.limits.detections {
            let Some(old) = ring.entries.pop_front() else {
                break;
            };
            ring.detections -= old.detections.len();
        }
    }

    /// Forgets a released camera: its recent entries and its label budgets.
    pub fn forget(&self, camera: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(camera);
        self.labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .remove(camera);
    }

    /// The camera's recent entries, newest first.
    pub fn recent(&self, camera: &str) -> Vec<Entry> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .get(camera)
            .map(|r| r.entries.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// The `label` value to count `label` under in `kamera_detections_total`; says so once
    /// per camera and processor when the budget runs out.
    pub fn metric_label<'a>(&self, camera: &str, processor: &str, label: &'a str) -> &'a str {
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        match labels.admit(camera, processor, label) {
            Admitted::Own => label,
            Admitted::Other { first } => {
                if first {
                    warn!(
                        camera,
                        processor,
                        limit = self.limits.metric_labels,
                        "processor reports too many distinct labels: further ones count as label=\"{OTHER_LABEL}\""
                    );
                }
                OTHER_LABEL
            }
        }
    }
}

/// Where a label goes in the metric.
#[derive(Debug, PartialEq, Eq)]
enum Admitted {
    /// Under its own value.
    Own,
    /// Under [`OTHER_LABEL`]; `first` the first time the camera and processor overflowed.
    Other { first: bool },
}

/// Distinct labels seen per camera and processor, up to `max` each.
struct LabelBudget {
    max: usize,
    seen: HashMap<String, HashMap<String, Seen>>,
}

#[derive(Default)]
struct Seen {
    labels: HashSet<String>,
    overflowed: bool,
}

impl LabelBudget {
    fn new(max: usize) -> Self {
        Self {
            max,
            seen: HashMap::new(),
        }
    }

    fn admit(&mut self, camera: &str, processor: &str, label: &str) -> Admitted {
        let per_camera = match self.seen.get_mut(camera) {
            Some(p) => p,
            None => self.seen.entry(camera.to_string()).or_default(),
        };
        let seen = match per_camera.get_mut(processor) {
            Some(s) => s,
            None => per_camera.entry(processor.to_string()).or_default(),
        };
        if label == OTHER_LABEL || seen.labels.contains(label) {
            return Admitted::Own;
        }
        if seen.labels.len() < self.max {
            seen.labels.insert(label.to_string());
            return Admitted::Own;
        }
        let first = !seen.overflowed;
        seen.overflowed = true;
        Admitted::Other { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(label: &str) -> Detection {
        Detection {
            label: label.to_string(),
            confidence: None,
            bbox: None,
        }
    }

    fn limits(entries: usize, detections: usize) -> Limits {
        Limits {
            entries,
            detections,
            ..Limits::default()
        }
    }

    #[test]
    fn keeps_the_newest_entries_first() {
        let d = Detections::new(limits(2, 100));
        let now = SystemTime::now();
        for seq in 1..=3 {
            d.record("cam", "p", seq, now, now, vec![]);
        }
        let seqs: Vec<u64> = d.recent("cam").iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 2]);
        assert!(d.recent("other").is_empty());
    }

    #[test]
    fn detections_kept_per_camera_are_bounded_in_total() {
        let d = Detections::new(limits(100, 10));
        let now = SystemTime::now();
        for seq in 1..=5 {
            d.record("cam", "p", seq, now, now, vec![detection("car"); 4]);
        }
        let recent = d.recent("cam");
        let seqs: Vec<u64> = recent.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4], "the oldest entries make room");
        // One ack with more than the whole budget keeps its first detections only.
        d.record("cam", "p", 6, now, now, vec![detection("car"); 50]);
        let recent = d.recent("cam");
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].detections.len(), 10);
    }

    #[test]
    fn distinct_metric_labels_are_capped_per_camera_and_processor() {
        let d = Detections::new(Limits {
            metric_labels: 3,
            ..Limits::default()
        });
        let labels: Vec<&str> = ["a", "b", "c", "d", "a", "e", "other"]
            .into_iter()
            .map(|l| d.metric_label("cam", "p", l))
            .collect();
        assert_eq!(labels, ["a", "b", "c", "other", "a", "other", "other"]);
        // Each camera and processor has its own budget.
        assert_eq!(d.metric_label("cam", "q", "d"), "d");
        assert_eq!(d.metric_label("cam2", "p", "d"), "d");
    }

    #[test]
    fn the_first_overflow_is_reported_once() {
        let mut budget = LabelBudget::new(1);
        assert_eq!(budget.admit("cam", "p", "a"), Admitted::Own);
        assert_eq!(
            budget.admit("cam", "p", "b"),
            Admitted::Other { first: true }
        );
        assert_eq!(
            budget.admit("cam", "p", "c"),
            Admitted::Other { first: false }
        );
    }
}
