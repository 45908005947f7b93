"""The whole loop through a real server: a serving host misses, a real worker generates the
kernel (cross-compiled for the target, verified in the interpreter), publishes it, and the
host's next request is a hit whose blobs fetch, verify and unpack without compiling."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.loader import unpack_compiled
from kreg.model import EvidenceTier, ResolutionKind, Runtime, Toolchain
from kreg.profiles import profile

from generator.evaluators import Evaluators
from generator.worker import WorkerConfig, process, worker_info

TRITON = importlib.metadata.version("triton")


@pytest.fixture(scope="module")
def evaluators():  # type: ignore[no-untyped-def]
    with Evaluators(use_device=False) as e:
        yield e


@pytest.mark.parametrize(
    ("key", "backend", "arch_in_metadata"),
    [
        ("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=fp32}", "cuda", 90),
        ("amd/gfx942/dlrm-v2/sigrid_hash@1{dtype=int64}", "hip", "gfx942"),
    ],
)
def test_miss_job_publish_hit_load(server, evaluators: Evaluators, tmp_path, key: str, backend: str, arch_in_metadata: object) -> None:
    kernel_key = KernelKey.parse(key)
    host = Client(server.address, timeout_s=10, runtime=Runtime(Toolchain(TRITON, backend)), cache_dir=tmp_path / "cache")
    with host:
        miss = host.get_kernel(kernel_key)
        assert miss.kind is ResolutionKind.REFERENCE and miss.job_id

        config = WorkerConfig(registry=server.address)
        job = host.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=120)
        assert job is not None and job.job_id == miss.job_id
        process(host, job, evaluators, config)

        hit = host.get_kernel(kernel_key)
        assert hit.kind is ResolutionKind.BINARY, hit.reason
        artifact = hit.artifact
        assert artifact is not None and artifact.tier is EvidenceTier.INTERPRETED
        assert artifact.target.arch == kernel_key.arch and artifact.toolchain == Toolchain(TRITON, backend)
        assert artifact.provenance.candidates_tried >= 1 and artifact.provenance.job_id == job.job_id
        _, log = host.get_job(job.job_id)
        assert any(c.status.name == "PASSED" for c in log)

        for kernel in artifact.kernels:
            assert kernel.binary is not None and kernel.metadata is not None
            binary = host.fetch_blob(kernel.binary)
            metadata = host.fetch_blob(kernel.metadata)
            source = host.fetch_blob(kernel.source).decode()
            assert binary[:4] == b"\x7fELF"
            assert json.loads(metadata)["target"]["arch"] == arch_in_metadata
            assert "@triton.jit" in source and f"def {kernel.entry_point}(" in source
            # A serving host with this toolchain loads the binary as is: no compile.
            compiled = unpack_compiled(binary, metadata, kernel.abi.params)
            assert compiled.name == kernel.entry_point


@pytest.mark.parametrize("model", ["dlrm-v2", "hstu-ranker"])
def test_demo_ends_with_interpreted_kernels_for_the_model(tmp_path, model: str) -> None:
    """README's main command (and its --model), on one target to keep CI short."""
    done = subprocess.run(
        [sys.executable, "-m", "kreg.cli", "demo", "--model", model, "--target", "nvidia/sm_90", "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if "sm_90" in line]
    assert [r[0] for r in rows] == [str(op) for op in profile(model)], done.stdout
    assert all(r[2:4] == ["binary", "INTERPRETED"] for r in rows), done.stdout
    assert "misses queued" in done.stderr and "succeeded" in done.stderr
