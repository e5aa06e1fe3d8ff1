"""RTSP/1.0 message syntax for the server side (RFC 2326 section 6-7). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
}


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "")

    @property
    def session_id(self) -> str | None:
        value = self.headers.get("session")
        return value.split(";", 1)[0].strip() if value else None

    @property
    def path_segments(self) -> list[str]:
        """`rtsp://h:p/cam1/trackID=0` -> ["cam1", "trackID=0"]; `*` -> []."""
        if self.url == "*":
            return []
        path = urlsplit(self.url).path if "://" in self.url else self.url
        return [segment for segment in path.split("/") if segment]

    @property
    def content_length(self) -> int:
        return content_length(self.headers)


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (everything up to and including the blank line)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request head is not UTF-8") from exc
    lines = text.split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3:
        raise BadRequest(f"malformed request line {lines[0]!r}")
    method, url, version = parts
    if version != "RTSP/1.0":
        raise BadRequest(f"unsupported version {version}", status=505)
    headers: dict[str, str] = {}
    last: str | None = None
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and last is not None:
            headers[last] += " " + line.strip()  # obsolete line folding
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest(f"malformed header line {line!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    if "cseq" not in headers:
        raise BadRequest("missing CSeq")
    return Request(method.upper(), url, headers)


def content_length(headers: Mapping[str, str]) -> int:
    raw = headers.get("content-length", "0")
    try:
        size = int(raw)
    except ValueError as exc:
        raise BadRequest(f"bad Content-Length {raw!r}") from exc
    if not 0 <= size <= MAX_BODY_BYTES:
        raise BadRequest(f"Content-Length {size} out of range")
    return size


def format_response(
    status: int,
    cseq: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Unknown')}"]
    if cseq:
        lines.append(f"CSeq: {cseq}")
    lines.append("Server: camcount-simulator")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass(frozen=True, slots=True)
class TcpTransport:
    rtp_channel: int
    rtcp_channel: int


def choose_tcp_transport(header: str | None) -> TcpTransport | None:
    """Pick the first RTP/AVP/TCP alternative of a SETUP Transport header.

    Returns None when the client offers none (UDP only, multicast, unknown profile): the caller
    answers 461. Without `interleaved=` the server assigns channels 0-1.
    """
    if not header:
        return None
    for alternative in header.split(","):
        fields = [f.strip() for f in alternative.split(";")]
        if fields[0].upper() != "RTP/AVP/TCP":
            continue
        if any(f.lower() == "multicast" for f in fields):
            continue
        rtp, rtcp = 0, 1
        for field in fields[1:]:
            key, _, value = field.partition("=")
            if key.lower() != "interleaved":
                continue
            low, _, high = value.partition("-")
            try:
                rtp = int(low)
                rtcp = int(high) if high else rtp + 1
            except ValueError:
                return None
        if not (0 <= rtp <= 255 and 0 <= rtcp <= 255):
            return None
        return TcpTransport(rtp, rtcp)
    return None
