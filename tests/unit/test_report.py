"""A whole report from database facts, with the clock injected: before registration, inside a
gap and after now are null; the edges are partial; the answer keeps to its schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from registry.report import (
    CameraFacts,
    GapRow,
    ReportQuery,
    SummedRows,
    TooManyRows,
    build_report,
)
from registry.report_buckets import bucket_bounds
from registry.report_csv import render
from registry.report_models import REPORT_ADAPTER
from registry.report_rows import CROSSINGS

T0 = datetime(2024, 6, 1, 8, tzinfo=UTC)
H = timedelta(hours=1)


def test_nulls_before_registration_in_a_gap_and_after_now() -> None:
    now = T0 + 3.5 * H
    camera = CameraFacts(id="door", name="Door", registered_at=T0, last_applied_at=now,
                         batch_period_s=1.0, lines=("entry",), zones=(), classes=())
    gaps = [
        GapRow("door", 1, None, None, T0 + H, T0 + 1.5 * H, T0 + H, "camera_down",
               "stalled: rtsp://admin:secret@10.0.0.5/stream"),
        GapRow("door", 1, 70, 79, None, None, T0 + 2 * H + timedelta(seconds=10), "shed", ""),
    ]
    bounds = bucket_bounds(T0 - H, T0 + 6 * H, "hour", UTC, 100)
    summed = SummedRows([("door", (), 1, (5,))], {"door": T0.timestamp()},
                        {"door": T0.timestamp()})
    query = ReportQuery(CROSSINGS, ("camera",), "hour", ZoneInfo("Europe/Berlin"), bounds)
    report = build_report(query, [camera], summed, gaps, now, max_rows=100)
    REPORT_ADAPTER.validate_python(report)
    rows = report["crossings"]
    assert rows is not None
    assert [r["count"] for r in rows] == [None, 5, 0, 0, 0, None, None]
    assert [round(r["coverage"], 4) for r in rows] == [0, 1, 0.5, round(1 - 10 / 3600, 4),
                                                       0.5, 0, 0]
    assert [r["partial"] for r in rows] == [False, False, True, True, True, False, False]
    assert rows[0]["start"].isoformat() == "2024-06-01T09:00:00+02:00"  # the report's zone
    down, shed = report["gaps"]
    assert "secret" not in down["detail"] and not down["approximate"]
    assert shed["approximate"] and shed["ended_at"] == T0 + 2 * H + timedelta(seconds=10)
    [facts] = report["cameras"]
    assert facts["watched_from"] == T0 and facts["watched_to"] == now
    assert [(s["start"], s["end"]) for s in facts["uncovered"]] == [
        (T0 - H, T0), (T0 + H, T0 + 1.5 * H), (shed["started_at"], shed["ended_at"]),
        (now, T0 + 6 * H)]
    assert [line.split(",")[3] for line in render(report).splitlines()[1:]] == [
        "", "5", "0", "0", "0", "", ""]
    with pytest.raises(TooManyRows):
        build_report(query, [camera], summed, gaps, now, max_rows=6)
