"""What happened around each crossing the checker found missed or spurious: the facts needed to
tell a product bug (state lost on failover, frames skipped behind the tracker's back) from a
checker margin too tight for what the tracker legitimately cannot count. Pure, like the
checker; its output is printed, never judged.

Per crossing: its time (and its time into the session, which is the scene's clock), the counted
crossings near it, the nearest coverage gap and its distance, the batch that held its frames
with the batches around it (seq, the worker that applied each, or its gap reason: a change of
worker is a failover or a reassignment), and the scenario's events (kills, starts) nearest it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checker imports this module
    from tests.faults.checker import BatchKey, Confirmed, CountCheck, Gap, History, Span

NEAR_S = 6.0  # counted crossings and events this close to a miss are shown
AROUND = 4  # batches shown either side of the one holding the crossing


def explain(history: History, mismatches: Sequence[CountCheck]) -> tuple[str, ...]:
    lines: list[str] = []
    for check in mismatches:
        for kind, times in (("missed", check.missed_at), ("spurious", check.spurious_at)):
            for at in times:
                lines.extend(_one(history, check.camera_id, check.direction, kind, at))
    return tuple(lines)


def _one(history: History, camera: str, direction: str, kind: str, at: float) -> list[str]:
    session = max((s for s in history.windows.get(camera, ()) if s[0] <= at), default=None)
    scene_s = f", {at - session[0]:.2f} s into its session" if session else ""
    out = [f"{kind} {camera} {direction} at {at:.2f}{scene_s}"]
    near = sorted(c.at - at for c in history.counted
                  if c.camera_id == camera and abs(c.at - at) <= NEAR_S)
    dirs = {round(c.at - at, 2): c.direction for c in history.counted
            if c.camera_id == camera and abs(c.at - at) <= NEAR_S}
    out.append("  counted nearby (s from it): " + (", ".join(
        f"{d:+.2f} {dirs[round(d, 2)]}" for d in near) or "none"))
    true_near = sorted(c.at - at for c in history.truth
                       if c.camera_id == camera and 0 < abs(c.at - at) <= NEAR_S)
    out.append("  other true crossings nearby: " + (", ".join(f"{d:+.2f}" for d in true_near)
                                                     or "none"))
    confirmed = sorted((c for c in history.confirmed if c.key.camera_id == camera),
                       key=lambda c: (c.key.stream_epoch, c.key.seq))
    gap_spans = sorted(_gap_spans(history.gaps, camera, confirmed),
                       key=lambda g: _distance(at, g[0]))
    for span, gap in gap_spans[:2]:
        out.append(f"  gap {gap.reason} seq {gap.seq_from}-{gap.seq_to} epoch "
                   f"{gap.stream_epoch}: {span[0] - at:+.2f}..{span[1] - at:+.2f} s from it "
                   f"(distance {_distance(at, span):.2f} s)")
    if not gap_spans:
        out.append("  no gap on this camera")
    out.append("  batches: " + _batches_around(history, confirmed, at))
    events = sorted((t - at, what) for t, what in history.events if abs(t - at) <= 2 * NEAR_S)
    out.append("  events (s from it): " + (", ".join(f"{d:+.2f} {what}" for d, what in events)
                                           or "none"))
    return out


def _gap_spans(gaps: Sequence[Gap], camera: str,
               confirmed: Sequence[Confirmed]) -> list[tuple[Span, Gap]]:
    out: list[tuple[Span, Gap]] = []
    for gap in gaps:
        if gap.camera_id != camera:
            continue
        if gap.started_at is not None:
            end = gap.ended_at if gap.ended_at is not None else float("inf")
            out.append(((gap.started_at, end), gap))
            continue
        held = [c for c in confirmed if gap.covers(c.key)]
        if held:
            out.append(((min(c.captured_at for c in held), max(c.ends_at for c in held)), gap))
    return out


def _distance(at: float, span: Span) -> float:
    return 0.0 if span[0] <= at <= span[1] else min(abs(at - span[0]), abs(at - span[1]))


def _batches_around(history: History, confirmed: Sequence[Confirmed], at: float) -> str:
    if not confirmed:
        return "none confirmed"
    holding = min(range(len(confirmed)),
                  key=lambda i: _distance(at, (confirmed[i].captured_at, confirmed[i].ends_at)))
    appliers: dict[BatchKey, list[str]] = defaultdict(list)
    for a in history.applied:
        appliers[a.key].append(f"{a.worker_id}:{a.crossings}x")
    shown = []
    for c in confirmed[max(0, holding - AROUND):holding + AROUND + 1]:
        reasons = [g.reason for g in history.gaps if g.covers(c.key)]
        fate = ",".join(appliers.get(c.key, [])) or "/".join(reasons) or "LOST"
        mark = "*" if c is confirmed[holding] else ""
        shown.append(f"{mark}{c.key.seq}[{c.captured_at - at:+.1f}] {fate}")
    return "; ".join(shown)
