"""RTP payloads (RFC 6184) to H.264 access units in Annex-B form. Pure: no I/O, no clock.

Handles single NAL unit packets, STAP-A and FU-A (packetization-mode 0 and 1; the interleaved
mode 2 types are rejected as malformed). Packets are grouped into access units by RTP
timestamp, closed by the marker bit or, for senders that never set it, by the next timestamp.

After any damage (a sequence gap, a malformed packet, a broken fragment) nothing is emitted until
the next IDR: a decoder fed P-frames whose references are missing shows smeared garbage for
seconds, which would turn into phantom motion downstream.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

START_CODE = b"\x00\x00\x00\x01"

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28

_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15


def parse_sprop_parameter_sets(value: str | None) -> tuple[bytes, ...]:
    """Decode the SDP fmtp `sprop-parameter-sets` (comma separated base64 NAL units)."""
    if not value:
        return ()
    nals: list[bytes] = []
    for part in value.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            nal = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal:
            nals.append(nal)
    return tuple(nals)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    data: bytes  # Annex-B: every NAL unit preceded by a 4-byte start code
    timestamp: int  # RTP timestamp (32-bit, not unwrapped)
    is_idr: bool
    received_at: float  # arrival time of the last packet, as given by the caller


@dataclass(slots=True)
class DepacketizerStats:
    packets: int = 0
    access_units: int = 0
    lost_packets: int = 0  # sequence numbers never seen
    late_packets: int = 0  # duplicates or reordered behind the current position: ignored
    malformed_packets: int = 0
    dropped_access_units: int = 0  # incomplete, or discarded while waiting for an IDR
    resyncs: int = 0  # times the stream was damaged and had to wait for an IDR


@dataclass(slots=True)
class _Pending:
    timestamp: int
    nals: list[bytes] = field(default_factory=list)
    fragment: bytearray | None = None
    broken: bool = False
    received_at: float = 0.0


class H264Depacketizer:
    """Feed packets in arrival order with `push`; complete access units come back."""

    def __init__(self, sprop_parameter_sets: Sequence[bytes] = ()) -> None:
        self.stats = DepacketizerStats()
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        for nal in sprop_parameter_sets:
            self._remember_parameter_set(nal)
        self._expected_seq: int | None = None
        self._pending: _Pending | None = None
        # Decoding can only start at an IDR: that holds for a fresh stream as much as after loss.
        self._synced = False

    def reset(self) -> None:
        """Forget the stream position (e.g. a new SSRC); parameter sets are kept."""
        self._expected_seq = None
        self._pending = None
        self._synced = False

    def push(
        self,
        *,
        sequence: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        received_at: float = 0.0,
    ) -> list[AccessUnit]:
        self.stats.packets += 1
        out: list[AccessUnit] = []
        gap = False
        if self._expected_seq is not None and sequence != self._expected_seq:
            distance = (sequence - self._expected_seq) % _SEQ_MOD
            if distance >= _SEQ_HALF:
                self.stats.late_packets += 1
                return out
            self.stats.lost_packets += distance
            self._damage()
            gap = True
        self._expected_seq = (sequence + 1) % _SEQ_MOD

        pending = self._pending
        if pending is not None and pending.timestamp != timestamp:
            # The marker packet of the previous access unit was lost or never sent.
            out.extend(self._finish())
            pending = None
        if pending is None:
            pending = self._pending = _Pending(timestamp)
        if gap:
            # The lost packets may have been the first slices of this very access unit: nothing
            # in the packets that arrive tells, so it cannot be trusted.
            pending.broken = True
        pending.received_at = received_at

        self._add_payload(pending, payload)
        if marker:
            out.extend(self._finish())
        return out

    def _damage(self) -> None:
        if self._synced:
            self.stats.resyncs += 1
        self._synced = False
        if self._pending is not None:
            self._pending.broken = True

    def _add_payload(self, pending: _Pending, payload: bytes) -> None:
        if not payload:
            self._malformed(pending)
            return
        kind = payload[0] & 0x1F
        if payload[0] & 0x80:
            # forbidden_zero_bit: the sender marks a unit it knows to be corrupt.
            self._malformed(pending)
        elif 1 <= kind <= 23:
            self._end_fragment_if_open(pending)
            pending.nals.append(payload)
        elif kind == NAL_STAP_A:
            self._end_fragment_if_open(pending)
            nals = _split_stap_a(payload)
            if nals is None:
                self._malformed(pending)
            else:
                pending.nals.extend(nals)
        elif kind == NAL_FU_A:
            self._add_fragment(pending, payload)
        else:
            self._malformed(pending)

    def _add_fragment(self, pending: _Pending, payload: bytes) -> None:
        if len(payload) < 2:
            self._malformed(pending)
            return
        fu_header = payload[1]
        start = bool(fu_header & 0x80)
        end = bool(fu_header & 0x40)
        if start:
            self._end_fragment_if_open(pending)
            nal_header = (payload[0] & 0xE0) | (fu_header & 0x1F)
            pending.fragment = bytearray([nal_header])
        elif pending.fragment is None:
            # A middle or end fragment whose start we never saw: normal when joining a stream
            # mid-frame, a fault once in sync.
            if self._synced:
                self._malformed(pending)
            pending.broken = True
            return
        pending.fragment += payload[2:]
        if end:
            pending.nals.append(bytes(pending.fragment))
            pending.fragment = None

    def _end_fragment_if_open(self, pending: _Pending) -> None:
        if pending.fragment is not None:
            pending.fragment = None
            self._malformed(pending)

    def _malformed(self, pending: _Pending) -> None:
        self.stats.malformed_packets += 1
        self._damage()
        pending.broken = True

    def _finish(self) -> list[AccessUnit]:
        pending = self._pending
        self._pending = None
        if pending is None:
            return []
        if pending.fragment is not None:
            self._malformed(pending)
        if pending.broken or not pending.nals:
            self.stats.dropped_access_units += 1
            return []
        for nal in pending.nals:
            self._remember_parameter_set(nal)
        is_idr = any(_type(nal) == NAL_IDR for nal in pending.nals)
        if not self._synced:
            if not is_idr:
                self.stats.dropped_access_units += 1
                return []
            self._synced = True
        nals = self._with_parameter_sets(pending.nals) if is_idr else pending.nals
        self.stats.access_units += 1
        return [
            AccessUnit(
                data=_annexb(nals),
                timestamp=pending.timestamp,
                is_idr=is_idr,
                received_at=pending.received_at,
            )
        ]

    def _remember_parameter_set(self, nal: bytes) -> None:
        if not nal:
            return
        if _type(nal) == NAL_SPS:
            self._sps = nal
        elif _type(nal) == NAL_PPS:
            self._pps = nal

    def _with_parameter_sets(self, nals: list[bytes]) -> list[bytes]:
        types = {_type(nal) for nal in nals}
        missing = [
            nal
            for nal, kind in ((self._sps, NAL_SPS), (self._pps, NAL_PPS))
            if nal is not None and kind not in types
        ]
        if not missing:
            return nals
        # An access unit delimiter must stay first (H.264 7.4.1.2.3).
        head = 1 if _type(nals[0]) == NAL_AUD else 0
        return [*nals[:head], *missing, *nals[head:]]


def _type(nal: bytes) -> int:
    return nal[0] & 0x1F


def _split_stap_a(payload: bytes) -> list[bytes] | None:
    nals: list[bytes] = []
    offset = 1
    while offset < len(payload):
        if offset + 2 > len(payload):
            return None
        size = int.from_bytes(payload[offset : offset + 2], "big")
        offset += 2
        if size == 0 or offset + size > len(payload):
            return None
        nals.append(payload[offset : offset + size])
        offset += size
    return nals or None


def _annexb(nals: Iterable[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)
