#!/usr/bin/env bash
# A real RTSP server for the RTSP pull tests (tests/rtsp/server.py): gst-rtsp-server through
# Python's GObject bindings, with the GStreamer plugins its pipeline needs (x264enc: ugly;
# rtph264pay, rtph265pay, rtpmp4gpay: good; voaacenc, x265enc: bad). Debian packages, for the system python3.
set -euo pipefail
[ "${KAMERA_SETUP_FOR:-test}" = run ] && exit 0  # test tools only

packages=(
  python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing the RTSP test server's packages: ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
/usr/bin/python3 - <<'PY'
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst
Gst.init(None)
missing = [e for e in ("videotestsrc", "x264enc", "rtph264pay", "audiotestsrc", "voaacenc", "rtpmp4gpay",
                        "x265enc", "rtph265pay")
           if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit(f"setup: GStreamer elements missing for the RTSP test server: {missing}")
PY
echo "setup: RTSP test server ready"
