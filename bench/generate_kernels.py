"""Generate TUNED kernels for the whole operator suite on this host's GPU, through the real
path (embedded registry, worker, isolated evaluator), and record what was measured.

    python bench/generate_kernels.py --out bench/results [--ops NAME ...] [--deadline-s 540]

The keys are those of every model profile (kreg.profiles) plus, for operators no profile
names, one key each (SUITE_EXTRA), so that all twelve operators of OPERATORS.md are covered.
Jobs are tuned on the template's shapes (the operator's OPERATORS.md row, a superset of each
profile's shapes), so that every operator is measured over its whole row.

Writes bench/results/kernels-<device>.json after every job (a run cut short keeps what it
finished): one row per key and tuning shape, {op, key, shape, dtype, kernel_ms, eager_ms,
compile_ms, speedup_eager, speedup_compile, bytes, bandwidth_frac, copy_ms, copy_frac,
flops_frac, bound, verdict, candidates, config (the winner's), kernel_sha256, device, torch, triton, date}.
bandwidth_frac is the minimum bytes moved / time / the copy bandwidth of a large copy measured
in the same run; copy_ms times a device-to-device copy of those same bytes (half read, half
written: the floor of launch latency and size that any kernel moving them pays), copy_frac =
copy_ms / kernel_ms; flops_frac is counted operations / time / a bf16 matrix product's rate.
Rows of keys this run does not generate are kept from the file (rows of an older format are
dropped), so a suite measured over several calls (`--ops`, one run per operator) accumulates
in one file.
With `--training` the profiles' backward operators are generated too (their peers: PyTorch's
backward pass of the reference, eager and compiled). Then loads each served forward kernel the
way a serving host does (kreg.ops, fresh node cache), checks it against the reference, and prints the table and the suite's summary against issue
4's targets (bench/render_kernels.py, which also renders the JSON for BENCHMARKS.md).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kreg.client import Client
from kreg.keys import ANY_MODEL, KernelKey, OperatorSpec
from kreg.model import Artifact, CandidateStatus, JobState
from kreg.profiles import PROFILES, profile

from generator.evaluators import Evaluators
from generator.operators import OPERATORS
from generator.pipeline import GenerationSettings
from generator.search import SearchBudget
from generator.worker import WorkerConfig, process, worker_info
from registry.embedded import EmbeddedRegistry
from registry.server import ServerConfig

import render_kernels  # bench/ is on sys.path when this file runs as a script

# Operators and variants of OPERATORS.md that no model profile names, served for any model.
SUITE_EXTRA = (
    OperatorSpec.parse("jagged_flash_attention@1{D=128,dtype=bf16}"),
    # The embedding-bag variant of pooling (row 6): bags gathered from a 1M-row table.
    OperatorSpec.parse("jagged_sum@1{D=128,dtype=fp32,gather=1}"),
)

# Bound by arithmetic at their tuning shapes (held to the matrix-product ceiling); every other
# operator moves bytes and is held to the copy bandwidth.
COMPUTE_BOUND = {"hstu_attention", "jagged_flash_attention", "dcn_lowrank_cross"}
COMPUTE_BOUND |= {f"{name}_backward" for name in COMPUTE_BOUND} | {"dlrm_dot_interaction_backward"}

# How a serving host calls each operator through kreg.ops, from the template's inputs.
CALLS: dict[str, Callable[[dict[str, str], dict[str, Any]], Any]] = {
    "sigrid_hash": lambda p, i: _ops().sigrid_hash(i["ids"], salt=i["salt"], modulus=i["M"]),
    "bucketize_sparse_features": lambda p, i: _ops().bucketize_sparse_features(
        i["offsets"], i["ids"], i["S"], block_sizes=i.get("block_sizes"), positions=p.get("positions") == "1"
    ),
    "batched_dense_bucketize": lambda p, i: _ops().batched_dense_bucketize(i["x"], i["border_values"], i["border_offsets"]),
    "jagged_sum": lambda p, i: (
        _ops().embedding_bag(i["values"], i["indices"], i["offsets"], mean=p.get("mean") == "1", weights=i.get("weights"))
        if p.get("gather") == "1"
        else _ops().jagged_sum(i["values"], i["offsets"], mean=p.get("mean") == "1", weights=i.get("weights"))
    ),
    "jagged_softmax": lambda p, i: _ops().jagged_softmax(i["values"], i["offsets"], max_len=i["max_L"]),
    "dlrm_dot_interaction": lambda p, i: _ops().dlrm_dot_interaction(i["dense"], i["sparse"]),
    "dcn_lowrank_cross": lambda p, i: _ops().dcn_lowrank_cross(i["x0"], i["V"], i["W"], i["bias"]),
    "jagged_truncate": lambda p, i: _ops().jagged_truncate(i["values"], i["offsets"], max_len=i["N"], keep=p.get("keep", "first")),
    "jagged_to_padded_dense": lambda p, i: _ops().jagged_to_padded_dense(
        i["values"], i["offsets"], max_len=i["N"], padding_value=i["padding_value"]
    ),
    "dense_to_jagged": lambda p, i: _ops().dense_to_jagged(i["dense"], i["offsets"], total_L=i["L"]),
    "hstu_attention": lambda p, i: _ops().hstu_attention(
        i["q"], i["k"], i["v"], i["offsets"], max_len=i["max_N"], num_targets=i["num_targets"], alpha=i["alpha"]
    ),
    "jagged_flash_attention": lambda p, i: _ops().jagged_flash_attention(i["q"], i["k"], i["v"], i["offsets"], max_len=i["max_N"]),
    "swish_layer_norm": lambda p, i: _ops().swish_layer_norm(i["x"], i["weight"], i["bias"]),
    "layer_norm_mul": lambda p, i: _ops().layer_norm_mul(i["x"], i["u"], i["weight"], i["bias"], act=p.get("act", "none")),
}


def _ops() -> Any:
    import kreg.ops

    return kreg.ops


def suite_keys(platform: str, arch: str, only: list[str] | None, training: bool = False, model: str | None = None) -> list[KernelKey]:
    """Every profile's keys and the extras (with `model`, that profile's alone)."""
    pairs = [(m, op) for m in PROFILES for op in profile(m, training=training) if model in (None, m)]
    pairs += [(ANY_MODEL, op) for op in SUITE_EXTRA if model is None]
    return [KernelKey(platform, arch, m, op) for m, op in pairs if not only or op.name in only]


def device_slug(name: str) -> str:
    match = re.search(r"(h100|h200|a100|b200|mi300x|mi250x|l40s)", name.lower())
    return match.group(1) if match else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def copy_ms(nbytes: int, cache: dict[int, float]) -> float:
    """Median time of a device-to-device copy that reads and writes `nbytes` bytes in all."""
    if nbytes not in cache:
        import torch
        from triton.testing import do_bench

        src = torch.empty(max(nbytes // 2, 1), dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        cache[nbytes] = float(do_bench(lambda: dst.copy_(src), warmup=25, rep=100, return_mode="median"))
        del src, dst
    return cache[nbytes]


def rows_for(artifact: Artifact, device: str, date: str, copies: dict[int, float]) -> list[dict[str, object]]:
    versions = {"torch": importlib.metadata.version("torch"), "triton": artifact.toolchain.triton_version}
    op = artifact.key.operator
    bound = "compute" if op.name in COMPUTE_BOUND else "memory"
    moved = OPERATORS[op.name].bytes_moved
    return [
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
            "bytes": nbytes,
            "bandwidth_frac": m.bandwidth_fraction,
            "copy_ms": copy,
            "copy_frac": copy / m.median_ms,
            "flops_frac": m.flops_fraction or None,
            "bound": bound,
            "verdict": artifact.verdict.name,
            "candidates": artifact.provenance.candidates_tried,
            "config": {**dict(artifact.kernels[0].abi.constexprs), "num_warps": artifact.kernels[0].abi.num_warps},
            # The kernel source measured: a row whose digest differs from kernel.py's is stale.
            "kernel_sha256": artifact.kernels[0].source.sha256,
            "device": device,
            **versions,
            "date": date,
        }
        for m in artifact.measurements.shapes
        for nbytes in [moved(dict(op.params), m.shape.dims)]
        for copy in [copy_ms(nbytes, copies)]
    ]


def generate_all(
    client: Client,
    keys: list[KernelKey],
    evaluators: Evaluators,
    config: WorkerConfig,
    deadline: float,
    on_done: Callable[[], None],
    first_shape: bool = False,
) -> None:
    """Lease and process every queued job in this process until done or past the deadline,
    calling `on_done` after each job."""
    info = worker_info(config, evaluators)
    for key in keys:
        shapes = OPERATORS[key.operator.name].tuning_shapes(dict(key.operator.params))
        client.request_generation([key], tuning_shapes=shapes[:1] if first_shape else shapes)
    while time.monotonic() < deadline and (job := client.lease_job(info, wait_s=0.5, lease_s=900)) is not None:
        started = time.monotonic()
        print(f"generating {job.key}", flush=True)
        process(client, job, evaluators, config)
        done, log = client.get_job(job.job_id)
        by_status = Counter(c.status.name.lower() for c in log)
        line = f"{done.state.name} in {time.monotonic() - started:.0f}s: {dict(by_status)} {done.last_error}"
        print(f"  {line}", flush=True)
        for c in log:
            if c.status not in (CandidateStatus.PASSED, CandidateStatus.PRUNED):
                print(f"    {c.status.name.lower()} {c.config}: {c.reason[:400]}", flush=True)
        on_done()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--max-candidates", type=int, default=12)
    parser.add_argument("--draft", type=int, default=6)
    parser.add_argument("--job-seconds", type=float, default=240, help="search time budget per key")
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="lease no new job after this many seconds")
    parser.add_argument("--ops", nargs="*", help="operator names (default: the whole suite)")
    parser.add_argument("--training", action="store_true", help="the profiles' backward operators too (kreg.ops.backward)")
    parser.add_argument("--data", type=Path, help="keep the registry's LMDB here (bench/train_step.py reads it), not in a temp dir")
    parser.add_argument("--model", help="one profile's keys only (no extras)")
    parser.add_argument("--first-shape", action="store_true", help="tune and time on each key's first shape only (a quick set-up)")
    args = parser.parse_args()

    began = time.monotonic()
    date = datetime.date.today().isoformat()
    budget = SearchBudget(max_candidates=args.max_candidates, max_seconds=args.job_seconds, draft=args.draft, plateau=5)
    settings = GenerationSettings(tuned_budget=budget)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRegistry(ServerConfig(data_dir=args.data or Path(tmp), listen="127.0.0.1:0")) as registry:
        with Evaluators() as evaluators:
            device = evaluators.device
            if device is None:
                print("no GPU here: TUNED kernels need the target device", file=sys.stderr)
                return 2
            print(
                f"device {device.name} ({device.platform}/{device.arch}), copy {device.copy_bytes_per_s / 1e12:.2f} TB/s, "
                f"bf16 matmul {device.matmul_flops_per_s / 1e12:.0f} TFLOP/s",
                flush=True,
            )
            keys = suite_keys(device.platform, device.arch, args.ops, args.training, args.model)
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"kernels-{device_slug(device.name)}.json"
            rows: list[dict[str, object]] = []
            generated = {str(k) for k in keys}
            # Rows of an older format (without `bound`, `copy_frac`) cannot be rendered beside these.
            kept = [r for r in json.loads(path.read_text()) if r["key"] not in generated and "copy_frac" in r] if path.exists() else []
            copies: dict[int, float] = {}

            config = WorkerConfig(registry=registry.address, settings=settings)
            with Client(registry.address, timeout_s=60) as client:

                def write_rows() -> None:
                    rows[:] = kept + [r for key in keys for a in client.describe_kernel(key) for r in rows_for(a, device.name, date, copies)]
                    path.write_text(json.dumps(rows, indent=1) + "\n")

                generate_all(client, keys, evaluators, config, began + args.deadline_s, write_rows, args.first_shape)
                write_rows()
                jobs = client.list_jobs(page_size=1000)[0]
            failed = [j for j in jobs if j.state is JobState.FAILED]
            unfinished = [j for j in jobs if not j.state.terminal]
            served = check_served(registry.address, keys, device.platform, device.arch)
    print(f"\nwrote {path} ({len(rows)} rows) in {time.monotonic() - began:.0f}s\n")
    print("\n".join(render_kernels.table(rows) + [""] + render_kernels.summary(rows)))
    for job in failed:
        print(f"FAILED {job.key}: {job.last_error}")
    for job in unfinished:
        print(f"NOT RUN (deadline) {job.key}")
    print("\nserved through kreg.ops (a serving host's path):")
    for line in served:
        print(f"  {line}")
    return 1 if failed or unfinished or any("MISMATCH" in line for line in served) else 0


def check_served(address: str, keys: list[KernelKey], platform: str, arch: str) -> list[str]:
    """Each published kernel resolved, fetched, loaded and launched by kreg.ops in this
    process with an empty node cache, against the reference path of the same call."""
    import torch
    from kreg import ops

    from generator.operators.base import compare

    lines = []
    for key in keys:
        if key.operator.name not in CALLS:  # a backward operator: bench/train_step.py runs it in training steps
            continue
        template = OPERATORS[key.operator.name]
        params = dict(key.operator.params)
        call = CALLS[key.operator.name]
        inputs = template.make_inputs(params, template.tuning_shapes(params)[0].dims, 5, "cuda")
        with tempfile.TemporaryDirectory() as cache:
            ops.configure(Client(address, timeout_s=30), model=key.model, platform=platform, arch=arch, cache_dir=Path(cache))
            started = time.monotonic()
            try:
                got = call(params, inputs)
                torch.cuda.synchronize()
            except Exception as e:  # noqa: BLE001 - a bench reports every failure and goes on
                lines.append(f"MISMATCH {key.operator}: raised {type(e).__name__}: {e}")
                ops.reset()
                continue
            first_call_s = time.monotonic() - started
            decision = ops.last_decision(key.operator)  # by spec: embedding_bag serves jagged_sum{gather=1}
            ops.reset()
        want = call(params, inputs)  # no provider: the reference
        got_t, want_t = (x if isinstance(x, tuple) else (x,) for x in (got, want))
        worst, ok = 0.0, True
        for g, w in zip(got_t, want_t):
            verdict = compare(g, w, *template.tolerance(w.dtype))
            worst, ok = max(worst, verdict.max_relative_error), ok and verdict.ok
        status = "ok" if ok else "MISMATCH"
        lines.append(f"{status}, max rel err {worst:.2g}, first call incl. resolve+fetch+load {first_call_s * 1e3:.0f} ms: {decision}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
