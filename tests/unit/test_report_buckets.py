"""Report buckets, gap placement and coverage: table tests for the time-zone edge cases and
Hypothesis properties for the arithmetic."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.report_buckets import (
    GapRecord,
    TooManyBuckets,
    bucket_bounds,
    coverage,
    covered_spans,
    is_whole_minute,
    merge_spans,
    place_gap,
    uncovered_spans,
    watched_window,
)

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [ZoneInfo(name) for name in (
    "UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu",
    "Australia/Lord_Howe", "America/Santiago", "Pacific/Chatham", "America/St_Johns")]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(bounds: list[datetime], tz: ZoneInfo) -> list[str]:
    return [b.astimezone(tz).isoformat() for b in bounds]


def test_minutes_and_a_range() -> None:
    start = utc(2024, 1, 1, 10, 0)
    assert bucket_bounds(start, start + timedelta(minutes=3), "minute", UTC_ZONE, 10) == [
        start + timedelta(minutes=i) for i in range(4)]
    assert bucket_bounds(start, start + timedelta(days=30), "range", NEW_YORK, 1) == [
        start, start + timedelta(days=30)]


def test_a_range_not_on_bucket_boundaries_gets_short_first_and_last_buckets() -> None:
    bounds = bucket_bounds(utc(2024, 1, 1, 10, 30), utc(2024, 1, 1, 12, 15), "hour", UTC_ZONE,
                           10)
    assert bounds == [utc(2024, 1, 1, 10, 30), utc(2024, 1, 1, 11), utc(2024, 1, 1, 12),
                      utc(2024, 1, 1, 12, 15)]


def test_new_york_days_last_23_and_25_hours_at_the_changes() -> None:
    spring = bucket_bounds(utc(2024, 3, 9, 5), utc(2024, 3, 12, 4), "day", NEW_YORK, 10)
    assert [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(spring)] == [
        24, 23, 24]
    autumn = bucket_bounds(utc(2024, 11, 2, 4), utc(2024, 11, 5, 5), "day", NEW_YORK, 10)
    assert [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(autumn)] == [
        24, 25, 24]


def test_the_repeated_autumn_hour_is_two_buckets_with_different_offsets() -> None:
    bounds = bucket_bounds(utc(2024, 11, 3, 4), utc(2024, 11, 3, 8), "hour", NEW_YORK, 10)
    assert local(bounds, NEW_YORK) == [
        "2024-11-03T00:00:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00", "2024-11-03T03:00:00-05:00"]


def test_hours_of_a_half_hour_zone_start_at_half_past_utc() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    bounds = bucket_bounds(utc(2024, 1, 1, 0), utc(2024, 1, 1, 3), "hour", kolkata, 10)
    assert [b.strftime("%H:%M") for b in bounds] == ["00:00", "00:30", "01:30", "02:30",
                                                     "03:00"]


def test_lord_howe_half_hour_daylight_saving() -> None:
    # 2024-10-06 02:00 +10:30 becomes 02:30 +11: the local hour 02 starts never; 03:00 is 1.5 h
    # of wall clock after 01:00 but 1 h of real time.
    zone = ZoneInfo("Australia/Lord_Howe")
    start = datetime(2024, 10, 6, 0, tzinfo=zone).astimezone(UTC)
    bounds = bucket_bounds(start, start + timedelta(hours=4), "hour", zone, 10)
    assert [b.astimezone(zone).strftime("%H:%M") for b in bounds] == [
        "00:00", "01:00", "03:00", "04:00", "04:30"]


def test_a_day_without_midnight_starts_when_the_clock_jumps() -> None:
    # Santiago 2022-09-11: 00:00 -04 became 01:00 -03.
    zone = ZoneInfo("America/Santiago")
    bounds = bucket_bounds(utc(2022, 9, 10, 4), utc(2022, 9, 12, 3), "day", zone, 10)
    assert local(bounds, zone) == ["2022-09-10T00:00:00-04:00", "2022-09-11T01:00:00-03:00",
                                   "2022-09-12T00:00:00-03:00"]


def test_too_many_buckets_are_refused_before_they_are_made() -> None:
    start = utc(2024, 1, 1)
    with pytest.raises(TooManyBuckets):
        bucket_bounds(start, start + timedelta(days=40), "minute", UTC_ZONE, 44_640)
    with pytest.raises(TooManyBuckets):
        bucket_bounds(start, start + timedelta(days=3), "hour", NEW_YORK, 71)
    assert len(bucket_bounds(start, start + timedelta(days=3), "hour", NEW_YORK, 72)) == 73


def test_whole_minutes_are_aware_and_on_a_utc_minute() -> None:
    assert is_whole_minute(utc(2024, 1, 1, 10, 5))
    assert not is_whole_minute(datetime(2024, 1, 1, 10, 5))
    assert not is_whole_minute(utc(2024, 1, 1, 10, 5, 1))


instants = st.integers(0, 3 * 366 * 24 * 60).map(
    lambda m: utc(2023, 1, 1) + timedelta(minutes=m))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), st.sampled_from(["minute", "hour", "day"]), instants,
       st.integers(1, 6 * 24 * 60))
def test_bounds_are_increasing_whole_minutes_on_local_boundaries(
    tz: ZoneInfo, bucket: str, start: datetime, minutes: int
) -> None:
    end = start + timedelta(minutes=minutes)
    bounds = bucket_bounds(start, end, bucket, tz, 10_000)  # type: ignore[arg-type]
    assert bounds[0] == start and bounds[-1] == end
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert all(is_whole_minute(b) for b in bounds)
    for inner in bounds[1:-1]:
        here = inner.astimezone(tz)
        before = (inner - timedelta(minutes=1)).astimezone(tz)
        if bucket == "hour":
            assert here.minute == 0
        if bucket == "day":
            assert here.date() != before.date()  # the first minute of its local day
    if bucket != "minute":  # and none is missed: a new hour or day inside a bucket is a bound
        for a, b in itertools.pairwise(bounds):
            probe = a + timedelta(minutes=1)
            while probe < b:
                seen = probe.astimezone(tz)
                if bucket == "hour":
                    assert seen.minute != 0
                else:
                    assert seen.date() == (probe - timedelta(minutes=1)).astimezone(tz).date()
                probe += timedelta(minutes=7 if bucket == "hour" else 53)


def test_a_gap_of_time_is_its_times_and_an_open_one_lasts_until_now() -> None:
    closed = place_gap(GapRecord(100.0, 160.0, None, None, 100.0), 1.0, now=1000.0)
    assert closed.span == (100.0, 160.0) and not closed.approximate
    still_open = place_gap(GapRecord(100.0, None, None, None, 100.0), 1.0, now=1000.0)
    assert still_open.span == (100.0, 1000.0)


def test_a_gap_of_batches_without_times_ends_when_it_was_recorded() -> None:
    placed = place_gap(GapRecord(None, None, 10, 14, 500.0), 2.0, now=1000.0)
    assert placed.span == (490.0, 500.0) and placed.approximate


def test_the_watched_window() -> None:
    assert watched_window(100.0, 200.0, None, None, now=1000.0) == (100.0, 200.0)
    assert watched_window(100.0, None, None, None, now=1000.0) is None  # never applied
    assert watched_window(100.0, 2000.0, None, None, now=1000.0) == (100.0, 1000.0)
    # Counts before registration or after the last batch are never hidden.
    assert watched_window(100.0, 200.0, 40.0, 260.0, now=1000.0) == (40.0, 260.0)


def test_coverage_of_buckets() -> None:
    covered = covered_spans((0.0, 300.0), [(60.0, 120.0), (150.0, 180.0)])
    assert covered == [(0.0, 60.0), (120.0, 150.0), (180.0, 300.0)]
    assert coverage([0.0, 60.0, 120.0, 180.0, 240.0, 360.0], covered) == [1.0, 0.0, 0.5, 1.0,
                                                                          0.5]
    assert uncovered_spans((0.0, 360.0), covered) == [(60.0, 120.0), (150.0, 180.0),
                                                      (300.0, 360.0)]


spans = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 120)).map(
    lambda t: (float(t[0]), float(t[0] + t[1]))), max_size=12)


@given(spans)
def test_merged_spans_cover_the_same_minutes(given_spans: list[tuple[float, float]]) -> None:
    merged = merge_spans(given_spans)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(merged))
    inside = {t for a, b in given_spans for t in range(int(a), int(b))}
    assert {t for a, b in merged for t in range(int(a), int(b))} == inside


@given(st.tuples(st.integers(0, 300), st.integers(0, 400)), spans,
       st.lists(st.integers(1, 90), min_size=1, max_size=12), st.integers(0, 200))
def test_coverage_adds_up_and_a_bucket_inside_a_gap_is_zero(
    window: tuple[int, int], gaps: list[tuple[float, float]], widths: list[int], first: int
) -> None:
    watched = (float(window[0]), float(window[0] + window[1]))
    covered = covered_spans(watched, gaps)
    bounds = [float(first)]
    for w in widths:
        bounds.append(bounds[-1] + w)
    fractions = coverage(bounds, covered)
    assert all(0 <= f <= 1 for f in fractions)
    # The covered time of the buckets is the covered time inside the buckets' range.
    in_range = sum(max(0.0, min(b, bounds[-1]) - max(a, bounds[0])) for a, b in covered)
    by_bucket = sum(f * (b - a) for f, a, b in zip(fractions, bounds, bounds[1:], strict=False))
    assert by_bucket == pytest.approx(in_range)
    # Per integer second, brute force: watched, not in any gap.
    for f, a, b in zip(fractions, bounds, bounds[1:], strict=False):
        seconds = [t + 0.5 for t in range(int(a), int(b))]
        seen = sum(1 for t in seconds if watched[0] <= t < watched[1]
                   and not any(g0 <= t < g1 for g0, g1 in gaps))
        assert f == pytest.approx(seen / len(seconds))
        if any(g0 <= a and b <= g1 for g0, g1 in gaps):
            assert f == 0
