"""Compatibility with the classic ``rtmp_to_llhls`` program: the same names, backed by Kamera.

    from rtmp_to_llhls import set_frame_callback, main

    def my_ai_processor(stream_key, frame_path, frame_data):  # str, pathlib.Path, JPEG bytes
        ...

    set_frame_callback(my_ai_processor)
    main()

``main()`` attaches to a running Kamera worker's frame socket if one answers; inside a
Kamera pool pod (``KAMERA_POOL_LISTEN`` set) it serves the pool's network port instead,
calling the same callback for every camera's frames; otherwise it starts a local ``kamera-worker`` (RTMP on :1935, LL-HLS and metrics on :8080) with
``FRAME_EXTRACTION_FPS`` and ``FRAMES_DIR`` mapped to its flags, and stops it on Ctrl-C.
Both settings can be changed on this module before ``main()`` or set as environment variables.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import kamera
from kamera.client import Callback, _Connection, ProtocolError
from kamera.pool import in_pool

__all__ = ["FRAME_EXTRACTION_FPS", "FRAMES_DIR", "set_frame_callback", "main"]

#: Frames per second extracted per stream (0.5 = one frame every 2 s).
FRAME_EXTRACTION_FPS: float = float(os.environ.get("FRAME_EXTRACTION_FPS", "1"))
#: Where frames are written: ``FRAMES_DIR/<stream_key>/latest.jpg``.
FRAMES_DIR: Path = Path(os.environ.get("FRAMES_DIR", "frames"))

log = logging.getLogger("rtmp_to_llhls")
_callback: Optional[Callback] = None
_stop = threading.Event()


def set_frame_callback(callback: Callback) -> None:
    """Sets the function called as ``callback(stream_key, frame_path, frame_data)`` per frame."""
    global _callback
    _callback = callback


def _answers(path: Path) -> bool:
    """True when a Kamera worker completes a protocol handshake on ``path``."""
    if not path.exists():
        return False
    probe = threading.Event()
    try:
        conn = _Connection(path, {"type": "hello", "version": 1, "processor": "probe", "cameras": [".probe"]}, probe)
    except (OSError, ProtocolError):
        return False
    conn.close()
    return True


def find_worker() -> Optional[str]:
    """``$KAMERA_WORKER``, ``kamera-worker`` on PATH, or a build of the Kamera workspace."""
    if os.environ.get("KAMERA_WORKER"):
        return os.environ["KAMERA_WORKER"]
    on_path = shutil.which("kamera-worker")
    if on_path:
        return on_path
    roots: List[Path] = []
    if os.environ.get("CARGO_TARGET_DIR"):
        roots.append(Path(os.environ["CARGO_TARGET_DIR"]))
    for parent in [Path.cwd(), *Path(__file__).resolve().parents]:
        roots.append(parent / "target")
    for root in roots:
        for profile in ("release", "debug"):
            candidate = root / profile / "kamera-worker"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def _start_worker(socket: Path) -> subprocess.Popen:
    binary = find_worker()
    if binary is None:
        raise SystemExit(
            "rtmp_to_llhls: no Kamera worker is running and none was found to start.\n"
            "Build one with `cargo build --release -p kamera-worker` (or set KAMERA_WORKER)."
        )
    fps = float(FRAME_EXTRACTION_FPS)
    if fps <= 0:
        raise SystemExit(f"rtmp_to_llhls: FRAME_EXTRACTION_FPS must be positive, not {fps}")
    args = [
        binary,
        "--frame-fps", repr(fps),
        "--frames-dir", str(Path(FRAMES_DIR)),
        "--frame-socket", str(socket),
    ]
    log.info("starting %s", " ".join(args))
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rtmp_to_llhls: kamera-worker exited with status {proc.returncode}")
        if _answers(socket):
            return proc
        time.sleep(0.1)
    _stop_worker(proc)
    raise SystemExit("rtmp_to_llhls: kamera-worker did not open its frame socket within 20 s")


def _stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    """Runs the frame callback on every stream's frames until Ctrl-C (or SIGTERM)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if _callback is None:
        raise SystemExit("rtmp_to_llhls: call set_frame_callback(fn) before main()")
    if in_pool():
        with _stop_on_signals():
            kamera.serve(_callback, processor=os.environ.get("KAMERA_PROCESSOR", "rtmp_to_llhls"), stop=_stop)
        return
    socket = kamera.default_socket()
    worker: Optional[subprocess.Popen] = None
    if _answers(socket):
        log.info("attaching to the Kamera worker on %s", socket)
    else:
        worker = _start_worker(socket)

    try:
        with _stop_on_signals():
            kamera.run(
                _callback,
                socket=socket,
                fps=float(FRAME_EXTRACTION_FPS),
                processor=os.environ.get("KAMERA_PROCESSOR", "rtmp_to_llhls"),
                stop=_stop,
            )
    finally:
        if worker is not None:
            log.info("stopping the Kamera worker")
            _stop_worker(worker)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Sets ``_stop`` on SIGTERM and SIGINT while inside. Both are handled explicitly: a
    program started in the background inherits SIGINT ignored, and Ctrl-C must still stop it
    (and the worker it started)."""

    def _terminate(signum: int, _frame: object) -> None:
        _stop.set()

    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    set_frame_callback(lambda key, path, data: print(f"{key}: {path} ({len(data)} bytes)", flush=True))
    main()
    sys.exit(0)
