"""Per-camera lanes: the scheduling core without threads, then the threads that run it."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from typing import Dict, List, Tuple

import pytest

from kamera.lanes import Lanes, LaneRunner
from conftest import wait_for


# --- Lanes: the pure core -------------------------------------------------------------------


def test_frames_of_one_camera_start_in_order_and_one_at_a_time() -> None:
    lanes: Lanes[str, int] = Lanes(1)
    lanes.push("door", 1)
    assert lanes.take() == ("door", 1)
    lanes.push("door", 2)
    assert lanes.take() is None, "frame 2 must wait for frame 1"
    lanes.done("door")
    assert lanes.take() == ("door", 2)


def test_at_most_concurrency_frames_of_a_camera_run_at_once() -> None:
    lanes: Lanes[str, int] = Lanes(2)
    lanes.push("door", 1)
    lanes.push("door", 2)
    assert [lanes.take(), lanes.take()] == [("door", 1), ("door", 2)]
    lanes.push("door", 3)
    assert lanes.take() is None
    assert lanes.running("door") == 2
    lanes.done("door")
    assert lanes.take() == ("door", 3)


def test_a_camera_holds_at_most_concurrency_waiting_frames_and_the_newest_win() -> None:
    lanes: Lanes[str, int] = Lanes(2)
    lanes.push("door", 1)
    lanes.push("door", 2)
    assert lanes.push("door", 3) == 1, "the oldest waiting frame is replaced"
    assert lanes.push("door", 4) == 2
    assert lanes.pending("door") == [3, 4]
    assert [lanes.take(), lanes.take(), lanes.take()] == [("door", 3), ("door", 4), None]


def test_a_busy_camera_does_not_hold_up_another() -> None:
    lanes: Lanes[str, int] = Lanes(1)
    lanes.push("slow", 1)
    assert lanes.take() == ("slow", 1)
    lanes.push("slow", 2)
    lanes.push("fast", 1)
    assert lanes.take() == ("fast", 1)
    lanes.done("fast")
    lanes.push("fast", 2)
    assert lanes.take() == ("fast", 2)


def test_cameras_take_turns() -> None:
    lanes: Lanes[str, int] = Lanes(2)
    for item in (1, 2):
        lanes.push("a", item)
    lanes.push("b", 1)
    assert [lanes.take(), lanes.take(), lanes.take()] == [("a", 1), ("b", 1), ("a", 2)]


def test_a_lane_ends_when_its_last_frame_is_done() -> None:
    lanes: Lanes[str, int] = Lanes(1)
    lanes.push("door", 1)
    lanes.take()
    assert lanes.keys() == ["door"]
    lanes.done("door")
    assert lanes.keys() == []
    assert lanes.startable() == 0
    with pytest.raises(ValueError):
        lanes.done("door")


def test_clearing_drops_waiting_frames_and_keeps_running_ones() -> None:
    lanes: Lanes[str, int] = Lanes(1)
    lanes.push("busy", 1)
    lanes.take()
    lanes.push("busy", 2)
    lanes.push("idle", 7)
    assert sorted(lanes.clear_pending()) == [2, 7]
    assert lanes.keys() == ["busy"], "a lane with nothing running ends at once"
    assert lanes.take() is None
    lanes.done("busy")
    assert lanes.keys() == []


@pytest.mark.parametrize("concurrency", [1, 2, 3])
def test_random_schedules_keep_order_bounds_and_account_for_every_frame(concurrency: int) -> None:
    rng = random.Random(concurrency)
    lanes: Lanes[str, int] = Lanes(concurrency)
    cameras = ["a", "b", "c", "d"]
    pushed: Dict[str, List[int]] = defaultdict(list)
    started: Dict[str, List[int]] = defaultdict(list)
    replaced: Dict[str, List[int]] = defaultdict(list)
    running: List[Tuple[str, int]] = []

    def free_slots_with_waiting_frames() -> int:
        return sum(min(len(lanes.pending(c)), concurrency - lanes.running(c)) for c in cameras)

    for step in range(5000):
        op = rng.random()
        if op < 0.45:
            camera = rng.choice(cameras)
            pushed[camera].append(step)
            old = lanes.push(camera, step)
            if old is not None:
                replaced[camera].append(old)
        elif op < 0.75:
            got = lanes.take()
            if got is None:
                assert free_slots_with_waiting_frames() == 0, "a frame could have started"
            else:
                started[got[0]].append(got[1])
                running.append(got)
        elif running:
            camera, _ = running.pop(rng.randrange(len(running)))
            lanes.done(camera)
        for camera in cameras:
            assert lanes.running(camera) == sum(1 for c, _ in running if c == camera) <= concurrency
            assert len(lanes.pending(camera)) <= concurrency
        assert set(lanes.keys()) == {c for c in cameras if lanes.running(c) or lanes.pending(c)}
        assert lanes.startable() == free_slots_with_waiting_frames()
    for camera in cameras:
        assert started[camera] == sorted(started[camera]), "frames of a camera start in order"
        waiting = lanes.pending(camera)
        assert sorted(started[camera] + replaced[camera] + waiting) == pushed[camera]
        assert all(r < w for r in replaced[camera] for w in waiting), "the newest frames wait"


# --- LaneRunner: threads ----------------------------------------------------------------------


class Recorder:
    """A handler whose items named ("block", ...) wait until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.handled: List[Tuple[str, int]] = []
        self.running: Dict[str, int] = defaultdict(int)
        self.most_at_once: Dict[str, int] = defaultdict(int)
        self.total_running = 0
        self.most_total = 0

    def __call__(self, item: Tuple[str, int]) -> None:
        camera, _ = item
        with self.lock:
            self.running[camera] += 1
            self.total_running += 1
            self.most_at_once[camera] = max(self.most_at_once[camera], self.running[camera])
            self.most_total = max(self.most_total, self.total_running)
        try:
            if camera.startswith("block"):
                assert self.release.wait(10), "never released"
        finally:
            with self.lock:
                self.running[camera] -= 1
                self.total_running -= 1
                self.handled.append(item)

    def count(self, camera: str) -> int:
        with self.lock:
            return sum(1 for c, _ in self.handled if c == camera)


@pytest.fixture
def runners():
    made: List[LaneRunner] = []

    def make(handle, concurrency: int = 1, **kwargs) -> LaneRunner:
        runner = LaneRunner(handle, concurrency, **kwargs)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        assert runner.close(timeout=10), "a lane thread did not exit"


def test_a_blocked_camera_does_not_delay_another(runners) -> None:
    rec = Recorder()
    runner = runners(rec)
    runner.submit("block", ("block", 1))
    wait_for("the blocked callback", 5, lambda: rec.running["block"] == 1)
    for seq in range(1, 11):  # like the worker: the next frame once the previous is acked
        runner.submit("fast", ("fast", seq))
        wait_for(f"fast frame {seq}", 5, lambda: rec.count("fast") == seq)
    assert rec.count("block") == 0
    rec.release.set()
    wait_for("the blocked callback returns", 5, lambda: rec.count("block") == 1)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_frames_of_a_camera_are_handled_in_order_never_more_than_concurrency_at_once(
    runners, concurrency: int
) -> None:
    rec = Recorder()
    runner = runners(rec, concurrency=concurrency, max_threads=8)
    for seq in range(200):
        for camera in ("a", "b", "c"):
            runner.submit(camera, (camera, seq))
    wait_for("the newest frame of every camera", 10,
             lambda: all((c, 199) in rec.handled for c in ("a", "b", "c")))
    wait_for("every lane to end", 5, lambda: runner.lanes() == [])
    for camera in ("a", "b", "c"):
        seqs = [s for c, s in rec.handled if c == camera]
        assert len(set(seqs)) == len(seqs)
        assert rec.most_at_once[camera] <= concurrency
        if concurrency == 1:
            assert seqs == sorted(seqs), f"{camera} out of order"
    assert len(rec.handled) + runner.replaced == 600, "each frame is handled or replaced"


def test_replaced_frames_go_to_on_replaced_and_the_newest_is_handled(runners) -> None:
    rec = Recorder()
    replaced: List[Tuple[str, int]] = []
    runner = runners(rec, on_replaced=replaced.append)
    runner.submit("block", ("block", 1))
    wait_for("the first frame running", 5, lambda: rec.running["block"] == 1)
    for seq in (2, 3, 4):
        runner.submit("block", ("block", seq))
    assert replaced == [("block", 2), ("block", 3)]
    assert runner.replaced == 2
    rec.release.set()
    wait_for("the newest frame handled", 5, lambda: rec.count("block") == 2)
    assert rec.handled == [("block", 1), ("block", 4)]


def test_threads_and_lanes_end_when_idle_and_come_back(runners) -> None:
    rec = Recorder()
    runner = runners(rec, idle_timeout=0.2)
    for camera in ("a", "b", "c"):
        runner.submit(camera, (camera, 1))
    wait_for("three frames and their lanes ended", 5, lambda: len(rec.handled) == 3 and runner.lanes() == [])
    wait_for("idle threads to exit", 5, lambda: runner.threads == 0)
    runner.submit("a", ("a", 2))
    wait_for("a frame after the idle period", 5, lambda: rec.count("a") == 2)


def test_max_threads_bounds_callbacks_across_cameras(runners, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    runner = runners(rec, max_threads=2)
    for i in range(5):
        runner.submit(f"block-{i}", (f"block-{i}", 1))
    wait_for("two callbacks running", 5, lambda: rec.total_running == 2)
    assert runner.threads == 2
    rec.release.set()
    wait_for("all five cameras handled", 5, lambda: len(rec.handled) == 5)
    assert rec.most_total == 2
    assert "all 2 callback threads are busy" in caplog.text


def test_a_raising_handler_is_logged_and_the_lane_carries_on(runners, caplog: pytest.LogCaptureFixture) -> None:
    handled: List[int] = []

    def handle(item: Tuple[str, int]) -> None:
        if item[1] == 1:
            raise RuntimeError("boom")
        handled.append(item[1])

    runner = runners(handle)
    runner.submit("door", ("door", 1))
    wait_for("the lane to end after the error", 5, lambda: runner.lanes() == [])
    runner.submit("door", ("door", 2))
    wait_for("the next frame", 5, lambda: handled == [2])
    assert "boom" in caplog.text


def test_close_waits_for_running_callbacks_and_drops_waiting_frames() -> None:
    rec = Recorder()
    runner: LaneRunner[str, Tuple[str, int]] = LaneRunner(rec, 1)
    runner.submit("block", ("block", 1))
    wait_for("the first frame running", 5, lambda: rec.running["block"] == 1)
    runner.submit("block", ("block", 2))
    assert runner.close(timeout=0.1) is False, "a callback is still running"
    rec.release.set()
    assert runner.close(timeout=10)
    assert rec.handled == [("block", 1)]
    assert runner.threads == 0
    with pytest.raises(RuntimeError):
        runner.submit("block", ("block", 3))
