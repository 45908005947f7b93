"""Generate TUNED kernels for the starting operators on this host's GPU, through the real
path (embedded registry, worker, isolated evaluator), and record what was measured.

    python bench/generate_kernels.py --out bench/results

Writes bench/results/kernels-<device>.json: one row per operator and tuning shape,
{op, key, shape, dtype, kernel_ms, eager_ms, compile_ms, speedup_eager, speedup_compile,
bandwidth_frac, device, torch, triton, date}. bandwidth_frac is achieved bytes/s over the
copy bandwidth measured on this device in the same run (null where not memory-bound).
Then loads each served kernel the way a serving host does (kreg.ops) and checks it
against the reference.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import Artifact, CandidateStatus, JobState
from kreg.profiles import PROFILES

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.search import SearchBudget
from generator.worker import WorkerConfig, process, worker_info
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig

# Operators whose cost is moving bytes; the dot interaction does (F+1)^2 D MACs per sample
# but at these shapes is still bound by memory (its bandwidth fraction is reported too).
MEMORY_BOUND = {"sigrid_hash", "jagged_sum", "jagged_softmax", "dlrm_dot_interaction"}


def device_slug(name: str) -> str:
    match = re.search(r"(h100|h200|a100|b200|mi300x|mi250x|l40s)", name.lower())
    return match.group(1) if match else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def rows_for(artifact: Artifact, device: str, date: str) -> list[dict[str, object]]:
    versions = {"torch": importlib.metadata.version("torch"), "triton": artifact.toolchain.triton_version}
    op = artifact.key.operator
    out = []
    for m in artifact.measurements.shapes:
        out.append(
            {
                "op": op.name,
                "key": str(artifact.key),
                "shape": dict(m.shape.dims),
                "dtype": op.params.get("dtype", "fp32"),
                "kernel_ms": m.median_ms,
                "eager_ms": m.eager_ms,
                "compile_ms": m.compile_ms,
                "speedup_eager": m.eager_ms / m.median_ms,
                "speedup_compile": m.compile_ms / m.median_ms,
                "bandwidth_frac": m.bandwidth_fraction if op.name in MEMORY_BOUND else None,
                "verdict": artifact.verdict.name,
                "device": device,
                **versions,
                "date": date,
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--max-candidates", type=int, default=12)
    parser.add_argument("--ops", nargs="*", help="operator names (default: all of the dlrm-v2 and hstu-ranker profiles)")
    args = parser.parse_args()

    date = datetime.date.today().isoformat()
    settings = GenerationSettings(tuned_budget=SearchBudget(max_candidates=args.max_candidates, max_seconds=300, draft=6, plateau=5))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRegistry(ServerConfig(data_dir=Path(tmp), listen="127.0.0.1:0")) as registry:
        with Evaluators() as evaluators:
            device = evaluators.device
            if device is None:
                print("no GPU here: TUNED kernels need the target device", file=sys.stderr)
                return 2
            print(f"device {device.name} ({device.platform}/{device.arch}), copy {device.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
            config = WorkerConfig(registry=registry.address, settings=settings)
            info = worker_info(config, evaluators)
            keys = [
                KernelKey(device.platform, device.arch, model, op)
                for model, ops in PROFILES.items()
                for op in ops
                if not args.ops or op.name in args.ops
            ]
            with Client(registry.address, timeout_s=60) as client:
                client.request_generation(keys)
                while (job := client.lease_job(info, wait_s=0.5, lease_s=600)) is not None:
                    started = time.monotonic()
                    print(f"generating {job.key}", flush=True)
                    process(client, job, evaluators, config)
                    done, log = client.get_job(job.job_id)
                    by_status = Counter(c.status.name.lower() for c in log)
                    print(f"  {done.state.name} in {time.monotonic() - started:.0f}s: {dict(by_status)} {done.last_error}", flush=True)
                    for c in log:
                        if c.status not in (CandidateStatus.PASSED, CandidateStatus.PRUNED):
                            print(f"    {c.status.name.lower()} {c.config}: {c.reason[:300]}", flush=True)
                rows: list[dict[str, object]] = []
                for key in keys:
                    variants = client.describe_kernel(key)
                    rows += [r for a in variants for r in rows_for(a, device.name, date)]
                failed = [j for j in client.list_jobs()[0] if j.state is JobState.FAILED]
            served = check_served(registry.address, keys, device.platform, device.arch)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"kernels-{device_slug(device.name)}.json"
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {path} ({len(rows)} rows)")
    print(f"{'op':22} {'shape':44} {'kernel':>9} {'eager':>9} {'compile':>9} {'x eager':>8} {'x comp':>7} {'bw':>5}")
    for r in rows:
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items())  # type: ignore[union-attr]
        bw = f"{r['bandwidth_frac']:.0%}" if r["bandwidth_frac"] is not None else "-"
        print(
            f"{r['op']:22} {shape[:44]:44} {r['kernel_ms']:9.4f} {r['eager_ms']:9.4f} {r['compile_ms']:9.4f}"
            f" {r['speedup_eager']:8.2f} {r['speedup_compile']:7.2f} {bw:>5}"
        )
    for job in failed:
        print(f"FAILED {job.key}: {job.last_error}")
    print("\nserved through kreg.ops (a serving host's path):")
    for line in served:
        print(f"  {line}")
    return 1 if failed or any("MISMATCH" in line for line in served) else 0


def _call_op(name: str, inputs: dict[str, Any]) -> Any:
    from kreg import ops

    if name == "jagged_sum":
        return ops.jagged_sum(inputs["values"], inputs["offsets"])
    if name == "jagged_softmax":
        return ops.jagged_softmax(inputs["values"], inputs["offsets"], max_len=inputs["max_L"])
    if name == "dlrm_dot_interaction":
        return ops.dlrm_dot_interaction(inputs["dense"], inputs["sparse"])
    return ops.sigrid_hash(inputs["ids"], salt=inputs["salt"], modulus=inputs["M"])


def check_served(address: str, keys: list[KernelKey], platform: str, arch: str) -> list[str]:
    """Each published kernel, resolved, fetched, loaded and launched by kreg.ops in this
    process, against the reference on a tuning shape."""
    from kreg import ops

    from generator.operators import OPERATORS
    from generator.operators.base import compare

    lines = []
    for key in keys:
        template = OPERATORS[key.operator.name]
        params = dict(key.operator.params)
        with tempfile.TemporaryDirectory() as cache:
            ops.configure(Client(address, timeout_s=30), model=key.model, platform=platform, arch=arch, cache_dir=Path(cache))
            inputs = template.make_inputs(params, template.tuning_shapes(params)[0].dims, 5, "cuda")
            started = time.monotonic()
            got = _call_op(key.operator.name, inputs)
            first_call_s = time.monotonic() - started
            decision = ops.last_decision(key.operator.name)
            want = template.reference(params, inputs)["out"]
            rtol, atol = template.tolerance(want.dtype)
            verdict = compare(got, want, rtol, atol)
            status = "ok" if verdict.ok else "MISMATCH"
            lines.append(f"{status}, max rel err {verdict.max_relative_error:.2g}, first call incl. resolve+fetch+load {first_call_s * 1e3:.0f} ms: {decision}")
            ops.reset()
    return lines


if __name__ == "__main__":
    sys.exit(main())
