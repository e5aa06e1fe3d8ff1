from __future__ import annotations

import pytest

from contracts.gaps import GapSpan
from workers.ordering import Decision, Progress, decide


@pytest.mark.parametrize(
    ("progress", "epoch", "seq", "expected"),
    [
        (None, 1, 0, Decision("apply")),
        (None, 1, 3, Decision("apply", (GapSpan(1, 0, 2, "missing"),))),
        (Progress(1, 4), 1, 5, Decision("apply")),
        (Progress(1, 4), 1, 4, Decision("duplicate")),
        (Progress(1, 4), 1, 2, Decision("duplicate")),
        (Progress(1, 4), 1, 8, Decision("apply", (GapSpan(1, 5, 7, "missing"),))),
        (Progress(1, 4), 2, 0, Decision("apply")),
        (Progress(1, 4), 2, 2, Decision("apply", (GapSpan(2, 0, 1, "missing"),))),
        (Progress(2, 0), 1, 9, Decision("late", (GapSpan(1, 9, 9, "out_of_order"),))),
    ],
)
def test_decide(progress: Progress | None, epoch: int, seq: int, expected: Decision) -> None:
    assert decide(progress, epoch, seq) == expected
