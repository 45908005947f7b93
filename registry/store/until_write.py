"""Reads kept until the store's next write.

The registry process makes every write to its store, and the store counts them
(`StoreEnv.generation`), so anything computed from reads stays true until that count moves.
The read path keeps lookups, resolutions and whole manifests this way: a serving fleet asks
the same questions between two publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class UntilWrite(Generic[K, V]):
    """A bounded dict emptied whenever the write count moves. Past `max_entries` it stops
    taking entries until the next write empties it (a bound, not an eviction policy)."""

    def __init__(self, generation: Callable[[], int], max_entries: int = 65536) -> None:
        self._generation = generation
        self._max_entries = max_entries
        self._entries: dict[K, V] = {}
        self._seen = -1

    def since(self) -> int:
        """The write count now, emptying entries from before it: pass it to `put` for
        values computed from reads made after this call."""
        generation = self._generation()
        if generation != self._seen:
            self._entries.clear()
            self._seen = generation
        return generation

    def get(self, key: K) -> V | None:
        self.since()
        return self._entries.get(key)

    def put(self, key: K, value: V, since: int) -> None:
        """Keep `value` unless a write committed since `since` (it may predate that write)."""
        if self._generation() == since == self._seen and len(self._entries) < self._max_entries:
            self._entries[key] = value
