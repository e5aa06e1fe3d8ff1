"""The checker's explanation of a count mismatch (tests/faults/misses.py): pure, fast."""

from __future__ import annotations

from tests.faults.checker import (
    Applied,
    BatchKey,
    Confirmed,
    Crossing,
    Gap,
    History,
    check,
)


def _history(counted: list[Crossing]) -> History:
    keys = [BatchKey("cam", 1, seq) for seq in range(40)]
    confirmed = [Confirmed(k, 100.0 + k.seq * 0.5, 100.5 + k.seq * 0.5) for k in keys]
    # seq 30 is a gap; the camera moves from w1 to w2 at seq 20
    applied = [Applied(k, "w1" if k.seq < 20 else "w2", 0) for k in keys if k.seq != 30]
    return History(
        confirmed=confirmed, applied=applied,
        gaps=[Gap("cam", 1, "failover", 30, 30)],
        counted=counted, truth=[Crossing("cam", 106.0, "in"), Crossing("cam", 110.2, "in")],
        windows={"cam": [(100.0, 120.0)]}, events=[(109.9, "sigkill w1"), (110.1, "start w1")],
    )


def test_a_miss_is_explained_with_its_batch_its_workers_the_nearest_gap_and_events() -> None:
    verdict = check(_history([Crossing("cam", 106.1, "in")]))
    assert not verdict.ok
    text = "\n".join(verdict.explained)
    assert "missed cam in at 110.20, 10.20 s into its session" in text
    assert "counted nearby (s from it): -4.10 in" in text
    assert "gap failover seq 30-30 epoch 1: +4.80..+5.30 s from it (distance 4.80 s)" in text
    assert "19[-0.7] w1:0x; *20[-0.2] w2:0x" in text  # the change of worker is shown
    assert "-0.30 sigkill w1, -0.10 start w1" in text
    assert verdict.summary().count("checker:   ") == len(verdict.explained)


def test_a_spurious_count_is_explained_and_a_clean_run_explains_nothing() -> None:
    spurious = check(_history([Crossing("cam", 106.1, "in"), Crossing("cam", 110.3, "in"),
                               Crossing("cam", 112.0, "in")]))
    assert any(line.startswith("spurious cam in at 112.00") for line in spurious.explained)
    clean = check(_history([Crossing("cam", 106.1, "in"), Crossing("cam", 110.3, "in")]))
    assert clean.ok and clean.explained == ()
    assert "counted minus true time: +0.10 .. +0.10 (median) .. +0.10 s" in clean.summary()
