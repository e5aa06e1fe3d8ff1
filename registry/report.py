"""A report from what the database holds, as pure code: each camera's watched time less its
gaps gives its coverage of every bucket, and the sums become rows with nulls where nobody
watched. The clock (`now`) is passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from contracts.secrets import mask_credentials
from registry.report_buckets import (
    Bucket,
    GapRecord,
    Span,
    coverage,
    covered_spans,
    place_gap,
    uncovered_spans,
    watched_window,
)
from registry.report_models import (
    CrossingReportRow,
    ReportCamera,
    ReportGap,
    ReportOut,
    SpanOut,
    ZoneReportRow,
)
from registry.report_rows import DIRECTIONS, Dimension, Measure, Series, Summed, assemble


@dataclass(frozen=True)
class CameraFacts:
    id: str
    name: str
    registered_at: datetime
    last_applied_at: datetime | None
    batch_period_s: float  # the longest a batch lasts: batch_ms, or batch_frames at target fps
    lines: tuple[str, ...]
    zones: tuple[str, ...]
    classes: tuple[str, ...]  # the camera's class filter, if it has one


@dataclass(frozen=True)
class SummedRows:
    rows: list[Summed]
    data_from: dict[str, float]  # per camera: its first and last counted minute in range,
    data_to: dict[str, float]  # as Unix seconds (the start of each)


@dataclass(frozen=True)
class GapRow:
    camera_id: str
    stream_epoch: int
    seq_from: int | None
    seq_to: int | None
    started_at: datetime | None
    ended_at: datetime | None
    recorded_at: datetime
    reason: str
    detail: str


@dataclass(frozen=True)
class ReportQuery:
    measure: Measure
    dims: tuple[Dimension, ...]
    bucket: Bucket
    tz: ZoneInfo
    bounds: list[datetime]  # UTC; bounds[0] and bounds[-1] are the range asked

    @property
    def n_buckets(self) -> int:
        return len(self.bounds) - 1


MINUTE_S = 60.0


def _ts(at: datetime) -> float:
    return at.timestamp()


def _dt(at: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, tz)


def _universe(camera: CameraFacts) -> dict[str, Sequence[str]]:
    return {"line": camera.lines, "zone": camera.zones, "direction": DIRECTIONS,
            "class": camera.classes}


def _placed(gap: GapRow, period_s: float, now: float) -> tuple[Span, bool]:
    placed = place_gap(GapRecord(
        None if gap.started_at is None else _ts(gap.started_at),
        None if gap.ended_at is None else _ts(gap.ended_at),
        gap.seq_from, gap.seq_to, _ts(gap.recorded_at)), period_s, now)
    return placed.span, placed.approximate


class TooManyRows(ValueError):
    """The answer would hold more rows than allowed."""


def build_report(query: ReportQuery, cameras: Sequence[CameraFacts], summed: SummedRows,
                 gaps: Sequence[GapRow], now: datetime, max_rows: int) -> ReportOut:
    tz, now_s = query.tz, _ts(now)
    bounds = [_ts(b) for b in query.bounds]
    whole: Span = (bounds[0], bounds[-1])
    gaps_of: dict[str, list[GapRow]] = {}
    for gap in gaps:
        gaps_of.setdefault(gap.camera_id, []).append(gap)

    cover: dict[str, list[float]] = {}
    camera_out: list[ReportCamera] = []
    gap_out: list[ReportGap] = []
    for camera in cameras:
        first = summed.data_from.get(camera.id)
        last = summed.data_to.get(camera.id)
        window = watched_window(
            _ts(camera.registered_at),
            None if camera.last_applied_at is None else _ts(camera.last_applied_at),
            first, None if last is None else last + MINUTE_S, now_s)
        spans: list[Span] = []
        for gap in gaps_of.get(camera.id, ()):
            span, approximate = _placed(gap, camera.batch_period_s, now_s)
            if span[1] <= whole[0] or span[0] >= whole[1]:
                continue
            spans.append(span)
            gap_out.append(ReportGap(
                camera_id=camera.id, reason=gap.reason, detail=mask_credentials(gap.detail),
                stream_epoch=gap.stream_epoch, seq_from=gap.seq_from, seq_to=gap.seq_to,
                started_at=_dt(span[0], tz),
                ended_at=None if gap.started_at is not None and gap.ended_at is None
                else _dt(span[1], tz),
                approximate=approximate))
        covered = covered_spans(window, spans)
        cover[camera.id] = coverage(bounds, covered)
        camera_out.append(ReportCamera(
            camera_id=camera.id, name=camera.name,
            watched_from=None if window is None else _dt(window[0], tz),
            watched_to=None if window is None else _dt(window[1], tz),
            uncovered=[SpanOut(start=_dt(a, tz), end=_dt(b, tz))
                       for a, b in uncovered_spans(whole, covered)]))

    series = assemble(query.measure, query.dims, query.n_buckets, cover,
                      {c.id: _universe(c) for c in cameras}, summed.rows)
    if len(series) * query.n_buckets > max_rows:
        raise TooManyRows(f"{len(series)} series x {query.n_buckets} buckets is more than "
                          f"{max_rows} rows")
    starts = [b.astimezone(tz) for b in query.bounds]
    crossings: list[CrossingReportRow] | None = None
    zone_rows: list[ZoneReportRow] | None = None
    if query.measure.name == "crossings":
        crossings = _crossing_rows(query.dims, series, starts)
    else:
        zone_rows = _zone_rows(query.dims, series, starts)
    return {"measure": query.measure.name, "bucket": query.bucket, "tz": tz.key,
            "from": starts[0], "to": starts[-1], "group_by": list(query.dims),
            "cameras": camera_out, "crossings": crossings, "zones": zone_rows, "gaps": gap_out}


def _keyed(dims: Sequence[Dimension], key: Sequence[str | None]) -> dict[str, str | None]:
    named = dict(zip(dims, key, strict=False))
    return {d: named.get(d) for d in ("camera", "line", "zone", "class", "direction")}


def _crossing_rows(dims: Sequence[Dimension], series: Sequence[Series],
                   starts: Sequence[datetime]) -> list[CrossingReportRow]:
    rows: list[CrossingReportRow] = []
    for s in series:
        k = _keyed(dims, s.key)
        for i, values in enumerate(s.values):
            c = s.coverage[i]
            rows.append({  # a literal: twice as fast as the keyword call, 43,200 times
                "start": starts[i], "end": starts[i + 1], "camera_id": k["camera"],
                "line": k["line"], "object_class": k["class"], "direction": k["direction"],
                "count": None if values is None else int(values[0]),
                "coverage": c, "partial": 0 < c < 1})
    return rows


def _zone_rows(dims: Sequence[Dimension], series: Sequence[Series],
               starts: Sequence[datetime]) -> list[ZoneReportRow]:
    rows = []
    for s in series:
        k = _keyed(dims, s.key)
        for i, values in enumerate(s.values):
            c = s.coverage[i]
            entries = exits = peak = None
            dwell = None
            if values is not None:
                entries, exits, peak = int(values[0]), int(values[1]), int(values[2])
                dwell = values[3] / values[4] if values[4] else None
            rows.append(ZoneReportRow(
                start=starts[i], end=starts[i + 1], camera_id=k["camera"], zone=k["zone"],
                object_class=k["class"], entries=entries, exits=exits, peak_occupancy=peak,
                dwell_avg_s=dwell, coverage=c, partial=0 < c < 1))
    return rows
