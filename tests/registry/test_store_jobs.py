"""The job queue: one active job per key, priority order, capability leases, expiry, retries."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kreg.errors import FailedPrecondition, InvalidArgument, NotFound
from kreg.keys import KernelKey
from kreg.model import CandidateRecord, CandidateStatus, Job, JobState, Toolchain, TuningShape, WorkerInfo
from store_helpers import KEY, T0, artifact, open_store, worker

from registry.store import JobCompletion, Store

AMD_KEY = KernelKey.parse("amd/gfx942/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}")
H100 = worker("nvidia/sm_90")
LEASE_S = 30.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as s:
        yield s


def _lease(store: Store, w: WorkerInfo = H100, *, now: float, lease_seconds: float = LEASE_S) -> Job:
    """Lease a job that the test knows is there."""
    job = store.lease(w, lease_seconds=lease_seconds, now=now)
    assert job is not None, "expected a job to lease"
    return job


def _key(i: int) -> KernelKey:
    return KernelKey.parse(f"nvidia/sm_90/dlrm-v2/op_{i}@1")


def test_enqueue_creates_a_queued_job_that_is_the_keys_latest(store: Store) -> None:
    job, created = store.enqueue(KEY, priority=2, tuning_shapes=(TuningShape({"B": 64}),), now=T0)
    assert created
    assert (job.state, job.priority, job.attempts, job.max_attempts, job.created_at) == (
        JobState.QUEUED,
        2,
        0,
        3,
        T0,
    )
    assert store.latest_job(KEY) == job == store.get_job(job.job_id)
    assert store.latest_job(AMD_KEY) is None


def test_duplicate_enqueue_merges_into_the_active_job_and_raises_its_priority(store: Store) -> None:
    low, _ = store.enqueue(_key(1), priority=1, now=T0)
    other, _ = store.enqueue(_key(2), priority=5, now=T0 + 1)
    merged, created = store.enqueue(_key(1), priority=9, now=T0 + 2)
    assert not created
    assert merged.job_id == low.job_id and merged.priority == 9
    assert store.enqueue(_key(1), priority=0, now=T0 + 3)[0].priority == 9, "a lower priority never lowers it"
    leased = _lease(store, now=T0 + 4)
    assert leased is not None and leased.job_id == low.job_id, (
        "the raised priority moved it ahead in the queue"
    )
    assert _lease(store, now=T0 + 4).job_id == other.job_id
    assert store.lease(H100, lease_seconds=LEASE_S, now=T0 + 4) is None, (
        "merging left no duplicate in the queue"
    )


def test_duplicate_enqueue_merges_into_a_leased_job(store: Store) -> None:
    job, _ = store.enqueue(KEY, now=T0)
    store.lease(H100, lease_seconds=LEASE_S, now=T0)
    merged, created = store.enqueue(KEY, priority=3, now=T0 + 1)
    assert not created and merged.job_id == job.job_id and merged.state is JobState.LEASED


def test_a_queued_job_without_tuning_shapes_takes_those_of_a_duplicate_request(store: Store) -> None:
    store.enqueue(KEY, now=T0)
    shapes = (TuningShape({"B": 512, "L": 64}, weight=2.0),)
    merged, _ = store.enqueue(KEY, tuning_shapes=shapes, now=T0 + 1)
    assert merged.tuning_shapes == shapes
    assert store.get_job(merged.job_id).tuning_shapes == shapes


def test_enqueue_after_success_needs_force_while_the_kernel_is_served(store: Store) -> None:
    job, _ = store.enqueue(KEY, now=T0)
    leased = _lease(store, now=T0)
    art, blobs = artifact()
    stored = store.publish(art, blobs, now=T0 + 1, job=JobCompletion(job.job_id, leased.lease_id))
    same, created = store.enqueue(KEY, now=T0 + 2)
    assert not created and same.job_id == job.job_id and same.state is JobState.SUCCEEDED
    forced, created = store.enqueue(KEY, force=True, now=T0 + 3)
    assert created and forced.job_id != job.job_id and store.latest_job(KEY) == forced
    # A retracted kernel is not served: regeneration needs no force.
    store.lease(H100, lease_seconds=LEASE_S, now=T0 + 4)
    store.fail(forced.job_id, store.get_job(forced.job_id).lease_id, reason="x", retryable=False, now=T0 + 5)
    store.retract(stored.artifact_id, "bad", now=T0 + 6)
    assert store.enqueue(KEY, now=T0 + 7)[1]


def test_enqueue_after_failure_creates_a_new_job(store: Store) -> None:
    job, _ = store.enqueue(KEY, now=T0)
    leased = _lease(store, now=T0)
    store.fail(job.job_id, leased.lease_id, reason="no config compiles", retryable=False, now=T0 + 1)
    again, created = store.enqueue(KEY, now=T0 + 2)
    assert created and again.job_id != job.job_id


def test_enqueue_rejects_a_priority_outside_64_bits(store: Store) -> None:
    with pytest.raises(InvalidArgument, match="priority"):
        store.enqueue(KEY, priority=1 << 63, now=T0)


def test_lease_only_hands_out_keys_the_worker_can_serve(store: Store) -> None:
    amd_job, _ = store.enqueue(AMD_KEY, priority=10, now=T0)
    nv_job, _ = store.enqueue(KEY, now=T0)
    assert store.lease(worker("nvidia/sm_80"), lease_seconds=LEASE_S, now=T0) is None, "exact arch only"
    assert _lease(store, now=T0).job_id == nv_job.job_id
    assert store.lease(worker("amd/gfx90a", "mtia/*"), lease_seconds=LEASE_S, now=T0) is None
    assert _lease(store, worker("amd/*"), now=T0).job_id == amd_job.job_id


def test_lease_wildcard_worker_serves_any_platform(store: Store) -> None:
    store.enqueue(AMD_KEY, now=T0)
    store.enqueue(KEY, now=T0 + 1)
    anything = worker("*/*")
    leased = [store.lease(anything, lease_seconds=LEASE_S, now=T0 + 2) for _ in range(3)]
    assert [j.key if j else None for j in leased] == [AMD_KEY, KEY, None]


def test_lease_sets_lease_fields_and_counts_an_attempt(store: Store) -> None:
    store.enqueue(KEY, now=T0)
    leased = _lease(store, worker("nvidia/sm_90", worker_id="gpu-7"), now=T0 + 1)
    assert (leased.state, leased.worker_id, leased.attempts) == (JobState.LEASED, "gpu-7", 1)
    assert leased.lease_expires_at == T0 + 1 + LEASE_S and len(leased.lease_id) == 32
    assert store.get_job(leased.job_id) == leased


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 3)), min_size=1, max_size=12))
def test_lease_order_is_highest_priority_then_oldest(requests: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "store") as store:
        created = []
        for i, (priority, age_step) in enumerate(requests):
            job, _ = store.enqueue(_key(i), priority=priority, now=T0 + i * 10 + age_step)
            created.append(job)
        leased = [_lease(store, now=T0 + 1000).job_id for _ in created]
        assert store.lease(H100, lease_seconds=LEASE_S, now=T0 + 1000) is None
        expected = sorted(created, key=lambda j: (-j.priority, j.created_at))
        assert leased == [j.job_id for j in expected]


def test_expired_lease_is_requeued_then_failed_at_the_attempt_limit(tmp_path: Path) -> None:
    with open_store(tmp_path / "store", max_attempts=2) as store:
        job, _ = store.enqueue(KEY, now=T0)
        _lease(store, worker("nvidia/sm_90", worker_id="w1"), lease_seconds=10, now=T0)
        assert store.reap_expired(now=T0 + 9.9) == []
        [requeued] = store.reap_expired(now=T0 + 10)
        assert requeued.state is JobState.QUEUED and requeued.last_error == "lease expired (worker w1)"
        assert requeued.lease_id == ""
        second = _lease(store, worker("nvidia/sm_90", worker_id="w2"), lease_seconds=10, now=T0 + 20)
        assert second.job_id == job.job_id and second.attempts == 2
        # lease() reaps on its own before looking at the queue.
        assert store.lease(H100, lease_seconds=10, now=T0 + 31) is None
        failed = store.get_job(job.job_id)
        assert failed.state is JobState.FAILED
        assert (
            failed.last_error.startswith("lease expired (worker w2)")
            and "2 of 2 attempts" in failed.last_error
        )
        assert store.reap_expired(now=T0 + 1000) == []


def test_renew_extends_a_live_lease_and_records_progress(store: Store) -> None:
    store.enqueue(KEY, now=T0)
    leased = _lease(store, lease_seconds=10, now=T0)
    renewed = store.renew(
        leased.job_id, leased.lease_id, lease_seconds=10, progress="12/64 candidates", now=T0 + 8
    )
    assert renewed.lease_expires_at == T0 + 18 and renewed.progress == "12/64 candidates"
    assert (
        store.renew(leased.job_id, leased.lease_id, lease_seconds=10, now=T0 + 9).progress
        == "12/64 candidates"
    )
    assert store.reap_expired(now=T0 + 15) == [], "the old expiry is no longer indexed"
    assert [j.job_id for j in store.reap_expired(now=T0 + 19)] == [leased.job_id]


def test_renew_with_a_wrong_or_expired_lease_is_failed_precondition(store: Store) -> None:
    store.enqueue(KEY, now=T0)
    leased = _lease(store, lease_seconds=10, now=T0)
    with pytest.raises(FailedPrecondition, match="another lease"):
        store.renew(leased.job_id, "f" * 32, lease_seconds=10, now=T0 + 1)
    with pytest.raises(FailedPrecondition, match="expired"):
        store.renew(leased.job_id, leased.lease_id, lease_seconds=10, now=T0 + 10)
    store.reap_expired(now=T0 + 10)
    with pytest.raises(FailedPrecondition, match="QUEUED, not LEASED"):
        store.renew(leased.job_id, leased.lease_id, lease_seconds=10, now=T0 + 11)
    with pytest.raises(NotFound):
        store.renew("0" * 32, leased.lease_id, lease_seconds=10, now=T0)


def test_retryable_failure_requeues_until_attempts_run_out(tmp_path: Path) -> None:
    with open_store(tmp_path / "store", max_attempts=2) as store:
        job, _ = store.enqueue(KEY, now=T0)
        first = _lease(store, now=T0)
        retried = store.fail(job.job_id, first.lease_id, reason="device lost", retryable=True, now=T0 + 1)
        assert retried.state is JobState.QUEUED and retried.last_error == "device lost"
        second = _lease(store, now=T0 + 2)
        failed = store.fail(
            job.job_id, second.lease_id, reason="device lost again", retryable=True, now=T0 + 3
        )
        assert failed.state is JobState.FAILED and failed.last_error == "device lost again"
        assert store.lease(H100, lease_seconds=LEASE_S, now=T0 + 4) is None


def test_non_retryable_failure_is_final_and_old_lease_cannot_fail_again(store: Store) -> None:
    job, _ = store.enqueue(KEY, now=T0)
    leased = _lease(store, now=T0)
    failed = store.fail(
        job.job_id, leased.lease_id, reason="operator unsupported", retryable=False, now=T0 + 1
    )
    assert failed.state is JobState.FAILED and failed.attempts == 1
    with pytest.raises(FailedPrecondition):
        store.fail(job.job_id, leased.lease_id, reason="again", retryable=False, now=T0 + 2)


def test_candidate_logs_of_every_attempt_are_kept(store: Store) -> None:
    job, _ = store.enqueue(KEY, now=T0)
    first = [CandidateRecord("BLOCK=64", CandidateStatus.COMPILE_ERROR, reason="ptxas: too many registers")]
    second = [CandidateRecord("BLOCK=32", CandidateStatus.WRONG_RESULT, max_relative_error=0.5)]
    leased = _lease(store, now=T0)
    store.fail(job.job_id, leased.lease_id, reason="x", retryable=True, candidates=first, now=T0)
    leased = _lease(store, now=T0)
    store.fail(job.job_id, leased.lease_id, reason="y", retryable=False, candidates=second, now=T0)
    assert store.job_candidates(job.job_id) == first + second
    with pytest.raises(NotFound):
        store.job_candidates("0" * 32)


def test_list_jobs_pages_in_creation_order_and_filters_by_state(store: Store) -> None:
    created = [store.enqueue(_key(i), now=T0 + i)[0] for i in range(7)]
    store.lease(H100, lease_seconds=LEASE_S, now=T0 + 10)
    ids: list[str] = []
    token = ""
    while True:
        page, token = store.list_jobs(page_size=3, page_token=token)
        ids += [j.job_id for j in page]
        if not token:
            break
    assert ids == [j.job_id for j in created]
    leased, token = store.list_jobs(state=JobState.LEASED)
    assert [j.job_id for j in leased] == [created[0].job_id] and token == ""
    assert len(store.list_jobs(state=JobState.QUEUED)[0]) == 6


@pytest.mark.parametrize("job_id", ["", "nope", "0" * 32])
def test_get_job_of_an_unknown_id_is_not_found(store: Store, job_id: str) -> None:
    with pytest.raises(NotFound):
        store.get_job(job_id)


def test_lease_and_renew_reject_non_positive_durations(store: Store) -> None:
    store.enqueue(KEY, now=T0)
    with pytest.raises(InvalidArgument, match="lease_seconds"):
        store.lease(H100, lease_seconds=0, now=T0)
    leased = _lease(store, now=T0)
    with pytest.raises(InvalidArgument, match="lease_seconds"):
        store.renew(leased.job_id, leased.lease_id, lease_seconds=-1, now=T0)


def test_stats_count_jobs_by_state(store: Store) -> None:
    for i in range(3):
        store.enqueue(_key(i), now=T0)
    store.lease(H100, lease_seconds=LEASE_S, now=T0)
    assert store.stats().jobs_by_state == {"QUEUED": 2, "LEASED": 1, "SUCCEEDED": 0, "FAILED": 0}


# ------------------------------------------------------------------ toolchain requirements

TRITON_36 = Toolchain("3.6.0", "cuda")
TRITON_39 = Toolchain("3.9.0", "cuda")


def test_jobs_for_one_key_dedup_by_key_and_required_toolchain(store: Store) -> None:
    any_tc, created_any = store.enqueue(KEY, now=T0)
    tc36, created_36 = store.enqueue(KEY, toolchain=TRITON_36, now=T0 + 1)
    tc39, created_39 = store.enqueue(KEY, toolchain=TRITON_39, now=T0 + 2)
    assert created_any and created_36 and created_39
    assert len({any_tc.job_id, tc36.job_id, tc39.job_id}) == 3, "each requirement is its own job"
    assert (any_tc.toolchain, tc36.toolchain, tc39.toolchain) == (None, TRITON_36, TRITON_39)
    merged, created = store.enqueue(KEY, priority=7, toolchain=TRITON_39, now=T0 + 3)
    assert not created and merged.job_id == tc39.job_id and merged.priority == 7
    assert store.get_job(any_tc.job_id).priority == 0, "merging touched only the same-toolchain job"
    assert store.latest_job(KEY) == any_tc, "latest_job without a toolchain is the unrequired job"
    assert store.latest_job(KEY, TRITON_39) == merged
    assert store.latest_job(KEY, Toolchain("3.9.0", "hip")) is None


def test_a_toolchain_job_is_leased_only_by_a_worker_with_exactly_that_toolchain(store: Store) -> None:
    required, _ = store.enqueue(KEY, priority=9, toolchain=TRITON_39, now=T0)
    plain, _ = store.enqueue(KEY, priority=1, now=T0 + 1)
    no_toolchain = worker("nvidia/sm_90", worker_id="bare")
    on_36 = replace(worker("nvidia/sm_90", worker_id="w36"), toolchain=TRITON_36)
    on_39 = replace(worker("*/*", worker_id="w39"), toolchain=TRITON_39)
    assert _lease(store, on_36, now=T0 + 2).job_id == plain.job_id, "skips the higher-priority 3.9 job"
    assert store.lease(no_toolchain, lease_seconds=LEASE_S, now=T0 + 2) is None
    assert store.lease(on_36, lease_seconds=LEASE_S, now=T0 + 2) is None
    leased = _lease(store, on_39, now=T0 + 2)
    assert leased.job_id == required.job_id and leased.toolchain == TRITON_39
    assert store.lease(on_39, lease_seconds=LEASE_S, now=T0 + 2) is None, "the skipped job left the queue once"


def test_a_served_toolchain_job_is_not_repeated_but_other_requirements_are_queued(store: Store) -> None:
    job, _ = store.enqueue(KEY, toolchain=TRITON_39, now=T0)
    on_39 = replace(H100, toolchain=TRITON_39)
    leased = _lease(store, on_39, now=T0)
    art, blobs = artifact()
    store.publish(replace(art, toolchain=TRITON_39), blobs, now=T0 + 1, job=JobCompletion(job.job_id, leased.lease_id))
    again, created = store.enqueue(KEY, toolchain=TRITON_39, now=T0 + 2)
    assert not created and again.job_id == job.job_id and again.state is JobState.SUCCEEDED
    plain, created = store.enqueue(KEY, now=T0 + 3)
    assert created and plain.toolchain is None, "the unrequired job is tracked apart"
    forced, created = store.enqueue(KEY, toolchain=TRITON_39, force=True, now=T0 + 4)
    assert created and forced.job_id != job.job_id and store.latest_job(KEY, TRITON_39) == forced


@pytest.mark.parametrize("toolchain", [Toolchain("", "cuda"), Toolchain("3.9.0", "")])
def test_enqueue_rejects_an_incomplete_toolchain(store: Store, toolchain: Toolchain) -> None:
    with pytest.raises(InvalidArgument, match="toolchain"):
        store.enqueue(KEY, toolchain=toolchain, now=T0)


def test_only_writes_that_change_something_end_the_kept_reads(store: Store) -> None:
    """The reaper sweeps every second: a sweep that finds nothing must leave the write count
    (and with it every read kept until the next write) alone."""
    start = store.generation
    assert store.reap_expired(now=T0) == []
    assert store.generation == start
    store.enqueue(KEY, now=T0)
    assert store.generation == start + 1
    _lease(store, now=T0, lease_seconds=10)
    assert store.generation == start + 2
    assert store.reap_expired(now=T0 + 5) == []  # not expired yet
    assert store.generation == start + 2
    assert len(store.reap_expired(now=T0 + 10)) == 1
    assert store.generation == start + 3
