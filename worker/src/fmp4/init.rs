//! The init segment (`ftyp` + `moov`): codec configuration and timescales, no samples.
//! Built once per session from the hub's `StreamInfo`; fragments refer to it by track id.

use mp4_atom::{
    esds, Audio, Avc1, Avcc, Codec, Dinf, Dref, Esds, Ftyp, Hdlr, Hvc1, HvcCArray, Hvcc, Mdhd,
    Mdia, Minf, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tkhd, Trak, Trex, Url, Visual,
    Vmhd,
};

use super::{Fmp4Error, AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::media::{AudioConfig, StreamInfo, VideoCodec, VideoConfig};

/// Serialises `ftyp` + `moov` for the tracks present in `info`.
pub(super) fn build(info: &StreamInfo) -> Result<Vec<u8>, Fmp4Error> {
    if info.video.is_none() && info.audio.is_none() {
        return Err(Fmp4Error::NoTracks);
    }
    let mut brands = vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()];
    if info
        .video
        .as_ref()
        .is_some_and(|v| matches!(v.codec, VideoCodec::H264 { .. }))
    {
        brands.push(b"avc1".into());
    }
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: brands,
    };

    let mut trak = Vec::new();
    let mut trex = Vec::new();
    if let Some(video) = &info.video {
        trak.push(video_trak(video)?);
        trex.push(trex_for(VIDEO_TRACK_ID));
    }
    if let Some(audio) = &info.audio {
        trak.push(audio_trak(audio));
        trex.push(trex_for(AUDIO_TRACK_ID));
    }
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: AUDIO_TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Default::default()
    };

    let mut out = Vec::with_capacity(1024);
    mp4_atom::Encode::encode(&ftyp, &mut out).map_err(|e| Fmp4Error::Encode("ftyp", e))?;
    mp4_atom::Encode::encode(&moov, &mut out).map_err(|e| Fmp4Error::Encode("moov", e))?;
    Ok(out)
}

fn trex_for(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        default_sample_duration: 0,
        default_sample_size: 0,
        default_sample_flags: 0,
    }
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    }
}

fn stbl(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        // Fragmented files keep their sample tables empty; samples live in `trun`s.
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn video_trak(video: &VideoConfig) -> Result<Trak, Fmp4Error> {
    let too_large = || Fmp4Error::Dimensions {
        width: video.width,
        height: video.height,
    };
    let width = u16::try_from(video.width).map_err(|_| too_large())?;
    let height = u16::try_from(video.height).map_err(|_| too_large())?;
    let visual = Visual {
        data_reference_index: 1,
        width,
        height,
        ..Default::default()
    };
    let entry: Codec = match video.codec {
        VideoCodec::H264 { .. } => Avc1 {
            visual,
            avcc: avcc(video),
            btrt: None,
            colr: None,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: None,
        }
        .into(),
        // `hvc1`, not `hev1`: every parameter set is in the `hvcC` (Apple's players require
        // `hvc1` for HLS).
        VideoCodec::H265 { .. } => Hvc1 {
            visual,
            hvcc: hvcc(video),
            ..Default::default()
        }
        .into(),
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "Kamera Video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: stbl(entry),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// The `avcC`: the record exactly as the encoder sent it when it parses (it may carry the
/// high-profile extension); otherwise rebuilt from the parsed parameter sets.
fn avcc(video: &VideoConfig) -> Avcc {
    if let Ok(avcc) = <Avcc as mp4_atom::Atom>::decode_body(&mut video.record.as_ref()) {
        return avcc;
    }
    let (profile, compatibility, level) = match video.codec {
        VideoCodec::H264 {
            profile_idc,
            constraint_flags,
            level_idc,
        } => (profile_idc, constraint_flags, level_idc),
        VideoCodec::H265 { .. } => (0, 0, 0),
    };
    Avcc {
        configuration_version: 1,
        avc_profile_indication: profile,
        profile_compatibility: compatibility,
        avc_level_indication: level,
        length_size: video.nal_length_size,
        sequence_parameter_sets: video.sps.iter().map(|s| s.to_vec()).collect(),
        picture_parameter_sets: video.pps.iter().map(|p| p.to_vec()).collect(),
        ext: None,
    }
}

/// The `hvcC`: the record as the encoder (or retina) sent it when it parses, SEI arrays
/// included; otherwise rebuilt from the declared profile and the parsed parameter sets.
fn hvcc(video: &VideoConfig) -> Hvcc {
    if let Ok(hvcc) = <Hvcc as mp4_atom::Atom>::decode_body(&mut video.record.as_ref()) {
        return hvcc;
    }
    let mut hvcc = Hvcc::new();
    if let VideoCodec::H265 {
        profile_space,
        high_tier,
        profile_idc,
        compatibility_flags,
        constraint_flags,
        level_idc,
    } = video.codec
    {
        hvcc.general_profile_space = profile_space;
        hvcc.general_tier_flag = high_tier;
        hvcc.general_profile_idc = profile_idc;
        hvcc.general_profile_compatibility_flags = compatibility_flags.to_be_bytes();
        hvcc.general_constraint_indicator_flags = constraint_flags;
        hvcc.general_level_idc = level_idc;
    }
    hvcc.chroma_format_idc = 1;
    hvcc.length_size_minus_one = video.nal_length_size.saturating_sub(1);
    hvcc.arrays = [(32, &video.vps), (33, &video.sps), (34, &video.pps)]
        .into_iter()
        .map(|(nal_unit_type, sets)| HvcCArray {
            completeness: true,
            nal_unit_type,
            nalus: sets.iter().map(|s| s.to_vec()).collect(),
        })
        .collect();
    hvcc
}

fn audio_trak(audio: &AudioConfig) -> Trak {
    let asc = audio.asc.as_ref();
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(audio.channels.max(1)),
            sample_size: 16,
            // The field is 16.16 fixed point; rates above 65535 Hz are signalled by the ASC only.
            sample_rate: u16::try_from(audio.sample_rate).unwrap_or(0).into(),
        },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: AUDIO_TRACK_ID as u16,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40, // MPEG-4 Audio
                    stream_type: 5,               // audio stream
                    up_stream: 0,
                    buffer_size_db: Default::default(),
                    max_bitrate: 0,
                    avg_bitrate: 0,
                    dec_specific: Some(esds::DecoderSpecific {
                        // Only used when `raw` is empty; `raw` is written verbatim.
                        profile: audio.object_type,
                        freq_index: asc
                            .first()
                            .zip(asc.get(1))
                            .map(|(a, b)| ((a & 0x07) << 1) | (b >> 7))
                            .unwrap_or(4),
                        chan_conf: audio.channels,
                        raw: asc.to_vec(),
                    }),
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: audio.sample_rate.max(1),
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "Kamera Audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: stbl(mp4a.into()),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
