"""The pool server (network transport) against a fake worker on loopback: handshake, tokens,
limits, batching across cameras, and the classic callback with a file path."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import kamera
from kamera.pool import Refused, check_hello, choose_version, frame_header, parse_listen
from conftest import free_port, wait_for

TOKEN = "c0ffee" * 10
JPEG = b"\xff\xd8" + b"\x00\n" * 500 + b"\xff\xd9"


# --- pure parts ----------------------------------------------------------------------------

def hello(**over: Any) -> Dict[str, Any]:
    msg = {"type": "hello", "versions": [1], "camera": "door", "token": TOKEN, "worker": "test", "fps": 1.0}
    msg.update(over)
    return msg


def test_hello_is_checked_token_first() -> None:
    assert check_hello(hello(), TOKEN) == ("door", 1)
    assert check_hello(hello(token=None), None) == ("door", 1), "no token configured: anyone"
    for bad, code in [
        (hello(token="nope"), "unauthorized"),
        (hello(token=None), "unauthorized"),
        (hello(token=7), "unauthorized"),
        (hello(token="nope", versions=[99]), "unauthorized"),
        (hello(versions=[2, 3]), "unsupported_version"),
        (hello(versions="1"), "bad_request"),
        (hello(camera="../etc"), "bad_request"),
        (hello(camera=""), "bad_request"),
        ({"type": "frame"}, "bad_request"),
        ([1, 2], "bad_request"),
    ]:
        with pytest.raises(Refused) as e:
            check_hello(bad, TOKEN)
        assert e.value.code == code, bad
    assert choose_version([0, 1, 5]) == 1


def test_frame_headers_are_bounded() -> None:
    ok = {"type": "frame", "camera": "door", "seq": 3, "length": 10}
    assert frame_header(ok, "door", 100)[0] == 10
    for bad, code in [
        (dict(ok, length=101), "too_large"),
        (dict(ok, length=-1), "bad_request"),
        (dict(ok, length="10"), "bad_request"),
        (dict(ok, length=True), "bad_request"),
        (dict(ok, camera="other"), "bad_request"),
        (dict(ok, seq=None), "bad_request"),
    ]:
        with pytest.raises(Refused) as e:
            frame_header(bad, "door", 100)
        assert e.value.code == code, bad
    assert parse_listen("0.0.0.0:7700") == ("0.0.0.0", 7700)
    assert parse_listen("[::]:7700") == ("::", 7700)
    with pytest.raises(ValueError):
        parse_listen("nope")


# --- a fake worker ---------------------------------------------------------------------------

class FakeWorker:
    """One camera's connection, as a worker makes it."""

    def __init__(self, port: int, camera: str, token: Optional[str] = TOKEN) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        self.camera = camera
        msg = hello(camera=camera, token=token)
        if token is None:
            del msg["token"]
        self.send(msg)
        self.welcome = self.next()

    def send(self, msg: Dict[str, Any], payload: bytes = b"") -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n" + payload)

    def frame(self, seq: int, data: bytes = JPEG) -> None:
        self.send({"type": "frame", "camera": self.camera, "seq": seq, "captured_at": "2026-11-24T08:00:01.000Z",
                   "pts_ms": seq * 1000, "width": 2, "height": 2, "length": len(data)}, data)

    def next(self) -> Optional[Dict[str, Any]]:
        line = self.reader.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def pool() -> Iterator[Any]:
    """Starts a pool server in a thread: pool(kind, fn, **kwargs) → port."""
    stops: List[threading.Event] = []
    threads: List[threading.Thread] = []

    def start(kind: str, fn: Any, **kwargs: Any) -> int:
        port = free_port()
        stop = threading.Event()
        target = kamera.serve_batch if kind == "batch" else kamera.serve
        t = threading.Thread(target=target, args=(fn,),
                             kwargs=dict(listen=f"127.0.0.1:{port}", token=TOKEN, stop=stop, processor="test", **kwargs))
        t.start()
        stops.append(stop)
        threads.append(t)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for("pool listening", 10, listening)
        return port

    yield start
    for s in stops:
        s.set()
    for t in threads:
        t.join(15)
        assert not t.is_alive(), "the pool did not stop"


def test_batches_form_across_cameras_and_each_frame_gets_its_detections(pool) -> None:
    batches: List[List[str]] = []

    def model(frames: List[kamera.Frame]) -> List[Any]:
        batches.append([f.camera for f in frames])
        assert all(f.data == JPEG for f in frames)
        return [[{"label": f"seen-{f.camera}", "confidence": 0.5}] for f in frames]

    # A batch is due when it is full (3) or 5 s after its first frame: the three frames form one.
    port = pool("batch", model, max_batch=3, max_wait=5.0, max_in_flight=1)
    workers = [FakeWorker(port, f"cam-{i}") for i in range(3)]
    assert all(w.welcome == {"type": "welcome", "version": 1, "processor": "test", "max_in_flight": 1,
                             "fps": None, "server": "kamera-python/0.1.0"} for w in workers)
    for w in workers:
        w.frame(1)
    for w in workers:
        ack = w.next()
        assert ack is not None and ack["type"] == "ack" and ack["seq"] == 1, ack
        assert ack["detections"] == [{"label": f"seen-{w.camera}", "confidence": 0.5}]
        assert ack["batch_size"] >= 1 and ack["inference_seconds"] >= 0
    assert sorted(batches[0]) == ["cam-0", "cam-1", "cam-2"], batches
    workers[0].send({"type": "ping"})
    assert workers[0].next() == {"type": "pong"}
    for w in workers:
        w.close()


def test_a_wrong_or_missing_token_is_refused_before_any_frame(pool) -> None:
    seen: List[kamera.Frame] = []
    port = pool("batch", lambda frames: seen.extend(frames) or [None] * len(frames))
    for token in ("wrong", None):
        w = FakeWorker(port, "door", token=token)
        assert w.welcome is not None and w.welcome["type"] == "error", w.welcome
        assert w.welcome["code"] == "unauthorized"
        try:
            w.frame(1)
        except OSError:
            pass  # the pool may already have closed the socket
        assert w.next() is None, "the connection is closed"
        w.close()
    assert seen == []


def test_oversize_frames_and_ignored_credits_close_the_connection(pool) -> None:
    port = pool("batch", lambda frames: [None] * len(frames), max_frame_bytes=2000, max_wait=1.0, max_batch=64)
    big = FakeWorker(port, "door")
    big.frame(1, b"x" * 2001)
    err = big.next()
    assert err is not None and err["code"] == "too_large", err
    assert big.next() is None
    greedy = FakeWorker(port, "hall")
    greedy.frame(1)
    greedy.frame(2)  # max_in_flight is 1 and frame 1 is not acked yet (it waits max_wait)
    msgs = [greedy.next(), greedy.next()]
    assert any(m and m.get("code") == "bad_request" for m in msgs), msgs
    garbage = FakeWorker(port, "yard")
    garbage.sock.sendall(b"\x00\xffnot json\n")
    err = garbage.next()
    assert err is not None and err["code"] == "bad_request", err
    for w in (big, greedy, garbage):
        w.close()


def test_serve_calls_the_classic_callback_with_a_file_that_exists_during_the_call(pool) -> None:
    calls: List[Dict[str, Any]] = []

    def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> Any:
        calls.append({"camera": stream_key, "path": frame_path, "existed": frame_path.read_bytes() == frame_data,
                      "data": frame_data})
        return [{"label": "person"}]

    port = pool("callback", on_frame)
    w = FakeWorker(port, "door")
    w.frame(41)
    ack = w.next()
    assert ack is not None and ack["seq"] == 41 and ack["detections"] == [{"label": "person"}], ack
    assert calls[0]["camera"] == "door" and calls[0]["existed"] and calls[0]["data"] == JPEG
    assert calls[0]["path"].suffix == ".jpg"
    wait_for("frame file removed", 5, lambda: not calls[0]["path"].exists())
    w.close()


def test_run_serves_the_pool_when_the_pod_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("KAMERA_POOL_LISTEN", f"127.0.0.1:{port}")
    monkeypatch.setenv("KAMERA_POOL_TOKEN_FILE", str(token_file))
    stop = threading.Event()
    t = threading.Thread(target=kamera.run, args=(lambda key, path, data: {"label": key},), kwargs={"stop": stop})
    t.start()
    try:
        w = wait_for("kamera.run serving", 10, lambda: _connect(port))
        assert w.welcome is not None and w.welcome["type"] == "welcome", w.welcome
        w.frame(5)
        ack = w.next()
        assert ack is not None and ack["detections"] == [{"label": "door"}], ack
        w.close()
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()


def test_the_classic_program_serves_in_a_pool_pod(tmp_path: Path, processes: List[Any]) -> None:
    import subprocess
    import sys

    from conftest import python_env

    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    program = tmp_path / "classic.py"
    program.write_text(
        "from rtmp_to_llhls import set_frame_callback, main\n"
        "def my_ai_processor(stream_key, frame_path, frame_data):\n"
        "    return [{'label': stream_key, 'confidence': len(frame_data) / 1e6}]\n"
        "set_frame_callback(my_ai_processor)\n"
        "main()\n"
    )
    proc = subprocess.Popen([sys.executable, str(program)], stdin=subprocess.DEVNULL,
                            env=python_env(KAMERA_POOL_LISTEN=f"127.0.0.1:{port}", KAMERA_POOL_TOKEN_FILE=str(token_file)))
    processes.append(proc)
    w = wait_for("the classic program serving", 20, lambda: _connect(port))
    w.frame(1)
    ack = w.next()
    assert ack is not None and ack["detections"][0]["label"] == "door", ack
    w.close()
    proc.terminate()
    assert proc.wait(timeout=15) == 0


def _connect(port: int) -> Optional[FakeWorker]:
    try:
        return FakeWorker(port, "door")
    except OSError:
        return None
