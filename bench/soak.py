#!/usr/bin/env python3
"""Kamera under a long, mixed load: does memory stay flat, does per-camera state come back to
its baseline after stream keys come and go, and is nothing healthy ever dropped?

The load (defaults, for `make soak`; all scaled by the flags):
- 16 cameras at 1080p, each `ffmpeg -re -stream_loop -1 -c copy` of one camera-like clip
  (grainy, moving, 25 fps, GOP 1 s by default, 4 Mbit/s) encoded once, each reconnecting every 5 minutes;
- two LL-HLS viewers per camera doing blocking playlist reloads (`_HLS_msn`/`_HLS_part`) and
  fetching every new part;
- one processor per camera through the real Python SDK (`kamera.run`), one of them slow
  (a 3 s callback at 1 fps: latest-wins drops for it are expected and reported apart);
- recording rotating every 5 minutes (`--segment-duration`);
- 2,000 distinct one-second stream keys per hour, spread over the run.

Reported (bench/results/<date>-<machine>-soak[-smoke].{json,md}): RSS of the worker and PSS of
its process tree over time with the least-squares slope after the first 10 minutes (target
< 0.1 MiB/min); threads and per-camera metric series back to their baseline once the random keys
are released; drops for healthy consumers (must be zero); publishers at real time (ffmpeg's
`-progress`); every recording valid (ffprobe) and gap-free across rotations.

Usage: python3 bench/soak.py [--minutes 60] [--cameras 16]   (needs a release build:
`cargo build --release -p kamera-worker`). A run shorter than 30 minutes is written as a smoke
result. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import CACHE, RESULTS, ROOT, Publisher, free_port, http_get, memory, tree, wait_port  # noqa: E402

SLOW = "slow"
PROCESSORS = """
import sys, threading, time
import kamera
sock, delay, cams = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
stop = threading.Event()
def runner(cam, slow):
    def on_frame(stream_key, frame_path, frame_data):
        if slow:
            time.sleep(delay)
    name = ("%s-%s" % ("slow" if slow else "proc", cam))
    kamera.run(on_frame, cameras=[cam], socket=sock, processor=name, stop=stop)
threads = [threading.Thread(target=runner, args=(c, i == 0), daemon=True) for i, c in enumerate(cams)]
for t in threads: t.start()
try:
    for t in threads: t.join()
except KeyboardInterrupt:
    stop.set()
"""


# ---------------------------------------------------------------- load


def camera_clip(gop_seconds: float) -> Path:
    """20 s of camera-like 1080p at 25 fps (moving test pattern under grain, 4 Mbit/s, AAC)
    with a keyframe every `gop_seconds`."""
    gop = max(1, round(25 * gop_seconds))
    path = CACHE / f"soak-camera-1080p-g{gop}.flv"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.flv")
    print("soak: encoding the camera-like 1080p clip (once)", flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=20,noise=alls=12:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
         "-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M",
         "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(tmp)],
        check=True,
    )
    tmp.rename(path)
    return path


class Camera:
    """A looping publisher that reconnects every `every` seconds (first after `offset`), and
    keeps ffmpeg's progress of every session to tell whether it kept real time."""

    def __init__(self, name: str, clip: Path, url: str, work: Path, every: float, offset: float):
        self.name, self.clip, self.url, self.work = name, clip, url, work
        self.every, self.next_reconnect = every, time.time() + offset
        self.sessions: list[dict] = []
        self.reconnects: list[float] = []
        self.pub: Publisher | None = None
        self.started = 0.0
        # (wall, media) seconds once the session is past its start-up, to measure its pace.
        self.mark: tuple[float, float] | None = None
        self.start()

    def start(self) -> None:
        progress = self.work / f"progress-{self.name}-{len(self.sessions)}.txt"
        self.pub = Publisher(self.clip, self.url, progress)
        self.started = time.time()
        self.mark = None

    def end_session(self) -> None:
        if not self.pub:
            return
        now = time.time()
        wall = now - self.started
        media = self.pub.media_seconds()
        # Media advanced per wall second after start-up (connecting, -re's first burst).
        pace = None
        if self.mark and media is not None and now - self.mark[0] >= 20:
            pace = round((media - self.mark[1]) / (now - self.mark[0]), 4)
        speed = None
        try:
            found = re.findall(r"^speed=\s*([\d.]+)x", self.pub.progress.read_text(), re.M)
            speed = float(found[-1]) if found else None
        except OSError:
            pass
        self.pub.stop()
        self.sessions.append({"wall_s": round(wall, 1), "media_s": media, "pace": pace, "last_speed": speed,
                              "exited_early": self.pub.proc.returncode not in (None, -9)})
        self.pub = None

    def tick(self) -> None:
        if self.pub and self.mark is None and time.time() - self.started >= 10:
            media = self.pub.media_seconds()
            if media is not None:
                self.mark = (time.time(), media)
        if self.pub and self.pub.proc.poll() is not None:
            # The publisher died on its own: record it, start again.
            self.end_session()
            self.reconnects.append(time.time())
            self.start()
        elif time.time() >= self.next_reconnect:
            self.end_session()
            self.reconnects.append(time.time())
            self.next_reconnect += self.every
            self.start()


class Viewer(threading.Thread):
    """An LL-HLS client: blocking playlist reloads for the preload-hinted part, fetching every
    new part, over one keep-alive connection."""

    HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"')
    PART = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')

    def __init__(self, port: int, camera: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.camera, self.stop = port, camera, stop
        self.parts = 0
        self.bytes = 0
        self.errors = 0
        self.longest_wait = 0.0
        self.fetched: set[str] = set()
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, timeout: float = 15) -> tuple[int, bytes]:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
        return 0, b""

    def run(self) -> None:
        base = f"/hls/{self.camera}/"
        target: tuple[int, int] | None = None
        last_new = time.time()
        while not self.stop.is_set():
            query = f"?_HLS_msn={target[0]}&_HLS_part={target[1]}" if target else ""
            status, body = self.get(base + "stream.m3u8" + query)
            if status != 200:
                self.errors += 1
                target = None
                self.stop.wait(0.5)
                continue
            text = body.decode("utf-8", "replace")
            parts = self.PART.findall(text)
            # On the first load, start at the live edge rather than fetching the whole window.
            new = [p for p in parts if p not in self.fetched] if self.fetched else parts[-1:]
            for uri in new:
                status, data = self.get(base + uri)
                if status == 200:
                    self.parts += 1
                    self.bytes += len(data)
                else:
                    self.errors += 1
                self.fetched.add(uri)
            if len(self.fetched) > 2000:
                self.fetched = set(parts)
            now = time.time()
            if new:
                self.longest_wait = max(self.longest_wait, now - last_new)
                last_new = now
            hint = self.HINT.search(text)
            target = (int(hint.group(1)), int(hint.group(2))) if hint else None


class RandomKeys(threading.Thread):
    """Publishes `count` distinct one-second stream keys, evenly spread over `span` seconds."""

    def __init__(self, clip: Path, rtmp: int, count: int, span: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.clip, self.rtmp, self.count, self.span, self.stop = clip, rtmp, count, span, stop
        self.published = 0
        self.failed = 0

    def run(self) -> None:
        if self.count == 0:
            return
        gap = self.span / self.count
        t0 = time.time()
        running: list[subprocess.Popen] = []
        for i in range(self.count):
            if self.stop.wait(max(0.0, t0 + i * gap - time.time())):
                break
            key = f"rk{i:04d}-{random.getrandbits(40):010x}"
            running.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(self.clip), "-t", "1",
                 "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{self.rtmp}/live/{key}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            still = []
            for p in running:
                if p.poll() is None:
                    still.append(p)
                elif p.returncode == 0:
                    self.published += 1
                else:
                    self.failed += 1
            running = still
        for p in running:
            if p.wait() == 0:
                self.published += 1
            else:
                self.failed += 1


# ---------------------------------------------------------------- measurements


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) in MiB per minute."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(t for t, _ in points) / n
    my = sum(m for _, m in points) / n
    num = sum((t - mx) * (m - my) for t, m in points)
    den = sum((t - mx) ** 2 for t, _ in points) or 1.0
    return num / den * 60


def thread_names(pid: int) -> list[str]:
    names = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                names.append(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip())
            except OSError:
                pass
    except OSError:
        pass
    return names


def series_by_camera(metrics: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in metrics.splitlines():
        m = re.search(r'camera="([^"]*)"', line)
        if m and not line.startswith("#"):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def metric_samples(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for m in re.finditer(rf"^{name}(?:\{{(.*?)\}})? (\S+)$", metrics, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        out.append((labels, float(m.group(2))))
    return out


def metric_value(metrics: str, name: str) -> float | None:
    found = metric_samples(metrics, name)
    return found[0][1] if found else None


def probe(path: Path) -> dict:
    """ffprobe's view of a recording: valid, first timestamp and duration of the video."""
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=start_time,duration,nb_read_packets:format=start_time,duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=300,
    )
    try:
        info = json.loads(r.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    fmt = info.get("format", {})
    stream = (info.get("streams") or [{}])[0]
    start = float(stream.get("start_time") or fmt.get("start_time") or "nan")
    duration = float(fmt.get("duration") or stream.get("duration") or "nan")
    packets = int(stream.get("nb_read_packets") or 0)
    valid = r.returncode == 0 and not r.stderr.strip() and packets > 0 and duration > 0
    return {"valid": valid, "start": start, "duration": duration, "packets": packets,
            "error": r.stderr.strip()[:300]}


def check_recordings(root: Path, cameras: list[str], reconnects: dict[str, list[float]],
                     gap_tolerance: float) -> dict:
    """Probes every file; for the soak cameras, checks that consecutive files of one publisher
    session join without a gap (the next starts where the previous ended, in media time)."""
    files = sorted(root.rglob("*.mp4"))
    report = {"files": len(files), "invalid": [], "joins": 0, "session_breaks": 0, "gaps": []}
    probes = {f: probe(f) for f in files}
    report["invalid"] = [f"{f.relative_to(root)}: {p['error'] or 'no packets'}" for f, p in probes.items()
                         if not p["valid"]]
    for cam in cameras:
        mine = sorted((f for f in files if f.parent.parent.name == cam), key=lambda f: f.name)
        for prev, nxt in zip(mine, mine[1:]):
            a, b = probes[prev], probes[nxt]
            if not (a["valid"] and b["valid"]):
                continue
            delta = b["start"] - (a["start"] + a["duration"])
            closed = prev.stat().st_mtime
            near_reconnect = any(abs(closed - t) < 15 for t in reconnects.get(cam, []))
            if abs(delta) <= gap_tolerance:
                report["joins"] += 1
            elif near_reconnect:
                report["session_breaks"] += 1
            else:
                report["gaps"].append(f"{cam}: {prev.name} → {nxt.name}: {delta:+.3f} s")
    return report


# ---------------------------------------------------------------- run


def default_worker() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "kamera-worker"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60, help="length of the run")
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--gop-seconds", type=float, default=1.0,
                    help="keyframe interval of the clip; 1 s (a common camera default) keeps frame "
                         "extraction at 1 fps to keyframes, so 16 cameras fit 2 cores")
    ap.add_argument("--viewers", type=int, default=2, help="LL-HLS viewers per camera")
    ap.add_argument("--reconnect-minutes", type=float, default=5, help="each publisher reconnects this often")
    ap.add_argument("--segment-minutes", type=float, default=5, help="recording --segment-duration")
    ap.add_argument("--keys-per-hour", type=float, default=2000, help="distinct one-second stream keys")
    ap.add_argument("--idle-release", default="60s", help="the worker's --idle-release")
    ap.add_argument("--slow-seconds", type=float, default=3.0, help="callback time of the slow processor")
    ap.add_argument("--interval", type=float, default=30, help="seconds between memory samples")
    ap.add_argument("--settle-minutes", type=float, default=10, help="the slope is taken after this")
    ap.add_argument("--worker", type=Path, default=default_worker())
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dir (recordings, logs); by default it is removed after the figures, "
                         "since an hour of 16 cameras records tens of GiB")
    ap.add_argument("--out", help="results file stem (default: <date>-<machine>-soak[-smoke])")
    args = ap.parse_args()
    if not args.worker.exists():
        print(f"soak: {args.worker} is missing: cargo build --release -p kamera-worker", file=sys.stderr)
        return 2
    smoke = args.minutes < 30
    settle = min(args.settle_minutes, args.minutes / 2)
    clip = camera_clip(args.gop_seconds)
    work = Path(tempfile.mkdtemp(prefix="kamera-soak-"))
    data = work / "data"
    rtmp, port = free_port(), free_port()
    worker = subprocess.Popen(
        [str(args.worker), "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{port}",
         "--data-dir", str(data), "--segment-duration", f"{args.segment_minutes * 60:.0f}s",
         "--idle-release", args.idle_release, "--log", "info"],
        stdin=subprocess.DEVNULL, stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT,
    )
    wait_port(port)
    http = f"http://127.0.0.1:{port}"
    names = [f"cam{i:02d}" for i in range(args.cameras)]
    every = args.reconnect_minutes * 60
    cams = [Camera(c, clip, f"rtmp://127.0.0.1:{rtmp}/live/{c}", work, every, every * (i + 1) / len(names))
            for i, c in enumerate(names)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk" / "python" / "src"))
    processors = subprocess.Popen(
        [sys.executable, "-c", PROCESSORS, str(data / "frames.sock"), str(args.slow_seconds), *names],
        env=env, stdout=subprocess.DEVNULL, stderr=open(work / "processors.log", "w"))
    stop = threading.Event()
    viewers = [Viewer(port, c, stop) for c in names for _ in range(args.viewers)]
    print(f"soak: {args.cameras} cameras, {len(viewers)} viewers, {args.minutes:g} min, work dir {work}", flush=True)

    def live() -> int:
        text = http_get(f"{http}/api/cameras") or "{}"
        return sum(1 for c in json.loads(text).get("cameras", []) if c.get("live"))

    deadline = time.time() + 60
    while live() < len(names) and time.time() < deadline:
        time.sleep(1)
    for v in viewers:
        v.start()
    time.sleep(min(20, args.minutes * 60 / 10))  # every window filled, every processor connected
    metrics0 = http_get(f"{http}/metrics") or ""
    base_threads = len(thread_names(worker.pid))
    base_rss = memory(worker.pid)[0] / 2**20
    base_series = series_by_camera(metrics0)
    keys_span = args.minutes * 60 * 0.8  # the last fifth of the run lets the keys be released
    n_keys = round(args.keys_per_hour * args.minutes / 60)
    keys = RandomKeys(clip, rtmp, n_keys, keys_span, stop)
    keys.start()

    samples: list[dict] = []
    t0 = time.time()
    next_sample = t0
    peak_cameras = 0
    try:
        while time.time() - t0 < args.minutes * 60:
            for c in cams:
                c.tick()
            if time.time() >= next_sample:
                rss, _ = memory(worker.pid)
                pss = sum(memory(p)[1] for p in tree([worker.pid]))
                text = http_get(f"{http}/metrics") or ""
                held = metric_value(text, "kamera_cameras")
                peak_cameras = max(peak_cameras, int(held or 0))
                samples.append({"t_s": round(time.time() - t0, 1), "rss_mib": round(rss / 2**20, 2),
                                "pss_mib": round(pss / 2**20, 2), "threads": len(thread_names(worker.pid)),
                                "cameras": held, "camera_series": sum(series_by_camera(text).values())})
                s = samples[-1]
                print(f"soak: {s['t_s'] / 60:5.1f} min  RSS {s['rss_mib']:7.1f} MiB  PSS {s['pss_mib']:7.1f} MiB  "
                      f"threads {s['threads']:3d}  cameras {held}", flush=True)
                next_sample += args.interval
            time.sleep(1)
        # The random keys are done; wait until the idle ones are released.
        keys.join(timeout=120)
        release_deadline = time.time() + 300
        while time.time() < release_deadline:
            text = http_get(f"{http}/metrics") or ""
            if metric_value(text, "kamera_cameras") == len(names):
                break
            time.sleep(2)
        # Tokio's blocking threads idle out after 10 s.
        time.sleep(15)
        metrics1 = http_get(f"{http}/metrics") or ""
        end_threads = thread_names(worker.pid)
        end_rss = memory(worker.pid)[0] / 2**20
    finally:
        stop.set()
        for c in cams:
            c.end_session()
        processors.send_signal(signal.SIGINT)
        try:
            processors.wait(timeout=10)
        except subprocess.TimeoutExpired:
            processors.kill()
        worker.terminate()
        worker.wait(timeout=30)

    # ------------------------------------------------ figures
    # The slope is taken while the load is steady: after the settling time, while keys still come.
    steady = [s for s in samples if settle * 60 <= s["t_s"] <= keys_span]
    after = [(s["t_s"], s["rss_mib"]) for s in steady]
    after_pss = [(s["t_s"], s["pss_mib"]) for s in steady]
    series1 = series_by_camera(metrics1)
    leftover_series = {c: n for c, n in series1.items() if c not in names}
    key_threads = [n for n in end_threads if n.startswith(("rec-rk", "frames-rk"))]
    drops = []
    for family in ("kamera_hls_dropped_total", "kamera_recording_dropped_total", "kamera_frames_dropped_total"):
        for labels, v in metric_samples(metrics1, family):
            drops.append({"metric": family, **labels, "value": v})
    healthy = [d for d in drops if d["value"] > 0 and not d.get("processor", "").startswith(SLOW)]
    slow = [d for d in drops if d.get("processor", "").startswith(SLOW)]
    sessions = [{"camera": c.name, **s} for c in cams for s in c.sessions]
    speeds = [s["pace"] for s in sessions if s["pace"] is not None]
    recordings = check_recordings(data / "recordings", names, {c.name: c.reconnects for c in cams}, 0.1)
    viewer_stats = [{"camera": v.camera, "parts": v.parts, "mib": round(v.bytes / 2**20, 1), "errors": v.errors,
                     "longest_wait_s": round(v.longest_wait, 2)} for v in viewers]
    slope = slope_per_minute(after)
    slope_pss = slope_per_minute(after_pss)
    result = {
        "kind": "smoke" if smoke else "full",
        "command": "python3 bench/soak.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
                    "arch": platform.machine()},
        "started": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(args) | {"worker": str(args.worker), "keys": n_keys},
        # glibc's allocator tunables change how much freed memory RSS keeps; a run says which.
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "memory": {"settle_minutes": settle, "steady_until_minutes": round(keys_span / 60, 1),
                   "rss_slope_mib_per_min": slope,
                   "pss_slope_mib_per_min": slope_pss, "target_mib_per_min": 0.1,
                   "samples": samples},
        "release": {"baseline_threads": base_threads, "end_threads": len(end_threads),
                    "baseline_rss_mib": round(base_rss, 1), "end_rss_mib": round(end_rss, 1),
                    "leftover_key_threads": key_threads,
                    "baseline_series": sum(base_series.values()), "end_series": sum(series1.values()),
                    "leftover_key_series": leftover_series, "peak_cameras_held": peak_cameras,
                    "keys_published": keys.published, "keys_failed": keys.failed,
                    "released_total": metric_value(metrics1, "kamera_cameras_released_total"),
                    "refused": {k["result"]: v for k, v in metric_samples(metrics1, "kamera_ingest_sessions_total")}},
        "drops": {"healthy_nonzero": healthy, "slow_processor": slow},
        "publishers": {"sessions": len(sessions), "min_speed": min(speeds) if speeds else None,
                       "exited_early": [s for s in sessions if s["exited_early"]], "all": sessions},
        "viewers": viewer_stats,
        "recordings": recordings,
    }
    checks = {
        "rss slope < 0.1 MiB/min": slope is not None and slope < 0.1,
        "threads back to baseline (+2)": len(end_threads) <= base_threads + 2 and not key_threads,
        "no series of released keys": not leftover_series,
        "zero drops for healthy consumers": not healthy,
        "publishers at real time (≥ 0.98)": bool(speeds) and min(speeds) >= 0.98,
        "every recording valid": not recordings["invalid"],
        "no gaps across rotations": not recordings["gaps"],
        "viewers got parts": all(v["parts"] > 0 for v in viewer_stats),
    }
    result["checks"] = checks
    stem = args.out or (f"{dt.date.today()}-{platform.machine()}-{os.cpu_count()}core-soak"
                        + ("-smoke" if smoke else ""))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    md = report(result, settle)
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)
    if args.keep:
        print(f"soak: wrote {RESULTS / stem}.json and .md; work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
        print(f"soak: wrote {RESULTS / stem}.json and .md; work dir removed (--keep keeps it)")
    return 0 if all(checks.values()) else 1


def report(r: dict, settle: float) -> str:
    m, rel, pub, rec = r["memory"], r["release"], r["publishers"], r["recordings"]
    s = r["settings"]
    fmt = (lambda v, d=3: "n/a" if v is None else f"{v:+.{d}f}")
    speed = "n/a" if pub["min_speed"] is None else f"{pub['min_speed']:.3f}"
    lines = [
        f"# Kamera soak{' (SMOKE RUN: a short check of the script, not the one-hour result)' if r['kind'] == 'smoke' else ''}, {r['started'][:10]}",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cores']} cores, {r['machine']['system']}.  ",
        f"Load: {s['cameras']} cameras at 1080p (camera-like clip, 25 fps, GOP {s['gop_seconds']:g} s, 4 Mbit/s, `-c copy`), "
        f"{s['viewers']} LL-HLS viewers each (blocking reload), one SDK processor each (one slow: "
        f"{s['slow_seconds']:g} s callback), reconnect every {s['reconnect_minutes']:g} min, recording "
        f"rotating every {s['segment_minutes']:g} min, {s['keys']} one-second random stream keys, "
        f"`--idle-release {s['idle_release']}`, {s['minutes']:g} minutes. glibc malloc tunables: "
        f"{' '.join(f'{k}={v}' for k, v in r.get('malloc_env', {}).items()) or 'defaults'}.",
        "",
        "| check | result |",
        "|---|---|",
        *[f"| {k} | {'pass' if v else '**FAIL**'} |" for k, v in r["checks"].items()],
        "",
        f"- Memory slope from minute {settle:g} to {m['steady_until_minutes']:g} (the last random key): "
        f"RSS **{fmt(m['rss_slope_mib_per_min'])} MiB/min**, "
        f"PSS of the process tree {fmt(m['pss_slope_mib_per_min'])} MiB/min (target < 0.1).",
        f"- Release: {rel['keys_published']} keys published ({rel['keys_failed']} failed), "
        f"{rel['released_total']} cameras released, at most {rel['peak_cameras_held']} held at once. Threads "
        f"{rel['baseline_threads']} before the keys → {rel['end_threads']} after; RSS {rel['baseline_rss_mib']} → "
        f"{rel['end_rss_mib']} MiB; per-camera series "
        f"{rel['baseline_series']} → {rel['end_series']} (series of released keys left: {len(rel['leftover_key_series'])}).",
        f"- Drops: healthy consumers {len(r['drops']['healthy_nonzero'])} non-zero series; the slow processor "
        f"{sum(d['value'] for d in r['drops']['slow_processor']):g} frames replaced by newer ones (latest wins, expected).",
        f"- Publishers: {pub['sessions']} sessions, slowest pace {speed} media seconds per second "
        "(after each session's first 10 s, from ffmpeg's `-progress`); "
        f"{len(pub['exited_early'])} exited on their own.",
        f"- Recordings: {rec['files']} files, {len(rec['invalid'])} invalid; {rec['joins']} joins across rotations "
        f"without a gap, {rec['session_breaks']} at publisher reconnects, {len(rec['gaps'])} gaps.",
        f"- Viewers: {sum(v['parts'] for v in r['viewers'])} parts fetched, "
        f"{sum(v['errors'] for v in r['viewers'])} errors (reconnects included), longest wait for a new part "
        f"{max((v['longest_wait_s'] for v in r['viewers']), default=0):.1f} s.",
        "",
        "| minute | RSS (MiB) | PSS tree (MiB) | threads | cameras held | camera series |",
        "|---|---|---|---|---|---|",
        *[f"| {x['t_s'] / 60:.1f} | {x['rss_mib']:.1f} | {x['pss_mib']:.1f} | {x['threads']} | "
          f"{x['cameras']} | {x['camera_series']} |" for x in m["samples"]],
        "",
    ]
    if rec["invalid"] or rec["gaps"] or r["drops"]["healthy_nonzero"]:
        lines += ["Problems:", "", *[f"- {x}" for x in rec["invalid"] + rec["gaps"]],
                  *[f"- drop: {d}" for d in r["drops"]["healthy_nonzero"]], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
