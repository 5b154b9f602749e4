#!/usr/bin/env python3
"""Kamera alone over a longer run: memory growth per minute with N cameras, and how fast a
frame reaches a processor, measured with a real probe processor on the frame socket.

Usage: python3 bench/soak.py --n 8 --minutes 10   (after `cargo build --release -p kamera-worker`)
Writes bench/results/<date>-<machine>-soak.md. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (  # noqa: E402  (the harness's own helpers)
    RESULTS, ROOT, WORKER, Publisher, free_port, histogram_quantile, http_get, memory, sample, tree, wait_port,
)

PROBE = """
import sys, kamera
kamera.run(lambda stream_key, frame_path, frame_data: None, socket=sys.argv[1], processor="probe")
"""


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) in MiB per minute."""
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(m for _, m in points) / n
    num = sum((t - mx) * (m - my) for t, m in points)
    den = sum((t - mx) ** 2 for t, _ in points) or 1.0
    return num / den * 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--resolution", default="1080p")
    ap.add_argument("--interval", type=float, default=30, help="seconds between memory samples")
    args = ap.parse_args()
    clip = sample(args.resolution)
    work = Path(tempfile.mkdtemp(prefix="kamera-soak-"))
    rtmp, http = free_port(), free_port()
    socket_path = work / "data" / "frames.sock"
    worker = subprocess.Popen(
        [str(WORKER), "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}",
         "--data-dir", str(work / "data"), "--log", "warn"],
        stdin=subprocess.DEVNULL, stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT,
    )
    wait_port(http)
    cams = [f"cam{i:02d}" for i in range(args.n)]
    pubs = [Publisher(clip, f"rtmp://127.0.0.1:{rtmp}/live/{c}", work / f"p-{c}.txt") for c in cams]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk" / "python" / "src"))
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(socket_path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(work / "probe.log", "w"))
    points: list[tuple[float, float]] = []
    try:
        time.sleep(20)  # warm-up: every camera live, windows and rings filled
        t0 = time.time()
        while time.time() - t0 < args.minutes * 60:
            pss = sum(memory(p)[1] for p in tree([worker.pid]))
            points.append((time.time() - t0, pss / 2**20))
            print(f"soak: {points[-1][0]:6.0f} s  {points[-1][1]:7.1f} MiB", flush=True)
            time.sleep(args.interval)
        metrics = http_get(f"http://127.0.0.1:{http}/metrics") or ""
    finally:
        probe.kill()
        for p in pubs:
            p.stop()
        worker.terminate()
        worker.wait(timeout=20)
    slope = slope_per_minute(points)
    lat50 = histogram_quantile(metrics, "kamera_processor_latency_seconds", 0.5)
    lat99 = histogram_quantile(metrics, "kamera_processor_latency_seconds", 0.99)
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    text = "\n".join([
        f"# Kamera soak, {started}",
        "",
        f"Command: `python3 bench/soak.py {' '.join(sys.argv[1:])}`",
        f"Machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{args.n} cameras at {args.resolution}, full pipeline, one probe processor (Python SDK, "
        "empty callback) on every camera.",
        "",
        "| minute | worker PSS (MiB) |",
        "|---|---|",
        *[f"| {t / 60:.1f} | {m:.1f} |" for t, m in points],
        "",
        f"- Memory growth: **{slope:+.2f} MiB/minute** (least squares over {len(points)} samples; "
        f"{slope / args.n:+.3f} MiB/minute per camera).",
        f"- Frame capture → processor ack (`kamera_processor_latency_seconds`, histogram buckets): "
        f"p50 ≤ {lat50} s, p99 ≤ {lat99} s. This includes the probe's read of the JPEG and its ack.",
        "",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{started}-{platform.machine()}-{os.cpu_count()}core-soak.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
