#!/usr/bin/env python3
"""A processor pool under load: one pool process on the CPU with a fixed-cost fake model
(`kamera.serve_batch`), fed by one worker with N cameras at 1 fps.

For each N, three runs of the same load, side by side in time, on the release worker:
  - none:    no processor (the baseline worker CPU),
  - sidecar: a `kamera.run` processor on the Unix socket with the same fake model per frame,
  - pool:    the worker sends every camera's frames to the pool over TCP (network transport).
Measured over the window: frames/s delivered to the model, the batch size distribution,
capture → ack latency p50/p99 (captured_at in each frame → the pool's ack, one clock), and
the worker's CPU (user + system from /proc), so that the CPU per camera that each transport
adds to the worker is (cpu(transport) − cpu(none)) / N. Publishers are light (320x240,
10 fps, a keyframe a second, `ffmpeg -re -c copy`) so that 64 of them fit on a small machine.

Not part of `make test`; `make bench` runs it after bench/compare.py:
    cargo build --release -p kamera-worker
    python3 bench/pool/pool.py --n 16,32,64 --duration 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "bench" / "frames"))
from frames import cpu_seconds, free_port  # noqa: E402  (the frames bench's helpers)
TOKEN = "bench-token-0123456789abcdef"

#: The fake model: a fixed cost per batch plus a cost per frame (a GPU-like shape).
MODEL = r"""
import json, os, sys, threading, time, datetime as dt
from pathlib import Path
import kamera

mode, out = sys.argv[1], Path(sys.argv[2])
PER_BATCH, PER_FRAME = float(os.environ["BENCH_PER_BATCH"]), float(os.environ["BENCH_PER_FRAME"])
latencies, sizes, lock = [], [], threading.Lock()
stop = threading.Event()

def captured(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()

def model(frames):
    time.sleep(PER_BATCH + PER_FRAME * len(frames))
    now = time.time()
    with lock:
        sizes.append(len(frames))
        for f in frames:
            latencies.append(now - captured(f.captured_at))
    return [[{"label": "thing", "confidence": 0.5}] for _ in frames]

def on_frame(stream_key, frame_path, frame_data):
    # The sidecar's latency is measured by the worker (capture -> ack); here only the model.
    time.sleep(PER_BATCH + PER_FRAME)
    with lock:
        sizes.append(1)
    return [{"label": "thing", "confidence": 0.5}]

def dump(*_):
    with lock:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"latencies": latencies, "sizes": sizes}))
        tmp.rename(out)  # the bench reads it once it exists: whole or not at all
    stop.set()

def reset(*_):
    with lock:
        latencies.clear()
        sizes.clear()

signal_mod = __import__("signal")
signal_mod.signal(signal_mod.SIGUSR1, lambda *a: dump())
signal_mod.signal(signal_mod.SIGUSR2, reset)
signal_mod.signal(signal_mod.SIGTERM, lambda *a: stop.set())
if mode == "pool":
    kamera.serve_batch(model, max_batch=int(os.environ.get("BENCH_MAX_BATCH", "16")),
                       max_wait=float(os.environ.get("BENCH_MAX_WAIT", "0.05")), stop=stop)
else:
    kamera.run(on_frame, socket=os.environ["BENCH_SOCKET"], processor="bench", stop=stop)
"""


def clip(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "pool-320x240-10fps-g10.flv"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=20",
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
             "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-b:v", "200k",
             "-f", "flv", str(path)],
            check=True,
        )
    return path


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric_sum(text: str, prefix: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def histogram_quantile(text: str, name: str, q: float) -> Optional[float]:
    """The q-quantile upper bound from a histogram summed over all its series."""
    buckets: Dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets or buckets.get(float("inf"), 0) == 0:
        return None
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


def percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(n: int, mode: str, duration: float, worker_bin: Path, src: Path, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"kamera-pool-bench-{mode}-{n}-"))
    procs: List[subprocess.Popen] = []
    http = f"127.0.0.1:{free_port()}"
    rtmp = f"127.0.0.1:{free_port()}"
    pool_addr = f"127.0.0.1:{free_port()}"
    socket_path = tmp / "frames.sock"
    out = tmp / "model.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "sdk/python/src"), BENCH_PER_BATCH=str(args.per_batch),
               BENCH_PER_FRAME=str(args.per_frame), BENCH_MAX_BATCH=str(args.max_batch),
               BENCH_MAX_WAIT=str(args.max_wait), BENCH_SOCKET=str(socket_path), KAMERA_POOL_LISTEN=pool_addr,
               KAMERA_PROCESSOR="bench", KAMERA_MAX_IN_FLIGHT="1")
    token_file = tmp / "pool-token"
    token_file.write_text(TOKEN)
    env["KAMERA_POOL_TOKEN_FILE"] = str(token_file)
    (tmp / "tokens" / "bench").mkdir(parents=True)
    (tmp / "tokens" / "bench" / "token").write_text(TOKEN)
    script = tmp / "model.py"
    script.write_text(MODEL)
    model: Optional[subprocess.Popen] = None
    try:
        if mode == "pool":
            model = subprocess.Popen([sys.executable, str(script), mode, str(out)], env=env,
                                     stdout=(tmp / "model.log").open("wb"), stderr=subprocess.STDOUT)
            procs.append(model)
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", int(pool_addr.rsplit(":", 1)[1])), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the pool did not start")
                    time.sleep(0.1)
        worker_args = [str(worker_bin), "--rtmp-listen", rtmp, "--http-listen", http, "--data-dir", str(tmp / "data"),
                       "--no-recording", "--frame-socket", str(socket_path)]
        if mode == "pool":
            worker_args += ["--pool", f"bench={pool_addr}", "--pool-token-dir", str(tmp / "tokens")]
        worker = subprocess.Popen(worker_args, stdout=(tmp / "worker.log").open("wb"), stderr=subprocess.STDOUT,
                                  env=dict(os.environ, KAMERA_LOG="warn"))
        procs.append(worker)
        deadline = time.monotonic() + 20
        while True:
            try:
                get(f"http://{http}/readyz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not start")
                time.sleep(0.1)
        if mode == "sidecar":
            model = subprocess.Popen([sys.executable, str(script), mode, str(out)], env=env,
                                     stdout=(tmp / "model.log").open("wb"), stderr=subprocess.STDOUT)
            procs.append(model)
        for i in range(n):
            procs.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(src),
                 "-c", "copy", "-f", "flv", f"rtmp://{rtmp}/live/cam{i:03d}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(args.warmup)  # let every camera start and settle (the window below is measured)
        if model:
            model.send_signal(signal.SIGUSR2)  # count the model's work from here
        text0 = get(f"http://{http}/metrics")
        cpu0, t0 = cpu_seconds(worker.pid), time.monotonic()
        model_cpu0 = cpu_seconds(model.pid) if model else 0.0
        time.sleep(duration)
        text1 = get(f"http://{http}/metrics")
        cpu1, t1 = cpu_seconds(worker.pid), time.monotonic()
        model_cpu1 = cpu_seconds(model.pid) if model else 0.0
        span = t1 - t0
        acked = metric_sum(text1, "kamera_processor_latency_seconds_count") - metric_sum(text0, "kamera_processor_latency_seconds_count")
        extracted = metric_sum(text1, "kamera_frames_extracted_total") - metric_sum(text0, "kamera_frames_extracted_total")
        busy = metric_sum(text1, 'kamera_frames_dropped_total{') - metric_sum(text0, 'kamera_frames_dropped_total{')
        result = {
            "n": n, "mode": mode, "window_s": round(span, 1),
            "worker_cpu_percent": round(100 * (cpu1 - cpu0) / span, 1),
            "model_process_cpu_percent": round(100 * (model_cpu1 - model_cpu0) / span, 1) if model else None,
            "frames_extracted_per_s": round(extracted / span, 1),
            "frames_acked_per_s": round(acked / span, 1),
            "frames_dropped_per_s": round(busy / span, 2),
            "worker_capture_to_ack_p50_bucket_s": histogram_quantile(text1, "kamera_processor_latency_seconds", 0.5),
            "worker_capture_to_ack_p99_bucket_s": histogram_quantile(text1, "kamera_processor_latency_seconds", 0.99),
        }
        if model:
            model.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            data = json.loads(out.read_text()) if out.exists() else {"latencies": [], "sizes": []}
            sizes = data["sizes"]
            result["batches"] = len(sizes)
            dist: Dict[str, int] = {}
            for s in sizes:
                key = "1" if s == 1 else "2-3" if s < 4 else "4-7" if s < 8 else "8-15" if s < 16 else "16+"
                dist[key] = dist.get(key, 0) + 1
            result["batch_size_distribution"] = dist
            result["mean_batch"] = round(sum(sizes) / len(sizes), 2) if sizes else None
            lat = data["latencies"]
            if lat:
                result["capture_to_ack_p50_s"] = round(percentile(lat, 0.5) or 0, 3)
                result["capture_to_ack_p99_s"] = round(percentile(lat, 0.99) or 0, 3)
        return result
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="16,32,64", help="camera counts")
    ap.add_argument("--duration", type=float, default=30.0, help="measured window per run, seconds")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before the window")
    ap.add_argument("--per-batch", type=float, default=0.010, help="fake model: seconds per batch")
    ap.add_argument("--per-frame", type=float, default=0.002, help="fake model: seconds per frame")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait", type=float, default=0.05)
    ap.add_argument("--modes", default="none,sidecar,pool")
    ap.add_argument("--worker", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "kamera-worker")
    ap.add_argument("--out", type=Path, default=None, help="results file (.json; a .md beside it)")
    args = ap.parse_args()
    if not args.worker.exists():
        raise SystemExit(f"{args.worker} is missing: cargo build --release -p kamera-worker")
    src = clip(REPO / "bench" / ".cache")
    results = []
    for n in [int(x) for x in args.n.split(",")]:
        for mode in args.modes.split(","):
            print(f"pool bench: {n} cameras, {mode} ...", flush=True)
            r = run(n, mode, args.duration, args.worker, src, args)
            print(json.dumps(r), flush=True)
            results.append(r)
    base = {r["n"]: r["worker_cpu_percent"] for r in results if r["mode"] == "none"}
    for r in results:
        if r["mode"] != "none" and r["n"] in base:
            r["worker_cpu_percent_per_camera_added"] = round((r["worker_cpu_percent"] - base[r["n"]]) / r["n"], 3)
    stamp = dt.date.today().isoformat()
    out = args.out or RESULTS / f"{stamp}-{platform.machine()}-{os.cpu_count()}core-pool.json"
    meta = {"date": stamp, "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "out")}}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str) + "\n")
    lines = [f"# Pool bench {stamp} ({platform.machine()}, {os.cpu_count()} CPUs)", "",
             f"Fake model: {args.per_batch * 1000:.0f} ms per batch + {args.per_frame * 1000:.0f} ms per frame; "
             f"serve_batch(max_batch={args.max_batch}, max_wait={args.max_wait}); 320x240 10 fps publishers, 1 fps frames; "
             f"{args.duration:.0f} s windows. Raw: `{out.name}`. Load average at the end: "
             f"{os.getloadavg()[0]:.1f} (other work on the machine inflates the CPU figures; per-camera "
             "differences of a few hundredths of a percent are within the noise). Pool latency: measured "
             "by the pool per frame over the window; sidecar latency: the worker's histogram buckets "
             "over the whole run, start included.", "",
             "| N | mode | acked/s | mean batch | batches by size | capture→ack p50 / p99 | worker CPU % | added per camera (% of a core) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat = (f"{r.get('capture_to_ack_p50_s', '–')} / {r.get('capture_to_ack_p99_s', '–')} s" if r["mode"] == "pool"
               else f"≤{r['worker_capture_to_ack_p50_bucket_s']} / ≤{r['worker_capture_to_ack_p99_bucket_s']} s (buckets)"
               if r["mode"] == "sidecar" else "–")
        lines.append(f"| {r['n']} | {r['mode']} | {r['frames_acked_per_s']} | {r.get('mean_batch', '–')} | "
                     f"{r.get('batch_size_distribution', '–') if r['mode'] == 'pool' else '–'} | {lat} | "
                     f"{r['worker_cpu_percent']} | {r.get('worker_cpu_percent_per_camera_added', '–')} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"pool bench: results in {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
