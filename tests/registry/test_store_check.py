"""Store.check: a consistent store says nothing; each kind of damage is named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_helpers import KEY, T0, artifact, open_store, worker

from registry.store import Store
from registry.store.env import Txn


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as s:
        art, blobs = artifact()
        s.publish(art, blobs, now=T0)
        s.enqueue(KEY.with_model("other"), now=T0)
        s.enqueue(KEY.with_model("third"), now=T0)
        assert s.lease(worker("nvidia/sm_90"), lease_seconds=30, now=T0) is not None
        yield s


def _damage(store: Store, fn: Callable[[Txn], object]) -> None:
    store._env.write(fn)  # what a bug or a torn write could leave; no public path does this


def test_a_store_used_normally_is_consistent(store: Store) -> None:
    assert store.check() == []


def _first(txn: Txn, db: str) -> bytes:
    return next(txn.scan(getattr(txn.dbs, db)))[0]


@pytest.mark.parametrize(
    ("damage", "finding"),
    [
        (lambda t: t.put(t.dbs.blobs, _first(t, "blobs"), b"flipped"), "do not hash to its name"),
        (lambda t: t.delete(t.dbs.blobs, _first(t, "blobs")), "is missing"),
        (lambda t: t.delete(t.dbs.variants, _first(t, "variants")), "missing from the variant index"),
        (lambda t: t.delete(t.dbs.artifacts, _first(t, "artifacts")), "artifact"),
        (lambda t: t.delete(t.dbs.queue, _first(t, "queue")), "has no queue entry"),
        (lambda t: t.delete(t.dbs.leases, _first(t, "leases")), "has no lease entry"),
        (lambda t: t.put(t.dbs.leases, b"\0" * 8 + b"ghost", b"ghost"), "the job holds no such lease"),
        (lambda t: t.delete(t.dbs.jobs, _first(t, "jobs")), "is missing"),
    ],
)
def test_damage_is_found(store: Store, damage: Callable[[Txn], object], finding: str) -> None:
    _damage(store, damage)
    problems = store.check()
    assert problems and any(finding in p for p in problems), problems
