"""Content-addressed blobs: verified on write and on read, idempotent, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from kreg.errors import DataLoss, InvalidArgument, NotFound, ResourceExhausted
from kreg.model import Digest
from store_helpers import blob, open_store

from registry.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as s:
        yield s


def test_put_blob_returns_digest_and_get_blob_returns_the_bytes(store: Store) -> None:
    data = b"\x00kernel bytes\xff" * 100
    digest = store.put_blob(data)
    assert digest == blob(data).digest
    got = store.get_blob(digest.sha256)
    assert got == data and type(got) is bytes
    assert store.blob_digest(digest.sha256) == digest


def test_put_blob_with_wrong_claimed_hash_is_data_loss_and_stores_nothing(store: Store) -> None:
    claimed = blob(b"what the publisher meant").digest
    with pytest.raises(DataLoss, match="do not match"):
        store.put_blob(b"what arrived", expected=claimed)
    assert store.blob_digest(claimed.sha256) is None
    assert store.blob_digest(blob(b"what arrived").digest.sha256) is None


def test_put_blob_with_wrong_claimed_size_is_data_loss(store: Store) -> None:
    right = blob(b"twelve bytes").digest
    with pytest.raises(DataLoss):
        store.put_blob(b"twelve bytes", expected=Digest(right.sha256, 13))


def test_put_blob_twice_is_idempotent(store: Store) -> None:
    first = store.put_blob(b"same")
    assert store.put_blob(b"same", expected=first) == first
    assert store.stats().blobs == 1


def test_put_blob_over_the_size_limit_is_resource_exhausted(tmp_path: Path) -> None:
    with open_store(tmp_path / "store", max_blob_bytes=1024) as store:
        store.put_blob(b"x" * 1024)
        with pytest.raises(ResourceExhausted, match="1025 bytes exceeds the limit of 1024"):
            store.put_blob(b"x" * 1025)


def test_get_blob_of_an_absent_digest_is_not_found(store: Store) -> None:
    missing = blob(b"never stored").digest
    with pytest.raises(NotFound):
        store.get_blob(missing.sha256)
    assert store.blob_digest(missing.sha256) is None


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "0" * 65])
def test_malformed_sha256_is_invalid_argument(store: Store, bad: str) -> None:
    with pytest.raises(InvalidArgument, match="sha256"):
        store.get_blob(bad)
    with pytest.raises(InvalidArgument):
        store.blob_digest(bad)


def test_get_blob_detects_bytes_corrupted_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with open_store(path) as store:
        digest = store.put_blob(b"good kernel")
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(digest.sha256.encode(), b"evil kernel", db=env.open_db(b"blobs", txn=txn))
    env.close()
    with open_store(path) as store, pytest.raises(DataLoss, match="corrupt"):
        store.get_blob(digest.sha256)
