"""Artifacts (artifact_id -> record) and the index of variants per KernelKey.

An artifact's id is the hash of its content, so publishing the same kernel twice is a no-op
that returns what was stored first (a retracted artifact stays retracted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

from kreg import serde
from kreg.errors import InvalidArgument, NotFound
from kreg.keys import KernelKey
from kreg.model import Artifact, ArtifactState

from registry.store.blobs import blob_digest
from registry.store.env import Txn
from registry.store.lru import Lru
from registry.store.paging import clamp_page_size, scan_start, take_page

_ARTIFACT_ID = re.compile(r"[0-9a-f]{64}")

# Decoded artifacts by their stored bytes. The same bytes always decode to the same frozen
# artifact, so the read path skips the JSON decode (most of a GetManifest's cost) and can
# never see a stale one: a rewritten record (a retraction) has other bytes.
_DECODED: Lru[bytes, Artifact] = Lru(4096)


def _decode(raw: bytes | memoryview) -> Artifact:
    data = bytes(raw)
    artifact = _DECODED.get(data)
    if artifact is None:
        artifact = serde.loads(Artifact, data)
        _DECODED.put(data, artifact)
    return artifact


def add_artifact(txn: Txn, artifact: Artifact, now: float) -> Artifact:
    """Store `artifact` under its content id; every blob it references must be stored already."""
    problems = []
    for digest in dict.fromkeys(artifact.digests()):
        stored = blob_digest(txn, digest.sha256)
        if stored is None:
            problems.append(f"{digest} (missing)")
        elif stored != digest:
            problems.append(f"{digest} (stored blob has {stored.size_bytes} bytes)")
    if problems:
        raise InvalidArgument(f"artifact references blobs the registry does not have: {', '.join(problems)}")
    artifact_id = serde.artifact_content_id(artifact)
    existing = _load(txn, artifact_id)
    if existing is not None:
        return existing
    stored_artifact = replace(
        artifact,
        artifact_id=artifact_id,
        state=ArtifactState.ACTIVE,
        retract_reason="",
        published_at=now,
        retracted_at=0.0,
    )
    _save(txn, stored_artifact)
    txn.put(txn.dbs.variants, _variant_key(artifact.key, artifact_id), b"")
    return stored_artifact


def get_artifact(txn: Txn, artifact_id: str) -> Artifact:
    artifact = _load(txn, artifact_id)
    if artifact is None:
        raise NotFound(f"artifact {artifact_id!r} not found")
    return artifact


def variants(txn: Txn, key: KernelKey) -> list[Artifact]:
    """Every artifact published for `key`, retracted ones included, oldest first."""
    prefix = key.key_id.encode()
    found = [
        get_artifact(txn, index_key[len(prefix) :].decode())
        for index_key, _ in txn.scan(txn.dbs.variants, prefix=prefix)
    ]
    return sorted(found, key=lambda a: (a.published_at, a.artifact_id))


def retract(txn: Txn, artifact_id: str, reason: str, now: float) -> Artifact:
    """Quarantine an artifact: it stays listed but is never served. The first reason and
    time are kept, so retracting again leaves the audit trail as it was."""
    if not reason:
        raise InvalidArgument("reason: say why the kernel is retracted")
    artifact = get_artifact(txn, artifact_id)
    if artifact.state is ArtifactState.RETRACTED:
        return artifact
    retracted = replace(artifact, state=ArtifactState.RETRACTED, retract_reason=reason, retracted_at=now)
    _save(txn, retracted)
    return retracted


def list_artifacts(
    txn: Txn, platform: str, arch: str, model: str, operator_name: str, page_size: int, page_token: str
) -> tuple[list[Artifact], str]:
    """Artifacts in id order whose key matches every non-empty filter."""
    size = clamp_page_size(page_size)

    def matches() -> Iterator[tuple[str, Artifact]]:
        for raw_id, raw in txn.scan(txn.dbs.artifacts, start=scan_start(page_token)):
            artifact = _decode(raw)
            key = artifact.key
            if (
                platform in ("", key.platform)
                and arch in ("", key.arch)
                and model in ("", key.model)
                and operator_name in ("", key.operator.name)
            ):
                yield raw_id.decode(), artifact

    return take_page(matches(), size)


def _variant_key(key: KernelKey, artifact_id: str) -> bytes:
    return (key.key_id + artifact_id).encode()


def _load(txn: Txn, artifact_id: str) -> Artifact | None:
    if not _ARTIFACT_ID.fullmatch(artifact_id):
        return None
    raw = txn.get(txn.dbs.artifacts, artifact_id.encode())
    return None if raw is None else _decode(raw)


def _save(txn: Txn, artifact: Artifact) -> None:
    txn.put(txn.dbs.artifacts, artifact.artifact_id.encode(), serde.dumps(artifact))


def check(txn: Txn) -> list[str]:
    """Artifacts that are not what their id says, lack a blob they name or their variant
    index entry; index entries without an artifact."""
    problems = []
    for raw_id, raw in txn.scan(txn.dbs.artifacts):
        artifact_id = raw_id.decode(errors="replace")
        try:
            artifact = _decode(raw)
        except Exception as e:  # noqa: BLE001 - any decode failure is the finding
            problems.append(f"artifact {artifact_id[:12]}: does not decode ({type(e).__name__})")
            continue
        if artifact.artifact_id != artifact_id or serde.artifact_content_id(artifact) != artifact_id:
            problems.append(f"artifact {artifact_id[:12]}: its content does not hash to its id")
        for digest in artifact.digests():
            stored = blob_digest(txn, digest.sha256)
            if stored != digest:
                problems.append(f"artifact {artifact_id[:12]}: blob {digest.sha256[:12]} is {'missing' if stored is None else 'of another size'}")
        if txn.get(txn.dbs.variants, _variant_key(artifact.key, artifact_id)) is None:
            problems.append(f"artifact {artifact_id[:12]}: missing from the variant index")
    for index_key, _ in txn.scan(txn.dbs.variants):
        artifact_id = index_key[-64:].decode(errors="replace")
        if txn.size(txn.dbs.artifacts, index_key[-64:]) is None:
            problems.append(f"variant index entry {index_key[:40]!r}: artifact {artifact_id[:12]} is missing")
    return problems
