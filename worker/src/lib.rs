//! Kamera's media worker. Data flows one way, per camera:
//! RTMP session or RTSP pull → demux → stream hub → independent consumers (LL-HLS, recording, frames).

pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod drops;
pub mod fmp4;
pub mod frames;
pub mod fuzzing;
pub mod hls;
pub mod http;
pub mod hub;
pub mod lifecycle;
pub mod media;
pub mod metrics;
pub mod record;
pub mod rtmp;
pub mod rtsp;
pub mod stage;
pub mod stats;
