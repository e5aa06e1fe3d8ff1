"""A report as CSV: the rows of the JSON form, in the same order, with the grouping columns
asked for. An empty cell is a gap (nobody watched), never a zero.

Camera, line and zone names are typed by users, so a cell a spreadsheet would read as a
formula (starting with = + - @, or a tab or carriage return that hides one) is prefixed with
a quote (OWASP's advice for CSV injection).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from registry.report_models import ReportOut

_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
_COLUMN_OF = {"camera": "camera_id", "line": "line", "zone": "zone", "class": "object_class",
              "direction": "direction"}
_VALUES = {"crossings": ("count",),
           "zones": ("entries", "exits", "peak_occupancy", "dwell_avg_s")}


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_LEAD) else value


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    return safe_cell(str(value))


def _iso(at: datetime) -> str:
    # As the JSON form writes it (pydantic): UTC as Z.
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def columns(report: ReportOut) -> list[str]:
    grouped = [_COLUMN_OF[d] for d in report["group_by"]]
    return ["start", "end", *grouped, *_VALUES[report["measure"]], "coverage", "partial"]


def render(report: ReportOut) -> str:
    """Cells as the JSON form writes them (times, numbers), so the two agree."""
    header = columns(report)
    rows: Sequence[Mapping[str, object]] = (
        report["crossings"] if report["measure"] == "crossings" else report["zones"]) or []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in header])
    return out.getvalue()


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def filename(report: ReportOut) -> str:
    """camcount-<measure>-<bucket>-<from>-<to>.csv, in characters safe in any header."""
    def day(at: datetime) -> str:
        return at.strftime("%Y%m%dT%H%M")
    name = (f"camcount-{report['measure']}-{report['bucket']}-{day(report['from'])}-"
            f"{day(report['to'])}")
    return _UNSAFE_NAME.sub("_", name) + ".csv"
