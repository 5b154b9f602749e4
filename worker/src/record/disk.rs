//! Free space on the data volume and the floor below which recording stops, so the disk never
//! fills up (a full disk would also break every other writer on the volume).

use std::path::Path;

use crate::config::MinFree;

/// Space on the volume holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer can still use.
    pub available: u64,
    pub total: u64,
}

/// Asks the kernel for the space on the volume holding `path`.
pub fn space(path: &Path) -> std::io::Result<Space> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = s.f_frsize.max(1);
    Ok(Space {
        available: s.f_bavail.saturating_mul(unit),
        total: s.f_blocks.saturating_mul(unit),
    })
}

/// The free-space floor: `MinFree` as bytes for this volume.
pub fn floor(min_free: MinFree, space: Space) -> u64 {
    min_free.bytes_for(space.total)
}

/// Whether `incoming` more bytes may be written without going below the floor.
pub fn may_write(min_free: MinFree, space: Space, incoming: u64) -> bool {
    space.available.saturating_sub(incoming) >= floor(min_free, space)
        && space.available >= incoming
}

/// Bytes to free to get back to the floor (0 when above it).
pub fn deficit(min_free: MinFree, space: Space) -> u64 {
    floor(min_free, space).saturating_sub(space.available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_before_the_floor() {
        let s = Space {
            available: 1_000,
            total: 10_000,
        };
        assert!(may_write(MinFree::percent(5.0), s, 400));
        assert!(may_write(MinFree::percent(5.0), s, 500));
        assert!(!may_write(MinFree::percent(5.0), s, 501));
        assert!(!may_write(MinFree::bytes(2_000), s, 0));
        assert!(!may_write(MinFree::bytes(0), s, 1_001));
    }

    #[test]
    fn deficit_is_what_is_missing_to_the_floor() {
        let s = Space {
            available: 100,
            total: 10_000,
        };
        assert_eq!(deficit(MinFree::percent(5.0), s), 400);
        assert_eq!(deficit(MinFree::bytes(50), s), 0);
    }

    #[test]
    fn space_of_a_real_directory_is_reported() {
        let s = space(Path::new(".")).expect("statvfs");
        assert!(s.total > 0 && s.available <= s.total);
    }
}
