"""Write verbs: publish (an artifact from files) and retract."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from kreg.cli._common import client_for
from kreg.cli._output import ARTIFACT_HEADERS, JOB_HEADERS, artifact_row, job_row, print_json, print_table, progress
from kreg.keys import KernelKey
from kreg.model import (
    Artifact,
    BlobData,
    Digest,
    EvidenceTier,
    KernelBinary,
    LaunchAbi,
    Measurements,
    Provenance,
    Target,
    Toolchain,
    Verdict,
)
from kreg.profiles import profile
from kreg.serde import from_jsonable

SPEC_EXAMPLE = """{
  "key": "nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}",
  "target": {"backend": "cuda", "arch": "sm_90", "warp_size": 32},
  "toolchain": {"triton_version": "3.6.0", "backend": "cuda"},
  "tier": "TUNED",
  "kernels": [{"name": "main", "entry_point": "jagged_sum_kernel", "source": "kernel.py",
               "binary": "kernel.cubin", "binary_format": "cubin", "metadata": "kernel.json",
               "abi": {"num_warps": 4, "num_stages": 3, "grid": ["B"]}}]
}"""


def _blob(base: Path, rel: str, blobs: dict[str, BlobData]) -> Digest:
    data = (base / rel).read_bytes()
    digest = Digest(hashlib.sha256(data).hexdigest(), len(data))
    blobs[digest.sha256] = BlobData(digest, data)
    return digest


def _require(spec: dict[str, Any], field: str, where: str) -> Any:
    if field not in spec:
        raise ValueError(f"{where}: missing {field!r}; a spec looks like:\n{SPEC_EXAMPLE}")
    return spec[field]


def artifact_from_spec(path: Path) -> tuple[Artifact, list[BlobData]]:
    """Read a publish spec: JSON naming the key, target, toolchain, tier and kernel files."""
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    base = path.parent
    blobs: dict[str, BlobData] = {}
    kernels = []
    for i, k in enumerate(_require(spec, "kernels", str(path))):
        where = f"{path}: kernels[{i}]"
        kernels.append(
            KernelBinary(
                name=k.get("name", "main"),
                entry_point=_require(k, "entry_point", where),
                source=_blob(base, _require(k, "source", where), blobs),
                abi=from_jsonable(LaunchAbi, k.get("abi", {})),
                binary=_blob(base, k["binary"], blobs) if "binary" in k else None,
                binary_format=k.get("binary_format", ""),
                metadata=_blob(base, k["metadata"], blobs) if "metadata" in k else None,
            )
        )
    artifact = Artifact(
        key=KernelKey.parse(_require(spec, "key", str(path))),
        kernels=tuple(kernels),
        target=from_jsonable(Target, _require(spec, "target", str(path))),
        toolchain=from_jsonable(Toolchain, _require(spec, "toolchain", str(path))),
        tier=EvidenceTier[_require(spec, "tier", str(path))],
        verdict=Verdict[spec.get("verdict", "USE_KERNEL")],
        measurements=from_jsonable(Measurements, spec.get("measurements", {})),
        provenance=from_jsonable(Provenance, spec.get("provenance", {})),
    )
    return artifact, list(blobs.values())


def publish(args: argparse.Namespace) -> int:
    artifact, blobs = artifact_from_spec(Path(args.spec))
    progress(f"publishing {artifact.key} ({len(blobs)} blobs, {sum(b.digest.size_bytes for b in blobs)} bytes)")
    with client_for(args) as client:
        stored = client.publish(artifact, blobs)
    if args.json:
        print_json(stored)
    else:
        print_table(ARTIFACT_HEADERS, [artifact_row(stored)])
    return 0


def retract(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        artifact = client.retract(args.artifact_id, args.reason)
    if args.json:
        print_json(artifact)
    else:
        print(f"retracted {artifact.artifact_id} ({artifact.key}): {artifact.retract_reason}")
    return 0


def warm(args: argparse.Namespace) -> int:
    """Before a rollout: one job per kernel of the model not served yet on this target (with
    --training, the backward kernels too)."""
    keys = [KernelKey(args.platform, args.arch, args.model, op) for op in profile(args.model, training=args.training)]
    with client_for(args) as client:
        jobs = client.request_generation(keys, priority=args.priority, force=args.force)
    if args.json:
        print_json(jobs)
        return 0
    progress(f"{args.model} on {args.platform}/{args.arch}: {len(keys)} kernels, {len(keys) - len(jobs)} already served, {len(jobs)} queued")
    if jobs:
        print_table(JOB_HEADERS, [job_row(j) for j in jobs])
    return 0


def keygen(args: argparse.Namespace) -> int:
    from kreg.signing import generate

    public, key_id = generate(Path(args.path))
    print(f"signing key {args.path} (keep it secret), public key {public}, key id {key_id}")
    print(f"workers: KREG_SIGNING_KEY={args.path}   serving hosts: KREG_TRUSTED_KEYS={public}")
    return 0
