"""What one trial measured, whether the contestant sustained it, the search for the most
cameras one core sustains, and the printed table. Pure: no I/O, so the verdict and the search
are plain code.

A trial is one contestant pulling N cameras for a timed window. It is sustained when every
camera decoded at least SUSTAIN_FRACTION of the source frame rate (drops and backlog both
lower it), ours also published at least that fraction of the target rate, the lag (ours:
capture-to-publish latency; the bare loop: wall time minus video time decoded) grew by less
than MAX_LAG_GROWTH_S over the window, and no stream restarted or reported a drop. A trial
during which the simulator fell behind its own schedule is not sustained either (the rig, not
the contestant, was short of CPU): its row says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bench.relay.results import percentile

__all__ = ["TARGET_RATIO", "TrialResult", "format_summary", "format_table", "next_cameras",
           "percentile"]

TARGET_RATIO = 0.8  # issue 5: ingest sustains at least 0.8 of the bare loop's cameras per core
SUSTAIN_FRACTION = 0.97
MAX_LAG_GROWTH_S = 0.5
SEARCH_STEP = 1.15  # growth factor while no trial has failed yet

OURS, BARE = "ingest", "bare-pyav"


@dataclass(frozen=True)
class TrialResult:
    contestant: str
    cameras: int
    fps: float  # source frame rate
    target_fps: float  # ours: the sampled rate asked of it
    window_s: float
    frames: int  # decoded in the window, all cameras
    decoded_fps_min: float | None  # per camera; None where the contestant did not say
    decoded_fps_mean: float | None
    published_fps_min: float | None  # ours: frames per camera per second reaching frames.ingress
    cpu_s: float  # the contestant's CPU time in the window
    sut_busy_s: float  # the contestant's core busy in the window, whoever kept it busy
    rig_busy_pct: float  # the other cores (simulator, broker, bench), % of their capacity
    lag_growth_s: float | None
    p50_s: float | None  # ours: capture-to-publish as the bench saw it
    p99_s: float | None
    histogram_p99_le_s: float | None  # ours: bucket bound of ingest's own histogram p99
    restarts: int  # reconnects (ours) or stream errors (bare)
    reported_drops: float  # what the contestant itself counted as dropped or lost
    rig_late: int  # times the simulator fell a second behind its schedule
    sut_cores: int = 1  # how many cores the contestant was pinned to
    stream_bits_per_s: float | None = None  # bare: the bytes it received, per stream
    failure: str | None = None  # the trial could not run (start-up failed, never live)

    @classmethod
    def failed(cls, contestant: str, cameras: int, fps: float, target_fps: float,
               reason: str) -> TrialResult:
        return cls(contestant, cameras, fps, target_fps, 1.0, 0, None, None, None, 0.0, 0.0,
                   0.0, None, None, None, None, 0, 0.0, 0, failure=reason)

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s * 1000 / self.frames if self.frames else math.nan

    @property
    def core_pct(self) -> float:
        return self.cpu_s * 100 / self.window_s

    @property
    def other_pct(self) -> float:
        """Of the contestant's core, what something else used (other work on the machine)."""
        return max(0.0, self.sut_busy_s - self.cpu_s) * 100 / self.window_s / self.sut_cores

    def reasons(self) -> list[str]:
        """Why the trial is not sustained; empty when it is."""
        if self.failure:
            return [self.failure]
        out = []
        floor = SUSTAIN_FRACTION * self.fps
        if self.decoded_fps_min is None or self.decoded_fps_min < floor:
            out.append(f"decoded {_num(self.decoded_fps_min)} < {floor:.2f} fps")
        if self.contestant == OURS:
            published_floor = SUSTAIN_FRACTION * self.target_fps
            if self.published_fps_min is None or self.published_fps_min < published_floor:
                out.append(f"published {_num(self.published_fps_min)} < "
                           f"{published_floor:.2f} fps")
        if self.lag_growth_s is None or self.lag_growth_s > MAX_LAG_GROWTH_S:
            out.append(f"lag grew {_num(self.lag_growth_s)} s")
        if self.restarts:
            out.append(f"{self.restarts} restarts")
        if self.reported_drops:
            out.append(f"{self.reported_drops:g} dropped")
        if self.rig_late:
            out.append("RIG fell behind")
        return out

    @property
    def sustained(self) -> bool:
        return not self.reasons()


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def lag_growth(points: Sequence[tuple[float, float]]) -> float | None:
    """(time, lag) points -> median lag of the last third minus that of the first third: a
    backlog makes it grow steadily, jitter alone leaves it near zero. None below 3 points."""
    if len(points) < 3:
        return None
    lags = [lag for _, lag in sorted(points)]
    third = len(lags) // 3
    return percentile(lags[-third:], 0.5) - percentile(lags[:third], 0.5)


def rate_from_batches(batches: Sequence[tuple[float, int]]) -> float | None:
    """Frames per second of one camera from its consecutive batches, (first capture time,
    frames) each: the frames of all but the last over the time from the first batch's start to
    the last's. Counting whole batches that arrived in a window would be off by up to a batch
    (20% of a 5-frame, 5 fps camera over 5 s); this is exact whatever the window's edges."""
    if len(batches) < 2:
        return None
    ordered = sorted(batches)
    span = ordered[-1][0] - ordered[0][0]
    return sum(n for _, n in ordered[:-1]) / span if span > 0 else None


def histogram_p_le(before: Mapping[float, float], after: Mapping[float, float],
                   q: float) -> float | None:
    """The smallest bucket bound holding fraction q of the observations made between two
    scrapes of a Prometheus histogram (le -> cumulative count); None without observations."""
    bounds = sorted(after)
    deltas = {le: after[le] - before.get(le, 0.0) for le in bounds}
    total = deltas.get(math.inf, 0.0)
    if total <= 0:
        return None
    return next((le for le in bounds if deltas[le] >= q * total), None)


def next_cameras(outcomes: Mapping[int, bool], start: int, max_cameras: int) -> int | None:
    """The next camera count to try, None when the answer is known: the most cameras that
    passed, with the count above it failed (or `max_cameras` passed). Jumps to `start` (an
    estimate) while nothing above it has failed, grows by SEARCH_STEP until a failure, shrinks
    the same way until a pass, then bisects. Noise can make a larger count pass where a
    smaller one failed: the largest pass counts."""
    if not outcomes:
        return max(1, min(start, max_cameras))
    lo = max((n for n, ok in outcomes.items() if ok), default=0)
    hi = min((n for n, ok in outcomes.items() if not ok and n > lo), default=None)
    if hi is None:
        if lo >= max_cameras:
            return None
        if start > lo:
            return min(start, max_cameras)
        return min(max_cameras, max(lo + 1, math.ceil(lo * SEARCH_STEP)))
    if hi - lo <= 1:
        return None
    if lo == 0:
        return max(1, min(hi - 1, math.floor(hi / SEARCH_STEP)))
    return (lo + hi) // 2


def next_listed(outcomes: Mapping[int, bool], listed: Sequence[int]) -> int | None:
    """Step up through `listed`; stop at the first failure."""
    if any(not ok for ok in outcomes.values()):
        return None
    return next((n for n in sorted(listed) if n not in outcomes), None)


def most_sustained(trials: Iterable[TrialResult], contestant: str) -> TrialResult | None:
    passed = [t for t in trials if t.contestant == contestant and t.sustained]
    return max(passed, key=lambda t: t.cameras, default=None)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def format_table(trials: Sequence[TrialResult]) -> str:
    head = ("contestant", "cams", "decoded fps/cam min|mean", "published fps/cam min",
            "core %", "CPU ms/frame", "other on core %", "rig busy %", "lag growth s",
            "p50|p99 ms", "hist p99 <= s", "sustained")
    rows = [head]
    for t in sorted(trials, key=lambda t: (t.contestant != OURS, t.cameras)):
        hist = "-" if t.histogram_p99_le_s is None else f"{t.histogram_p99_le_s:g}"
        rows.append((
            t.contestant, str(t.cameras),
            f"{_num(t.decoded_fps_min)}|{_num(t.decoded_fps_mean)}",
            "-" if t.published_fps_min is None else f"{t.published_fps_min:.2f}",
            f"{t.core_pct:.0f}", f"{t.cpu_ms_per_frame:.2f}", f"{t.other_pct:.0f}",
            f"{t.rig_busy_pct:.0f}",
            "?" if t.lag_growth_s is None else f"{t.lag_growth_s:+.2f}",
            f"{_ms(t.p50_s)}|{_ms(t.p99_s)}",
            hist, "yes" if t.sustained else "no: " + "; ".join(t.reasons()),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = [" | ".join([*(cell.rjust(w) if i else cell.ljust(w)
                           for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))),
                         row[-1]])
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in [*widths, len(head[-1])]))
    return "\n".join(lines)


def cameras_per_core(trials: Sequence[TrialResult], contestant: str) -> int:
    best = most_sustained(trials, contestant)
    return best.cameras if best else 0


def format_summary(trials: Sequence[TrialResult], fixed_cameras: int,
                   max_cameras: int) -> list[str]:
    ours, bare = cameras_per_core(trials, OURS), cameras_per_core(trials, BARE)
    capped = [name for name, n in ((OURS, ours), (BARE, bare)) if n >= max_cameras]
    lines = [f"cameras one core sustains: {OURS} {ours}, {BARE} {bare}"
             + (f" ({', '.join(capped)} reached --max-cameras {max_cameras}: a lower bound)"
                if capped else "")]
    ratio = ours / bare if bare else math.nan
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    lines.append(f"{OURS}/{BARE} cameras per core: {ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
                 f"{verdict}")
    at_fixed = {t.contestant: t for t in trials if t.cameras == fixed_cameras}
    if OURS in at_fixed and BARE in at_fixed:
        o, b = at_fixed[OURS].cpu_ms_per_frame, at_fixed[BARE].cpu_ms_per_frame
        lines.append(f"CPU per decoded frame at {fixed_cameras} cameras: {OURS} {o:.2f} ms, "
                     f"{BARE} {b:.2f} ms; {BARE}/{OURS}: {b / o:.2f} "
                     f"({OURS} costs {o / b:.2f}x the bare loop per frame)")
    best = most_sustained(trials, OURS)
    if best is not None and best.p99_s is not None:
        hist = ("" if best.histogram_p99_le_s is None
                else f"; ingest's own histogram: p99 <= {best.histogram_p99_le_s:g} s")
        lines.append(f"capture-to-publish at {best.cameras} cameras ({OURS}'s most sustained): "
                     f"p50 {_ms(best.p50_s)} ms, p99 {_ms(best.p99_s)} ms{hist}")
    return lines
