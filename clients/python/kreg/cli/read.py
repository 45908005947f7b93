"""Read verbs: get, manifest, ls, describe, jobs, workers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kreg.cli import EXIT_REFERENCE
from kreg.cli._common import client_for, runtime_for
from kreg.cli._output import (
    ARTIFACT_HEADERS,
    JOB_HEADERS,
    RESOLUTION_HEADERS,
    ProgressBar,
    WORKER_HEADERS,
    artifact_row,
    job_row,
    print_json,
    print_table,
    progress,
    resolution_row,
    worker_row,
)
from kreg.keys import KernelKey, OperatorSpec
from kreg.model import Job, JobState, Resolution, ResolutionKind
from kreg.profiles import profile


def _print_resolution(r: Resolution) -> None:
    print_table(RESOLUTION_HEADERS[:-1], [resolution_row(r)[:-1]])
    print(f"\n{r.kind.name.lower()}: {r.reason}")
    for d in r.decisions:
        print(f"  {'+' if d.accepted else '-'} {d.artifact_id[:12]}  {d.reason}")


def get(args: argparse.Namespace) -> int:
    key = KernelKey.parse(args.key)
    with client_for(args, runtime_for(key.platform, args.toolchain)) as client:
        if args.wait > 0:
            progress(f"waiting up to {args.wait:.0f}s for {key}")
            seen: list[str] = []

            def report(update: object) -> None:
                job = getattr(update, "job", None)
                note = f"WAITING: {job.waiting_for}" if job and job.waiting_for else job.progress if job else ""
                line = f"  job {job.job_id[:12]} {job.state.name.lower()} {note}".rstrip() if job else ""
                if line and (not seen or seen[-1] != line):
                    seen.append(line)
                    progress(line)

            resolution = client.wait_for_kernel(key, timeout_s=args.wait, on_update=report)
        else:
            resolution = client.get_kernel(key, queue=not args.no_queue)
    if args.json:
        print_json(resolution)
    else:
        _print_resolution(resolution)
    return EXIT_REFERENCE if args.wait > 0 and resolution.kind is ResolutionKind.REFERENCE else 0


def manifest(args: argparse.Namespace) -> int:
    operators = [OperatorSpec.parse(op) for op in args.operators] or list(profile(args.model, training=args.training))
    cache = Path(args.cache) if args.lock else None
    with client_for(args, runtime_for(args.platform, args.toolchain), cache) as client:
        if args.lock:
            bars: list[ProgressBar] = []
            lock = client.pin_manifest(
                args.platform, args.arch, args.model, operators, Path(args.lock),
                on_pinned=lambda pinned: bars.append(ProgressBar("fetching blobs", len(pinned.digests()))),
                on_fetched=lambda digest: bars[0].advance(note=f"{digest.sha256[:12]} ({digest.size_bytes:,} B)"),
            )
            bars[0].close()
            resolutions = list(lock.resolutions)
            progress(f"pinned {len(resolutions)} resolutions and {len(lock.digests())} blobs to {args.lock}")
        else:
            resolutions = client.get_manifest(args.platform, args.arch, args.model, operators, queue=not args.no_queue)
    if args.json:
        print_json(resolutions)
    else:
        print_table(RESOLUTION_HEADERS, [resolution_row(r) for r in resolutions])
    return 0


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        artifacts = []
        for a in client.iter_kernels(platform=args.platform, arch=args.arch, model=args.model, operator_name=args.op):
            artifacts.append(a)
            if len(artifacts) >= args.limit:
                break
    if args.json:
        print_json(artifacts)
    else:
        print_table(ARTIFACT_HEADERS, [artifact_row(a) for a in artifacts])
    return 0


def describe(args: argparse.Namespace) -> int:
    target: KernelKey | str = KernelKey.parse(args.target) if "/" in args.target else args.target
    with client_for(args) as client:
        artifacts = client.describe_kernel(target)
    if args.json:
        print_json(artifacts)
        return 0
    if not artifacts:
        print(f"no variants published for {target}")
    for a in artifacts:
        print(f"artifact {a.artifact_id}\n  key        {a.key}\n  state      {a.state.name.lower()} {a.retract_reason}".rstrip())
        print(f"  tier       {a.tier.name}  verdict {a.verdict.name.lower()}\n  target     {a.target.backend}/{a.target.arch} warp {a.target.warp_size}")
        print(f"  toolchain  {a.toolchain}\n  worker     {a.provenance.worker_id or '-'} on {a.provenance.device or '-'}")
        for m in a.measurements.shapes:
            dims = ",".join(f"{k}={v}" for k, v in m.shape.dims.items())
            print(f"  timed      {dims}: {m.median_ms:.4g} ms (eager {m.eager_ms:.4g}, compile {m.compile_ms:.4g})")
        for k in a.kernels:
            binary = f"{k.binary_format} {k.binary.sha256[:12]} ({k.binary.size_bytes} B)" if k.binary else "source only"
            print(f"  kernel     {k.name}: {k.entry_point} {binary} warps={k.abi.num_warps} stages={k.abi.num_stages}")
    return 0


def jobs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.job_id:
            job, candidates = client.get_job(args.job_id)
            if args.json:
                print_json({"job": job, "candidates": candidates})
                return 0
            print_table(JOB_HEADERS, [job_row(job)])
            if candidates:
                print()
                print_table(
                    ("status", "median", "config", "reason"),
                    [(c.status.name.lower(), f"{c.median_ms:.4g} ms" if c.median_ms else "-", c.config, c.reason) for c in candidates],
                )
            return 0
        state = JobState[args.state.upper()] if args.state else None
        listed: list[Job] = []
        token = ""
        while len(listed) < args.limit:
            page, token = client.list_jobs(state=state, page_token=token)
            listed += page
            if not token:
                break
    listed = listed[: args.limit]
    if args.json:
        print_json(listed)
    else:
        print_table(JOB_HEADERS, [job_row(j) for j in listed])
    return 0


def workers(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        listed = client.list_workers(include_gone=args.all)
    if args.json:
        print_json(listed)
    else:
        now = time.time()
        print_table(WORKER_HEADERS, [worker_row(w, now) for w in listed])
    return 0
