"""Kamera's Python SDK: receive frames from a Kamera worker and run a callback on each.

    import kamera

    def on_frame(stream_key, frame_path, frame_data):   # str, pathlib.Path, JPEG bytes
        return [{"label": "person", "confidence": 0.9, "box": [x, y, w, h]}]

    kamera.run(on_frame)

The core uses only the standard library. The wire protocol is documented in
docs/frame-protocol.md of the Kamera repository.
"""

from .client import Callback, Detection, FrameInfo, ProtocolError, run, default_socket

__all__ = [
    "Callback",
    "Detection",
    "FrameInfo",
    "ProtocolError",
    "default_socket",
    "run",
]
__version__ = "0.1.0"
