"""The soak's words: a progress line a minute, and the final report (faults, resource slopes,
the books, the verdict). Plain formatting of what the runner gathered; no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bench.soak.faults import FaultRecord
from bench.soak.growth import Judgement, Point, SeriesKey, Verdict
from bench.soak.sampler import Sample
from bench.soak.totals import Totals
from contracts import broker

if TYPE_CHECKING:
    from bench.soak.runner import SoakConfig

MIB = 2.0**20


def progress_line(t_s: float, samples: Sequence[Sample], applied: Sequence[Point],
                  faults: Sequence[FaultRecord]) -> str:
    def total(metric: str, subject_prefix: str = "") -> float:
        return sum(s.value for s in samples if s.key.metric == metric
                   and s.key.subject.startswith(subject_prefix))

    def one(subject: str, metric: str) -> float:
        return next((s.value for s in samples if s.key == SeriesKey(subject, metric)), 0.0)

    processes = {(s.key.subject, s.key.instance) for s in samples if s.key.metric == "rss_bytes"}
    frames_queued = sum(s.value for s in samples if s.key.metric == "messages"
                        and s.key.subject.startswith("queue:frames.")
                        and s.key.subject != f"queue:{broker.FRAMES_DEAD}")
    last = applied[-1][1] if applied else 0.0
    minute_ago = next((v for t, v in reversed(applied) if t <= t_s - 60), 0.0)
    recovered = sum(f.ok for f in faults)
    return (f"[soak {int(t_s) // 60:02d}:{int(t_s) % 60:02d}] {len(processes)} processes, "
            f"RSS {total('rss_bytes') / MIB:.0f} MiB, fds {total('fds'):.0f}; broker "
            f"{one('broker', 'connections'):.0f} connections, {one('broker', 'channels'):.0f} "
            f"channels, {frames_queued:.0f} frame batches queued, "
            f"{one(f'queue:{broker.FRAMES_DEAD}', 'messages'):.0f} dead-lettered; "
            f"{one('postgres', 'backends'):.0f} backends; applied {last:.0f} "
            f"(+{last - minute_ago:.0f} in the last minute); faults {len(faults)} "
            f"({recovered} recovered)")


def format_report(config: SoakConfig, series: Mapping[SeriesKey, Sequence[Point]],
                  verdict: Verdict, faults: Sequence[FaultRecord], totals: Totals | None,
                  stall: tuple[float, float], seen: Collection[tuple[str, int]],
                  sampler_errors: Sequence[str], failures: Sequence[str],
                  interrupted: str = "") -> str:
    """`interrupted`: why the soak was cut short; the report then covers what was sampled."""
    rounds = max((len(points) for points in series.values()), default=0)
    processes = sorted(seen)
    lines = [f"INTERRUPTED: {interrupted}; what follows covers what was sampled until then",
             ""] if interrupted else []
    lines += [
        f"soak: {config.cameras} cameras at {config.fps:g} fps ({config.width}x"
        f"{config.height}), {config.workers} pool workers, {config.duration_s:g} s "
        f"(warm-up {config.warmup_s:g} s), seed {config.seed}, a sample every "
        f"{config.sample_every_s:g} s",
        f"processes sampled: {len(processes)} ({', '.join(f'{n}/{p}' for n, p in processes)})",
        f"sampling rounds: {rounds}; sampler errors: {len(sampler_errors)}",
        "", f"faults ({len(faults)}):",
    ]
    lines += _table(("at s", "kind", "target", "detail", "recovered"), [
        (f"{f.at_s:.0f}", f.kind, f.target, f.detail,
         f"{f.recovered_s:.1f} s" if f.ok else f"NO: {f.error}") for f in faults])
    judged = [j for j in verdict.judgements if j.judged]
    window = max((s[-1][0] for s in series.values() if s), default=0.0)
    lines += ["", f"resource slopes, Theil-Sen over the judged window (the later half of "
              f"{config.warmup_s:g}..{window:.0f} s):"]
    lines += _table(("subject", "metric", "pid", "slope/h", "growth", "allowed", "rising",
                     "end/start", "peak"), [_judgement_row(j) for j in judged])
    unjudged = len(verdict.judgements) - len(judged)
    if unjudged:
        lines.append(f"({unjudged} short-lived series held to their ceilings only)")
    books = totals.summary() if totals else \
        "not read (interrupted: no drain)" if interrupted else "not read"
    lines += ["", f"books: {books}",
              f"longest stretch without a batch applied: {stall[1]:.0f} s (from "
              f"{stall[0]:.0f} s; limit {config.stall_limit_s:g} s)", ""]
    if failures:
        head = "INTERRUPTED, so not judged whole" if interrupted else "FAIL"
        lines.append(f"{head} ({len(failures)}):")
        lines += [f"  {f}" for f in failures]
    else:
        lines.append("PASS: no resource grew, every fault recovered, nothing lost or doubled")
    return "\n".join(lines)


def summary_json(verdict: Verdict, faults: Sequence[FaultRecord], totals: Totals | None,
                 stall: tuple[float, float], failures: Sequence[str],
                 interrupted: str = "") -> dict[str, Any]:
    return {
        "ok": not failures, "interrupted": interrupted or None, "failures": list(failures),
        "faults": [dataclasses.asdict(f) for f in faults],
        "totals": None if totals is None else dataclasses.asdict(totals),
        "longest_stall_s": stall[1],
        "findings": [str(f) for f in verdict.findings],
    }


def _judgement_row(j: Judgement) -> tuple[str, ...]:
    scale, unit = (MIB, " MiB") if j.key.metric == "rss_bytes" else (1.0, "")
    return (j.key.subject, j.key.metric, j.key.instance, f"{j.slope_per_h / scale:+.2f}{unit}",
            f"{j.growth / scale:+.2f}{unit}", f"{j.allowed / scale:.1f}{unit}",
            f"{j.rising_share:.0%}", f"{j.end_over_start:.3f}", f"{j.peak / scale:.1f}{unit}")


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    out = ["  " + " | ".join(c.ljust(w) for c, w in zip(head, widths, strict=True))]
    out.append("  " + "-+-".join("-" * w for w in widths))
    out += ["  " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out

