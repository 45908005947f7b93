"""Deliberately bad kernels are each recorded as failed with their reason, and the job
still completes with the one correct candidate (DESIGN.md §6 isolation)."""

from __future__ import annotations

import json

import pytest

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.search import SearchBudget
from generator.worker import WorkerConfig, process, worker_info
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import CandidateStatus, EvidenceTier, JobState, ResolutionKind

KEY = KernelKey.parse("nvidia/sm_90/test/double@1")


@pytest.fixture(scope="module")
def evaluators():  # type: ignore[no-untyped-def]
    with Evaluators(use_device=False) as e:
        yield e


def test_bad_kernels_fail_with_reasons_and_the_job_still_completes(server, evaluators: Evaluators) -> None:
    config = WorkerConfig(
        registry=server.address,
        settings=GenerationSettings(
            # Every candidate is evaluated: the faults are the point of this test.
            interpreted_budget=SearchBudget(max_candidates=5, draft=5, plateau=10),
            candidate_timeout_s=30,
            extra_operators=("faulty_operator",),
        ),
    )
    with Client(server.address, timeout_s=10) as client:
        client.get_kernel(KEY)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=60)
        assert job is not None
        process(client, job, evaluators, config)
        done, log = client.get_job(job.job_id)
        resolution = client.get_kernel(KEY)

    by_mode = {json.loads(c.config)["MODE"]: c for c in log}
    assert set(by_mode) == {0, 1, 2, 3, 4}
    assert by_mode[1].status is CandidateStatus.WRONG_RESULT and "out of bounds" in by_mode[1].reason
    assert by_mode[2].status is CandidateStatus.TIMEOUT and "killed" in by_mode[2].reason
    assert by_mode[3].status is CandidateStatus.WRONG_RESULT and "elements wrong" in by_mode[3].reason
    assert by_mode[4].status is CandidateStatus.WRONG_RESULT and "never written" in by_mode[4].reason
    assert by_mode[0].status is CandidateStatus.PASSED

    assert done.state is JobState.SUCCEEDED
    assert resolution.kind is not ResolutionKind.REFERENCE and resolution.artifact is not None
    assert resolution.artifact.tier is EvidenceTier.INTERPRETED
    assert dict(resolution.artifact.kernels[0].abi.constexprs)["MODE"] == "0"


def test_a_job_whose_candidates_all_fail_is_failed_with_the_reason(server, evaluators: Evaluators) -> None:
    config = WorkerConfig(
        registry=server.address,
        settings=GenerationSettings(
            # Only the template's default, the out-of-bounds writer, fits this budget.
            interpreted_budget=SearchBudget(max_candidates=1, draft=1),
            extra_operators=("faulty_operator",),
        ),
    )
    with Client(server.address, timeout_s=10) as client:
        client.get_kernel(KEY)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=60)
        assert job is not None
        process(client, job, evaluators, config)
        done, log = client.get_job(job.job_id)
        after = client.get_kernel(KEY)
    assert done.state is JobState.FAILED and "no candidate passed (wrong_result" in done.last_error
    assert [c.status for c in log] == [CandidateStatus.WRONG_RESULT]
    assert after.kind is ResolutionKind.REFERENCE and "generation failed" in after.reason


def test_unknown_operator_fails_the_job_naming_the_known_ones(server, evaluators: Evaluators) -> None:
    config = WorkerConfig(registry=server.address)
    key = KernelKey.parse("nvidia/sm_90/test/no_such_op@1")
    with Client(server.address, timeout_s=10) as client:
        client.get_kernel(key)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=60)
        assert job is not None
        process(client, job, evaluators, config)
        done, _ = client.get_job(job.job_id)
    assert done.state is JobState.FAILED and "no template for no_such_op@1" in done.last_error and "jagged_sum@1" in done.last_error


def test_a_worker_with_a_signing_key_signs_what_it_publishes(server, evaluators: Evaluators, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kreg.signing import SigningKey, TrustedKeys, generate

    public, _ = generate(tmp_path / "worker.pem")
    key = KernelKey.parse("cpu/x86_64/signed/jagged_sum@1{D=8,dtype=fp32}")
    config = WorkerConfig(
        registry=server.address,
        settings=GenerationSettings(interpreted_budget=SearchBudget(max_candidates=1, draft=1, plateau=0)),
        signing_key=SigningKey.load(tmp_path / "worker.pem"),
    )
    with Client(server.address, timeout_s=10) as client:
        client.get_kernel(key)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=60)
        assert job is not None and job.key == key
        process(client, job, evaluators, config)
        done, _ = client.get_job(job.job_id)
        (published,) = client.describe_kernel(key)
    assert done.state is JobState.SUCCEEDED, done.last_error
    assert published.signature is not None and published.signature.key_id == config.signing_key.key_id  # type: ignore[union-attr]
    TrustedKeys.load([public]).verify(published)
