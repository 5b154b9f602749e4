//! One recording file on disk: created as `<name>.mp4.part` with the init segment, appended
//! one whole fragment at a time, renamed to `<name>.mp4` on close. After a failed write the
//! file is cut back to its last complete fragment, so it stays playable.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::catalog;
use super::naming::{self, PART_SUFFIX};
use crate::config::FsyncPolicy;

/// A failed disk operation, with the file it concerned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("creating {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path} at byte {offset}: {source}")]
    Write {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("flushing {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("closing {path}: {source}")]
    Close {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WriteError {
    fn io(&self) -> &std::io::Error {
        match self {
            WriteError::Create { source, .. }
            | WriteError::Write { source, .. }
            | WriteError::Sync { source, .. }
            | WriteError::Close { source, .. } => source,
        }
    }

    /// The `reason` label of `kamera_recording_errors_total`.
    pub fn reason(&self) -> &'static str {
        io_reason(self.io())
    }
}

/// Classifies an I/O error for metrics: the cases an operator acts on differently.
pub fn io_reason(e: &std::io::Error) -> &'static str {
    use rustix::io::Errno;
    match rustix::io::Errno::from_io_error(e) {
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => "no_space",
        Some(Errno::ROFS) => "read_only",
        Some(Errno::IO) => "io",
        Some(Errno::ACCESS) | Some(Errno::PERM) => "permission",
        _ => "other",
    }
}

/// An open recording file.
pub struct SegmentWriter {
    file: File,
    part: PathBuf,
    final_path: PathBuf,
    /// Bytes of complete boxes written (init segment and whole fragments).
    written: u64,
    /// Length of the init segment: a file no longer than this holds no media.
    init_len: u64,
    fsync: FsyncPolicy,
}

impl SegmentWriter {
    /// Creates the file for `camera` starting at `start_secs` under `root` and writes `init`.
    /// If a file of that name exists (a restart within the same second), the next free second
    /// is used, so nothing is overwritten.
    pub fn create(
        root: &Path,
        camera: &str,
        start_secs: i64,
        init: &[u8],
        fsync: FsyncPolicy,
    ) -> Result<Self, WriteError> {
        let mut secs = start_secs;
        loop {
            let final_path = root.join(naming::relative_path(camera, secs));
            let part = part_path(&final_path);
            let dir = final_path.parent().unwrap_or(root).to_path_buf();
            let new_dir = !dir.exists();
            fs::create_dir_all(&dir).map_err(|source| WriteError::Create {
                path: dir.clone(),
                source,
            })?;
            if final_path.exists() {
                secs += 1;
                continue;
            }
            let file = match OpenOptions::new().write(true).create_new(true).open(&part) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    secs += 1;
                    continue;
                }
                Err(source) => return Err(WriteError::Create { path: part, source }),
            };
            let mut w = Self {
                file,
                part,
                final_path,
                written: 0,
                init_len: init.len() as u64,
                fsync,
            };
            if let Err(e) = w.append(init) {
                w.discard();
                return Err(e);
            }
            if fsync != FsyncPolicy::Off {
                // The new directory entries must survive a power cut too.
                if new_dir {
                    sync_dir(dir.parent().unwrap_or(root));
                }
                sync_dir(&dir);
            }
            return Ok(w);
        }
    }

    /// The file while open (`.part`).
    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// The file once closed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// True before the init segment is written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Appends one complete box sequence (a fragment); on failure the file is cut back to the
    /// previous fragment.
    pub fn append(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if let Err(source) = self.file.write_all(data) {
            // A half-written fragment would make players stop early or complain; cut it off.
            let _ = self.file.set_len(self.written);
            return Err(WriteError::Write {
                path: self.part.clone(),
                offset: self.written,
                source,
            });
        }
        self.written += data.len() as u64;
        if self.fsync == FsyncPolicy::Fragment {
            self.file.sync_data().map_err(|source| WriteError::Sync {
                path: self.part.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// True once a fragment follows the init segment.
    pub fn has_media(&self) -> bool {
        self.written > self.init_len
    }

    /// Closes the file: flushes it (unless fsync is off), sets its modification time to the
    /// recording's end (`end_ms`, Unix ms; the listing reads it back) and renames it.
    /// A file without media (closed before its first fragment) is removed: `Ok(None)`.
    pub fn close(self, end_ms: i64) -> Result<Option<PathBuf>, WriteError> {
        if !self.has_media() {
            self.discard();
            return Ok(None);
        }
        let Self {
            file,
            part,
            final_path,
            fsync,
            ..
        } = self;
        let _ = file.set_modified(catalog::system_time(end_ms));
        if fsync != FsyncPolicy::Off {
            file.sync_all().map_err(|source| WriteError::Sync {
                path: part.clone(),
                source,
            })?;
        }
        drop(file);
        fs::rename(&part, &final_path).map_err(|source| WriteError::Close {
            path: part.clone(),
            source,
        })?;
        if fsync != FsyncPolicy::Off {
            if let Some(dir) = final_path.parent() {
                sync_dir(dir);
            }
        }
        Ok(Some(final_path))
    }

    /// Closes after a failure: keeps what was written completely (renamed, playable) or
    /// removes the file when not even the init segment made it. Best effort.
    pub fn abandon(self, end_ms: i64) -> Option<PathBuf> {
        if !self.has_media() {
            self.discard();
            return None;
        }
        let _ = self.file.set_len(self.written);
        let _ = self.file.set_modified(catalog::system_time(end_ms));
        let _ = self.file.sync_all();
        fs::rename(&self.part, &self.final_path)
            .ok()
            .map(|_| self.final_path.clone())
    }

    fn discard(self) {
        let _ = fs::remove_file(&self.part);
    }
}

/// `<path>.part`.
pub fn part_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) {
    // Directory fsync is what makes a create or rename durable; failing it is not fatal.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_written_as_part_and_renamed_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = SegmentWriter::create(
            dir.path(),
            "cam",
            1_795_507_500,
            b"init",
            FsyncPolicy::Fragment,
        )
        .expect("create");
        let part = w.part_path().to_path_buf();
        assert!(part.ends_with("cam/2026-11-24/cam-20261124T080500Z.mp4.part"));
        w.append(b"frag").expect("append");
        assert_eq!(fs::read(&part).expect("read"), b"initfrag");
        let end_ms = 1_795_507_800_000;
        let done = w.close(end_ms).expect("close").expect("has media");
        assert!(!part.exists());
        assert_eq!(fs::read(&done).expect("read"), b"initfrag");
        let mtime = fs::metadata(&done)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(catalog::unix_ms(mtime), end_ms);
    }

    #[test]
    fn a_file_without_media_is_removed_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = SegmentWriter::create(dir.path(), "cam", 100, b"init", FsyncPolicy::Off)
            .expect("create");
        let part = w.part_path().to_path_buf();
        assert_eq!(w.close(200_000).expect("close"), None);
        assert!(!part.exists());
        assert!(catalog::scan_camera(dir.path(), "cam").is_empty());
    }

    #[test]
    fn an_existing_name_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SegmentWriter::create(dir.path(), "cam", 100, b"a", FsyncPolicy::Off).expect("a");
        let b = SegmentWriter::create(dir.path(), "cam", 100, b"b", FsyncPolicy::Off).expect("b");
        assert_ne!(a.part_path(), b.part_path());
        assert!(b.final_path().ends_with("cam-19700101T000141Z.mp4"));
    }

    #[test]
    fn errors_are_classified_for_operators() {
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        assert_eq!(io_reason(&e), "no_space");
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::ROFS.raw_os_error());
        assert_eq!(io_reason(&e), "read_only");
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert_eq!(io_reason(&e), "io");
    }
}
