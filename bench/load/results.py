"""The load bench's printed report: the ramp, the stage breakdown, the ratios. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.load.fanout import FanoutResult
from bench.load.latency import format_breakdown, format_table
from bench.load.runner import LoadReport
from bench.load.search import StepResult


def sustained(steps: Sequence[StepResult]) -> StepResult | None:
    """The largest step sustained (None if none was)."""
    return max((s for s in steps if s.sustained), key=lambda s: s.cameras, default=None)


def format_steps(steps: Sequence[StepResult]) -> str:
    rows = [("cameras", "events", "p99 ms", "slowest cam/s", "queued first->last (max)",
             "gaps", "verdict")]
    for s in steps:
        rows.append((str(s.cameras), str(s.events), f"{s.p99_ms:.0f}",
                     f"{s.slowest_camera_per_s:.2f}",
                     f"{s.depth_first}->{s.depth_last} ({s.depth_max})",
                     str(sum(s.gaps.values())), "sustained" if s.sustained else str(s.failure)))
    return format_table(rows)


def format_fanout(results: Sequence[FanoutResult]) -> str:
    rows = [("contestant", "clients", "subscribed", "delivered", "missing", "p50 ms", "p95 ms",
             "p99 ms")]
    for r in results:
        rows.append((r.name, str(r.clients), str(r.subscribed), str(r.delivered),
                     str(r.missing), f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", f"{r.p99_ms:.1f}"))
    return format_table(rows)


def fanout_ratio(results: Sequence[FanoutResult]) -> float:
    by_name = {r.name: r for r in results}
    ours, bare = by_name.get("camcount"), by_name.get("bare websockets")
    if ours is None or bare is None or not bare.p99_ms > 0:
        return math.nan
    return ours.p99_ms / bare.p99_ms


def format_report(report: LoadReport, p99_target_ms: float) -> str:
    lines = ["camera ramp (p99 capture -> WebSocket client):", format_steps(report.steps)]
    best = sustained(report.steps)
    shown = best or (report.steps[-1] if report.steps else None)
    bare = report.bare
    if best is None:
        lines.append(f"most cameras sustained with p99 < {p99_target_ms:.0f} ms: none")
    else:
        lines.append(f"most cameras sustained with p99 < {p99_target_ms:.0f} ms: "
                     f"{best.cameras}")
    lines.append(f"baseline, bare decode + motion ({bare.streams} stream(s), one process): "
                 f"{bare.cpu_ms_per_frame:.2f} CPU ms/frame -> ~{bare.capacity:.0f} cameras at "
                 f"{bare.fps:g} fps on {bare.cores} core(s)")
    found = best.cameras if best else 0
    ratio = found / bare.capacity if bare.capacity > 0 else math.nan
    bounded = best is not None and not any(not s.sustained and s.cameras > best.cameras
                                           for s in report.steps)
    lines.append(f"camcount/bare cameras: {ratio:.3f}"
                 + (" (a lower bound: no step above it failed)" if bounded else ""))
    if shown is not None:
        what = "largest sustained" if best else "last (not sustained)"
        lines += [f"stage breakdown at {shown.cameras} cameras ({what}):",
                  format_breakdown(shown.stages)]
    if report.fanout:
        lines += ["WebSocket fan-out (commit or broadcast call -> each client):",
                  format_fanout(report.fanout),
                  f"camcount/bare fan-out p99: {fanout_ratio(report.fanout):.2f}"]
    unclean = {n: c for n, c in report.exit_codes.items() if c != 0}
    if unclean:
        lines.append(f"WARNING: processes did not stop cleanly: {unclean}")
    return "\n".join(lines)
