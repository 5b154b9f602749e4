//! Frame files for processors: `<frames>/<camera>/<seq>.jpg` in a small ring, and
//! `latest.jpg`, replaced atomically. A processor told about frame N can read it until `keep`
//! newer frames have been written, so it never races an overwrite.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("frames directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing frame {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One camera's frame directory.
pub struct FrameStore {
    dir: PathBuf,
    keep: u64,
}

/// File name of frame `seq` (8 digits, so names sort in order).
pub fn frame_name(seq: u64) -> String {
    format!("{seq:08}.jpg")
}

impl FrameStore {
    /// Opens (creating) `dir` and removes frames left by an earlier run, whose numbers would
    /// otherwise collide with this run's.
    pub fn open(dir: PathBuf, keep: usize) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(|source| StoreError::Dir {
            path: dir.clone(),
            source,
        })?;
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let numbered = name
                    .strip_suffix(".jpg")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if numbered || name.starts_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self {
            dir,
            // At least one numbered file must exist: notifications point at it.
            keep: keep.max(1) as u64,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes frame `seq`, points `latest.jpg` at it and drops the frame that left the ring.
    /// Returns the numbered file's path.
    pub fn write(&self, seq: u64, jpeg: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.dir.join(frame_name(seq));
        let tmp = self.dir.join(format!(".tmp-{seq}"));
        let werr = |path: &Path, source| StoreError::Write {
            path: path.to_path_buf(),
            source,
        };
        {
            let mut f = fs::File::create(&tmp).map_err(|e| werr(&tmp, e))?;
            f.write_all(jpeg).map_err(|e| werr(&tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| werr(&path, e))?;

        // latest.jpg: a hard link renamed into place is atomic and costs no second write.
        let latest = self.dir.join("latest.jpg");
        let link = self.dir.join(".tmp-latest");
        let _ = fs::remove_file(&link);
        if fs::hard_link(&path, &link).is_err() {
            fs::write(&link, jpeg).map_err(|e| werr(&link, e))?;
        }
        fs::rename(&link, &latest).map_err(|e| werr(&latest, e))?;

        if seq > self.keep {
            let old = self.dir.join(frame_name(seq - self.keep));
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_ring_and_latest_points_at_the_newest() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FrameStore::open(tmp.path().join("cam"), 3).expect("open");
        for seq in 1..=5u64 {
            let path = store.write(seq, &[seq as u8; 4]).expect("write");
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(frame_name(seq).as_str())
            );
        }
        let mut names: Vec<String> = fs::read_dir(store.dir())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["00000003.jpg", "00000004.jpg", "00000005.jpg", "latest.jpg"]
        );
        assert_eq!(
            fs::read(store.dir().join("latest.jpg")).expect("latest"),
            [5u8; 4]
        );
    }

    #[test]
    fn reopening_clears_old_numbered_frames() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cam");
        let store = FrameStore::open(dir.clone(), 8).expect("open");
        store.write(41, b"x").expect("write");
        let _store = FrameStore::open(dir.clone(), 8).expect("reopen");
        assert!(!dir.join(frame_name(41)).exists());
        assert!(
            dir.join("latest.jpg").exists(),
            "latest survives for HTTP readers"
        );
    }
}
