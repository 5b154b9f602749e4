//! H.264 parameter sets: the AVCDecoderConfigurationRecord and the parts of the SPS that
//! tell a viewer what the camera sends (profile, level, resolution).

use bytes::Bytes;

use crate::media::VideoConfig;

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
        avcc: record.clone(),
        sps,
        pps,
        nal_length_size,
        profile_idc: info.profile_idc,
        constraint_flags: info.constraint_flags,
        level_idc: info.level_idc,
        width: info.width,
        height: info.height,
    })
}

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
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
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
    let width = (width_mbs * 16)
        .checked_sub((crop_l + crop_r) * crop_unit_x)
        .ok_or(H264Error::SpsInvalid("horizontal cropping"))?;
    let height = (height_map_units * 16 * frame_height_factor)
        .checked_sub((crop_t + crop_b) * crop_unit_y)
        .ok_or(H264Error::SpsInvalid("vertical cropping"))?;
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
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

/// Removes emulation prevention bytes (00 00 03 → 00 00).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<bool, H264Error> {
        let byte = self.data.get(self.pos / 8).ok_or(H264Error::SpsTruncated)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, H264Error> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// Unsigned Exp-Golomb code.
    fn ue(&mut self) -> Result<u32, H264Error> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(H264Error::SpsInvalid("exp-golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb code.
    fn se(&mut self) -> Result<i64, H264Error> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
