#!/usr/bin/env python3
"""Kamera against its peers on the same load, side by side, on this machine.

Each system gets N cameras published by `ffmpeg -re -stream_loop -1 -c copy` from a
pre-encoded sample on loopback, with equivalent work: HLS (a segment per GOP), recording in
5-minute files, and one JPEG per second per camera. We measure the CPU and memory of the
system's whole process tree (publishers excluded), whether the publishers kept real time,
and whether the work was really done (HLS advancing, JPEGs updating, recordings growing,
outputs decodable). A run that did not keep up is marked so, never reported as a speed.

Loads (`--loads`): the test pattern (30 fps, GOP 1 s) and camera-like content (moving, with
sensor grain that costs a decoder what footage does) at 15 or 25 fps with 2 or 4 s GOPs, as
IP cameras send. Systems (`--systems`) come in two kinds of frame sampling, compared only
with each other: `exact` (a JPEG every second, decoding the frames it takes to reach it:
kamera, ffmpeg-per-camera, nginx-rtmp) and `keyframes` (only keyframes decoded:
kamera-keyframes, and the peers with `-skip_frame nokey`, their best setting for that job).

Standard library only. Usage: python3 bench/compare.py --n 1,4,8 --duration 60
  --loads pattern,camera-25fps-gop2 --systems kamera,kamera-keyframes,ffmpeg-per-camera,...
KAMERA_BENCH_WORKER: the worker binary (default target/release/kamera-worker).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
WORKER = Path(os.environ.get("KAMERA_BENCH_WORKER", ROOT / "target" / "release" / "kamera-worker"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

RESOLUTIONS = {"1080p": (1920, 1080, "4M"), "720p": (1280, 720, "2M")}


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    """What the cameras send: content, frame rate and keyframe interval (H.264, no B-frames,
    as IP cameras encode, + AAC)."""

    name: str
    content: str  # "pattern" (testsrc2, smooth) or "camera" (moving, with sensor grain)
    fps: int
    gop_s: int
    seconds: int  # sample length, a whole number of GOPs so that the loop keeps the GOP

    def describe(self) -> str:
        what = ("testsrc2 test pattern" if self.content == "pattern"
                else "camera-like (moving testsrc2 with temporal sensor grain)")
        return f"{what}, {self.fps} fps, GOP {self.gop_s} s"


# Grain that changes every frame is what costs a decoder on real footage: flat test patterns
# predict almost perfectly, a camera's sensor noise never does.
GRAIN = "noise=c0s=14:c0f=t+u:c1s=6:c1f=t+u:c2s=6:c2f=t+u"
LOADS = {load.name: load for load in (
    Load("pattern", "pattern", 30, 1, 30),
    Load("camera-15fps-gop2", "camera", 15, 2, 24),
    Load("camera-25fps-gop2", "camera", 25, 2, 24),
    Load("camera-25fps-gop4", "camera", 25, 4, 24),
)}


def sample(resolution: str, load: Load = LOADS["pattern"]) -> Path:
    """A pre-encoded H.264 (no B-frames) + AAC sample of `load`, encoded once and cached."""
    w, h, rate = RESOLUTIONS[resolution]
    name = "sample" if load.name == "pattern" else f"sample-{load.name}"
    path = CACHE / f"{name}-{resolution}.flv"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.flv")
    print(f"bench: encoding the {resolution} {load.name} sample (once)", flush=True)
    video = f"testsrc2=size={w}x{h}:rate={load.fps}:duration={load.seconds}"
    if load.content == "camera":
        video += f",{GRAIN}"
    gop = str(load.fps * load.gop_s)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", video,
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={load.seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
         "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
         "-b:v", rate, "-maxrate", rate, "-bufsize", rate,
         "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(tmp)],
        check=True,
    )
    tmp.rename(path)
    return path


class Publisher:
    """One `ffmpeg -re -c copy` publisher; `-progress` tells how far it got."""

    def __init__(self, clip: Path, url: str, progress: Path):
        self.progress = progress
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostats", "-re",
             "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
             "-progress", str(progress), "-f", "flv", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def media_seconds(self) -> float | None:
        try:
            text = self.progress.read_text()
        except OSError:
            return None
        found = re.findall(r"^out_time_us=(\d+)", text, re.M)
        return int(found[-1]) / 1e6 if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- process accounting


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(roots: list[int]) -> set[int]:
    kids = children_map()
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    return seen


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread group of one process (thread names with camera names and
    numbers folded, e.g. `rec-cam03` → `rec-*`, `tokio-runtime-w` stays)."""
    groups: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return groups
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        name = re.sub(r"cam\d+", "*", name)
        fields = stat.rsplit(")", 1)[1].split()
        groups[name] = groups.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return groups


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    """Waits until something listens on `port`, without connecting (an `ffmpeg -listen 1`
    would take a probe connection for its one publisher)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def http_get(url: str, timeout: float = 5) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode("utf-8", "replace")
    except Exception:
        return None


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def media_sequence(playlist: str | None) -> int | None:
    if not playlist:
        return None
    m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    segments = playlist.count("#EXTINF")
    return int(m.group(1)) + segments if m else None


def decodes(path: Path, seconds: int = 3) -> bool:
    if not path.exists():
        return False
    r = subprocess.run(
        ["ffmpeg", "-v", "error", "-t", str(seconds), "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )
    return r.returncode == 0 and "rror" not in r.stderr


# ---------------------------------------------------------------- systems under test


@dataclass
class Progress:
    """What a system has produced for one camera, sampled at one instant."""

    hls_sequence: int | None = None
    jpeg_count: int | None = None
    jpeg_mtime: float | None = None
    recording_bytes: int = 0


class System:
    name = ""
    # How frames are sampled: "exact" (a JPEG every second, decoding what that takes) or
    # "keyframes" (only keyframes are decoded: a JPEG per GOP when the GOP is longer than 1 s).
    # Ratios compare systems that do the same job.
    sampling = "exact"

    def __init__(self, work: Path, cameras: list[str], load: Load):
        self.work = work
        self.cameras = cameras
        self.load = load
        self.procs: list[subprocess.Popen] = []

    def jpegs_per_second(self) -> float:
        return 1.0 if self.sampling == "exact" else min(1.0, 1.0 / self.load.gop_s)

    def publish_url(self, camera: str) -> str:
        raise NotImplementedError

    def progress(self, camera: str) -> Progress:
        raise NotImplementedError

    def outputs_to_decode(self, camera: str) -> list[Path]:
        raise NotImplementedError

    def roots(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def version(self) -> str:
        return ""

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Kamera(System):
    name = "kamera"

    def __init__(self, work: Path, cameras: list[str], load: Load):
        super().__init__(work, cameras, load)
        self.rtmp, self.http = free_port(), free_port()
        self.data = work / "data"
        # As docs/hls.md advises: segments may be as long as the camera's GOP.
        max_segment = max(2, load.gop_s)
        self.procs.append(subprocess.Popen(
            [str(WORKER), "--rtmp-listen", f"127.0.0.1:{self.rtmp}",
             "--http-listen", f"127.0.0.1:{self.http}", "--data-dir", str(self.data),
             "--frame-fps", "1", "--frame-sampling", self.sampling,
             "--hls-max-segment-duration", f"{max_segment}s",
             "--segment-duration", "5m", "--log", "warn"],
            stdin=subprocess.DEVNULL, stdout=open(work / "kamera.log", "w"), stderr=subprocess.STDOUT,
        ))
        wait_port(self.http)

    def publish_url(self, camera: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp}/live/{camera}"

    def progress(self, camera: str) -> Progress:
        frames = self.data / "frames" / camera
        numbered = [int(f.stem) for f in frames.glob("[0-9]*.jpg")] if frames.exists() else []
        latest = frames / "latest.jpg"
        return Progress(
            hls_sequence=media_sequence(http_get(f"http://127.0.0.1:{self.http}/hls/{camera}/stream.m3u8")),
            jpeg_count=max(numbered) if numbered else None,
            jpeg_mtime=latest.stat().st_mtime if latest.exists() else None,
            recording_bytes=dir_bytes(self.data / "recordings" / camera),
        )

    def outputs_to_decode(self, camera: str) -> list[Path]:
        recs = sorted((self.data / "recordings" / camera).rglob("*.mp4*"))
        return recs[-1:] + [self.data / "frames" / camera / "latest.jpg"]

    def version(self) -> str:
        r = subprocess.run([str(WORKER), "--version"], capture_output=True, text=True)
        return r.stdout.strip()

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.http}/metrics") or ""


class KameraKeyframes(Kamera):
    """The worker with `--frame-sampling keyframes`."""

    name = "kamera-keyframes"
    sampling = "keyframes"


class FfmpegPerCamera(System):
    """The classic design: one ffmpeg per camera doing HLS, 5-minute segments and fps=1 JPEG."""

    name = "ffmpeg-per-camera"
    # Decoder options for the JPEG branch: none decodes every frame.
    decode: list[str] = []

    def __init__(self, work: Path, cameras: list[str], load: Load):
        super().__init__(work, cameras, load)
        self.ports = {}
        for cam in cameras:
            port = free_port()
            self.ports[cam] = port
            for sub in ("hls", "rec", "frames"):
                (work / sub / cam).mkdir(parents=True, exist_ok=True)
            self.procs.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostats",
                 "-listen", "1", *self.decode, "-i", f"rtmp://127.0.0.1:{port}/live/{cam}",
                 "-map", "0", "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
                 "-hls_flags", "delete_segments", "-hls_segment_type", "fmp4",
                 str(work / "hls" / cam / "stream.m3u8"),
                 "-map", "0", "-c", "copy", "-f", "segment", "-segment_time", "300",
                 "-reset_timestamps", "1", str(work / "rec" / cam / "%05d.mp4"),
                 "-map", "0:v", "-vf", "fps=1", "-q:v", "5", "-update", "1", "-y",
                 str(work / "frames" / cam / "latest.jpg")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(work / f"ffmpeg-{cam}.log", "w"),
            ))
        for port in self.ports.values():
            wait_port(port)

    def publish_url(self, camera: str) -> str:
        return f"rtmp://127.0.0.1:{self.ports[camera]}/live/{camera}"

    def progress(self, camera: str) -> Progress:
        latest = self.work / "frames" / camera / "latest.jpg"
        playlist = self.work / "hls" / camera / "stream.m3u8"
        return Progress(
            hls_sequence=media_sequence(playlist.read_text() if playlist.exists() else None),
            jpeg_mtime=latest.stat().st_mtime if latest.exists() else None,
            recording_bytes=dir_bytes(self.work / "rec" / camera),
        )

    def outputs_to_decode(self, camera: str) -> list[Path]:
        return [self.work / "hls" / camera / "stream.m3u8", self.work / "frames" / camera / "latest.jpg"]

    def version(self) -> str:
        return subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]


class FfmpegPerCameraKeyframes(FfmpegPerCamera):
    """The same, told to decode keyframes only (its best setting for keyframe sampling)."""

    name = "ffmpeg-per-camera-nokey"
    sampling = "keyframes"
    decode = ["-skip_frame", "nokey"]


NGINX_CONF = """\
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
worker_processes 1;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application live {{
      live on;
      hls on;
      hls_path {work}/hls;
      hls_fragment 1s;
      hls_playlist_length 6s;
      record all;
      record_path {work}/rec;
      record_interval 5m;
      record_unique on;
      exec_push ffmpeg -hide_banner -loglevel error {decode}-i rtmp://127.0.0.1:{port}/live/$name -vf fps=1 -q:v 5 -update 1 -y {work}/frames/$name.jpg;
    }}
  }}
}}
"""


class NginxRtmp(System):
    """nginx-rtmp doing HLS and recording, with an ffmpeg frame grabber per stream."""

    name = "nginx-rtmp"
    decode = ""

    def __init__(self, work: Path, cameras: list[str], load: Load):
        super().__init__(work, cameras, load)
        if not Path("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists():
            raise RuntimeError("libnginx-mod-rtmp is not installed (bench/run.sh installs it)")
        self.port = free_port()
        for sub in ("hls", "rec", "frames"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=self.port, decode=self.decode))
        self.procs.append(subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(work)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        wait_port(self.port)

    def publish_url(self, camera: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{camera}"

    def progress(self, camera: str) -> Progress:
        latest = self.work / "frames" / f"{camera}.jpg"
        playlist = self.work / "hls" / f"{camera}.m3u8"
        rec = sum(f.stat().st_size for f in (self.work / "rec").glob(f"{camera}-*.flv"))
        return Progress(
            hls_sequence=media_sequence(playlist.read_text() if playlist.exists() else None),
            jpeg_mtime=latest.stat().st_mtime if latest.exists() else None,
            recording_bytes=rec,
        )

    def outputs_to_decode(self, camera: str) -> list[Path]:
        recs = sorted((self.work / "rec").glob(f"{camera}-*.flv"))
        return recs[-1:] + [self.work / "frames" / f"{camera}.jpg"]

    def version(self) -> str:
        r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return r.stderr.strip()


class NginxRtmpKeyframes(NginxRtmp):
    """The same, with the frame grabber decoding keyframes only."""

    name = "nginx-rtmp-nokey"
    sampling = "keyframes"
    decode = "-skip_frame nokey "


SYSTEMS = {cls.name: cls for cls in (Kamera, KameraKeyframes, FfmpegPerCamera,
                                     FfmpegPerCameraKeyframes, NginxRtmp, NginxRtmpKeyframes)}
# MediaMTX cannot be installed from this machine's package registries. Its slot: a class
# like the ones above that starts `mediamtx` with HLS, recording (recordSegmentDuration 5m)
# and a per-path `runOnReady` ffmpeg frame grabber, then `SYSTEMS["mediamtx"] = MediaMtx`.


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    system: str
    load: str
    sampling: str
    resolution: str
    n: int
    cores_per_camera: float
    mib_per_camera_pss: float
    mib_per_camera_rss: float
    realtime_ratio: float
    kept_real_time: bool
    valid: bool
    problems: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def histogram_quantile(metrics: str, name: str, q: float) -> float | None:
    """A quantile from a Prometheus histogram summed over every label set."""
    buckets: dict[float, float] = {}
    for m in re.finditer(rf"^{name}_bucket\{{(.*?)\}} (\S+)$", metrics, re.M):
        le = re.search(r'le="([^"]+)"', m.group(1))
        if le:
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + float(m.group(2))
    if not buckets:
        return None
    total = buckets.get(float("inf"), max(buckets.values()))
    if total == 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


def measure(system_name: str, load: Load, resolution: str, n: int, duration: float,
            warmup: float) -> Run:
    clip = sample(resolution, load)
    _, _, rate = RESOLUTIONS[resolution]
    bitrate = float(rate.rstrip("M")) * 1e6
    cameras = [f"cam{i:02d}" for i in range(n)]
    work = Path(tempfile.mkdtemp(prefix=f"kamera-bench-{system_name}-"))
    system = SYSTEMS[system_name](work, cameras, load)
    # Segments end on keyframes: one per GOP (at least a second) for every system.
    segment_s = max(1, load.gop_s)
    jpeg_rate = system.jpegs_per_second()
    publishers = [Publisher(clip, system.publish_url(c), work / f"progress-{c}.txt") for c in cameras]
    problems: list[str] = []
    try:
        time.sleep(warmup)
        pids0 = tree(system.roots())
        cpu0 = {p: cpu_seconds(p) or 0.0 for p in pids0}
        media0 = [p.media_seconds() or 0.0 for p in publishers]
        prog0 = {c: system.progress(c) for c in cameras}
        threads0 = {p: thread_cpu(p) for p in system.roots()} if isinstance(system, Kamera) else {}
        t0 = time.time()
        time.sleep(duration)
        wall = time.time() - t0
        pids1 = tree(system.roots())
        cpu = sum((cpu_seconds(p) or 0.0) - cpu0.get(p, 0.0) for p in pids1)
        mem = [memory(p) for p in pids1]
        media1 = [p.media_seconds() or 0.0 for p in publishers]
        prog1 = {c: system.progress(c) for c in cameras}
        extra = {}
        if isinstance(system, Kamera):
            # Where the worker's time goes, by thread group (cores per camera).
            by_thread: dict[str, float] = {}
            for p, before in threads0.items():
                for name, secs in thread_cpu(p).items():
                    by_thread[name] = by_thread.get(name, 0.0) + secs - before.get(name, 0.0)
            extra["threads_cores_per_camera"] = {
                k: round(v / wall / n, 4) for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v > 0
            }
            metrics = system.metrics()
            for label, name in (("part_delay", "kamera_hls_part_delay_seconds"),
                                ("frame_extract", "kamera_frame_extract_seconds")):
                for q in (0.5, 0.99):
                    v = histogram_quantile(metrics, name, q)
                    if v is not None:
                        extra[f"{label}_p{int(q * 100)}_s"] = v

        ratios = [(m1 - m0) / wall for m0, m1 in zip(media0, media1)]
        realtime = min(ratios) if ratios else 0.0
        kept = realtime >= 0.97
        if not kept:
            problems.append(f"publishers slowed to {realtime:.2f}x real time")
        for c in cameras:
            a, b = prog0[c], prog1[c]
            if a.hls_sequence is None or b.hls_sequence is None:
                problems.append(f"{c}: no HLS playlist")
            elif b.hls_sequence - a.hls_sequence < 0.6 * wall / segment_s:
                problems.append(f"{c}: HLS advanced {b.hls_sequence - a.hls_sequence} segments in {wall:.0f} s")
            if b.jpeg_mtime is None or time.time() - b.jpeg_mtime > 2 + 1 / jpeg_rate:
                problems.append(f"{c}: JPEG not updating")
            if a.jpeg_count is not None and b.jpeg_count is not None:
                got = b.jpeg_count - a.jpeg_count
                if abs(got - wall * jpeg_rate) > 2:
                    problems.append(f"{c}: {got} JPEGs in {wall:.0f} s")
            grown = b.recording_bytes - a.recording_bytes
            if grown < 0.7 * bitrate / 8 * wall:
                problems.append(f"{c}: recording grew {grown} bytes in {wall:.0f} s")
    finally:
        for p in publishers:
            p.stop()
        system.stop()
    # Decode outputs of the first camera once everything is stopped (no CPU stolen from the run).
    for path in system.outputs_to_decode(cameras[0]):
        if not decodes(path):
            problems.append(f"{cameras[0]}: {path.name} does not decode")
    version = system.version()
    shutil.rmtree(work, ignore_errors=True)
    return Run(
        system=system_name, load=load.name, sampling=system.sampling, resolution=resolution, n=n,
        cores_per_camera=cpu / wall / n,
        mib_per_camera_pss=sum(p for _, p in mem) / n / 2**20,
        mib_per_camera_rss=sum(r for r, _ in mem) / n / 2**20,
        realtime_ratio=realtime, kept_real_time=kept,
        valid=kept and not problems, problems=problems,
        extra={"version": version, **extra},
    )


# ---------------------------------------------------------------- report


def report(runs: list[Run], args: argparse.Namespace, started: str) -> str:
    cpu = (Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].split(":", 1)[1].strip()
           if Path("/proc/cpuinfo").exists() else platform.processor())
    lines = [
        f"# Kamera benchmark, {started}",
        "",
        f"Command: `make bench BENCH_ARGS=\"{' '.join(sys.argv[1:])}\"`",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"Load: N cameras, `ffmpeg -re -stream_loop -1 -c copy` of a pre-encoded H.264 (no B-frames) "
        f"+ AAC sample per load (below); {args.duration:.0f} s measured after {args.warmup:.0f} s warm-up.",
        "Work per camera: HLS (one segment per GOP, at least 1 s), recording in 5-minute files, "
        "1 JPEG/s (`exact`), or a JPEG per keyframe at most 1/s (`keyframes`: Kamera's "
        "`--frame-sampling keyframes`, the peers' `-skip_frame nokey`).",
        "CPU and memory: the system's whole process tree (publishers excluded), from /proc.",
        "",
    ]
    versions = {r.system: r.extra.get("version", "") for r in runs}
    for name, v in versions.items():
        lines.append(f"- `{name}`: {v}")
    lines.append("")
    sections = sorted({(r.resolution, r.load) for r in runs},
                      key=lambda k: (k[0], list(LOADS).index(k[1]) if k[1] in LOADS else 99))
    for res, load in sections:
        here = [r for r in runs if r.resolution == res and r.load == load]
        described = LOADS[load].describe() if load in LOADS else load
        lines += [f"## {res}, {load}: {described}", "",
                  "| system | sampling | N | cores/camera | PSS MiB/camera | RSS MiB/camera | publishers' speed | valid |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in here:
            ok = "yes" if r.valid else "**no**: " + "; ".join(r.problems[:3])
            lines.append(f"| {r.system} | {r.sampling} | {r.n} | {r.cores_per_camera:.3f} | "
                         f"{r.mib_per_camera_pss:.1f} | {r.mib_per_camera_rss:.1f} | "
                         f"{r.realtime_ratio:.2f}x | {ok} |")
        lines.append("")
        lines += ["Ratios (Kamera ÷ peer doing the same sampling, same N, valid runs only; "
                  "below 1 means Kamera uses less):", ""]
        for kamera in [s for s in versions if s.startswith("kamera")]:
            mine = {r.n: r for r in here if r.system == kamera and r.valid}
            if not mine:
                continue
            sampling = next(iter(mine.values())).sampling
            for peer in [s for s in versions if not s.startswith("kamera")]:
                for r in [r for r in here if r.system == peer and r.valid and r.sampling == sampling]:
                    k = mine.get(r.n)
                    if k and r.cores_per_camera > 0 and r.mib_per_camera_pss > 0:
                        lines.append(f"- {kamera} vs {peer}, N={r.n}: CPU "
                                     f"{k.cores_per_camera / r.cores_per_camera:.3f}, memory (PSS) "
                                     f"{k.mib_per_camera_pss / r.mib_per_camera_pss:.2f}")
        lines.append("")
        lines += ["Largest N kept in real time:", ""]
        for name in sorted({r.system for r in here}, key=list(versions).index):
            ok = [r.n for r in here if r.system == name and r.kept_real_time]
            lines.append(f"- {name}: {max(ok) if ok else 'none'}")
        lines.append("")
    kx = [r for r in runs if r.system.startswith("kamera") and r.extra]
    if kx:
        lines += ["## Kamera's own figures", ""]
        for r in kx:
            figures = ", ".join(f"{k}={v}" for k, v in r.extra.items() if k not in ("version", "threads_cores_per_camera"))
            if figures:
                lines.append(f"- {r.system}, {r.resolution} {r.load} N={r.n}: {figures}")
            threads = r.extra.get("threads_cores_per_camera")
            if threads:
                top = ", ".join(f"`{k}` {v:.4f}" for k, v in list(threads.items())[:6])
                lines.append(f"  - cores per camera by worker thread: {top}")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="kamera,ffmpeg-per-camera,nginx-rtmp",
                    help=f"any of {', '.join(SYSTEMS)}")
    ap.add_argument("--loads", default="pattern", help=f"any of {', '.join(LOADS)}")
    ap.add_argument("--n", default="1,4,8", help="camera counts, ascending")
    ap.add_argument("--resolutions", default="1080p")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--name", default="", help="suffix of the results files' names")
    args = ap.parse_args()
    systems = args.systems.split(",")
    loads = args.loads.split(",")
    unknown = [s for s in systems if s not in SYSTEMS] + [l for l in loads if l not in LOADS]
    if unknown:
        print(f"unknown systems or loads: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if any(s.startswith("kamera") for s in systems) and not WORKER.exists():
        print(f"{WORKER} is missing: run `cargo build --release -p kamera-worker`", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs: list[Run] = []
    for res in args.resolutions.split(","):
        for load in loads:
            for name in systems:
                for n in [int(x) for x in args.n.split(",")]:
                    print(f"bench: {name} {res} {load} N={n} ...", flush=True)
                    try:
                        run = measure(name, LOADS[load], res, n, args.duration, args.warmup)
                    except Exception as e:  # a system that cannot start is reported, not fatal
                        print(f"bench: {name} N={n} failed: {e}", flush=True)
                        break
                    runs.append(run)
                    print(f"bench:   {run.cores_per_camera:.3f} cores/camera, {run.mib_per_camera_pss:.1f} MiB/camera, "
                          f"speed {run.realtime_ratio:.2f}x, valid={run.valid} {run.problems[:2]}", flush=True)
                    if not run.kept_real_time:
                        break  # larger N cannot keep up either
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started[:10]}-{platform.machine()}-{os.cpu_count()}core" + (f"-{args.name}" if args.name else "")
    (out / f"{stem}.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    text = report(runs, args, started)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
