"""The multipart/x-mixed-replace parser against the ways real cameras write it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.multipart import MultipartError, MultipartParser, Part, parse_content_type

JPEG_A = b"\xff\xd8" + b"A" * 300 + b"\r\n--notadelimiter here\r\n" + b"\xff\xd9"
JPEG_B = b"\xff\xd8" + bytes(range(256)) * 3 + b"\xff\xd9"
JPEG_C = b"\xff\xd8" + b"--myboundaryX\r\n" + b"C" * 50 + b"\xff\xd9"  # the boundary as a prefix


def part(body: bytes, *, length: bool = True, dashes: str = "--", eol: str = "\r\n",
         extra: str = "") -> bytes:
    headers = f"Content-Type: image/jpeg{eol}{extra}"
    if length:
        headers += f"Content-Length: {len(body)}{eol}"
    return f"{dashes}myboundary{eol}{headers}{eol}".encode() + body + eol.encode()


def feed_all(parser: MultipartParser, data: bytes, chunk: int | None = None) -> list[Part]:
    if chunk is None:
        return parser.feed(data)
    parts: list[Part] = []
    for i in range(0, len(data), chunk):
        parts += parser.feed(data[i : i + chunk])
    return parts


STREAMS = {
    "content-length": (part(JPEG_A) + part(JPEG_B) + part(JPEG_C), "myboundary"),
    "no-length": (part(JPEG_A, length=False) + part(JPEG_B, length=False)
                  + part(JPEG_C, length=False) + b"--myboundary\r\n", "myboundary"),
    "declared-with-dashes": (part(JPEG_A) + part(JPEG_B) + part(JPEG_C), "--myboundary"),
    "written-without-dashes": (
        part(JPEG_A, length=False, dashes="") + part(JPEG_B, length=False, dashes="")
        + part(JPEG_C, length=False, dashes="") + b"myboundary\r\n", "myboundary"),
    "lf-only": (part(JPEG_A, eol="\n", length=False) + part(JPEG_B, eol="\n")
                + part(JPEG_C, eol="\n") , "myboundary"),
    "preamble-and-no-leading-crlf": (
        b"garbage before the first part\r\n"
        + part(JPEG_A, length=False)[:-2] + part(JPEG_B, length=False)[:-2]
        + part(JPEG_C, length=False)[:-2] + b"--myboundary\r\n", "myboundary"),
    "undeclared-boundary": (part(JPEG_A) + part(JPEG_B) + part(JPEG_C), None),
}


@pytest.mark.parametrize("chunk", [None, 1, 7, 1000])
@pytest.mark.parametrize("name", list(STREAMS))
def test_camera_dialects_yield_the_same_bodies(name: str, chunk: int | None) -> None:
    data, boundary = STREAMS[name]
    parser = MultipartParser(boundary)
    parts = feed_all(parser, data, chunk)
    assert [p.body for p in parts] == [JPEG_A, JPEG_B, JPEG_C]
    assert all(p.headers["content-type"] == "image/jpeg" for p in parts)
    assert parser.resyncs == 0 and parser.skipped_bytes == 0


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_chunking_gives_the_same_parts(cuts: list[int]) -> None:
    data = STREAMS["preamble-and-no-leading-crlf"][0] + STREAMS["content-length"][0]
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    parser = MultipartParser("myboundary")
    parts: list[Part] = []
    for start, end in itertools.pairwise(bounds):
        parts += parser.feed(data[start:end])
    assert [p.body for p in parts] == [JPEG_A, JPEG_B, JPEG_C] * 2


def test_a_part_with_content_length_is_complete_without_waiting_for_the_next_delimiter() -> None:
    parser = MultipartParser("myboundary")
    first = part(JPEG_A)
    assert [p.body for p in parser.feed(first[:-2])] == [JPEG_A]
    # Without Content-Length the end is only known when the next delimiter comes.
    parser = MultipartParser("myboundary")
    assert parser.feed(part(JPEG_A, length=False)) == []
    assert [p.body for p in parser.feed(b"--myboundary\r\n")] == [JPEG_A]


@pytest.mark.parametrize("wrong_length", [len(JPEG_B) - 40, len(JPEG_B) + 60])
def test_a_lying_content_length_costs_at_most_the_next_part(wrong_length: int) -> None:
    lying = part(JPEG_B, length=False, extra=f"Content-Length: {wrong_length}\r\n")
    data = part(JPEG_A) + lying + part(JPEG_C) + part(JPEG_A) + part(JPEG_B)
    parser = MultipartParser("myboundary")
    bodies = [p.body for p in feed_all(parser, data, 13)]
    assert bodies[0] == JPEG_A
    assert bodies[-2:] == [JPEG_A, JPEG_B]
    assert len(bodies) >= 4
    assert parser.resyncs == 1 and parser.skipped_bytes > 0


def test_the_end_of_the_body_ends_a_part_without_content_length() -> None:
    parser = MultipartParser("myboundary")
    assert parser.feed(part(JPEG_A, length=False)) == []
    assert [p.body for p in parser.finish()] == [JPEG_A]
    # With Content-Length, a cut-off part is not passed off as complete.
    parser = MultipartParser("myboundary")
    assert parser.feed(part(JPEG_A)[:-40]) == []
    assert parser.finish() == []


def test_parts_without_headers_and_with_an_empty_header_block() -> None:
    data = (b"--myboundary\r\n" + JPEG_A + b"\r\n--myboundary\r\n\r\n" + JPEG_B
            + b"\r\n--myboundary\r\n")
    assert [p.body for p in MultipartParser("myboundary").feed(data)] == [JPEG_A, JPEG_B]


def test_the_close_delimiter_ends_the_stream_and_the_epilogue_is_ignored() -> None:
    parser = MultipartParser("myboundary")
    parts = parser.feed(part(JPEG_A) + b"--myboundary--\r\n" + part(JPEG_B))
    assert [p.body for p in parts] == [JPEG_A]
    assert parser.closed
    assert parser.feed(part(JPEG_C)) == []


def test_an_announced_oversized_part_fails_before_its_body_is_buffered() -> None:
    parser = MultipartParser("myboundary", max_part_bytes=1000)
    with pytest.raises(MultipartError, match="exceeds"):
        parser.feed(b"--myboundary\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 100)
    assert parser.buffered_bytes < 1000


@pytest.mark.parametrize("prefix", [b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n", b""])
def test_a_part_or_junk_without_end_fails_at_the_cap(prefix: bytes) -> None:
    parser = MultipartParser("myboundary", max_part_bytes=10_000)
    parser.feed(prefix)
    with pytest.raises(MultipartError):
        for _ in range(1000):
            parser.feed(b"\x00" * 512)
            assert parser.buffered_bytes <= 10_000 + 512


def test_endless_headers_fail_at_the_header_cap() -> None:
    parser = MultipartParser("myboundary", max_header_bytes=1024)
    parser.feed(b"--myboundary\r\n")
    with pytest.raises(MultipartError, match="headers"):
        for _ in range(100):
            parser.feed(b"X-Padding: " + b"y" * 100 + b"\r\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("multipart/x-mixed-replace; boundary=myboundary", ("multipart/x-mixed-replace",
                                                              "myboundary")),
        ('Multipart/X-Mixed-Replace;Boundary="--my boundary"', ("multipart/x-mixed-replace",
                                                                 "--my boundary")),
        ("multipart/x-mixed-replace;boundary=b;charset=x", ("multipart/x-mixed-replace", "b")),
        ("multipart/x-mixed-replace", ("multipart/x-mixed-replace", None)),
        ("image/jpeg", ("image/jpeg", None)),
    ],
)
def test_content_type(value: str, expected: tuple[str, str | None]) -> None:
    assert parse_content_type(value) == expected
