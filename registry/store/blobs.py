"""Content-addressed blobs: sha256 hex -> bytes, verified against the digest on write and on read.

A blob is only ever stored under the hash of its bytes, and re-hashed whenever it is read:
a flipped bit on disk becomes DATA_LOSS at the registry instead of a wrong kernel on a host.
"""

from __future__ import annotations

import hashlib
import re

from kreg.errors import DataLoss, InvalidArgument, NotFound, ResourceExhausted
from kreg.model import Digest

from registry.store.env import Txn

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_sha256(sha256: str) -> bytes:
    """The storage key for a sha256 hex digest; InvalidArgument unless it is 64 lowercase hex."""
    if not _SHA256_HEX.fullmatch(sha256):
        raise InvalidArgument(f"sha256: want 64 lowercase hex characters, got {sha256[:80]!r}")
    return sha256.encode()


def digest_of(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def put_blob(txn: Txn, data: bytes, expected: Digest | None, *, max_bytes: int) -> Digest:
    """Store `data` under its sha256 and return its digest; storing it again changes nothing.

    Raises ResourceExhausted above `max_bytes` and DataLoss when `data` does not match the
    digest the caller claims for it.
    """
    if len(data) > max_bytes:
        raise ResourceExhausted(f"blob of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    if expected is not None:
        check_sha256(expected.sha256)
    digest = digest_of(data)
    if expected is not None and digest != expected:
        raise DataLoss(f"blob bytes do not match their claimed digest: claimed {expected}, received {digest}")
    key = digest.sha256.encode()
    if txn.size(txn.dbs.blobs, key) is None:
        txn.put(txn.dbs.blobs, key, data)
    return digest


def get_blob(txn: Txn, sha256: str) -> bytes:
    """The blob's bytes, re-hashed: NotFound when absent, DataLoss when they no longer match."""
    data = txn.get(txn.dbs.blobs, check_sha256(sha256))
    if data is None:
        raise NotFound(f"blob sha256:{sha256} not found")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise DataLoss(f"stored blob sha256:{sha256} is corrupt: its bytes hash to {actual}")
    return data


def blob_digest(txn: Txn, sha256: str) -> Digest | None:
    """The digest of a stored blob (size from the stored value, not re-hashed), or None."""
    size = txn.size(txn.dbs.blobs, check_sha256(sha256))
    return None if size is None else Digest(sha256, size)


def check(txn: Txn) -> list[str]:
    """Stored blobs that do not hash to their names (what a torn or corrupted write leaves)."""
    problems = []
    for key, data in txn.scan(txn.dbs.blobs):
        if hashlib.sha256(data).hexdigest() != key.decode(errors="replace"):
            problems.append(f"blob {key[:16]!r}: its bytes do not hash to its name")
    return problems
