#!/usr/bin/env python3
"""Recording cost per camera: CPU of the recorder threads and of the whole worker, and disk
write throughput, at 1080p30 4 Mbit/s + AAC published with `ffmpeg -re -c copy`.

Not part of `make test`. Each configuration runs the worker alone on the same load:
`--no-recording` as the baseline, then recording with each `--recording-fsync` policy, so the
difference is what recording costs. Recorder threads are named `rec-<camera>`, so their CPU is
read per thread from /proc.

    python3 bench/recording/recording.py --cameras 1,4 --duration 30
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compare import (  # noqa: E402  (shared load and accounting helpers of the bench)
    CLK_TCK, RESULTS, ROOT, Publisher, cpu_seconds, free_port, sample, wait_port,
)


def worker_bin() -> Path:
    for profile in ("release", "debug"):
        for target in (os.environ.get("CARGO_TARGET_DIR"), str(ROOT / "target")):
            if target and (Path(target) / profile / "kamera-worker").exists():
                if profile == "debug":
                    print("bench: using a debug build; numbers overstate CPU", file=sys.stderr)
                return Path(target) / profile / "kamera-worker"
    sys.exit("bench: build the worker first: cargo build --release -p kamera-worker")


def recorder_cpu(pid: int) -> float:
    """CPU seconds of the worker's `rec-*` threads."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith("rec-"):
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def metric_sum(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


def run(binary: Path, clip: Path, cameras: int, fsync: str | None, duration: float, warmup: float) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DATA_DIR")) as tmp:
        rtmp, http = free_port(), free_port()
        args = [str(binary), "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}",
                "--data-dir", f"{tmp}/data", "--segment-duration", "1m", "--log", "warn"]
        args += ["--no-recording"] if fsync is None else ["--recording-fsync", fsync]
        worker = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        pubs = []
        try:
            wait_port(rtmp)
            pubs = [Publisher(clip, f"rtmp://127.0.0.1:{rtmp}/live/c{i}", Path(tmp) / f"p{i}.txt")
                    for i in range(cameras)]
            time.sleep(warmup)  # a benchmark window, not synchronisation
            c0, r0, w0 = cpu_seconds(worker.pid), recorder_cpu(worker.pid), write_bytes(worker.pid)
            b0 = metric_sum(http, "kamera_recording_bytes_total")
            i0 = metric_sum(http, "kamera_ingest_bytes_total")
            t0 = time.monotonic()
            time.sleep(duration)
            t = time.monotonic() - t0
            c1, r1, w1 = cpu_seconds(worker.pid), recorder_cpu(worker.pid), write_bytes(worker.pid)
            b1 = metric_sum(http, "kamera_recording_bytes_total")
            i1 = metric_sum(http, "kamera_ingest_bytes_total")
            errors = metric_sum(http, "kamera_recording_errors_total")
            dropped = metric_sum(http, "kamera_recording_dropped_total")
        finally:
            for p in pubs:
                p.stop()
            worker.terminate()
            worker.wait(timeout=20)
    return {
        "cameras": cameras,
        "fsync": fsync or "no-recording",
        "worker_cpu_pct": 100 * (c1 - c0) / t,
        "recorder_cpu_pct_per_camera": 100 * (r1 - r0) / t / cameras,
        "recorded_MBps_per_camera": (b1 - b0) / t / cameras / 1e6,
        "disk_write_MBps": (w1 - w0) / t / 1e6,
        "ingest_MBps_per_camera": (i1 - i0) / t / cameras / 1e6,
        "errors": errors,
        "dropped_frames": dropped,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", default="1,4", help="comma-separated camera counts")
    ap.add_argument("--fsync", default="fragment,segment,off", help="comma-separated --recording-fsync policies")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--resolution", default="1080p")
    a = ap.parse_args()
    binary, clip = worker_bin(), sample(a.resolution)
    rows = []
    for n in [int(x) for x in a.cameras.split(",")]:
        for fsync in [None] + a.fsync.split(","):
            row = run(binary, clip, n, fsync, a.duration, a.warmup)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'cams':>4} {'fsync':>12} {'worker CPU%':>11} {'rec CPU%/cam':>12} {'rec MB/s/cam':>12} "
          f"{'disk MB/s':>9} {'drops':>5}")
    for r in rows:
        print(f"{r['cameras']:>4} {r['fsync']:>12} {r['worker_cpu_pct']:>11.2f} "
              f"{r['recorder_cpu_pct_per_camera']:>12.3f} {r['recorded_MBps_per_camera']:>12.3f} "
              f"{r['disk_write_MBps']:>9.3f} {r['dropped_frames']:>5.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"recording-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"binary": str(binary), "resolution": a.resolution, "runs": rows}, indent=2))
    print(f"\nbench: results in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
