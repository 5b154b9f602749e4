//! A hand-driven RTMP publisher (rml_rtmp's client session) for sending what `ffmpeg` never
//! would: malformed tags and corrupted chunks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

pub struct RawPublisher {
    pub stream: TcpStream,
    session: ClientSession,
}

impl RawPublisher {
    /// Connects, handshakes and publishes `stream_key` on app `live`.
    pub fn publish(addr: SocketAddr, stream_key: &str) -> std::io::Result<RawPublisher> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut hs = Handshake::new(PeerType::Client);
        stream.write_all(&hs.generate_outbound_p0_and_p1().map_err(other)?)?;
        let mut buf = [0u8; 8192];
        let leftover = loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(other("closed during handshake"));
            }
            match hs.process_bytes(&buf[..n]).map_err(other)? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes)?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream.write_all(&response_bytes)?;
                    break remaining_bytes;
                }
            }
        };
        let (session, initial) = ClientSession::new(ClientSessionConfig::new()).map_err(other)?;
        let mut p = RawPublisher { stream, session };
        p.send(initial)?;
        if !leftover.is_empty() {
            p.feed(&leftover)?;
        }
        let r = p.session.request_connection("live".into()).map_err(other)?;
        p.send(vec![r])?;
        p.wait_for(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))?;
        let r = p
            .session
            .request_publishing(stream_key.into(), PublishRequestType::Live)
            .map_err(other)?;
        p.send(vec![r])?;
        p.wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))?;
        Ok(p)
    }

    /// Sends one video message with the given FLV tag body.
    pub fn video(&mut self, body: Bytes, timestamp: u32) -> std::io::Result<()> {
        let r = self
            .session
            .publish_video_data(body, RtmpTimestamp::new(timestamp), false)
            .map_err(other)?;
        self.send(vec![r])
    }

    /// Sends one audio message with the given FLV tag body.
    pub fn audio(&mut self, body: Bytes, timestamp: u32) -> std::io::Result<()> {
        let r = self
            .session
            .publish_audio_data(body, RtmpTimestamp::new(timestamp), false)
            .map_err(other)?;
        self.send(vec![r])
    }

    fn send(&mut self, results: Vec<ClientSessionResult>) -> std::io::Result<()> {
        for r in results {
            if let ClientSessionResult::OutboundResponse(p) = r {
                self.stream.write_all(&p.bytes)?;
            }
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8]) -> std::io::Result<Vec<ClientSessionEvent>> {
        let results = self.session.handle_input(bytes).map_err(other)?;
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.stream.write_all(&p.bytes)?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    fn wait_for(&mut self, want: impl Fn(&ClientSessionEvent) -> bool) -> std::io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(other("closed by the server"));
            }
            let events = self.feed(&buf[..n])?;
            if events.iter().any(&want) {
                return Ok(());
            }
        }
    }

    /// True once the server has closed the connection (reads return EOF or reset).
    pub fn is_closed_by_server(&mut self) -> bool {
        is_closed_by_peer(&mut self.stream)
    }
}

/// True once the peer has closed `stream`: a read returns EOF or an error other than a
/// timeout. Drains what the peer sent meanwhile; false when it is still open after 200 ms.
pub fn is_closed_by_peer(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn other(e: impl std::fmt::Debug) -> std::io::Error {
    std::io::Error::other(format!("{e:?}"))
}
