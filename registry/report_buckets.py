"""The time side of reports, as pure code: bucket boundaries in a time zone, where each camera
was watched (its coverage), and how much of each bucket that covers.

Counts are kept per UTC minute, so every boundary is a whole minute. Hour and day boundaries
are the instants where the wall clock of the report's time zone shows a new hour or day: a
day of a daylight-saving change lasts 23 or 25 hours, and the repeated hour of autumn is two
buckets with the same local label and different offsets.

A camera is watched from its registration (or its first counted minute, should counts predate
it) until the last batch its workers applied (or its last counted minute), never past now,
and not during its coverage gaps. Time outside that is unknown, not zero: a bucket with no
coverage has no count. Boundaries are datetimes; coverage works in Unix seconds (floats).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Bucket = Literal["minute", "hour", "day", "range"]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

Span = tuple[float, float]  # [start, end) in Unix seconds


class TooManyBuckets(ValueError):
    """The range holds more buckets than allowed."""


def is_whole_minute(at: datetime) -> bool:
    """Aware, and on a minute of UTC (counts are kept per UTC minute)."""
    return at.utcoffset() is not None and at.astimezone(UTC).second == 0 and at.microsecond == 0


def _floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _hour_starts(start: datetime, end: datetime, tz: tzinfo) -> Iterator[datetime]:
    """The instants in [start, end) where the local clock shows a whole hour. A shift of the
    offset by whole hours keeps them an hour apart; other shifts (Lord Howe's half hour, old
    local mean times) are found minute by minute."""
    at = start
    while at < end and at.astimezone(tz).minute != 0:
        at += MINUTE
    while at < end:
        yield at
        following = at + HOUR
        if following.astimezone(tz).minute != 0:
            following = at + MINUTE
            while following.astimezone(tz).minute != 0:
                following += MINUTE
        at = following


def _day_starts(start: datetime, end: datetime, tz: tzinfo) -> Iterator[datetime]:
    """Local midnights in [start, end). Where a day has no midnight (the clock jumps from
    23:59 to 01:00) the day starts at the jump: a nonexistent local time takes the offset of
    before the jump (fold=0), which lands exactly there."""
    day: date = start.astimezone(tz).date()
    while True:
        at = _floor_minute(datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC))
        if at >= end:
            return
        if at >= start:
            yield at
        day += timedelta(days=1)


def bucket_bounds(start: datetime, end: datetime, bucket: Bucket, tz: tzinfo,
                  limit: int) -> list[datetime]:
    """Boundaries start = b0 < b1 < ... < bn = end of the n buckets [b_i, b_i+1), as UTC
    datetimes; the first and last bucket are shorter where start or end falls inside one.
    `start` and `end` must be aware whole minutes. Raises TooManyBuckets past `limit`."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not start < end:
        raise ValueError("the range is empty: start must be before end")
    if bucket == "range":
        return [start, end]
    if bucket == "minute":
        minutes = int((end - start) / MINUTE)
        if minutes > limit:
            raise TooManyBuckets(f"{minutes} buckets of a minute; at most {limit}")
        return [start + i * MINUTE for i in range(minutes)] + [end]
    starts = _hour_starts(start, end, tz) if bucket == "hour" else _day_starts(start, end, tz)
    bounds = [start]
    for at in starts:
        if at > bounds[-1]:
            bounds.append(at)
            if len(bounds) > limit:
                raise TooManyBuckets(f"more than {limit} buckets of an {bucket}"
                                     if bucket == "hour" else
                                     f"more than {limit} buckets of a {bucket}")
    bounds.append(end)
    return bounds


@dataclass(frozen=True)
class GapRecord:
    """A coverage_gaps row, times in Unix seconds. A gap of time has `started_at` (and
    `ended_at` once closed); a gap of batches may have only its seqs and when it was recorded."""

    started_at: float | None
    ended_at: float | None
    seq_from: int | None
    seq_to: int | None
    recorded_at: float


@dataclass(frozen=True)
class PlacedGap:
    span: Span
    approximate: bool  # placed from its seqs and the time it was recorded


def place_gap(gap: GapRecord, batch_period_s: float, now: float) -> PlacedGap:
    """The span of time a gap stands for. A gap still open lasts until now. A gap of batches
    recorded without times is placed where it must have been: its batches ended about when
    the gap was recorded (the recorder saw the next batch, or the missed deadline, then), and
    each lasted at most one batch period."""
    if gap.started_at is not None:
        ended = gap.ended_at if gap.ended_at is not None else now
        return PlacedGap((gap.started_at, max(gap.started_at, ended)), False)
    batches = 1
    if gap.seq_from is not None and gap.seq_to is not None:
        batches = max(1, gap.seq_to - gap.seq_from + 1)
    ended = gap.ended_at if gap.ended_at is not None else gap.recorded_at
    return PlacedGap((ended - batches * batch_period_s, ended), True)


def watched_window(registered_at: float, last_applied_at: float | None,
                   data_from: float | None, data_to: float | None, now: float) -> Span | None:
    """When a camera was watched, before gaps: from registration until its last applied batch,
    widened to any minute that holds counts (counted data is never hidden), never past now.
    None when it never was (no batch applied and nothing counted)."""
    if last_applied_at is None and data_to is None:
        return None
    begin = registered_at if data_from is None else min(registered_at, data_from)
    finish = max(x for x in (last_applied_at, data_to) if x is not None)
    finish = min(finish, now)
    return (begin, finish) if begin < finish else None


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """The union of spans, as sorted disjoint spans (empty ones dropped)."""
    merged: list[Span] = []
    for begin, finish in sorted(s for s in spans if s[0] < s[1]):
        if merged and begin <= merged[-1][1]:
            if finish > merged[-1][1]:
                merged[-1] = (merged[-1][0], finish)
        else:
            merged.append((begin, finish))
    return merged


def covered_spans(window: Span | None, gaps: Iterable[Span]) -> list[Span]:
    """The window less the gaps: sorted, disjoint spans."""
    if window is None:
        return []
    out: list[Span] = []
    cursor, finish = window
    for g_begin, g_end in merge_spans(gaps):
        if g_end <= cursor:
            continue
        if g_begin >= finish:
            break
        if g_begin > cursor:
            out.append((cursor, g_begin))
        cursor = max(cursor, g_end)
        if cursor >= finish:
            break
    if cursor < finish:
        out.append((cursor, finish))
    return out


def uncovered_spans(bounds: Span, covered: Sequence[Span]) -> list[Span]:
    """The parts of [start, end) that `covered` (sorted, disjoint) leaves out."""
    return covered_spans(bounds, covered)


def coverage(bounds: Sequence[float], covered: Sequence[Span]) -> list[float]:
    """The covered fraction (0..1) of each bucket [bounds[i], bounds[i+1]). `covered` must be
    sorted and disjoint (covered_spans gives that). Buckets wholly inside a span are set in
    bulk: a month of minutes is 43,200 buckets and usually a handful of spans."""
    n = len(bounds) - 1
    out = [0.0] * n
    if n < 1:
        return out
    edges: dict[int, float] = {}  # seconds covered of the buckets a span only partly covers

    def partly(i: int, begin: float, finish: float) -> None:
        if 0 <= i < n:
            seen = min(finish, bounds[i + 1]) - max(begin, bounds[i])
            if seen > 0:
                edges[i] = edges.get(i, 0.0) + seen

    for begin, finish in covered:
        begin, finish = max(begin, bounds[0]), min(finish, bounds[-1])
        if begin >= finish:
            continue
        first = bisect.bisect_left(bounds, begin)  # first bucket starting at or after begin
        last = bisect.bisect_right(bounds, finish) - 1  # buckets before it end by finish
        if first < last:
            out[first:last] = [1.0] * (last - first)
            partly(first - 1, begin, finish)
            partly(last, begin, finish)
        else:  # inside one bucket, or across one boundary
            partly(first - 1, begin, finish)
            if last != first - 1:
                partly(last, begin, finish)
    for i, seen in edges.items():
        fraction = seen / (bounds[i + 1] - bounds[i])
        # Float sums of a fully covered bucket can land a hair off 1 (or 0).
        out[i] = 1.0 if fraction > 1 - 1e-9 else 0.0 if fraction < 1e-9 else fraction
    return out
