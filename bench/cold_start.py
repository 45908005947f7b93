"""Cold start of a serving host: every kernel of a model ready from a warm registry, against
the same kernels reached by Triton's JIT, by Triton's autotuner, and by torch.compile.

    python bench/cold_start.py --out bench/results/cold-start-h200.json [--phases ...]

Set-up (not timed): an embedded registry (local LMDB) and the local worker generate and
publish TUNED kernels for every key of the `dlrm-v2` and `hstu-ranker` profiles on this
host's GPU (`--setup-candidates` configs each, timed on the profile's first shape: the
kernels' speed is not what is measured here).

Then, per model and phase, one fresh Python process with empty Triton and Inductor caches
(TRITON_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR) and an empty node cache. Each child first
imports torch (and kreg) and creates the CUDA context (`process_start_s`, not counted), then
times:

- registry: `kreg.ops.configure(...)` + `kreg.ops.preload()` — one GetManifest, every blob
  fetched (in parallel) and verified against its digest, every binary loaded on the device
  (the node cache is written behind, off this path); then each op's
  first call at its profile shape is checked against the reference (not timed; `first_call_ms`).
- jit: the served source and config of each kernel, compiled by Triton at its first launch.
- autotune: each entry point under `triton.autotune` over the template's pruned config space
  for this GPU (the space the generator searches), configs deduplicated by the constexprs the
  entry point takes, written outputs restored between benchmark runs (`restore_value`).
- torch_compile: the PyTorch reference of each op under `torch.compile(dynamic=False)`.

Writes one row per model: {model, n_kernels, registry_s, jit_s, autotune_s, torch_compile_s,
per_kernel_ms, device, torch, triton, date} plus each phase's per-op breakdown. A phase cut
short by `--deadline-s` reports the ops it finished and `complete: false`; its total is null.
Rows already in `--out` are updated phase by phase, so the phases can run in separate calls.

`--profile DIR` runs one more registry child per model under cProfile (not counted: the
profiler slows what it watches) and writes where its time went to DIR/registry-<model>.txt.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import cProfile
import datetime
import importlib.metadata
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
MODELS = ("dlrm-v2", "hstu-ranker")
PHASES = ("registry", "jit", "torch_compile", "autotune")
NEEDS_REGISTRY = {"registry", "jit"}


# ---------------------------------------------------------------- the parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write (rows in it are updated)")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--phases", nargs="*", default=list(PHASES), choices=PHASES)
    parser.add_argument("--setup-candidates", type=int, default=1)
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="stop starting ops after this many seconds")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--stop-at", type=float, help=argparse.SUPPRESS)  # time.time() past which a child starts no op
    parser.add_argument("--wait-pids", nargs="*", type=int, default=[], help="after the set-up, measure only once these processes have exited")
    parser.add_argument("--profile", type=Path, help="also profile one registry child per model, writing DIR/registry-<model>.txt")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.model, args.registry, args.stop_at)), flush=True)
        return 0

    began = time.time()
    stop_at = began + args.deadline_s
    rows = {r["model"]: r for r in json.loads(args.out.read_text())} if args.out.exists() else {}
    with contextlib.ExitStack() as stack:
        address = None
        if NEEDS_REGISTRY & set(args.phases):
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            address = _warm_registry(stack, data_dir, args.models, args.setup_candidates)
        _wait_for(args.wait_pids)
        # Phase by phase, the slow ones last: a deadline cuts the autotuner, not the registry.
        for phase in sorted(args.phases, key=PHASES.index):
            for model in args.models:
                row = rows.setdefault(model, {"model": model})
                print(f"{model}: {phase}", flush=True)
                result = _child(phase, model, address, stop_at)
                row[phase] = result
                row.pop(f"{phase}_s", None)
                if result.get("complete"):
                    row[f"{phase}_s"] = result["total_s"]
                if phase == "registry" and result.get("complete"):
                    row["n_kernels"] = result["n_kernels"]
                    row["per_kernel_ms"] = result["total_s"] * 1e3 / result["n_kernels"]
                row.update(result["versions"])
                _write(args.out, rows)
                print(f"  {_summary(result)}", flush=True)
                if phase == "registry" and args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    _child(phase, model, address, stop_at, profile=args.profile / f"registry-{model}.txt")
    _print_table(rows)
    return 0


def _warm_registry(stack: contextlib.ExitStack, data_dir: Path, models: list[str], candidates: int) -> str:
    """The address of an embedded registry (open until `stack` closes) holding a TUNED kernel
    for every key of the models' profiles."""
    from kreg.client import Client
    from kreg.keys import KernelKey
    from kreg.model import JobState
    from kreg.profiles import profile, tuning_shapes

    from generator.evaluators import Evaluators
    from generator.pipeline import GenerationSettings
    from generator.search import SearchBudget
    from generator.worker import WorkerConfig, process, worker_info
    from registry.embedded import EmbeddedRegistry
    from registry.server import ServerConfig

    registry = stack.enter_context(EmbeddedRegistry(ServerConfig(data_dir=data_dir, listen="127.0.0.1:0")))
    budget = SearchBudget(max_candidates=candidates, max_seconds=120, draft=1, plateau=0)
    config = WorkerConfig(registry=registry.address, settings=GenerationSettings(tuned_budget=budget))
    started = time.monotonic()
    with Evaluators() as evaluators, Client(registry.address, timeout_s=60) as client:
        device = evaluators.device
        if device is None:
            raise SystemExit("no GPU here: the cold start is measured on the serving host's GPU")
        for model in models:
            for op in profile(model):
                # The profile's first shape only: the set-up is not what is measured.
                key = KernelKey(device.platform, device.arch, model, op)
                client.request_generation([key], tuning_shapes=tuning_shapes(model, op)[:1])
        info = worker_info(config, evaluators)
        while (job := client.lease_job(info, wait_s=0.5, lease_s=900)) is not None:
            process(client, job, evaluators, config)
            done, _ = client.get_job(job.job_id)
            print(f"  set-up {job.key}: {done.state.name} {done.last_error}", flush=True)
            if done.state is not JobState.SUCCEEDED:  # the registry phase reports the key as not loaded
                print(f"  SET-UP FAILED {job.key}", flush=True)
    print(f"set-up: {time.monotonic() - started:.0f}s", flush=True)
    return str(registry.address)


def _wait_for(pids: list[int]) -> None:
    """Let slow phases run in other processes beside the set-up without sharing the host
    with what is measured here."""
    for pid in pids:
        while _running(pid):
            time.sleep(0.5)


def _running(pid: int) -> bool:
    """Whether `pid` still runs (an exited child its shell has not reaped yet is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _child(phase: str, model: str, address: str | None, stop_at: float, profile: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cold-") as caches:
        env = {
            **os.environ,
            "TRITON_CACHE_DIR": f"{caches}/triton",
            "TORCHINDUCTOR_CACHE_DIR": f"{caches}/inductor",
            "KREG_BENCH_NODE_CACHE": f"{caches}/node",
            **({"KREG_BENCH_PROFILE": str(profile)} if profile else {}),
        }
        cmd = [sys.executable, str(HERE), "--out", "-", "--child", phase, "--model", model, "--stop-at", str(stop_at)]
        if address:
            cmd += ["--registry", address]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or "").splitlines()[-15:])
        return {"complete": False, "error": f"exit {done.returncode}: {tail}", "versions": {}}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write(path: Path, rows: Mapping[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows.values()), indent=1) + "\n")


def _summary(result: Mapping[str, Any]) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"
    done = f"{result['total_s']:.3f}s" if result.get("complete") else f"cut short after {len(result['ops'])} ops"
    return f"{done}: {result['n_ops']} ops, {result['n_kernels']} kernels; process start {result['process_start_s']:.2f}s"


def _print_table(rows: Mapping[str, dict[str, Any]]) -> None:
    print("\n| model | kernels | registry s | ms/kernel | JIT s | autotune s | torch.compile s | JIT+autotune / registry |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows.values():
        cells = [r.get(k) for k in ("registry_s", "per_kernel_ms", "jit_s", "autotune_s", "torch_compile_s")]
        ratio = (r["jit_s"] + r["autotune_s"]) / r["registry_s"] if all(cells[i] for i in (0, 2, 3)) else None
        text = ["-" if c is None else f"{c:.3f}" for c in cells] + ["-" if ratio is None else f"{ratio:,.0f}×"]
        print(f"| {r['model']} | {r.get('n_kernels', '-')} | " + " | ".join(text) + " |")


# ---------------------------------------------------------------- the children


def _start() -> tuple[float, dict[str, str]]:
    """torch imported and the CUDA context made: what every process pays before any kernel."""
    started = time.perf_counter()
    import torch

    torch.empty(1, device="cuda")
    torch.cuda.synchronize()
    versions = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "triton": importlib.metadata.version("triton"),
        "date": datetime.date.today().isoformat(),
    }
    return time.perf_counter() - started, versions


def _platform_arch() -> tuple[str, str]:
    import torch

    return "nvidia", "sm_{}{}".format(*torch.cuda.get_device_capability(0))


def _profile_calls(model: str) -> list[tuple[Any, Any, dict[str, str], dict[str, int]]]:
    """(spec, template, params, dims of its first profile shape) for each profile kernel."""
    from kreg.profiles import PROFILES

    from generator.operators import OPERATORS

    return [
        (k.operator, OPERATORS[k.operator.name], dict(k.operator.params), dict(k.tuning_shapes[0].dims))
        for k in PROFILES[model]
    ]


def registry_child(model: str, address: str, stop_at: float) -> dict[str, Any]:
    process_start_s, versions = _start()
    import torch

    # A serving host imports its libraries at start, as it imports torch: not counted.
    import kreg.ops
    import kreg.ops.loaded  # noqa: F401
    import kreg.ops.provider  # noqa: F401
    import kreg.profiles  # noqa: F401
    from kreg.client import Client

    platform, arch = _platform_arch()
    # The serving host's node cache starts empty: every blob is streamed and written there.
    client = Client(address, timeout_s=60, cache_dir=os.environ["KREG_BENCH_NODE_CACHE"])
    profiler = cProfile.Profile() if "KREG_BENCH_PROFILE" in os.environ else None
    t0 = time.perf_counter()
    with profiler or contextlib.nullcontext():
        provider = kreg.ops.configure(client, model=model, platform=platform, arch=arch)
        decisions = provider.preload()
        torch.cuda.synchronize()
    total_s = time.perf_counter() - t0
    if profiler is not None:
        with open(os.environ["KREG_BENCH_PROFILE"], "w") as out:
            out.write(f"{model}: {total_s * 1e3:.1f} ms under the profiler\n")
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
    from generator.operators.base import compare

    ops = []
    for (spec, template, params, dims), decision in zip(_profile_calls(model), decisions):
        loaded = provider.loaded(spec)
        op: dict[str, Any] = {"op": str(spec), "path": decision.path, "reason": decision.reason[:300]}
        if loaded is not None:
            inputs = template.make_inputs(params, dims, 7, "cuda")
            started = time.perf_counter()
            got = loaded(params, inputs)
            torch.cuda.synchronize()
            op["first_call_ms"] = (time.perf_counter() - started) * 1e3
            op["kernels"] = len(loaded.kernels)
            want = template.reference(params, inputs)
            checks = [compare(got[name], want[name], *template.tolerance(want[name].dtype)) for name in want]
            op["matches_reference"] = all(c.ok for c in checks)
            op["max_relative_error"] = max(c.max_relative_error for c in checks)
            del inputs, got, want
            torch.cuda.empty_cache()
        ops.append(op)
    binary = all(d.path == "binary" for d in decisions)
    return {
        "complete": binary, "total_s": total_s, "n_kernels": sum(o.get("kernels", 0) for o in ops), "n_ops": len(ops), "process_start_s": process_start_s,
        "ops": ops, "versions": versions,
        **({} if binary else {"error": "not every kernel loaded as a binary: " + "; ".join(str(d) for d in decisions if d.path != "binary")}),
    }


OneOp = Callable[[Any, Any, dict[str, str], dict[str, int]], dict[str, Any]]


def _timed_ops(model: str, stop_at: float, make: Callable[[], OneOp]) -> dict[str, Any]:
    """Run the function `make` returns (made after process start) per profile kernel; each
    makes its inputs before its clock starts and returns its seconds. Stops at stop_at."""
    process_start_s, versions = _start()
    import torch

    one = make()
    ops: list[dict[str, Any]] = []
    calls = _profile_calls(model)
    for spec, template, params, dims in calls:
        if time.time() > stop_at:
            break
        result = one(spec, template, params, dims)
        ops.append({"op": str(spec), **result})
        torch.cuda.empty_cache()
    complete = len(ops) == len(calls)
    return {
        "complete": complete,
        "total_s": sum(o["s"] for o in ops) if complete else None,
        "n_kernels": sum(o.get("kernels", 0) for o in ops),
        "n_ops": len(ops),
        "process_start_s": process_start_s,
        "ops": ops,
        "versions": versions,
    }


def jit_child(model: str, address: str, stop_at: float) -> dict[str, Any]:
    from kreg.client import Client
    from kreg.ops.loaded import load_artifact

    client = Client(address, timeout_s=60)
    platform, arch = "", ""

    def make() -> OneOp:
        nonlocal platform, arch
        platform, arch = _platform_arch()
        return one

    def one(spec: Any, template: Any, params: dict[str, str], dims: dict[str, int]) -> dict[str, Any]:
        import torch
        from kreg.keys import KernelKey

        artifact = client.get_kernel(KernelKey(platform, arch, model, spec)).artifact
        blobs = {k.source: client.fetch_blob(k.source) for k in artifact.kernels}
        inputs = template.make_inputs(params, dims, 7, "cuda")
        started = time.perf_counter()
        op = load_artifact(artifact, blobs.__getitem__, None)  # the source path: Triton compiles at first launch
        op(params, inputs)
        torch.cuda.synchronize()
        return {"s": time.perf_counter() - started, "kernels": len(artifact.kernels), "config": str(op.config)}

    return _timed_ops(model, stop_at, make)


def autotune_child(model: str, address: str | None, stop_at: float) -> dict[str, Any]:
    import triton

    from generator.hardware import record_for
    from generator.operators.base import load_kernel_module
    from generator.prune import prune, tile_elements

    record: Any = None

    def make() -> OneOp:
        nonlocal record
        record = record_for(*_platform_arch())
        return one

    def one(spec: Any, template: Any, params: dict[str, str], dims: dict[str, int]) -> dict[str, Any]:
        import torch

        tile = template.tile_elements
        space, _ = prune(template.config_space(params), record, (lambda c: tile(params, c)) if tile else tile_elements)
        inputs = template.make_inputs(params, dims, 7, "cuda")
        outputs = template.allocate_outputs(params, inputs)
        launches = template.launches(params, space[0], inputs, outputs)
        written = {id(t) for t in outputs.values()}
        source = template.kernel_source
        started = time.perf_counter()
        module = load_kernel_module(template.kernel_source_path)
        tuners: dict[str, Any] = {}
        configs_per_kernel: dict[str, int] = {}
        for index, launch in enumerate(launches):
            if launch.entry_point not in tuners:
                runtime, constexprs = _parameters(source, launch.entry_point)
                taken = [n for n in space[0].constexprs if n in constexprs]
                unique = {(tuple((n, c.constexprs[n]) for n in taken), c.num_warps, c.num_stages): c for c in space}
                configs = [
                    triton.Config(dict(constexprs), num_warps=warps, num_stages=stages)
                    for constexprs, warps, stages in unique
                ]
                restore = [n for n, a in zip(runtime, launch.args) if id(a) in written]
                tuners[launch.entry_point] = triton.autotune(configs=configs, key=[], restore_value=restore)(
                    getattr(module, launch.entry_point)
                )
                configs_per_kernel[launch.entry_point] = len(configs)
            grid = _grid_for(template, params, space[0], inputs, outputs, index)
            tuners[launch.entry_point][grid](*launch.args, **launch.constexprs)
        torch.cuda.synchronize()
        return {"s": time.perf_counter() - started, "kernels": len(tuners), "configs": configs_per_kernel}

    return _timed_ops(model, stop_at, make)


def _parameters(source: str, entry_point: str) -> tuple[list[str], list[str]]:
    """(runtime, constexpr) parameter names of a kernel, in order, by their annotations."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            fixed = [a.arg for a in node.args.args if a.annotation is not None and "constexpr" in ast.unparse(a.annotation)]
            return [a.arg for a in node.args.args if a.arg not in fixed], fixed
    raise ValueError(f"no kernel {entry_point} in the source")


def _grid_for(template: Any, params: dict[str, str], base: Any, inputs: Any, outputs: Any, index: int) -> Callable[[Mapping[str, Any]], tuple[int, ...]]:
    """The grid of launch `index` under the config the autotuner is trying (grids follow the tiles)."""
    from kreg.ops.launch import Config

    def grid(meta: Mapping[str, Any]) -> tuple[int, ...]:
        config = Config({n: meta.get(n, v) for n, v in base.constexprs.items()}, base.num_warps, base.num_stages)
        return tuple(template.launches(params, config, inputs, outputs)[index].grid)

    return grid


def torch_compile_child(model: str, address: str | None, stop_at: float) -> dict[str, Any]:
    def one(spec: Any, template: Any, params: dict[str, str], dims: dict[str, int]) -> dict[str, Any]:
        import torch

        inputs = template.make_inputs(params, dims, 7, "cuda")
        started = time.perf_counter()
        compiled = torch.compile(lambda x: template.reference(params, x), dynamic=False)
        compiled(inputs)
        torch.cuda.synchronize()
        return {"s": time.perf_counter() - started}

    return _timed_ops(model, stop_at, lambda: one)


CHILDREN: dict[str, Callable[[str, Any, float], dict[str, Any]]] = {
    "registry": registry_child,
    "jit": jit_child,
    "autotune": autotune_child,
    "torch_compile": torch_compile_child,
}

if __name__ == "__main__":
    sys.exit(main())
