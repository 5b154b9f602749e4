//! What is on disk: the recordings of each camera (for the listing and for retention), and
//! recovery of `.part` files a crash left behind (they are playable fragmented MP4 up to their
//! last complete fragment).

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::naming::{self, PART_SUFFIX};
use crate::config::is_valid_camera_name;

/// One recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub camera: String,
    pub path: PathBuf,
    /// `<date>/<file name>` without `.part`: the URL below `/recordings/<camera>/`.
    pub rel: String,
    /// Start, Unix ms (from the name).
    pub start_ms: i64,
    /// End, Unix ms: the file's modification time (set to the media end when it is closed).
    pub end_ms: i64,
    pub bytes: u64,
    /// Closed (renamed from `.part`).
    pub closed: bool,
}

/// Unix ms of a system time (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// System time of Unix ms.
pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Camera names with a directory under `root`.
pub fn cameras(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = read_dir_names(root)
        .into_iter()
        .filter(|n| is_valid_camera_name(n) && root.join(n).is_dir())
        .collect();
    out.sort();
    out
}

/// Recordings of `camera`, oldest first. Unknown files are ignored.
pub fn scan_camera(root: &Path, camera: &str) -> Vec<Entry> {
    let cam_dir = root.join(camera);
    let mut out = Vec::new();
    for day in read_dir_names(&cam_dir) {
        if !naming::is_date_dir(&day) {
            continue;
        }
        for name in read_dir_names(&cam_dir.join(&day)) {
            let Some(parsed) = naming::parse_file_name(camera, &name) else {
                continue;
            };
            let path = cam_dir.join(&day).join(&name);
            let Ok(meta) = fs::metadata(&path) else {
                continue; // deleted meanwhile
            };
            let start_ms = parsed.start_secs * 1000;
            let end_ms = meta
                .modified()
                .map(unix_ms)
                .unwrap_or(start_ms)
                .max(start_ms);
            let file = name.strip_suffix(PART_SUFFIX).unwrap_or(&name);
            out.push(Entry {
                camera: camera.to_string(),
                path,
                rel: format!("{day}/{file}"),
                start_ms,
                end_ms,
                bytes: meta.len(),
                closed: !parsed.part,
            });
        }
    }
    out.sort_by(|a, b| (a.start_ms, &a.rel).cmp(&(b.start_ms, &b.rel)));
    out
}

/// Every camera's recordings.
pub fn scan_all(root: &Path) -> Vec<Entry> {
    cameras(root)
        .iter()
        .flat_map(|c| scan_camera(root, c))
        .collect()
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Length of the playable prefix of a fragmented MP4: through `moov`, then through each
/// complete `moof`+`mdat` pair. 0 when there is no complete `moov`.
pub fn playable_len<R: Read + Seek>(r: &mut R) -> std::io::Result<u64> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let mut pos = 0u64;
    let mut good = 0u64;
    let mut have_moov = false;
    let mut in_fragment = false;
    while pos + 8 <= file_len {
        r.seek(SeekFrom::Start(pos))?;
        let mut hdr = [0u8; 16];
        r.read_exact(&mut hdr[..8])?;
        let size32 = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let kind = [hdr[4], hdr[5], hdr[6], hdr[7]];
        let size = match size32 {
            0 => break, // "to end of file": only a writer that never finished the box writes this
            1 => {
                if pos + 16 > file_len {
                    break;
                }
                r.read_exact(&mut hdr[8..16])?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&hdr[8..16]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        if size < 8 || pos.saturating_add(size) > file_len {
            break;
        }
        pos += size;
        match &kind {
            b"moov" => {
                have_moov = true;
                good = pos;
            }
            b"moof" => in_fragment = true,
            b"mdat" if in_fragment && have_moov => {
                in_fragment = false;
                good = pos;
            }
            _ if !have_moov => {} // ftyp, free, …
            _ => {}
        }
    }
    Ok(if have_moov { good } else { 0 })
}

/// Renames every `.part` file under `root` that is not in `open` to its final name, cutting
/// off an incomplete last fragment and keeping its modification time (the recording's end).
/// A `.part` without a complete `moov` holds nothing playable and is removed.
/// Returns the recovered files.
pub fn recover(root: &Path, open: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut recovered = Vec::new();
    for entry in scan_all(root).into_iter().filter(|e| !e.closed) {
        if open.contains(&entry.path) {
            continue;
        }
        match recover_one(&entry.path) {
            Ok(Some(to)) => {
                info!(camera = %entry.camera, file = %to.display(), "recovered recording left open by an earlier run");
                recovered.push(to);
            }
            Ok(None) => {
                warn!(camera = %entry.camera, file = %entry.path.display(), "removed unplayable leftover recording (no complete header)");
            }
            Err(e) => {
                warn!(camera = %entry.camera, file = %entry.path.display(), error = %e, "cannot recover leftover recording");
            }
        }
    }
    recovered
}

fn recover_one(part: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut f = fs::OpenOptions::new().read(true).write(true).open(part)?;
    let meta = f.metadata()?;
    let mtime = meta.modified().ok();
    let good = playable_len(&mut f)?;
    if good == 0 {
        drop(f);
        fs::remove_file(part)?;
        return Ok(None);
    }
    if good < meta.len() {
        f.set_len(good)?;
    }
    if let Some(t) = mtime {
        let _ = f.set_modified(t);
    }
    f.sync_all()?;
    drop(f);
    let name = part.to_string_lossy();
    let to = PathBuf::from(name.strip_suffix(PART_SUFFIX).unwrap_or(&name));
    fs::rename(part, &to)?;
    Ok(Some(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], payload: usize) -> Vec<u8> {
        let mut v = ((payload + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend(std::iter::repeat_n(0u8, payload));
        v
    }

    fn file(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn playable_prefix_ends_after_the_last_complete_fragment() {
        let head = file(&[boxed(b"ftyp", 16), boxed(b"moov", 100)]);
        let frag = file(&[boxed(b"moof", 50), boxed(b"mdat", 1000)]);
        let mut all = file(&[head.clone(), frag.clone(), frag.clone()]);
        let complete = all.len() as u64;
        assert_eq!(playable_len(&mut Cursor::new(&all)).ok(), Some(complete));
        // A fragment cut short by a crash is not counted …
        all.extend_from_slice(&boxed(b"moof", 50));
        all.extend_from_slice(&boxed(b"mdat", 1000)[..300]);
        assert_eq!(playable_len(&mut Cursor::new(&all)).ok(), Some(complete));
        // … nor is a moof without its mdat.
        let mut lone = file(&[head.clone(), frag.clone(), boxed(b"moof", 50)]);
        assert_eq!(
            playable_len(&mut Cursor::new(&lone)).ok(),
            Some((head.len() + frag.len()) as u64)
        );
        // Zeros after a power cut read as a box of size 0: the end.
        lone.extend(std::iter::repeat_n(0u8, 64));
        assert_eq!(
            playable_len(&mut Cursor::new(&lone)).ok(),
            Some((head.len() + frag.len()) as u64)
        );
    }

    #[test]
    fn without_a_complete_moov_nothing_is_playable() {
        let mut v = boxed(b"ftyp", 16);
        v.extend_from_slice(&boxed(b"moov", 100)[..50]);
        assert_eq!(playable_len(&mut Cursor::new(&v)).ok(), Some(0));
        assert_eq!(
            playable_len(&mut Cursor::new(Vec::<u8>::new())).ok(),
            Some(0)
        );
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0u32..200 {
            let v: Vec<u8> = (0..(seed * 7 % 300))
                .map(|i| (i.wrapping_mul(seed).wrapping_add(seed) % 251) as u8)
                .collect();
            let _ = playable_len(&mut Cursor::new(&v));
        }
    }

    #[test]
    fn leftover_parts_are_recovered_and_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let day = root.join("cam/2026-11-24");
        fs::create_dir_all(&day).expect("mkdir");
        let head = file(&[boxed(b"ftyp", 16), boxed(b"moov", 100)]);
        let frag = file(&[boxed(b"moof", 50), boxed(b"mdat", 1000)]);
        let good = file(&[head.clone(), frag.clone()]);
        let mut torn = good.clone();
        torn.extend_from_slice(&boxed(b"moof", 50)[..20]);
        let leftover = day.join("cam-20261124T080000Z.mp4.part");
        let open = day.join("cam-20261124T080500Z.mp4.part");
        let useless = day.join("cam-20261124T081000Z.mp4.part");
        fs::write(&leftover, &torn).expect("write");
        fs::write(&open, &good).expect("write");
        fs::write(&useless, b"\0\0\0").expect("write");
        fs::write(day.join("notes.txt"), b"ignored").expect("write");

        let recovered = recover(root, &HashSet::from([open.clone()]));
        assert_eq!(recovered, vec![day.join("cam-20261124T080000Z.mp4")]);
        assert_eq!(fs::read(&recovered[0]).expect("read"), good);
        assert!(open.exists(), "the open file is left alone");
        assert!(!useless.exists());

        let listed = scan_camera(root, "cam");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].rel, "2026-11-24/cam-20261124T080000Z.mp4");
        assert!(listed[0].closed);
        assert!(!listed[1].closed);
        assert_eq!(listed[0].start_ms, 1_795_507_200_000);
    }
}
