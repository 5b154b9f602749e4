"""Prints every frame and keeps a copy of the last one per camera in ./saved."""

import logging
from pathlib import Path

import kamera

SAVE_DIR = Path("saved")


def on_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> None:
    print(f"{stream_key}: {frame_path.name} ({len(frame_data)} bytes)", flush=True)
    SAVE_DIR.mkdir(exist_ok=True)
    (SAVE_DIR / f"{stream_key}.jpg").write_bytes(frame_data)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    kamera.run(on_frame, processor="basic")
