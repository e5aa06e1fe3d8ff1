"""A small per-process LRU of loaded detectors, so cameras that share a model share a session.

Loading is slow (seconds on CPU, minutes for a TensorRT engine build), so a load holds only its
own key's lock: lookups of models already loaded never wait behind it, and two threads asking
for the same new model load it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Slot(Generic[V]):
    __slots__ = ("lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: V | None = None


class DetectorCache(Generic[K, V]):
    """Keyed e.g. by (model_path, use_gpu, gpu_device). Eviction only drops the cache's
    reference: a thread still running the evicted detector keeps it alive until it is done."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._slots: OrderedDict[K, _Slot[V]] = OrderedDict()

    def get(self, key: K, factory: Callable[[], V]) -> V:
        """The cached value for `key`, built with `factory` on a miss; marks it most recent."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                while len(self._slots) > self.capacity:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
        with slot.lock:
            if slot.value is None:
                try:
                    slot.value = factory()
                except BaseException:
                    # A failed load must not occupy a place: the next get tries again.
                    with self._lock:
                        if self._slots.get(key) is slot:
                            del self._slots[key]
                    raise
            return slot.value

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._slots

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def keys(self) -> list[K]:
        """Least recently used first."""
        with self._lock:
            return list(self._slots)
