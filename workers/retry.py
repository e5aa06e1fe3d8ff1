"""What a worker does with a batch whose processing failed. Pure.

A few retries here, with exponential back-off, for what passes (a database blip, a lock
timeout); then the batch goes back to frames.ingress for the balancer to route (a worker that
keeps failing has an open breaker by then, so it lands elsewhere); and once its attempts over
all workers reach a limit it is dead-lettered with the reason, which records a gap: a poison
batch must not circle the fleet for ever.

Retries here requeue the delivery (nack with requeue), which puts it back in its place near the
head of the queue, so a camera's order mostly holds; the attempts are counted in memory by
message id (classic queues keep no delivery count). Across workers the count travels in the
`x-camcount-attempts` header of the copy handed back.

The trade-off of a hand-back: the batch re-enters frames.ingress behind the camera's newer
batches. The camera's next worker either applies the newer ones first (the handed-back batch
is then behind its progress: a duplicate inside the recorded 'missing' gap) or, when it
arrives within the reorder window (workers/reorder.py, a few batches or seconds), still in
order. Counted once or recorded as a gap either way; never counted twice.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class HandBack:
    attempts_total: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    attempts_total: int


Verdict = Retry | HandBack | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # failures of one batch here before it is handed back
    max_total_attempts: int = 9  # failures over all workers before it is dead-lettered
    base_delay_s: float = 1.0
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= self.max_total_attempts:
            raise ValueError("need 1 <= max_attempts <= max_total_attempts")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def decide(self, failures_here: int, failures_before: int) -> Verdict:
        """After the `failures_here`-th failure at this worker, with `failures_before` at
        workers that handed the batch back."""
        total = failures_before + failures_here
        if total >= self.max_total_attempts:
            return GiveUp(total)
        if failures_here >= self.max_attempts:
            return HandBack(total)
        return Retry(min(self.max_delay_s, self.base_delay_s * 2 ** (failures_here - 1)))


class AttemptLog:
    """Failures per message id in this process, bounded: a requeued batch that another
    consumer takes (a balancer draining the queue) never comes back to be forgotten."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._failures: OrderedDict[str, int] = OrderedDict()

    def failed(self, message_id: str) -> int:
        count = self._failures.pop(message_id, 0) + 1
        self._failures[message_id] = count
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)
        return count

    def forget(self, message_id: str) -> None:
        self._failures.pop(message_id, None)

    def __len__(self) -> int:
        return len(self._failures)


def attempts_header(value: object) -> int:
    """The header's count, tolerating what a foreign publisher might put there."""
    if isinstance(value, bool) or not isinstance(value, int | str | bytes):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0
