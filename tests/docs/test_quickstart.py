"""The quick start's standalone commands, run as written (only the ports are changed)
against a real kamera-worker, so the documentation cannot drift from what works."""

import json
import pathlib
import re
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "target" / "debug" / "kamera-worker"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quickstart_commands():
    text = (ROOT / "docs" / "quickstart.md").read_text()
    block = re.search(r"<!-- quickstart:standalone -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "docs/quickstart.md lost its standalone block"
    return [c.strip() for c in block.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def wait_for(what, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_standalone_quickstart_commands_work_as_written():
    commands = quickstart_commands()
    assert commands[0].startswith("ffmpeg ") and "rtmp://localhost:1935/live/my-camera" in commands[0]
    rtmp, http = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        worker = subprocess.Popen(
            [str(WORKER), "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}",
             "--data-dir", f"{tmp}/data"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        publisher = None
        try:
            def local(cmd):
                return cmd.replace("localhost:1935", f"127.0.0.1:{rtmp}").replace("localhost:8080", f"127.0.0.1:{http}")

            def api():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/cameras/my-camera", timeout=2) as r:
                        return json.load(r)
                except Exception:
                    return None

            wait_for("worker", lambda: subprocess.run(["curl", "-sf", f"http://127.0.0.1:{http}/readyz"],
                                                       capture_output=True).returncode == 0)
            publisher = subprocess.Popen(shlex.split(local(commands[0])), cwd=tmp,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for("my-camera live", lambda: (api() or {}).get("live"))
            # The live view, a frame and a recording need a moment of media.
            wait_for("a frame", lambda: subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{http}/frames/my-camera/latest.jpg"]).returncode == 0)
            for cmd in commands[1:]:
                result = subprocess.run(shlex.split(local(cmd)) + ["--fail"], cwd=tmp, capture_output=True, timeout=30)
                assert result.returncode == 0, f"{cmd!r} failed: {result.stderr.decode()}"
                assert result.stdout or "-o" in cmd, f"{cmd!r} printed nothing"
            assert (pathlib.Path(tmp) / "latest.jpg").read_bytes()[:2] == b"\xff\xd8"
            assert api()["resolution"] == "1280x720"
        finally:
            if publisher:
                publisher.kill()
                publisher.wait()
            worker.terminate()
            worker.wait(timeout=15)
