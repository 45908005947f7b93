"""`kreg fleet` on a real Ray cluster of this machine: two CPU-only nodes labelled as different
accelerators (nvidia/sm_90 with two workers, amd/gfx942 with one). Each job lands on a
worker of its node (read back from the published artifact's provenance); a worker killed in
the middle of a job loses its lease and another worker completes the job; a key whose target
no node has says so instead of waiting silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import JobState, ResolutionKind

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

NVIDIA_KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=fp32}")
AMD_KEY = KernelKey.parse("amd/gfx942/dlrm-v2/sigrid_hash@1{dtype=int64}")
KILLED_KEY = KernelKey.parse("nvidia/sm_90/dlrm-v2/sigrid_hash@1{dtype=int64}")
NOBODYS_KEY = KernelKey.parse("nvidia/sm_100/dlrm-v2/sigrid_hash@1{dtype=int64}")
WAIT_S = 600.0  # generous: three workers and their evaluator children share two cores here


@dataclass
class RayFleet:
    nvidia_node: str
    amd_node: str
    log: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, str, str]]:
    labelled = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "labels": {"kreg.io/platform": "nvidia", "kreg.io/arch": "sm_90", "kreg.io/workers": "2"}},
    )
    amd = labelled.add_node(num_cpus=1, labels={"kreg.io/platform": "amd", "kreg.io/arch": "gfx942"})
    labelled.wait_for_nodes()
    yield labelled, labelled.head_node.node_id, amd.node_id
    labelled.shutdown()


@pytest.fixture
def fleet(server, cluster, tmp_path: Path) -> Iterator[RayFleet]:  # type: ignore[no-untyped-def]
    ray_cluster, nvidia_node, amd_node = cluster
    log = tmp_path / "fleet.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kreg.cli", "--registry", str(server.address), "fleet", "--ray", ray_cluster.address,
             "--lease", "3", "--reconcile", "1", "--max-candidates", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield RayFleet(nvidia_node, amd_node, log, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for(what: str, check, log: Path, timeout_s: float = WAIT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"{what}: not within {timeout_s:.0f}s; the fleet's log ends:\n{tail}")
        time.sleep(0.2)


def _served_by(client: Client, key: KernelKey) -> str:
    resolution = client.get_kernel(key, queue=False)
    return resolution.artifact.provenance.worker_id if resolution.kind is not ResolutionKind.REFERENCE and resolution.artifact else ""


def test_jobs_land_on_their_arch_and_survive_a_killed_worker(server, fleet: RayFleet) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address, timeout_s=10) as client:
        # One worker per accelerator: two on the nvidia node, one on the amd node.
        workers = _wait_for("three fleet workers polling", lambda: len(live := client.list_workers()) == 3 and live, fleet.log)
        slots = sorted(w.info.worker_id.split(":")[1] for w in workers)
        assert slots == sorted(
            [f"{fleet.nvidia_node[:12]}/nvidia/sm_90/0", f"{fleet.nvidia_node[:12]}/nvidia/sm_90/1", f"{fleet.amd_node[:12]}/amd/gfx942/0"]
        )

        client.request_generation([NVIDIA_KEY, AMD_KEY, NOBODYS_KEY])
        nvidia_worker = _wait_for("the nvidia key published", lambda: _served_by(client, NVIDIA_KEY), fleet.log)
        amd_worker = _wait_for("the amd key published", lambda: _served_by(client, AMD_KEY), fleet.log)
        assert nvidia_worker.startswith(f"ray:{fleet.nvidia_node[:12]}/nvidia/sm_90/")
        assert amd_worker.startswith(f"ray:{fleet.amd_node[:12]}/amd/gfx942/0:")

        # No node has an sm_100: the job says so, and the fleet's log reports it.
        (nobodys,) = [j for j in client.list_jobs(state=JobState.QUEUED)[0] if j.key == NOBODYS_KEY]
        assert nobodys.waiting_for.startswith("no worker serving nvidia/sm_100 has polled")
        _wait_for("the fleet reporting the unserved key", lambda: "no worker serving nvidia/sm_100" in fleet.log.read_text(), fleet.log)

        # A worker killed in the middle of a job: its lease expires, another worker completes it.
        (job,) = client.request_generation([KILLED_KEY])
        leased = _wait_for("the job leased", lambda: (j := client.get_job(job.job_id)[0]).state is JobState.LEASED and j, fleet.log)
        os.kill(int(leased.worker_id.rsplit(":", 1)[1]), signal.SIGKILL)
        finisher = _wait_for("the job completed by another worker", lambda: _served_by(client, KILLED_KEY), fleet.log)
        done, _ = client.get_job(job.job_id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 2
    assert done.last_error == f"lease expired (worker {leased.worker_id})"
    assert finisher != leased.worker_id and finisher.startswith(f"ray:{fleet.nvidia_node[:12]}/nvidia/sm_90/")

    # SIGTERM stops every worker (each finishes its poll) and the fleet exits cleanly.
    fleet.proc.send_signal(signal.SIGTERM)
    assert fleet.proc.wait(timeout=60) == 0
    assert "fleet stopped: 3 workers stopped, 0 killed" in fleet.log.read_text()
