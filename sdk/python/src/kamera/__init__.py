"""Kamera's Python SDK: receive frames from a Kamera worker and run a callback on each.

    import kamera

    def on_frame(stream_key, frame_path, frame_data):   # str, pathlib.Path, JPEG bytes
        return [{"label": "person", "confidence": 0.9, "box": [x, y, w, h]}]

    kamera.run(on_frame)

In a GPU pool (a FrameProcessor in ``mode: pool``) the same program serves frames that
workers send over the network: ``kamera.run`` does so by itself when ``$KAMERA_POOL_LISTEN``
is set; ``kamera.serve_batch(fn, max_batch=16, max_wait=0.05)`` batches across cameras.

The core uses only the standard library. The wire protocol is documented in
docs/frame-protocol.md of the Kamera repository.
"""

from .client import Callback, Detection, FrameInfo, ProtocolError, run, default_socket
from .pool import Frame, serve, serve_batch

__all__ = [
    "Callback",
    "Detection",
    "Frame",
    "FrameInfo",
    "ProtocolError",
    "default_socket",
    "run",
    "serve",
    "serve_batch",
]
__version__ = "0.1.0"
