"""In-process wake-ups for long polls and watches.

Watchers of a key wake when a kernel is published for it or its job changes; leasing
workers wake when a job is queued. Each wait is a fresh asyncio.Event swapped out on
notify, so a notification between a check and a wait is never lost as long as the
waiter took the event before checking (see `Registry.watch_kernel`).
"""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    def __init__(self) -> None:
        self._keys: dict[str, asyncio.Event] = {}
        self._jobs = asyncio.Event()

    def key_event(self, key_id: str) -> asyncio.Event:
        """The event the next notify of `key_id` sets; take it before checking state."""
        return self._keys.setdefault(key_id, asyncio.Event())

    def jobs_event(self) -> asyncio.Event:
        return self._jobs

    def notify_key(self, key_id: str) -> None:
        event = self._keys.pop(key_id, None)
        if event is not None:
            event.set()

    def notify_jobs(self) -> None:
        event, self._jobs = self._jobs, asyncio.Event()
        event.set()


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds; True when the event fired."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()
