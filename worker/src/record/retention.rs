//! Which recordings to delete: a pure decision over a list of files, so the rules (age, size
//! per camera, free-space floor) are tested without a disk. The open file is never chosen.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One recording file as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub camera: String,
    pub path: PathBuf,
    /// Start of the recording, Unix ms.
    pub start_ms: i64,
    /// End of the recording (last write), Unix ms.
    pub end_ms: i64,
    pub bytes: u64,
    /// Being written right now: never deleted, but counts toward the camera's total.
    pub open: bool,
}

/// The configured limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub max_age: Option<Duration>,
    pub max_size: Option<u64>,
}

impl Policy {
    /// Whether recordings may be deleted at all. Without any limit Kamera keeps every file and
    /// only stops recording when the disk runs low.
    pub fn allows_deletion(&self) -> bool {
        self.max_age.is_some() || self.max_size.is_some()
    }
}

/// Why a file is deleted (a label in logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age,
    Size,
    DiskFloor,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Age => "age",
            Reason::Size => "size",
            Reason::DiskFloor => "disk_floor",
        }
    }
}

/// A file to delete and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub path: PathBuf,
    pub camera: String,
    pub bytes: u64,
    pub reason: Reason,
}

/// The files to delete, oldest first: closed files older than `max_age`; then per camera the
/// oldest closed files while its total exceeds `max_size`; then, if `free_deficit` bytes must
/// be freed to get back above the free-space floor and the policy allows deleting at all, the
/// oldest closed files of any camera until the deficit is covered.
pub fn plan(files: &[FileFacts], now_ms: i64, policy: &Policy, free_deficit: u64) -> Vec<Deletion> {
    let mut sorted: Vec<&FileFacts> = files.iter().collect();
    sorted.sort_by(|a, b| (a.start_ms, &a.path).cmp(&(b.start_ms, &b.path)));
    let mut chosen: Vec<Deletion> = Vec::new();
    let mut deleted = std::collections::HashSet::new();
    let mut take = |f: &FileFacts, reason: Reason, chosen: &mut Vec<Deletion>| {
        if deleted.insert(f.path.clone()) {
            chosen.push(Deletion {
                path: f.path.clone(),
                camera: f.camera.clone(),
                bytes: f.bytes,
                reason,
            });
        }
    };

    if let Some(max_age) = policy.max_age {
        let cutoff = now_ms.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        for f in sorted.iter().filter(|f| !f.open && f.end_ms < cutoff) {
            take(f, Reason::Age, &mut chosen);
        }
    }

    if let Some(max_size) = policy.max_size {
        let mut per_camera: BTreeMap<&str, Vec<&FileFacts>> = BTreeMap::new();
        for f in &sorted {
            per_camera.entry(f.camera.as_str()).or_default().push(f);
        }
        for files in per_camera.values() {
            let mut total: u64 = files
                .iter()
                .filter(|f| !chosen.iter().any(|d| d.path == f.path))
                .map(|f| f.bytes)
                .sum();
            for f in files.iter().filter(|f| !f.open) {
                if total <= max_size {
                    break;
                }
                if chosen.iter().any(|d| d.path == f.path) {
                    continue;
                }
                total = total.saturating_sub(f.bytes);
                take(f, Reason::Size, &mut chosen);
            }
        }
    }

    if free_deficit > 0 && policy.allows_deletion() {
        let mut freed: u64 = chosen.iter().map(|d| d.bytes).sum();
        for f in sorted.iter().filter(|f| !f.open) {
            if freed >= free_deficit {
                break;
            }
            if chosen.iter().any(|d| d.path == f.path) {
                continue;
            }
            freed += f.bytes;
            take(f, Reason::DiskFloor, &mut chosen);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn file(camera: &str, start_min: i64, bytes: u64, open: bool) -> FileFacts {
        FileFacts {
            camera: camera.into(),
            path: PathBuf::from(format!("{camera}/{start_min:06}.mp4")),
            start_ms: start_min * MIN,
            end_ms: (start_min + 5) * MIN,
            bytes,
            open,
        }
    }

    fn paths(d: &[Deletion]) -> Vec<String> {
        d.iter().map(|d| d.path.display().to_string()).collect()
    }

    #[test]
    fn nothing_is_deleted_without_limits() {
        let files = vec![file("a", 0, 100, false), file("a", 5, 100, true)];
        assert!(plan(&files, 1_000 * MIN, &Policy::default(), 0).is_empty());
        // Not even to get back above the free-space floor: deleting needs a retention policy.
        assert!(plan(&files, 1_000 * MIN, &Policy::default(), 1_000).is_empty());
    }

    #[test]
    fn files_past_max_age_go_but_the_open_file_stays() {
        let files = vec![
            file("a", 0, 10, false),
            file("a", 5, 10, false),
            file("a", 10, 10, true),
        ];
        let policy = Policy {
            max_age: Some(Duration::from_secs(60)),
            max_size: None,
        };
        let d = plan(&files, 100 * MIN, &policy, 0);
        assert_eq!(paths(&d), vec!["a/000000.mp4", "a/000005.mp4"]);
        assert!(d.iter().all(|d| d.reason == Reason::Age));
    }

    #[test]
    fn a_file_ending_within_max_age_is_kept() {
        let files = vec![file("a", 0, 10, false)];
        let policy = Policy {
            max_age: Some(Duration::from_secs(120)),
            max_size: None,
        };
        // Ends at minute 5; at minute 6 it is one minute old.
        assert!(plan(&files, 6 * MIN, &policy, 0).is_empty());
        assert_eq!(plan(&files, 8 * MIN, &policy, 0).len(), 1);
    }

    #[test]
    fn oldest_files_go_first_while_a_camera_is_over_its_size() {
        let files = vec![
            file("a", 10, 100, false),
            file("a", 0, 100, false),
            file("a", 5, 100, false),
            file("a", 15, 100, true),
            file("b", 0, 1_000, false),
        ];
        let policy = Policy {
            max_age: None,
            max_size: Some(250),
        };
        let d = plan(&files, 20 * MIN, &policy, 0);
        // Camera a: 400 bytes → drop the two oldest (200 left, open file included).
        // Camera b: one closed file over the limit on its own → dropped.
        assert_eq!(
            paths(&d),
            vec!["a/000000.mp4", "a/000005.mp4", "b/000000.mp4"]
        );
    }

    #[test]
    fn the_open_file_is_never_deleted_even_when_it_alone_exceeds_the_limit() {
        let files = vec![file("a", 0, 10, false), file("a", 5, 1_000, true)];
        let policy = Policy {
            max_age: Some(Duration::ZERO),
            max_size: Some(1),
        };
        let d = plan(&files, 1_000 * MIN, &policy, 1_000_000);
        assert_eq!(paths(&d), vec!["a/000000.mp4"]);
    }

    #[test]
    fn the_free_space_floor_takes_the_oldest_of_any_camera() {
        let files = vec![
            file("a", 10, 100, false),
            file("b", 0, 100, false),
            file("a", 5, 100, false),
            file("b", 20, 100, true),
        ];
        let policy = Policy {
            max_age: Some(Duration::from_secs(86_400)),
            max_size: None,
        };
        let d = plan(&files, 30 * MIN, &policy, 150);
        assert_eq!(paths(&d), vec!["b/000000.mp4", "a/000005.mp4"]);
        assert!(d.iter().all(|d| d.reason == Reason::DiskFloor));
    }

    proptest! {
        #[test]
        fn decisions_respect_the_invariants(
            specs in proptest::collection::vec((0usize..3, 0i64..1000, 1u64..1000, any::<bool>()), 0..40),
            max_size in proptest::option::of(0u64..5000),
            max_age_min in proptest::option::of(0u64..2000),
            deficit in 0u64..3000,
        ) {
            let files: Vec<FileFacts> = specs.iter().enumerate().map(|(i, (cam, start, bytes, open))| FileFacts {
                camera: format!("c{cam}"),
                path: PathBuf::from(format!("f{i}")),
                start_ms: start * MIN,
                end_ms: (start + 5) * MIN,
                bytes: *bytes,
                open: *open,
            }).collect();
            let policy = Policy { max_age: max_age_min.map(|m| Duration::from_secs(m * 60)), max_size };
            let now = 1000 * MIN;
            let d = plan(&files, now, &policy, deficit);
            let deleted: std::collections::HashSet<_> = d.iter().map(|d| d.path.clone()).collect();
            prop_assert_eq!(deleted.len(), d.len(), "no file is chosen twice");
            for f in &files {
                if f.open {
                    prop_assert!(!deleted.contains(&f.path), "open file deleted");
                }
            }
            // Per camera, deletions by size take the oldest closed files first.
            if let Some(max) = max_size {
                for cam in ["c0", "c1", "c2"] {
                    let kept: u64 = files.iter().filter(|f| f.camera == cam && !deleted.contains(&f.path)).map(|f| f.bytes).sum();
                    let open: u64 = files.iter().filter(|f| f.camera == cam && f.open).map(|f| f.bytes).sum();
                    if kept > max {
                        // Only possible when nothing closed is left to delete.
                        prop_assert!(files.iter().filter(|f| f.camera == cam && !f.open).all(|f| deleted.contains(&f.path)) || kept == open);
                    }
                }
            }
            if !policy.allows_deletion() {
                prop_assert!(d.is_empty());
            }
        }
    }
}
