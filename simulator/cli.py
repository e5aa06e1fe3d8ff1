"""`camcount simulate`: run the camera simulator, or print a synthetic scene's ground truth."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from dataclasses import asdict
from typing import Any

from infra.runner import run_until_signalled
from simulator.mounts import MountSpec, SimulatorSettings, parse_mount
from simulator.rtsp_server import serve

DEFAULT_MOUNT = "cam1:synthetic:seed=1,crossings=6"


def _mount_arg(text: str) -> MountSpec:
    try:
        return parse_mount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `simulate` on an argparse sub-parsers object (from `add_subparsers()`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="serve synthetic or file-based cameras over RTSP",
        description=(
            "RTSP camera simulator (TCP interleaved). Mount syntax: NAME:KIND[:key=value,...] "
            "with KIND synthetic (seed, crossings, fps, width, height, warmup_s, loop) or file "
            "(path, loop, fps, width, height); either takes preencode_s=SECONDS to encode once "
            "and replay in a loop (load tests). Example: --mount "
            "cam1:synthetic:seed=7,crossings=6 --mount clip:file:path=/videos/x.mp4,loop=true"
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8554, help="TCP port, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--mount",
        dest="mounts",
        action="append",
        type=_mount_arg,
        metavar="SPEC",
        help=f"a mount; repeatable (default: {DEFAULT_MOUNT})",
    )
    parser.add_argument(
        "--print-truth",
        action="store_true",
        help="print each synthetic mount's ground-truth crossings as JSON and exit",
    )
    parser.set_defaults(func=run)
    return parser


def truth_document(settings: SimulatorSettings) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for spec in settings.mounts:
        if spec.kind != "synthetic":
            continue
        scene = spec.scene()
        document[spec.name] = {
            "width": scene.width,
            "height": scene.height,
            "fps": spec.effective_fps,
            "line_x": scene.width / 2,
            "duration_s": scene.duration_s,
            "loop": scene.loop,
            "crossings": [asdict(c) for c in scene.truth()],
        }
    return document


def run(args: argparse.Namespace) -> int:
    mounts = tuple(args.mounts or (parse_mount(DEFAULT_MOUNT),))
    try:
        settings = SimulatorSettings(host=args.host, port=args.port, mounts=mounts)
    except ValueError as exc:
        print(f"simulate: {exc}")
        return 2
    if args.print_truth:
        print(json.dumps(truth_document(settings), indent=2))
        return 0
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    async def until_stopped(stop: asyncio.Event) -> None:
        server = asyncio.create_task(serve(settings))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait((server, waiter), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not server.done():
            server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server  # re-raises a start-up failure

    try:
        # SIGINT and SIGTERM stop it cleanly (exit 0), like every role.
        return run_until_signalled(until_stopped)
    except (OSError, ValueError) as exc:
        logging.getLogger(__name__).error("simulator failed: %s", exc)
        return 1
