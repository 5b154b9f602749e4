"""The SDK against a fake worker: ack shapes, callback failures, reconnection, per-camera lanes."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import List, Optional

import pytest

import kamera
from kamera.client import FrameInfo, ack_message
from conftest import wait_for


def frame(seq: int = 7) -> FrameInfo:
    return FrameInfo("door", seq, Path("/x/00000007.jpg"), "", 0, 2, 2)


def test_ack_carries_what_the_callback_returned() -> None:
    assert ack_message(frame(), None)["detections"] == []
    dets = [{"label": "person", "confidence": 0.9, "box": [1, 2, 3, 4]}]
    assert ack_message(frame(), dets)["detections"] == dets
    assert ack_message(frame(), {"label": "cat"})["detections"] == [{"label": "cat"}]
    merged = ack_message(frame(), {"detections": dets, "seq": 99})
    assert merged["detections"] == dets and merged["seq"] == 7


class FakeWorker:
    """Accepts processors, sends `frames` frame notifications per connection, records acks."""

    def __init__(self, path: Path, frames: List[Path]) -> None:
        self.path, self.frames = path, frames
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.hellos: List[dict] = []
        self.acks: List[dict] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                reader = conn.makefile("rb")
                try:
                    self._talk(conn, reader)
                except OSError:
                    pass  # the processor went away mid-conversation (a test stopping it)
                # Closing (file object included) makes the processor reconnect.
                reader.close()

    def _talk(self, conn: socket.socket, reader) -> None:
        hello = reader.readline()
        if not hello:
            return
        self.hellos.append(json.loads(hello))
        conn.sendall(b'{"type":"welcome","version":1,"worker":"fake","fps":1}\n')
        for seq, path in enumerate(self.frames, 1):
            conn.sendall(json.dumps({"type": "frame", "camera": "door", "seq": seq, "path": str(path),
                                     "captured_at": "", "pts_ms": 0, "width": 2, "height": 2}).encode() + b"\n")
            line = reader.readline()
            if not line:
                break
            self.acks.append(json.loads(line))

    def close(self) -> None:
        self.server.close()


def test_callback_errors_are_logged_and_the_next_frame_comes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"{i + 1:08}.jpg"
        f.write_bytes(b"\xff\xd8jpeg%d" % i)
        files.append(f)
    fake = FakeWorker(tmp_path / "s.sock", files)
    stop = threading.Event()
    seen: List[tuple] = []

    def on_frame(key: str, path: Path, data: bytes) -> list:
        seen.append((key, path, data))
        if len(seen) == 2:
            raise RuntimeError("model crashed")
        return [{"label": "x"}]

    t = threading.Thread(target=kamera.run, args=(on_frame,),
                         kwargs={"socket": tmp_path / "s.sock", "processor": "unit", "stop": stop})
    t.start()
    try:
        wait_for("three acks and a reconnect", 10, lambda: len(fake.acks) >= 3 and fake.connections >= 2)
    finally:
        stop.set()
        t.join(5)
        fake.close()
    assert seen[0] == ("door", files[0], files[0].read_bytes())
    assert isinstance(seen[0][1], Path)
    assert [a["seq"] for a in fake.acks[:3]] == [1, 2, 3]
    assert fake.acks[1]["detections"] == [], "a failed callback still acks"
    assert fake.acks[2]["detections"] == [{"label": "x"}]
    assert "door" in caplog.text and "model crashed" in caplog.text
    assert fake.hellos[0] == {"type": "hello", "version": 1, "processor": "unit", "cameras": ["*"], "max_in_flight": 1}


def test_run_waits_for_a_worker_that_is_not_there_yet(tmp_path: Path) -> None:
    stop = threading.Event()
    t = threading.Thread(target=kamera.run, args=(lambda *a: None,),
                         kwargs={"socket": tmp_path / "later.sock", "stop": stop})
    t.start()
    fake = FakeWorker(tmp_path / "later.sock", [])
    try:
        wait_for("connection after the socket appears", 15, lambda: fake.connections >= 1)
    finally:
        stop.set()
        t.join(5)
        fake.close()
    assert not t.is_alive()


class ScriptedWorker:
    """Accepts one processor; the test sends frames and waits for their acks."""

    def __init__(self, path: Path, frames_dir: Path) -> None:
        self.frames_dir = frames_dir
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.conn: Optional[socket.socket] = None
        self.acks: List[dict] = []
        self.hello: dict = {}
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        reader = conn.makefile("rb")
        self.hello = json.loads(reader.readline())
        conn.sendall(b'{"type":"welcome","version":1,"worker":"scripted","fps":2}\n')
        self.conn = conn
        try:
            for line in reader:
                self.acks.append(json.loads(line))
        except (OSError, ValueError):
            pass  # closed by the test

    def send(self, camera: str, seq: int) -> None:
        path = self.frames_dir / camera / f"{seq:08}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8frame")
        assert self.conn is not None
        self.conn.sendall(json.dumps({"type": "frame", "camera": camera, "seq": seq, "path": str(path)}).encode() + b"\n")

    def acked(self, camera: str) -> List[int]:
        return [a["seq"] for a in list(self.acks) if a["camera"] == camera]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def start_run(tmp_path: Path, on_frame, **kwargs) -> "tuple[ScriptedWorker, threading.Event, threading.Thread]":
    fake = ScriptedWorker(tmp_path / "s.sock", tmp_path / "frames")
    stop = threading.Event()
    t = threading.Thread(target=kamera.run, args=(on_frame,),
                         kwargs={"socket": tmp_path / "s.sock", "processor": "unit", "stop": stop, **kwargs})
    t.start()
    wait_for("the processor's hello", 5, lambda: fake.conn is not None)
    return fake, stop, t


def test_a_camera_using_all_its_concurrency_does_not_hold_back_another_cameras_acks(tmp_path: Path) -> None:
    release = threading.Event()
    slow_running: List[int] = []

    def on_frame(key: str, path: Path, data: bytes) -> list:
        if key == "slow":
            slow_running.append(int(path.stem))
            assert release.wait(10)
        return [{"label": key}]

    fake, stop, t = start_run(tmp_path, on_frame, cameras=["slow", "fast"], workers=2)
    try:
        fake.send("slow", 1)
        fake.send("slow", 2)
        wait_for("both slow callbacks running at once", 5, lambda: sorted(slow_running) == [1, 2])
        for seq in range(1, 6):  # each frame after the previous one's ack
            fake.send("fast", seq)
            wait_for(f"the ack of fast frame {seq}", 5, lambda: seq in fake.acked("fast"))
        assert fake.acked("slow") == []
        release.set()
        wait_for("the acks of the slow frames", 5, lambda: sorted(fake.acked("slow")) == [1, 2])
    finally:
        release.set()
        stop.set()
        t.join(10)
        fake.close()
    assert not t.is_alive()
    assert [a["detections"] for a in fake.acks if a["camera"] == "fast"] == [[{"label": "fast"}]] * 5
    assert fake.hello["cameras"] == ["slow", "fast"] and fake.hello["max_in_flight"] == 2


def test_frames_beyond_the_credits_are_acked_unprocessed_and_the_newest_is_handled(tmp_path: Path) -> None:
    release = threading.Event()
    seen: List[int] = []

    def on_frame(key: str, path: Path, data: bytes) -> list:
        seen.append(int(path.stem))
        assert release.wait(10)
        return [{"label": "x"}]

    fake, stop, t = start_run(tmp_path, on_frame, concurrency=1)
    try:
        fake.send("door", 1)
        wait_for("the first callback", 5, lambda: seen == [1])
        for seq in (2, 3, 4):  # a peer ignoring its credits
            fake.send("door", seq)
        wait_for("acks of the replaced frames", 5, lambda: fake.acked("door") == [2, 3])
        release.set()
        wait_for("acks of the first and the newest frame", 5, lambda: fake.acked("door") == [2, 3, 1, 4])
    finally:
        release.set()
        stop.set()
        t.join(10)
        fake.close()
    assert seen == [1, 4]
    assert [a["detections"] for a in fake.acks] == [[], [], [{"label": "x"}], [{"label": "x"}]]
