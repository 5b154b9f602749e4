"""The pool side of the frame protocol's network transport (docs/frame-protocol.md), standard
library only.

In a pool, Kamera workers dial *in*: one TCP connection per camera. Each connection says
``hello`` with its token and the protocol versions it speaks; the pool checks the token (in
constant time), chooses a version and answers ``welcome``, or ``error`` and closes, before
any frame. Then ``frame`` lines arrive, each followed by its JPEG bytes, and the pool acks
each frame with its detections, exactly as a sidecar does on the Unix socket.

- :func:`serve` calls ``callback(stream_key, frame_path, frame_data)`` per frame, in per-camera
  lanes (:mod:`kamera.lanes`): the classic program runs unchanged. ``frame_path`` is a file in
  a private temporary directory, deleted once the callback returned.
- :func:`serve_batch` forms batches across cameras and calls ``fn(frames)`` once per batch;
  each ack carries ``batch_size`` and ``inference_seconds``, which the worker exports as
  ``kamera_pool_batch_size`` and ``kamera_pool_inference_seconds``.

Bounded: connections (``max_connections``), lines (256 KiB), frames (``max_frame_bytes``), and
frames queued (the worker's credits: a connection sending more than ``max_in_flight``
unacknowledged frames is closed).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import select
import shutil
import socket as _socket
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

from .client import Callback, CallbackResult, ProtocolError, _default_name, _jsonable, ack_message
from .lanes import DEFAULT_MAX_THREADS, LOG_INTERVAL_SECONDS, LaneRunner, _Throttle

log = logging.getLogger("kamera.pool")

#: Versions of the network transport this SDK speaks.
VERSIONS = (1,)
DEFAULT_LISTEN = "0.0.0.0:7700"
MAX_LINE = 256 * 1024
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 256
#: A connection must say hello within this.
HELLO_TIMEOUT = 10.0
#: Nothing from a worker for this long (it pings every 5 s): the connection is dead.
IDLE_TIMEOUT = 60.0
#: A write to a worker blocked this long: the connection is dead.
WRITE_TIMEOUT = 10.0
#: Summary of the pool's throughput in the log, this often.
STATS_INTERVAL = 60.0
SERVER = "kamera-python/0.1.0"

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")

BatchFn = Callable[[List["Frame"]], Sequence[CallbackResult]]
"""``fn(frames)`` returns one result per frame, in order (see :func:`serve_batch`)."""


@dataclass(frozen=True)
class Frame:
    """A frame as a pool receives it."""

    camera: str
    seq: int
    captured_at: str
    pts_ms: int
    width: int
    height: int
    data: bytes


class Refused(ProtocolError):
    """A hello the pool does not accept; ``code`` goes into the ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


# --- pure parts: hello, welcome, frame headers ------------------------------------------

def choose_version(offered: Any) -> int:
    """The newest version both sides speak."""
    if not isinstance(offered, list) or not all(isinstance(v, int) for v in offered):
        raise Refused("bad_request", "hello.versions must be a list of integers")
    common = sorted(set(offered) & set(VERSIONS))
    if not common:
        raise Refused("unsupported_version", f"this pool speaks versions {list(VERSIONS)}, the worker offered {offered}")
    return common[-1]


def check_hello(msg: Any, expected_token: Optional[str]) -> Tuple[str, int]:
    """Validates a worker's hello: (camera, chosen version), or raises :class:`Refused`.

    The token is compared in constant time; with no expected token any worker is accepted.
    """
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise Refused("bad_request", "the first message must be a hello")
    if expected_token is not None:
        given = msg.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected_token.encode()):
            raise Refused("unauthorized", "invalid or missing token")
    version = choose_version(msg.get("versions"))
    camera = msg.get("camera")
    if not isinstance(camera, str) or not _CAMERA_NAME.match(camera):
        raise Refused("bad_request", "hello.camera must be a camera name (1-64 of a-z A-Z 0-9 - _ .)")
    return camera, version


def frame_header(msg: Dict[str, Any], camera: str, max_frame_bytes: int) -> Tuple[int, Dict[str, Any]]:
    """The JPEG length announced by a ``frame`` line, checked against the limit and the
    connection's camera."""
    length = msg.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise Refused("bad_request", "frame.length must be a non-negative integer")
    if length > max_frame_bytes:
        raise Refused("too_large", f"frame of {length} bytes exceeds this pool's limit of {max_frame_bytes}")
    if msg.get("camera") != camera:
        raise Refused("bad_request", f"frame for camera {msg.get('camera')!r} on the connection of {camera!r}")
    if not isinstance(msg.get("seq"), int):
        raise Refused("bad_request", "frame.seq must be an integer")
    return length, msg


def parse_listen(listen: str) -> Tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} must be HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


# --- connections ---------------------------------------------------------------------------

class _Conn:
    """One worker connection: reads hello and frames on its own thread, writes acks under a lock."""

    def __init__(self, server: "PoolServer", sock: _socket.socket, peer: str, ident: int) -> None:
        self.server, self.sock, self.peer, self.id = server, sock, peer, ident
        self.camera = ""
        self.buf = bytearray()
        self.write_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.in_flight = 0
        self.closed = threading.Event()
        self.max_in_flight = server.max_in_flight
        # poll(), not select(): a process with many files open has descriptors past 1024.
        self.poller = select.poll() if hasattr(select, "poll") else None
        if self.poller is not None:
            self.poller.register(sock, select.POLLIN)

    # reading

    def _fill(self, deadline: float) -> None:
        """Reads more bytes; raises at end of stream, on ``stop`` or past ``deadline``."""
        while True:
            if self.server.stop.is_set() or self.closed.is_set():
                raise EOFError("closing")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message in time")
            wait = min(remaining, 0.5)
            if self.poller is not None:
                ready = bool(self.poller.poll(int(wait * 1000) + 1))
            else:
                ready = bool(select.select([self.sock], [], [], wait)[0])
            if ready:
                break
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            raise EOFError("the worker closed the connection")
        self.buf += chunk

    def read_line(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            newline = self.buf.find(b"\n")
            if newline >= 0:
                line = bytes(self.buf[:newline])
                del self.buf[: newline + 1]
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError as e:
                    raise Refused("bad_request", f"invalid JSON: {e}") from e
                if not isinstance(msg, dict):
                    raise Refused("bad_request", "each line must be a JSON object")
                return msg
            if len(self.buf) > MAX_LINE:
                raise Refused("too_large", f"line longer than {MAX_LINE} bytes")
            self._fill(deadline)

    def read_exact(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    # writing

    def send(self, msg: Dict[str, Any]) -> None:
        line = json.dumps(msg, default=_jsonable, separators=(",", ":")).encode() + b"\n"
        with self.write_lock:
            if self.closed.is_set():
                raise OSError("connection closed")
            self.sock.sendall(line)

    def ack(self, frame: Frame, result: CallbackResult, **extra: Any) -> None:
        """Acks ``frame`` (its credit comes back); a closed connection is not an error."""
        with self.state_lock:
            self.in_flight = max(0, self.in_flight - 1)
        msg = ack_message(frame, result)
        msg.update(extra)
        try:
            try:
                self.send(msg)
            except (TypeError, ValueError) as e:
                log.warning("camera %s: detections are not JSON (%s); acking without them", frame.camera, e)
                self.send(ack_message(frame, None))
        except OSError as e:
            log.debug("camera %s: could not ack frame %d: %s", frame.camera, frame.seq, e)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.server.sink.forget(self)
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # the conversation

    def run(self) -> None:
        try:
            self._converse()
        except Refused as e:
            self.server.refusal(self.peer, e)
            try:
                self.sock.settimeout(1.0)
                self.send({"type": "error", "code": e.code, "message": e.message})
            except OSError:
                pass
        except (EOFError, TimeoutError, OSError) as e:
            if self.camera and not self.server.stop.is_set():
                log.info("camera %s (%s): connection ended: %s", self.camera, self.peer, e)
        finally:
            self.close()
            self.server.forget(self)

    def _converse(self) -> None:
        self.sock.settimeout(WRITE_TIMEOUT)
        hello = self.read_line(HELLO_TIMEOUT)
        camera, version = check_hello(hello, self.server.expected_token())
        self.camera = camera
        welcome: Dict[str, Any] = {
            "type": "welcome", "version": version, "processor": self.server.processor,
            "max_in_flight": self.max_in_flight, "fps": self.server.fps, "server": SERVER,
        }
        self.send(welcome)
        log.info("camera %s connected from %s (%s)", camera, self.peer, hello.get("worker", "a worker"))
        while True:
            msg = self.read_line(IDLE_TIMEOUT)
            kind = msg.get("type")
            if kind == "frame":
                length, header = frame_header(msg, camera, self.server.max_frame_bytes)
                data = self.read_exact(length, WRITE_TIMEOUT + length / 1e6)
                with self.state_lock:
                    if self.in_flight >= self.max_in_flight:
                        raise Refused("bad_request", f"more than max_in_flight={self.max_in_flight} frames unacknowledged")
                    self.in_flight += 1
                frame = Frame(
                    camera=camera, seq=int(header["seq"]), captured_at=str(header.get("captured_at", "")),
                    pts_ms=_int(header.get("pts_ms")), width=_int(header.get("width")),
                    height=_int(header.get("height")), data=data,
                )
                self.server.sink.submit(self, frame)
            elif kind == "ping":
                self.send({"type": "pong"})
            elif kind == "bye":
                log.info("camera %s: the worker is going away (%s)", camera, msg.get("reason", ""))
                return
            elif kind == "hello":
                raise Refused("bad_request", "a second hello")
            # Unknown message types are ignored (newer workers).


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


# --- sinks: where frames go ----------------------------------------------------------------

class _CallbackSink:
    """Per-camera lanes calling the classic callback with a file path."""

    def __init__(self, callback: Callback, concurrency: int, max_threads: int) -> None:
        self.callback = callback
        self.dir = Path(tempfile.mkdtemp(prefix="kamera-pool-"))  # mode 0700
        self.lanes: LaneRunner[int, Tuple[_Conn, Frame]] = LaneRunner(
            self._handle, concurrency, on_replaced=lambda job: job[0].ack(job[1], None),
            max_threads=max(concurrency, max_threads), name="kamera-pool",
        )

    def submit(self, conn: _Conn, frame: Frame) -> None:
        self.lanes.submit(conn.id, (conn, frame))

    def forget(self, conn: _Conn) -> None:
        """The connection closed: its frames still waiting are skipped (see ``_handle``)."""

    def _handle(self, job: Tuple[_Conn, Frame]) -> None:
        conn, frame = job
        if conn.closed.is_set():
            return  # its ack cannot reach the worker; the next connection gets fresh frames
        folder = self.dir / frame.camera
        folder.mkdir(exist_ok=True)
        path = folder / f"{conn.id}-{frame.seq:08d}.jpg"
        result: CallbackResult = None
        try:
            path.write_bytes(frame.data)
            try:
                result = self.callback(frame.camera, path, frame.data)
            except Exception:  # a broken callback must not stop the stream
                log.exception("camera %s: frame callback raised (frame %d)", frame.camera, frame.seq)
        except OSError as e:
            log.warning("camera %s: cannot write frame %d to %s: %s", frame.camera, frame.seq, path, e)
        finally:
            try:
                path.unlink()
            except OSError:
                pass
        conn.ack(frame, result)

    def close(self) -> None:
        self.lanes.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _BatchSink:
    """One model thread: takes up to ``max_batch`` frames across cameras, waiting at most
    ``max_wait`` after the first, and calls ``fn`` once per batch."""

    def __init__(self, fn: BatchFn, max_batch: int, max_wait: float) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max(0.0, max_wait)
        self.cond = threading.Condition()
        # Bounded by the credits: every connection holds at most max_in_flight frames here.
        self.queue: Deque[Tuple[float, _Conn, Frame]] = deque()
        self.closed = False
        self.stats = BatchStats()
        self.errors = _Throttle(LOG_INTERVAL_SECONDS)
        self.thread = threading.Thread(target=self._run, name="kamera-pool-batch", daemon=True)
        self.thread.start()

    def submit(self, conn: _Conn, frame: Frame) -> None:
        with self.cond:
            self.queue.append((time.monotonic(), conn, frame))
            self.cond.notify()

    def forget(self, conn: _Conn) -> None:
        """The connection closed: its queued frames are dropped (their acks could not go out)."""
        with self.cond:
            self.cond.notify()

    def _take(self) -> Optional[List[Tuple[float, _Conn, Frame]]]:
        with self.cond:
            while True:
                self._drop_closed()
                if self.closed:
                    return None
                if not self.queue:
                    self.cond.wait(0.5)
                    continue
                due = self.queue[0][0] + self.max_wait
                remaining = due - time.monotonic()
                if len(self.queue) >= self.max_batch or remaining <= 0:
                    return [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]
                self.cond.wait(remaining)

    def _drop_closed(self) -> None:
        if any(c.closed.is_set() for _, c, _ in self.queue):
            self.queue = deque(item for item in self.queue if not item[1].closed.is_set())

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            frames = [f for _, _, f in batch]
            started = time.monotonic()
            results: Sequence[CallbackResult] = [None] * len(frames)
            try:
                got = self.fn(frames)
                if got is None or len(got) != len(frames):
                    raise ValueError(f"returned {None if got is None else len(got)} results for {len(frames)} frames")
                results = got
            except Exception as e:  # a broken model must not stop the pool
                if self.errors.hit(time.monotonic()):
                    log.exception("batch callback failed (%s); frames acked without detections", e)
            took = time.monotonic() - started
            self.stats.record(len(frames), took)
            for (_, conn, frame), result in zip(batch, results):
                conn.ack(frame, result, batch_size=len(frames), inference_seconds=round(took, 6))

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(timeout=30)


class BatchStats:
    """Batches and frames since the last summary (logged every :data:`STATS_INTERVAL`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset_at = time.monotonic()
        self.batches = self.frames = self.largest = 0
        self.busy = 0.0

    def record(self, size: int, seconds: float) -> None:
        with self.lock:
            self.batches += 1
            self.frames += size
            self.largest = max(self.largest, size)
            self.busy += seconds
            now = time.monotonic()
            if now - self.reset_at < STATS_INTERVAL:
                return
            span = now - self.reset_at
            log.info("pool: %.1f frames/s in %d batches (mean %.1f, largest %d), model busy %.0f%%",
                     self.frames / span, self.batches, self.frames / self.batches, self.largest,
                     100 * self.busy / span)
            self.reset_at, self.batches, self.frames, self.largest, self.busy = now, 0, 0, 0, 0.0


# --- the server ----------------------------------------------------------------------------

class PoolServer:
    """Accepts workers on ``listen`` and hands their frames to ``sink`` until ``stop``."""

    def __init__(
        self,
        sink: Any,
        listen: str,
        *,
        token: Optional[str],
        token_file: Optional[Path],
        processor: str,
        fps: Optional[float],
        max_in_flight: int,
        max_connections: int,
        max_frame_bytes: int,
        stop: threading.Event,
    ) -> None:
        self.sink, self.stop = sink, stop
        self.token, self.token_file = token, token_file
        self.processor, self.fps = processor, fps
        self.max_in_flight = max(1, min(int(max_in_flight), 64))
        self.max_connections, self.max_frame_bytes = max_connections, max_frame_bytes
        self.conns: Dict[int, _Conn] = {}
        self.lock = threading.Lock()
        self.serial = 0
        self.refusals = _Throttle(LOG_INTERVAL_SECONDS)
        host, port = parse_listen(listen)
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        self.listener = _socket.socket(family, _socket.SOCK_STREAM)
        self.listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.address = self.listener.getsockname()[:2]

    def expected_token(self) -> Optional[str]:
        """The token workers must present, read at each connection (a rotated Secret works);
        ``None`` = any worker is accepted. A configured but unreadable token file refuses all."""
        if self.token is not None:
            return self.token
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text().strip()
        except OSError as e:
            log.error("token file %s: %s; refusing every worker", self.token_file, e)
            return "\0unreadable"  # matches nothing a worker can send in JSON text
        return token or "\0empty"

    def refusal(self, peer: str, e: Refused) -> None:
        n = self.refusals.hit(time.monotonic())
        if n:
            log.warning("refused %d connection(s), latest from %s: %s", n, peer, e)

    def forget(self, conn: _Conn) -> None:
        with self.lock:
            self.conns.pop(conn.id, None)

    def serve_forever(self) -> None:
        log.info("pool %r listening on %s:%d (max_in_flight %d per camera)", self.processor, *self.address, self.max_in_flight)
        if self.token is None and self.token_file is None:
            log.warning("no token configured: any worker that reaches this port may send frames")
        self.listener.settimeout(0.5)
        try:
            while not self.stop.is_set():
                try:
                    sock, addr = self.listener.accept()
                except _socket.timeout:
                    continue
                except OSError as e:
                    log.warning("accept failed: %s", e)
                    self.stop.wait(0.1)
                    continue
                peer = f"{addr[0]}:{addr[1]}"
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                with self.lock:
                    full = len(self.conns) >= self.max_connections
                    if not full:
                        self.serial += 1
                        conn = _Conn(self, sock, peer, self.serial)
                        self.conns[conn.id] = conn
                if full:
                    self.refusal(peer, Refused("too_many_connections", f"this pool serves at most {self.max_connections}"))
                    _refuse(sock, "too_many_connections", f"this pool serves at most {self.max_connections} connections")
                    continue
                threading.Thread(target=conn.run, name=f"kamera-pool-conn-{conn.id}", daemon=True).start()
        finally:
            self.listener.close()
            with self.lock:
                conns = list(self.conns.values())
            for c in conns:
                try:
                    c.send({"type": "bye", "reason": "shutdown"})
                except OSError:
                    pass
                c.close()
            self.sink.close()


def _refuse(sock: _socket.socket, code: str, message: str) -> None:
    try:
        sock.settimeout(1.0)
        sock.sendall(json.dumps({"type": "error", "code": code, "message": message}).encode() + b"\n")
    except OSError:
        pass
    finally:
        sock.close()


def _settings(
    listen: Optional[str], token_file: Optional[str], processor: Optional[str],
    fps: Optional[float], max_in_flight: Optional[int],
) -> Tuple[str, Optional[Path], str, Optional[float], int]:
    listen = listen or os.environ.get("KAMERA_POOL_LISTEN") or DEFAULT_LISTEN
    token_path = token_file or os.environ.get("KAMERA_POOL_TOKEN_FILE") or None
    if fps is None and os.environ.get("KAMERA_FPS"):
        fps = float(os.environ["KAMERA_FPS"])
    if max_in_flight is None:
        max_in_flight = int(os.environ.get("KAMERA_MAX_IN_FLIGHT", "1") or 1)
    return listen, Path(token_path) if token_path else None, (processor or _default_name())[:64], fps, max_in_flight


def serve(
    callback: Callback,
    listen: Optional[str] = None,
    *,
    token: Optional[str] = None,
    token_file: Optional[str] = None,
    processor: Optional[str] = None,
    fps: Optional[float] = None,
    concurrency: Optional[int] = None,
    max_threads: Optional[int] = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    stop: Optional[threading.Event] = None,
) -> None:
    """Runs a pool: calls ``callback(stream_key, frame_path, frame_data)`` for every frame that
    workers send, each camera in its own lane (as :func:`kamera.run`), and acks it with the
    detections the callback returns. Returns when ``stop`` is set.

    - ``listen``: ``HOST:PORT`` (default ``$KAMERA_POOL_LISTEN``, else ``0.0.0.0:7700``).
    - ``token`` / ``token_file``: what workers must present (default: the file
      ``$KAMERA_POOL_TOKEN_FILE``, re-read at each connection). Neither = no check.
    - ``concurrency``: frames of one camera in flight and handled at once (the worker's
      credits; default ``$KAMERA_MAX_IN_FLIGHT``, else 1). ``fps`` (default ``$KAMERA_FPS``):
      frames per second wanted per camera. ``processor``: the name in the pool's logs.
    """
    listen, path, name, fps, in_flight = _settings(listen, token_file, processor, fps, concurrency)
    sink = _CallbackSink(callback, max(1, min(in_flight, 64)), DEFAULT_MAX_THREADS if max_threads is None else max_threads)
    _run_server(sink, listen, token, path, name, fps, in_flight, max_connections, max_frame_bytes, stop)


def serve_batch(
    fn: BatchFn,
    max_batch: int = 16,
    max_wait: float = 0.05,
    listen: Optional[str] = None,
    *,
    token: Optional[str] = None,
    token_file: Optional[str] = None,
    processor: Optional[str] = None,
    fps: Optional[float] = None,
    max_in_flight: Optional[int] = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    stop: Optional[threading.Event] = None,
) -> None:
    """Runs a batching pool: ``fn(frames)`` gets a list of :class:`Frame` (across cameras, at
    most ``max_batch``, collected for at most ``max_wait`` seconds after the first arrived) and
    returns one result per frame, in order: ``None``, a list of detections, or a dict (as a
    :func:`kamera.run` callback). Each frame is acked with its result plus ``batch_size`` and
    ``inference_seconds``. ``fn`` runs on one thread, one batch at a time; if it raises or
    returns the wrong number of results, the batch is acked without detections and logged.
    Other arguments as :func:`serve`.
    """
    listen, path, name, fps, in_flight = _settings(listen, token_file, processor, fps, max_in_flight)
    sink = _BatchSink(fn, max_batch, max_wait)
    _run_server(sink, listen, token, path, name, fps, in_flight, max_connections, max_frame_bytes, stop)


def _run_server(
    sink: Any, listen: str, token: Optional[str], token_file: Optional[Path], processor: str,
    fps: Optional[float], max_in_flight: int, max_connections: int, max_frame_bytes: int,
    stop: Optional[threading.Event],
) -> None:
    stop = stop or threading.Event()
    try:
        server = PoolServer(
            sink, listen, token=token, token_file=token_file, processor=processor, fps=fps,
            max_in_flight=max_in_flight, max_connections=max_connections,
            max_frame_bytes=max_frame_bytes, stop=stop,
        )
    except BaseException:
        sink.close()
        raise
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stop.set()


def in_pool() -> bool:
    """True inside a pool pod (the operator sets ``KAMERA_POOL_LISTEN``)."""
    return bool(os.environ.get("KAMERA_POOL_LISTEN"))


__all__: Iterable[str] = ["BatchFn", "BatchStats", "Frame", "PoolServer", "Refused", "in_pool", "serve", "serve_batch"]
