"""Choosing what to serve for a key: pure, every fact passed in, every variant explained.

Order (DESIGN.md §3): exact binary for the caller's arch + toolchain -> portable source
for the caller to JIT -> reference directive. Among usable variants the best evidence
tier wins, then the lowest measured latency, then the newest. A best variant whose
verdict is PREFER_REFERENCE means the reference is faster on this arch: answer REFERENCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    ArtifactState,
    Resolution,
    ResolutionKind,
    Runtime,
    VariantDecision,
    Verdict,
)


@dataclass(frozen=True)
class _Usable:
    artifact: Artifact
    as_binary: bool
    note: str  # how it would be served, for the decision trace


def _rank(a: Artifact) -> tuple[int, float, float]:
    """Sort key, best first: higher tier, lower latency (untimed last), newer."""
    latency = a.measurements.median_ms
    return (-int(a.tier), latency if latency is not None else float("inf"), -a.published_at)


def _describe(a: Artifact) -> str:
    latency = a.measurements.median_ms
    timed = f", {latency:.4g} ms" if latency is not None else ""
    return f"{a.tier.name}{timed}, {a.toolchain}"


def _check_variant(a: Artifact, key: KernelKey, runtime: Runtime) -> _Usable | str:
    """A variant is usable (as binary or source), or rejected with a reason naming both sides."""
    if a.state is ArtifactState.RETRACTED:
        return f"retracted: {a.retract_reason or 'no reason given'}"
    if (a.key.platform, a.key.arch, a.target.arch) != (key.platform, key.arch, key.arch):
        return f"built for {a.key.platform}/{a.key.arch} (target {a.target.arch}), caller is {key.platform}/{key.arch}"
    if runtime.toolchain is not None and runtime.toolchain == a.toolchain and a.has_binaries:
        return _Usable(a, True, f"binary for {a.toolchain}")
    if runtime.toolchain is None:
        why = "caller declared no toolchain"
    elif not a.has_binaries:
        why = "variant has no binaries"
    else:
        why = f"toolchain {a.toolchain} != caller's {runtime.toolchain}"
    return _Usable(a, False, f"source only ({why})")


def resolve(key: KernelKey, runtime: Runtime, variants: Sequence[Artifact], failed_job_error: str = "") -> Resolution:
    """Pick binary, source or reference for `key` among `variants` (the key's own and its
    model='*' ones). `failed_job_error` explains a miss whose generation already failed."""
    usable: list[_Usable] = []
    decisions: list[VariantDecision] = []
    for a in variants:
        checked = _check_variant(a, key, runtime)
        if isinstance(checked, str):
            decisions.append(VariantDecision(a.artifact_id, False, checked))
        else:
            usable.append(checked)
    usable.sort(key=lambda u: _rank(u.artifact))

    if not usable:
        if variants:
            reason = "no usable variant: " + "; ".join(d.reason for d in decisions)
        elif failed_job_error:
            reason = f"no kernel: generation failed ({failed_job_error})"
        else:
            reason = "no kernel published for this key yet"
        return Resolution(key, ResolutionKind.REFERENCE, reason, None, tuple(decisions))

    best = usable[0].artifact
    if best.verdict is Verdict.PREFER_REFERENCE:
        reason = f"best variant {best.artifact_id[:12]} ({_describe(best)}) is slower than the reference"
        decisions += [VariantDecision(u.artifact.artifact_id, False, reason if u.artifact is best else
                                      f"outranked by {best.artifact_id[:12]}, which prefers the reference") for u in usable]
        return Resolution(key, ResolutionKind.REFERENCE, reason, None, tuple(decisions))

    serving = [u for u in usable if u.artifact.verdict is not Verdict.PREFER_REFERENCE]
    binaries = [u for u in serving if u.as_binary]
    chosen = (binaries or serving)[0]
    for u in usable:
        if u is chosen:
            continue
        if u.artifact.verdict is Verdict.PREFER_REFERENCE:
            why = f"slower than the reference ({_describe(u.artifact)})"
        elif chosen.as_binary and not u.as_binary:
            why = f"{u.note}; a binary for the caller exists"
        else:
            why = f"outranked by {chosen.artifact.artifact_id[:12]} ({_describe(chosen.artifact)} vs {_describe(u.artifact)})"
        decisions.append(VariantDecision(u.artifact.artifact_id, False, why))
    decisions.insert(0, VariantDecision(chosen.artifact.artifact_id, True, f"{chosen.note}, {_describe(chosen.artifact)}"))
    kind = ResolutionKind.BINARY if chosen.as_binary else ResolutionKind.SOURCE
    reason = f"{chosen.note}; {_describe(chosen.artifact)}"
    return Resolution(key, kind, reason, chosen.artifact, tuple(decisions))
