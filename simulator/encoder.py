"""H.264 encoding with PyAV's libx264, tuned like a cheap IP camera. Blocking: call from a thread.

ultrafast + zerolatency: one frame in, one access unit out, no B-frames, no lookahead.
An IDR every ~2 s with SPS/PPS repeated in-band before it, so a client can join (or resync
after loss) at any keyframe without the SDP.

`encode_clip` encodes a few seconds once, for mounts that replay the same access units in a loop
(`preencode_s`): serving many 720p streams then costs the simulator packetization only, where
live x264 at ~4 ms a frame would eat the very cores a benchmark measures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from simulator.rtp import split_annexb

KEYFRAME_INTERVAL_S = 2.0
NAL_SPS = 7
NAL_PPS = 8


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    nals: list[bytes]
    keyframe: bool


@dataclass(frozen=True, slots=True)
class EncodedClip:
    """Access units that loop seamlessly: the first is an IDR with SPS/PPS in-band, and the
    count is a whole number of keyframe intervals, so the frame after the last is an IDR too
    and no decoder ever references a picture across the seam."""

    frames: tuple[EncodedFrame, ...]
    fps: float

    @property
    def bytes_per_s(self) -> float:
        total = sum(len(nal) for frame in self.frames for nal in frame.nals)
        return total * self.fps / len(self.frames)

    def parameter_sets(self) -> tuple[bytes, bytes]:
        return _sps_pps(self.frames[0].nals)


def keyframe_interval(fps: float) -> int:
    """Frames from one IDR to the next."""
    return max(1, round(KEYFRAME_INTERVAL_S * float(frame_rate(fps))))


def frame_rate(fps: float) -> Fraction:
    # 29.97 and friends must stay exact fractions or x264's rate control drifts.
    return Fraction(fps).limit_denominator(1001)


class H264Encoder:
    def __init__(self, width: int, height: int, fps: float) -> None:
        rate = frame_rate(fps)
        keyint = keyframe_interval(fps)
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, VideoCodecContext)
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = rate
        ctx.time_base = 1 / rate
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            # threads=1: one session is one thread; many streams scale better than one wide one.
            "x264-params": (
                f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0"
                ":repeat-headers=1:threads=1:crf=23"
            ),
        }
        self._ctx = ctx
        self._width = width
        self._height = height
        self._index = 0

    def encode(self, frame: av.VideoFrame) -> EncodedFrame:
        if frame.format.name != "yuv420p" or (frame.width, frame.height) != (
            self._width,
            self._height,
        ):
            frame = frame.reformat(width=self._width, height=self._height, format="yuv420p")
        frame.pts = self._index
        self._index += 1
        nals: list[bytes] = []
        keyframe = False
        for packet in self._ctx.encode(frame):
            nals.extend(split_annexb(bytes(packet)))
            keyframe = keyframe or packet.is_keyframe
        return EncodedFrame(nals, keyframe)


def parameter_sets(width: int, height: int, fps: float) -> tuple[bytes, bytes]:
    """SPS and PPS the encoder will emit for this size and rate, for the SDP.

    Every session encodes with identical settings, so one probe frame per mount gives the
    parameter sets of every stream before any of them starts.
    """
    black = av.VideoFrame.from_ndarray(
        np.zeros((height * 3 // 2, width), dtype=np.uint8), format="yuv420p"
    )
    return _sps_pps(H264Encoder(width, height, fps).encode(black).nals)


def encode_clip(
    frames: Iterable[av.VideoFrame], width: int, height: int, fps: float, seconds: float
) -> EncodedClip:
    """At least `seconds` of `frames`, rounded up to whole keyframe intervals. The source must
    not run dry first (loop a file); it raises ValueError if it does."""
    keyint = keyframe_interval(fps)
    count = max(1, math.ceil(seconds * fps / keyint)) * keyint
    encoder = H264Encoder(width, height, fps)
    encoded: list[EncodedFrame] = []
    for frame in frames:
        encoded.append(encoder.encode(frame))
        if len(encoded) == count:
            break
    if len(encoded) < count:
        raise ValueError(f"the source ended after {len(encoded)} of {count} frames")
    if not encoded[0].keyframe or not all(
        f.keyframe == (i % keyint == 0) for i, f in enumerate(encoded)
    ):
        raise RuntimeError("libx264 did not put keyframes where the loop needs them")
    return EncodedClip(tuple(encoded), fps)


def _sps_pps(nals: list[bytes]) -> tuple[bytes, bytes]:
    sps = next((n for n in nals if n[0] & 0x1F == NAL_SPS), None)
    pps = next((n for n in nals if n[0] & 0x1F == NAL_PPS), None)
    if sps is None or pps is None:
        raise RuntimeError("libx264 emitted no SPS/PPS with the first frame")
    return sps, pps
