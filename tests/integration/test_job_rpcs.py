"""The job lifecycle over gRPC: lease by capability, long-poll, renew, complete, fail,
lease expiry and re-queue, the attempt limit, watches."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import start_test_server
from kreg.client import Client
from kreg.errors import FailedPrecondition, InvalidArgument, NotFound
from kreg.model import (
    CandidateRecord,
    CandidateStatus,
    Capability,
    JobState,
    ResolutionKind,
    Runtime,
    WorkerInfo,
)

from integration.factories import KEY, TRITON_36, TRITON_39, WORKER, make_artifact


def client_for(server) -> Client:  # type: ignore[no-untyped-def]
    return Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36))


def test_worker_leases_completes_and_the_key_is_then_served(server) -> None:
    with client_for(server) as client:
        miss = client.get_kernel(KEY)
        job = client.lease_job(WORKER, wait_s=1, lease_s=30)
        assert job is not None and job.job_id == miss.job_id and job.state is JobState.LEASED
        assert job.attempts == 1 and job.worker_id == WORKER.worker_id
        artifact, blobs = make_artifact()
        log = [CandidateRecord('{"BLOCK": 64}', CandidateStatus.WRONG_RESULT, "max rel err 0.3"),
               CandidateRecord('{"BLOCK": 128}', CandidateStatus.PASSED, median_ms=0.05)]
        stored = client.complete_job(job.job_id, job.lease_id, artifact, blobs, log)
        done, candidates = client.get_job(job.job_id)
        resolution = client.get_kernel(KEY)
    assert done.state is JobState.SUCCEEDED and done.artifact_id == stored.artifact_id
    assert [c.status for c in candidates] == [CandidateStatus.WRONG_RESULT, CandidateStatus.PASSED]
    assert resolution.kind is ResolutionKind.BINARY


def test_lease_only_hands_out_jobs_the_worker_can_serve(server) -> None:
    amd_worker = WorkerInfo("amd-1", (Capability("amd", "gfx942"),))
    any_nvidia = WorkerInfo("nv-any", (Capability("nvidia", "*"),))
    with client_for(server) as client:
        client.get_kernel(KEY)
        assert client.lease_job(amd_worker, wait_s=0.2, lease_s=30) is None
        assert client.lease_job(any_nvidia, wait_s=0.2, lease_s=30) is not None


def test_lease_long_polls_until_a_job_is_queued(server) -> None:
    got: list[object] = []
    with client_for(server) as client:
        waiter = threading.Thread(target=lambda: got.append(client.lease_job(WORKER, wait_s=10, lease_s=30)))
        started = time.monotonic()
        waiter.start()
        time.sleep(0.3)
        client.get_kernel(KEY)
        waiter.join(timeout=10)
    assert got and got[0] is not None
    assert time.monotonic() - started < 9  # woke on the enqueue, not at the end of the wait


def test_renew_extends_the_lease_and_reports_progress(server) -> None:
    with client_for(server) as client:
        client.get_kernel(KEY)
        job = client.lease_job(WORKER, wait_s=1, lease_s=1)
        assert job is not None
        expires = client.renew_lease(job.job_id, job.lease_id, lease_s=60, progress="candidate 3/12")
        current, _ = client.get_job(job.job_id)
    assert expires > job.lease_expires_at + 30
    assert current.progress == "candidate 3/12"


def test_expired_lease_requeues_the_job_for_another_worker_and_fences_the_first(server) -> None:
    other = WorkerInfo("worker-b", WORKER.capabilities, TRITON_36)
    with client_for(server) as client:
        client.get_kernel(KEY)
        first = client.lease_job(WORKER, wait_s=1, lease_s=0.3)
        assert first is not None
        time.sleep(0.6)
        second = client.lease_job(other, wait_s=2, lease_s=30)
        assert second is not None and second.job_id == first.job_id
        assert second.attempts == 2 and second.worker_id == "worker-b"
        assert "lease expired" in second.last_error
        with pytest.raises(FailedPrecondition):
            client.renew_lease(first.job_id, first.lease_id, lease_s=30)
        artifact, blobs = make_artifact()
        with pytest.raises(FailedPrecondition):
            client.complete_job(first.job_id, first.lease_id, artifact, blobs)
        assert client.describe_kernel(KEY) == []  # the fenced publish left nothing behind
        client.complete_job(second.job_id, second.lease_id, artifact, blobs)
        assert client.get_kernel(KEY).kind is ResolutionKind.BINARY


def test_reaper_requeues_an_abandoned_job_without_any_worker_asking(server) -> None:
    with client_for(server) as client:
        client.get_kernel(KEY)
        job = client.lease_job(WORKER, wait_s=1, lease_s=0.2)
        assert job is not None
        deadline = time.monotonic() + 5
        while client.get_job(job.job_id)[0].state is not JobState.QUEUED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get_job(job.job_id)[0].state is JobState.QUEUED


def test_job_fails_for_good_after_its_attempts_and_misses_then_explain_it(server) -> None:
    with client_for(server) as client:
        client.get_kernel(KEY)
        for attempt in range(3):
            job = client.lease_job(WORKER, wait_s=1, lease_s=30)
            assert job is not None and job.attempts == attempt + 1
            failed = client.fail_job(job.job_id, job.lease_id, reason=f"no candidate passed (try {attempt})", retryable=True)
        assert failed.state is JobState.FAILED
        resolution = client.get_kernel(KEY)
        assert resolution.kind is ResolutionKind.REFERENCE
        assert "generation failed" in resolution.reason and "no candidate passed" in resolution.reason
        assert not resolution.job_id  # a failed key is not re-queued by misses
        jobs = client.request_generation([KEY], force=True)
        assert len(jobs) == 1 and jobs[0].state is JobState.QUEUED and jobs[0].job_id != job.job_id


def test_non_retryable_failure_is_final_at_once(server) -> None:
    with client_for(server) as client:
        client.get_kernel(KEY)
        job = client.lease_job(WORKER, wait_s=1, lease_s=30)
        assert job is not None
        failed = client.fail_job(job.job_id, job.lease_id, reason="operator not supported", retryable=False)
    assert failed.state is JobState.FAILED and failed.last_error == "operator not supported"


def test_request_generation_merges_duplicates_and_keeps_the_highest_priority(server) -> None:
    with client_for(server) as client:
        low = client.request_generation([KEY], priority=1)
        high = client.request_generation([KEY], priority=5)
        assert low[0].job_id == high[0].job_id and high[0].priority == 5
        client.publish(*make_artifact())
        assert client.request_generation([KEY]) == []  # already served
        assert len(client.request_generation([KEY], force=True)) == 1


def test_watch_streams_until_the_kernel_is_published(server) -> None:
    updates = []
    with client_for(server) as client:
        def watch() -> None:
            for update in client.watch_kernel(KEY, timeout_s=15):
                updates.append(update)

        watcher = threading.Thread(target=watch)
        watcher.start()
        deadline = time.monotonic() + 5
        while not updates and time.monotonic() < deadline:
            time.sleep(0.02)
        job = client.lease_job(WORKER, wait_s=2, lease_s=30)
        assert job is not None
        client.renew_lease(job.job_id, job.lease_id, lease_s=30, progress="searching")
        client.complete_job(job.job_id, job.lease_id, *make_artifact())
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert updates[0].resolution.kind is ResolutionKind.REFERENCE and updates[0].job is not None
    assert any(u.job is not None and u.job.progress == "searching" for u in updates)
    assert updates[-1].resolution.kind is ResolutionKind.BINARY


def test_job_errors_have_their_codes(server) -> None:
    with client_for(server) as client:
        with pytest.raises(NotFound):
            client.get_job("no-such-job")
        with pytest.raises(InvalidArgument):
            client.lease_job(WorkerInfo("w", ()), wait_s=0, lease_s=1)
        with pytest.raises(NotFound):
            client.renew_lease("no-such-job", "lease", lease_s=1)


def test_a_job_requiring_a_toolchain_is_leased_only_by_a_worker_with_it(server) -> None:
    worker_39 = WorkerInfo("worker-39", WORKER.capabilities, TRITON_39)
    with client_for(server) as client:
        [queued] = client.request_generation([KEY], toolchain=TRITON_39)
        assert queued.toolchain == TRITON_39 and queued.state is JobState.QUEUED
        assert client.lease_job(WORKER, wait_s=0.2, lease_s=30) is None  # WORKER runs triton 3.6.0
        job = client.lease_job(worker_39, wait_s=1, lease_s=30)
        assert job is not None and job.job_id == queued.job_id and job.toolchain == TRITON_39
        client.complete_job(job.job_id, job.lease_id, *make_artifact(toolchain=TRITON_39))
        assert client.request_generation([KEY], toolchain=TRITON_39) == []  # now served for 3.9.0
        assert client.get_job(job.job_id)[0].toolchain == TRITON_39


def test_request_generation_for_a_toolchain_queues_where_only_another_is_served(server) -> None:
    source_only_key = KEY.with_model("hstu-ranker")
    with client_for(server) as client:
        client.publish(*make_artifact(toolchain=TRITON_36))
        assert client.request_generation([KEY]) == []  # served, and not forced
        jobs = client.request_generation([KEY], toolchain=TRITON_39)
        assert len(jobs) == 1 and jobs[0].toolchain == TRITON_39 and jobs[0].state is JobState.QUEUED
        assert client.request_generation([KEY], toolchain=TRITON_39)[0].job_id == jobs[0].job_id
        assert client.request_generation([KEY], toolchain=TRITON_36) == []
        # Source built with 3.9.0 is not a binary a 3.9.0 caller can load: still queued.
        client.publish(*make_artifact(source_only_key, toolchain=TRITON_39, with_binary=False))
        [job] = client.request_generation([source_only_key], toolchain=TRITON_39)
        assert job.toolchain == TRITON_39


def test_a_graceful_stop_ends_idle_long_polls_at_once(tmp_path) -> None:
    srv = start_test_server(tmp_path / "data")
    answers: list[object] = []
    with Client(srv.address, timeout_s=5) as client:
        waiter = threading.Thread(target=lambda: answers.append(client.lease_job(WORKER, wait_s=25, lease_s=30)))
        waiter.start()
        time.sleep(0.3)
        started = time.monotonic()
        srv.stop(grace_s=20)
        waiter.join(timeout=30)
        stopped_in = time.monotonic() - started
    assert answers == [None]  # told "no job", not cut off with an error
    assert stopped_in < 10  # the 25 s poll did not hold the stop for its grace period


def test_jobs_of_a_profiled_model_are_tuned_on_its_profile_shapes_unless_the_request_names_some(server) -> None:
    from kreg.keys import KernelKey
    from kreg.model import TuningShape
    from kreg.profiles import tuning_shapes

    sigrid = KernelKey.parse("nvidia/sm_90/dlrm-v2/sigrid_hash@1{dtype=int64}")
    pooling = KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=fp32}")
    unprofiled = KernelKey("nvidia", "sm_90", "some-other-model", pooling.operator)
    mine = (TuningShape({"B": 7, "D": 128, "len_max": 3}),)
    with client_for(server) as client:
        on_miss = client.get_kernel(sigrid)
        requested = client.request_generation([pooling], tuning_shapes=mine) + client.request_generation([unprofiled])
        queued = {job.job_id: job for job in client.list_jobs(page_size=100)[0]}
    assert queued[on_miss.job_id].tuning_shapes == tuning_shapes("dlrm-v2", sigrid.operator) != ()
    assert [queued[j.job_id].tuning_shapes for j in requested] == [mine, ()]
