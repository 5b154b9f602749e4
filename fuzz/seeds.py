#!/usr/bin/env python3
"""Regenerates the fuzz seed corpora (fuzz/corpus/<target>/) from real peers.

- FLV files, tag bodies, avcC records and SPS from real `ffmpeg -f flv` output of x264 and
  AAC at several profiles (baseline, high with cropping, 4:2:2 interlaced, 4:4:4 with
  scaling matrices, no audio).
- Enhanced RTMP (`hvc1`) FLV files, tag bodies, hvcC records and H.265 SPS from libx265
  through the static FFmpeg of the `imageio-ffmpeg` package (Debian's ffmpeg 5.1 writes no
  enhanced FLV): Main with a conformance window, Main 10, 4:2:2.
- RTMP sessions: what a real `ffmpeg` publisher (and a real `ffmpeg` player) sends to a real
  kamera-worker, captured write by write by a relay between them.
- Frame-protocol lines: what the real Python SDK sends (hello, acks with the detections its
  callbacks return) to a socket that speaks the worker's side.
- HTTP request targets and Range headers as players, browsers and ffmpeg send them.

Needs ffmpeg and the kamera-worker binary ($KAMERA_WORKER, else it builds it). Run from the
repository root: `python3 fuzz/seeds.py`. Seeds are named by content hash, so reruns only
add what changed; the whole corpus stays small (a few hundred KiB).
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

# (name, ffmpeg video options, audio?) - tiny pictures keep every seed a few KiB.
VARIANTS = [
    ("baseline", ["-s", "160x120", "-profile:v", "baseline", "-pix_fmt", "yuv420p"], True),
    ("high-cropped", ["-s", "170x98", "-profile:v", "high", "-pix_fmt", "yuv420p"], True),
    (
        "high422-interlaced",
        ["-s", "128x96", "-profile:v", "high422", "-pix_fmt", "yuv422p",
         "-flags", "+ildct+ilme", "-x264-params", "interlaced=1"],
        True,
    ),
    ("high444-cqm", ["-s", "96x64", "-profile:v", "high444", "-pix_fmt", "yuv444p",
                     "-x264-params", "cqm=jvt"], False),
    ("high10", ["-s", "128x72", "-profile:v", "high10", "-pix_fmt", "yuv420p10le"], True),
]


def save(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def flv_tags(data: bytes):
    pos = int.from_bytes(data[5:9], "big") + 4
    while pos + 11 <= len(data):
        kind, size = data[pos] & 0x1F, int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | data[pos + 7] << 24
        yield kind, ts, data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4


def encode(work: Path, name: str, video: list, audio: bool) -> Path:
    out = work / f"{name}.flv"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", "testsrc2=rate=10:size=320x240"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    cmd += ["-t", "0.6", "-c:v", "libx264", "-g", "3", "-bf", "1", *video]
    cmd += ["-c:a", "aac", "-b:a", "32k", "-ac", "1"] if audio else ["-an"]
    subprocess.run(cmd + ["-f", "flv", str(out)], check=True)
    return out


def media_seeds(flv: Path) -> None:
    data = flv.read_bytes()
    save("flv_demux", data)
    kept = set()
    for kind, _, body in flv_tags(data):
        if kind not in (8, 9) or not body:
            continue
        # One body of each kind: sequence header, keyframe, inter frame, audio frame, end.
        key = (kind, body[0], body[1] if len(body) > 1 else None)
        if key in kept:
            continue
        kept.add(key)
        save("flv_tag", body)
        if kind == 9 and body[1] == 0:
            record = body[5:]
            save("avcc", record)
            sps_len = int.from_bytes(record[6:8], "big")
            save("sps", record[8:8 + sps_len])


# (name, ffmpeg video options) for H.265 through enhanced RTMP.
HEVC_VARIANTS = [
    ("hevc-main-cropped", ["-s", "170x98", "-pix_fmt", "yuv420p"]),
    ("hevc-main10", ["-s", "128x72", "-pix_fmt", "yuv420p10le"]),
    ("hevc-422", ["-s", "96x64", "-pix_fmt", "yuv422p"]),
]


def hevc_ffmpeg() -> str:
    """The static FFmpeg of `imageio-ffmpeg` (libx265, enhanced RTMP flv muxer)."""
    import imageio_ffmpeg  # noqa: PLC0415 - only the HEVC seeds need it

    return imageio_ffmpeg.get_ffmpeg_exe()


def hevc_seeds(work: Path) -> None:
    ffmpeg = hevc_ffmpeg()
    for name, video in HEVC_VARIANTS:
        out = work / f"{name}.flv"
        subprocess.run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=rate=10:size=320x240", "-t", "0.6",
             "-c:v", "libx265", "-preset", "ultrafast",
             "-x265-params", "log-level=error:keyint=3:bframes=1", *video,
             "-an", "-f", "flv", str(out)],
            check=True,
        )
        data = out.read_bytes()
        save("flv_demux", data)
        kept = set()
        for kind, _, body in flv_tags(data):
            if kind != 9 or len(body) < 5:
                continue
            if body[0] not in kept:
                kept.add(body[0])
                save("flv_tag", body)
            if body[0] & 0x8F == 0x80:  # enhanced sequence start
                record = body[5:]
                # Without the SEI array libx265 adds (its option string): small seeds.
                save("hvcc", record[:22] + bytes([3]) + without_sei(record[23:]))
                save("h265_sps", next(nal for t, nal in hvcc_nals(record) if t == 33))


def hvcc_nals(record: bytes):
    pos = 23
    for _ in range(record[22]):
        nal_type, count = record[pos] & 0x3F, int.from_bytes(record[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(record[pos:pos + 2], "big")
            yield nal_type, record[pos + 2:pos + 2 + size]
            pos += 2 + size


def without_sei(arrays: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(arrays):
        nal_type, count = arrays[pos] & 0x3F, int.from_bytes(arrays[pos + 1:pos + 3], "big")
        end = pos + 3
        for _ in range(count):
            end += 2 + int.from_bytes(arrays[end:end + 2], "big")
        if nal_type in (32, 33, 34):
            out += arrays[pos:end]
        pos = end
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Relay:
    """Accepts one client, connects it to the worker, records what the client sends."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.writes = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.upstream))

        def pump(src, dst, record):
            while True:
                try:
                    chunk = src.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if record:
                    self.writes.append(chunk)
                try:
                    dst.sendall(chunk)
                except OSError:
                    return

        back = threading.Thread(target=pump, args=(server, client, False), daemon=True)
        back.start()
        pump(client, server, True)
        back.join(timeout=10)
        client.close()
        server.close()


def framed(writes) -> bytes:
    """The client's writes as the rtmp_session target reads them: 2-byte length, bytes."""
    out = bytearray()
    for w in writes:
        for i in range(0, len(w), 0xFFFF):
            piece = w[i:i + 0xFFFF]
            out += len(piece).to_bytes(2, "big") + piece
    return bytes(out)


def worker_binary() -> Path:
    if os.environ.get("KAMERA_WORKER"):
        return Path(os.environ["KAMERA_WORKER"])
    subprocess.run(["cargo", "build", "-q", "-p", "kamera-worker", "--bin", "kamera-worker"],
                   check=True, cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "kamera-worker"


def rtmp_seeds(work: Path, files: dict) -> None:
    rtmp, http = free_port(), free_port()
    worker = subprocess.Popen(
        [str(worker_binary()), "--rtmp-listen", f"127.0.0.1:{rtmp}",
         "--http-listen", f"127.0.0.1:{http}", "--data-dir", str(work / "data"),
         "--no-recording", "--log", "warn"],
    )
    try:
        wait_for_port(rtmp, time.monotonic() + 30)
        sessions = [
            ("publish", ["-re", "-i", str(files["baseline"]), "-c", "copy", "-f", "flv"], "cam1"),
            ("publish", ["-i", str(files["high444-cqm"]), "-c", "copy", "-f", "flv"], "cam2?key=x"),
            ("play", ["-t", "1", "-f", "null", "-"], "nobody"),
        ]
        for kind, args, key in sessions:
            relay = Relay(rtmp)
            url = f"rtmp://127.0.0.1:{relay.port}/live/{key}"
            cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
            cmd += ([*args, url] if kind == "publish" else ["-i", url, *args])
            subprocess.run(cmd, timeout=60)  # the play session is refused: a non-zero exit
            relay.thread.join(timeout=30)
            save("rtmp_session", framed(relay.writes))
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def sdk_seeds(work: Path) -> None:
    """Plays the worker's side of the frame socket for the real SDK and records its lines."""
    sys.path.insert(0, str(ROOT / "sdk" / "python" / "src"))
    import kamera  # noqa: E402  (the SDK from this checkout)

    path = work / "frames.sock"
    jpeg = work / "f.jpg"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48", "-frames:v", "1", str(jpeg)], check=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    results = iter([
        [{"label": "person", "confidence": 0.91, "box": [12, 40, 88, 200]},
         {"label": "car", "confidence": 0.5, "box": [0.5, 1.5, 20.25, 10.0], "track_id": 7}],
        None,
        {"label": "dog", "confidence": 0.3},
        {"detections": [{"label": "motion", "area": 0.12}], "model": "mog2"},
    ])

    def on_frame(camera, frame_path, data):
        return next(results, None)

    stop = threading.Event()
    sdk = threading.Thread(
        target=kamera.run, daemon=True,
        kwargs=dict(callback=on_frame, cameras=["front-door", "lobby-*"], socket=path,
                    concurrency=2, fps=2.0, processor="yolo", stop=stop))
    sdk.start()
    conn, _ = listener.accept()
    conn.settimeout(10)
    received = bytearray()

    def lines() -> int:
        return received.count(b"\n")

    def read_until(n: int) -> None:
        while lines() < n:
            received.extend(conn.recv(65536))

    read_until(1)  # the hello
    conn.sendall(b'{"type":"welcome","version":1,"worker":"kamera-worker","fps":1.0}\n')
    for seq, camera in enumerate(["front-door", "lobby-2", "front-door", "lobby-2"], 1):
        note = {"type": "frame", "camera": camera, "seq": seq, "path": str(jpeg),
                "captured_at": "2026-11-24T08:00:01.000Z", "pts_ms": 1000 * seq,
                "width": 64, "height": 48}
        conn.sendall(json.dumps(note).encode() + b"\n")
        read_until(1 + seq)
    stop.set()
    conn.close()
    sdk.join(timeout=10)
    all_lines = bytes(received).splitlines(keepends=True)
    save("frame_protocol", bytes(received))
    for line in all_lines:
        save("frame_protocol", line)


HTTP_REQUESTS = [
    b"/hls/front-door/index.m3u8",
    b"/hls/front-door/stream.m3u8",
    b"/hls/front-door/stream.m3u8?_HLS_msn=12&_HLS_part=3",
    b"/hls/front-door/stream.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
    b"/hls/front-door/stream.m3u8?_HLS_msn=40&_HLS_skip=v2&token=viewer-token-0123456789",
    b"/hls/front-door/part12.3.m4s?token=viewer-token-0123456789",
    b"/hls/front-door/seg12.m4s",
    b"/hls/front-door/init-2.mp4\nBearer viewer-token-0123456789",
    b"/cameras/front-door?token=viewer-token-0123456789",
    b"/frames/front-door/latest.jpg\nbearer  viewer-token-0123456789 ",
    b"/recordings/front-door/2026-11-24/front-door-20261124T080000Z.mp4\nBearer rec-token-abcdefgh",
    b"/recordings/\nBasic dXNlcjpwYXNz",
    b"/api/cameras/front-door/detections?token=api%2Dtoken",
    b"/metrics",
]

# (file length, Range header) as browsers, players, curl and ffmpeg send them.
RANGES = [
    (10_000_000, b"bytes=0-"),
    (10_000_000, b"bytes=0-1"),
    (10_000_000, b"bytes=1048576-2097151"),
    (10_000_000, b"bytes=-500"),
    (500, b"bytes=9999-"),
    (10_000_000, b"bytes=0-99, 200-299"),
    (0, b"bytes=0-"),
    (4096, b"front-door/2026-11-24/front-door-20261124T080000Z.mp4"),
    (4096, b"front-door/"),
]


def main() -> None:
    for tool in ("ffmpeg",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed to generate the seeds")
    shutil.rmtree(CORPUS, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {}
        for name, video, audio in VARIANTS:
            files[name] = encode(work, name, video, audio)
            media_seeds(files[name])
        hevc_seeds(work)
        rtmp_seeds(work, files)
        sdk_seeds(work)
    for request in HTTP_REQUESTS:
        save("http_request", request)
    for length, header in RANGES:
        save("record_range", length.to_bytes(8, "little") + header)
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"seeds: {sum(1 for f in CORPUS.rglob('*') if f.is_file())} files, {total} bytes")


if __name__ == "__main__":
    main()
