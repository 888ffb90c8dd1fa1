#!/usr/bin/python3
"""RTSP test server on GStreamer. Run it with Debian's /usr/bin/python3 (python3-gi), not a venv.

usage: rtsp_server.py PORT NAME=SOURCE [NAME=SOURCE ...]

PORT 0 picks a free port. Once every source plays, the bound port is printed as ``READY <port>``.
SOURCE is a video file (decoded in real time, looped forever) or ``ball`` (a synthetic moving
ball). Each NAME is served as rtsp://127.0.0.1:PORT/NAME in H.264, scaled to the env ``CAPS``
(default 640x480 @ 10 fps). Credentials in a client's URL are ignored. SIGTERM or SIGINT stops it
at once; it can be restarted on the same port.
"""

import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - after require_version

CAPS = os.environ.get("CAPS", "video/x-raw,format=I420,width=640,height=480,framerate=10/1")
# tune=zerolatency turns sliced threads on, and OpenCV/FFmpeg then decodes the first GOP garbled.
ENCODER = (
    "x264enc tune=zerolatency sliced-threads=false speed-preset=ultrafast key-int-max=10 "
    "bitrate=1000 ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
PLAY_TIMEOUT_S = 5


def play_file_forever(channel: str, path: str) -> Gst.Pipeline:
    """Decode ``path`` in real time into an intervideosink ``channel``, rewinding at its end.

    The file plays independently of clients, like a camera; the mount reads the channel.
    """
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! decodebin ! videoconvert ! videoscale ! videorate '
        f"! {CAPS} ! intervideosink channel={channel}"
    )

    def on_message(_bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.EOS:
            pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        elif message.type == Gst.MessageType.ERROR:
            print("player error", channel, message.parse_error(), file=sys.stderr, flush=True)
            os._exit(2)

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if (
        pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE
        or pipeline.get_state(PLAY_TIMEOUT_S * Gst.SECOND)[0] == Gst.StateChangeReturn.FAILURE
    ):
        sys.exit(f"cannot play {path}")
    return pipeline


def make_factory(launch: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    factory.set_shared(True)  # one encoder per mount, shared by all its clients
    return factory


def main(argv: list[str]) -> None:
    if len(argv) < 2 or any("=" not in spec for spec in argv[1:]):
        sys.exit(__doc__)
    Gst.init(None)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=argv[0])
    mounts = server.get_mount_points()
    players = []  # kept referenced for the life of the server
    for spec in argv[1:]:
        name, source = spec.split("=", 1)
        if source == "ball":
            launch = f"videotestsrc pattern=ball is-live=true ! {CAPS} ! {ENCODER}"
        else:
            players.append(play_file_forever(name, source))
            launch = f"intervideosrc channel={name} ! {CAPS} ! {ENCODER}"
        mounts.add_factory("/" + name, make_factory(launch))
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{argv[0]}")
    print("READY", server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    loop.run()


if __name__ == "__main__":
    main(sys.argv[1:])
