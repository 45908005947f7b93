"""Training step time of examples/train_dlrm.py on this host's GPU: served kernels (forward
and backward) against PyTorch eager and torch.compile of the same model on the references.

    python bench/generate_kernels.py --training --ops sigrid_hash jagged_sum jagged_sum_backward \\
        dlrm_dot_interaction dlrm_dot_interaction_backward dcn_lowrank_cross dcn_lowrank_cross_backward \\
        --data /tmp/kreg-data --out bench/results           # TUNED kernels for the dlrm-v2 keys
    python bench/train_step.py --data /tmp/kreg-data --out bench/results/train-step-h200.json

The model is the example's `--size production` (the dlrm-v2 profile's keys: 26 tables of
128-wide fp32 rows, 8192 samples with bags of 0-40 ids, the bf16 dot interaction and
3456-wide rank-512 cross network). Variants, each a fresh model from the same seed on the
same batches (drawn once, on the GPU):

- eager: the model on kreg.ops.reference (plain PyTorch), autograd's backward;
- compile: the same under torch.compile (inductor, default mode): forward and backward graphs;
- kreg: the model on kreg.ops, configured from the registry in --data (preload with the
  backward keys): the served binaries run forward and backward; an op with nothing served
  runs its reference (each op's decision is recorded);
- kreg_compile: that model under torch.compile (the kreg ops are opaque nodes in its graphs).

Per variant: warm-up steps (compiles included) not timed, then --steps steps, each timed with
CUDA events around forward + backward + SGD update; median, p20, p80. The first step's loss
of each variant is recorded: all variants start from the same weights and batch.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_dlrm", ROOT / "examples" / "train_dlrm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_dlrm"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def time_variant(example: ModuleType, size: Any, ops: ModuleType, compiled: bool, batches: list[Any], warmup: int, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = example.DLRM(size, ops).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    run = torch.compile(model) if compiled else model
    started = time.monotonic()
    first_loss = float(example.step(run, optimizer, batches[0]))
    for i in range(1, warmup):
        example.step(run, optimizer, batches[i % len(batches)])
    torch.cuda.synchronize()
    warmup_s = time.monotonic() - started
    times = []
    for i in range(steps):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        example.step(run, optimizer, batches[i % len(batches)])
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    quantiles = statistics.quantiles(times, n=10)
    return {
        "median_ms": statistics.median(times),
        "p20_ms": quantiles[1],
        "p80_ms": quantiles[7],
        "first_loss": first_loss,
        "warmup_s": warmup_s,
        "steps": steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the registry's LMDB directory holding the kernels")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="production")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=["eager", "kreg", "compile", "kreg_compile"])
    args = parser.parse_args()

    import kreg.ops
    from kreg.client import Client
    from kreg.ops import reference
    from registry.embedded import EmbeddedRegistry
    from registry.server import ServerConfig

    from generator.evaluate import probe

    example = _example()
    size = example.SIZES[args.size]
    device = probe()
    if device is None:
        print("no GPU here", file=sys.stderr)
        return 2
    generator = torch.Generator().manual_seed(1)
    batches = [example.batch(size, generator, torch.device("cuda")) for _ in range(4)]
    result: dict[str, Any] = {
        "device": device.name,
        "torch": torch.__version__,
        "triton": importlib.metadata.version("triton"),
        "date": datetime.date.today().isoformat(),
        "size": args.size,
        "variants": {},
    }
    with EmbeddedRegistry(ServerConfig(data_dir=args.data, listen="127.0.0.1:0")) as registry:
        client = Client(registry.address, timeout_s=60)
        kreg.ops.configure(client, model="dlrm-v2", platform=device.platform, arch=device.arch)
        preloaded = kreg.ops.preload(training=True)
        result["preloaded"] = [[str(d.key.operator) if d.key else d.operator, d.path, d.artifact_id] for d in preloaded]
        for line in result["preloaded"]:
            print("preloaded", *line, flush=True)
        for variant in args.variants:
            ops = kreg.ops if variant.startswith("kreg") else reference
            torch._dynamo.reset()
            timing = time_variant(example, size, ops, variant.endswith("compile"), batches, args.warmup, args.steps)
            if ops is kreg.ops:
                timing["decisions"] = {
                    op: [d.path, d.artifact_id, d.reason] if (d := kreg.ops.last_decision(op)) else ["reference", "", "not called"]
                    for op in example.OPS + example.BACKWARD_OPS
                }
            result["variants"][variant] = timing
            print(variant, json.dumps(timing), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
        kreg.ops.reset()
        client.close()
    eager = result["variants"].get("eager", {}).get("median_ms")
    for variant, timing in result["variants"].items():
        ratio = f", {eager / timing['median_ms']:.2f}x eager" if eager else ""
        print(f"{variant}: {timing['median_ms']:.2f} ms per step{ratio}, first loss {timing['first_loss']:.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
