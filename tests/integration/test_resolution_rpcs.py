"""GetKernel / GetManifest / Publish / Retract / Describe / List against a live server."""

from __future__ import annotations

import dataclasses

import pytest

from integration.factories import KEY, TRITON_36, TRITON_39, make_artifact
from kreg.client import Client
from kreg.errors import DataLoss, InvalidArgument, NotFound
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import ArtifactState, EvidenceTier, JobState, ResolutionKind, Runtime, Verdict


def client_for(server, toolchain=TRITON_36) -> Client:  # type: ignore[no-untyped-def]
    return Client(server.address, timeout_s=5, runtime=Runtime(toolchain))


def test_miss_answers_reference_and_queues_one_job_for_repeated_misses(server) -> None:
    with client_for(server) as client:
        first = client.get_kernel(KEY)
        second = client.get_kernel(KEY)
        assert first.kind is ResolutionKind.REFERENCE
        assert "no kernel published" in first.reason and "queued" in first.reason
        assert first.job_id and second.job_id == first.job_id
        jobs, _ = client.list_jobs(state=JobState.QUEUED)
        assert [j.job_id for j in jobs] == [first.job_id]


def test_miss_without_queue_queues_nothing(server) -> None:
    with client_for(server) as client:
        resolution = client.get_kernel(KEY, queue=False)
        assert resolution.kind is ResolutionKind.REFERENCE and not resolution.job_id
        assert client.list_jobs()[0] == []


def test_published_binary_is_served_to_a_matching_toolchain(server) -> None:
    artifact, blobs = make_artifact()
    with client_for(server) as client:
        stored = client.publish(artifact, blobs)
        resolution = client.get_kernel(KEY)
    assert resolution.kind is ResolutionKind.BINARY
    assert resolution.artifact is not None and resolution.artifact.artifact_id == stored.artifact_id
    assert resolution.decisions[0].accepted and "binary" in resolution.decisions[0].reason
    assert stored.state is ArtifactState.ACTIVE and stored.published_at > 0


def test_other_toolchain_gets_source_with_a_reason_naming_both_toolchains(server) -> None:
    artifact, blobs = make_artifact(toolchain=TRITON_36)
    with client_for(server, TRITON_36) as publisher:
        publisher.publish(artifact, blobs)
    with client_for(server, TRITON_39) as client:
        resolution = client.get_kernel(KEY)
    assert resolution.kind is ResolutionKind.SOURCE
    assert "3.6.0" in resolution.reason and "3.9.0" in resolution.reason


def test_caller_without_toolchain_gets_source(server) -> None:
    artifact, blobs = make_artifact()
    with Client(server.address, timeout_s=5) as client:
        client.publish(artifact, blobs)
        assert client.get_kernel(KEY).kind is ResolutionKind.SOURCE


def test_best_tier_wins_then_fastest_and_losers_are_explained(server) -> None:
    slow_tuned, b1 = make_artifact(tier=EvidenceTier.TUNED, median_ms=0.09)
    fast_tuned, b2 = make_artifact(tier=EvidenceTier.TUNED, median_ms=0.03)
    interpreted, b3 = make_artifact(tier=EvidenceTier.INTERPRETED, median_ms=None)
    with client_for(server) as client:
        ids = [client.publish(a, b).artifact_id for a, b in ((slow_tuned, b1), (fast_tuned, b2), (interpreted, b3))]
        resolution = client.get_kernel(KEY)
    assert resolution.artifact is not None and resolution.artifact.artifact_id == ids[1]
    rejected = {d.artifact_id: d.reason for d in resolution.decisions if not d.accepted}
    assert set(rejected) == {ids[0], ids[2]}
    assert all("outranked" in r for r in rejected.values())


def test_tuned_kernel_slower_than_reference_yields_a_reference_directive(server) -> None:
    artifact, blobs = make_artifact(verdict=Verdict.PREFER_REFERENCE)
    with client_for(server) as client:
        client.publish(artifact, blobs)
        resolution = client.get_kernel(KEY)
    assert resolution.kind is ResolutionKind.REFERENCE
    assert "slower than the reference" in resolution.reason
    assert not resolution.job_id  # a known slowdown is an answer, not a miss


def test_wildcard_model_kernel_serves_every_model(server) -> None:
    artifact, blobs = make_artifact(KEY.with_model("*"))
    with client_for(server) as client:
        client.publish(artifact, blobs)
        resolution = client.get_kernel(KEY.with_model("hstu-ranker"))
    assert resolution.kind is ResolutionKind.BINARY


def test_retracted_kernel_stops_being_served_and_the_next_variant_takes_over(server) -> None:
    best, b1 = make_artifact(median_ms=0.01)
    second, b2 = make_artifact(median_ms=0.02)
    with client_for(server) as client:
        best_id = client.publish(best, b1).artifact_id
        second_id = client.publish(second, b2).artifact_id
        retracted = client.retract(best_id, "wrong results on ragged rows")
        resolution = client.get_kernel(KEY)
        described = {a.artifact_id: a for a in client.describe_kernel(KEY)}
    assert retracted.state is ArtifactState.RETRACTED
    assert resolution.artifact is not None and resolution.artifact.artifact_id == second_id
    assert any(d.artifact_id == best_id and "retracted: wrong results" in d.reason for d in resolution.decisions)
    assert described[best_id].state is ArtifactState.RETRACTED and described[best_id].retract_reason


def test_answers_kept_between_writes_change_with_the_next_publish_and_retraction(server) -> None:
    """GetKernel and GetManifest answer repeated questions from memory; every write ends that."""
    artifact, blobs = make_artifact()
    ask = lambda c: (c.get_kernel(KEY, queue=False), c.get_manifest("nvidia", "sm_90", KEY.model, [KEY.operator], queue=False)[0])  # noqa: E731
    with client_for(server) as client:
        before = ask(client) + ask(client)
        artifact_id = client.publish(artifact, blobs).artifact_id
        served = ask(client) + ask(client)
        client.retract(artifact_id, "bad on empty rows")
        after = ask(client)
    assert {r.kind for r in before} == {ResolutionKind.REFERENCE}
    assert {r.kind for r in served} == {ResolutionKind.BINARY} and {r.artifact.artifact_id for r in served if r.artifact} == {artifact_id}
    assert {r.kind for r in after} == {ResolutionKind.REFERENCE}
    assert all(any(d.artifact_id == artifact_id and "retracted" in d.reason for d in r.decisions) for r in after)


def test_retract_records_the_retraction_time(server) -> None:
    with client_for(server) as client:
        stored = client.publish(*make_artifact())
        retracted = client.retract(stored.artifact_id, "wrong results on ragged rows")
        [described] = client.describe_kernel(KEY)
    assert stored.retracted_at == 0.0
    assert retracted.retracted_at >= stored.published_at > 0
    assert described.retracted_at == retracted.retracted_at


def test_manifest_answers_every_operator_in_one_call(server) -> None:
    artifact, blobs = make_artifact()
    other = OperatorSpec.parse("sigrid_hash@1{dtype=i64}")
    with client_for(server) as client:
        client.publish(artifact, blobs)
        resolutions = client.get_manifest("nvidia", "sm_90", "dlrm-v2", [KEY.operator, other])
    assert [r.kind for r in resolutions] == [ResolutionKind.BINARY, ResolutionKind.REFERENCE]
    assert resolutions[1].job_id  # the miss was queued


def test_publish_is_idempotent(server) -> None:
    artifact, blobs = make_artifact()
    with client_for(server) as client:
        a = client.publish(artifact, blobs)
        b = client.publish(artifact, blobs)
        assert a.artifact_id == b.artifact_id
        assert len(client.describe_kernel(KEY)) == 1


def test_publish_with_a_blob_that_does_not_match_its_digest_is_data_loss(server) -> None:
    artifact, blobs = make_artifact()
    blobs[1] = dataclasses.replace(blobs[1], data=blobs[1].data[:-1] + b"\x00")
    with client_for(server) as client, pytest.raises(DataLoss):
        client.publish(artifact, blobs)


def test_publish_missing_a_referenced_blob_is_invalid(server) -> None:
    artifact, blobs = make_artifact()
    with client_for(server) as client, pytest.raises(InvalidArgument, match="missing|absent|not"):
        client.publish(artifact, blobs[:1])


def test_list_kernels_pages_and_filters(server) -> None:
    keys = [KernelKey.parse(f"nvidia/sm_90/dlrm-v2/op{i}@1") for i in range(5)]
    amd = KernelKey.parse("amd/gfx942/dlrm-v2/op0@1")
    with client_for(server) as client:
        for k in keys + [amd]:
            client.publish(*make_artifact(k, toolchain=TRITON_36 if k.platform == "nvidia" else TRITON_36.__class__("3.6.0", "hip")))
        page, token = client.list_kernels(platform="nvidia", page_size=2)
        assert len(page) == 2 and token
        everything = list(client.iter_kernels(platform="nvidia"))
        assert sorted(str(a.key) for a in everything) == sorted(str(k) for k in keys)
        assert [str(a.key) for a in client.iter_kernels(arch="gfx942")] == [str(amd)]


def test_describe_by_artifact_id_and_unknown_id(server) -> None:
    artifact, blobs = make_artifact()
    with client_for(server) as client:
        stored = client.publish(artifact, blobs)
        assert client.describe_kernel(stored.artifact_id)[0].artifact_id == stored.artifact_id
        with pytest.raises(NotFound):
            client.describe_kernel("0" * 64)
