"""Motion detection by frame differencing (OpenCV); motion areas are returned as detections
and become kamera_detections_total{label="motion"}."""

import logging
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

import kamera

MIN_AREA = 500  # pixels; smaller changes are noise
previous: Dict[str, np.ndarray] = {}


def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> List[dict]:
    image = cv2.imdecode(np.frombuffer(frame_data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return []
    gray = cv2.GaussianBlur(image, (21, 21), 0)
    before = previous.get(stream_key)
    previous[stream_key] = gray
    if before is None or before.shape != gray.shape:
        return []
    delta = cv2.absdiff(before, gray)
    mask = cv2.dilate(cv2.threshold(delta, 25, 255, cv2.THRESH_BINARY)[1], None, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= MIN_AREA]
    return [{"label": "motion", "confidence": 1.0, "box": [int(v) for v in b]} for b in boxes]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    kamera.run(on_frame, processor="motion")
