"""Generation throughput of one host's GPUs: every kernel of the `dlrm-v2` and `hstu-ranker`
profiles generated TUNED by one worker per GPU, through the product's path (issue 10).

    python bench/scaling.py --out bench/results/scaling-h200.json [--gpus N] [--deadline-s 480]

An embedded registry (local LMDB in a temporary directory) and `--gpus N` worker processes
(`python -m kreg.cli --registry ADDR worker --serve PLATFORM/ARCH`, worker i pinned to GPU i
by CUDA_VISIBLE_DEVICES; default N: every visible GPU). Once every worker has probed its GPU
and polled the registry (`worker_startup_s`, not counted), one RequestGeneration per key of
both profiles, with the profile's tuning shapes, and the normal TUNED search budget (the
workers' default; `--max-candidates` lowers it and the row says so).

Not `kreg fleet`: the Ray executor needs Ray on the GPU host, and the GPU machine this was
written for has no Ray and cannot take its wheel (larger than the 64 MiB that travels there).
The processes started here are what `kreg fleet` would start on one node, minus Ray.

Measured, from the request to the end of the last job (the registry's updated_at of the job
turned terminal): time_to_manifest_s; candidates_evaluated (records of the jobs' candidate
logs whose status is not PRUNED: compiled and verified, passing or not); candidates per
GPU-minute = evaluated / (N x wall minutes); and per job its state, attempts, worker, when
it was first seen leased (polled every 0.5 s), when it ended, and its candidates by status.
Past `--deadline-s` it stops waiting and reports what finished: `complete: false`,
time_to_manifest_s null, and the rate over the finished jobs up to the last one's end
(candidate logs reach the registry only when a job ends, so a job cut short counts none).

Writes a list of rows to `--out`, the row of the same n_gpus and max_candidates replaced:
{device, n_gpus, torch, triton, date, time_to_manifest_s, candidates_evaluated,
candidates_per_gpu_minute, jobs: [...], ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import CandidateRecord, CandidateStatus, Job, JobState
from kreg.profiles import profile, tuning_shapes

from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig

MODELS = ("dlrm-v2", "hstu-ranker")
POLL_S = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write (its row of the same n_gpus is replaced)")
    parser.add_argument("--gpus", type=int, help="worker processes, one per GPU (default: every visible GPU)")
    parser.add_argument("--target", help="PLATFORM/ARCH the workers serve and the keys name (default: GPU 0's, e.g. nvidia/sm_90)")
    parser.add_argument("--max-candidates", type=int, help="lower the TUNED budget's candidates per job (default: the workers' own)")
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="stop waiting this many seconds after the request")
    parser.add_argument("--startup-timeout-s", type=float, default=300, help="seconds the workers may take to come up")
    parser.add_argument("--no-device", action="store_true", help="workers verify in the interpreter: a dry run of this script on a CPU host")
    parser.add_argument("--logs", type=Path, help="directory for each worker's log (default: a temporary one, tails printed on failure)")
    args = parser.parse_args()

    gpus = _visible_gpus()
    n = args.gpus if args.gpus is not None else max(len(gpus), 1)
    if not args.no_device and n > len(gpus):
        raise SystemExit(f"--gpus {n}: only {len(gpus)} GPU(s) visible")
    platform, arch = _target(args.target)
    versions = _versions()
    print(f"{versions['device']}: {n} worker(s) serving {platform}/{arch}, torch {versions['torch']}, triton {versions['triton']}", flush=True)

    keys = [KernelKey(platform, arch, model, op) for model in MODELS for op in profile(model)]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaling-")))
        logs = args.logs or tmp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        registry = stack.enter_context(EmbeddedRegistry(ServerConfig(data_dir=tmp / "data", listen="127.0.0.1:0")))
        client = stack.enter_context(Client(registry.address, timeout_s=60))
        started = time.monotonic()
        workers = [_start_worker(registry.address, f"{platform}/{arch}", gpus[i] if gpus else None, args, logs / f"worker-{i}.log") for i in range(n)]
        stack.callback(_stop_workers, workers)
        _wait_for_workers(client, workers, n, args.startup_timeout_s, logs)
        worker_startup_s = time.monotonic() - started
        print(f"{n} worker(s) up in {worker_startup_s:.0f}s; requesting {len(keys)} keys", flush=True)

        # Wall clock (the registry's timestamps are time.time()): a job's end is its updated_at.
        requested_at = time.time()
        job_ids = [job.job_id for key in keys for job in client.request_generation([key], tuning_shapes=tuning_shapes(key.model, key.operator))]
        jobs, leased_at = _wait_for_jobs(client, job_ids, requested_at, requested_at + args.deadline_s, workers)
        logs_by_job = {j: client.get_job(j)[1] for j in job_ids}

    row = _row(versions, n, args.max_candidates, worker_startup_s, requested_at, jobs, leased_at, logs_by_job)
    if args.no_device:  # the interpreter's budget, not TUNED: such a row measures nothing
        row["budget"] = "dry run: interpreted, no GPU"
    rows = [r for r in json.loads(args.out.read_text()) if (r.get("n_gpus"), r.get("max_candidates")) != (n, args.max_candidates)] if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(sorted([*rows, row], key=lambda r: (r["n_gpus"], r.get("max_candidates") or 0)), indent=1) + "\n")
    _print_summary(row)
    print(f"wrote {args.out}", flush=True)
    return 0 if row["complete"] else 1


def _visible_gpus() -> list[str]:
    """The ids to put in each worker's CUDA_VISIBLE_DEVICES: those of this process's own
    setting when it has one (so the bench can be confined to a subset), else 0..count-1."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def _target(text: str | None) -> tuple[str, str]:
    if text:
        platform, _, arch = text.partition("/")
        return platform, arch
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no GPU here: name the workers' target with --target PLATFORM/ARCH")
    return "nvidia", "sm_{}{}".format(*torch.cuda.get_device_capability(0))


def _versions() -> dict[str, str]:
    import torch

    return {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "triton": importlib.metadata.version("triton"),
        "date": datetime.date.today().isoformat(),
    }


def _start_worker(address: str, target: str, gpu: str | None, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    cmd = [sys.executable, "-m", "kreg.cli", "--registry", address, "worker", "--serve", target]
    if args.max_candidates is not None:
        cmd += ["--max-candidates", str(args.max_candidates)]
    if args.no_device:
        cmd.append("--no-device")
    # Its own process group: the evaluator processes it starts are stopped with it.
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to the worker alone lets it finish its loop (to its group, it would also end
    the evaluator mid-candidate, which the worker logs as a crash); one mid-job (past a
    deadline) does not stop until the job ends, so its group is killed after a grace period."""
    for w in workers:
        if w.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGTERM)
    grace_until = time.monotonic() + 10
    for w in workers:
        try:
            w.wait(timeout=max(grace_until - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, signal.SIGKILL)
            w.wait()


def _wait_for_workers(client: Client, workers: list[subprocess.Popen[bytes]], n: int, timeout_s: float, logs: Path) -> None:
    """Until n workers poll the registry (each probes its GPU first): start-up is not what
    is measured, and a key requested earlier would go to whichever worker came up first."""
    until = time.monotonic() + timeout_s
    while len([w for w in client.list_workers() if w.live(time.time())]) < n:
        dead = [i for i, w in enumerate(workers) if w.poll() is not None]
        if dead or time.monotonic() > until:
            for i in dead or range(len(workers)):
                print(f"--- worker {i} log tail:\n" + "\n".join((logs / f"worker-{i}.log").read_text().splitlines()[-20:]), flush=True)
            raise SystemExit(f"workers {dead} exited during start-up" if dead else f"workers not up after {timeout_s:.0f}s")
        time.sleep(POLL_S)


def _wait_for_jobs(
    client: Client, job_ids: list[str], requested_at: float, stop_at: float, workers: list[subprocess.Popen[bytes]]
) -> tuple[dict[str, Job], dict[str, float]]:
    """Every job as last read, and when each was first seen leased, once all are terminal,
    past stop_at, or once every worker has exited."""
    jobs: dict[str, Job] = {}
    leased_at: dict[str, float] = {}
    reported: set[str] = set()
    while True:
        now = time.time()
        for job_id in job_ids:
            if job_id not in jobs or not jobs[job_id].state.terminal:
                jobs[job_id] = client.get_job(job_id)[0]
            job = jobs[job_id]
            if job.state is not JobState.QUEUED:
                # A job leased and ended between two polls started no later than its end.
                leased_at.setdefault(job_id, min(now, job.updated_at) if job.state.terminal else now)
            if job.state.terminal and job_id not in reported:
                reported.add(job_id)
                took = job.updated_at - leased_at[job_id]
                print(f"  [{now - requested_at:6.0f}s] {len(reported)}/{len(job_ids)} {job.key.model} {job.key.operator}: {job.state.name} in {took:.0f}s {job.last_error[:200]}", flush=True)
        if len(reported) == len(job_ids):
            return jobs, leased_at
        if now > stop_at or all(w.poll() is not None for w in workers):
            why = "deadline" if now > stop_at else "every worker exited"
            print(f"stopped waiting ({why}) after {now - requested_at:.0f}s: {len(reported)}/{len(job_ids)} jobs terminal", flush=True)
            return jobs, leased_at
        time.sleep(POLL_S)


def _row(
    versions: dict[str, str],
    n: int,
    max_candidates: int | None,
    worker_startup_s: float,
    requested_at: float,
    jobs: dict[str, Job],
    leased_at: dict[str, float],
    logs_by_job: dict[str, list[CandidateRecord]],
) -> dict[str, Any]:
    ended = [j.updated_at for j in jobs.values() if j.state.terminal]
    complete = len(ended) == len(jobs)
    wall_s = max(ended) - requested_at if ended else None
    evaluated = sum(1 for log in logs_by_job.values() for c in log if c.status is not CandidateStatus.PRUNED)
    rows = []
    for job_id, job in jobs.items():
        by_status = Counter(c.status.name.lower() for c in logs_by_job[job_id])
        start = leased_at.get(job_id)
        rows.append({
            "model": job.key.model,
            "op": str(job.key.operator),
            "state": job.state.name,
            "attempts": job.attempts,
            "worker_id": job.worker_id,
            "leased_at_s": None if start is None else round(start - requested_at, 1),
            "ended_at_s": round(job.updated_at - requested_at, 1) if job.state.terminal else None,
            "duration_s": round(job.updated_at - start, 1) if job.state.terminal and start is not None else None,
            "evaluated": sum(v for s, v in by_status.items() if s != "pruned"),
            "candidates": dict(by_status),
            "last_error": job.last_error[:300],
        })
    return {
        **versions,
        "n_gpus": n,
        "max_candidates": max_candidates,
        "budget": "TUNED default" if max_candidates is None else f"TUNED, at most {max_candidates} candidates per job",
        "complete": complete,
        "n_jobs": len(jobs),
        "jobs_terminal": len(ended),
        "jobs_succeeded": sum(1 for j in jobs.values() if j.state is JobState.SUCCEEDED),
        "worker_startup_s": round(worker_startup_s, 1),
        "time_to_manifest_s": round(wall_s, 1) if complete and wall_s is not None else None,
        # Cut short: the finished jobs' candidates over the time to the last one's end.
        "measured_until_s": None if wall_s is None else round(wall_s, 1),
        "candidates_evaluated": evaluated,
        "candidates_per_gpu_minute": round(evaluated / (n * wall_s / 60), 2) if wall_s else None,
        "jobs": sorted(rows, key=lambda r: (r["ended_at_s"] is None, r["ended_at_s"] or 0)),
    }


def _print_summary(row: dict[str, Any]) -> None:
    print("\n| model | op | state | leased at s | duration s | evaluated | candidates |\n|---|---|---|---:|---:|---:|---|")
    for j in row["jobs"]:
        print(f"| {j['model']} | {j['op']} | {j['state']} | {j['leased_at_s']} | {j['duration_s']} | {j['evaluated']} | {j['candidates']} |")
    print(
        f"\n{row['device']}, {row['n_gpus']} GPU(s), {row['budget']}: {row['jobs_terminal']}/{row['n_jobs']} jobs terminal "
        f"({row['jobs_succeeded']} succeeded); time to manifest {row['time_to_manifest_s']} s; "
        f"{row['candidates_evaluated']} candidates evaluated in {row['measured_until_s']} s = {row['candidates_per_gpu_minute']} per GPU-minute",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
