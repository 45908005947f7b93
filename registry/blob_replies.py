"""FetchBlob's replies for whole-blob fetches, serialised once and kept (bounded by bytes).

A rollout has a fleet of serving hosts fetch the same few binaries; each fetch used to copy
the blob out of LMDB, re-hash it and build and serialise its ~1 MiB messages, which made the
stream run at a third of what the transport carries. The messages of a blob read (and
verified) once are kept here and streamed as they are. Resumed fetches (offset > 0) and
blobs larger than the budget take the normal path. Blobs are content-addressed, so a kept
reply can never go stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class BlobReplies:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._kept: OrderedDict[str, tuple[tuple[bytes, ...], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> tuple[tuple[bytes, ...], int] | None:
        """(serialised messages, blob size) of a kept blob."""
        with self._lock:
            hit = self._kept.get(sha256)
            if hit is not None:
                self._kept.move_to_end(sha256)
            return hit

    def put(self, sha256: str, messages: tuple[bytes, ...], blob_size: int) -> None:
        size = sum(map(len, messages))
        if size > self._max_bytes:
            return
        with self._lock:
            if sha256 in self._kept:
                return
            self._kept[sha256] = (messages, blob_size)
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, (old, _) = self._kept.popitem(last=False)
                self._bytes -= sum(map(len, old))
