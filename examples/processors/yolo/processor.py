"""Object detection with Ultralytics YOLO. Weights are loaded from a local file
($YOLO_WEIGHTS, default /models/yolov8n.pt); nothing is downloaded at run time.

In a pool pod (the operator sets $KAMERA_POOL_LISTEN) it batches frames across cameras with
`kamera.serve_batch`: one model call for up to $YOLO_MAX_BATCH frames. As a sidecar it runs one
frame at a time with `kamera.run`."""

import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import List

import kamera

WEIGHTS = Path(os.environ.get("YOLO_WEIGHTS", "/models/yolov8n.pt"))
MIN_CONFIDENCE = float(os.environ.get("YOLO_MIN_CONFIDENCE", "0.4"))
MAX_BATCH = int(os.environ.get("YOLO_MAX_BATCH", "16"))
MAX_WAIT = float(os.environ.get("YOLO_MAX_WAIT", "0.05"))


def load_model():
    if not WEIGHTS.is_file():
        sys.exit(
            f"yolo: weights not found at {WEIGHTS}. Mount them (e.g. a volume at /models) and set "
            "YOLO_WEIGHTS; this processor never downloads weights at run time."
        )
    from ultralytics import YOLO  # imported late so the message above comes first

    return YOLO(str(WEIGHTS))


def detections(result) -> List[dict]:
    """One Ultralytics result as the frame protocol's detections."""
    found = []
    for box in result.boxes:
        confidence = float(box.conf[0])
        if confidence < MIN_CONFIDENCE:
            continue
        x1, y1, x2, y2 = (float(v) for v in box.xyxy[0])
        found.append({
            "label": result.names[int(box.cls[0])],
            "confidence": round(confidence, 3),
            "box": [round(x1), round(y1), round(x2 - x1), round(y2 - y1)],
        })
    return found


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    model = load_model()
    name = os.environ.get("KAMERA_PROCESSOR", "yolo")

    if os.environ.get("KAMERA_POOL_LISTEN"):
        from PIL import Image  # an Ultralytics dependency

        def detect_batch(frames: List[kamera.Frame]) -> List[List[dict]]:
            images = [Image.open(io.BytesIO(f.data)).convert("RGB") for f in frames]
            return [detections(r) for r in model(images, verbose=False)]

        # One model thread: batches never overlap, so no lock is needed.
        kamera.serve_batch(detect_batch, max_batch=MAX_BATCH, max_wait=MAX_WAIT, processor=name)
        return

    # The SDK runs each camera in its own lane, so callbacks of different cameras overlap; one
    # Ultralytics model is not safe to call from two threads at once.
    model_lock = threading.Lock()

    def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> List[dict]:
        with model_lock:
            result = model(str(frame_path), verbose=False)[0]
        return detections(result)

    kamera.run(on_frame, processor=name)


if __name__ == "__main__":
    main()
