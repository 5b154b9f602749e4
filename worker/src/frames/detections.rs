//! Recent detections per camera, in memory, for `/api/cameras/<camera>/detections`.
//! Bounded: each camera keeps its newest `per_camera` acks with detections (drop oldest).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use super::protocol::Detection;
use crate::http::rfc3339_ms;

/// One processor's detections for one frame.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub processor: String,
    pub seq: u64,
    pub captured_at: String,
    pub acked_at: String,
    pub detections: Vec<Detection>,
}

pub struct Detections {
    per_camera: usize,
    recent: Mutex<HashMap<String, VecDeque<Entry>>>,
}

impl Detections {
    pub fn new(per_camera: usize) -> Self {
        Self {
            per_camera: per_camera.max(1),
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(
        &self,
        camera: &str,
        processor: &str,
        seq: u64,
        captured: SystemTime,
        acked: SystemTime,
        detections: Vec<Detection>,
    ) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let ring = recent.entry(camera.to_string()).or_default();
        if ring.len() >= self.per_camera {
            ring.pop_front();
        }
        ring.push_back(Entry {
            processor: processor.to_string(),
            seq,
            captured_at: rfc3339_ms(captured),
            acked_at: rfc3339_ms(acked),
            detections,
        });
    }

    /// The camera's recent entries, newest first.
    pub fn recent(&self, camera: &str) -> Vec<Entry> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .get(camera)
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_first() {
        let d = Detections::new(2);
        let now = SystemTime::now();
        for seq in 1..=3 {
            d.record("cam", "p", seq, now, now, vec![]);
        }
        let seqs: Vec<u64> = d.recent("cam").iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 2]);
        assert!(d.recent("other").is_empty());
    }
}
