"""What the soak writes under its results folder, as it goes (a soak cut short still leaves
its samples): samples.csv (long format: one row per series per round), samples.jsonl (one
object per round), faults.jsonl (one per fault, with its time), and at the end report.txt,
report.json and judgements.csv (every judged series' slope and growth). Beside them: logs/ (a
log per process) and confirmed.jsonl (ingest's CONFIRM_LOG, read for the books)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench.soak.faults import FaultRecord
from bench.soak.growth import Judgement
from bench.soak.sampler import Sample


class SampleLog:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._csv_file: IO[str] = (folder / "samples.csv").open("w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["t_s", "subject", "instance", "metric", "value"])
        self._jsonl: IO[str] = (folder / "samples.jsonl").open("w")
        self._faults: IO[str] = (folder / "faults.jsonl").open("w")

    def write_round(self, t_s: float, wall: float, samples: Sequence[Sample]) -> None:
        for s in samples:
            self._csv.writerow([f"{s.t_s:.2f}", s.key.subject, s.key.instance, s.key.metric,
                                f"{s.value:g}"])
        self._jsonl.write(json.dumps({
            "t_s": round(t_s, 2), "wall": wall,
            "samples": [{"subject": s.key.subject, "instance": s.key.instance,
                         "metric": s.key.metric, "value": s.value} for s in samples],
        }) + "\n")
        self._csv_file.flush()
        self._jsonl.flush()

    def write_fault(self, record: FaultRecord) -> None:
        self._faults.write(json.dumps(dataclasses.asdict(record)) + "\n")
        self._faults.flush()

    def write_judgements(self, judgements: Sequence[Judgement]) -> None:
        with (self.folder / "judgements.csv").open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["subject", "instance", "metric", "judged", "slope_per_h", "growth",
                          "allowed", "rising_share", "peak", "end_over_start"])
            for j in judgements:
                out.writerow([j.key.subject, j.key.instance, j.key.metric, j.judged,
                              _num(j.slope_per_h), _num(j.growth), _num(j.allowed),
                              _num(j.rising_share), _num(j.peak), _num(j.end_over_start)])

    def write_report(self, text: str, summary: dict[str, Any]) -> None:
        (self.folder / "report.txt").write_text(text + "\n")
        (self.folder / "report.json").write_text(json.dumps(summary, indent=2) + "\n")

    def close(self) -> None:
        for fh in (self._csv_file, self._jsonl, self._faults):
            fh.close()


def _num(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"
