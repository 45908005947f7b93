"""BlobCache: verified on every read, atomic on every write, shareable by processes."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kreg.cache import BlobCache
from kreg.errors import DataLoss, InvalidArgument
from kreg.model import Digest

BLOB = b"\x7fELF cubin bytes " * 1000


def digest_of(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def _stray_files(cache: BlobCache, digest: Digest) -> list[str]:
    """Everything in the blob's directory except the blob itself."""
    directory = cache.path(digest).parent
    return (
        sorted(p.name for p in directory.iterdir() if p.name != digest.sha256) if directory.exists() else []
    )


@pytest.fixture
def cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache")


# ------------------------------------------------------------------ complete blobs


def test_put_then_get_returns_the_bytes(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    assert cache.get(digest) is None and not cache.has(digest)
    path = cache.put(digest, BLOB)
    assert cache.get(digest) == BLOB
    assert cache.has(digest)
    assert path == cache.path(digest)
    assert _stray_files(cache, digest) == []


def test_layout_is_sha256_with_two_character_fan_out(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    assert cache.path(digest) == cache.root / "sha256" / digest.sha256[:2] / digest.sha256


def test_an_empty_blob_is_a_blob(cache: BlobCache) -> None:
    digest = digest_of(b"")
    cache.put(digest, b"")
    assert cache.get(digest) == b""


def test_put_of_the_same_blob_twice_is_harmless(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    cache.put(digest, BLOB)
    cache.put(digest, BLOB)
    assert cache.get(digest) == BLOB and _stray_files(cache, digest) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: bytes([data[0] ^ 1]) + data[1:],  # same size, one bit flipped
        lambda data: data[:-7],  # truncated
        lambda data: data + b"junk",  # appended to
        lambda data: b"",  # emptied
    ],
    ids=["bit-flip", "truncated", "extended", "empty"],
)
def test_a_corrupt_file_is_a_miss_and_is_evicted(
    cache: BlobCache, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes]
) -> None:
    digest = digest_of(BLOB)
    path = cache.put(digest, BLOB)
    path.write_bytes(damage(BLOB))
    with caplog.at_level(logging.WARNING, logger="kreg.cache"):
        assert cache.get(digest) is None
    assert not path.exists()
    assert any("corrupt" in r.getMessage() and digest.sha256 in r.getMessage() for r in caplog.records)
    # The next put restores it.
    cache.put(digest, BLOB)
    assert cache.get(digest) == BLOB


def test_put_refuses_bytes_that_do_not_match_and_writes_nothing(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    with pytest.raises(DataLoss, match="do not match"):
        cache.put(digest, BLOB[:-1])
    with pytest.raises(DataLoss, match="sha256"):
        cache.put(digest, BLOB[::-1])
    assert not cache.path(digest).exists()
    assert _stray_files(cache, digest) == []


def test_put_that_fails_midway_leaves_no_final_or_temp_file(
    cache: BlobCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = digest_of(BLOB)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.put(digest, BLOB)
    assert not cache.path(digest).exists()
    assert _stray_files(cache, digest) == []


@pytest.mark.parametrize("sha", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, "a" * 63 + "/", ""])
def test_a_malformed_digest_is_rejected_before_touching_the_disk(cache: BlobCache, sha: str) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        cache.path(Digest(sha, 1))
    assert repr(sha) in str(excinfo.value)
    with pytest.raises(InvalidArgument):
        cache.put(Digest(sha, 1), b"x")
    assert not cache.root.exists()


def test_a_negative_size_is_rejected(cache: BlobCache) -> None:
    with pytest.raises(InvalidArgument, match="-1"):
        cache.get(Digest("a" * 64, -1))


def test_evict_removes_the_blob(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    cache.put(digest, BLOB)
    assert cache.evict(digest) is True
    assert cache.get(digest) is None
    assert cache.evict(digest) is False


# ------------------------------------------------------------------ resumable downloads


def _append(cache: BlobCache, digest: Digest, chunk: bytes) -> None:
    with open(cache.partial_path(digest), "ab") as f:
        f.write(chunk)


def test_a_download_resumes_from_the_partial_size_and_commits(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    assert cache.partial_size(digest) == 0
    _append(cache, digest, BLOB[:5000])
    assert cache.partial_size(digest) == 5000  # the stream dropped here; resume at 5000
    _append(cache, digest, BLOB[cache.partial_size(digest) :])
    assert cache.commit_partial(digest) == BLOB
    assert cache.get(digest) == BLOB
    assert not cache.partial_path(digest).exists()
    assert _stray_files(cache, digest) == []


def test_partial_path_is_in_the_blob_directory_and_never_the_final_name(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    partial = cache.partial_path(digest)
    assert partial.parent == cache.path(digest).parent and partial.parent.is_dir()
    assert partial.name.startswith(digest.sha256) and partial.name.endswith(".partial")
    assert partial != cache.path(digest)


def test_a_partial_that_does_not_verify_is_discarded(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    _append(cache, digest, BLOB[:100] + b"X" + BLOB[101:])
    with pytest.raises(DataLoss, match="partial discarded"):
        cache.commit_partial(digest)
    assert not cache.path(digest).exists()
    assert not cache.partial_path(digest).exists()
    assert cache.partial_size(digest) == 0  # the retry starts over


def test_an_incomplete_partial_does_not_commit(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    _append(cache, digest, BLOB[:10])
    with pytest.raises(DataLoss, match=f"size 10 != expected {len(BLOB)}"):
        cache.commit_partial(digest)
    assert not cache.path(digest).exists()


def test_a_partial_longer_than_the_blob_restarts_from_zero(cache: BlobCache) -> None:
    digest = digest_of(BLOB)
    with open(cache.partial_path(digest), "ab") as f:  # the caller's handle stays usable
        f.write(BLOB + b"extra")
        f.flush()
        assert cache.partial_size(digest) == 0
        f.write(BLOB)
    assert cache.commit_partial(digest) == BLOB


def test_commit_without_a_partial_works_only_for_an_empty_blob(cache: BlobCache) -> None:
    assert cache.commit_partial(digest_of(b"")) == b""
    with pytest.raises(DataLoss):
        cache.commit_partial(digest_of(BLOB))


def test_sweep_removes_only_stale_partials(cache: BlobCache) -> None:
    old, fresh = digest_of(b"old"), digest_of(b"fresh")
    _append(cache, old, b"ol")
    _append(cache, fresh, b"fr")
    cache.put(digest_of(BLOB), BLOB)
    a_day_ago = time.time() - 2 * 24 * 3600
    os.utime(cache.partial_path(old), (a_day_ago, a_day_ago))
    assert cache.sweep_partials(older_than_s=24 * 3600) == 1
    assert not cache.partial_path(old).exists() and cache.partial_path(fresh).exists()
    assert cache.get(digest_of(BLOB)) == BLOB


# ------------------------------------------------------------------ several processes


def _put_many(root: str, data: bytes, rounds: int, start: multiprocessing.synchronize.Event) -> None:
    cache = BlobCache(Path(root))
    digest = digest_of(data)
    start.wait()
    for _ in range(rounds):
        cache.put(digest, data)
        got = cache.get(digest)
        assert got is None or got == data  # never a torn read


def _download_in_chunks(root: str, data: bytes, chunk: int, start: multiprocessing.synchronize.Event) -> None:
    cache = BlobCache(Path(root))
    digest = digest_of(data)
    start.wait()
    with open(cache.partial_path(digest), "ab") as out:
        for offset in range(cache.partial_size(digest), len(data), chunk):
            out.write(data[offset : offset + chunk])
            out.flush()
            time.sleep(0.001)  # let the other writers interleave
    assert cache.commit_partial(digest) == data


@pytest.mark.parametrize("worker", [_put_many, _download_in_chunks], ids=["put", "partial-download"])
def test_processes_fetching_the_same_blob_do_not_corrupt_each_other(
    cache: BlobCache, worker: Callable[..., None]
) -> None:
    data = os.urandom(256 * 1024)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    arg = 40 if worker is _put_many else 16 * 1024
    procs = [ctx.Process(target=worker, args=(str(cache.root), data, arg, start)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert cache.get(digest_of(data)) == data
    assert _stray_files(cache, digest_of(data)) == []
