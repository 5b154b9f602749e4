"""Fixtures for the SDK's tests: the real kamera-worker on free ports, ffmpeg publishers,
and processor subprocesses. Every wait has a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
SDK_SRC = REPO / "sdk" / "python" / "src"
T = TypeVar("T")


def wait_for(what: str, timeout: float, check: Callable[[], Optional[T]]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_bin() -> Path:
    if os.environ.get("KAMERA_WORKER_BIN"):
        return Path(os.environ["KAMERA_WORKER_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "kamera-worker"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build -p kamera-worker` first (make test does)")
    return binary


def python_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SDK_SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Worker:
    def __init__(self, data_dir: Path, extra: List[str]) -> None:
        self.data_dir = data_dir
        self.rtmp = f"127.0.0.1:{free_port()}"
        self.http = f"127.0.0.1:{free_port()}"
        self.socket = data_dir / "frames.sock"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.with_suffix(".log")
        self.proc = subprocess.Popen(
            [str(worker_bin()), "--rtmp-listen", self.rtmp, "--http-listen", self.http,
             "--data-dir", str(data_dir), "--no-recording", *extra],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_for("worker ready", 20, lambda: self.get("/readyz")[0] == 200 or self._died())

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited: {self.log.read_text()}")
        return False

    def url(self, camera: str) -> str:
        return f"rtmp://{self.rtmp}/live/{camera}"

    def get(self, path: str) -> "tuple[int, bytes]":
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def metric(self, sample: str) -> Optional[float]:
        _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def encode_clip(tmp_path_factory: pytest.TempPathFactory, size: str, rate: int, gop: int, bitrate: str) -> Path:
    """A 10 s H.264 test clip with a keyframe every `gop` frames, encoded once per session."""
    name = f"clip-{size}-{rate}fps-g{gop}.flv"
    cached = REPO / "target" / "kamera-test-clips" / name
    if cached.exists():
        return cached
    path = tmp_path_factory.mktemp("clip") / name
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration=10",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-b:v", bitrate,
         "-f", "flv", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s 640x360 25 fps clip with a keyframe every second."""
    return encode_clip(tmp_path_factory, "640x360", 25, 25, "800k")


@pytest.fixture(scope="session")
def clip_half_second_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s 320x180 10 fps clip with a keyframe every 0.5 s: a worker at `--frame-fps 2`
    decodes only keyframes, so several cameras at 2 fps stay cheap."""
    return encode_clip(tmp_path_factory, "320x180", 10, 5, "300k")


@pytest.fixture
def processes() -> Iterator[List[subprocess.Popen]]:
    """Subprocesses killed at the end of the test, whatever happens."""
    procs: List[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: List[Worker] = []

    def start(*extra: str) -> Worker:
        w = Worker(tmp_path / f"data{len(workers)}", list(extra))
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


@pytest.fixture
def publish(clip: Path, processes: List[subprocess.Popen]) -> Callable[..., subprocess.Popen]:
    """Publishes a clip (default: `clip`) in a loop, in real time, to an RTMP URL."""

    def start(url: str, source: Optional[Path] = None) -> subprocess.Popen:
        p = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(source or clip), "-c", "copy", "-f", "flv", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes.append(p)
        return p

    return start


PROCESSOR = """
import json, sys, time
from pathlib import Path
import kamera

name, socket, delay, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])

def on_frame(stream_key, frame_path, frame_data):
    with out.open("a") as f:
        f.write(json.dumps({"camera": stream_key, "seq": int(frame_path.stem), "t": time.time(),
                            "bytes": len(frame_data), "jpeg": frame_data[:2] == b"\\xff\\xd8"}) + "\\n")
    time.sleep(delay)
    return [{"label": "thing", "confidence": 0.5}]

kamera.run(on_frame, socket=socket, processor=name)
"""


def start_processor(
    processes: List[subprocess.Popen], tmp: Path, name: str, socket: Path, delay: float
) -> "tuple[subprocess.Popen, Path]":
    """A `kamera.run` processor in its own process, and the file it logs frames to."""
    script = tmp / "processor.py"
    script.write_text(PROCESSOR)
    out = tmp / f"{name}.jsonl"
    out.touch()
    p = subprocess.Popen([sys.executable, str(script), name, str(socket), str(delay), str(out)], env=python_env())
    processes.append(p)
    return p, out


def received(out: Path) -> List[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
