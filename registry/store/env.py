"""The process's LMDB environment: named databases, one-transaction reads and writes, map growth.

LMDB forbids opening one environment twice in a process (its POSIX locks are per process)
and using it after fork, so `StoreEnv` refuses both. Writes run as one transaction each;
when the map is full the transaction is aborted, the map doubled and the write re-run.
Changing the map size is only safe with no transaction open in this process, so every
transaction holds a shared slot of `_ResizeGate` and the resize takes it exclusively.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import lmdb

T = TypeVar("T")

# Bumped when the layout of a database changes; older code refuses a newer store.
SCHEMA_VERSION = 1
_SCHEMA_KEY = b"schema_version"
_MAX_DBS = 16

_open_paths: set[tuple[int, str]] = set()
_open_paths_lock = threading.Lock()

# How many forks led to this process; an environment remembers the count it was opened at.
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


class SchemaVersionError(RuntimeError):
    """The store was written by newer code whose layout this code does not know."""


@dataclass(frozen=True)
class Databases:
    """Handles of the named sub-databases; the comment on each gives its key -> value layout."""

    blobs: lmdb._Database  # sha256 hex -> bytes
    artifacts: lmdb._Database  # artifact_id -> Artifact JSON
    variants: lmdb._Database  # key_id + artifact_id -> b""
    jobs: lmdb._Database  # job_id -> Job JSON
    job_by_key: lmdb._Database  # key_id [+ ':' + toolchain sha256] -> latest job_id
    queue: lmdb._Database  # inverted priority, created ns (big-endian) + job_id -> key text
    leases: lmdb._Database  # expiry ns (big-endian) + job_id -> job_id
    candidates: lmdb._Database  # job_id -> JSON list of CandidateRecord
    meta: lmdb._Database  # schema_version -> decimal text


class Txn:
    """One LMDB transaction and the store's databases.

    Transactions are opened with buffers=True (no copy unless asked for); every value
    leaves through `get` or `scan`, which copy, so no memoryview outlives its transaction.
    """

    def __init__(self, txn: lmdb.Transaction, dbs: Databases) -> None:
        self.dbs = dbs
        self._txn = txn
        self.changed = False  # whether a put or delete ran: what moves StoreEnv.generation

    def get(self, db: lmdb._Database, key: bytes) -> bytes | None:
        value = self._txn.get(key, db=db)
        return None if value is None else bytes(value)

    def size(self, db: lmdb._Database, key: bytes) -> int | None:
        """Length of a value without copying it (blobs run to hundreds of MiB)."""
        value = self._txn.get(key, db=db)
        return None if value is None else len(value)

    def put(self, db: lmdb._Database, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=db)
        self.changed = True

    def delete(self, db: lmdb._Database, key: bytes) -> bool:
        deleted = bool(self._txn.delete(key, db=db))
        self.changed = self.changed or deleted
        return deleted

    def entries(self, db: lmdb._Database) -> int:
        return int(self._txn.stat(db)["entries"])

    def scan(
        self, db: lmdb._Database, *, start: bytes = b"", prefix: bytes = b""
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) copies in key order from the first key >= max(start, prefix) while
        keys begin with `prefix`. Do not write to `db` while iterating."""
        cursor = self._txn.cursor(db=db)
        if not cursor.set_range(max(start, prefix)):
            return
        for key, value in cursor:
            if not bytes(key).startswith(prefix):
                return
            yield bytes(key), bytes(value)


class _ResizeGate:
    """Shared by transactions, exclusive for changing the map size."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._resizing = True
            self._cond.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class StoreEnv:
    """The one LMDB environment of this process for a store directory.

    Not fork-safe by design: LMDB environments must not be used in a forked child, so
    every call checks that it runs in the process that opened the environment. A child
    opens its own. Calls must not nest (a write inside a read would wait for itself).
    """

    def __init__(self, path: Path, *, map_size: int, sync: bool) -> None:
        self.path = Path(path)
        self._pid = os.getpid()
        self._forks = _forks
        # Committed write transactions that changed something: what a cache of reads checks
        # it is current by.
        self.generation = 0
        self._id = (self._pid, os.path.realpath(self.path))
        with _open_paths_lock:
            if self._id in _open_paths:
                raise RuntimeError(f"store {self.path} is already open in this process; share that Store")
            _open_paths.add(self._id)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(
                str(self.path), subdir=True, map_size=map_size, max_dbs=_MAX_DBS, sync=sync, lock=True
            )
        except BaseException:
            self._release_path()
            raise
        self._gate = _ResizeGate()
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self.dbs = Databases(**{f.name: self._env.open_db(f.name.encode()) for f in fields(Databases)})
            self.write(_check_schema_version)
        except BaseException:
            self.close()
            raise

    def read(self, fn: Callable[[Txn], T]) -> T:
        """fn(txn) in one read transaction."""
        self._check_usable()
        while True:
            try:
                with self._gate.shared():
                    self._check_usable()  # close() may have run while this read waited
                    txn = self._env.begin(buffers=True)
                    try:
                        return fn(Txn(txn, self.dbs))
                    finally:
                        txn.abort()
            except lmdb.MapResizedError:
                self._adopt_map_size()

    def write(self, fn: Callable[[Txn], T]) -> T:
        """fn(txn) in one write transaction, committed when fn returns; re-run after the map grows.

        fn must be safe to re-run: it sees none of an aborted attempt's writes.
        """
        self._check_usable()
        with self._write_lock:
            while True:
                try:
                    with self._gate.shared():
                        txn = self._env.begin(write=True, buffers=True)
                        try:
                            wrapped = Txn(txn, self.dbs)
                            result = fn(wrapped)
                            txn.commit()
                            # A write that changed nothing (the lease reaper's sweep, every
                            # second) must not end the reads kept until the next write.
                            if wrapped.changed:
                                self.generation += 1
                            return result
                        except BaseException:
                            txn.abort()
                            raise
                except lmdb.MapFullError:
                    self._grow_map()
                except lmdb.MapResizedError:
                    self._adopt_map_size()

    def info(self) -> tuple[int, int]:
        """(map size, bytes in use) in bytes."""
        self._check_usable()
        with self._gate.shared():  # reading the map while another thread resizes it is undefined
            info = self._env.info()
            page_size = int(self._env.stat()["psize"])
        return int(info["map_size"]), (int(info["last_pgno"]) + 1) * page_size

    def close(self) -> None:
        if self._closed:
            return
        self._check_pid()
        with self._write_lock, self._gate.exclusive():
            self._env.close()
            self._closed = True
        self._release_path()

    def _grow_map(self) -> None:
        with self._gate.exclusive():
            self._env.set_mapsize(int(self._env.info()["map_size"]) * 2)

    def _adopt_map_size(self) -> None:
        """Another process grew the map; 0 takes the size it wrote."""
        with self._gate.exclusive():
            self._env.set_mapsize(0)

    def _check_pid(self) -> None:
        # A counter the fork hook bumps, not os.getpid(): this runs twice per read, and a
        # system call per check was 5% of a GetManifest.
        if _forks != self._forks:
            raise RuntimeError(
                f"store {self.path} was opened in process {self._pid}; LMDB environments must not be "
                f"used across fork: open the store again in process {os.getpid()}"
            )

    def _check_usable(self) -> None:
        self._check_pid()
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")

    def _release_path(self) -> None:
        with _open_paths_lock:
            _open_paths.discard(self._id)


def _check_schema_version(txn: Txn) -> None:
    raw = txn.get(txn.dbs.meta, _SCHEMA_KEY)
    if raw is None:
        txn.put(txn.dbs.meta, _SCHEMA_KEY, str(SCHEMA_VERSION).encode())
        return
    found = int(raw)
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"store schema version {found} is newer than this code's {SCHEMA_VERSION}: "
            "run a registry at least as new as the one that wrote the store"
        )
