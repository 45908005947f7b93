"""The environment: map growth, schema guard, one open per process, no use across fork."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lmdb
import pytest
from store_helpers import KEY, T0, artifact, open_store

from registry.store import SchemaVersionError, Store

REPO = Path(__file__).resolve().parents[2]


def test_a_full_map_grows_and_every_write_stays_readable(tmp_path: Path) -> None:
    with open_store(tmp_path / "store", map_size=64 << 10) as store:
        digests = [store.put_blob(bytes([i]) * (256 << 10)) for i in range(16)]
        art, blobs = artifact()
        stored = store.publish(art, blobs, now=T0)
        stats = store.stats()
        assert stats.map_size_bytes >= 4 << 20 and stats.used_bytes >= 4 << 20
        assert [store.get_blob(d.sha256) for d in digests] == [bytes([i]) * (256 << 10) for i in range(16)]
        assert store.variants(KEY) == [stored]


def test_reads_on_another_thread_run_safely_while_the_map_grows(tmp_path: Path) -> None:
    with open_store(tmp_path / "store", map_size=64 << 10) as store:
        first = store.put_blob(b"first")
        stop = threading.Event()

        def read_until_stopped() -> int:
            reads = 0
            while not stop.is_set():
                assert store.get_blob(first.sha256) == b"first"
                store.stats()
                reads += 1
            return reads

        with ThreadPoolExecutor(max_workers=1) as pool:
            reader = pool.submit(read_until_stopped)
            try:
                for i in range(40):
                    store.put_blob(i.to_bytes(4, "big") * (32 << 10))
            finally:
                stop.set()
            assert reader.result() > 0, "a failed read re-raises here"
        assert store.stats().map_size_bytes > 64 << 10


def test_a_store_with_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    open_store(path).close()
    _set_schema_version(path, b"2")
    with pytest.raises(SchemaVersionError, match="schema version 2 is newer than this code's 1"):
        open_store(path)
    _set_schema_version(path, b"1")
    open_store(path).close()  # the refused open released the path


def test_a_store_cannot_be_opened_twice_in_one_process(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    with pytest.raises(RuntimeError, match="already open in this process"):
        open_store(tmp_path / "store")
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        store.get_blob("0" * 64)
    open_store(tmp_path / "store").close()


def test_a_store_is_refused_in_a_forked_child(tmp_path: Path) -> None:
    with open_store(tmp_path / "store") as store:
        digest = store.put_blob(b"parent")
        pid = os.fork()
        if pid == 0:  # child: must refuse the parent's environment, and open its own
            try:
                store.get_blob(digest.sha256)
                code = 1
            except RuntimeError as e:
                code = 0 if "across fork" in str(e) else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.get_blob(digest.sha256) == b"parent"


def test_growth_by_another_process_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with open_store(path, map_size=64 << 10) as store:
        mine = store.put_blob(b"mine")
        grow = (
            "from pathlib import Path; from registry.store import Store\n"
            f"with Store.open(Path({str(path)!r}), map_size=64 << 10) as s:\n"
            "    print(s.put_blob(b'theirs' * 200_000).sha256)\n"
        )
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'clients/python'}{os.pathsep}{REPO}"}
        theirs = subprocess.run(
            [sys.executable, "-c", grow], env=env, check=True, capture_output=True, text=True
        )
        assert store.get_blob(theirs.stdout.strip()) == b"theirs" * 200_000
        assert store.get_blob(mine.sha256) == b"mine"
        store.put_blob(b"still writable")


def test_stats_count_blobs_and_artifacts(tmp_path: Path) -> None:
    with open_store(tmp_path / "store") as store:
        art, blobs = artifact()
        store.publish(art, blobs, now=T0)
        stats = store.stats()
        assert (stats.blobs, stats.artifacts, stats.map_size_bytes) == (2, 1, 64 << 20)


def _set_schema_version(path: Path, version: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", version, db=env.open_db(b"meta", txn=txn))
    env.close()


def test_store_open_rejects_zero_attempts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Store.open(tmp_path / "store", max_attempts=0)
