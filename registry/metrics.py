"""Prometheus metrics of the registry.

Prometheus conventions: base units (seconds, bytes), `_total` counters, explicit histogram
buckets. Every label is bounded (methods, codes, kinds, states, operators, platforms,
arches): never a digest, key, job or worker id. The gRPC family is the standard one
(grpc_server_*, as go-grpc-prometheus and py-grpc-prometheus name it), recorded by the
handler wrapper of registry.handlers; what the store holds is read when Prometheus scrapes
(RegistryCollector), so nothing on the request path keeps gauges up to date.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from kreg.model import ArtifactState, Resolution, ResolutionKind

if TYPE_CHECKING:
    from registry.core import Registry

# ---------------------------------------------------------------- gRPC

GRPC_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class MethodStats:
    """One method's calls. Plain numbers, not prometheus_client children: every handler runs on
    the server's one event loop thread, so nothing races, and the read path is spared the
    children's locks (a scrape from the exporter's thread reads whole ints under the GIL)."""

    __slots__ = ("started", "handled", "buckets", "seconds")

    def __init__(self) -> None:
        self.started = 0
        self.handled: dict[str, int] = {}
        self.buckets = [0] * (len(GRPC_SECONDS_BUCKETS) + 1)  # the last: above every bound
        self.seconds = 0.0

    def start(self) -> float:
        """Count a call started; returns the clock reading `done` takes."""
        self.started += 1
        return time.perf_counter()

    def done(self, began: float, code: str) -> None:
        seconds = time.perf_counter() - began
        self.handled[code] = self.handled.get(code, 0) + 1
        self.buckets[bisect.bisect_left(GRPC_SECONDS_BUCKETS, seconds)] += 1
        self.seconds += seconds


class GrpcCollector(Collector):
    """grpc_server_started_total, grpc_server_handled_total{grpc_code} and the
    grpc_server_handling_seconds histogram, from each method's MethodStats."""

    def __init__(self) -> None:
        self._methods: dict[tuple[str, str, str], MethodStats] = {}

    def method(self, grpc_type: str, service: str, name: str) -> MethodStats:
        return self._methods.setdefault((grpc_type, service, name), MethodStats())

    def collect(self) -> Iterator[Any]:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        started = CounterMetricFamily("grpc_server_started_total", "RPCs started on the server.", labels=labels)
        handled = CounterMetricFamily(
            "grpc_server_handled_total", "RPCs completed on the server, whatever their status.", labels=[*labels, "grpc_code"]
        )
        seconds = HistogramMetricFamily(
            "grpc_server_handling_seconds", "Time from an RPC's start to its status, as the server saw it.", labels=labels
        )
        for key, stats in list(self._methods.items()):
            started.add_metric(list(key), stats.started)
            for code, n in sorted(stats.handled.items()):
                handled.add_metric([*key, code], n)
            cumulative, total = [], 0
            for bound, n in zip((*map(str, GRPC_SECONDS_BUCKETS), "+Inf"), stats.buckets):
                total += n
                cumulative.append((bound, total))
            seconds.add_metric(list(key), cumulative, stats.seconds)
        yield from (started, handled, seconds)


GRPC = GrpcCollector()
REGISTRY.register(GRPC)

# ---------------------------------------------------------------- resolution

RESOLUTIONS = Counter("kreg_resolutions_total", "Kernel resolutions answered, by kind.", ["kind"])
MISSES = Counter("kreg_resolution_misses_total", "Resolutions of a key with nothing published for it (answered: use the reference).")
FALLBACKS = Counter(
    "kreg_resolution_fallbacks_total",
    "Resolutions of a key with a published kernel that answered less than its binary: source to JIT, or the reference.",
    ["kind"],
)


def _children(kind: ResolutionKind, published: bool) -> tuple[Any, ...]:
    children = [RESOLUTIONS.labels(kind.name.lower())]
    if not published:
        children.append(MISSES)
    elif kind is not ResolutionKind.BINARY:
        children.append(FALLBACKS.labels(kind.name.lower()))
    return tuple(children)


# Bound once: labels() per resolution cost more than the rest of a kept one.
_RESOLUTION_CHILDREN = {(kind, published): _children(kind, published) for kind in ResolutionKind for published in (False, True)}


def resolution_outcome(resolution: Resolution) -> tuple[ResolutionKind, bool]:
    """What a resolution counts as: its kind, and whether anything was published for the key
    (resolving explains every published variant, so decisions are empty exactly when none is)."""
    return resolution.kind, bool(resolution.decisions)


def count_resolutions(outcomes: Iterable[tuple[ResolutionKind, bool]]) -> None:
    for outcome in outcomes:
        for child in _RESOLUTION_CHILDREN[outcome]:
            child.inc()


# ---------------------------------------------------------------- blobs and jobs

BLOB_BYTES_SERVED = Counter("kreg_blob_served_bytes_total", "Blob bytes streamed by FetchBlob.")
BLOB_SIZE = Histogram(
    "kreg_blob_size_bytes",
    "Sizes of the blobs published (sources, binaries, metadata).",
    buckets=tuple(float(1 << shift) for shift in range(10, 30, 2)),  # 1 KiB .. 256 MiB, by 4x
)
JOBS_QUEUED = Counter("kreg_jobs_queued_total", "Generation jobs queued (a key already queued is not counted again).")
JOB_SECONDS = Histogram(
    "kreg_job_duration_seconds",
    "Generation jobs that ended, from queued to their end.",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
JOB_ENDED = {outcome: JOB_SECONDS.labels(outcome) for outcome in ("succeeded", "failed")}


# ---------------------------------------------------------------- read at scrape


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


class RegistryCollector(Collector):
    """What the registries of this process hold, read when Prometheus scrapes: store size,
    jobs by state, live workers by target, and the served kernels' evidence by operator and
    target. (One registry per process in production; tests may run several, summed.)"""

    def __init__(self) -> None:
        self._registries: list[Registry] = []

    def attach(self, registry: Registry) -> None:
        self._registries.append(registry)

    def detach(self, registry: Registry) -> None:
        if registry in self._registries:
            self._registries.remove(registry)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        map_size = GaugeMetricFamily("kreg_lmdb_map_size_bytes", "Size of the LMDB memory map (it grows when full).")
        used = GaugeMetricFamily("kreg_lmdb_used_bytes", "Bytes of the LMDB map in use.")
        blobs = GaugeMetricFamily("kreg_blobs", "Blobs stored.")
        artifacts = GaugeMetricFamily("kreg_artifacts", "Artifacts stored, every state.")
        jobs = GaugeMetricFamily("kreg_jobs", "Generation jobs stored, by state.", labels=["state"])
        workers = GaugeMetricFamily("kreg_workers_live", "Workers heard from lately, by the target they serve.", labels=["platform", "arch"])
        served = GaugeMetricFamily("kreg_served_kernels", "Active published kernels, by operator and target.", labels=["operator", "platform", "arch"])
        speedup = GaugeMetricFamily(
            "kreg_served_speedup_ratio",
            "Geometric mean over the active kernels of an operator and target of their speedup over PyTorch eager (timed ones only).",
            labels=["operator", "platform", "arch"],
        )
        roofline = GaugeMetricFamily(
            "kreg_served_roofline_ratio",
            "Mean over the active timed kernels of an operator and target of the fraction of peak (bandwidth or FLOP/s, the higher) they reach.",
            labels=["operator", "platform", "arch"],
        )
        state_counts: dict[str, int] = defaultdict(int)
        live: dict[tuple[str, str], int] = defaultdict(int)
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        speedups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        fractions: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        totals = [0, 0, 0, 0]
        for registry in list(self._registries):
            stats = registry.store_stats()
            for i, value in enumerate((stats.map_size_bytes, stats.used_bytes, stats.blobs, stats.artifacts)):
                totals[i] += value
            for state, n in stats.jobs_by_state.items():
                state_counts[state.lower()] += n
            for worker in registry.list_workers(include_gone=False):
                for capability in worker.info.capabilities:
                    live[(capability.platform, capability.arch)] += 1
            for artifact in registry.all_artifacts():
                if artifact.state is not ArtifactState.ACTIVE:
                    continue
                labels = (artifact.key.operator.name, artifact.key.platform, artifact.key.arch)
                counts[labels] += 1
                if artifact.measurements.speedup_vs_eager > 0:
                    speedups[labels].append(artifact.measurements.speedup_vs_eager)
                shapes = artifact.measurements.shapes
                if shapes and any(s.bandwidth_fraction or s.flops_fraction for s in shapes):
                    fractions[labels].append(sum(max(s.bandwidth_fraction, s.flops_fraction) for s in shapes) / len(shapes))
        for family, value in zip((map_size, used, blobs, artifacts), totals):
            family.add_metric([], value)
        for state, n in sorted(state_counts.items()):
            jobs.add_metric([state], n)
        for (platform, arch), n in sorted(live.items()):
            workers.add_metric([platform, arch], n)
        for labels, n in sorted(counts.items()):
            served.add_metric(list(labels), n)
        for labels, values in sorted(speedups.items()):
            speedup.add_metric(list(labels), _geomean(values))
        for labels, values in sorted(fractions.items()):
            roofline.add_metric(list(labels), sum(values) / len(values))
        yield from (map_size, used, blobs, artifacts, jobs, workers, served, speedup, roofline)


COLLECTOR = RegistryCollector()
REGISTRY.register(COLLECTOR)
