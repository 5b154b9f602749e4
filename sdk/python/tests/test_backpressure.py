"""Backpressure and isolation with the real worker: slow, stuck, garbage and killed
processors never hold back the others."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List

from conftest import received, start_processor, wait_for


def test_slow_processor_gets_newest_frames_while_fast_one_gets_all(
    tmp_path: Path, start_worker, publish, processes: List[subprocess.Popen]
) -> None:
    w = start_worker()
    publish(w.url("cam"))
    _, slow = start_processor(processes, tmp_path, "slow", w.socket, 5.0)
    _, fast = start_processor(processes, tmp_path, "fast", w.socket, 0.0)
    wait_for("slow processor's third frame", 40, lambda: len(received(slow)) >= 3)

    lags = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        lag = w.metric('kamera_processor_lag_seconds{camera="cam",processor="slow"}')
        if lag is not None:
            lags.append(lag)
        time.sleep(0.5)
    wait_for("slow processor's fourth frame", 15, lambda: len(received(slow)) >= 4)

    slow_seqs = [f["seq"] for f in received(slow)]
    gaps = [b - a for a, b in zip(slow_seqs, slow_seqs[1:])]
    # Each frame is the newest one when the callback returns (about 5 s later), not the next in a backlog.
    assert all(4 <= g <= 7 for g in gaps), slow_seqs
    fast_seqs = [f["seq"] for f in received(fast)]
    assert len(fast_seqs) >= 10
    assert fast_seqs == list(range(fast_seqs[0], fast_seqs[0] + len(fast_seqs))), fast_seqs
    assert all(f["jpeg"] for f in received(fast))

    busy = w.metric('kamera_frames_dropped_total{camera="cam",processor="slow",reason="processor_busy"}')
    assert busy is not None and busy >= 3
    assert w.metric('kamera_frames_dropped_total{camera="cam",processor="fast",reason="processor_busy"}') in (None, 0.0)
    assert lags and max(lags) <= 5 + 1 + 2, lags
    assert w.metric('kamera_detections_total{camera="cam",label="thing",processor="fast"}') >= 10


def test_stuck_garbage_and_killed_processors_do_not_affect_others(
    tmp_path: Path, start_worker, publish, processes: List[subprocess.Popen]
) -> None:
    w = start_worker()
    publish(w.url("cam"))
    _, fast = start_processor(processes, tmp_path, "fast", w.socket, 0.0)
    wait_for("frames for the healthy processor", 30, lambda: len(received(fast)) >= 2)

    # Connects, says hello, never reads.
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.connect(str(w.socket))
    stuck.sendall(b'{"type":"hello","version":1,"processor":"stuck","cameras":["*"]}\n')
    # Sends garbage, then a huge line.
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    garbage.connect(str(w.socket))
    garbage.sendall(b"\x00\xff not json at all\n")
    huge = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    huge.connect(str(w.socket))
    huge.sendall(b'{"type":"hello","version":1,"processor":"huge"}\n')
    try:
        huge.sendall(b"x" * (2 << 20))
    except OSError:
        pass  # the worker may already have closed it
    # Killed in the middle of a callback, with a frame in flight.
    victim, victim_out = start_processor(processes, tmp_path, "victim", w.socket, 30.0)
    wait_for("the victim holds a frame", 30, lambda: len(received(victim_out)) >= 1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    before = len(received(fast))
    wait_for("the healthy processor keeps receiving", 15, lambda: len(received(fast)) >= before + 4)
    assert w.proc.poll() is None, "worker died"
    assert w.get("/healthz")[0] == 200
    assert w.get("/frames/cam/latest.jpg")[0] == 200
    assert w.get("/hls/cam/index.m3u8")[0] == 200
    wait_for("the killed processor is gone", 10, lambda: w.metric(
        'kamera_processor_connected{camera="cam",processor="victim"}') == 0.0)
    assert w.metric('kamera_processor_connected{camera="cam",processor="stuck"}') == 1.0
    garbage.settimeout(5)
    assert b'"error"' in garbage.recv(4096)
    log = w.log.read_text()
    assert "processor dropped" in log or "processor refused" in log
    for s in (stuck, garbage, huge):
        s.close()
