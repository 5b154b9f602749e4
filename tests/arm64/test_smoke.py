"""The arm64 worker (cross-built by scripts/test-arm64.sh, or the release one of `make images`) runs under qemu-user-static
on this machine, with Debian's arm64 libraries: a short camera published by the host's ffmpeg is
ingested, served as LL-HLS, and a JPEG frame is extracted. Run by `make test-arm64`."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = pathlib.Path(os.environ.get("KAMERA_ARM64_WORKER", ROOT / "build" / "images" / "bin" / "arm64" / "kamera-worker"))
QEMU = shutil.which("qemu-aarch64-static")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def worker():
    assert QEMU, "qemu-aarch64-static is missing: bash scripts/setup.sh installs qemu-user-static"
    assert WORKER.exists(), f"{WORKER} is missing: scripts/images.sh --arch arm64 --binaries worker"
    header = subprocess.run(["readelf", "-h", WORKER], capture_output=True, text=True, check=True).stdout
    assert "AArch64" in header, "the worker binary is not an arm64 build"
    rtmp, http = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="kamera-arm64-") as tmp:
        log = open(f"{tmp}/worker.log", "wb")
        proc = subprocess.Popen(
            [QEMU, WORKER, "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}",
             "--data-dir", f"{tmp}/data"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield proc, rtmp, f"http://127.0.0.1:{http}", pathlib.Path(tmp)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def test_arm64_worker_ingests_serves_hls_and_extracts_a_jpeg(worker):
    proc, rtmp, base, tmp = worker
    wait_for("the arm64 worker's /healthz", lambda: get(f"{base}/healthz") is not None)
    publisher = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
         "-f", "lavfi", "-i", "sine", "-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
         "-c:a", "aac", "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/edge"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        playlist = wait_for("an LL-HLS part", lambda: (p := get(f"{base}/hls/edge/stream.m3u8").decode())
                            and "#EXT-X-PART:" in p and p)
        assert "#EXT-X-PART-INF" in playlist
        jpeg = wait_for("a JPEG frame", lambda: get(f"{base}/frames/edge/latest.jpg"))
        assert jpeg[:3] == b"\xff\xd8\xff", "not a JPEG"
        (tmp / "frame.jpg").write_bytes(jpeg)
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                                "-of", "csv=p=0", tmp / "frame.jpg"], capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == "mjpeg,320,240"
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
    assert proc.poll() is None, (tmp / "worker.log").read_text()
