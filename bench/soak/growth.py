"""Does a resource grow during the soak? The pure verdict over sampled series.

A soak is judged on its steady part only: the first `warmup_s` (imports, caches, pools and
first uses filling up) is dropped, of the soak and of every series that starts later (a
restarted process warms up again), and of what is left only the later half is judged, so a
slow settling after warm-up does not read as a leak. On that window:

- the slope is Theil-Sen's (the median of the slopes between every pair of samples), which a
  few outliers (a fault's spike, a GC pause caught mid-collection) cannot drag, unlike least
  squares;
- growth is that slope times the window's length, and is allowed up to the larger of an
  absolute tolerance and a fraction of the series' median level (a 300 MB process may wander
  by more bytes than a 30 MB one);
- growth must also be a trend: of the pairs of samples that differ, at least `min_trend` must
  rise. A garbage collector's sawtooth rises within each tooth and falls at each collection,
  so its pairs rise only about half the time, while a leak's rise nearly always;
- an absolute ceiling applies to every sample, warm-up included (a queue that fills to its
  bound and stays there is flat, and still wrong).

A restarted process is a new series (its key carries the pid), never growth of the old one;
a series too short to judge (a worker that lived two minutes) is held to its ceiling only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]  # (seconds since the soak started, value)
MAX_POINTS = 400  # pairwise slopes are quadratic: thin longer windows evenly


@dataclass(frozen=True, order=True)
class SeriesKey:
    subject: str  # "worker:soak-motion-1", "broker", "queue:frames.ingress", ...
    metric: str  # rss_bytes, fds, tcp, threads, connections, channels, messages, backends
    instance: str = ""  # a process's pid: a restart starts a new series

    def __str__(self) -> str:
        where = f"{self.subject} (pid {self.instance})" if self.instance else self.subject
        return f"{where} {self.metric}"


@dataclass(frozen=True)
class Rule:
    """What one metric may do over the judged window."""

    tolerance_abs: float  # growth allowed whatever the level
    tolerance_rel: float = 0.0  # growth allowed as a fraction of the median level
    ceiling: float | None = None  # no sample may exceed it
    min_trend: float = 0.7  # share of rising pairs (of those that differ) that makes a trend


@dataclass(frozen=True)
class DetectorConfig:
    warmup_s: float
    min_points: int = 6  # fewer samples in the judged window: ceiling only
    min_span_s: float = 30.0  # a shorter judged window: ceiling only


@dataclass(frozen=True)
class Finding:
    key: SeriesKey
    kind: str  # "growth" | "ceiling"
    message: str

    def __str__(self) -> str:
        return f"{self.kind.upper()}: {self.key}: {self.message}"


@dataclass(frozen=True)
class Judgement:
    """One series' figures, judged or not (the report prints them all)."""

    key: SeriesKey
    judged: bool  # False: too short for a slope (ceiling still applied)
    slope_per_h: float  # Theil-Sen over the judged window, per hour; 0 when not judged
    growth: float  # slope times the judged window's length
    allowed: float
    rising_share: float
    peak: float
    end_over_start: float = math.nan  # the judged window's last value over its first


@dataclass(frozen=True)
class Verdict:
    judgements: list[Judgement]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def theil_sen(points: Sequence[Point]) -> float:
    """The median of the pairwise slopes (0 for fewer than two distinct times)."""
    slopes = [(v2 - v1) / (t2 - t1) for (t1, v1), (t2, v2) in _pairs(points) if t2 > t1]
    return statistics.median(slopes) if slopes else 0.0


def rising_share(points: Sequence[Point]) -> float:
    """Of the pairs (earlier, later) whose values differ, the share that rise; 0.5 when none
    differ (a flat series is no trend either way)."""
    up = down = 0
    for (t1, v1), (t2, v2) in _pairs(points):
        if t2 > t1 and v2 != v1:
            if v2 > v1:
                up += 1
            else:
                down += 1
    return up / (up + down) if up + down else 0.5


def judged_window(points: Sequence[Point], warmup_s: float) -> list[Point]:
    """The later half (by time) of what follows the warm-up, which a series that started late
    (a restarted worker) gets from its own first sample: it warms up again."""
    if not points:
        return []
    settled = max(warmup_s, points[0][0] + warmup_s)
    steady = [p for p in points if p[0] >= settled]
    if not steady:
        return []
    middle = (steady[0][0] + steady[-1][0]) / 2
    return [p for p in steady if p[0] >= middle]


def judge_series(key: SeriesKey, points: Sequence[Point], rule: Rule,
                 config: DetectorConfig) -> tuple[Judgement, list[Finding]]:
    ordered = sorted(points)
    findings: list[Finding] = []
    peak = max((v for _, v in ordered), default=math.nan)
    if rule.ceiling is not None and ordered and peak > rule.ceiling:
        at = next(t for t, v in ordered if v == peak)
        findings.append(Finding(key, "ceiling", f"reached {_fmt(key.metric, peak)} at "
                                f"{at:.0f} s, above the ceiling of "
                                f"{_fmt(key.metric, rule.ceiling)}"))
    window = _thin(judged_window(ordered, config.warmup_s))
    span = window[-1][0] - window[0][0] if window else 0.0
    if len(window) < config.min_points or span < config.min_span_s:
        return Judgement(key, False, 0.0, 0.0, math.nan, math.nan, peak), findings
    slope = theil_sen(window)
    growth = slope * span
    level = statistics.median(abs(v) for _, v in window)
    allowed = max(rule.tolerance_abs, rule.tolerance_rel * level)
    share = rising_share(window)
    if growth > allowed and share >= rule.min_trend:
        findings.append(Finding(
            key, "growth",
            f"grew {_fmt(key.metric, growth)} over the last {span:.0f} s "
            f"({_fmt(key.metric, slope * 3600)}/h, {share:.0%} of sample pairs rising; "
            f"allowed {_fmt(key.metric, allowed)}) from a level of {_fmt(key.metric, level)}"))
    ratio = window[-1][1] / window[0][1] if window[0][1] else math.nan
    return Judgement(key, True, slope * 3600, growth, allowed, share, peak, ratio), findings


def judge(series: Mapping[SeriesKey, Sequence[Point]], rules: Mapping[str, Rule],
          config: DetectorConfig) -> Verdict:
    """Every series whose metric has a rule; metrics without one (counters that must grow,
    like batches applied) are not judged."""
    judgements: list[Judgement] = []
    findings: list[Finding] = []
    for key in sorted(series):
        rule = rules.get(key.metric)
        if rule is None:
            continue
        judgement, found = judge_series(key, series[key], rule, config)
        judgements.append(judgement)
        findings.extend(found)
    return Verdict(judgements, findings)


def _pairs(points: Sequence[Point]) -> list[tuple[Point, Point]]:
    return [(a, b) for i, a in enumerate(points) for b in points[i + 1:]]


def _thin(points: list[Point]) -> list[Point]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS)]


def _fmt(metric: str, value: float) -> str:
    if metric.endswith("_bytes"):
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.1f}" if value != int(value) else f"{value:.0f}"


def longest_stall(points: Sequence[Point], after_s: float = 0.0) -> tuple[float, float]:
    """(start, length) of the longest stretch, from `after_s` on, over which a counter that
    must keep rising (batches applied) did not rise; (after_s, 0) when it always did."""
    ordered = [p for p in sorted(points) if p[0] >= after_s]
    worst = (after_s, 0.0)
    if not ordered:
        return worst
    since_t, since_v = ordered[0]
    for t, v in ordered[1:]:
        if v > since_v:
            since_t, since_v = t, v
        elif t - since_t > worst[1]:
            worst = (since_t, t - since_t)
    return worst
