"""Object detection with Ultralytics YOLO. Weights are loaded from a local file
($YOLO_WEIGHTS, default /models/yolov8n.pt); nothing is downloaded at run time."""

import logging
import os
import sys
import threading
from pathlib import Path
from typing import List

import kamera

WEIGHTS = Path(os.environ.get("YOLO_WEIGHTS", "/models/yolov8n.pt"))
MIN_CONFIDENCE = float(os.environ.get("YOLO_MIN_CONFIDENCE", "0.4"))


def load_model():
    if not WEIGHTS.is_file():
        sys.exit(
            f"yolo: weights not found at {WEIGHTS}. Mount them (e.g. a volume at /models) and set "
            "YOLO_WEIGHTS; this processor never downloads weights at run time."
        )
    from ultralytics import YOLO  # imported late so the message above comes first

    return YOLO(str(WEIGHTS))


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    model = load_model()
    # The SDK runs each camera in its own lane, so callbacks of different cameras overlap; one
    # Ultralytics model is not safe to call from two threads at once.
    model_lock = threading.Lock()

    def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> List[dict]:
        with model_lock:
            result = model(str(frame_path), verbose=False)[0]
        detections = []
        for box in result.boxes:
            confidence = float(box.conf[0])
            if confidence < MIN_CONFIDENCE:
                continue
            x1, y1, x2, y2 = (float(v) for v in box.xyxy[0])
            detections.append({
                "label": result.names[int(box.cls[0])],
                "confidence": round(confidence, 3),
                "box": [round(x1), round(y1), round(x2 - x1), round(y2 - y1)],
            })
        return detections

    kamera.run(on_frame, processor=os.environ.get("KAMERA_PROCESSOR", "yolo"))


if __name__ == "__main__":
    main()
