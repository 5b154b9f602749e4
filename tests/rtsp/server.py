#!/usr/bin/env python3
"""A real RTSP server for Kamera's end-to-end tests (gst-rtsp-server through GObject bindings).

Serves a live test pattern as H.264 (320x240, 15 fps, one keyframe a second, no B-frames;
H.265 with --h265) with AAC audio (unless --no-audio) on rtsp://127.0.0.1:PORT/PATH, optionally behind digest or
basic authentication. Prints `READY <port>` on stdout once it listens, then serves until
SIGTERM/SIGINT. Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer
plugins (scripts/setup.d/35-rtsp-server.sh installs them); run it with /usr/bin/python3.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bframes=0 bitrate=300 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
# H.265, as many IP cameras send by default.
VIDEO_H265 = (
    "videotestsrc is-live=true pattern=ball "
    "! video/x-raw,format=I420,width=320,height=240,framerate=15/1 "
    "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=300 "
    "! rtph265pay name=pay0 pt=96 config-interval=-1"
)
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample "
    "! audio/x-raw,rate=44100,channels=1 ! voaacenc bitrate=64000 "
    "! rtpmp4gpay name=pay1 pt=97"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--h265", action="store_true", help="H.265 video instead of H.264")
    parser.add_argument("--user", help="require this user (with --password)")
    parser.add_argument("--password", default="")
    parser.add_argument("--auth", choices=["digest", "basic"], default="digest")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    video = VIDEO_H265 if args.h265 else VIDEO
    launch = video if args.no_audio else f"{video} {AUDIO}"
    factory.set_launch(f"( {launch} )")
    # One pipeline for every client, so a reconnecting worker joins a running stream.
    factory.set_shared(True)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        if args.auth == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
