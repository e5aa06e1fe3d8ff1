"""H.264 encoding with PyAV's libx264, tuned like a cheap IP camera. Blocking: call from a thread.

ultrafast + zerolatency: one frame in, one access unit out, no B-frames, no lookahead.
An IDR every ~2 s with SPS/PPS repeated in-band before it, so a client can join (or resync
after loss) at any keyframe without the SDP.
"""

from __future__ import annotations

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


def frame_rate(fps: float) -> Fraction:
    # 29.97 and friends must stay exact fractions or x264's rate control drifts.
    return Fraction(fps).limit_denominator(1001)


class H264Encoder:
    def __init__(self, width: int, height: int, fps: float) -> None:
        rate = frame_rate(fps)
        keyint = max(1, round(KEYFRAME_INTERVAL_S * float(rate)))
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
    nals = H264Encoder(width, height, fps).encode(black).nals
    sps = next((n for n in nals if n[0] & 0x1F == NAL_SPS), None)
    pps = next((n for n in nals if n[0] & 0x1F == NAL_PPS), None)
    if sps is None or pps is None:
        raise RuntimeError("libx264 emitted no SPS/PPS with the first frame")
    return sps, pps
