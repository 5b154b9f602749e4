//! H.265 parameter sets: the HEVCDecoderConfigurationRecord (`hvcC`) and the parts of the SPS
//! that tell a viewer what the camera sends (resolution after the conformance window), plus
//! which access units are random access points (IRAP pictures).
//!
//! Hand-written because no maintained crate fits: retina parses H.265 SPSs but keeps that
//! module hidden, and the others are young or drag in far more than a resolution needs. Every
//! field is publisher data: reads are bounds-checked and arithmetic is checked; the parsers are
//! property-tested and fuzzed (`fuzz/fuzz_targets/hvcc.rs`, `h265_sps.rs`).

use bytes::Bytes;

use super::bits::{unescape, BitError, BitReader};
use super::h264::{cropped_size, MAX_DIMENSION};
use crate::media::{VideoCodec, VideoConfig};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H265Error {
    #[error("HEVC decoder configuration record truncated at byte {0}")]
    RecordTruncated(usize),
    #[error("HEVC decoder configuration record has version {0}, expected 1")]
    RecordVersion(u8),
    #[error("HEVC decoder configuration record has no SPS")]
    NoSps,
    #[error("NAL unit of type {0} where an SPS (33) was expected")]
    NotSps(u8),
    #[error("SPS truncated")]
    SpsTruncated,
    #[error("SPS value out of range: {0}")]
    SpsInvalid(&'static str),
}

impl From<BitError> for H265Error {
    fn from(e: BitError) -> Self {
        match e {
            BitError::Truncated => H265Error::SpsTruncated,
            BitError::ExpGolombTooLong => H265Error::SpsInvalid("exp-golomb code too long"),
        }
    }
}

/// NAL unit types (ITU-T H.265 Table 7-1).
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;

/// The type of an H.265 NAL unit from its two-byte header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1): the profile, tier
/// and level it declares, its parameter sets, and the picture size from its first SPS.
pub fn parse_hvcc(record: Bytes) -> Result<VideoConfig, H265Error> {
    let b = &record[..];
    let byte = |i: usize| b.get(i).copied().ok_or(H265Error::RecordTruncated(i));
    let version = byte(0)?;
    if version != 1 {
        return Err(H265Error::RecordVersion(version));
    }
    let ptl = byte(1)?;
    let mut compatibility = [0u8; 4];
    for (i, c) in compatibility.iter_mut().enumerate() {
        *c = byte(2 + i)?;
    }
    let mut constraint_flags = [0u8; 6];
    for (i, c) in constraint_flags.iter_mut().enumerate() {
        *c = byte(6 + i)?;
    }
    let codec = VideoCodec::H265 {
        profile_space: ptl >> 6,
        high_tier: ptl & 0x20 != 0,
        profile_idc: ptl & 0x1f,
        compatibility_flags: u32::from_be_bytes(compatibility),
        constraint_flags,
        level_idc: byte(12)?,
    };
    let nal_length_size = (byte(21)? & 0x03) + 1;
    let arrays = byte(22)?;
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    let mut pos = 23usize;
    for _ in 0..arrays {
        let nal_type = byte(pos)? & 0x3f;
        let count = u16::from_be_bytes([byte(pos + 1)?, byte(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([byte(pos)?, byte(pos + 1)?]));
            pos += 2;
            let end = pos + len;
            if end > b.len() {
                return Err(H265Error::RecordTruncated(b.len()));
            }
            let nal = record.slice(pos..end);
            match nal_type {
                NAL_VPS => vps.push(nal),
                NAL_SPS => sps.push(nal),
                NAL_PPS => pps.push(nal),
                _ => {} // SEI and others: kept in the record, not needed apart.
            }
            pos = end;
        }
    }
    let info = parse_sps(sps.first().ok_or(H265Error::NoSps)?)?;
    Ok(VideoConfig {
        codec,
        record,
        vps,
        sps,
        pps,
        nal_length_size,
        width: info.width,
        height: info.height,
    })
}

/// What Kamera needs from an H.265 sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_space: u8,
    pub high_tier: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
    /// Width and height after the conformance window.
    pub width: u32,
    pub height: u32,
}

/// Parses a sequence parameter set NAL unit (with its two-byte header) up to the conformance
/// window, ITU-T H.265 §7.3.2.2.1.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H265Error> {
    let t = nal_type(nal).ok_or(H265Error::SpsTruncated)?;
    if t != NAL_SPS {
        return Err(H265Error::NotSps(t));
    }
    let rbsp = unescape(nal.get(2..).ok_or(H265Error::SpsTruncated)?);
    let mut r = BitReader::new(&rbsp);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(H265Error::SpsInvalid("sps_max_sub_layers_minus1"));
    }
    r.skip(1)?; // sps_temporal_id_nesting_flag

    // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3.
    let ptl = r.bits(8)?;
    let compatibility_flags = r.bits(32)?;
    let mut constraint_flags = [0u8; 6];
    for c in &mut constraint_flags {
        *c = r.bits(8)? as u8;
    }
    let level_idc = r.bits(8)? as u8;
    let mut sub_layers = [(false, false); 6];
    for s in sub_layers.iter_mut().take(max_sub_layers_minus1 as usize) {
        *s = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?; // reserved_zero_2bits
    }
    for &(profile_present, level_present) in sub_layers.iter().take(max_sub_layers_minus1 as usize)
    {
        if profile_present {
            r.skip(88)?; // sub_layer profile space … constraint flags
        }
        if level_present {
            r.skip(8)?; // sub_layer_level_idc
        }
    }

    if r.ue()? > 15 {
        return Err(H265Error::SpsInvalid("sps_seq_parameter_set_id"));
    }
    let chroma_format_idc = r.ue()?;
    let separate_colour_plane = match chroma_format_idc {
        3 => r.bit()?,
        0..=2 => false,
        _ => return Err(H265Error::SpsInvalid("chroma_format_idc")),
    };
    let coded_width = r.ue()?;
    let coded_height = r.ue()?;
    let mut window = [0u32; 4]; // left, right, top, bottom, in chroma units
    if r.bit()? {
        for w in &mut window {
            *w = r.ue()?;
        }
    }
    // SubWidthC and SubHeightC (Table 6-1); a separate colour plane counts as monochrome.
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let width = cropped_size(coded_width, 1, [window[0], window[1]], sub_width).ok_or(
        H265Error::SpsInvalid("conformance window wider than the picture"),
    )?;
    let height = cropped_size(coded_height, 1, [window[2], window[3]], sub_height).ok_or(
        H265Error::SpsInvalid("conformance window taller than the picture"),
    )?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(H265Error::SpsInvalid("picture size"));
    }
    Ok(SpsInfo {
        profile_space: (ptl >> 6) as u8,
        high_tier: ptl & 0x20 != 0,
        profile_idc: (ptl & 0x1f) as u8,
        compatibility_flags,
        constraint_flags,
        level_idc,
        width,
        height,
    })
}

/// Whether an access unit (NAL units with `nal_length_size`-byte length prefixes) holds an
/// IRAP picture (NAL types 16–23: BLA, IDR, CRA), where decoding can start: an MP4 sync
/// sample. A malformed unit is not one.
pub fn is_irap(data: &[u8], nal_length_size: u8) -> bool {
    let size = usize::from(nal_length_size);
    if !(1..=4).contains(&size) {
        return false;
    }
    let mut rest = data;
    while rest.len() > size {
        let len = rest[..size]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[size..];
        if len == 0 || len > rest.len() {
            return false;
        }
        if nal_type(&rest[..len]).is_some_and(|t| (16..=23).contains(&t)) {
            return true;
        }
        rest = &rest[len..];
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Parameter sets of a 1920x1080 Main profile stream from libx265 4.3 (FFmpeg 9.0.2,
    /// `-preset ultrafast`): coded 1920x1088 with an 8-line conformance window.
    pub(crate) const VPS_1080P: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x95, 0x94, 0x09,
    ];
    pub(crate) const SPS_1080P: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x11, 0x07, 0xcb, 0x96, 0x56, 0x54, 0xa4, 0xc2,
        0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x03, 0x02, 0x84,
    ];
    pub(crate) const PPS_1080P: &[u8] = &[0x44, 0x01, 0xc0, 0x73, 0xc1, 0x89];

    /// An `hvcC` record holding `vps`, `sps` and `pps`, with the header libx265 wrote for them.
    pub(crate) fn hvcc_record(vps: &[u8], sps: &[u8], pps: &[u8]) -> Bytes {
        let mut r = vec![
            0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0xf0,
            0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 3,
        ];
        for (t, nal) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
            r.extend_from_slice(&[0x80 | t, 0, 1]);
            r.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            r.extend_from_slice(nal);
        }
        Bytes::from(r)
    }

    #[test]
    fn parses_a_libx265_1080p_sps_with_its_conformance_window() {
        let info = parse_sps(SPS_1080P).expect("valid SPS");
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!((info.profile_idc, info.level_idc), (1, 120));
        assert_eq!(info.compatibility_flags, 0x6000_0000);
        assert_eq!(info.constraint_flags, [0x90, 0, 0, 0, 0, 0]);
        assert!(!info.high_tier);
    }

    #[test]
    fn parses_a_libx265_decoder_configuration_record() {
        let cfg = parse_hvcc(hvcc_record(VPS_1080P, SPS_1080P, PPS_1080P)).expect("valid");
        assert_eq!((cfg.width, cfg.height), (1920, 1080));
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!((cfg.vps.len(), cfg.sps.len(), cfg.pps.len()), (1, 1, 1));
        assert_eq!(&cfg.sps[0][..], SPS_1080P);
        assert_eq!(cfg.codec.name(), "h265");
        assert_eq!(cfg.codec_string(), "hvc1.1.6.L120.90");
        assert_eq!(cfg.profile_name(), "Main");
        assert!((cfg.codec.level() - 4.0).abs() < 1e-9);
        // The record's profile, tier and level are the SPS's.
        let sps = parse_sps(SPS_1080P).expect("valid SPS");
        assert_eq!(
            cfg.codec,
            VideoCodec::H265 {
                profile_space: sps.profile_space,
                high_tier: sps.high_tier,
                profile_idc: sps.profile_idc,
                compatibility_flags: sps.compatibility_flags,
                constraint_flags: sps.constraint_flags,
                level_idc: sps.level_idc,
            }
        );
    }

    #[test]
    fn codec_strings_follow_iso_14496_15_annex_e() {
        let mut cfg = parse_hvcc(hvcc_record(VPS_1080P, SPS_1080P, PPS_1080P)).expect("valid");
        // Main 10, High tier, level 5.1, profile space 1, two constraint bytes: Apple's and
        // the standard's examples have this shape.
        cfg.codec = VideoCodec::H265 {
            profile_space: 1,
            high_tier: true,
            profile_idc: 2,
            compatibility_flags: 0x2000_0000,
            constraint_flags: [0xb0, 0x08, 0, 0, 0, 0],
            level_idc: 153,
        };
        assert_eq!(cfg.codec_string(), "hvc1.A2.4.H153.B0.8");
        // All-zero constraint bytes keep the first one.
        cfg.codec = VideoCodec::H265 {
            profile_space: 0,
            high_tier: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_flags: [0; 6],
            level_idc: 93,
        };
        assert_eq!(cfg.codec_string(), "hvc1.1.6.L93.0");
    }

    #[test]
    fn irap_pictures_are_random_access_points() {
        // IDR_W_RADL (19), CRA (21) after an AUD (35); TRAIL_R (1) is not.
        let au = |t: u8| [0, 0, 0, 2, 35 << 1, 1, 0, 0, 0, 3, t << 1, 1, 0xaf];
        assert!(is_irap(&au(19), 4));
        assert!(is_irap(&au(21), 4));
        assert!(!is_irap(&au(1), 4));
        assert!(!is_irap(&[0, 0, 0, 9, 19 << 1], 4), "truncated");
        assert!(!is_irap(&au(19), 0));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let record = hvcc_record(VPS_1080P, SPS_1080P, PPS_1080P);
        for cut in 0..record.len() {
            assert!(parse_hvcc(record.slice(..cut)).is_err(), "cut at {cut}");
        }
        for cut in 0..SPS_1080P.len() {
            let _ = parse_sps(&SPS_1080P[..cut]);
        }
        let mut v2 = record.to_vec();
        v2[0] = 2;
        assert_eq!(
            parse_hvcc(Bytes::from(v2)),
            Err(H265Error::RecordVersion(2))
        );
        assert_eq!(
            parse_hvcc(hvcc_record(VPS_1080P, PPS_1080P, PPS_1080P)),
            Err(H265Error::NotSps(34))
        );
    }

    proptest! {
        #[test]
        fn random_sps_bytes_give_a_sane_size_or_an_error(
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let nal = [&[0x42, 0x01][..], &body].concat();
            if let Ok(info) = parse_sps(&nal) {
                prop_assert!((1..=MAX_DIMENSION).contains(&info.width));
                prop_assert!((1..=MAX_DIMENSION).contains(&info.height));
            }
        }

        #[test]
        fn mutated_libx265_records_give_a_sane_size_or_an_error(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut record = hvcc_record(VPS_1080P, SPS_1080P, PPS_1080P).to_vec();
            for (at, byte) in edits {
                let i = at.index(record.len());
                record[i] = byte;
            }
            let len = cut.index(record.len() + 1);
            for r in [record.clone(), record[..len].to_vec()] {
                if let Ok(cfg) = parse_hvcc(Bytes::from(r)) {
                    prop_assert!((1..=MAX_DIMENSION).contains(&cfg.width));
                    prop_assert!((1..=MAX_DIMENSION).contains(&cfg.height));
                    prop_assert!((1..=4).contains(&cfg.nal_length_size));
                }
            }
        }
    }
}
