//! The frame socket: accepts processors on a Unix stream socket and runs one task per
//! connection, reading hello/acks and writing frame notifications (protocol.rs).
//!
//! A connection that sends garbage, a line longer than [`MAX_LINE`], no hello within
//! [`HELLO_TIMEOUT`], stops reading for [`WRITE_TIMEOUT`], or holds frames without a word for
//! [`HANG_TIMEOUT`] is closed with a log line; nothing it does reaches another connection.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::dispatch::{Dispatcher, OUTBOUND_QUEUE};
use super::protocol::{self, HelloError, Inbound, LineError, Outbound, MAX_LINE, VERSION};

pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A processor holding frames that sends nothing for this long is considered hung. Generous,
/// because a model on a CPU may legitimately take many seconds per frame.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections beyond this are refused (each costs a task and a queue).
pub const MAX_CONNECTIONS: usize = 256;
/// How often lag gauges are brought up to date.
const LAG_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("frame socket {path}: another worker is serving it")]
    InUse { path: PathBuf },
    #[error("frame socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("invalid message: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error("the first message must be a hello")]
    ExpectedHello,
    #[error("a second hello")]
    SecondHello,
    #[error("{0}")]
    Hello(#[from] HelloError),
    #[error("not reading: a write blocked for {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    #[error("hung: frames in flight and nothing received for {HANG_TIMEOUT:?}")]
    Hung,
}

/// Binds `path`, replacing a stale socket file left by a worker that died; refuses if a
/// live worker answers on it.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let bind_err = |source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(bind_err)?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    UnixListener::bind(path).map_err(bind_err)
}

/// What the worker tells every processor in its welcome.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub worker: String,
    pub fps: f64,
}

/// Accepts processors until `shutdown`, then says goodbye to each and removes the socket.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    dispatcher: Arc<Dispatcher>,
    welcome: Welcome,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    let mut lag = tokio::time::interval(LAG_REFRESH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if conns.len() >= MAX_CONNECTIONS {
                        warn!(limit = MAX_CONNECTIONS, "frame socket: too many processors; refusing one");
                        continue;
                    }
                    conns.spawn(connection(
                        stream,
                        dispatcher.clone(),
                        welcome.clone(),
                        shutdown.child_token(),
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "frame socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = lag.tick() => dispatcher.refresh_lag(SystemTime::now()),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&path);
}

async fn connection(
    stream: UnixStream,
    dispatcher: Arc<Dispatcher>,
    welcome: Welcome,
    shutdown: CancellationToken,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();

    let hello = tokio::select! {
        _ = shutdown.cancelled() => return,
        h = timeout(HELLO_TIMEOUT, read_hello(&mut reader, &mut buf)) => h,
    };
    let hello = match hello {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            warn!(error = %e, "frame socket: processor refused");
            let _ = say(
                &mut write,
                &Outbound::Error {
                    message: e.to_string(),
                },
            )
            .await;
            return;
        }
        Err(_) => {
            warn!(error = %ConnError::HelloTimeout, "frame socket: processor refused");
            return;
        }
    };
    let name = hello.processor.clone();
    info!(
        processor = %name,
        cameras = ?hello.cameras,
        max_in_flight = hello.max_in_flight,
        fps = ?hello.fps,
        "processor connected"
    );
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let id = dispatcher.register(hello, tx);
    let welcome = Outbound::Welcome {
        version: VERSION,
        worker: welcome.worker,
        fps: welcome.fps,
    };

    let result: Result<&'static str, ConnError> = async {
        say(&mut write, &welcome).await?;
        let hang = tokio::time::sleep(HANG_TIMEOUT);
        tokio::pin!(hang);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let bye = Outbound::Bye { reason: "shutdown".into() };
                    let _ = timeout(Duration::from_secs(1), say(&mut write, &bye)).await;
                    return Ok("worker shutting down");
                }
                msg = rx.recv() => {
                    let Some(msg) = msg else { return Ok("hub closed") };
                    say(&mut write, &msg).await?;
                    hang.as_mut().reset(Instant::now() + HANG_TIMEOUT);
                }
                line = read_line(&mut reader, &mut buf) => {
                    let Some(line) = line? else { return Ok("disconnected") };
                    hang.as_mut().reset(Instant::now() + HANG_TIMEOUT);
                    match serde_json::from_slice::<Inbound>(&line)? {
                        Inbound::Ack(ack) => dispatcher.ack(id, &ack.camera, ack.seq, &ack.detections),
                        Inbound::Hello(_) => return Err(ConnError::SecondHello),
                    }
                }
                _ = &mut hang, if dispatcher.has_in_flight(id) => return Err(ConnError::Hung),
            }
        }
    }
    .await;
    dispatcher.unregister(id);
    match result {
        Ok(reason) => info!(processor = %name, reason, "processor disconnected"),
        Err(e) => {
            warn!(processor = %name, error = %e, "processor dropped");
            if !matches!(e, ConnError::WriteTimeout | ConnError::Io(_)) {
                let message = Outbound::Error {
                    message: e.to_string(),
                };
                let _ = timeout(Duration::from_secs(1), say(&mut write, &message)).await;
            }
        }
    }
    debug!(processor = %name, "connection closed");
}

async fn read_hello(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> Result<super::protocol::Hello, ConnError> {
    let line = read_line(reader, buf)
        .await?
        .ok_or(ConnError::ExpectedHello)?;
    match serde_json::from_slice::<Inbound>(&line)? {
        Inbound::Hello(h) => {
            h.validate()?;
            Ok(h)
        }
        Inbound::Ack(_) => Err(ConnError::ExpectedHello),
    }
}

/// Reads one line from a processor (at most [`MAX_LINE`] bytes, without its newline), or `None` at end of stream. Cancel-safe: a partial
/// line stays in `buf` for the next call.
pub(crate) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, ConnError> {
    protocol::read_line(reader, buf, MAX_LINE)
        .await
        .map_err(|e| match e {
            LineError::Io(e) => ConnError::Io(e),
            LineError::TooLong(_) => ConnError::TooLong,
        })
}

async fn say(write: &mut OwnedWriteHalf, msg: &Outbound) -> Result<(), ConnError> {
    match timeout(WRITE_TIMEOUT, write.write_all(msg.to_line().as_bytes())).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ConnError::WriteTimeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_blank_lines_skipped() {
        let data = b"\n{\"a\":1}\nrest".to_vec();
        let mut reader = BufReader::new(&data[..]);
        let mut buf = Vec::new();
        let line = read_line(&mut reader, &mut buf).await.expect("read");
        assert_eq!(line.as_deref(), Some(&b"{\"a\":1}"[..]));
        // A partial line at end of stream is not a message.
        assert!(read_line(&mut reader, &mut buf)
            .await
            .expect("eof")
            .is_none());

        let long = vec![b'x'; MAX_LINE + 10];
        let mut reader = BufReader::new(&long[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut buf).await,
            Err(ConnError::TooLong)
        ));
    }
}
