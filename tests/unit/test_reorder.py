from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.reorder import ReorderWindow


def run(window: ReorderWindow[int], arrivals: list[int], lost: frozenset[int] = frozenset(),
        ) -> list[int]:
    """Feed seqs one per second-tenth; 'process' each released item (apply succeeds)."""
    out: list[int] = []

    def process(items: list[int]) -> None:
        for seq in items:
            out.append(seq)
            window.applied("c", 1, seq)
            process(window.ready("c"))

    now = 0.0
    for seq in arrivals:
        if seq in lost:
            continue
        now += 0.1
        process(window.expired(now))
        process(window.offer("c", 1, seq, seq, now))
    process(window.expired(now + 100))
    return out


@st.composite
def late_arrivals(draw: st.DrawFn) -> list[int]:
    """0..n in blocks of 4, where a block's first batch may come back up to 3 places late (a
    requeue overtaken by the batches prefetched behind it)."""
    n = draw(st.integers(1, 40))
    order: list[int] = []
    for start in range(0, n, 4):
        block = list(range(start, min(n, start + 4)))
        late = draw(st.integers(0, len(block) - 1))
        order += [*block[1 : late + 1], block[0], *block[late + 1 :]]
    return order


@given(late_arrivals())
def test_batches_a_few_places_late_are_put_back_in_order(arrivals: list[int]) -> None:
    window: ReorderWindow[int] = ReorderWindow(max_held=3, max_wait_s=5)
    window.applied("c", 1, -1)  # the camera's progress is known: 0 comes next
    assert run(window, arrivals) == sorted(arrivals)
    assert window.held() == 0


@given(st.integers(2, 30), st.data())
def test_a_lost_batch_only_delays_the_ones_behind_it(n: int, data: st.DataObject) -> None:
    lost = data.draw(st.integers(1, n - 1))
    window: ReorderWindow[int] = ReorderWindow(max_held=3, max_wait_s=0.25)
    out = run(window, list(range(n)), frozenset({lost}))
    assert out == [s for s in range(n) if s != lost]  # released in order, nothing held back


def test_first_batch_of_a_camera_and_new_epochs_pass_straight_through() -> None:
    window: ReorderWindow[str] = ReorderWindow()
    assert window.offer("c", 1, 7, "a", 0.0) == ["a"]
    window.applied("c", 1, 7)
    assert window.offer("c", 2, 0, "b", 0.1) == ["b"]  # reconnect: a new stream epoch
    assert window.offer("c", 1, 3, "old", 0.2) == ["old"]  # behind: the apply step decides


def test_a_skipped_batch_releases_the_ones_held_behind_it_at_once() -> None:
    window: ReorderWindow[int] = ReorderWindow(max_held=3, max_wait_s=60)
    window.applied("c", 1, 4)
    assert window.offer("c", 1, 6, 6, 0.0) == []  # waits for 5
    window.skipped("c", 1, 5)  # 5 was dead-lettered: nothing will apply it
    assert window.ready("c") == [6]
    window.skipped("c", 1, 2)  # an old batch skipped: the expectation never moves back
    assert window.offer("c", 1, 7, 7, 0.1) == [7]
