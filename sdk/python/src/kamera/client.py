"""The processor side of Kamera's frame protocol (version 1), standard library only.

One connection per ``run()``. The worker grants ``concurrency`` credits per camera: at most
that many frames of one camera are being handled at once, and while all are busy the worker
keeps only the newest frame for later (latest wins), so a slow callback never builds a backlog.
Each camera has its own lane (:mod:`kamera.lanes`): the thread reading the socket only hands
frames over, so a slow camera never delays another camera's callbacks or acks.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket as _socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from .lanes import DEFAULT_MAX_THREADS, LaneRunner

log = logging.getLogger("kamera")

PROTOCOL_VERSION = 1
#: Longest line accepted from the worker; anything longer means the peer is not a worker.
MAX_LINE = 1 << 20

Detection = Dict[str, Any]
"""A detection: ``{"label": str, "confidence": float, "box": [x, y, w, h]}``; all optional."""

CallbackResult = Union[None, List[Detection], Dict[str, Any]]
Callback = Callable[[str, Path, bytes], CallbackResult]
"""``callback(stream_key, frame_path, frame_data)``; returns detections (see :func:`run`)."""


class ProtocolError(Exception):
    """The peer on the socket broke the frame protocol or refused this processor."""


@dataclass(frozen=True)
class FrameInfo:
    """A frame notification as sent by the worker."""

    camera: str
    seq: int
    path: Path
    captured_at: str
    pts_ms: int
    width: int
    height: int

    @classmethod
    def from_message(cls, m: Dict[str, Any]) -> "FrameInfo":
        try:
            return cls(
                camera=str(m["camera"]),
                seq=int(m["seq"]),
                path=Path(m["path"]),
                captured_at=str(m.get("captured_at", "")),
                pts_ms=int(m.get("pts_ms", 0)),
                width=int(m.get("width", 0)),
                height=int(m.get("height", 0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"malformed frame message {m!r}: {e}") from e


def default_socket() -> Path:
    """The socket a standalone worker listens on: ``$KAMERA_SOCKET``, else
    ``$KAMERA_FRAME_SOCKET``, else ``<$KAMERA_DATA_DIR or ./data>/frames.sock``."""
    for var in ("KAMERA_SOCKET", "KAMERA_FRAME_SOCKET"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(os.environ.get("KAMERA_DATA_DIR", "data")) / "frames.sock"


def _default_name() -> str:
    if os.environ.get("KAMERA_PROCESSOR"):
        return os.environ["KAMERA_PROCESSOR"]
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return (script or "python")[:64]


def _jsonable(value: Any) -> Any:
    """Lets callbacks return numpy scalars and arrays (as model outputs usually are)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__float__"):
        return float(value)
    return str(value)


def ack_message(frame: FrameInfo, result: CallbackResult) -> Dict[str, Any]:
    """The ack for ``frame``, given what the callback returned.

    ``None`` → no detections; a list → the detections; a dict with ``"label"`` → one
    detection; any other dict is merged into the ack (e.g. ``{"detections": [...]}``).
    """
    msg: Dict[str, Any] = {"type": "ack", "camera": frame.camera, "seq": frame.seq, "detections": []}
    if result is None:
        return msg
    if isinstance(result, dict):
        if "label" in result:
            msg["detections"] = [result]
        else:
            extra = {k: v for k, v in result.items() if k not in ("type", "camera", "seq")}
            msg.update(extra)
    elif isinstance(result, (list, tuple)):
        msg["detections"] = list(result)
    else:
        log.warning("camera %s: callback returned %s; expected None, a list or a dict", frame.camera, type(result).__name__)
    return msg


class _Backoff:
    def __init__(self, initial: float = 0.2, maximum: float = 10.0) -> None:
        self.initial, self.maximum, self.current = initial, maximum, initial

    def reset(self) -> None:
        self.current = self.initial

    def next(self) -> float:
        delay = self.current * random.uniform(0.8, 1.2)
        self.current = min(self.current * 2, self.maximum)
        return delay


class _Connection:
    """One socket session: hello, welcome, then frames in and acks out."""

    def __init__(self, path: Path, hello: Dict[str, Any], stop: threading.Event) -> None:
        self.path = path
        self.stop = stop
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(str(path))
        self.buf = b""
        self.write_lock = threading.Lock()
        self.send(hello)
        welcome = self.read_message(timeout=10.0)
        if welcome is None:
            raise ProtocolError("the worker closed the connection before its welcome")
        if welcome.get("type") == "error":
            raise ProtocolError(f"refused by the worker: {welcome.get('message')}")
        if welcome.get("type") != "welcome":
            raise ProtocolError(f"expected a welcome, got {welcome!r}")
        self.welcome = welcome

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, msg: Dict[str, Any]) -> None:
        line = json.dumps(msg, default=_jsonable, separators=(",", ":")).encode() + b"\n"
        with self.write_lock:
            self.sock.sendall(line)

    def read_message(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The next message; None at end of stream. Checks ``stop`` twice a second."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.stop.is_set():
                return None
            if deadline is not None and time.monotonic() > deadline:
                raise ProtocolError("timed out waiting for the worker")
            if len(self.buf) > MAX_LINE:
                raise ProtocolError("line too long: is this a Kamera frame socket?")
            self.sock.settimeout(0.5)
            try:
                chunk = self.sock.recv(65536)
            except _socket.timeout:
                continue
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.strip():
            return self.read_message(timeout)
        try:
            msg = json.loads(line)
        except ValueError as e:
            raise ProtocolError(f"invalid JSON from the worker: {e}") from e
        if not isinstance(msg, dict):
            raise ProtocolError(f"unexpected message {msg!r}")
        return msg


_Job = Tuple[_Connection, FrameInfo]
"""A frame and the connection its ack goes back on."""


def _handle(conn: _Connection, callback: Callback, frame: FrameInfo) -> None:
    result: CallbackResult = None
    try:
        data = frame.path.read_bytes()
    except OSError as e:
        log.warning("camera %s: cannot read frame %s: %s", frame.camera, frame.path, e)
    else:
        try:
            result = callback(frame.camera, frame.path, data)
        except Exception:  # a broken callback must not stop the stream
            log.exception("camera %s: frame callback raised (frame %d)", frame.camera, frame.seq)
    try:
        conn.send(ack_message(frame, result))
    except (TypeError, ValueError) as e:
        log.warning("camera %s: detections are not JSON (%s); acking without them", frame.camera, e)
        conn.send(ack_message(frame, None))


def run(
    callback: Callback,
    cameras: Iterable[str] = ("*",),
    socket: Union[str, Path, None] = None,
    concurrency: Optional[int] = None,
    fps: Optional[float] = None,
    processor: Optional[str] = None,
    *,
    workers: Optional[int] = None,
    max_threads: Optional[int] = None,
    stop: Optional[threading.Event] = None,
) -> None:
    """Receives frames and calls ``callback(stream_key, frame_path, frame_data)`` for each.

    - ``cameras``: names to receive (``"*"`` = all, ``"lobby-*"`` = a prefix).
    - ``socket``: the worker's frame socket (default: :func:`default_socket`).
    - ``concurrency`` (alias ``workers``): callbacks running at once *per camera*, and the
      worker's credits per camera (``max_in_flight``). Default ``$KAMERA_MAX_IN_FLIGHT`` (the
      FrameProcessor's ``maxInFlight``), else 1; at most 64.
    - ``fps``: frames per second wanted (at most the worker's rate; default: ``$KAMERA_FPS``,
      set by the operator from the FrameProcessor, else all of them).
    - ``processor``: the name shown in metrics (default ``$KAMERA_PROCESSOR`` or the script).
    - ``max_threads``: callbacks running at once across all cameras (default 64, at least
      ``concurrency``). ``1`` makes cameras take turns on one thread, for a model that must
      never run twice at once.

    Each camera has its own lane: its frames start in order, at most ``concurrency`` at once,
    and a slow camera never delays another camera's callbacks or acks. Callbacks run on the
    SDK's threads (started as cameras need them, ended after 10 s without work), never on
    the thread that called ``run``.

    The callback returns ``None``, a list of detections, or a dict (see
    :func:`ack_message`). An exception in it is logged with the camera name and the next
    frame comes. The connection is re-established with backoff whenever it drops; ``run``
    returns only when ``stop`` is set (or raises ``KeyboardInterrupt``), after the callbacks
    running then have returned.

    Inside a pool pod (``$KAMERA_POOL_LISTEN`` set by the operator, and no ``socket`` given),
    ``run`` serves the pool instead (:func:`kamera.serve`): workers connect to it and the
    same callback runs, per camera, on the frames they send.
    """
    if socket is None and os.environ.get("KAMERA_POOL_LISTEN"):
        from .pool import serve

        serve(callback, processor=processor, fps=fps,
              concurrency=workers if workers is not None else concurrency,
              max_threads=max_threads, stop=stop)
        return
    if workers is not None:
        concurrency = workers
    if concurrency is None:
        concurrency = int(os.environ.get("KAMERA_MAX_IN_FLIGHT", "1") or 1)
    concurrency = max(1, min(int(concurrency), 64))
    if fps is None and os.environ.get("KAMERA_FPS"):
        fps = float(os.environ["KAMERA_FPS"])
    stop = stop or threading.Event()
    path = Path(socket) if socket is not None else default_socket()
    name = (processor or _default_name())[:64]
    hello: Dict[str, Any] = {
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "processor": name,
        "cameras": list(cameras),
        "max_in_flight": concurrency,
    }
    if fps is not None:
        hello["fps"] = float(fps)
    backoff = _Backoff()
    lanes: LaneRunner[str, _Job] = LaneRunner(
        lambda job: _safe_handle(job[0], callback, job[1]),
        concurrency,
        on_replaced=_ack_replaced,
        max_threads=max(concurrency, DEFAULT_MAX_THREADS if max_threads is None else int(max_threads)),
    )
    waiting_logged = False
    try:
        while not stop.is_set():
            try:
                conn = _Connection(path, hello, stop)
            except (OSError, ProtocolError) as e:
                if not waiting_logged:
                    log.info("waiting for a Kamera worker on %s (%s)", path, e)
                    waiting_logged = True
                stop.wait(backoff.next())
                continue
            waiting_logged = False
            backoff.reset()
            log.info("connected to %s on %s as %r", conn.welcome.get("worker", "a worker"), path, name)
            try:
                _serve(conn, lanes, stop)
            except (OSError, ProtocolError) as e:
                log.warning("connection to the worker lost: %s; reconnecting", e)
            finally:
                conn.close()
                # Their acks could not reach the worker; the next connection sends fresh frames.
                lanes.discard_pending()
            stop.wait(backoff.next())
    finally:
        lanes.close()


def _serve(conn: _Connection, lanes: LaneRunner[str, _Job], stop: threading.Event) -> None:
    """Reads the connection and hands each frame to its camera's lane; never runs a callback."""
    while not stop.is_set():
        msg = conn.read_message()
        if msg is None:
            if not stop.is_set():
                log.info("the worker closed the connection")
            return
        kind = msg.get("type")
        if kind == "frame":
            frame = FrameInfo.from_message(msg)
            lanes.submit(frame.camera, (conn, frame))
        elif kind == "bye":
            log.info("the worker is going away (%s)", msg.get("reason", ""))
            return
        elif kind == "error":
            raise ProtocolError(f"worker reported: {msg.get('message')}")
        else:
            log.debug("ignoring message of type %r", kind)


def _safe_handle(conn: _Connection, callback: Callback, frame: FrameInfo) -> None:
    try:
        _handle(conn, callback, frame)
    except OSError as e:
        log.debug("could not ack frame %d of %s: %s", frame.seq, frame.camera, e)


def _ack_replaced(job: _Job) -> None:
    """A frame replaced by a newer one of its camera before a callback was free for it (only
    when the worker sent more than its credits): acked without detections, so the credit
    comes back."""
    conn, frame = job
    try:
        conn.send(ack_message(frame, None))
    except OSError as e:
        log.debug("could not ack replaced frame %d of %s: %s", frame.seq, frame.camera, e)
