"""RTP packetization of H.264 access units (RFC 3550 header, RFC 6184 payload). Pure.

The packetizer uses all three non-interleaved payload structures so that a client talking to the
simulator meets each of them: single NAL unit packets, STAP-A for runs of small NAL units (SPS,
PPS, SEI before an IDR) and FU-A for NAL units larger than the MTU.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
H264_CLOCK_RATE = 90_000
DEFAULT_MTU = 1400
DEFAULT_PAYLOAD_TYPE = 96

NAL_TYPE_STAP_A = 24
NAL_TYPE_FU_A = 28
_STAP_A_HEADER_SIZE = 1
_STAP_A_LENGTH_SIZE = 2
_FU_A_HEADER_SIZE = 2

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units (start codes and zero padding removed)."""
    nals: list[bytes] = []
    start = _find_start_code(data, 0)
    while start is not None:
        payload_start = start + 3
        nxt = _find_start_code(data, payload_start)
        end = len(data) if nxt is None else nxt
        # A 4-byte start code (or trailing_zero_8bits) leaves zeros at the end of the previous
        # NAL unit; a NAL unit never ends in a zero byte, so they are padding.
        nal = data[payload_start:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = nxt
    return nals


def _find_start_code(data: bytes, offset: int) -> int | None:
    index = data.find(b"\x00\x00\x01", offset)
    return None if index < 0 else index


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def rtp_header(
    *, payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool
) -> bytes:
    first = RTP_VERSION << 6
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return struct.pack(
        "!BBHII", first, second, sequence % _SEQ_MOD, timestamp % _TS_MOD, ssrc & 0xFFFFFFFF
    )


class H264Packetizer:
    """Turns access units into RTP packets for one stream (one SSRC, one sequence space).

    State is only the next sequence number, so a caller that drops a packetized access unit
    (e.g. a slow TCP reader) still consumes its sequence numbers and the receiver sees a gap.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        initial_sequence: int,
        payload_type: int = DEFAULT_PAYLOAD_TYPE,
        mtu: int = DEFAULT_MTU,
        aggregate: bool = True,
    ) -> None:
        if mtu <= RTP_HEADER_SIZE + _FU_A_HEADER_SIZE:
            raise ValueError(f"mtu {mtu} leaves no room for a payload")
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type
        self.next_sequence = initial_sequence % _SEQ_MOD
        self._max_payload = mtu - RTP_HEADER_SIZE
        self._aggregate = aggregate

    def packetize(self, nals: Sequence[bytes], timestamp: int) -> list[bytes]:
        """Packets for one access unit; the marker bit is set on the last one."""
        payloads: list[bytes] = []
        pending: list[bytes] = []
        for nal in nals:
            if not nal:
                continue
            if len(nal) > self._max_payload:
                payloads.extend(self._flush(pending))
                pending = []
                payloads.extend(self._fragment(nal))
            elif self._aggregate and _stap_size([*pending, nal]) <= self._max_payload:
                pending.append(nal)
            else:
                payloads.extend(self._flush(pending))
                pending = [nal]
        payloads.extend(self._flush(pending))

        packets: list[bytes] = []
        for index, payload in enumerate(payloads):
            header = rtp_header(
                payload_type=self.payload_type,
                sequence=self.next_sequence,
                timestamp=timestamp,
                ssrc=self.ssrc,
                marker=index == len(payloads) - 1,
            )
            self.next_sequence = (self.next_sequence + 1) % _SEQ_MOD
            packets.append(header + payload)
        return packets

    def _flush(self, pending: list[bytes]) -> list[bytes]:
        if not pending:
            return []
        if len(pending) == 1:
            return [pending[0]]
        # STAP-A's F and NRI are the OR / max of the aggregated units (RFC 6184 5.7.1).
        forbidden = 0
        nri = 0
        for nal in pending:
            forbidden |= nal[0] & 0x80
            nri = max(nri, nal[0] & 0x60)
        parts = [bytes([forbidden | nri | NAL_TYPE_STAP_A])]
        for nal in pending:
            parts.append(struct.pack("!H", len(nal)))
            parts.append(nal)
        return [b"".join(parts)]

    def _fragment(self, nal: bytes) -> list[bytes]:
        header = nal[0]
        indicator = (header & 0xE0) | NAL_TYPE_FU_A
        kind = header & 0x1F
        body = memoryview(nal)[1:]
        chunk = self._max_payload - _FU_A_HEADER_SIZE
        fragments: list[bytes] = []
        for offset in range(0, len(body), chunk):
            start_bit = 0x80 if offset == 0 else 0
            end_bit = 0x40 if offset + chunk >= len(body) else 0
            fragments.append(
                bytes([indicator, start_bit | end_bit | kind]) + body[offset : offset + chunk]
            )
        return fragments


def _stap_size(nals: Sequence[bytes]) -> int:
    if len(nals) == 1:
        return len(nals[0])
    return _STAP_A_HEADER_SIZE + sum(_STAP_A_LENGTH_SIZE + len(nal) for nal in nals)


def rtcp_bye(ssrc: int) -> bytes:
    """An RTCP BYE for one source: tells the receiver the stream ends on purpose."""
    return struct.pack("!BBHI", (RTP_VERSION << 6) | 1, 203, 1, ssrc & 0xFFFFFFFF)
