"""`kreg demo`: an embedded registry + local worker, and a serving host of a model asking
for its kernels on several targets: the misses, the jobs with their progress, and the
manifest the host ends up with.

On a CPU host the kernels end INTERPRETED (compiled for the target, verified in Triton's
interpreter); on a GPU host the local arch's end TUNED.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kreg.cli._common import runtime_for
from kreg.cli._output import ProgressBar, print_table, progress, short
from kreg.cli.serve import start_workers, stop_workers
from kreg.client import Client
from kreg.keys import OperatorSpec
from kreg.model import Resolution
from kreg.profiles import profile

DEFAULT_TARGETS = ("nvidia/sm_90", "amd/gfx942")


def _row(r: Resolution) -> list[object]:
    a = r.artifact
    timed = a.measurements.median_ms if a else None
    return [
        str(r.key.operator),
        r.key.arch,
        r.kind.name.lower(),
        a.tier.name if a else "-",
        f"{timed:.4g} ms" if timed is not None else "-",
        f"{a.measurements.speedup_vs_eager:.2f}x" if a and a.measurements.speedup_vs_eager else "-",
        short(a.kernels[0].binary.sha256) if a and a.kernels[0].binary else (short(a.artifact_id) if a else "-"),
    ]


def run(args: argparse.Namespace) -> int:
    targets = [t.partition("/")[::2] for t in (args.target or DEFAULT_TARGETS)]
    operators = profile(args.model)
    with tempfile.TemporaryDirectory(prefix="kreg-demo-") as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "registry"
        from registry.embedded import EmbeddedRegistry
        from registry.server import ServerConfig

        registry = EmbeddedRegistry(ServerConfig(data_dir=data, listen="127.0.0.1:0"))
        workers = start_workers(1, registry.address, quiet=True)
        progress(f"registry on {registry.address} (data in {data}); 1 local worker")
        try:
            manifest = _play_serving_hosts(registry.address, args.model, targets, operators, args.wait)
        finally:
            stop_workers(workers, 10)
            registry.stop()
    print()
    print_table(("operator", "arch", "kind", "tier", "latency", "vs eager", "binary"), [_row(r) for r in manifest])
    return 0 if all(r.artifact is not None for r in manifest) else 7


def _play_serving_hosts(address: str, model: str, targets: list[tuple[str, str]], operators: tuple[OperatorSpec, ...], wait_s: float) -> list[Resolution]:
    for platform, arch in targets:
        with Client(address, runtime=runtime_for(platform, None)) as host:
            resolutions = host.get_manifest(platform, arch, model, operators)
        misses = [r for r in resolutions if r.artifact is None]
        progress(f"{platform}/{arch} serving host of {model}: {len(resolutions) - len(misses)} hits, {len(misses)} misses queued")

    deadline = time.monotonic() + wait_s
    with Client(address) as watcher:
        seen: dict[str, str] = {}
        jobs, _ = watcher.list_jobs(page_size=1000)
        bar = ProgressBar("jobs finished", len(jobs))
        finished = 0
        while time.monotonic() < deadline:
            for job in jobs:
                line = f"{job.state.name.lower():9} {job.key.arch:7} {job.key.operator} {job.progress or job.last_error}"
                if seen.get(job.job_id) != line:
                    seen[job.job_id] = line
                    bar.log(f"  job …{job.job_id[-8:]} {line}".rstrip())
            now_finished = sum(j.state.terminal for j in jobs)
            bar.advance(now_finished - finished)
            finished = now_finished
            if jobs and finished == len(jobs):
                break
            time.sleep(0.5)
            jobs, _ = watcher.list_jobs(page_size=1000)
        bar.close()

    manifest = []
    for platform, arch in targets:
        with Client(address, runtime=runtime_for(platform, None)) as host:
            manifest += host.get_manifest(platform, arch, model, operators, queue=False)
    return manifest
