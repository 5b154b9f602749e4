use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use mp4_atom::{Decode, Ftyp, Moof, Moov};

use super::test_media::{clip, video_config};
use super::*;
use crate::media::{AudioConfig, Frame, StreamInfo, Track};

fn audio_config() -> AudioConfig {
    AudioConfig {
        asc: Bytes::from_static(&[0x12, 0x10]),
        object_type: 2,
        sample_rate: 44_100,
        channels: 2,
    }
}

fn info(video: bool, audio: bool) -> Arc<StreamInfo> {
    Arc::new(StreamInfo {
        version: 1,
        video: video.then(video_config),
        audio: audio.then(audio_config),
    })
}

fn video(dts: i64, pts: i64, keyframe: bool, tag: u8) -> Frame {
    Frame {
        track: Track::Video,
        dts,
        pts,
        keyframe,
        data: Bytes::from(vec![tag; 10 + usize::from(tag)]),
    }
}

fn audio(dts: i64, tag: u8) -> Frame {
    Frame {
        track: Track::Audio,
        dts,
        pts: dts,
        keyframe: true,
        data: Bytes::from(vec![tag; 5]),
    }
}

/// Decodes a fragment into its moof and the mdat payload.
fn parse(fragment: &Fragment) -> (Moof, Vec<u8>, usize) {
    let mut buf: &[u8] = &fragment.data;
    let moof = Moof::decode(&mut buf).expect("moof decodes");
    let moof_len = fragment.data.len() - buf.len();
    assert_eq!(&buf[4..8], b"mdat");
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    assert_eq!(size, buf.len(), "mdat size covers the rest of the fragment");
    (moof, buf[8..].to_vec(), moof_len)
}

#[test]
fn init_segment_declares_both_tracks_with_their_timescales() {
    let f = Fragmenter::new(info(true, true)).expect("fragmenter");
    let init = f.init_segment();
    let mut buf: &[u8] = &init;
    let ftyp = Ftyp::decode(&mut buf).expect("ftyp");
    assert_eq!(ftyp.major_brand, b"iso6".into());
    let moov = Moov::decode(&mut buf).expect("moov");
    assert!(buf.is_empty(), "nothing after moov");
    assert_eq!(moov.trak.len(), 2);
    let v = &moov.trak[0];
    assert_eq!(v.tkhd.track_id, VIDEO_TRACK_ID);
    assert_eq!(v.mdia.mdhd.timescale, 90_000);
    let a = &moov.trak[1];
    assert_eq!(a.tkhd.track_id, AUDIO_TRACK_ID);
    assert_eq!(a.mdia.mdhd.timescale, 44_100);
    let trex = &moov.mvex.as_ref().expect("mvex").trex;
    assert_eq!(trex.len(), 2);
    match &v.mdia.minf.stbl.stsd.codecs[0] {
        mp4_atom::Codec::Avc1(avc1) => {
            assert_eq!((avc1.visual.width, avc1.visual.height), (640, 360));
            assert_eq!(avc1.avcc.sequence_parameter_sets[0], video_config().sps[0]);
        }
        other => panic!("video sample entry is {other:?}"),
    }
    match &a.mdia.minf.stbl.stsd.codecs[0] {
        mp4_atom::Codec::Mp4a(mp4a) => {
            let dec = mp4a.esds.es_desc.dec_config.dec_specific.as_ref();
            assert_eq!(dec.map(|d| d.raw.clone()), Some(vec![0x12, 0x10]));
        }
        other => panic!("audio sample entry is {other:?}"),
    }
}

#[test]
fn stream_without_tracks_is_refused() {
    assert!(matches!(
        Fragmenter::new(info(false, false)),
        Err(Fmp4Error::NoTracks)
    ));
}

#[test]
fn the_newest_frame_is_held_back_until_its_duration_is_known() {
    let mut f = Fragmenter::new(info(true, false)).expect("fragmenter");
    assert!(f.fragment().is_none(), "nothing pushed");
    f.push(&video(1000, 1000, true, 1));
    assert!(f.fragment().is_none(), "a lone frame has no duration yet");
    assert_eq!(f.pending_duration_ms(), 0);
    f.push(&video(1040, 1120, false, 2));
    f.push(&video(1080, 1040, false, 3));
    assert_eq!(f.pending_duration_ms(), 80);
    let frag = f.fragment().expect("two complete samples");
    assert_eq!(frag.samples, 2);
    assert_eq!(frag.start_ms, 1000);
    assert_eq!(frag.duration_ms, 80);
    assert!(frag.independent);

    let (moof, mdat, moof_len) = parse(&frag);
    assert_eq!(moof.mfhd.sequence_number, 1);
    let traf = &moof.traf[0];
    assert_eq!(
        traf.tfdt.as_ref().map(|t| t.base_media_decode_time),
        Some(90_000)
    );
    let trun = &traf.trun[0];
    assert_eq!(trun.data_offset, Some(moof_len as i32 + 8));
    let entries: Vec<_> = trun.samples.iter().collect();
    assert_eq!(entries[0].duration, Some(3600));
    assert_eq!(entries[0].cts, Some(0));
    assert_eq!(entries[1].cts, Some(80 * 90));
    assert_eq!(entries[0].flags, Some(FLAGS_SYNC));
    assert_eq!(entries[1].flags, Some(FLAGS_NON_SYNC));
    assert_eq!(mdat, [vec![1u8; 11], vec![2u8; 12]].concat());

    // The held third frame goes out with the previous duration on flush; its composition
    // offset is negative, which needs a version 1 trun.
    let last = f.flush().expect("held frame");
    assert!(!last.independent);
    let (moof, mdat, _) = parse(&last);
    assert_eq!(moof.mfhd.sequence_number, 2);
    let e: Vec<_> = moof.traf[0].trun[0].samples.iter().collect();
    assert_eq!((e[0].duration, e[0].cts), (Some(3600), Some(-40 * 90)));
    assert_eq!(mdat, vec![3u8; 13]);
    assert!(f.flush().is_none(), "everything emitted");
}

#[test]
fn data_offsets_point_at_each_tracks_samples() {
    let mut f = Fragmenter::new(info(true, true)).expect("fragmenter");
    f.push(&video(0, 0, true, 7));
    f.push(&audio(0, 20));
    f.push(&audio(23, 21));
    f.push(&video(40, 40, false, 8));
    f.push(&audio(46, 22));
    let frag = f.fragment().expect("fragment");
    assert_eq!(frag.samples, 3);
    let (moof, _, _) = parse(&frag);
    for traf in &moof.traf {
        let trun = &traf.trun[0];
        let mut at = trun.data_offset.expect("offset") as usize;
        for (i, e) in trun.samples.iter().enumerate() {
            let size = e.size.expect("size") as usize;
            let expected = match traf.tfhd.track_id {
                VIDEO_TRACK_ID => 7u8,
                _ => 20 + i as u8,
            };
            assert!(frag.data[at..at + size].iter().all(|b| *b == expected));
            at += size;
        }
    }
}

#[test]
fn aac_keeps_exact_1024_sample_durations_despite_millisecond_rounding() {
    let mut f = Fragmenter::new(info(false, true)).expect("fragmenter");
    // 44.1 kHz AAC frames are 23.22 ms apart; RTMP rounds each timestamp to whole ms.
    let n = 2000;
    for i in 0..n {
        f.push(&audio(
            (i as f64 * 1024.0 * 1000.0 / 44_100.0).round() as i64,
            0,
        ));
    }
    let frag = f.fragment().expect("fragment");
    assert!(frag.independent, "audio-only fragments are independent");
    let (moof, _, _) = parse(&frag);
    let durations: Vec<_> = moof.traf[0].trun[0]
        .samples
        .iter()
        .map(|e| e.duration)
        .collect();
    assert_eq!(durations.len(), n - 1);
    assert!(durations.iter().all(|d| *d == Some(1024)));
}

#[test]
fn audio_resynchronises_after_a_gap() {
    let mut f = Fragmenter::new(info(false, true)).expect("fragmenter");
    f.push(&audio(0, 0));
    f.push(&audio(23, 0));
    f.push(&audio(1023, 0)); // a second of audio missing
    f.push(&audio(1046, 0));
    let frag = f.fragment().expect("fragment");
    let (moof, _, _) = parse(&frag);
    let d: Vec<_> = moof.traf[0].trun[0]
        .samples
        .iter()
        .map(|e| e.duration)
        .collect();
    let resync = (1023 * 44_100 + 500) / 1000 - 1024;
    assert_eq!(d, vec![Some(1024), Some(resync), Some(1024)]);
}

#[test]
fn real_clip_fragments_decode_with_ffprobe() {
    let clip = clip();
    let mut f = Fragmenter::new(clip.info.clone()).expect("fragmenter");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.mp4");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(&f.init_segment()).expect("write init");
    let mut fragments = 0;
    for frame in &clip.frames {
        // Cut like LL-HLS does: on keyframes, and every ~200 ms in between.
        if (frame.track == Track::Video && frame.keyframe) || f.pending_duration_ms() >= 200 {
            if let Some(frag) = f.fragment() {
                if frame.track == Track::Video && frame.keyframe {
                    assert!(
                        frag.start_ms < frame.dts,
                        "the keyframe itself is held back for the next fragment"
                    );
                }
                file.write_all(&frag.data).expect("write");
                fragments += 1;
            }
        }
        f.push(frame);
    }
    if let Some(frag) = f.flush() {
        file.write_all(&frag.data).expect("write");
    }
    drop(file);
    assert!(fragments > 10);

    let video_frames = clip
        .frames
        .iter()
        .filter(|f| f.track == Track::Video)
        .count();
    let audio_frames = clip.frames.len() - video_frames;
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("h264,{video_frames}"),
            format!("aac,{audio_frames}")
        ]
    );

    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(decode.status.success());
    assert!(
        decode.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

/// The video track's (start, end) in ticks of one fragment: `tfdt` and `tfdt` + the sample durations.
fn video_span(fragment: &Fragment) -> (u64, u64) {
    let (moof, _, _) = parse(fragment);
    let traf = moof
        .traf
        .iter()
        .find(|t| t.tfhd.track_id == VIDEO_TRACK_ID)
        .expect("video traf");
    let start = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
    let ticks: u64 = traf.trun[0]
        .samples
        .iter()
        .map(|e| u64::from(e.duration.expect("sample duration")))
        .sum();
    (start, start + ticks)
}

#[test]
fn a_cut_at_a_keyframe_after_a_timestamp_jump_joins_exactly() {
    // A looping publisher's clock jumps a few milliseconds at the loop, right at a keyframe:
    // the fragment before the cut must end exactly where the next one begins, so that files
    // cut there (recording) or segments (LL-HLS) have neither gap nor overlap.
    let clip = clip();
    let cut_at = (0..clip.frames.len())
        .filter(|&i| clip.frames[i].track == Track::Video && clip.frames[i].keyframe)
        .nth(1)
        .expect("a second keyframe");
    let cut_dts = clip.frames[cut_at].dts;
    let mut f = Fragmenter::new(clip.info.clone()).expect("fragmenter");
    let mut before_cut = None;
    let mut after_cut = None;
    for (i, frame) in clip.frames.iter().enumerate() {
        let mut frame = frame.clone();
        if frame.dts >= cut_dts {
            frame.dts += 9;
            frame.pts += 9;
        }
        f.push(&frame);
        if frame.track == Track::Video && frame.keyframe {
            if let Some(frag) = f.fragment() {
                if i == cut_at {
                    before_cut = Some(frag);
                } else if before_cut.is_some() && after_cut.is_none() {
                    after_cut = Some(frag);
                }
            }
        }
    }
    let (_, end) = video_span(&before_cut.expect("a fragment before the cut"));
    let (start, _) = video_span(&after_cut.expect("a fragment after the cut"));
    assert_eq!(end, start, "the fragments do not join");
    assert_eq!(start, u64::try_from(cut_dts + 9).expect("positive") * 90);
}
