"""Which workers are live, and why a queued job is not being taken.

A fleet has workers of many kinds coming and going (Ray nodes, GPU node pools); a job for a
platform no live worker serves would otherwise sit QUEUED with nothing to say. The roster
is what the registry has heard: a worker is live until the end of its lease poll, or of the
lease it holds, plus a grace for the gap before its next call. It is kept in memory, not in
the store: after a restart it fills again within one poll of every worker.
"""

from __future__ import annotations

from dataclasses import replace

from kreg.model import Job, JobState, WorkerInfo, WorkerStatus


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"


class WorkerRoster:
    def __init__(self, grace_s: float, started_at: float) -> None:
        self._grace_s = grace_s
        self._started_at = started_at
        self._workers: dict[str, WorkerStatus] = {}

    def polling(self, worker: WorkerInfo, now: float, until: float) -> None:
        """`worker` waits for a job until `until`."""
        held = self._workers.get(worker.worker_id)
        job_id = held.job_id if held is not None and held.live(now) else ""
        self._workers[worker.worker_id] = WorkerStatus(worker, now, until + self._grace_s, job_id)

    def holding(self, worker: WorkerInfo, job: Job, now: float) -> None:
        """`worker` took `job`, whose lease runs to job.lease_expires_at."""
        self._workers[worker.worker_id] = WorkerStatus(worker, now, job.lease_expires_at + self._grace_s, job.job_id)

    def renewed(self, job: Job, now: float) -> None:
        held = self._workers.get(job.worker_id)
        if held is not None:  # unknown after a registry restart until the worker polls again
            self._workers[job.worker_id] = replace(held, last_seen=now, live_until=job.lease_expires_at + self._grace_s, job_id=job.job_id)

    def released(self, job: Job, now: float) -> None:
        """The job's worker reported it (completed or failed) and will poll again."""
        held = self._workers.get(job.worker_id)
        if held is not None and held.job_id == job.job_id:
            self._workers[job.worker_id] = replace(held, last_seen=now, live_until=now + self._grace_s, job_id="")

    def workers(self, now: float, include_gone: bool = False) -> list[WorkerStatus]:
        return sorted((w for w in self._workers.values() if include_gone or w.live(now)), key=lambda w: w.info.worker_id)

    def explain(self, jobs: list[Job], now: float) -> list[Job]:
        """`jobs`, each queued one carrying why no live worker takes it (Job.waiting_for)."""
        live = [w.info for w in self.workers(now)]
        return [replace(j, waiting_for=self._waiting_for(j, live, now)) if j.state is JobState.QUEUED else j for j in jobs]

    def _waiting_for(self, job: Job, live: list[WorkerInfo], now: float) -> str:
        if any(w.can_run(job) for w in live):
            return ""
        target = f"{job.key.platform}/{job.key.arch}"
        serving = [w for w in live if w.can_serve(job.key)]
        if serving:
            have = sorted({str(w.toolchain) if w.toolchain else "no triton" for w in serving})
            return f"no live worker for {target} has toolchain {job.toolchain} (they have {', '.join(have)})"
        gone = [w for w in self._workers.values() if w.info.can_serve(job.key)]
        if gone:
            last = max(gone, key=lambda w: w.last_seen)
            return f"no live worker serves {target} (last: {last.info.worker_id}, {_ago(now - last.last_seen)} ago)"
        return f"no worker serving {target} has polled since the registry started {_ago(now - self._started_at)} ago"
