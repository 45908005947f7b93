"""The worker loop: lease a job, generate, publish or fail, repeat. A client of the registry
like any other (DESIGN.md §2): everything goes through the gRPC API.

A heartbeat thread renews the lease while the search runs and carries its progress line;
if the lease is lost (expired, re-leased elsewhere) the result is dropped, not published.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from prometheus_client import Counter

from generator import metrics
from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings, generate
from kreg.client import Client
from kreg.errors import FailedPrecondition, KregError
from kreg.model import CandidateStatus, Capability, Job, WorkerInfo
from kreg.runtime import local_toolchain
from kreg.signing import SigningKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    registry: str
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # Empty: the local GPU's (platform, arch) when there is one, else every target (a CPU
    # worker cross-compiles and verifies in the interpreter for anything).
    capabilities: tuple[Capability, ...] = ()
    lease_s: float = 60.0
    poll_s: float = 10.0
    use_device: bool = True
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    # What the worker signs its artifacts with (kreg.signing; default: KREG_SIGNING_KEY).
    signing_key: SigningKey | None = field(default_factory=SigningKey.from_env)

    def __post_init__(self) -> None:
        if self.lease_s < 3:
            raise ValueError("lease_s: at least 3 seconds (renewed every third)")


class _Heartbeat:
    def __init__(self, client: Client, job: Job, lease_s: float) -> None:
        self._client, self._job, self._lease_s = client, job, lease_s
        self._progress = ""
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.job_id[:8]}", daemon=True)

    def report(self, line: str) -> None:
        self._progress = line
        log.info("job %s: %s", self._job.job_id[:12], line)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                self._client.renew_lease(self._job.job_id, self._job.lease_id, lease_s=self._lease_s, progress=self._progress)
            except FailedPrecondition as e:
                self.lost = str(e)
                return
            except KregError as e:  # transient: the next beat retries within the lease
                log.warning("renewing lease of %s failed: %s", self._job.job_id, e)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def worker_info(config: WorkerConfig, evaluators: Evaluators) -> WorkerInfo:
    capabilities = config.capabilities
    device = evaluators.device
    if not capabilities:
        capabilities = (Capability(device.platform, device.arch),) if device else (Capability("*", "*"),)
    return WorkerInfo(config.worker_id, capabilities, local_toolchain(device.platform if device else "cpu"))


def process(client: Client, job: Job, evaluators: Evaluators, config: WorkerConfig) -> None:
    """Generate one leased job and report the outcome to the registry."""
    started = time.monotonic()
    ended = metrics.JOB_OUTCOMES["crashed"]
    try:
        ended = _process(client, job, evaluators, config)
    finally:
        ended.inc()
        metrics.JOB_SECONDS.labels(job.key.operator.name, job.key.platform, job.key.arch).observe(time.monotonic() - started)


def _process(client: Client, job: Job, evaluators: Evaluators, config: WorkerConfig) -> Counter:
    """process(), returning the outcome counter to count it under."""
    with _Heartbeat(client, job, config.lease_s) as beat:
        try:
            outcome = generate(job, evaluators, config.settings, worker_id=config.worker_id, progress=beat.report)
        except Exception as e:  # a bug here must fail this job, not the worker
            log.exception("job %s crashed the pipeline", job.job_id)
            client.fail_job(job.job_id, job.lease_id, reason=f"worker error: {type(e).__name__}: {e}"[:2000], retryable=True)
            return metrics.JOB_OUTCOMES["crashed"]
    for candidate in outcome.candidates:
        if candidate.status is not CandidateStatus.PRUNED:
            metrics.CANDIDATE_STATUSES[candidate.status].inc()
    if beat.lost is not None:
        log.warning("job %s: lease lost (%s); result dropped", job.job_id, beat.lost)
        return metrics.JOB_OUTCOMES["lease_lost"]
    if outcome.artifact is None:
        client.fail_job(job.job_id, job.lease_id, reason=outcome.summary, retryable=False, candidates=outcome.candidates)
        log.info("job %s failed: %s", job.job_id[:12], outcome.summary)
        return metrics.JOB_OUTCOMES["failed"]
    artifact = config.signing_key.sign(outcome.artifact) if config.signing_key is not None else outcome.artifact
    with metrics.PHASES["publish"].time():
        stored = client.complete_job(job.job_id, job.lease_id, artifact, outcome.blobs, outcome.candidates)
    log.info("job %s published %s: %s", job.job_id[:12], stored.artifact_id[:12], outcome.summary)
    return metrics.JOB_OUTCOMES["published"]


def run_worker(config: WorkerConfig, stop: threading.Event, on_ready: Callable[[WorkerInfo], None] = lambda info: None) -> None:
    """Lease and process jobs until `stop` is set."""
    with Evaluators(use_device=config.use_device) as evaluators, Client(config.registry, timeout_s=30) as client:
        info = worker_info(config, evaluators)
        log.info("worker %s serving %s with %s", info.worker_id, [f"{c.platform}/{c.arch}" for c in info.capabilities], info.toolchain)
        on_ready(info)
        while not stop.is_set():
            try:
                job = client.lease_job(info, wait_s=config.poll_s, lease_s=config.lease_s)
            except KregError as e:
                log.warning("lease failed: %s; retrying", e)
                stop.wait(1.0)
                continue
            if job is not None:
                try:
                    process(client, job, evaluators, config)
                except KregError as e:
                    log.warning("reporting job %s failed: %s (its lease will expire and it will be retried)", job.job_id, e)
