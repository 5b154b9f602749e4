//! Entry points for the fuzz targets in `fuzz/` (docs/fuzzing.md): one function per parser of
//! bytes from outside, each feeding the worker's own code exactly as the server does and
//! checking cheap invariants (output bounds, round trips) with `assert!`, so that libFuzzer
//! reports a broken invariant like a crash. `make test` replays every committed corpus file
//! through the same functions ([`TARGETS`]), so the harnesses cannot rot.
//!
//! Nothing here runs in the server; it is public only so that the fuzz crate can call it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Query, Request};
use axum::http::{header, HeaderValue, Uri};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::auth::PublishPolicy;
use crate::frames::protocol::{Detection, Inbound, MAX_DETECTIONS, MAX_NAME};
use crate::hls::routes::{parse_file, File, Reload, MAX_PART_INDEX};
use crate::http::auth::access::{access, Access};
use crate::http::auth::playlist::{with_token, TOKEN_PARAM};
use crate::http::auth::tokens::{is_token_char, Need};
use crate::http::auth::{presented, Presented};
use crate::hub::Hub;
use crate::media::{Frame, Track};
use crate::metrics::Metrics;
use crate::record::http::{parse_range, parse_target, ByteRange, Target as RecordingTarget};
use crate::record::naming;
use crate::rtmp::demux::{Demuxer, Output};
use crate::rtmp::flv::{self, AudioTag, VideoTag};
use crate::rtmp::h264::{self, MAX_DIMENSION};
use crate::rtmp::h265;
use crate::rtmp::session::{self, IngestContext};

/// A fuzz target's entry: called with each input libFuzzer makes.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`) and the
/// function it calls with libFuzzer's input.
pub const TARGETS: &[(&str, Target)] = &[
    ("flv_tag", flv_tag),
    ("avcc", avcc),
    ("sps", sps),
    ("hvcc", hvcc),
    ("h265_sps", h265_sps),
    ("flv_demux", flv_demux),
    ("rtmp_session", rtmp_session),
    ("frame_protocol", frame_protocol),
    ("http_request", http_request),
    ("record_range", record_range),
];

/// One RTMP audio or video message body: FLV tag parsing and the AAC AudioSpecificConfig.
pub fn flv_tag(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    match flv::parse_video(&body) {
        Ok(VideoTag::SequenceHeader { format, record }) => {
            assert!(record.len() <= data.len() - 5);
            match format {
                flv::VideoFormat::Avc => drop(h264::parse_avcc(record)),
                flv::VideoFormat::Hevc => drop(h265::parse_hvcc(record)),
            }
        }
        Ok(VideoTag::Frame {
            composition_time,
            data: frame,
            ..
        }) => {
            assert!(frame.len() <= data.len() - 5);
            assert!((-(1 << 23)..(1 << 23)).contains(&composition_time));
        }
        Ok(VideoTag::Ignored | VideoTag::Skipped(_) | VideoTag::Unsupported(_)) | Err(_) => {}
    }
    match flv::parse_audio(&body) {
        Ok(AudioTag::AacSequenceHeader(asc)) => {
            if let Ok(cfg) = flv::parse_audio_specific_config(asc) {
                assert!(cfg.sample_rate > 0 && cfg.object_type > 0);
                assert!(cfg.codec_string().starts_with("mp4a.40."));
            }
        }
        Ok(AudioTag::AacFrame(frame)) => assert_eq!(frame.len(), data.len() - 2),
        Ok(AudioTag::Unsupported(_)) | Err(_) => {}
    }
}

/// An AVCDecoderConfigurationRecord (the body of an AVC sequence header after its 5 bytes).
/// A record that parses is rebuilt from its parameter sets and must parse to the same thing.
pub fn avcc(data: &[u8]) {
    let Ok(cfg) = h264::parse_avcc(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!((1..=4).contains(&cfg.nal_length_size));
    assert!((1..=MAX_DIMENSION).contains(&cfg.width));
    assert!((1..=MAX_DIMENSION).contains(&cfg.height));
    assert!(!cfg.sps.is_empty() && cfg.sps.len() <= 31 && cfg.pps.len() <= 255);
    let _ = cfg.codec_string();
    let _ = cfg.profile_name();

    let mut rebuilt = vec![
        1,
        data[1],
        data[2],
        data[3],
        0xfc | (cfg.nal_length_size - 1),
    ];
    rebuilt.push(0xe0 | cfg.sps.len() as u8);
    for set in &cfg.sps {
        rebuilt.extend_from_slice(&(set.len() as u16).to_be_bytes());
        rebuilt.extend_from_slice(set);
    }
    rebuilt.push(cfg.pps.len() as u8);
    for set in &cfg.pps {
        rebuilt.extend_from_slice(&(set.len() as u16).to_be_bytes());
        rebuilt.extend_from_slice(set);
    }
    let again = h264::parse_avcc(Bytes::from(rebuilt)).expect("a rebuilt record parses");
    assert_eq!(
        (again.sps, again.pps, again.width, again.height),
        (cfg.sps, cfg.pps, cfg.width, cfg.height)
    );
}

/// A sequence parameter set NAL unit (with its header byte).
pub fn sps(data: &[u8]) {
    if let Ok(info) = h264::parse_sps(data) {
        assert!((1..=MAX_DIMENSION).contains(&info.width), "{info:?}");
        assert!((1..=MAX_DIMENSION).contains(&info.height), "{info:?}");
    }
}

/// An HEVCDecoderConfigurationRecord (the body of an enhanced RTMP `hvc1` sequence start).
/// A record that parses is rebuilt from its parameter sets and must parse to the same thing.
pub fn hvcc(data: &[u8]) {
    let Ok(cfg) = h265::parse_hvcc(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!((1..=4).contains(&cfg.nal_length_size));
    assert!((1..=MAX_DIMENSION).contains(&cfg.width));
    assert!((1..=MAX_DIMENSION).contains(&cfg.height));
    assert!(cfg.codec_string().starts_with("hvc1."));
    let _ = cfg.profile_name();
    let _ = cfg.codec.level();

    let mut rebuilt = data[..22].to_vec();
    rebuilt.push(3);
    for (t, sets) in [(32u8, &cfg.vps), (33, &cfg.sps), (34, &cfg.pps)] {
        rebuilt.push(t);
        rebuilt.extend_from_slice(&(sets.len() as u16).to_be_bytes());
        for set in sets {
            rebuilt.extend_from_slice(&(set.len() as u16).to_be_bytes());
            rebuilt.extend_from_slice(set);
        }
    }
    let again = h265::parse_hvcc(Bytes::from(rebuilt)).expect("a rebuilt record parses");
    assert_eq!(
        (again.vps, again.sps, again.pps, again.width, again.height),
        (cfg.vps, cfg.sps, cfg.pps, cfg.width, cfg.height)
    );
    assert_eq!(again.codec, cfg.codec);
}

/// An H.265 sequence parameter set NAL unit (with its two-byte header); and the same bytes as
/// an access unit for the IRAP scan.
pub fn h265_sps(data: &[u8]) {
    if let Ok(info) = h265::parse_sps(data) {
        assert!((1..=MAX_DIMENSION).contains(&info.width), "{info:?}");
        assert!((1..=MAX_DIMENSION).contains(&info.height), "{info:?}");
    }
    for size in 0..=5 {
        let _ = h265::is_irap(data, size);
    }
}

/// An FLV file (`ffmpeg -f flv` output) whose audio and video tags go through one
/// [`Demuxer`], as one publisher's messages would. Checks what every consumer relies on:
/// per track, decode timestamps strictly increase, and `pts = dts + composition time`.
pub fn flv_demux(data: &[u8]) {
    let mut demuxer = Demuxer::default();
    let mut last_dts: [Option<i64>; 2] = [None, None];
    let mut check = |outputs: Vec<Output>| {
        for out in outputs {
            match out {
                Output::Frame(Frame {
                    track,
                    dts,
                    pts,
                    data,
                    ..
                }) => {
                    let t = track as usize;
                    if let Some(prev) = last_dts[t] {
                        assert!(dts > prev, "{track:?} dts {dts} after {prev}");
                    }
                    last_dts[t] = Some(dts);
                    assert!(!data.is_empty());
                    if track == Track::Audio {
                        assert_eq!(pts, dts);
                    } else {
                        // The composition time is 24-bit signed: -2^23 ..= 2^23 - 1.
                        assert!((-(1 << 23)..1 << 23).contains(&(pts - dts)));
                    }
                }
                Output::Config { video, .. } => {
                    if let Some(v) = video {
                        assert!((1..=MAX_DIMENSION).contains(&v.width));
                        assert!((1..=MAX_DIMENSION).contains(&v.height));
                    }
                }
                Output::Unsupported { .. }
                | Output::Skipped { .. }
                | Output::Discontinuity { .. } => {}
            }
        }
    };
    for tag in flv_tags(data) {
        let body = Bytes::copy_from_slice(tag.body);
        match tag.kind {
            8 => check(demuxer.audio(&body, tag.timestamp).unwrap_or_default()),
            9 => check(demuxer.video(&body, tag.timestamp).unwrap_or_default()),
            _ => {}
        }
    }
}

/// One tag of an FLV file.
pub struct FlvTag<'a> {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Milliseconds, with the extended byte.
    pub timestamp: u32,
    pub body: &'a [u8],
}

/// The tags of an FLV file (header, then tag + previous-tag-size pairs), up to the first that
/// is cut short. A harness helper: the worker receives tags as RTMP messages, never files.
pub fn flv_tags(data: &[u8]) -> impl Iterator<Item = FlvTag<'_>> {
    let header_len = match data {
        [b'F', b'L', b'V', _, _, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => data.len(),
    };
    let mut pos = header_len.saturating_add(4);
    std::iter::from_fn(move || {
        let h = data.get(pos..pos.checked_add(11)?)?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = data.get(pos + 11..(pos + 11).checked_add(size)?)?;
        pos += 11 + size + 4;
        Some(FlvTag {
            kind: h[0] & 0x1f,
            timestamp,
            body,
        })
    })
}

thread_local! {
    /// One runtime per fuzzing thread: building one per input would cost more than the input.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime")
        });
        rt.block_on(future)
    })
}

/// What an RTMP client sent on one connection (handshake, chunks, AMF commands, media), fed
/// to the server's session code ([`session::run`]) through rml_rtmp, the demuxer and the hub,
/// exactly as from a socket. The input is the client's writes, each as a 2-byte big-endian
/// length and its bytes (`fuzz/seeds.py` records them so from real ffmpeg sessions): a client
/// waits for the answer to `connect` before it sends `createStream`, and the session sees
/// the same reads. The session must end (at the end of the bytes or on an error) without
/// panicking.
pub fn rtmp_session(data: &[u8]) {
    // libFuzzer's panic hook aborts on every panic, caught or not; a panic inside rml_rtmp is
    // caught by the session (`session::panicking_in_rml_rtmp`) and ends it with an error, so
    // it is not a crash of the worker. Every other panic still goes to libFuzzer.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !session::panicking_in_rml_rtmp() {
                fuzzer_hook(info);
            }
        }));
    });
    rtmp_session_into_hub(data);
}

/// [`rtmp_session`], returning the hub it published into.
fn rtmp_session_into_hub(data: &[u8]) -> Arc<Hub> {
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    let ctx = Arc::new(IngestContext {
        hub: Hub::new(),
        policy: PublishPolicy::default(),
        metrics,
        takeover: false,
    });
    let stream = ScriptedStream {
        input: data,
        pending: 0,
    };
    let peer = SocketAddr::from(([127, 0, 0, 1], 50000));
    block_on(session::run(
        stream,
        peer,
        ctx.clone(),
        CancellationToken::new(),
    ));
    ctx.hub.clone()
}

/// A connection whose peer sends a fixed list of writes and reads everything: each read
/// returns (at most) the rest of the current write, then the stream ends.
struct ScriptedStream<'a> {
    input: &'a [u8],
    /// Bytes of the current write not yet read.
    pending: usize,
}

impl AsyncRead for ScriptedStream<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending == 0 {
            match self.input {
                [] => return Poll::Ready(Ok(())),
                [hi, lo, rest @ ..] => {
                    self.pending = usize::from(u16::from_be_bytes([*hi, *lo]));
                    self.input = rest;
                }
                [_] => self.input = &[],
            }
        }
        let n = self.pending.min(buf.remaining()).min(self.input.len());
        let (now, rest) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = rest;
        // A write cut short by the end of the input ends with it.
        self.pending = if rest.is_empty() { 0 } else { self.pending - n };
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedStream<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a processor sends on the frame socket: lines read as the worker reads them
/// (`socket::read_line`, with its length bound), each parsed as a message; a hello is
/// validated, an ack's detections are read as the dispatcher reads them. A detection kept
/// has a clean, bounded label and finite numbers, and survives a JSON round trip unchanged.
pub fn frame_protocol(data: &[u8]) {
    let mut reader = BufReader::new(data);
    let mut buf = Vec::new();
    block_on(async {
        while let Ok(Some(line)) = crate::frames::socket::read_line(&mut reader, &mut buf).await {
            match serde_json::from_slice::<Inbound>(&line) {
                Ok(Inbound::Hello(hello)) => {
                    if hello.validate().is_ok() {
                        assert!(!hello.processor.is_empty() && hello.processor.len() <= MAX_NAME);
                        let _ = hello.wants("front-door");
                    }
                }
                Ok(Inbound::Ack(ack)) => {
                    for d in ack
                        .detections
                        .iter()
                        .take(MAX_DETECTIONS)
                        .filter_map(Detection::from_value)
                    {
                        check_detection(&d);
                    }
                }
                Err(_) => {}
            }
        }
    });
}

fn check_detection(d: &Detection) {
    assert!(!d.label.is_empty() && d.label.len() <= MAX_NAME, "{d:?}");
    assert!(!d.label.chars().any(char::is_control), "{d:?}");
    assert!(d.confidence.is_none_or(f64::is_finite));
    assert!(d.bbox.is_none_or(|b| b.iter().all(|x| x.is_finite())));
    // Sent on in the API as JSON: what is read back is the same detection (numbers to within
    // float parsing, which serde_json does not promise to round-trip to the last bit).
    let json = serde_json::to_string(d).expect("a detection serialises");
    let value: serde_json::Value = serde_json::from_str(&json).expect("its JSON parses");
    let back = Detection::from_value(&value).expect("a detection reads back");
    assert_eq!(back.label, d.label);
    let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    match (back.confidence, d.confidence) {
        (Some(a), Some(b)) => assert!(close(a, b), "{a} {b}"),
        (a, b) => assert_eq!(a.is_some(), b.is_some()),
    }
    match (back.bbox, d.bbox) {
        (Some(a), Some(b)) => assert!(a.iter().zip(&b).all(|(x, y)| close(*x, *y))),
        (a, b) => assert_eq!(a.is_some(), b.is_some()),
    }
}

/// A viewer's request: the request target (`/hls/<camera>/stream.m3u8?_HLS_msn=…`) on the
/// first line, an `Authorization` header value after it. Goes through the access table, the
/// token lookup (Bearer header or `token` query parameter), the LL-HLS reload parameters and
/// the HLS file names, and carries a well-formed query token into a real playlist.
pub fn http_request(data: &[u8]) {
    let (target, authorization) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let path = uri.path();
    match access(path) {
        Access::Scope(Need::Live(camera)) | Access::Scope(Need::Recordings(Some(camera))) => {
            assert!(!camera.is_empty() && !camera.contains('/'), "{path:?}");
        }
        Access::Open | Access::Scope(_) | Access::Unlisted => {}
    }

    let mut request = Request::new(axum::body::Body::empty());
    *request.uri_mut() = uri.clone();
    if let Some(value) = authorization.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    if let Some(presented) = presented(&request) {
        let token = presented.token();
        if let Presented::Header(t) = &presented {
            assert_eq!(t.trim(), t);
        }
        if !token.is_empty() && token.chars().all(is_token_char) {
            let carried = with_token(SAMPLE_PLAYLIST, token);
            let param = format!("{TOKEN_PARAM}={token}");
            assert_eq!(carried.lines().count(), SAMPLE_PLAYLIST.lines().count());
            assert_eq!(carried.matches(&param).count(), SAMPLE_PLAYLIST_URIS);
        }
    }

    if let Ok(Query(query)) = Query::<HashMap<String, String>>::try_from_uri(&uri) {
        if let Ok(reload) = Reload::parse(&query) {
            assert!(reload.part.is_none() || reload.msn.is_some());
            assert!(reload.part.is_none_or(|p| p <= MAX_PART_INDEX));
        }
    }
    if let Some(file) = path
        .strip_prefix("/hls/")
        .and_then(|r| r.rsplit('/').next())
    {
        if let Some(File::Part(..) | File::Segment(_) | File::Init(_)) = parse_file(file) {
            assert!(file.ends_with(".m4s") || file.ends_with(".mp4"));
        }
    }
}

/// A media playlist as the worker renders it (LL-HLS, two segments, parts, a preload hint).
const SAMPLE_PLAYLIST: &str = "#EXTM3U\n\
#EXT-X-VERSION:9\n\
#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=12.000\n\
#EXT-X-PART-INF:PART-TARGET=0.200\n\
#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-MAP:URI=\"init-1.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T08:00:01.000Z\n\
#EXTINF:2.000,\n\
seg7.m4s\n\
#EXT-X-PART:DURATION=0.200,URI=\"part8.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.200,URI=\"part8.1.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.2.m4s\"\n";

/// URIs in [`SAMPLE_PLAYLIST`]: the map, one segment, two parts and the hint.
const SAMPLE_PLAYLIST_URIS: usize = 5;

/// A recordings request: the first 8 bytes are the file's length (little-endian), the rest is
/// both the `Range` header value and the path after `/recordings/`. A partial range lies
/// inside the file; a path that names a file names one the recorder would write, in its day.
pub fn record_range(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let Ok(value) = HeaderValue::from_bytes(rest) else {
        return;
    };
    match parse_range(value.to_str().ok(), len) {
        ByteRange::Partial { start, end } => assert!(start <= end && end < len, "{start}-{end}"),
        ByteRange::Full | ByteRange::Unsatisfiable => {}
    }
    if let Ok(path) = std::str::from_utf8(rest) {
        match parse_target(path) {
            Ok(RecordingTarget::File { camera, date, file }) => {
                // The name round-trips through the recorder's own naming.
                let start = naming::parse_file_name(&camera, &file).map(|p| p.start_secs);
                assert_eq!(start.map(|s| naming::file_name(&camera, s)), Some(file));
                assert_eq!(start.map(naming::date_dir), Some(date.clone()));
                assert!(!date.contains('/'));
                assert!(path.split('/').all(|s| s != ".." && s != "."), "{path:?}");
            }
            Ok(RecordingTarget::Listing(camera)) => assert!(!camera.contains('/')),
            Ok(RecordingTarget::NotFound) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        all.sort();
        all
    }

    /// Every committed seed and every input that once crashed (`fuzz/regressions/<target>/`)
    /// goes through its target: what `cargo fuzz run` would start from, without libFuzzer.
    #[test]
    fn every_corpus_and_regression_input_passes_its_target() {
        for (name, target) in TARGETS {
            let seeds = files(&fuzz_dir().join("corpus").join(name));
            assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
            for input in seeds
                .iter()
                .chain(&files(&fuzz_dir().join("regressions").join(name)))
            {
                let data = std::fs::read(input).expect("read corpus file");
                target(&data);
            }
        }
    }

    /// The fuzz crate has one target per entry of [`TARGETS`], each calling its function.
    #[test]
    fn every_target_has_a_fuzz_binary_calling_it() {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("manifest");
        let sources = files(&fuzz_dir().join("fuzz_targets"));
        assert_eq!(sources.len(), TARGETS.len(), "{sources:?}");
        for (name, _) in TARGETS {
            assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
            let source =
                std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
                    .expect("target source");
            assert!(source.contains(&format!("fuzzing::{name}(")), "{name}");
        }
    }

    /// The replayed ffmpeg publish gets through the handshake, `connect` and `publish` to
    /// the demuxer: the harness reaches the media path, not just the handshake.
    #[test]
    fn a_captured_ffmpeg_publish_replays_to_frames_in_the_hub() {
        let published = files(&fuzz_dir().join("corpus/rtmp_session"))
            .iter()
            .flat_map(|seed| {
                let data = std::fs::read(seed).expect("read seed");
                rtmp_session_into_hub(&data).channels()
            })
            .map(|channel| channel.stats())
            .any(|s| s.video_frames > 0 && s.audio_frames > 0 && s.width == Some(160));
        assert!(published, "no seed published 160x120 video with audio");
    }

    /// Found by `rtmp_session`: rml_rtmp 0.8.0 panics on an AMF0 command with fewer than
    /// three values; the session must contain it and end with an error.
    #[test]
    fn an_amf0_command_with_too_few_values_ends_the_session_without_a_panic() {
        let input =
            fuzz_dir().join("regressions/rtmp_session/amf0-command-with-fewer-than-three-values");
        let data = std::fs::read(input).expect("regression input");
        let outcome = std::panic::catch_unwind(|| rtmp_session_into_hub(&data));
        assert!(outcome.is_ok(), "the session let a panic out");
    }

    #[test]
    fn sample_playlist_lists_its_uris() {
        let carried = with_token(SAMPLE_PLAYLIST, "abc");
        assert_eq!(carried.matches("token=abc").count(), SAMPLE_PLAYLIST_URIS);
    }
}
