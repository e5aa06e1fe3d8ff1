"""A multipart/form-data upload streamed to disk: the `file` part goes straight to a file
(bounded by its own size limit, never held in memory), the small `spec` part (the job's
settings as JSON) is kept. python-multipart parses; this module decides what to keep.

Starlette's own form parsing spools a file to a temporary file first and only then hands it
over: a second full copy of a video of gigabytes. Here it is written once, where it stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

SPEC_FIELD, FILE_FIELD = "spec", "file"
MAX_SPEC_BYTES = 64 * 1024
_FLUSH_BYTES = 1024 * 1024  # written to disk (off the event loop) in pieces of about this


class UploadError(Exception):
    """The upload cannot be accepted: `status` (413 or 422) and the field it is about."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field


@dataclass
class _Parts:
    file: BinaryIO
    max_file_bytes: int
    spec: bytearray = field(default_factory=bytearray)
    pending: bytearray = field(default_factory=bytearray)  # file bytes not yet written
    file_bytes: int = 0
    seen: set[str] = field(default_factory=set)
    current: str | None = None
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    problem: UploadError | None = None

    def on_part_begin(self) -> None:
        self.current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.header_name).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self.header_value))
            name = options.get(b"name", b"").decode("utf-8", "replace")
            self.current = name if name in (SPEC_FIELD, FILE_FIELD) else None
            if self.current in self.seen:
                self._refuse(422, self.current, f"the form has more than one {self.current!r}")
            if self.current is not None:
                self.seen.add(self.current)
        self.header_name.clear()
        self.header_value.clear()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current == SPEC_FIELD:
            self.spec += data[start:end]
            if len(self.spec) > MAX_SPEC_BYTES:
                self._refuse(413, SPEC_FIELD, f"spec over {MAX_SPEC_BYTES} bytes")
        elif self.current == FILE_FIELD:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                self._refuse(413, FILE_FIELD, f"video over {self.max_file_bytes} bytes")
            self.pending += data[start:end]

    def _refuse(self, status: int, name: str, message: str) -> None:
        if self.problem is None:
            self.problem = UploadError(status, name, message)


def boundary_of(content_type: str | None) -> bytes:
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise UploadError(422, "content-type",
                          "expected multipart/form-data with a boundary (fields spec, file)")
    return boundary


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str | None,
                         destination: Path, max_file_bytes: int) -> tuple[bytes, int]:
    """Write the `file` part to `destination` (removed again on any error) and return the
    `spec` part and the file's size. Raises UploadError."""
    boundary = boundary_of(content_type)
    out: BinaryIO = await asyncio.to_thread(destination.open, "xb")
    try:
        parts = _Parts(out, max_file_bytes)
        await _receive(chunks, parts, MultipartParser(boundary, {
            "on_part_begin": parts.on_part_begin, "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value, "on_header_end": parts.on_header_end,
            "on_part_data": parts.on_part_data}))
    except BaseException:
        await asyncio.to_thread(out.close)
        await asyncio.to_thread(destination.unlink, missing_ok=True)
        raise
    await asyncio.to_thread(out.close)
    return bytes(parts.spec), parts.file_bytes


async def _receive(chunks: AsyncIterator[bytes], parts: _Parts,
                   parser: MultipartParser) -> None:
    async for chunk in chunks:
        try:
            parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own error types
            raise UploadError(422, "body", f"malformed multipart body: {exc}") from None
        if parts.problem is not None:
            raise parts.problem
        if len(parts.pending) >= _FLUSH_BYTES:
            await _flush(parts)
    await _flush(parts)
    try:
        parser.finalize()
    except Exception as exc:
        raise UploadError(422, "body", f"malformed multipart body: {exc}") from None
    missing = [n for n in (SPEC_FIELD, FILE_FIELD) if n not in parts.seen]
    if missing:
        raise UploadError(422, missing[0], f"the form has no {missing[0]!r} field")
    if parts.file_bytes == 0:
        raise UploadError(422, FILE_FIELD, "the video file is empty")


async def _flush(parts: _Parts) -> None:
    if parts.pending:
        data = bytes(parts.pending)
        parts.pending.clear()
        await asyncio.to_thread(parts.file.write, data)
