"""Report series from per-camera sums (pure): nulls only where nobody watched, totals kept,
series for quiet lines; and the CSV form, safe against formulas in user-typed names."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.report_csv import filename, render, safe_cell
from registry.report_models import REPORT_ADAPTER, CrossingReportRow, ReportOut
from registry.report_rows import CROSSINGS, ZONES, Summed, assemble, parse_group_by


def test_group_by_is_put_in_order_and_a_line_brings_its_camera() -> None:
    assert parse_group_by("direction, line", CROSSINGS) == ("camera", "line", "direction")
    assert parse_group_by("", CROSSINGS) == ()
    assert parse_group_by("class,zone", ZONES) == ("camera", "zone", "class")
    with pytest.raises(ValueError, match="not a dimension of zones"):
        parse_group_by("direction", ZONES)


def test_a_quiet_line_reads_zero_where_watched_and_null_where_not() -> None:
    series = assemble(CROSSINGS, ("camera", "line", "direction"), 3,
                      {"cam": [1.0, 0.5, 0.0]},
                      {"cam": {"line": ("entry", "exit"), "direction": ("in", "out")}},
                      [("cam", ("entry", "in"), 0, (4,))])
    got = {s.key: s.values for s in series}
    assert got[("cam", "entry", "in")] == [(4,), (0,), None]
    assert got[("cam", "exit", "out")] == [(0,), (0,), None]
    assert len(got) == 4


def test_counts_in_an_unwatched_bucket_are_still_shown() -> None:
    [series] = assemble(CROSSINGS, ("camera",), 2, {"cam": [0.0, 0.0]}, {},
                        [("cam", (), 1, (3,))])
    assert series.values == [None, (3,)]


def test_without_camera_the_sum_has_the_cameras_mean_coverage() -> None:
    [series] = assemble(CROSSINGS, (), 2, {"a": [1.0, 0.0], "b": [0.0, 0.0]}, {},
                        [("a", (), 0, (2,)), ("b", (), 0, (5,))])
    assert series.key == () and series.coverage == [0.5, 0.0]
    assert series.values == [(7,), None]


def test_zone_peaks_take_the_largest_and_the_rest_add_up() -> None:
    [series] = assemble(ZONES, ("camera",), 1, {"cam": [1.0]}, {},
                        [("cam", (), 0, (1, 2, 3, 10.0, 1)),
                         ("cam", (), 0, (4, 5, 2, 20.0, 2))])
    assert series.values == [(5, 7, 3, 30.0, 3)]


def test_a_camera_grouped_by_class_without_classes_still_shows_its_coverage() -> None:
    series = assemble(CROSSINGS, ("camera", "class"), 1, {"a": [1.0], "b": [0.0]}, {},
                      [("a", ("person",), 0, (1,))])
    assert {s.key: s.values for s in series} == {("a", "person"): [(1,)], ("b", None): [None]}


summed_rows = st.lists(st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.tuples(st.sampled_from(["entry", "exit"]), st.sampled_from(["in", "out"])),
    st.integers(0, 5), st.tuples(st.integers(0, 50))), max_size=40)
coverages = st.lists(st.sampled_from([0.0, 0.25, 1.0]), min_size=6, max_size=6)


@given(summed_rows, st.fixed_dictionaries({"a": coverages, "b": coverages, "c": coverages}),
       st.sampled_from([(), ("camera",), ("camera", "line"), ("direction",),
                        ("camera", "line", "direction")]))
def test_every_grouping_keeps_the_total_and_nulls_only_unwatched_empty_buckets(
    rows: list[Summed], cover: dict[str, list[float]], dims: tuple[str, ...]
) -> None:
    # `rows` hold line and direction; PostgreSQL would have returned the dimensions asked.
    asked = [d for d in dims if d != "camera"]
    projected: list[Summed] = [(r[0], tuple(_values(r)[d] for d in asked), r[2], r[3])
                               for r in rows]
    series = assemble(CROSSINGS, dims, 6, cover, {}, projected)  # type: ignore[arg-type]
    total = sum(v[0] for s in series for v in s.values if v is not None)
    assert total == sum(r[3][0] for r in rows)
    for s in series:
        for i, value in enumerate(s.values):
            assert (value is None) == (s.coverage[i] == 0 and not any(
                r[2] == i and all(_values(r)[d] == k for d, k in zip(dims, s.key,
                                                                         strict=True))
                for r in rows))


def _values(row: Summed) -> dict[str, str | None]:
    return {"camera": row[0], "line": row[1][0], "direction": row[1][1]}


def _report(line: str) -> ReportOut:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[CrossingReportRow] = [
        {"start": start + timedelta(hours=i), "end": start + timedelta(hours=i + 1),
         "camera_id": "cam", "line": line, "object_class": None, "direction": None,
         "count": None if i == 1 else 3, "coverage": 0.0 if i == 1 else 1.0, "partial": False}
        for i in range(2)]
    report: ReportOut = {
        "measure": "crossings", "bucket": "hour", "tz": "UTC", "from": start,
        "to": start + timedelta(hours=2), "group_by": ["camera", "line"], "cameras": [],
        "crossings": rows, "zones": None, "gaps": []}
    REPORT_ADAPTER.validate_python(report)
    return report


def test_csv_has_a_header_empty_cells_for_gaps_and_defused_formulas() -> None:
    table = list(csv.reader(io.StringIO(render(_report("=1+2")))))
    assert table == [
        ["start", "end", "camera_id", "line", "count", "coverage", "partial"],
        ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "cam", "'=1+2", "3", "1.0", "false"],
        ["2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z", "cam", "'=1+2", "", "0.0", "false"],
    ]
    assert filename(_report("x")) == "camcount-crossings-hour-20240101T0000-20240101T0200.csv"


@pytest.mark.parametrize("value", ["=cmd", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_cells_a_spreadsheet_would_run_are_quoted(value: str) -> None:
    assert safe_cell(value) == "'" + value
    assert safe_cell("entry " + value) == "entry " + value
