//! Kamera's media worker. Data flows one way, per camera:
//! RTMP session → demux → stream hub → independent consumers (LL-HLS, recording, frames).

pub mod config;
