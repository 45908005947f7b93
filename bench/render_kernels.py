"""Render bench/results/kernels-<device>.json as the Markdown of BENCHMARKS.md, with the
suite's summary against issue 4's targets.

    python bench/render_kernels.py bench/results/kernels-h200.json

A row whose kernel_sha256 is not the digest of the operator's kernel.py today measured an
earlier version of the kernel: it is marked stale (†) and listed, so the page never passes
off old numbers as the current code's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BANDWIDTH_TARGET = 0.70
COMPILE_TARGET = 1.3


def current_kernel_sha256(op: str) -> str:
    from generator.operators import OPERATORS  # its kernel.py may be another operator's (the padding gradients)

    return hashlib.sha256(OPERATORS[op].kernel_source_path.read_bytes()).hexdigest()


def stale(row: dict[str, Any]) -> bool:
    return row.get("kernel_sha256") != current_kernel_sha256(row["op"])


def geomean(xs: Iterable[float]) -> float:
    values = list(xs)
    return math.exp(sum(math.log(x) for x in values) / len(values)) if values else float("nan")


def _shape(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(row["shape"].items()))


def _roofline(row: dict[str, Any]) -> str:
    if row["bound"] == "memory":
        sized = f" ({row['copy_frac']:.0%} of same-size copy)" if "copy_frac" in row else ""
        return f"{row['bandwidth_frac']:.0%} BW{sized}"
    return f"{row['flops_frac'] or 0:.0%} FLOP"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| operator | dtype | shape | kernel µs | eager µs | compile µs | vs eager | vs compile | roofline | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mark = " †" if stale(r) else ""
        lines.append(
            f"| {r['op']}{mark} | {r['dtype']} | {_shape(r)} | {r['kernel_ms'] * 1e3:.1f} | {r['eager_ms'] * 1e3:.1f} "
            f"| {r['compile_ms'] * 1e3:.1f} | {r['speedup_eager']:.2f}× | {r['speedup_compile']:.2f}× | {_roofline(r)} "
            f"| {r['verdict'].lower()} |"
        )
    return lines


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per operator: geometric means over its shapes; then the suite's over operators (issue
    4's targets are the forward operators'; backward operators are summed up apart)."""
    by_op: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    lines = [
        "| operator | vs eager | vs compile | roofline (min–max over shapes) | verdict |",
        "|---|---:|---:|---|---|",
    ]
    for op, rs in by_op.items():
        if rs[0]["bound"] == "memory":
            fracs = [r["bandwidth_frac"] for r in rs]
            roof = f"{min(fracs):.0%}–{max(fracs):.0%} of copy BW" + ("" if min(fracs) >= BANDWIDTH_TARGET else " (under 70%)")
            if all("copy_frac" in r for r in rs):
                sized = [r["copy_frac"] for r in rs]
                roof += f"; {min(sized):.0%}–{max(sized):.0%} of a same-size copy"
        else:
            fracs = [r["flops_frac"] or 0.0 for r in rs]
            roof = f"{min(fracs):.0%}–{max(fracs):.0%} of bf16 matmul"
        mark = " †" if any(stale(r) for r in rs) else ""
        lines.append(
            f"| {op}{mark} | {geomean(r['speedup_eager'] for r in rs):.2f}× | {geomean(r['speedup_compile'] for r in rs):.2f}× "
            f"| {roof} | {rs[0]['verdict'].lower()} |"
        )
    backward = {op: rs for op, rs in by_op.items() if op.endswith("_backward")}
    by_op = {op: rs for op, rs in by_op.items() if op not in backward}
    per_op = [geomean(r["speedup_compile"] for r in rs) for rs in by_op.values()]
    memory_ops = [op for op, rs in by_op.items() if rs[0]["bound"] == "memory"]
    under = [op for op in memory_ops if min(r["bandwidth_frac"] for r in by_op[op]) < BANDWIDTH_TARGET]
    # Against a copy of the same bytes, which pays the same launch latency and size effects.
    timed = [op for op in memory_ops if all("copy_frac" in r for r in by_op[op])]
    under_sized = [op for op in timed if min(r["copy_frac"] for r in by_op[op]) < BANDWIDTH_TARGET]
    slower = [
        f"{r['op']} at {_shape(r)} ({r['speedup_eager']:.2f}× eager)"
        for r in rows
        if r["verdict"] == "USE_KERNEL" and r["speedup_eager"] < 1
    ]
    lines += [
        "",
        f"- Suite (forward): {len(by_op)} operators, geometric mean **{geomean(per_op):.2f}×** over torch.compile "
        f"(target ≥ {COMPILE_TARGET}×).",
        f"- Memory-bound operators at ≥ 70% of the copy bandwidth on every tuning shape: "
        f"{len(memory_ops) - len(under)} of {len(memory_ops)} (under: {', '.join(under) or 'none'}).",
        f"- The same against a device-to-device copy of the same bytes at each shape: "
        f"{len(timed) - len(under_sized)} of {len(timed)} timed (under: {', '.join(under_sized) or 'none'}).",
        f"- Served (verdict use_kernel) on a shape where it is slower than eager: {'; '.join(slower) or 'none'}.",
    ]
    if backward:
        lines += [
            "",
            f"- Backward operators: {len(backward)}, geometric mean "
            f"**{geomean(geomean(r['speedup_compile'] for r in rs) for rs in backward.values()):.2f}×** over "
            f"torch.compile's backward pass, {geomean(geomean(r['speedup_eager'] for r in rs) for rs in backward.values()):.2f}× over eager's.",
        ]
    stale_ops = sorted({r["op"] for r in rows if stale(r)})
    if stale_ops:
        lines.append(f"- † measured on an earlier kernel.py than today's: {', '.join(stale_ops)}.")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    rows = json.loads(args.results.read_text())
    print("\n".join(table(rows) + [""] + summary(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
