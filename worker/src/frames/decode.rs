//! H.264 and H.265 decoding of the sampled access units (libavcodec's `h264` and `hevc`
//! decoders through `ffmpeg-next`), on the extractor's blocking thread.
//!
//! Packets are handed to libavcodec as Annex B with the parameter sets (VPS, SPS, PPS) in
//! front of every keyframe, so the decoder needs no extradata and each keyframe decodes on
//! its own.

use ffmpeg_next as ff;

use crate::media::{Frame, VideoCodec, VideoConfig};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("libavcodec has no {0} decoder")]
    NoDecoder(&'static str),
    #[error("opening the {codec} decoder: {source}")]
    Open {
        codec: &'static str,
        source: ff::Error,
    },
    #[error("access unit at dts {dts} ms is malformed: {what}")]
    Malformed { dts: i64, what: &'static str },
    #[error("decoding the access unit at dts {dts} ms: {source}")]
    Decode { dts: i64, source: ff::Error },
}

/// Converts one access unit of length-prefixed NAL units to Annex B (start codes), with the
/// configuration's parameter sets (VPS for H.265, SPS, PPS) in front when
/// `with_parameter_sets`.
pub fn to_annex_b(
    config: &VideoConfig,
    data: &[u8],
    with_parameter_sets: bool,
) -> Result<Vec<u8>, &'static str> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let extra: usize = if with_parameter_sets {
        parameter_sets(config).map(|n| n.len() + 4).sum()
    } else {
        0
    };
    let mut out = Vec::with_capacity(data.len() + extra + 16);
    if with_parameter_sets {
        for nal in parameter_sets(config) {
            out.extend_from_slice(&START);
            out.extend_from_slice(nal);
        }
    }
    let size = usize::from(config.nal_length_size);
    if !(1..=4).contains(&size) {
        return Err("NAL length size is not 1 to 4 bytes");
    }
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < size {
            return Err("truncated NAL length");
        }
        let len = rest[..size]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[size..];
        if len > rest.len() {
            return Err("NAL unit longer than the access unit");
        }
        out.extend_from_slice(&START);
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(out)
}

fn parameter_sets(config: &VideoConfig) -> impl Iterator<Item = &bytes::Bytes> {
    config
        .vps
        .iter()
        .chain(config.sps.iter())
        .chain(config.pps.iter())
}

/// A decoded picture and the PTS it was presented at.
pub struct Picture {
    pub frame: ff::frame::Video,
    pub pts: i64,
}

/// One camera's video decoder.
pub struct Decoder {
    decoder: ff::decoder::Video,
    config: VideoConfig,
}

impl Decoder {
    /// Opens a decoder for `config`. Single-threaded: cameras already run in parallel, and
    /// frame threading would delay every picture by a frame per thread.
    pub fn new(config: &VideoConfig) -> Result<Self, DecodeError> {
        let (id, name) = match config.codec {
            VideoCodec::H264 { .. } => (ff::codec::Id::H264, "H.264"),
            VideoCodec::H265 { .. } => (ff::codec::Id::HEVC, "H.265"),
        };
        let codec = ff::decoder::find(id).ok_or(DecodeError::NoDecoder(name))?;
        let ctx = ff::codec::context::Context::new_with_codec(codec);
        let decoder = ctx.decoder().video().map_err(|source| DecodeError::Open {
            codec: name,
            source,
        })?;
        Ok(Self {
            decoder,
            config: config.clone(),
        })
    }

    /// Skips the deblocking (loop) filter of the access units sent from now on, or applies it
    /// again. Pictures decoded only to reach a later sample need not look their best; the
    /// sample itself is decoded with the filter, from references that skipped it (so it may
    /// show faint blocking). libavcodec reads the setting per slice.
    pub fn skip_loop_filter(&mut self, skip: bool) {
        self.decoder.skip_loop_filter(if skip {
            ff::Discard::All
        } else {
            ff::Discard::Default
        });
    }

    /// Forgets references and buffered pictures (after lost data or a mode change).
    pub fn reset(&mut self) {
        self.decoder.flush();
    }

    /// Decodes a keyframe on its own and returns its picture at once: the decoder is drained
    /// and flushed, so reordering delay never holds the picture back.
    pub fn decode_keyframe(&mut self, frame: &Frame) -> Result<Option<Picture>, DecodeError> {
        self.send(frame)?;
        let _ = self.decoder.send_eof();
        let mut out = None;
        while let Some(p) = self.receive(frame.dts)? {
            out = Some(p);
        }
        self.decoder.flush();
        Ok(out)
    }

    /// Feeds one access unit of a continuous sequence; returns the pictures it released.
    pub fn decode(&mut self, frame: &Frame) -> Result<Vec<Picture>, DecodeError> {
        self.send(frame)?;
        let mut out = Vec::new();
        while let Some(p) = self.receive(frame.dts)? {
            out.push(p);
        }
        Ok(out)
    }

    fn send(&mut self, frame: &Frame) -> Result<(), DecodeError> {
        let annex_b = to_annex_b(&self.config, &frame.data, frame.keyframe).map_err(|what| {
            DecodeError::Malformed {
                dts: frame.dts,
                what,
            }
        })?;
        let mut packet = ff::Packet::copy(&annex_b);
        packet.set_pts(Some(frame.pts));
        packet.set_dts(Some(frame.dts));
        if frame.keyframe {
            packet.set_flags(ff::codec::packet::Flags::KEY);
        }
        self.decoder
            .send_packet(&packet)
            .map_err(|source| DecodeError::Decode {
                dts: frame.dts,
                source,
            })
    }

    fn receive(&mut self, dts: i64) -> Result<Option<Picture>, DecodeError> {
        let mut picture = ff::frame::Video::empty();
        match self.decoder.receive_frame(&mut picture) {
            Ok(()) => {
                let pts = picture.pts().or(picture.timestamp()).unwrap_or(dts);
                Ok(Some(Picture {
                    frame: picture,
                    pts,
                }))
            }
            Err(ff::Error::Eof) => Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => Ok(None),
            Err(source) => Err(DecodeError::Decode { dts, source }),
        }
    }
}

/// Initialises libavcodec once per process and keeps its logging to real errors.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = ff::init() {
            tracing::warn!(error = %e, "initialising libavcodec failed");
        }
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn config() -> VideoConfig {
        VideoConfig {
            codec: VideoCodec::H264 {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 40,
            },
            record: Bytes::new(),
            vps: Vec::new(),
            sps: vec![Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![Bytes::from_static(&[0x68, 3])],
            nal_length_size: 4,
            width: 16,
            height: 16,
        }
    }

    #[test]
    fn annex_b_puts_parameter_sets_before_keyframes() {
        let au = [0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x06];
        let out = to_annex_b(&config(), &au, true).expect("valid");
        assert_eq!(
            out,
            [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06]
        );
        let plain = to_annex_b(&config(), &au, false).expect("valid");
        assert_eq!(plain, [0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06]);
    }

    #[test]
    fn annex_b_rejects_lengths_past_the_end() {
        assert!(to_annex_b(&config(), &[0, 0, 0, 9, 0x65], false).is_err());
        assert!(to_annex_b(&config(), &[0, 0], false).is_err());
    }

    /// Decodes the first GOP of the test clip in order, skipping the loop filter where `skip`
    /// says so, and returns the luma plane of the picture presented last.
    fn last_picture_luma(skip: impl Fn(usize) -> bool) -> Vec<u8> {
        init();
        let clip = deblocked_clip();
        let video = clip.info.video.as_ref().expect("video");
        let frames: Vec<_> = clip
            .frames
            .iter()
            .filter(|f| f.track == crate::media::Track::Video)
            .take(25)
            .collect();
        assert!(frames[0].keyframe && frames[1..].iter().all(|f| !f.keyframe));
        let mut d = Decoder::new(video).expect("decoder");
        let mut pictures = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            d.skip_loop_filter(skip(i));
            pictures.extend(d.decode(f).expect("decodes"));
        }
        let _ = d.decoder.send_eof();
        while let Some(p) = d.receive(0).expect("drains") {
            pictures.push(p);
        }
        let last = pictures.iter().max_by_key(|p| p.pts).expect("pictures");
        let (w, h) = (last.frame.width() as usize, last.frame.height() as usize);
        let stride = last.frame.stride(0);
        let data = last.frame.data(0);
        (0..h)
            .flat_map(|y| data[y * stride..y * stride + w].iter().copied())
            .collect()
    }

    /// One second of grainy 25 fps video, one GOP, encoded with the deblocking filter on (the
    /// shared test clip is `ultrafast`, which turns it off).
    fn deblocked_clip() -> &'static crate::fmp4::test_media::Clip {
        static CLIP: std::sync::OnceLock<crate::fmp4::test_media::Clip> =
            std::sync::OnceLock::new();
        CLIP.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("grain.flv");
            let status = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi"])
                .args(["-i", "testsrc2=size=320x180:rate=25,noise=alls=24:allf=t"])
                .args(["-t", "1", "-c:v", "libx264", "-preset", "veryfast"])
                .args(["-g", "25", "-sc_threshold", "0", "-bf", "0", "-b:v", "300k"])
                .args(["-an", "-f", "flv"])
                .arg(&path)
                .status()
                .expect("running ffmpeg");
            assert!(status.success(), "ffmpeg failed to encode the clip");
            crate::fmp4::test_media::demux_flv(&std::fs::read(&path).expect("clip"))
        })
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
    }

    #[test]
    fn references_decoded_without_the_loop_filter_still_give_a_faithful_sample() {
        let exact = last_picture_luma(|_| false);
        // The last frame of the GOP in decode order is the sample: only it gets the filter.
        let fast = last_picture_luma(|i| i < 24);
        assert!(exact != fast, "skipping the loop filter changed nothing");
        let db = psnr(&exact, &fast);
        assert!(db > 28.0, "the sample drifted too far: PSNR {db:.1} dB");
    }

    #[test]
    fn garbage_never_panics_the_decoder() {
        init();
        let mut d = Decoder::new(&config()).expect("decoder");
        let frame = Frame {
            track: crate::media::Track::Video,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 3, 0x65, 0xff, 0xff]),
        };
        // Either an error or no picture: what matters is that it returns.
        let _ = d.decode_keyframe(&frame);
        let _ = d.decode(&frame);
    }
}
