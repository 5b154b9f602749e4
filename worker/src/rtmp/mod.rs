//! RTMP ingest: the TCP server, one session task per publisher, and the demuxer that turns
//! FLV messages into the hub's access units.

mod bits;
pub mod demux;
pub mod feed;
pub mod flv;
pub mod h264;
pub mod h265;
pub mod server;
pub mod session;
pub mod timeline;
