//! Renders LL-HLS playlists (RFC 8216bis with the low-latency extensions) from the packager's
//! window. Pure functions of the packager state.

use std::fmt::Write;

use super::packager::{Packager, Segment};
use crate::media::StreamInfo;

/// `#EXT-X-VERSION` of the media playlist (9: `EXT-X-SKIP` delta updates).
const VERSION: u32 = 9;
/// Parts are listed for segments within this many target durations of the live edge.
const PART_LIST_TARGETS: i64 = 3;

/// URI of a part, relative to the media playlist.
pub fn part_uri(msn: u64, index: usize) -> String {
    format!("part{msn}.{index}.m4s")
}

/// URI of a segment, relative to the media playlist.
pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// URI of an init segment, relative to the media playlist.
pub fn init_uri(id: u64) -> String {
    format!("init-{id}.mp4")
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `CAN-SKIP-UNTIL` (seconds): six target durations, the minimum RFC 8216bis allows.
pub fn skip_until_ms(p: &Packager) -> i64 {
    6 * 1000 * i64::try_from(p.target_duration_s()).unwrap_or(i64::MAX / 6000)
}

/// How many complete segments at the start of the window a delta update leaves out: those
/// that end more than `CAN-SKIP-UNTIL` before the end of the playlist. Skipping stops at a
/// discontinuity, so that players count discontinuities from the tags they are sent (hls.js
/// rejects a delta update whose discontinuity numbering does not match the playlist it has).
pub fn skippable(p: &Packager) -> usize {
    let total: i64 = p.segments().iter().map(Segment::duration_ms).sum();
    let limit = skip_until_ms(p);
    let mut elapsed = 0;
    let mut n = 0;
    for s in p.segments() {
        elapsed += s.duration_ms();
        if !s.complete || s.discontinuity || total - elapsed < limit {
            break;
        }
        n += 1;
    }
    n
}

/// The media playlist; `skip` renders a delta update (`_HLS_skip=YES`). `None` until the
/// packager has chosen its part target.
pub fn media(p: &Packager, skip: bool) -> Option<String> {
    let segments = p.segments();
    let mut out = String::with_capacity(256 + segments.len() * 512);
    let part_target = p.part_target_ms()?;
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", p.target_duration_s());
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", seconds(part_target));
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}",
        seconds(3 * part_target),
        seconds(skip_until_ms(p))
    );
    let first_msn = segments.front().map_or(p.next_part().0, |s| s.msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    let _ = writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        p.discontinuity_sequence()
    );
    let skipped = if skip { skippable(p) } else { 0 };
    if skip {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }

    let total: i64 = segments.iter().map(Segment::duration_ms).sum();
    let part_window = PART_LIST_TARGETS * 1000 * i64::try_from(p.target_duration_s()).unwrap_or(1);
    let mut elapsed: i64 = segments
        .iter()
        .take(skipped)
        .map(Segment::duration_ms)
        .sum();
    let mut map = None;
    for s in segments.iter().skip(skipped) {
        if s.discontinuity {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        if map != Some(s.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(s.init));
            map = Some(s.init);
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(s.pdt_ms));
        // Parts of older segments are only noise once players can fetch whole segments.
        let list_parts = !s.complete || total - elapsed <= part_window;
        elapsed += s.duration_ms();
        if list_parts {
            for (i, part) in s.parts.iter().enumerate() {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}\"",
                    seconds(part.duration_ms),
                    part_uri(s.msn, i)
                );
                if part.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if s.complete {
            let _ = writeln!(out, "#EXTINF:{},", seconds(s.duration_ms()));
            let _ = writeln!(out, "{}", segment_uri(s.msn));
        }
    }
    if p.is_live() {
        let (msn, index) = p.next_part();
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_uri(msn, index)
        );
    }
    Some(out)
}

/// The multivariant playlist: one variant, the media playlist.
pub fn multivariant(info: &StreamInfo, bandwidth: u64) -> String {
    let mut codecs = Vec::new();
    if let Some(v) = &info.video {
        codecs.push(v.codec_string());
    }
    if let Some(a) = &info.audio {
        codecs.push(a.codec_string());
    }
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    // No `#EXT-X-INDEPENDENT-SEGMENTS`: a segment cut at the maximum segment duration, with
    // no keyframe in time, starts with frames that need the segment before it.
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
        bandwidth.max(1),
        codecs.join(",")
    );
    if let Some(v) = &info.video {
        let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
    }
    out.push('\n');
    let _ = writeln!(out, "stream.m3u8");
    out
}

/// Peak bitrate over the window's complete segments, bits per second.
pub fn peak_bandwidth(p: &Packager) -> Option<u64> {
    p.segments()
        .iter()
        .filter(|s| s.complete && s.duration_ms() > 0)
        .map(|s| (s.bytes() as u64 * 8 * 1000) / u64::try_from(s.duration_ms()).unwrap_or(1))
        .max()
}

/// ISO 8601 UTC with milliseconds, from Unix milliseconds.
fn pdt(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::pdt;

    #[test]
    fn program_date_time_is_iso8601_utc() {
        assert_eq!(pdt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(pdt(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
