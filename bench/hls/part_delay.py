#!/usr/bin/env python3
"""LL-HLS part delay: time from a part's last sample arriving to the part being available,
per camera, for 1 and 16 cameras published with `ffmpeg -re -c copy` on loopback.

Reads the worker's own histogram (kamera_hls_part_delay_seconds{camera}) after a warm-up and
reports p50/p99 per camera, interpolated within histogram buckets. Not part of `make test`.
The delay includes one frame interval by design: a sample's duration (and so the part that
ends with it) is only known when the next frame of its track arrives.

    python3 bench/hls/part_delay.py --worker target/release/kamera-worker --cameras 1,16
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def clip(path, width, height, fps):
    if os.path.exists(path):
        return path
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration=10",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=10",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
         "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0", "-b:v", "4M",
         "-maxrate", "4M", "-bufsize", "2M", "-c:a", "aac", "-b:a", "128k", "-f", "flv", path],
        check=True)
    return path


def histograms(metrics):
    """{camera: [(le, cumulative count)]} of kamera_hls_part_delay_seconds."""
    out = {}
    for line in metrics.splitlines():
        if not line.startswith("kamera_hls_part_delay_seconds_bucket{"):
            continue
        labels, value = line.rsplit(" ", 1)
        fields = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1:-1].split(","))
        camera = fields["camera"].strip('"')
        le = fields["le"].strip('"')
        out.setdefault(camera, []).append((float("inf") if le == "+Inf" else float(le), float(value)))
    return {c: sorted(b) for c, b in out.items()}


def diff(after, before):
    prev = dict(before)
    return [(le, n - prev.get(le, 0.0)) for le, n in after]


def quantile(buckets, q):
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lo_le, lo_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * (rank - lo_n) / max(n - lo_n, 1e-9)
        lo_le, lo_n = le, n
    return lo_le


def run(worker, n, seconds, media):
    rtmp, http = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="kamera-bench-hls-")
    w = subprocess.Popen([worker, "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen",
                          f"127.0.0.1:{http}", "--data-dir", data, "--no-recording"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pubs = []
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.time() + 20
        while True:
            try:
                get(base + "/readyz")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        for i in range(n):
            pubs.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                 "-i", media, "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/cam{i}"],
                stdin=subprocess.DEVNULL))
        time.sleep(5)  # warm-up: connect, first GOP; excluded from the measurement
        before = histograms(get(base + "/metrics"))
        time.sleep(seconds)
        after = histograms(get(base + "/metrics"))
        rows = []
        for cam in sorted(after, key=lambda c: int(c[3:]) if c[3:].isdigit() else 0):
            b = diff(after[cam], before.get(cam, []))
            rows.append((cam, int(b[-1][1]), quantile(b, 0.5) * 1000, quantile(b, 0.99) * 1000))
        return rows
    finally:
        for p in pubs:
            p.kill()
        w.terminate()
        w.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=os.environ.get("KAMERA_WORKER_BIN", "target/release/kamera-worker"))
    ap.add_argument("--cameras", default="1,16")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    os.makedirs("bench/.cache", exist_ok=True)
    media = clip(f"bench/.cache/hls-{args.size}-{args.fps}.flv", width, height, args.fps)
    print(f"worker {args.worker}, {args.size}@{args.fps} H.264 4 Mbit/s + AAC, GOP 1 s, "
          f"{args.duration} s measured per run")
    for n in map(int, args.cameras.split(",")):
        rows = run(args.worker, n, args.duration, media)
        p50s = sorted(r[2] for r in rows)
        p99s = sorted(r[3] for r in rows)
        print(f"\n{n} camera(s): part delay per camera (ms)")
        print(f"{'camera':>8} {'parts':>6} {'p50':>7} {'p99':>7}")
        for cam, parts, p50, p99 in rows:
            print(f"{cam:>8} {parts:>6} {p50:7.1f} {p99:7.1f}")
        if rows:
            print(f"{'median':>8} {'':>6} {p50s[len(p50s) // 2]:7.1f} {p99s[len(p99s) // 2]:7.1f}"
                  f"   (worst camera p99 {p99s[-1]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
