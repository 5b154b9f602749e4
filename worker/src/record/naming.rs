//! Where recordings live and when a file ends: names from the wall-clock start time and the
//! clock-aligned cut points. Pure: no disk and no clock (callers pass the time in).
//!
//! Layout: `<recordings>/<camera>/<YYYY-MM-DD>/<camera>-<YYYYMMDDTHHMMSSZ>.mp4`, UTC, with a
//! `.part` suffix while the file is open.

use std::path::PathBuf;

/// Suffix of a file that is still being written (or was left by a crash).
pub const PART_SUFFIX: &str = ".part";

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Unix seconds → UTC calendar time (proleptic Gregorian; H. Hinnant's `civil_from_days`).
pub fn civil(unix_secs: i64) -> Civil {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
    }
}

/// UTC calendar time → Unix seconds (`days_from_civil`); `None` for an impossible date.
pub fn unix_secs(c: Civil) -> Option<i64> {
    let days_in_month = match c.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (c.year % 4 == 0 && c.year % 100 != 0) || c.year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if c.day == 0 || c.day > days_in_month || c.hour > 23 || c.minute > 59 || c.second > 59 {
        return None;
    }
    let y = c.year - i64::from(c.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(c.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(c.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second))
}

/// `YYYY-MM-DD`, the day directory of a file starting at `unix_secs`.
pub fn date_dir(unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// `<camera>-YYYYMMDDTHHMMSSZ.mp4` for a file starting at `unix_secs`.
pub fn file_name(camera: &str, unix_secs: i64) -> String {
    let c = civil(unix_secs);
    format!(
        "{camera}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.mp4",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `<camera>/<YYYY-MM-DD>/<camera>-<stamp>.mp4`, relative to the recordings directory.
pub fn relative_path(camera: &str, unix_secs: i64) -> PathBuf {
    PathBuf::from(camera)
        .join(date_dir(unix_secs))
        .join(file_name(camera, unix_secs))
}

/// What a recording's file name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName {
    /// Start time, Unix seconds.
    pub start_secs: i64,
    /// Still open (or left open by a crash).
    pub part: bool,
}

/// Parses `<camera>-YYYYMMDDTHHMMSSZ.mp4[.part]`; `None` for anything else.
pub fn parse_file_name(camera: &str, name: &str) -> Option<ParsedName> {
    let (name, part) = match name.strip_suffix(PART_SUFFIX) {
        Some(n) => (n, true),
        None => (name, false),
    };
    let stamp = name
        .strip_prefix(camera)?
        .strip_prefix('-')?
        .strip_suffix(".mp4")?;
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = stamp.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let start_secs = unix_secs(Civil {
        year: i64::from(digits(0..4)?),
        month: digits(4..6)?,
        day: digits(6..8)?,
        hour: digits(9..11)?,
        minute: digits(11..13)?,
        second: digits(13..15)?,
    })?;
    Some(ParsedName { start_secs, part })
}

/// True for a `YYYY-MM-DD` day directory name.
pub fn is_date_dir(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Maps the stream's timeline (DTS, ms) to wall-clock time (Unix ms), anchored once per
/// session: media timing decides where files are cut, so cut points do not depend on how
/// late frames happen to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    anchor_wall_ms: i64,
    anchor_dts: i64,
}

impl WallClock {
    /// The frame with `dts` was captured at `wall_ms`.
    pub fn new(wall_ms: i64, dts: i64) -> Self {
        Self {
            anchor_wall_ms: wall_ms,
            anchor_dts: dts,
        }
    }

    /// Wall-clock time of the frame with `dts`.
    pub fn wall_ms(&self, dts: i64) -> i64 {
        self.anchor_wall_ms + (dts - self.anchor_dts)
    }
}

/// The first clock-aligned boundary strictly after `start_ms`: a file that starts at
/// `start_ms` is cut at the first keyframe at or after it.
pub fn next_boundary_ms(start_ms: i64, segment_ms: i64) -> i64 {
    let segment_ms = segment_ms.max(1);
    (start_ms.div_euclid(segment_ms) + 1) * segment_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_the_documented_layout() {
        // 2026-11-24T08:05:00Z
        let t = 1_795_507_500;
        assert_eq!(
            file_name("front-door", t),
            "front-door-20261124T080500Z.mp4"
        );
        assert_eq!(
            relative_path("front-door", t),
            PathBuf::from("front-door/2026-11-24/front-door-20261124T080500Z.mp4")
        );
        assert_eq!(date_dir(0), "1970-01-01");
    }

    #[test]
    fn names_parse_back_and_reject_strangers() {
        let t = 1_795_507_500;
        assert_eq!(
            parse_file_name("cam", "cam-20261124T080500Z.mp4"),
            Some(ParsedName {
                start_secs: t,
                part: false
            })
        );
        assert_eq!(
            parse_file_name("cam", "cam-20261124T080500Z.mp4.part"),
            Some(ParsedName {
                start_secs: t,
                part: true
            })
        );
        for bad in [
            "other-20261124T080500Z.mp4",
            "cam-20261124T080500Z.mkv",
            "cam-20261324T080500Z.mp4",
            "cam-20260230T080500Z.mp4",
            "cam-2026112xT080500Z.mp4",
            "cam-20261124T080500.mp4",
            "cam-+2026124T080500Z.mp4",
            "../cam-20261124T080500Z.mp4",
        ] {
            assert_eq!(parse_file_name("cam", bad), None, "{bad}");
        }
    }

    #[test]
    fn day_directories_are_recognised() {
        assert!(is_date_dir("2026-11-24"));
        assert!(!is_date_dir("2026-11-2"));
        assert!(!is_date_dir(".."));
        assert!(!is_date_dir("2026/11/24"));
    }

    #[test]
    fn boundaries_are_clock_multiples_after_the_start() {
        assert_eq!(next_boundary_ms(0, 300_000), 300_000);
        assert_eq!(next_boundary_ms(299_999, 300_000), 300_000);
        assert_eq!(next_boundary_ms(300_000, 300_000), 600_000);
        assert_eq!(
            next_boundary_ms(1_795_507_512_345, 10_000),
            1_795_507_520_000
        );
    }

    #[test]
    fn wall_clock_follows_media_time() {
        let c = WallClock::new(1_000_000, 500);
        assert_eq!(c.wall_ms(500), 1_000_000);
        assert_eq!(c.wall_ms(10_500), 1_010_000);
    }

    proptest! {
        #[test]
        fn civil_time_round_trips(t in -10_000_000_000i64..100_000_000_000) {
            prop_assert_eq!(unix_secs(civil(t)), Some(t));
        }

        #[test]
        fn file_names_round_trip(t in 0i64..10_000_000_000) {
            let name = file_name("cam", t);
            prop_assert_eq!(parse_file_name("cam", &name), Some(ParsedName { start_secs: t, part: false }));
        }

        #[test]
        fn civil_time_matches_rfc3339(t in 0i64..100_000_000_000) {
            let c = civil(t);
            let expected = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
            )
            .to_string();
            let ours = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            );
            prop_assert_eq!(ours, expected);
        }

        #[test]
        fn boundary_is_the_next_multiple(start in -1_000_000_000i64..1_000_000_000_000, seg in 1i64..10_000_000) {
            let b = next_boundary_ms(start, seg);
            prop_assert!(b > start);
            prop_assert!(b - start <= seg);
            prop_assert_eq!(b.rem_euclid(seg), 0);
        }
    }
}
