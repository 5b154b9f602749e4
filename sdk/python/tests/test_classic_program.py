"""The classic `rtmp_to_llhls` program, unchanged, against the real worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

from conftest import free_port, python_env, wait_for, worker_bin

CLASSIC = '''
import json
from rtmp_to_llhls import set_frame_callback, main

def my_ai_processor(stream_key, frame_path, frame_data):  # str, pathlib.Path, JPEG bytes
    print(json.dumps({
        "stream_key": stream_key,
        "path_type": type(frame_path).__name__,
        "path": str(frame_path),
        "same_bytes": frame_path.read_bytes() == frame_data,
        "jpeg": frame_data[:2] == b"\\xff\\xd8",
    }), flush=True)

set_frame_callback(my_ai_processor)
main()
'''


def test_classic_program_runs_unchanged_and_receives_two_cameras(
    tmp_path: Path, publish, processes: List[subprocess.Popen]
) -> None:
    program = tmp_path / "my_ai.py"
    program.write_text(CLASSIC)
    rtmp = f"127.0.0.1:{free_port()}"
    out = (tmp_path / "stdout.jsonl").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(program)],
        cwd=tmp_path,
        stdout=out,
        stderr=(tmp_path / "stderr.log").open("wb"),
        env=python_env(
            KAMERA_WORKER=str(worker_bin()),
            KAMERA_RTMP_LISTEN=rtmp,
            KAMERA_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
            KAMERA_DATA_DIR=str(tmp_path / "data"),
            KAMERA_NO_RECORDING="true",
        ),
    )
    processes.append(proc)
    # main() started a worker: its RTMP port opens.
    def rtmp_open() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "stderr.log").read_text())
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", int(rtmp.split(":")[1]))) == 0
    wait_for("the worker started by main()", 30, rtmp_open)
    publish(f"rtmp://{rtmp}/live/cam1")
    publish(f"rtmp://{rtmp}/live/cam2")

    def calls() -> List[dict]:
        text = (tmp_path / "stdout.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    wait_for("callbacks for both cameras", 40,
             lambda: {c["stream_key"] for c in calls()} >= {"cam1", "cam2"} and len(calls()) >= 4)
    for call in calls():
        assert call["path_type"] in ("PosixPath", "Path", "WindowsPath")
        assert call["same_bytes"] and call["jpeg"], call
    # The seed's layout: FRAMES_DIR (default ./frames) / <stream_key> / latest.jpg.
    assert (tmp_path / "frames" / "cam1" / "latest.jpg").exists()
    assert (tmp_path / "frames" / "cam2" / "latest.jpg").exists()

    # Ctrl-C stops the program and the worker it started: the program exits cleanly, after the
    # worker has shut down on SIGTERM (not killed after the grace period).
    (worker,) = wait_for("the worker's process", 5, lambda: children(proc.pid))
    try:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        stderr = (tmp_path / "stderr.log").read_text()
        assert code == 0, stderr
        assert not running(worker), "the worker outlived the program"
        assert "stopping the Kamera worker" in stderr, stderr
        worker_log = (tmp_path / "stdout.jsonl").read_text()  # the worker shares the program's stdout
        assert "SIGTERM received" in worker_log and "shutting down" in worker_log, worker_log[-2000:]
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(rtmp.split(":")[1]))) != 0, "RTMP port still open"
    finally:
        if running(worker):
            os.kill(worker, signal.SIGKILL)


def children(pid: int) -> List[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
