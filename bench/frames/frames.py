#!/usr/bin/env python3
"""Frame extraction cost: Kamera against one `ffmpeg -vf fps=1 -update 1` per camera.

Both receive the same load side by side: each camera's 1080p30 H.264 clip (GOP 1 s or 2 s)
is published twice with `ffmpeg -re -c copy`, once to the Kamera worker (frames at 1 fps,
recording off) and once to an `ffmpeg -listen 1` grabber writing latest.jpg once a second.
CPU time (user + system, from /proc) of the worker and of the grabbers is compared over the
same window. `--sampling keyframes` runs the worker with `--frame-sampling keyframes` and the
grabbers with their equivalent, `-skip_frame nokey` (both decode keyframes only). Not part of
`make test`:

    cargo build --release -p kamera-worker
    python3 bench/frames/frames.py --cameras 2 --duration 30
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def clip(gop: int, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bench-1080p30-g{gop}.flv"
    if not path.exists():
        print(f"encoding {path.name} (once)", flush=True)
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=20",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20",
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
             "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
             "-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M", "-c:a", "aac", "-f", "flv", str(path)],
            check=True,
        )
    return path


def publish(src: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(src), "-c", "copy", "-f", "flv", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def listening(port: int) -> bool:
    """From /proc/net/tcp, without connecting: `ffmpeg -listen 1` serves only one connection."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            return True
    return False


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on :{port}")


def run(gop: int, cameras: int, duration: float, worker: Path, work: Path, sampling: str) -> None:
    src = clip(gop, REPO / "target" / "bench-clips")
    procs: List[subprocess.Popen] = []
    try:
        rtmp, http = free_port(), free_port()
        kamera = subprocess.Popen(
            [str(worker), "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}",
             "--data-dir", str(work / f"kamera-g{gop}"), "--no-recording", "--frame-fps", "1",
             "--frame-sampling", sampling],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(kamera)
        wait_port(rtmp)
        grabbers = []
        for i in range(cameras):
            port = free_port()
            out = work / f"ffmpeg-g{gop}-{i}"
            out.mkdir(parents=True, exist_ok=True)
            g = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-listen", "1",
                 *(["-skip_frame", "nokey"] if sampling == "keyframes" else []),
                 "-i", f"rtmp://127.0.0.1:{port}/live/cam{i}", "-vf", "fps=1", "-update", "1",
                 "-y", str(out / "latest.jpg")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            procs.append(g)
            grabbers.append(g)
            wait_port(port)
            procs.append(publish(src, f"rtmp://127.0.0.1:{port}/live/cam{i}"))
            procs.append(publish(src, f"rtmp://127.0.0.1:{rtmp}/live/cam{i}"))
        time.sleep(5)  # warm-up: sessions established, first frames out (a measurement window, not a sync)
        k0, g0 = cpu_seconds(kamera.pid), sum(cpu_seconds(g.pid) for g in grabbers)
        time.sleep(duration)
        k1, g1 = cpu_seconds(kamera.pid), sum(cpu_seconds(g.pid) for g in grabbers)
        k = (k1 - k0) / duration / cameras * 100
        f = (g1 - g0) / duration / cameras * 100
        print(f"GOP {gop / 30:.0f} s, {cameras} camera(s), {duration:.0f} s, sampling {sampling}: "
              f"Kamera worker (ingest + LL-HLS + 1 fps JPEG) {k:.1f}% CPU per camera; "
              f"ffmpeg -vf fps=1 -update 1 {f:.1f}% per camera; ratio {f / k if k else float('inf'):.1f}x",
              flush=True)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--gops", default="30,60", help="GOP lengths in frames (30 fps)")
    ap.add_argument("--sampling", choices=["exact", "keyframes"], default="exact",
                    help="the worker's --frame-sampling (the grabbers get -skip_frame nokey for keyframes)")
    ap.add_argument("--worker", type=Path,
                    default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "kamera-worker")
    args = ap.parse_args()
    if not args.worker.exists():
        sys.exit(f"{args.worker} missing: cargo build --release -p kamera-worker")
    with tempfile.TemporaryDirectory() as tmp:
        for gop in (int(g) for g in args.gops.split(",")):
            run(gop, args.cameras, args.duration, args.worker, Path(tmp), args.sampling)
    return 0


if __name__ == "__main__":
    sys.exit(main())
