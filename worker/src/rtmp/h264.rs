//! H.264 parameter sets: the AVCDecoderConfigurationRecord and the parts of the SPS that
//! tell a viewer what the camera sends (profile, level, resolution).

use bytes::Bytes;

use super::bits::{unescape, BitError, BitReader};
use crate::media::{VideoCodec, VideoConfig};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H264Error {
    #[error("AVC decoder configuration record truncated at byte {0}")]
    RecordTruncated(usize),
    #[error("AVC decoder configuration record has version {0}, expected 1")]
    RecordVersion(u8),
    #[error("AVC decoder configuration record has no SPS")]
    NoSps,
    #[error("SPS truncated")]
    SpsTruncated,
    #[error("SPS value out of range: {0}")]
    SpsInvalid(&'static str),
}

impl From<BitError> for H264Error {
    fn from(e: BitError) -> Self {
        match e {
            BitError::Truncated => H264Error::SpsTruncated,
            BitError::ExpGolombTooLong => H264Error::SpsInvalid("exp-golomb code too long"),
        }
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1).
pub fn parse_avcc(record: Bytes) -> Result<VideoConfig, H264Error> {
    let b = &record[..];
    let byte = |i: usize| b.get(i).copied().ok_or(H264Error::RecordTruncated(i));
    let version = byte(0)?;
    if version != 1 {
        return Err(H264Error::RecordVersion(version));
    }
    let nal_length_size = (byte(4)? & 0x03) + 1;
    let mut pos = 5;
    let read_sets = |count_mask: u8, pos: &mut usize| -> Result<Vec<Bytes>, H264Error> {
        let count = byte(*pos)? & count_mask;
        *pos += 1;
        let mut sets = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = u16::from_be_bytes([byte(*pos)?, byte(*pos + 1)?]) as usize;
            *pos += 2;
            if *pos + len > b.len() {
                return Err(H264Error::RecordTruncated(b.len()));
            }
            sets.push(record.slice(*pos..*pos + len));
            *pos += len;
        }
        Ok(sets)
    };
    let sps = read_sets(0x1f, &mut pos)?;
    let pps = read_sets(0xff, &mut pos)?;
    let first = sps.first().ok_or(H264Error::NoSps)?;
    let info = parse_sps(first)?;
    Ok(VideoConfig {
        codec: VideoCodec::H264 {
            profile_idc: info.profile_idc,
            constraint_flags: info.constraint_flags,
            level_idc: info.level_idc,
        },
        record: record.clone(),
        vps: Vec::new(),
        sps,
        pps,
        nal_length_size,
        width: info.width,
        height: info.height,
    })
}

/// Largest picture width or height accepted (level 6.2 allows 8192; twice that is margin).
pub const MAX_DIMENSION: u32 = 16384;

/// What Kamera needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

/// Parses a sequence parameter set NAL unit (with its one-byte header), ITU-T H.264 §7.3.2.1.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let rbsp = unescape(nal.get(1..).ok_or(H264Error::SpsTruncated)?);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(H264Error::SpsInvalid("chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(H264Error::SpsInvalid(
                    "num_ref_frames_in_pic_order_cnt_cycle",
                ));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(H264Error::SpsInvalid("pic_order_cnt_type")),
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag

    // Every size field is publisher data of up to 32 bits: the arithmetic below is checked,
    // so a hostile SPS gives an error, never an overflow (a panic in debug, a lie in release).
    let width_mbs = r.ue()?.checked_add(1);
    let height_map_units = r.ue()?.checked_add(1);
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0, 0, 0, 0);
    if r.bit()? {
        crop_l = r.ue()?;
        crop_r = r.ue()?;
        crop_t = r.ue()?;
        crop_b = r.ue()?;
    }
    let frame_height_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = match (chroma_format_idc, separate_colour_plane) {
        (0, _) | (3, true) => (1, frame_height_factor),
        (1, false) => (2, 2 * frame_height_factor),
        (2, false) => (2, frame_height_factor),
        _ => (1, frame_height_factor),
    };
    let width = width_mbs
        .and_then(|mbs| cropped_size(mbs, 16, [crop_l, crop_r], crop_unit_x))
        .ok_or(H264Error::SpsInvalid(
            "picture width or horizontal cropping",
        ))?;
    let height = height_map_units
        .and_then(|units| {
            cropped_size(
                units,
                16 * frame_height_factor,
                [crop_t, crop_b],
                crop_unit_y,
            )
        })
        .ok_or(H264Error::SpsInvalid("picture height or vertical cropping"))?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(H264Error::SpsInvalid("picture size"));
    }
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
    })
}

/// `units × unit_px − (crop[0] + crop[1]) × crop_unit` (ITU-T H.264 §7.4.2.1.1), or `None`
/// when a step overflows or the cropping exceeds the picture.
pub(super) fn cropped_size(
    units: u32,
    unit_px: u32,
    crop: [u32; 2],
    crop_unit: u32,
) -> Option<u32> {
    let full = units.checked_mul(unit_px)?;
    let cropped = crop[0].checked_add(crop[1])?.checked_mul(crop_unit)?;
    full.checked_sub(cropped)
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), H264Error> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// SPS of a 1280x720 High profile stream from x264 (level 3.1).
    pub(crate) const SPS_720P_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60,
    ];
    /// SPS of a 320x240 Constrained Baseline stream from x264.
    pub(crate) const SPS_240P_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];

    pub(crate) fn avcc_record(sps: &[u8], pps: &[u8]) -> Bytes {
        let mut r = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(sps);
        r.push(1);
        r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        r.extend_from_slice(pps);
        Bytes::from(r)
    }

    #[test]
    fn parses_high_profile_720p() {
        let info = parse_sps(SPS_720P_HIGH).expect("valid SPS");
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!((info.profile_idc, info.level_idc), (100, 31));
    }

    #[test]
    fn parses_constrained_baseline() {
        let info = parse_sps(SPS_240P_BASELINE).expect("valid SPS");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.profile_idc, 66);
        assert_eq!(info.constraint_flags & 0x40, 0x40);
    }

    #[test]
    fn parses_decoder_configuration_record() {
        let record = avcc_record(SPS_720P_HIGH, &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        let cfg = parse_avcc(record).expect("valid record");
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(cfg.sps.len(), 1);
        assert_eq!(cfg.pps.len(), 1);
        assert_eq!(cfg.codec_string(), "avc1.64001f");
        assert_eq!(cfg.profile_name(), "High");
    }

    #[test]
    fn truncated_records_and_sps_are_errors_not_panics() {
        let record = avcc_record(SPS_720P_HIGH, &[0x68, 0xeb]);
        for cut in 0..record.len() {
            let _ = parse_avcc(record.slice(..cut));
        }
        for cut in 0..SPS_720P_HIGH.len() {
            let _ = parse_sps(&SPS_720P_HIGH[..cut]);
        }
        assert!(parse_avcc(Bytes::from_static(&[1, 2, 3])).is_err());
        assert_eq!(
            parse_avcc(Bytes::from_static(&[2, 0, 0, 0, 0xff, 0xe0, 0])),
            Err(H264Error::RecordVersion(2))
        );
    }

    /// Writes SPS fields MSB first, as a publisher would (no emulation prevention needed for
    /// the values used here).
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn bits(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }

        fn ue(&mut self, v: u64) -> &mut Self {
            let code = v + 1;
            let len = 64 - code.leading_zeros();
            self.bits(len - 1, 0).bits(len, code)
        }

        fn nal(&mut self) -> Vec<u8> {
            self.bits(1, 1); // rbsp_stop_one_bit
            let mut out = vec![0x67];
            out.extend(self.bits.chunks(8).map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
            }));
            out
        }
    }

    /// A Baseline SPS (4:2:0, frame_mbs_only) with the given size fields and cropping.
    fn baseline_sps(width_mbs_minus1: u64, height_mbs_minus1: u64, crop: [u64; 4]) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 66).bits(8, 0xc0).bits(8, 30); // profile, constraints, level
        w.ue(0).ue(0).ue(0).ue(0); // sps id, log2_max_frame_num, poc type 0, log2_max_poc_lsb
        w.ue(1).bits(1, 0); // max_num_ref_frames, gaps_in_frame_num_allowed
        w.ue(width_mbs_minus1).ue(height_mbs_minus1);
        w.bits(1, 1).bits(1, 1); // frame_mbs_only, direct_8x8_inference
        if crop == [0; 4] {
            w.bits(1, 0);
        } else {
            w.bits(1, 1);
            for c in crop {
                w.ue(c);
            }
        }
        w.bits(1, 0); // vui_parameters_present
        w.nal()
    }

    #[test]
    fn hand_built_sps_round_trips_its_size() {
        let info = parse_sps(&baseline_sps(39, 29, [0; 4])).expect("valid SPS");
        assert_eq!((info.width, info.height), (640, 480));
        let info = parse_sps(&baseline_sps(119, 67, [0, 0, 0, 4])).expect("valid SPS");
        assert_eq!((info.width, info.height), (1920, 1080));
    }

    #[test]
    fn huge_sizes_and_crops_are_errors_not_overflows() {
        let max = u64::from(u32::MAX) - 1; // the largest value a 32-bit Exp-Golomb code holds
        for sps in [
            baseline_sps(max, 29, [0; 4]),
            baseline_sps(39, max, [0; 4]),
            baseline_sps(max, max, [0; 4]),
            baseline_sps(39, 29, [max, max, 0, 0]),
            baseline_sps(39, 29, [0, 0, max, max]),
            baseline_sps(max, max, [max, max, max, max]),
            baseline_sps(1 << 28, 29, [(1 << 31) + 4, 0, 0, 0]),
        ] {
            assert!(
                matches!(parse_sps(&sps), Err(H264Error::SpsInvalid(_))),
                "{sps:02x?}"
            );
        }
    }

    fn check_sps_result(result: Result<SpsInfo, H264Error>) -> Result<(), TestCaseError> {
        if let Ok(info) = result {
            prop_assert!((1..=MAX_DIMENSION).contains(&info.width), "{info:?}");
            prop_assert!((1..=MAX_DIMENSION).contains(&info.height), "{info:?}");
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn random_sps_bytes_give_a_sane_size_or_an_error(nal in proptest::collection::vec(any::<u8>(), 0..64)) {
            check_sps_result(parse_sps(&nal))?;
        }

        #[test]
        fn mutated_x264_sps_give_a_sane_size_or_an_error(
            base in prop_oneof![Just(SPS_720P_HIGH), Just(SPS_240P_BASELINE)],
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut nal = base.to_vec();
            for (at, byte) in edits {
                let i = at.index(nal.len());
                nal[i] = byte;
            }
            check_sps_result(parse_sps(&nal))?;
            check_sps_result(parse_sps(&nal[..cut.index(nal.len() + 1)]))?;
        }

        #[test]
        fn random_sps_fields_give_a_sane_size_or_an_error(
            width in 0..=u64::from(u32::MAX) - 1,
            height in 0..=u64::from(u32::MAX) - 1,
            crop in proptest::array::uniform4(prop_oneof![0..16u64, 0..=u64::from(u32::MAX) - 1]),
        ) {
            check_sps_result(parse_sps(&baseline_sps(width, height, crop)))?;
        }

        #[test]
        fn random_avcc_records_give_a_sane_size_or_an_error(
            record in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..96),
                (proptest::collection::vec(any::<u8>(), 0..64), proptest::collection::vec(any::<u8>(), 0..8))
                    .prop_map(|(sps, pps)| avcc_record(&[&[0x67, 100, 0, 31][..], &sps].concat(), &pps).to_vec()),
            ],
        ) {
            if let Ok(cfg) = parse_avcc(Bytes::from(record)) {
                prop_assert!((1..=MAX_DIMENSION).contains(&cfg.width));
                prop_assert!((1..=MAX_DIMENSION).contains(&cfg.height));
            }
        }
    }
}
