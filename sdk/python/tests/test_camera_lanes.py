"""Per-camera lanes with the real worker: one slow camera does not slow the others."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Dict, List

import kamera
from conftest import Worker, wait_for

FPS = 2.0
SLOW_CALLBACK_SECONDS = 2.0
WINDOW_SECONDS = 8.0
CAMERAS = ["slow", "fast-1", "fast-2", "fast-3"]


def acked(w: Worker, camera: str, processor: str) -> int:
    """The worker's count of acks from `processor` for `camera` (0 before it is listed)."""
    status, body = w.get(f"/api/cameras/{camera}")
    if status != 200:
        return 0
    entries = json.loads(body).get("frames", {}).get("processors", [])
    return sum(p["frames_acked"] for p in entries if p["name"] == processor and p["connected"])


def test_a_slow_camera_does_not_slow_the_other_cameras_of_a_processor(
    start_worker, publish, clip_half_second_gop: Path
) -> None:
    w = start_worker("--frame-fps", str(FPS))
    for camera in CAMERAS:
        publish(w.url(camera), clip_half_second_gop)
    started: Dict[str, List[float]] = {camera: [] for camera in CAMERAS}

    def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> list:
        started[stream_key].append(time.monotonic())
        if stream_key == "slow":
            time.sleep(SLOW_CALLBACK_SECONDS)  # the heavy model, not a synchronisation
        return [{"label": "thing", "confidence": 0.5}]

    stop = threading.Event()
    processor = threading.Thread(target=kamera.run, args=(on_frame,),
                                 kwargs={"socket": w.socket, "processor": "mixed", "stop": stop})
    processor.start()
    try:
        wait_for("a second callback on every camera", 30,
                 lambda: all(len(started[c]) >= 2 for c in CAMERAS))
        acks_before = {c: acked(w, c, "mixed") for c in CAMERAS}
        window_start = time.monotonic()
        time.sleep(WINDOW_SECONDS)  # the measured window itself
        window_end = time.monotonic()
        acks = {c: acked(w, c, "mixed") - acks_before[c] for c in CAMERAS}
    finally:
        stop.set()
        processor.join(SLOW_CALLBACK_SECONDS + 10)
    assert not processor.is_alive(), "run() did not return after stop"

    calls = {c: sum(window_start <= t < window_end for t in started[c]) for c in CAMERAS}
    full_rate = WINDOW_SECONDS * FPS  # 16
    slow_rate = WINDOW_SECONDS / SLOW_CALLBACK_SECONDS  # 4
    report = f"callbacks {calls}, acks {acks} in {WINDOW_SECONDS} s"
    # A single lane gives each fast camera about one frame per slow callback (4 here).
    for camera in CAMERAS[1:]:
        assert calls[camera] >= 0.75 * full_rate, report
        assert acks[camera] >= 0.75 * full_rate, report
    # The slow camera gets what its callback allows: back to back, never a backlog.
    assert slow_rate - 1 <= calls["slow"] <= slow_rate + 1, report
