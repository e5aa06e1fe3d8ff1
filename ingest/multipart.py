"""An incremental parser of `multipart/x-mixed-replace` bodies as IP cameras really send them.

Pure: bytes in, parts out, no I/O. Cameras bend RFC 2046 in known ways, and each is tolerated:
the boundary is declared with or without its leading "--" and written with or without it; the
CRLF before a delimiter is missing after some JPEGs; Content-Length is absent, or present and
wrong; the body starts with a delimiter or with junk. Memory is bounded: a part (or junk before
a delimiter) longer than `max_part_bytes`, or headers longer than `max_header_bytes`, raise
`MultipartError` instead of buffering on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto

__all__ = ["MultipartError", "MultipartParser", "Part", "parse_content_type"]

_LF = 0x0A
_DASH = 0x2D
_SOI = b"\xff\xd8"  # a JPEG's first bytes: a part that starts with them has no header block
# A delimiter line is the boundary plus at most "--" and transport padding; a longer line that
# merely contains the boundary (inside a JPEG, say) is not one.
_MAX_DELIMITER_TAIL = 64
# Bytes kept in front of a scan position: the dashes and the line start a delimiter needs.
_SCAN_MARGIN = 64
_BOUNDARY_PARAM = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


class MultipartError(ValueError):
    """The body cannot be a multipart stream, or a part exceeds the parser's bounds."""


@dataclass(frozen=True, slots=True)
class Part:
    headers: Mapping[str, str]  # names in lower case; the last of repeated names wins
    body: bytes


def parse_content_type(value: str) -> tuple[str, str | None]:
    """`(media type in lower case, boundary parameter or None)` of a Content-Type value."""
    media_type = value.split(";", 1)[0].strip().lower()
    match = _BOUNDARY_PARAM.search(value)
    if match is None:
        return media_type, None
    boundary = match.group(1) if match.group(1) is not None else match.group(2)
    return media_type, boundary or None


class _State(Enum):
    SEEKING = auto()  # before the first delimiter, or skipping junk to resynchronise
    HEADERS = auto()
    BODY = auto()
    AFTER_PART = auto()  # a part ended by Content-Length: a delimiter must come next
    CLOSED = auto()  # the close delimiter came; the rest is epilogue


@dataclass(frozen=True, slots=True)
class _Delimiter:
    start: int  # where the delimiter line starts (first dash, or the boundary itself)
    end: int  # just past its line feed
    close: bool  # "--boundary--": the server ends the stream


class MultipartParser:
    """Feed it the body as it arrives; it returns each part once the part is complete.

    A part with a usable Content-Length is complete as soon as its bytes are in (no wait for the
    next delimiter, so no added latency); one without is complete when the next delimiter comes.
    """

    def __init__(
        self,
        boundary: str | None,
        *,
        max_part_bytes: int = 8 << 20,
        max_header_bytes: int = 16 << 10,
    ) -> None:
        # Dashes are not part of the token: declared "--b" and written "b", or the reverse, and
        # "b" written as "--b" all match. None: learn it from the first "--" line of the body.
        self._token: bytes | None = boundary.encode("latin-1").lstrip(b"-") if boundary else None
        if self._token == b"":
            self._token = None
        self._max_part = max_part_bytes
        self._max_headers = max_header_bytes
        self._buf = bytearray()
        self._state = _State.SEEKING
        self._scan_pos = 0  # where the next search for the boundary starts
        self._headers: dict[str, str] = {}
        self._length: int | None = None
        self._started = False  # a first delimiter has been seen
        self._junk = 0  # bytes dropped while seeking the current delimiter
        self.resyncs = 0  # times junk stood where a delimiter belonged (a part was lost)
        self.skipped_bytes = 0

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Part]:
        if self._state is _State.CLOSED:
            return []
        self._buf += data
        parts: list[Part] = []
        while self._step(parts):
            pass
        return parts

    def finish(self) -> list[Part]:
        """The stream ended: the part in progress, if it has no Content-Length, ends here too
        (its end is only ever known from what follows). A cut-off part is the decoder's to judge.
        """
        if self._state is not _State.BODY or self._length is not None or not self._buf:
            return []
        body = bytes(self._buf).removesuffix(b"\n").removesuffix(b"\r")
        self._buf.clear()
        self._state = _State.CLOSED
        return [Part(self._headers, body)]

    def _step(self, parts: list[Part]) -> bool:
        """Advance the state machine once; False when more bytes are needed."""
        if self._state is _State.SEEKING:
            return self._seek()
        if self._state is _State.HEADERS:
            return self._read_headers()
        if self._state is _State.BODY:
            return self._read_body(parts)
        if self._state is _State.AFTER_PART:
            return self._after_part()
        return False

    def _seek(self) -> bool:
        if self._token is None and not self._learn_boundary():
            return False
        delimiter = self._find_delimiter()
        if delimiter is None:
            # Nothing before the scan position can start a delimiter any more: drop it, so junk
            # costs no memory, but keep the margin a delimiter's dashes and line start need.
            drop = max(0, self._scan_pos - _SCAN_MARGIN)
            if drop:
                self._discard(drop)
            # Junk is dropped as it is scanned, but not forever: a server that never sends a
            # delimiter is not a multipart stream.
            if self._junk + len(self._buf) > self._max_part:
                raise MultipartError(f"no boundary within {self._max_part} bytes")
            return False
        if delimiter.start:
            self._discard(delimiter.start)
        self._enter_part(delimiter.close, delimiter.end - delimiter.start)
        return True

    def _learn_boundary(self) -> bool:
        """A server that declared no boundary: take the first line that starts with "--"."""
        for match in re.finditer(rb"(?m)^--([^\r\n]+?)[ \t]*\r?\n", bytes(self._buf)):
            token = match.group(1).lstrip(b"-")
            if token:
                self._token = token
                return True
        if len(self._buf) > self._max_headers:
            raise MultipartError("no boundary declared and no '--' line in the body")
        return False

    def _discard(self, count: int) -> None:
        self._junk += count
        if self._started:
            self.skipped_bytes += count
        del self._buf[:count]
        self._scan_pos = max(0, self._scan_pos - count)

    def _enter_part(self, close: bool, consumed: int) -> None:
        del self._buf[:consumed]
        self._scan_pos = 0
        self._junk = 0
        self._started = True
        self._state = _State.CLOSED if close else _State.HEADERS

    def _read_headers(self) -> bool:
        buf = self._buf
        if buf[:2] == _SOI:
            self._headers, self._length = {}, None
            self._state = _State.BODY
            return True
        end, blank = _find_blank_line(buf)
        if end < 0 or end > self._max_headers:
            if end > self._max_headers or len(buf) > self._max_headers:
                raise MultipartError(f"part headers longer than {self._max_headers} bytes")
            return False
        headers: dict[str, str] = {}
        for line in bytes(buf[:end]).decode("latin-1").splitlines():
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        del buf[: end + blank]
        self._headers = headers
        self._length = _content_length(headers)
        if self._length is not None and self._length > self._max_part:
            raise MultipartError(
                f"part of {self._length} bytes exceeds the {self._max_part}-byte limit"
            )
        self._scan_pos = 0
        self._state = _State.BODY
        return True

    def _read_body(self, parts: list[Part]) -> bool:
        buf = self._buf
        if self._length is not None:
            if len(buf) < self._length:
                return False
            parts.append(Part(self._headers, bytes(buf[: self._length])))
            del buf[: self._length]
            self._scan_pos = 0
            self._state = _State.AFTER_PART
            return True
        delimiter = self._find_delimiter()
        if delimiter is None:
            if len(buf) > self._max_part:
                raise MultipartError(f"part longer than {self._max_part} bytes")
            return False
        body_end = delimiter.start
        # The CRLF before a delimiter belongs to the delimiter (RFC 2046), when it is there.
        if body_end and buf[body_end - 1] == _LF:
            body_end -= 2 if body_end >= 2 and buf[body_end - 2] == 0x0D else 1
        parts.append(Part(self._headers, bytes(buf[:body_end])))
        self._enter_part(delimiter.close, delimiter.end)
        return True

    def _after_part(self) -> bool:
        buf = self._buf
        padding = len(buf) - len(buf.lstrip(b"\r\n \t"))
        if padding:
            del buf[:padding]
        if not buf:
            return False
        assert self._token is not None  # a part was read, so the boundary is known
        expected = b"--" + self._token
        if buf[: len(expected)] == expected[: len(buf)] or buf[:1] == self._token[:1]:
            # The delimiter (with its dashes, or without) is arriving: wait for its whole line.
            delimiter = self._find_delimiter()
            if delimiter is not None and delimiter.start == 0:
                self._enter_part(delimiter.close, delimiter.end)
                return True
            if delimiter is None and len(buf) < len(expected) + _MAX_DELIMITER_TAIL:
                return False
        # Content-Length lied: skip to the next delimiter; the part it hides is lost.
        self.resyncs += 1
        self._scan_pos = 0
        self._state = _State.SEEKING
        return True

    def _find_delimiter(self) -> _Delimiter | None:
        """The first delimiter line at or after `self._scan_pos`; None, with the scan position
        moved on, when there is none yet."""
        token = self._token
        assert token is not None
        buf = self._buf
        i = buf.find(token, self._scan_pos)
        while i >= 0:
            j = i
            while j > 0 and buf[j - 1] == _DASH:
                j -= 1
            # Two dashes mark a delimiter even with no line break before it (a JPEG's last
            # bytes then the boundary); bare, the boundary must start a line.
            if i - j >= 2 or j == 0 or buf[j - 1] == _LF:
                tail_start = i + len(token)
                line_end = buf.find(b"\n", tail_start, tail_start + _MAX_DELIMITER_TAIL + 1)
                if line_end < 0:
                    if len(buf) - tail_start <= _MAX_DELIMITER_TAIL:
                        self._scan_pos = i  # the line is still arriving
                        return None
                else:
                    tail = bytes(buf[tail_start:line_end]).strip()
                    if tail in (b"", b"--"):
                        return _Delimiter(j, line_end + 1, tail == b"--")
            i = buf.find(token, i + 1)
        self._scan_pos = max(0, len(buf) - len(token) + 1)
        return None


def _find_blank_line(buf: bytearray) -> tuple[int, int]:
    """(end of the header block, length of the blank line that ends it), or (-1, 0)."""
    # An empty header block first: searching on would find a blank line inside the body.
    if buf[:2] == b"\r\n":
        return 0, 2
    if buf[:1] == b"\n":
        return 0, 1
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None
