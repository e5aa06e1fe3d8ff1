"""The answer of GET /api/reports. Times carry the offset of the report's time zone.

TypedDicts rather than models: a month of minutes is 43,200 rows, and building a model per
row cost more than the query (validated or not). The route serialises these dicts directly;
pydantic still reads them for the OpenAPI schema, and the tests validate whole answers
against it (`REPORT_ADAPTER`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

# pydantic reads TypedDicts from typing_extensions only before Python 3.12 (a dependency of it).
from typing_extensions import TypedDict

from registry.report_buckets import Bucket
from registry.report_rows import MeasureName

Coverage = Annotated[float, Field(
    ge=0, le=1, description="the fraction of the bucket that was watched (for a sum of "
    "cameras, their mean); 0: nothing is known and the values are null")]
Partial = Annotated[bool, Field(
    description="coverage is above 0 and below 1: the values are a lower bound")]
CameraKey = Annotated[str | None, Field(description="null: the sum of the report's cameras")]
ClassKey = Annotated[str | None, Field(
    description="null: all classes (not grouped by class, or none seen)")]
End = Annotated[datetime, Field(description="exclusive")]


class CrossingReportRow(TypedDict):
    start: datetime
    end: End
    camera_id: CameraKey
    line: Annotated[str | None, Field(
        description="the line's name (all its versions); null: all lines")]
    object_class: ClassKey
    direction: Annotated[str | None, Field(description="in | out; null: both")]
    count: Annotated[int | None, Field(description="line crossings; null where nobody watched")]
    coverage: Coverage
    partial: Partial


class ZoneReportRow(TypedDict):
    start: datetime
    end: End
    camera_id: CameraKey
    zone: Annotated[str | None, Field(
        description="the zone's name (all its versions); null: all zones")]
    object_class: ClassKey
    entries: int | None
    exits: int | None
    peak_occupancy: Annotated[int | None, Field(
        description="the most objects inside at once in any one zone, class and minute of "
        "the group")]
    dwell_avg_s: Annotated[float | None, Field(
        description="mean stay of the objects that left; null also where none left")]
    coverage: Coverage
    partial: Partial


class SpanOut(TypedDict):
    start: datetime
    end: datetime


class ReportCamera(TypedDict):
    camera_id: str
    name: str
    watched_from: Annotated[datetime | None, Field(
        description="registration, or its first counted minute if earlier; null: never "
        "watched (no batch applied)")]
    watched_to: Annotated[datetime | None, Field(
        description="its last applied batch, at most now")]
    uncovered: Annotated[list[SpanOut], Field(
        description="the parts of the report's range it was not watched: gaps, before "
        "registration, after its last batch, the future")]


class ReportGap(TypedDict):
    camera_id: str
    reason: str
    detail: str
    stream_epoch: int
    seq_from: Annotated[int | None, Field(description="null for a gap of time (no batches)")]
    seq_to: int | None
    started_at: datetime
    ended_at: Annotated[datetime | None, Field(description="null while the gap is open")]
    approximate: Annotated[bool, Field(
        description="recorded by sequence numbers without times: placed to end when it was "
        "recorded, one batch period per batch")]


# "from" is a keyword, hence the functional form.
ReportOut = TypedDict("ReportOut", {
    "measure": MeasureName,
    "bucket": Bucket,
    "tz": str,
    "from": datetime,
    "to": datetime,
    "group_by": list[str],
    "cameras": list[ReportCamera],
    "crossings": Annotated[list[CrossingReportRow] | None, Field(
        description="for measure=crossings: a row per series and bucket, series by series")],
    "zones": Annotated[list[ZoneReportRow] | None, Field(
        description="for measure=zones, likewise")],
    "gaps": list[ReportGap],
})

REPORT_ADAPTER: TypeAdapter[ReportOut] = TypeAdapter(ReportOut)

ReportFormat = Literal["json", "csv"]
