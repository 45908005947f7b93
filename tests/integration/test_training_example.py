"""examples/train_dlrm.py, a few training steps of a DLRM-style model on kreg.ops: with the
registry's kernels (forward and backward, pinned by one manifest) and with references the
losses agree, and a 2-process torch.distributed (gloo) run uses the same pinned kernels on
every rank.

On this CPU host the served kernels are the INTERPRETED sources the real worker generates for
cpu/x86_64, run by Triton's interpreter in the training processes (TRITON_INTERPRET=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kreg.client import Client
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import JobState, ResolutionKind, Runtime, Toolchain

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.worker import WorkerConfig, process, worker_info

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_dlrm.py"
# The keys of the example's --size small model (kreg.ops names them from the inputs).
OPERATORS = {
    "sigrid_hash": "sigrid_hash@1{dtype=int64}",
    "jagged_sum": "jagged_sum@1{D=8,dtype=fp32}",
    "jagged_sum_backward": "jagged_sum_backward@1{D=8,dtype=fp32}",
    "dlrm_dot_interaction": "dlrm_dot_interaction@1{D=8,F=3,dtype=fp32}",
    "dlrm_dot_interaction_backward": "dlrm_dot_interaction_backward@1{D=8,F=3,dtype=fp32}",
    "dcn_lowrank_cross": "dcn_lowrank_cross@1{N=32,dtype=fp32,layers=2,r=4}",
    "dcn_lowrank_cross_backward": "dcn_lowrank_cross_backward@1{N=32,dtype=fp32,layers=2,r=4}",
}
SPECS = [OperatorSpec.parse(text) for text in OPERATORS.values()]


def _run(args: list[str], tmp: Path, *, distributed: bool = False) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if distributed else [sys.executable]
    done = subprocess.run([*launcher, str(EXAMPLE), "--steps", "4", *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_losses_agree_with_references_and_every_rank_runs_the_pinned_kernels(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import triton

    runtime = Runtime(Toolchain(triton.__version__, "cpu"))
    config = WorkerConfig(registry=server.address, settings=GenerationSettings(candidate_timeout_s=300, seeds=(0,)))
    with Evaluators(use_device=False) as evaluators, Client(server.address, timeout_s=10, runtime=runtime) as client:
        client.request_generation([KernelKey("cpu", "x86_64", "dlrm-v2", spec) for spec in SPECS])
        info = worker_info(config, evaluators)
        for _ in SPECS:
            job = client.lease_job(info, wait_s=2, lease_s=600)
            assert job is not None
            process(client, job, evaluators, config)
            assert client.get_job(job.job_id)[0].state is JobState.SUCCEEDED, str(job.key)
    lockfile, cache = tmp_path / "dlrm-v2.lock.json", tmp_path / "cache"
    with Client(server.address, timeout_s=10, runtime=runtime, cache_dir=cache) as client:
        lock = client.pin_manifest("cpu", "x86_64", "dlrm-v2", SPECS, lockfile)
    pinned = {str(r.key.operator): r for r in lock.resolutions}
    assert all(r.kind is ResolutionKind.SOURCE and r.artifact is not None for r in pinned.values())
    served_ids = {op: ["source", pinned[text].artifact.artifact_id] for op, text in OPERATORS.items()}  # type: ignore[union-attr]

    _run(["--out", "reference.json"], tmp_path)
    _run(["--lockfile", str(lockfile), "--cache", str(cache), "--out", "served.json"], tmp_path)
    _run(["--lockfile", str(lockfile), "--cache", str(cache), "--out", "rank{rank}.json"], tmp_path, distributed=True)
    reference, served = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("reference", "served"))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    # Every pinned kernel ran, forward and backward (no registry: the lockfile and node cache
    # alone), and trained the same model as the references did.
    assert served["decisions"] == served_ids
    assert all(path == "reference" for path, _ in reference["decisions"].values())
    assert served["losses"] == pytest.approx(reference["losses"], rel=1e-4)
    assert served["losses"][-1] < served["losses"][0]  # it trains
    # Both ranks of the gloo run: the same pinned artifacts, forward and backward.
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert all(r["decisions"] == served_ids for r in ranks)
