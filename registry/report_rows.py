"""Report series from per-camera sums, as pure code: which series a report has, and the
value of each in each bucket, never a zero where nobody watched.

PostgreSQL sums each camera's minutes into the report's buckets (grouped by camera and the
asked dimensions); this joins them with each camera's coverage. A bucket that some camera
watched and that holds no rows is a true zero; one that no selected camera watched is null.
Without `camera` among the dimensions, the cameras' series are added up and the coverage of
the sum is the cameras' mean coverage (the fraction of camera-time watched).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Dimension = Literal["camera", "line", "zone", "class", "direction"]
MeasureName = Literal["crossings", "zones"]
Combine = Literal["sum", "max"]

Values = tuple[float, ...]
Key = tuple[str | None, ...]


@dataclass(frozen=True)
class Measure:
    name: MeasureName
    dimensions: tuple[Dimension, ...]  # those it can be grouped by, in output order
    fields: tuple[str, ...]
    combine: tuple[Combine, ...]

    @property
    def zero(self) -> Values:
        return (0,) * len(self.fields)

    def add(self, a: Values, b: Values) -> Values:
        return tuple(x + y if how == "sum" else max(x, y)
                     for x, y, how in zip(a, b, self.combine, strict=True))


CROSSINGS = Measure("crossings", ("camera", "line", "class", "direction"), ("count",),
                    ("sum",))
# A peak over several zones, classes or cameras is the largest single peak: occupancies of
# different minutes cannot be added.
ZONES = Measure("zones", ("camera", "zone", "class"),
                ("entries", "exits", "peak_occupancy", "dwell_total_s", "dwell_count"),
                ("sum", "sum", "max", "sum", "sum"))
MEASURE_OF: dict[str, Measure] = {m.name: m for m in (CROSSINGS, ZONES)}

DIRECTIONS = ("in", "out")


def parse_group_by(text: str, measure: Measure) -> tuple[Dimension, ...]:
    """A comma list of dimensions, in the measure's order. Grouping by a line or zone groups
    by its camera too (line and zone names are per camera). Raises ValueError."""
    asked = [part.strip() for part in text.split(",") if part.strip()]
    for part in asked:
        if part not in measure.dimensions:
            raise ValueError(f"{part[:40]!r} is not a dimension of {measure.name}; "
                             f"expected a comma list of {', '.join(measure.dimensions)}")
    wanted = set(asked)
    if wanted & {"line", "zone"}:
        wanted.add("camera")
    return tuple(d for d in measure.dimensions if d in wanted)


# One row of PostgreSQL's sums: (camera id, the values of the other dimensions asked, the
# bucket's index, the measure's fields). A plain tuple: a month of minutes makes 43,200.
Summed = tuple[str, Key, int, Values]


@dataclass(frozen=True)
class Series:
    """`key` holds the value of each dimension (camera first when asked; None: not known, see
    assemble); `values[i]` is None where no selected camera watched bucket i."""

    key: Key
    coverage: list[float]
    values: list[Values | None]


def _combinations(universes: Sequence[Mapping[str, Sequence[str]]],
                  seen: Sequence[Sequence[set[str]]], dims: Sequence[Dimension]) -> list[Key]:
    choices: list[list[str | None]] = []
    for i, dim in enumerate(dims):
        found = {v for universe in universes for v in universe.get(dim, ())}
        found.update(v for camera in seen for v in camera[i])
        choices.append([*sorted(found)] if found else [None])
    return list(itertools.product(*choices))


def _order(key: Key) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, value or "") for value in key)


def assemble(measure: Measure, dims: Sequence[Dimension], n_buckets: int,
             coverage: Mapping[str, Sequence[float]],
             universes: Mapping[str, Mapping[str, Sequence[str]]],
             summed: Iterable[Summed]) -> list[Series]:
    """The report's series, sorted by key. `coverage` has every selected camera;
    `universes[camera][dim]` are values a series must show even without any count (the
    camera's lines, both directions), so a quiet line reads 0, not absent."""
    by_camera = "camera" in dims
    others = [d for d in dims if d != "camera"]
    data: dict[tuple[str, Key], list[Values | None]] = {}
    seen: dict[str, list[set[str]]] = {camera: [set() for _ in others] for camera in coverage}
    for camera_id, key, bucket, fields in summed:
        slots = data.get((camera_id, key))
        if slots is None:
            slots = data[(camera_id, key)] = [None] * n_buckets
            if camera_id not in seen:
                seen[camera_id] = [set() for _ in others]
            for found, value in zip(seen[camera_id], key, strict=True):
                if value is not None:
                    found.add(value)
        held = slots[bucket]
        slots[bucket] = fields if held is None else measure.add(held, fields)
    groups: dict[Key, list[tuple[str, Key]]] = {}
    for camera, key in data:
        groups.setdefault((camera, *key) if by_camera else key, []).append((camera, key))
    # Every combination of the values the dimensions take (configured or counted) is a
    # series, so the car's "out" reads 0 beside its "in". A dimension without any value (by
    # class, nothing counted, no class filter) is None, so the coverage still shows.
    if by_camera:
        for camera in coverage:
            for key in _combinations([universes.get(camera, {})], [seen[camera]], others):
                groups.setdefault((camera, *key), [])
    else:
        for key in _combinations([universes.get(c, {}) for c in coverage],
                                 [seen[c] for c in seen], others):
            groups.setdefault(key, [])

    cameras = list(coverage)
    out = []
    for out_key in sorted(groups, key=_order):
        members = groups[out_key]
        watchers = [str(out_key[0])] if by_camera else cameras
        cover = _mean_coverage([coverage[c] for c in watchers], n_buckets)
        values: list[Values | None] = []
        for i in range(n_buckets):
            total: Values | None = None
            for member in members:
                got = data[member][i]
                if got is not None:
                    total = got if total is None else measure.add(total, got)
            if total is None and cover[i] > 0:
                total = measure.zero
            values.append(total)
        out.append(Series(out_key, cover, values))
    return out


def _mean_coverage(each: Sequence[Sequence[float]], n_buckets: int) -> list[float]:
    if len(each) == 1:
        return list(each[0])
    if not each:
        return [0.0] * n_buckets
    return [sum(c[i] for c in each) / len(each) for i in range(n_buckets)]
