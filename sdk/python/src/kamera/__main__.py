"""`python -m kamera`: a processor that logs every frame it receives (a connectivity check)."""

import logging
import sys
from pathlib import Path

from . import run


def _log_frame(stream_key: str, frame_path: Path, frame_data: bytes) -> None:
    print(f"{stream_key}: {frame_path.name} ({len(frame_data)} bytes)", flush=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(_log_frame, processor="kamera-cli")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
