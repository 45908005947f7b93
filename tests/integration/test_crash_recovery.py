"""SIGKILL the server during concurrent publish and lease traffic, 20 rounds on one store:
every acknowledged write is there after each restart, the store stays consistent, and once
the traffic stops the killed rounds' leases expire and every job completes."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from integration.factories import make_artifact
from kreg.client import Client
from kreg.credentials import Credentials
from kreg.errors import KregError, Unavailable
from kreg.keys import KernelKey
from kreg.model import Capability, JobState, WorkerInfo
from registry.store import Store

ROUNDS = 20
LEASE_S = 3.0
WORKER = WorkerInfo("crash-test", (Capability("nvidia", "sm_90"),))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data: Path, address: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kreg.cli", "serve", "--workers", "0", "--data", str(data), "--listen", address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        with Client(address, timeout_s=2, read_retries=0, credentials=Credentials()) as client:
            while True:
                try:
                    client.list_kernels()
                    return proc
                except Unavailable:
                    assert proc.poll() is None, f"the server exited with {proc.returncode} on start"
                    assert time.monotonic() < deadline, "the server did not come up within 60 s"
                    time.sleep(0.05)
    except BaseException:
        proc.kill()  # never leave a server behind a failed start
        proc.wait()
        raise


class Acknowledged:
    """Writes the server answered OK for, gathered by the traffic threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.artifacts: set[str] = set()
        self.jobs: set[str] = set()
        self.completed: set[str] = set()


def _traffic(address: str, stop: threading.Event, seen: Acknowledged, seed: int) -> None:
    rng = random.Random(seed)
    with Client(address, timeout_s=2, read_retries=0, credentials=Credentials()) as client:
        while not stop.is_set():
            try:
                choice = rng.random()
                if choice < 0.4:
                    key = KernelKey.parse(f"nvidia/sm_90/crash-{rng.randrange(10**9)}/jagged_sum@1{{D=128,dtype=bf16}}")
                    published = client.publish(*make_artifact(key))
                    with seen.lock:
                        seen.artifacts.add(published.artifact_id)
                elif choice < 0.7:
                    key = KernelKey.parse(f"nvidia/sm_90/crash-job-{rng.randrange(10**9)}/jagged_sum@1{{D=128,dtype=bf16}}")
                    (job,) = client.request_generation([key])
                    with seen.lock:
                        seen.jobs.add(job.job_id)
                else:
                    job = client.lease_job(WORKER, wait_s=0, lease_s=LEASE_S)
                    if job is not None and rng.random() < 0.5:  # else abandoned: its lease must expire
                        done = client.complete_job(job.job_id, job.lease_id, *make_artifact(job.key))
                        with seen.lock:
                            seen.completed.add(job.job_id)
                            seen.artifacts.add(done.artifact_id)
            except KregError:
                if stop.is_set():
                    return
                time.sleep(0.01)  # the server is down (killed) or refused: go on until told to stop


def test_acknowledged_writes_survive_sigkill_and_jobs_complete_after(tmp_path: Path) -> None:
    data, address = tmp_path / "data", f"127.0.0.1:{_port()}"
    seen = Acknowledged()
    rng = random.Random(7)
    for round_ in range(ROUNDS):
        proc = _start(data, address)
        try:
            with Client(address, timeout_s=10, credentials=Credentials()) as check:
                with seen.lock:
                    artifacts, jobs = set(seen.artifacts), set(seen.jobs)
                for artifact_id in artifacts:
                    assert check.describe_kernel(artifact_id)[0].artifact_id == artifact_id, f"round {round_}: lost {artifact_id}"
                for job_id in jobs:
                    check.get_job(job_id)  # NotFound would fail the test
            stop = threading.Event()
            threads = [threading.Thread(target=_traffic, args=(address, stop, seen, round_ * 10 + i)) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 0.8))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stop.set()
            for t in threads:
                t.join(timeout=30)
        finally:
            if proc.poll() is None:  # a failed check: leave no server behind
                proc.kill()
                proc.wait()
    assert len(seen.artifacts) > ROUNDS and len(seen.jobs) > ROUNDS and seen.completed

    # After the last restart: abandoned leases expire, and a worker finishes every job.
    proc = _start(data, address)
    try:
        with Client(address, timeout_s=10, credentials=Credentials()) as worker:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                job = worker.lease_job(WORKER, wait_s=LEASE_S + 2, lease_s=30)
                if job is None:
                    break
                worker.complete_job(job.job_id, job.lease_id, *make_artifact(job.key))
            states = {job_id: worker.get_job(job_id)[0].state for job_id in seen.jobs}
        unfinished = {j: s for j, s in states.items() if s is not JobState.SUCCEEDED}
        # A job abandoned in more rounds than it has attempts fails; nothing stays queued or leased.
        assert all(s is JobState.FAILED for s in unfinished.values()), unfinished
        assert len(unfinished) < len(states)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    with Store.open(data) as store:
        assert store.check() == []
