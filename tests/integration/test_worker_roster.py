"""Which workers are live (ListWorkers, `kreg workers`), and a queued job that no live worker
can take says so (Job.waiting_for, `kreg jobs`) instead of sitting silently."""

from __future__ import annotations

import time

import pytest
from conftest import start_test_server
from kreg.cli import main as kreg
from kreg.client import Client
from kreg.model import Capability, JobState, Runtime, WorkerInfo

from integration.factories import KEY, TRITON_36, TRITON_39, WORKER

AMD_WORKER = WorkerInfo("amd-1", (Capability("amd", "gfx942"),), TRITON_36)


@pytest.fixture
def fast_server(tmp_path):  # type: ignore[no-untyped-def]
    """Workers count as gone 0.3 s after their poll or lease ends."""
    srv = start_test_server(tmp_path / "registry", worker_grace_s=0.3)
    yield srv
    srv.stop()


def _client(server) -> Client:  # type: ignore[no-untyped-def]
    return Client(server.address, timeout_s=5, runtime=Runtime(TRITON_36))


def _queued_job(client: Client):  # type: ignore[no-untyped-def]
    (job,) = client.list_jobs(state=JobState.QUEUED)[0]
    return job


def test_a_job_for_a_target_no_worker_ever_served_says_so(fast_server) -> None:
    with _client(fast_server) as client:
        client.get_kernel(KEY)
        job = _queued_job(client)
        assert job.waiting_for.startswith("no worker serving nvidia/sm_90 has polled since the registry started")
        # A worker of another target changes nothing for this job, and is listed as live.
        assert client.lease_job(AMD_WORKER, wait_s=0.1, lease_s=30) is None
        assert "nvidia/sm_90" in _queued_job(client).waiting_for
        assert [w.info.worker_id for w in client.list_workers()] == ["amd-1"]
        # GetJob answers the same.
        assert client.get_job(job.job_id)[0].waiting_for == _queued_job(client).waiting_for


def test_a_worker_of_the_target_with_another_toolchain_is_named(fast_server) -> None:
    newer = WorkerInfo("nv-39", (Capability("nvidia", "sm_90"),), TRITON_39)
    with _client(fast_server) as client:
        client.request_generation([KEY], toolchain=TRITON_36)
        assert client.lease_job(newer, wait_s=0.1, lease_s=30) is None
        waiting = _queued_job(client).waiting_for
    assert waiting == "no live worker for nvidia/sm_90 has toolchain triton 3.6.0/cuda (they have triton 3.9.0/cuda)"


def test_a_live_worker_that_can_take_the_job_clears_it_and_holds_it(fast_server) -> None:
    with _client(fast_server) as client:
        client.get_kernel(KEY)
        waiter = client.lease_job(WORKER, wait_s=0.0, lease_s=30)  # takes the job at once
        assert waiter is not None
        (listed,) = client.list_workers()
        assert listed.info == WORKER and listed.job_id == waiter.job_id
        assert listed.live_until >= waiter.lease_expires_at
        leased, _ = client.get_job(waiter.job_id)
        assert leased.state is JobState.LEASED and leased.waiting_for == ""


def test_a_worker_that_stops_polling_is_gone_and_its_jobs_wait_again(fast_server) -> None:
    with _client(fast_server) as client:
        client.get_kernel(KEY)
        job = client.lease_job(WORKER, wait_s=0.0, lease_s=3)
        assert job is not None
        # Holding a lease, the worker stays live without a call until the lease ends.
        time.sleep(1.0)
        assert [w.info.worker_id for w in client.list_workers()] == ["worker-a"]
        # It never renews: the lease expires, the job is queued again, and the worker is gone.
        deadline = time.monotonic() + 10
        while client.get_job(job.job_id)[0].state is not JobState.QUEUED or client.list_workers():
            assert time.monotonic() < deadline, "the lease never expired or the worker stayed live"
            time.sleep(0.1)
        waiting = client.get_job(job.job_id)[0].waiting_for
        gone = client.list_workers(include_gone=True)
    assert waiting.startswith("no live worker serves nvidia/sm_90 (last: worker-a, ")
    assert [w.info.worker_id for w in gone] == ["worker-a"] and not gone[0].live(time.time())


def test_cli_jobs_and_workers_show_it(fast_server, capsys: pytest.CaptureFixture[str]) -> None:
    with _client(fast_server) as client:
        client.get_kernel(KEY)
        client.lease_job(AMD_WORKER, wait_s=0.0, lease_s=30)
    assert kreg(["--registry", str(fast_server.address), "jobs"]) == 0
    out = capsys.readouterr().out
    assert "WAITING: no worker serving nvidia/sm_90 has polled" in out
    assert kreg(["--registry", str(fast_server.address), "workers"]) == 0
    out = capsys.readouterr().out
    assert "amd-1" in out and "amd/gfx942" in out and "live" in out
