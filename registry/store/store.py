"""`Store`: the registry's durable state behind one method per transaction.

Every method runs exactly one LMDB transaction, so each call is all or nothing: a publish
that completes a job stores the blobs, the artifact and the job's new state together, or
none of them. Callers pass `now` (unix seconds) so the clock stays outside, and tests own it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from kreg.errors import InvalidArgument
from kreg.keys import ANY_MODEL, KernelKey
from kreg.model import (
    Artifact,
    BlobData,
    CandidateRecord,
    Digest,
    Job,
    JobState,
    Toolchain,
    TuningShape,
    WorkerInfo,
)

from registry.store import blobs, jobs, kernels
from registry.store.env import StoreEnv, Txn
from registry.store.until_write import UntilWrite


@dataclass(frozen=True)
class JobCompletion:
    """The leased job a publish completes, and its candidate log."""

    job_id: str
    lease_id: str
    candidates: tuple[CandidateRecord, ...] = ()


@dataclass(frozen=True)
class KeyState:
    """What the read path resolves a key from."""

    variants: tuple[Artifact, ...]
    job: Job | None



@dataclass(frozen=True)
class StoreStats:
    map_size_bytes: int
    used_bytes: int
    blobs: int
    artifacts: int
    jobs_by_state: dict[str, int]


class Store:
    """Blobs, artifacts and jobs in one LMDB environment; open one per process with `open`."""

    def __init__(self, env: StoreEnv, *, max_blob_bytes: int, max_attempts: int) -> None:
        self._env = env
        self._max_blob_bytes = max_blob_bytes
        self._max_attempts = max_attempts
        self._lookups: UntilWrite[KernelKey, KeyState] = UntilWrite(lambda: self._env.generation)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        map_size: int = 64 << 20,
        sync: bool = True,
        max_blob_bytes: int = 256 << 20,
        max_attempts: int = 3,
    ) -> Store:
        """Open (or create) the store at `path`. sync=False trades durability of the last
        writes on power loss for speed; it is meant for tests."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts: want at least 1, got {max_attempts}")
        return cls(
            StoreEnv(Path(path), map_size=map_size, sync=sync),
            max_blob_bytes=max_blob_bytes,
            max_attempts=max_attempts,
        )

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> StoreStats:
        map_size, used = self._env.info()

        def count(txn: Txn) -> StoreStats:
            # Only the state is needed: decode it alone rather than whole Job records.
            states = Counter(json.loads(raw)["state"] for _, raw in txn.scan(txn.dbs.jobs))
            return StoreStats(
                map_size_bytes=map_size,
                used_bytes=used,
                blobs=txn.entries(txn.dbs.blobs),
                artifacts=txn.entries(txn.dbs.artifacts),
                jobs_by_state={state.name: states.get(state.name, 0) for state in JobState},
            )

        return self._env.read(count)

    # ------------------------------------------------------------ blobs

    def put_blob(self, data: bytes, expected: Digest | None = None) -> Digest:
        return self._env.write(
            lambda txn: blobs.put_blob(txn, data, expected, max_bytes=self._max_blob_bytes)
        )

    def get_blob(self, sha256: str) -> bytes:
        return self._env.read(lambda txn: blobs.get_blob(txn, sha256))

    def blob_digest(self, sha256: str) -> Digest | None:
        return self._env.read(lambda txn: blobs.blob_digest(txn, sha256))

    # ------------------------------------------------------------ artifacts

    def publish(
        self,
        artifact: Artifact,
        blob_data: Sequence[BlobData],
        *,
        now: float,
        job: JobCompletion | None = None,
    ) -> Artifact:
        """Store the blobs (each verified), the artifact, and complete `job` if given — all or nothing."""

        def publish_in(txn: Txn) -> Artifact:
            for blob in blob_data:
                blobs.put_blob(txn, blob.data, blob.digest, max_bytes=self._max_blob_bytes)
            stored = kernels.add_artifact(txn, artifact, now)
            if job is not None:
                queued = jobs.get_job(txn, job.job_id)
                if queued.key != artifact.key:
                    raise InvalidArgument(
                        f"artifact.key {artifact.key} differs from job {job.job_id}'s key {queued.key}"
                    )
                # A job that requires a toolchain exists to produce a binary loadable under it.
                if queued.toolchain is not None and (
                    artifact.toolchain != queued.toolchain or not artifact.has_binaries
                ):
                    raise InvalidArgument(
                        f"job {job.job_id} requires binaries for {queued.toolchain}; "
                        f"the artifact has {'binaries' if artifact.has_binaries else 'no binaries'} "
                        f"for {artifact.toolchain}"
                    )
                jobs.complete(txn, job.job_id, job.lease_id, stored.artifact_id, job.candidates, now)
            return stored

        return self._env.write(publish_in)

    def variants(self, key: KernelKey) -> list[Artifact]:
        return self._env.read(lambda txn: kernels.variants(txn, key))

    @property
    def generation(self) -> int:
        """Write transactions committed so far: a cache of reads is current while it stands still."""
        return self._env.generation

    def lookup(self, keys: Sequence[KernelKey]) -> list[KeyState]:
        """What resolving each key needs: its variants followed by those published for any
        model ('*'), and its latest job (without a toolchain requirement). Keys read since
        the last write come from memory (serving hosts ask for the same keys all day, and
        this process makes every write); the rest in one read transaction."""
        since = self._lookups.since()
        known = {key: state for key in keys if (state := self._lookups.get(key)) is not None}
        missing = [key for key in keys if key not in known]

        def read(txn: Txn) -> dict[KernelKey, KeyState]:
            found = {}
            for key in missing:
                variants = kernels.variants(txn, key)
                if key.model != ANY_MODEL:
                    variants += kernels.variants(txn, key.with_model(ANY_MODEL))
                found[key] = KeyState(tuple(variants), jobs.latest_job(txn, key))
            return found

        if missing:
            for key, state in self._env.read(read).items():
                known[key] = state
                # Not kept if a publish committed between `since` and this read.
                self._lookups.put(key, state, since)
        return [known[key] for key in keys]

    def check(self) -> list[str]:
        """Every inconsistency in the store, in one read transaction (empty: consistent):
        blobs that do not hash to their names, artifacts missing blobs or index entries,
        queue and lease entries out of step with their jobs."""
        return self._env.read(lambda txn: blobs.check(txn) + kernels.check(txn) + jobs.check(txn))

    def get_artifact(self, artifact_id: str) -> Artifact:
        return self._env.read(lambda txn: kernels.get_artifact(txn, artifact_id))

    def retract(self, artifact_id: str, reason: str, *, now: float) -> Artifact:
        """Retract; `now` becomes the artifact's retracted_at (kept from the first retraction)."""
        return self._env.write(lambda txn: kernels.retract(txn, artifact_id, reason, now))

    def list_artifacts(
        self,
        *,
        platform: str = "",
        arch: str = "",
        model: str = "",
        operator_name: str = "",
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[Artifact], str]:
        return self._env.read(
            lambda txn: kernels.list_artifacts(
                txn, platform, arch, model, operator_name, page_size, page_token
            )
        )

    # ------------------------------------------------------------ jobs

    def enqueue(
        self,
        key: KernelKey,
        *,
        priority: int = 0,
        tuning_shapes: Sequence[TuningShape] = (),
        force: bool = False,
        toolchain: Toolchain | None = None,
        now: float,
    ) -> tuple[Job, bool]:
        """Queue generation for `key`; with `toolchain`, a separate job that only a worker with
        exactly that toolchain leases (see jobs.enqueue)."""
        return self._env.write(
            lambda txn: jobs.enqueue(
                txn, key, priority, tuning_shapes, force, self._max_attempts, now, toolchain
            )
        )

    def latest_job(self, key: KernelKey, toolchain: Toolchain | None = None) -> Job | None:
        """The latest job for (key, toolchain); None = the job with no toolchain requirement."""
        return self._env.read(lambda txn: jobs.latest_job(txn, key, toolchain))

    def get_job(self, job_id: str) -> Job:
        return self._env.read(lambda txn: jobs.get_job(txn, job_id))

    def job_candidates(self, job_id: str) -> list[CandidateRecord]:
        return self._env.read(lambda txn: jobs.candidates(txn, job_id))

    def list_jobs(
        self, *, state: JobState | None = None, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[Job], str]:
        return self._env.read(lambda txn: jobs.list_jobs(txn, state, page_size, page_token))

    def lease(self, worker: WorkerInfo, *, lease_seconds: float, now: float) -> Job | None:
        return self._env.write(lambda txn: jobs.lease(txn, worker, lease_seconds, now))

    def renew(
        self, job_id: str, lease_id: str, *, lease_seconds: float, progress: str = "", now: float
    ) -> Job:
        return self._env.write(lambda txn: jobs.renew(txn, job_id, lease_id, lease_seconds, progress, now))

    def fail(
        self,
        job_id: str,
        lease_id: str,
        *,
        reason: str,
        retryable: bool,
        candidates: Sequence[CandidateRecord] = (),
        now: float,
    ) -> Job:
        return self._env.write(
            lambda txn: jobs.fail(txn, job_id, lease_id, reason, retryable, candidates, now)
        )

    def reap_expired(self, *, now: float) -> list[Job]:
        # Looked for in a read first: the reaper sweeps every second, and a write transaction
        # commits with a disk sync even when it changes nothing (a tail-latency spike on reads).
        if not self._env.read(lambda txn: jobs.expired_leases(txn, now)):
            return []
        return self._env.write(lambda txn: jobs.reap_expired(txn, now))
