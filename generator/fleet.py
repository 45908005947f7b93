"""Generation workers on a Ray cluster: one per accelerator, on that accelerator's node.

Each worker is the plain worker loop (generator.worker) in a Ray actor: it leases jobs for
its own (platform, arch) from the registry, generates, and publishes back over gRPC. The
registry's job queue stays the source of truth (DESIGN.md §6): Ray only places and restarts
workers, so a worker that dies mid-job loses nothing but its lease, which expires and sends
the job to another worker.

Where the workers go is read from each node (`node_accelerators`):
- labels `kreg.io/platform` and `kreg.io/arch` (set with `ray start --labels`, or in a KubeRay
  group's rayStartParams) name the node's accelerator; it has one worker per GPU, or
  `kreg.io/workers` of them on a node without Ray GPUs (a CPU host that cross-compiles for
  that target and verifies in the interpreter);
- without them, Ray's own accelerator type of a GPU node (label `ray.io/accelerator-type`,
  resource `accelerator_type:H100`) is mapped through RAY_ACCELERATOR_TYPES.

`Fleet` reconciles every few seconds: workers for accelerators that appeared (a node pool
scaled up), restarts for workers that died, none for nodes that left. Every Ray call it
makes is bounded by a timeout, and a worker that does not come up in `start_timeout_s` is
killed and tried again. ray is imported here only, and only when a fleet runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from generator.worker import WorkerConfig, run_worker
from kreg import logs
from kreg.client import Client
from kreg.errors import KregError
from kreg.model import Capability, JobState
from kreg.signing import SigningKey

log = logging.getLogger(__name__)

PLATFORM_LABEL = "kreg.io/platform"
ARCH_LABEL = "kreg.io/arch"
WORKERS_LABEL = "kreg.io/workers"

# Ray's accelerator type of a GPU node (ray.util.accelerators; NVIDIA's is the device name's
# model) -> the (platform, arch) the generator has a hardware record for.
RAY_ACCELERATOR_TYPES: dict[str, tuple[str, str]] = {
    "A100": ("nvidia", "sm_80"),
    "H100": ("nvidia", "sm_90"),
    "H200": ("nvidia", "sm_90"),
    "B200": ("nvidia", "sm_100"),
    "AMD-Instinct-MI250X-MI250": ("amd", "gfx90a"),
    "AMD-Instinct-MI300X-OAM": ("amd", "gfx942"),
}

# The client-side environment a worker needs to reach and sign for the registry (kreg.credentials,
# kreg.signing): passed from the fleet's process to every worker it starts.
FORWARDED_ENV = (
    "KREG_TOKEN", "KREG_TOKEN_FILE", "KREG_TLS_CA", "KREG_TLS_CERT", "KREG_TLS_KEY", "KREG_TLS_SERVER_NAME", "KREG_SIGNING_KEY",
    "KREG_LOG_FORMAT",
)


@dataclass(frozen=True)
class Accelerator:
    """One worker's place: accelerator `index` of (platform, arch) on Ray node `node_id`."""

    node_id: str
    platform: str
    arch: str
    index: int
    gpu: bool  # the worker takes one of the node's Ray GPUs (else: a labelled CPU node)

    @property
    def slot(self) -> str:
        return f"{self.node_id[:12]}/{self.platform}/{self.arch}/{self.index}"


def node_accelerators(node: Mapping[str, Any]) -> list[Accelerator]:
    """The accelerators of one entry of ray.nodes(); none for a dead or unlabelled CPU node.
    ValueError for labels that contradict themselves."""
    if not node.get("Alive"):
        return []
    labels: Mapping[str, str] = node.get("Labels") or {}
    resources: Mapping[str, float] = node.get("Resources") or {}
    gpus = int(resources.get("GPU", 0))
    platform, arch = labels.get(PLATFORM_LABEL, ""), labels.get(ARCH_LABEL, "")
    if bool(platform) != bool(arch):
        raise ValueError(f"node {node['NodeID'][:12]}: set both {PLATFORM_LABEL} and {ARCH_LABEL}, or neither")
    if not platform:
        kinds = [labels.get("ray.io/accelerator-type", "")] + [k.partition(":")[2] for k in resources if k.startswith("accelerator_type:")]
        known = [RAY_ACCELERATOR_TYPES[k] for k in kinds if k in RAY_ACCELERATOR_TYPES]
        if not gpus or not known:
            if gpus:
                kind = ", ".join(k for k in kinds if k) or "not given"
                log.warning("node %s: %d GPUs of a type kreg does not know (%s): label it %s and %s", node["NodeID"][:12], gpus, kind, PLATFORM_LABEL, ARCH_LABEL)
            return []
        platform, arch = known[0]
    if gpus:
        count = gpus
    else:
        text = labels.get(WORKERS_LABEL, "1")
        if not text.isdigit():
            raise ValueError(f"node {node['NodeID'][:12]}: {WORKERS_LABEL}={text!r} is not a whole number")
        count = int(text)
    return [Accelerator(node["NodeID"], platform, arch, i, gpu=gpus > 0) for i in range(count)]


def worker_id_for(accelerator: Accelerator, pid: int) -> str:
    """What the worker is called in leases and provenance: where it runs, as Ray and the OS see it."""
    return f"ray:{accelerator.slot}:{socket.gethostname()}:{pid}"


class WorkerActor:
    """Runs in a Ray actor process (made remote in Fleet): the worker loop on a thread of its own.
    Its signing key is read where it runs (KREG_SIGNING_KEY, forwarded by the fleet)."""

    def __init__(self, config: WorkerConfig, accelerator: Accelerator) -> None:
        logs.configure(os.environ.get("KREG_LOG_FORMAT", "text"))
        self.config = replace(
            config,
            worker_id=worker_id_for(accelerator, os.getpid()),
            capabilities=(Capability(accelerator.platform, accelerator.arch),),
            use_device=accelerator.gpu,
            signing_key=SigningKey.from_env(),
        )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._why = ""
        self._thread = threading.Thread(target=self._run, name="kreg-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            run_worker(self.config, self._stop, on_ready=lambda info: self._ready.set())
            self._why = "stopped"
        except BaseException as e:  # noqa: BLE001 - reported to the fleet, which starts another worker
            log.exception("worker %s ended", self.config.worker_id)
            self._why = f"{type(e).__name__}: {e}"
        finally:
            self._ended.set()

    def ready(self, timeout_s: float) -> str:
        """The worker's id once it leases (its device probed); RuntimeError if it ended first or
        did not get there in `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.2):
            if self._ended.is_set() or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.config.worker_id} did not start: {self._why or 'timed out'}")
        return self.config.worker_id

    def wait_ended(self) -> str:
        """Returns (why) when the worker loop ends; the fleet holds this call open to learn of it."""
        self._ended.wait()
        return self._why

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    ray_address: str
    worker: WorkerConfig  # registry, lease, settings; worker_id and capabilities are set per accelerator
    reconcile_s: float = 10.0
    call_timeout_s: float = 30.0  # any one Ray call (an actor's reply, the cluster's state)
    start_timeout_s: float = 600.0  # a worker up: scheduled, imports done, device probed
    stop_timeout_s: float = 30.0
    worker_cpus: float = 0.0  # CPUs each worker reserves in Ray's accounting
    env: Mapping[str, str] = field(default_factory=lambda: {k: v for k in FORWARDED_ENV if (v := os.environ.get(k))})


@dataclass
class _Running:
    accelerator: Accelerator
    actor: Any
    ready: Any  # ObjectRef of actor.ready(): resolves when the worker leases
    ended: Any  # ObjectRef of actor.wait_ended(): resolves when the loop ends or the actor dies
    started_at: float
    worker_id: str = ""


class Fleet:
    """The workers of a Ray cluster, kept at one per accelerator. `reconcile` is one pass."""

    def __init__(self, config: FleetConfig) -> None:
        import ray

        self.config = config
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=config.ray_address, logging_level=logging.WARNING)
        # ready, wait_ended and stop are served beside each other; the fleet, not Ray, restarts workers.
        self._actor_class = ray.remote(max_concurrency=4, max_restarts=0)(WorkerActor)  # type: ignore[call-overload]  # the overloads cover tasks only
        self._running: dict[str, _Running] = {}
        self._waiting: set[str] = set()  # queued jobs already reported as waiting

    def accelerators(self) -> dict[str, Accelerator]:
        found: dict[str, Accelerator] = {}
        for node in self._ray.nodes():
            try:
                found.update((a.slot, a) for a in node_accelerators(node))
            except ValueError as e:
                log.error("%s: no workers placed there", e)
        return found

    def reconcile(self) -> None:
        wanted = self.accelerators()
        for slot in list(self._running):
            why = self._gone(slot, wanted)
            if why is not None:
                log.warning("worker %s (%s): %s", slot, self._running[slot].worker_id or "starting", why)
                self._ray.kill(self._running.pop(slot).actor, no_restart=True)
        for slot, accelerator in wanted.items():
            if slot not in self._running:
                self._start(accelerator)

    def _gone(self, slot: str, wanted: Mapping[str, Accelerator]) -> str | None:
        """Why the worker in `slot` must go (and be started again if its node remains), or None."""
        running = self._running[slot]
        if slot not in wanted:
            return "its node or accelerator left the cluster"
        done, _ = self._ray.wait([running.ready], timeout=0)
        if not done:
            if time.monotonic() - running.started_at > self.config.start_timeout_s:
                return f"not up after {self.config.start_timeout_s:.0f}s; starting another"
            return None
        if not running.worker_id:
            try:
                running.worker_id = self._ray.get(running.ready, timeout=self.config.call_timeout_s)
            except Exception as e:  # noqa: BLE001 - RayActorError, the actor's own error, a timeout
                return f"failed to start ({type(e).__name__}: {e}); starting another"
            log.info("worker %s up: %s", slot, running.worker_id)
            return None
        done, _ = self._ray.wait([running.ended], timeout=0)
        if not done:
            return None
        try:
            why = self._ray.get(running.ended, timeout=self.config.call_timeout_s)
        except Exception as e:  # noqa: BLE001 - the actor died (killed, OOM, its node went)
            return f"died ({type(e).__name__}); starting another"
        return f"worker loop ended ({why}); starting another"

    def _start(self, accelerator: Accelerator) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = self._actor_class.options(
            num_cpus=self.config.worker_cpus,
            num_gpus=1 if accelerator.gpu else 0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(accelerator.node_id, soft=False),
            runtime_env={"env_vars": dict(self.config.env)} if self.config.env else None,
        ).remote(self.config.worker, accelerator)
        ready = actor.ready.remote(self.config.start_timeout_s)
        self._running[accelerator.slot] = _Running(accelerator, actor, ready, actor.wait_ended.remote(), time.monotonic())
        log.info("starting a worker for %s/%s on node %s", accelerator.platform, accelerator.arch, accelerator.node_id[:12])

    def report_waiting(self, client: Client) -> None:
        """Log each queued job that no live worker anywhere can take, when it starts waiting."""
        try:
            queued, _ = client.list_jobs(state=JobState.QUEUED, page_size=1000)
        except KregError as e:
            log.warning("listing queued jobs failed: %s", e)
            return
        waiting = {j.job_id: j for j in queued if j.waiting_for}
        for job_id in waiting.keys() - self._waiting:
            log.warning("job %s for %s waits: %s", job_id[:12], waiting[job_id].key, waiting[job_id].waiting_for)
        self._waiting = set(waiting)

    def run(self, stop: threading.Event) -> None:
        """Reconcile until `stop` is set, then stop every worker."""
        with Client(self.config.worker.registry, timeout_s=self.config.call_timeout_s) as client:
            try:
                while True:
                    self.reconcile()
                    self.report_waiting(client)
                    if stop.wait(self.config.reconcile_s):
                        break
            finally:
                self.shutdown()

    def shutdown(self) -> None:
        """Ask every worker to finish its job and stop; kill those that do not in time (their
        leases expire and the jobs go to other workers)."""
        stopping = {slot: r.actor.stop.remote(self.config.stop_timeout_s) for slot, r in self._running.items()}
        stopped: list[Any] = []
        if stopping:
            stopped, _ = self._ray.wait(list(stopping.values()), num_returns=len(stopping), timeout=self.config.stop_timeout_s + 5)
        for running in self._running.values():
            self._ray.kill(running.actor, no_restart=True)
        log.info("fleet stopped: %d workers stopped, %d killed", len(stopped), len(stopping) - len(stopped))
        self._running.clear()
