"""Resolution rules on fake variants: no server, every rule named."""

from __future__ import annotations

import dataclasses

from integration.factories import KEY, TRITON_36, TRITON_39, make_artifact
from kreg.model import Artifact, ArtifactState, EvidenceTier, ResolutionKind, Runtime, Verdict
from kreg.resolve import resolve


def variant(name: str, **kwargs: object) -> Artifact:
    artifact, _ = make_artifact(**kwargs)  # type: ignore[arg-type]
    return dataclasses.replace(artifact, artifact_id=name * 64, published_at=1.0)


RUNTIME = Runtime(TRITON_36)


def test_nothing_published_is_a_reference_directive() -> None:
    r = resolve(KEY, RUNTIME, [])
    assert r.kind is ResolutionKind.REFERENCE and r.artifact is None and "no kernel published" in r.reason


def test_failed_generation_is_explained() -> None:
    r = resolve(KEY, RUNTIME, [], failed_job_error="every candidate was wrong")
    assert "generation failed (every candidate was wrong)" in r.reason


def test_exact_binary_beats_a_faster_source_only_variant() -> None:
    binary = variant("a", median_ms=0.09)
    other_toolchain = variant("b", median_ms=0.01, toolchain=TRITON_39)
    r = resolve(KEY, RUNTIME, [other_toolchain, binary])
    assert r.kind is ResolutionKind.BINARY and r.artifact == binary
    rejected = next(d for d in r.decisions if d.artifact_id == other_toolchain.artifact_id)
    assert not rejected.accepted and "3.9.0" in rejected.reason and "3.6.0" in rejected.reason


def test_higher_tier_beats_lower_latency() -> None:
    verified = variant("a", tier=EvidenceTier.VERIFIED, median_ms=0.01)
    tuned = variant("b", tier=EvidenceTier.TUNED, median_ms=0.05)
    assert resolve(KEY, RUNTIME, [verified, tuned]).artifact == tuned


def test_same_tier_fastest_wins_and_untimed_ranks_last() -> None:
    untimed = variant("a", tier=EvidenceTier.TUNED, median_ms=None)
    slow = variant("b", median_ms=0.05)
    fast = variant("c", median_ms=0.02)
    assert resolve(KEY, RUNTIME, [untimed, slow, fast]).artifact == fast


def test_newest_wins_a_tie() -> None:
    old = variant("a", median_ms=0.02)
    new = dataclasses.replace(variant("b", median_ms=0.02), published_at=2.0)
    assert resolve(KEY, RUNTIME, [old, new]).artifact == new


def test_source_when_the_caller_has_no_toolchain_or_the_variant_no_binary() -> None:
    assert resolve(KEY, Runtime(), [variant("a")]).kind is ResolutionKind.SOURCE
    r = resolve(KEY, RUNTIME, [variant("a", with_binary=False)])
    assert r.kind is ResolutionKind.SOURCE and "no binaries" in r.reason


def test_prefer_reference_verdict_on_the_best_variant_means_reference() -> None:
    slower_than_torch = variant("a", verdict=Verdict.PREFER_REFERENCE)
    interpreted = variant("b", tier=EvidenceTier.INTERPRETED, median_ms=None)
    r = resolve(KEY, RUNTIME, [slower_than_torch, interpreted])
    assert r.kind is ResolutionKind.REFERENCE and "slower than the reference" in r.reason
    assert all(not d.accepted for d in r.decisions) and len(r.decisions) == 2


def test_retracted_and_wrong_arch_variants_are_rejected_with_reasons() -> None:
    retracted = dataclasses.replace(variant("a"), state=ArtifactState.RETRACTED, retract_reason="bad numerics")
    r = resolve(KEY, RUNTIME, [retracted])
    assert r.kind is ResolutionKind.REFERENCE and "retracted: bad numerics" in r.reason
    wrong_arch = dataclasses.replace(variant("b"), key=KEY.__class__.parse("nvidia/sm_80/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}"))
    r = resolve(KEY, RUNTIME, [wrong_arch])
    assert r.kind is ResolutionKind.REFERENCE and "sm_80" in r.decisions[0].reason
