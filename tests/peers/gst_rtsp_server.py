"""GStreamer's RTSP server as an independent peer for the RTSP client tests.

Run it with Debian's interpreter, not the venv's: python3-gi serves /usr/bin/python3 only.

    /usr/bin/python3 tests/peers/gst_rtsp_server.py --port 8554 [--host H] [--mount /cam]
        [--auth basic|digest --user U --password W] [--frozen] [--udp-ok]

It serves live H.264 (640x360 at 25 fps, an IDR every second, SPS/PPS in band) and prints one
line, "gst-rtsp ready rtsp://<host>:<port><mount>", once clients can connect (host: 127.0.0.1
unless `--host` names another address of this machine). `--port 0`
takes a free port and the ready line tells which. TCP interleaved only unless `--udp-ok`, so a
UDP request gets 461 from a TCP-only camera. `--frozen` serves a picture that never changes
while its timestamps advance, like a camera whose sensor froze.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi  # type: ignore[import-not-found]  # Debian python3-gi, not in the venv

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import (  # type: ignore[import-not-found]  # noqa: E402
    GLib,
    Gst,
    GstRtsp,
    GstRtspServer,
)

ROLE = "camera-user"
# Moving content by default (a bouncing ball): decoded pictures differ frame to frame.
MOVING_SOURCE = "videotestsrc is-live=true pattern=ball"
# Frozen: a still test card (smpte75: flat bars; plain smpte has a noise patch that changes).
# A constant quantizer makes every IDR code the same picture the same way, so each decoded
# picture is bit-identical, not merely close: with rate control, an IDR's QP would follow the
# bit budget and its picture could shift by a level or two every second.
FROZEN_SOURCE = "videotestsrc is-live=true pattern=smpte75"
FROZEN_RATE_CONTROL = " pass=quant quantizer=20"
CAPS = "video/x-raw,format=I420,width=640,height=360,framerate=25/1"
# threads=1: the machines running the tests are small and shared.
X264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 threads=1"
PAYLOADER = "rtph264pay name=pay0 pt=96 config-interval=1"
SESSION_CLEANUP_S = 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GStreamer RTSP server test peer")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--auth", choices=("basic", "digest"))
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--frozen", action="store_true", help="the picture never changes")
    parser.add_argument("--udp-ok", action="store_true", help="offer UDP besides TCP")
    parser.add_argument(
        "--quit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes, so a crashed test run leaves no server behind",
    )
    args = parser.parse_args(argv)
    if args.auth and not (args.user and args.password is not None):
        parser.error("--auth needs --user and --password")
    if not args.mount.startswith("/"):
        parser.error("--mount must start with /")
    return args


def make_factory(args: argparse.Namespace) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    source, encoder = MOVING_SOURCE, X264
    if args.frozen:
        source, encoder = FROZEN_SOURCE, X264 + FROZEN_RATE_CONTROL
    factory.set_launch(f"( {source} ! {CAPS} ! {encoder} ! {PAYLOADER} )")
    # One pipeline per client: every session starts at an IDR with fresh timestamps, and a
    # client that left (or was cut off) cannot leave a half-torn shared media behind for the
    # next one, which is what the reconnect tests exercise.
    factory.set_shared(False)
    lower = GstRtsp.RTSPLowerTrans.TCP
    if args.udp_ok:
        lower |= GstRtsp.RTSPLowerTrans.UDP
    factory.set_protocols(lower)
    if args.auth:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(ROLE, "media.factory.access", True)
        permissions.add_permission_for_role(ROLE, "media.factory.construct", True)
        factory.set_permissions(permissions)
    return factory


def make_auth(args: argparse.Namespace) -> GstRtspServer.RTSPAuth:
    # From Python one RTSPAuth offers one method: the test for each method needs its own server.
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    if args.auth == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(args.user, args.password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    return auth


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    for element in ("videotestsrc", "x264enc", "rtph264pay"):
        if Gst.ElementFactory.find(element) is None:
            print(f"gst-rtsp: GStreamer element {element} is missing", file=sys.stderr)
            return 2

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, make_factory(args))
    if args.auth:
        server.set_auth(make_auth(args))
    if server.attach(None) == 0:
        print(f"gst-rtsp: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()

    def cleanup_sessions() -> bool:
        # Sessions of clients that vanished without TEARDOWN expire only when someone asks.
        server.get_session_pool().cleanup()
        return True

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False

    GLib.timeout_add_seconds(SESSION_CLEANUP_S, cleanup_sessions)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)
    def on_stdin(fd: int, _condition: object) -> bool:
        if os.read(fd, 4096):
            return True
        return quit_loop()

    if args.quit_on_stdin_eof:
        condition = GLib.IOCondition.IN | GLib.IOCondition.HUP
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, condition, on_stdin)

    print(f"gst-rtsp ready rtsp://{args.host}:{server.get_bound_port()}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
