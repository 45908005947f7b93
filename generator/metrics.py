"""Prometheus metrics of a generation worker (`kreg worker --metrics-port`).

Same conventions as the registry's (registry/metrics.py): base units, `_total` counters,
explicit buckets, bounded labels (outcomes, phases, candidate statuses, operators, targets).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kreg.model import CandidateStatus

JOBS = Counter("kreg_worker_jobs_total", "Jobs this worker finished, by outcome.", ["outcome"])
JOB_OUTCOMES = {o: JOBS.labels(o) for o in ("published", "failed", "crashed", "lease_lost")}
JOB_SECONDS = Histogram(
    "kreg_worker_job_duration_seconds",
    "From lease to report, the jobs this worker finished.",
    ["operator", "platform", "arch"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
PHASE_SECONDS = Histogram(
    "kreg_worker_phase_duration_seconds",
    "Time in each phase of a job: prune (the config space), search (compile, verify, time every "
    "candidate), peers (time PyTorch eager and torch.compile), reverify, package, publish.",
    ["phase"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
)
PHASES = {p: PHASE_SECONDS.labels(p) for p in ("prune", "search", "peers", "reverify", "package", "publish")}
CANDIDATES = Counter("kreg_worker_candidates_total", "Candidates evaluated, by how they ended.", ["status"])
CANDIDATE_STATUSES = {s: CANDIDATES.labels(s.name.lower()) for s in CandidateStatus}
