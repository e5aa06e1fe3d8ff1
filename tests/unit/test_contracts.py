from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.batch import EncodedFrame, decode_batch, encode_batch
from contracts.geometry import LineGeometry, Point, side_of
from contracts.ids import BatchId
from contracts.messages import BatchHeaders, MessageError
from contracts.secrets import mask_url

frames_st = st.lists(
    st.builds(
        EncodedFrame,
        captured_at=st.floats(min_value=1e9, max_value=2e9),
        width=st.integers(1, 4096),
        height=st.integers(1, 4096),
        jpeg=st.binary(max_size=300),
    ),
    max_size=20,
)


@given(frames_st)
def test_batch_container_round_trips(frames: list[EncodedFrame]) -> None:
    assert decode_batch(encode_batch(frames)) == frames


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "too short"),
        (b"XXXX\x00\x00\x00\x00", "unknown magic"),
        (b"CCB1\x00\x00\x10\x00{}", "exceeds the body"),
        (b"CCB1\x00\x00\x00\x02{}", "malformed"),
        (b'CCB1\x00\x00\x00\x30{"frames":[{"t":1,"w":2,"h":3,"n":99}]}' + b"\x00" * 10,
         "malformed|exceed"),
    ],
)
def test_malformed_bodies_name_the_problem(body: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_batch(body)


def test_trailing_bytes_are_refused() -> None:
    body = encode_batch([EncodedFrame(1.0, 2, 2, b"abc")]) + b"junk"
    with pytest.raises(MessageError, match="trailing"):
        decode_batch(body)


def _headers(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1, "camera_id": "cam-1", "stream_epoch": 3, "seq": 7,
        "priority": 2, "region": "eu", "capability": "motion", "captured_at": 1.7e9,
        "deadline_at": 1.7e9 + 10, "frame_count": 5,
    }
    base.update(overrides)
    return base


def test_headers_round_trip_through_amqp_table() -> None:
    headers = BatchHeaders.from_amqp(_headers())
    assert headers.batch_id == BatchId("cam-1", 3, 7)
    assert BatchHeaders.from_amqp(headers.to_amqp()) == headers
    assert "assignment_epoch" not in headers.to_amqp()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seq": -1}, "seq"),
        ({"camera_id": "Bad Id"}, "camera_id"),
        ({"schema_version": 9}, "schema_version"),
        ({"priority": 7}, "priority"),
        ({"captured_at": "soon"}, "captured_at"),
    ],
)
def test_bad_headers_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(MessageError, match=field):
        BatchHeaders.from_amqp(_headers(**change))


def test_missing_headers_are_refused() -> None:
    with pytest.raises(MessageError, match="no headers"):
        BatchHeaders.from_amqp(None)


def test_vertical_line_sides_follow_the_documented_convention() -> None:
    line = LineGeometry(a=Point(x=0.5, y=0.0), b=Point(x=0.5, y=1.0))
    assert side_of(line, 0.2, 0.5) == 1  # left of a top-to-bottom line
    assert side_of(line, 0.8, 0.5) == -1
    assert side_of(line, 0.5, 0.3) == 0


def test_degenerate_line_is_refused() -> None:
    with pytest.raises(ValueError, match="must differ"):
        LineGeometry(a=Point(x=0.5, y=0.5), b=Point(x=0.5, y=0.5))


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("rtsp://u:p%40ss@[fe80::1]/x", "rtsp://u:***@[fe80::1]/x"),
        ("rtsp://s3cr3tT0ken@10.0.0.5/live", "rtsp://***@10.0.0.5/live"),
        ("https://user:@hooks.example/x", "https://user:***@hooks.example/x"),
    ],
)
def test_mask_url_hides_only_the_credentials(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_instants_survive_the_amqp_table_encoding_to_the_microsecond() -> None:
    from pamqp import decode, encode

    headers = BatchHeaders.from_amqp(_headers(captured_at=1795384792.123456,
                                              deadline_at=1795384802.654321))
    wire = encode.field_table(headers.to_amqp())
    _, table = decode.field_table(wire)
    back = BatchHeaders.from_amqp(table)
    assert back.captured_at == pytest.approx(1795384792.123456, abs=1e-6)
    assert back.deadline_at == pytest.approx(1795384802.654321, abs=1e-6)
    assert back == headers
