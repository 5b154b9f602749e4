//! Packager and playlist behaviour, checked through a real HLS parser (`m3u8-rs`).

use std::sync::Arc;

use bytes::Bytes;
use m3u8_rs::{MediaPlaylist, Playlist};
use proptest::prelude::*;

use super::packager::{Packager, PackagerConfig, Published};
use super::playlist;
use crate::fmp4::test_media::video_config;
use crate::media::{AudioConfig, Frame, StreamInfo, Track};

fn info(version: u64, audio: bool) -> Arc<StreamInfo> {
    Arc::new(StreamInfo {
        version,
        video: Some(video_config()),
        audio: audio.then(|| AudioConfig {
            asc: Bytes::from_static(&[0x12, 0x10]),
            object_type: 2,
            sample_rate: 44_100,
            channels: 2,
        }),
    })
}

fn video(dts: i64, keyframe: bool) -> Frame {
    Frame {
        track: Track::Video,
        dts,
        pts: dts,
        keyframe,
        data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
    }
}

fn audio(dts: i64) -> Frame {
    Frame {
        track: Track::Audio,
        dts,
        pts: dts,
        keyframe: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x04]),
    }
}

/// Feeds `seconds` of 25 fps video (keyframe every `gop` frames) and AAC, from `t0`.
fn feed(p: &mut Packager, t0: i64, frames: usize, gop: usize) -> (i64, Vec<Published>) {
    let mut out = Vec::new();
    let mut next_audio = t0;
    let mut t = t0;
    for i in 0..frames {
        t = t0 + i as i64 * 40;
        while next_audio <= t {
            out.extend(p.push(&audio(next_audio), 0));
            next_audio += 23;
        }
        out.extend(p.push(&video(t, i % gop == 0), 1_700_000_000_000 + t));
    }
    (t + 40, out)
}

/// The media playlist, which exists once the part target is chosen.
fn media(p: &Packager, skip: bool) -> String {
    playlist::media(p, skip).expect("the part target is chosen")
}

fn parse(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        Ok(Playlist::MasterPlaylist(_)) => panic!("expected a media playlist:\n{text}"),
        Err(e) => panic!("playlist does not parse ({e:?}):\n{text}"),
    }
}

/// An attribute of a tag line, e.g. `attr("#EXT-X-PART:DURATION=0.200,URI=\"a\"", "URI")`.
fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let list = line.split_once(':')?.1;
    let mut rest = list;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if k == key {
            return Some(value);
        }
        rest = next;
    }
    None
}

fn millis(seconds: &str) -> i64 {
    let (s, ms) = seconds.split_once('.').unwrap_or((seconds, "0"));
    let ms = format!("{ms:0<3}");
    s.parse::<i64>().unwrap_or(0) * 1000 + ms[..3].parse::<i64>().unwrap_or(0)
}

/// Segments as the text lists them: (msn, discontinuity, parts as (duration ms, independent),
/// EXTINF ms if complete).
#[derive(Debug, Default, Clone)]
struct Listed {
    msn: u64,
    discontinuity: bool,
    parts: Vec<(i64, bool, String)>,
    extinf: Option<i64>,
}

fn listed(text: &str) -> (Vec<Listed>, Option<String>) {
    let media_sequence: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let skipped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:"))
        .and_then(|l| attr(&format!("X:{l}"), "SKIPPED-SEGMENTS").map(str::to_string))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut cur = Listed {
        msn: media_sequence + skipped,
        ..Default::default()
    };
    let mut hint = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "#EXT-X-DISCONTINUITY" {
            cur.discontinuity = true;
        } else if line.starts_with("#EXT-X-PART:") {
            cur.parts.push((
                millis(attr(line, "DURATION").unwrap_or("0")),
                attr(line, "INDEPENDENT") == Some("YES"),
                attr(line, "URI").unwrap_or_default().to_string(),
            ));
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            cur.extinf = Some(millis(d.trim_end_matches(',')));
            lines.next();
            let next = Listed {
                msn: cur.msn + 1,
                ..Default::default()
            };
            out.push(std::mem::replace(&mut cur, next));
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            hint = attr(line, "URI").map(str::to_string);
        }
    }
    if !cur.parts.is_empty() {
        out.push(cur);
    }
    (out, hint)
}

/// `#EXT-X-PART-INF:PART-TARGET` in milliseconds.
fn part_target_of(text: &str) -> i64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PART-INF:"))
        .unwrap_or_else(|| panic!("no PART-INF:\n{text}"));
    millis(attr(line, "PART-TARGET").unwrap_or("0"))
}

/// RFC 8216bis 4.4.4.9: no part is longer than the part target, and every part is at least
/// 85 % of it except an independent one and the last of a complete segment.
fn check_parts(segments: &[Listed], target: i64, _open: bool) -> Result<(), String> {
    for s in segments {
        for (i, (d, independent, uri)) in s.parts.iter().enumerate() {
            if *d > target {
                return Err(format!("{uri}: {d} ms > PART-TARGET {target} ms"));
            }
            let last = s.extinf.is_some() && i + 1 == s.parts.len();
            if !last && !independent && d * 100 < target * 85 {
                return Err(format!("{uri}: {d} ms < 85 % of PART-TARGET {target} ms"));
            }
        }
    }
    Ok(())
}

/// Lead-track DTS of frame `i` at `fps`, rounded to milliseconds as RTMP sends them, with
/// `jitter` ms added.
fn frame_dts(i: usize, fps: f64, jitter: i64) -> i64 {
    (i as f64 * 1000.0 / fps).round() as i64 + jitter
}

/// Feeds `seconds` of video at `fps` (a keyframe every `gop_s` seconds) and AAC; returns the
/// media playlist text after every tenth frame.
fn stream_at(p: &mut Packager, fps: f64, gop_s: f64, seconds: f64, jitter: &[i64]) -> Vec<String> {
    let frames = (seconds * fps) as usize;
    let gop = ((gop_s * fps).round() as usize).max(1);
    let mut texts = Vec::new();
    let mut next_audio = 0;
    let mut last = i64::MIN;
    for i in 0..frames {
        let t = frame_dts(i, fps, jitter[i % jitter.len()]).max(last + 1);
        last = t;
        while next_audio <= t {
            p.push(&audio(next_audio), 0);
            next_audio += 23;
        }
        p.push(&video(t, i % gop == 0), 1_700_000_000_000 + t);
        if i % 10 == 9 {
            texts.extend(playlist::media(p, false));
        }
    }
    texts
}

/// Every playlist of the run keeps the LL-HLS timing rules; returns (PART-TARGET ms, the
/// segments of the last playlist).
fn check_run(texts: &[String], td: u64) -> (i64, Vec<Listed>) {
    let target = part_target_of(&texts[0]);
    let mut last = Vec::new();
    for text in texts {
        let parsed = parse(text);
        assert_eq!(parsed.target_duration, td, "TARGETDURATION is fixed");
        assert_eq!(part_target_of(text), target, "PART-TARGET is fixed");
        for seg in &parsed.segments {
            assert!(
                seg.duration.round() as u64 <= td,
                "EXTINF {} > TARGETDURATION {td}",
                seg.duration
            );
        }
        let (segments, _) = listed(text);
        if let Err(e) = check_parts(&segments, target, true) {
            panic!("{e}\n{text}");
        }
        last = segments;
    }
    (target, last)
}

const RATES: [f64; 5] = [12.5, 15.0, 25.0, 30_000.0 / 1001.0, 30.0];

#[test]
fn every_common_frame_rate_fills_its_parts_within_the_spec() {
    for fps in RATES {
        for gop_s in [1.0, 2.0] {
            let mut p = Packager::new(PackagerConfig::default());
            p.start(info(1, true)).expect("start");
            let texts = stream_at(&mut p, fps, gop_s, 8.0, &[0]);
            let (target, segments) = check_run(&texts, 2);
            // A whole number of frames, near the configured 200 ms, plus headroom.
            let frame = 1000.0 / fps;
            let frames = (200.0 / frame - 1e-6).ceil();
            assert!(
                target as f64 >= frames * frame && (target as f64) < frames * frame * 1.06 + 3.0,
                "{fps} fps: PART-TARGET {target} ms for {frames} frames"
            );
            let complete: Vec<_> = segments
                .iter()
                .filter(|s| s.extinf.is_some() && !s.parts.is_empty())
                .collect();
            assert!(complete.len() >= 2, "{fps} fps: {complete:?}");
            for s in complete {
                assert!(s.parts[0].1, "{fps} fps: segment {} not independent", s.msn);
                let gop_ms = (gop_s * 1000.0) as i64;
                assert!(
                    (s.extinf.unwrap_or(0) - gop_ms).abs() <= 2 * frame as i64,
                    "{fps} fps: segments follow the {gop_ms} ms GOP: {s:?}"
                );
            }
        }
    }
}

#[test]
fn jittered_timestamps_still_keep_parts_within_the_spec() {
    // A camera clock that wobbles by up to ±3 ms around 25 and 30 fps.
    let jitter = [0, 3, -2, 1, -3, 2, 0, -1, 3, -3, 1, 2];
    for fps in [25.0, 30.0] {
        let mut p = Packager::new(PackagerConfig::default());
        p.start(info(1, false)).expect("start");
        let texts = stream_at(&mut p, fps, 1.0, 8.0, &jitter);
        check_run(&texts, 2);
    }
}

#[test]
fn a_frame_longer_than_predicted_never_makes_a_part_too_long() {
    // Variable frame rate: 30 fps with every seventh frame dropped (a 67 ms interval).
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, false)).expect("start");
    let mut texts = Vec::new();
    let mut t = 0;
    for i in 0..240 {
        p.push(&video(t, i % 30 == 0), 1_700_000_000_000 + t);
        t += if i % 7 == 6 { 67 } else { 33 };
        if i % 10 == 9 {
            texts.extend(playlist::media(&p, false));
        }
    }
    let target = part_target_of(&texts[0]);
    for text in &texts {
        for s in listed(text).0 {
            for (d, _, uri) in &s.parts {
                assert!(*d <= target, "{uri}: {d} ms > {target} ms\n{text}");
            }
        }
    }
}

#[test]
fn a_long_gop_is_cut_at_the_target_duration_without_claiming_independence() {
    // 25 fps with a keyframe every 5 s, the maximum segment duration 2 s.
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, true)).expect("start");
    let texts = stream_at(&mut p, 25.0, 5.0, 12.0, &[0]);
    check_run(&texts, 2);
    let complete: Vec<_> = p.segments().iter().filter(|s| s.complete).collect();
    assert!(complete.len() >= 4, "{complete:?}");
    let mut independent = 0;
    for s in &complete {
        assert!(s.duration_ms() <= 2499, "{}", s.duration_ms());
        independent += usize::from(s.parts[0].independent);
        // Parts are INDEPENDENT only where a keyframe starts them: one every 5 s.
        let flagged = s.parts.iter().filter(|p| p.independent).count();
        assert!(flagged <= 1);
    }
    assert!(independent >= 1 && independent < complete.len());
    // The multivariant playlist makes no promise that every segment is independent.
    let info = info(1, true);
    assert!(!playlist::multivariant(&info, 1).contains("INDEPENDENT-SEGMENTS"));
}

#[test]
fn target_duration_is_fixed_by_configuration_and_the_window_covers_three_of_them() {
    let mut p = Packager::new(PackagerConfig {
        window: 3,
        target_duration_s: 4,
        ..PackagerConfig::default()
    });
    p.start(info(1, false)).expect("start");
    feed(&mut p, 0, 25 * 30, 25);
    let text = media(&p, false);
    assert_eq!(parse(&text).target_duration, 4);
    let complete: Vec<_> = p.segments().iter().filter(|s| s.complete).collect();
    let total: i64 = complete.iter().map(|s| s.duration_ms()).sum();
    // RFC 8216bis 6.2.2: no segment leaves while less than three target durations would stay;
    // beyond that, the window is the configured count.
    assert!(total >= 12_000, "{total} ms kept");
    assert!(
        total - complete[0].duration_ms() < 12_000,
        "{total} ms kept"
    );
}

#[test]
fn no_playlist_before_the_part_target_is_known() {
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, false)).expect("start");
    p.push(&video(0, true), 0);
    p.push(&video(40, false), 0);
    assert!(p.part_target_ms().is_none());
    assert!(playlist::media(&p, false).is_none());
    for i in 2..6 {
        p.push(&video(i * 40, false), 0);
    }
    assert_eq!(p.part_target_ms(), Some(210));
    assert!(playlist::media(&p, false).is_some());
}

#[test]
fn a_part_past_a_finished_segment_waits_for_the_next_segment() {
    use super::routes::has_arrived;
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, false)).expect("start");
    // Exactly one segment complete (GOP 1 s): its parts are 0..=4.
    let mut t = 0;
    while !p.segments().front().is_some_and(|s| s.complete) {
        p.push(&video(t, t % 1000 == 0), 0);
        t += 40;
    }
    let first = p.segments()[0].clone();
    let beyond = first.parts.len() as u64;
    if p.segments().len() > 1 {
        panic!("the next segment started early");
    }
    // Part 5 of segment 0 does not exist: it means part 0 of segment 1, not there yet.
    assert!(!has_arrived(&p, first.msn, Some(beyond)));
    assert!(has_arrived(&p, first.msn, Some(beyond - 1)));
    assert!(has_arrived(&p, first.msn, None));
    while p.segments().len() < 2 {
        p.push(&video(t, t % 1000 == 0), 0);
        t += 40;
    }
    assert!(has_arrived(&p, first.msn, Some(beyond)));
    assert!(has_arrived(&p, first.msn, Some(beyond + 7)));
}

#[test]
fn blocking_requests_beyond_the_advance_part_limit_are_refused() {
    use super::routes::within_advance_limit;
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, false)).expect("start");
    feed(&mut p, 0, 35, 25);
    let target = p.part_target_ms().expect("chosen");
    let limit = super::timing::advance_part_limit(target);
    assert_eq!(limit, 3000 / 210);
    let newest = p.segments().back().expect("a segment").clone();
    let (msn, last) = (newest.msn, newest.parts.len() as u64 - 1);
    assert!(within_advance_limit(&p, msn, Some(last + limit)).is_ok());
    assert!(within_advance_limit(&p, msn, Some(last + limit + 1)).is_err());
    assert!(within_advance_limit(&p, msn + 1, Some(0)).is_ok());
    assert!(within_advance_limit(&p, msn + 1, Some(limit)).is_err());
    assert!(within_advance_limit(&p, msn + 2, None).is_ok());
    assert!(within_advance_limit(&p, msn + 3, None).is_err());
    assert!(within_advance_limit(&p, msn.saturating_sub(1), Some(50)).is_ok());
}

#[test]
fn segments_start_on_keyframes_and_parts_respect_the_target() {
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, true)).expect("start");
    let (_, published) = feed(&mut p, 0, 250, 50);
    assert!(published
        .iter()
        .any(|e| matches!(e, Published::Segment { .. })));
    let text = media(&p, false);
    let parsed = parse(&text);
    assert_eq!(parsed.target_duration, 2);
    let (segments, hint) = listed(&text);
    for s in &segments {
        if let Some((_, independent, _)) = s.parts.first() {
            assert!(
                independent,
                "segment {} starts with a dependent part",
                s.msn
            );
        }
        for (d, _, _) in &s.parts {
            assert!(*d <= 210, "part of {d} ms exceeds PART-TARGET");
        }
        if let Some(extinf) = s.extinf {
            assert_eq!(extinf, 2000, "GOP-long segments");
            if !s.parts.is_empty() {
                assert_eq!(s.parts.iter().map(|p| p.0).sum::<i64>(), extinf);
            }
        }
    }
    let (msn, index) = p.next_part();
    assert_eq!(hint, Some(playlist::part_uri(msn, index)));
    // Five 40 ms frames fill 200 ms; the target leaves 5 % of headroom for jitter.
    assert!(
        text.contains("#EXT-X-PART-INF:PART-TARGET=0.210\n"),
        "{text}"
    );
    assert!(text.contains(
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.630,CAN-SKIP-UNTIL=12.000\n"
    ));
    assert!(text.contains("#EXT-X-MAP:URI=\"init-1.mp4\"\n"));
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"));
}

#[test]
fn window_slides_and_releases_old_segments() {
    let mut p = Packager::new(PackagerConfig {
        part_target_ms: 200,
        window: 3,
        target_duration_s: 1,
    });
    p.start(info(1, false)).expect("start");
    feed(&mut p, 0, 25 * 20, 25);
    let complete = p.segments().iter().filter(|s| s.complete).count();
    assert_eq!(complete, 3);
    assert!(p.segments().front().is_some_and(|s| s.msn >= 15));
    p.end();
    p.release();
    assert!(p.segments().is_empty());
    assert!(p.current_init().is_none());
}

#[test]
fn reconnect_is_a_discontinuity_with_a_new_init() {
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, true)).expect("start");
    let (t, _) = feed(&mut p, 0, 100, 25);
    p.end();
    assert!(!p.is_live());
    p.start(info(2, true)).expect("restart");
    feed(&mut p, t + 5000, 100, 25);
    let text = media(&p, false);
    parse(&text);
    let (segments, _) = listed(&text);
    let restarted: Vec<_> = segments.iter().filter(|s| s.discontinuity).collect();
    assert_eq!(restarted.len(), 1, "{text}");
    assert!(text.contains("#EXT-X-MAP:URI=\"init-2.mp4\""));
    assert!(
        p.init(1).is_some(),
        "old init kept while its segments are listed"
    );
    let first_new = text.find("init-2.mp4").unwrap_or(0);
    assert!(text.find("init-1.mp4").is_some_and(|i| i < first_new));
}

#[test]
fn delta_update_skips_old_segments_and_is_shorter() {
    let mut p = Packager::new(PackagerConfig {
        part_target_ms: 200,
        window: 12,
        target_duration_s: 1,
    });
    p.start(info(1, true)).expect("start");
    feed(&mut p, 0, 25 * 14, 25);
    let full = media(&p, false);
    let delta = media(&p, true);
    let skipped = playlist::skippable(&p);
    assert!(skipped > 0);
    assert!(delta.len() < full.len());
    assert!(delta.contains(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n")));
    let full_parsed = parse(&full);
    let delta_parsed = parse(&delta);
    assert_eq!(delta_parsed.media_sequence, full_parsed.media_sequence);
    assert_eq!(
        delta_parsed.segments.len() + skipped,
        full_parsed.segments.len()
    );
    assert_eq!(
        delta_parsed.segments.last().map(|s| &s.uri),
        full_parsed.segments.last().map(|s| &s.uri)
    );
}

#[test]
fn delta_updates_never_skip_a_discontinuity() {
    let mut p = Packager::new(PackagerConfig {
        part_target_ms: 200,
        window: 16,
        target_duration_s: 1,
    });
    p.start(info(1, false)).expect("start");
    let (t, _) = feed(&mut p, 0, 25 * 2, 25);
    p.end();
    p.start(info(2, false)).expect("restart");
    feed(&mut p, t + 1000, 25 * 12, 25);
    let skipped = playlist::skippable(&p);
    assert_eq!(skipped, 2, "only the segments before the discontinuity");
    let delta = media(&p, true);
    assert!(delta.contains("#EXT-X-DISCONTINUITY\n"), "{delta}");
}

#[test]
fn blocking_condition_is_met_only_once_the_part_exists() {
    let mut p = Packager::new(PackagerConfig::default());
    p.start(info(1, false)).expect("start");
    feed(&mut p, 0, 30, 25);
    let (msn, index) = p.next_part();
    assert!(!super::routes::has_arrived(&p, msn, Some(index as u64)));
    let mut t = 30 * 40;
    while p.next_part() == (msn, index) {
        p.push(&video(t, false), 0);
        t += 40;
    }
    assert!(super::routes::has_arrived(&p, msn, Some(index as u64)));
    assert!(!super::routes::has_arrived(&p, msn + 1, None));
}

#[derive(Debug, Clone)]
enum Step {
    Frames { gop: usize, frames: usize },
    Reconnect,
    Gap,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (5usize..80, 10usize..200).prop_map(|(gop, frames)| Step::Frames { gop, frames }),
        1 => Just(Step::Reconnect),
        1 => Just(Step::Gap),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn playlists_stay_valid_over_random_streams(
        steps in proptest::collection::vec(step(), 1..8),
        frame_ms in prop_oneof![Just(33i64), Just(40), Just(67)],
        jitter in proptest::collection::vec(0i64..2, 64),
        part_target in prop_oneof![Just(100i64), Just(200), Just(500)],
        with_audio in any::<bool>(),
        window in 2usize..9,
    ) {
        let config = PackagerConfig { part_target_ms: part_target, window, ..PackagerConfig::default() };
        let cap = super::timing::segment_cap_ms(config.target_duration_s);
        let mut p = Packager::new(config);
        let mut version = 1;
        p.start(info(version, with_audio)).expect("start");
        let mut t: i64 = 1000;
        let mut next_audio = t;
        let mut last_msn_seen = 0u64;
        let mut last_td = 0u64;
        let mut last_target: Option<i64> = None;
        let mut last_disc_total = 0u64;
        let mut n = 0usize;
        for s in steps {
            match s {
                Step::Frames { gop, frames } => {
                    for i in 0..frames {
                        while with_audio && next_audio <= t {
                            p.push(&audio(next_audio), 0);
                            next_audio += 23;
                        }
                        p.push(&video(t, i % gop == 0), 1_700_000_000_000 + t);
                        t += frame_ms + jitter[n % jitter.len()];
                        n += 1;
                        if n % 7 != 0 {
                            continue;
                        }
                        let Some(text) = playlist::media(&p, false) else {
                            // No playlist before the part target is chosen, and no part.
                            prop_assert!(p.segments().is_empty());
                            continue;
                        };
                        let parsed = parse(&text);
                        let (segments, _) = listed(&text);
                        // Media sequence never goes back; numbering is consecutive.
                        prop_assert!(parsed.media_sequence >= last_msn_seen);
                        last_msn_seen = parsed.media_sequence;
                        for w in segments.windows(2) {
                            prop_assert_eq!(w[1].msn, w[0].msn + 1);
                        }
                        // The part target is fixed; target duration never shrinks and
                        // bounds every segment.
                        let target = part_target_of(&text);
                        prop_assert!(last_target.is_none_or(|t| t == target), "PART-TARGET changed");
                        last_target = Some(target);
                        prop_assert!(last_td == 0 || parsed.target_duration == last_td, "TARGETDURATION changed");
                        last_td = parsed.target_duration;
                        for seg in &parsed.segments {
                            prop_assert!((seg.duration.round() as u64) <= parsed.target_duration, "{} in\n{}", seg.duration, text);
                        }
                        check_parts(&segments, target, p.segments().back().is_some_and(|s| !s.complete))
                            .map_err(TestCaseError::fail)?;
                        let mut previous: Option<&Listed> = None;
                        for seg in &segments {
                            for (i, part) in seg.parts.iter().enumerate() {
                                prop_assert_eq!(&part.2, &playlist::part_uri(seg.msn, i));
                            }
                            if let Some(first) = seg.parts.first() {
                                // Only a segment cut at the cap may start without a keyframe. The
                                // window's first segment may follow such a cut that was evicted.
                                let after_cap = match previous {
                                    Some(p) => p.extinf.is_some_and(|d| d > cap - 2 * (frame_ms + 2)),
                                    None => seg.msn > 0,
                                };
                                prop_assert!(first.1 || (after_cap && !seg.discontinuity), "segment {} starts without an independent part in\n{}", seg.msn, text);
                            }
                            previous = Some(seg);
                            if let (Some(extinf), false) = (seg.extinf, seg.parts.is_empty()) {
                                prop_assert_eq!(seg.parts.iter().map(|p| p.0).sum::<i64>(), extinf);
                            }
                        }
                        // Discontinuities are never lost: those that left the window are
                        // counted in DISCONTINUITY-SEQUENCE.
                        let disc_total = parsed.discontinuity_sequence
                            + segments.iter().filter(|s| s.discontinuity).count() as u64;
                        prop_assert!(disc_total >= last_disc_total);
                        last_disc_total = disc_total;
                        // A delta update lists the same live edge with fewer segments.
                        let delta = parse(&media(&p, true));
                        prop_assert_eq!(delta.media_sequence, parsed.media_sequence);
                        prop_assert_eq!(delta.segments.len() + playlist::skippable(&p), parsed.segments.len());
                    }
                }
                Step::Reconnect => {
                    p.end();
                    version += 1;
                    p.start(info(version, with_audio)).expect("restart");
                    t += 3000;
                    next_audio = t;
                }
                Step::Gap => {
                    p.gap();
                    t += 2000;
                    next_audio = t;
                }
            }
        }
        // The packager's own state agrees: a segment starts with an independent part unless
        // the one before it was cut at the cap.
        for w in p.segments().iter().collect::<Vec<_>>().windows(2) {
            let after_cap = w[0].duration_ms() > cap - 2 * (frame_ms + 2);
            prop_assert!(w[1].parts.first().is_none_or(|p| p.independent) || after_cap);
        }
    }
}

#[test]
fn falling_behind_the_hub_counts_the_dropped_frames() {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{run, CameraHls, HlsMetrics};
    use crate::hub::{Hub, RING};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let hub = Hub::new();
        let publisher = hub
            .publish("cam", "127.0.0.1:5000".parse().expect("addr"), false)
            .expect("publish");
        publisher.set_info(info(1, false).video.clone(), None);
        let subscriber = publisher.channel().subscribe();
        // Overflow the hub's ring before the packager reads anything.
        for i in 0..(RING as i64 * 2) {
            publisher.push(video(i * 40, i % 25 == 0));
        }
        let metrics = HlsMetrics::register(&crate::metrics::Families::new()).expect("metrics");
        let shutdown = CancellationToken::new();
        let camera = Arc::new(CameraHls::new("cam", PackagerConfig::default()));
        let task = tokio::spawn(run(camera, subscriber, metrics.clone(), shutdown.clone()));
        let lagged = metrics.dropped.with_label_values(&["cam", "lagged"]);
        tokio::time::timeout(Duration::from_secs(5), async {
            while lagged.get() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the gap is counted");
        assert!(lagged.get() >= RING as u64, "{} dropped", lagged.get());
        shutdown.cancel();
        task.await.expect("run ends");
    });
}
