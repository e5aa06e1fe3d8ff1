"""Where a mount's pictures come from: a synthetic scene or a video file. Blocking I/O.

Each session iterates its own source from the beginning, so a scripted scene starts when that
client starts playing. Frames come out as yuv420p at the mount's size, ready for the encoder.
A mount with `preencode_s` is encoded once here instead, and every session replays that clip.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from simulator.encoder import EncodedClip, encode_clip, parameter_sets
from simulator.mounts import DEFAULT_FPS, DEFAULT_HEIGHT, DEFAULT_WIDTH, MountSpec
from simulator.scenes import SyntheticScene


@dataclass(frozen=True, slots=True)
class MountMedia:
    """A mount resolved against its media: concrete size, rate and the SDP parameter sets."""

    spec: MountSpec
    width: int
    height: int
    fps: float
    sps: bytes
    pps: bytes
    clip: EncodedClip | None = None  # set for a preencode_s mount: sessions replay it

    def frames(self) -> Generator[av.VideoFrame, None, None]:
        """A fresh frame sequence from the start; ends only for a file mount without loop."""
        if self.spec.kind == "synthetic":
            return scene_frames(self.spec.scene(), self.fps)
        assert self.spec.path is not None
        return file_frames(self.spec.path, self.width, self.height, loop=self.spec.loop)


def prepare_mount(spec: MountSpec) -> MountMedia:
    """Resolve sizes and probe the encoder (and the file) once, at server start."""
    if spec.kind == "synthetic":
        width = spec.width or DEFAULT_WIDTH
        height = spec.height or DEFAULT_HEIGHT
        fps = spec.fps or DEFAULT_FPS
        spec.scene()  # fail at start, not at PLAY, on a scene that cannot be built
    else:
        assert spec.path is not None
        native_w, native_h, native_fps = probe_file(spec.path)
        width = spec.width or native_w - native_w % 2
        height = spec.height or native_h - native_h % 2
        fps = spec.fps or native_fps
    if spec.preencode_s is None:
        sps, pps = parameter_sets(width, height, fps)
        return MountMedia(spec, width, height, fps, sps, pps)
    if spec.kind == "synthetic":
        source = scene_frames(spec.scene(), fps)
    else:
        assert spec.path is not None
        source = file_frames(spec.path, width, height, loop=True)
    with contextlib.closing(source):
        clip = encode_clip(source, width, height, fps, spec.preencode_s)
    sps, pps = clip.parameter_sets()
    return MountMedia(spec, width, height, fps, sps, pps, clip)


def scene_frames(scene: SyntheticScene, fps: float) -> Generator[av.VideoFrame, None, None]:
    for index in itertools.count():
        bgr = scene.render(index / fps)
        # OpenCV's I420 conversion costs ~0.1 ms against ~0.5 ms for swscale from bgr24 at
        # 640x360, and PyAV's bgr24 output on the client side matches it as closely.
        yuv = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        yield av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def probe_file(path: Path) -> tuple[int, int, float]:
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else DEFAULT_FPS
        return stream.codec_context.width, stream.codec_context.height, fps


def file_frames(
    path: Path, width: int, height: int, *, loop: bool
) -> Generator[av.VideoFrame, None, None]:
    while True:
        produced = False
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                produced = True
                yield frame.reformat(width=width, height=height, format="yuv420p")
        if not loop or not produced:
            return
