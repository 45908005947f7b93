"""What every operator template provides, and the few helpers they share.

A template is data plus callables (no subclassing): the search reads `config_space`, the
verifier calls `make_inputs` / `edge_cases` / `allocate_outputs` / `run` / `reference` and
compares with `compare`, the benchmark reads `tuning_shapes`, `bytes_moved` and `flops`,
the pruner `tile_elements` where a template has it.

`Config`, `KernelLaunch` and each operator's `allocate_outputs` / `launches` are the
operator's calling convention and live in kreg (kreg.ops.launch, kreg.ops.plans), where
serving hosts that never import the generator find them; they are re-exported here.

torch and triton are imported inside the functions that need them, so that listing
operators, config spaces and tuning shapes (`import generator.operators`) stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.launch import Config, KernelLaunch, Params, next_power_of_2

if TYPE_CHECKING:
    import torch

Dims = Mapping[str, int]
"""Runtime dimensions of one input set, e.g. {"B": 2048, "D": 128, "len_max": 100}."""


@dataclass(frozen=True)
class OperatorTemplate:
    """An operator: its search space, its inputs, its launches and its oracle."""

    name: str
    version: int
    kernel_source_path: Path
    config_space: Callable[[Params], list[Config]]
    make_inputs: Callable[[Params, Dims, int, str], dict[str, Any]]
    edge_cases: Callable[[Params], list[dict[str, int]]]
    tuning_shapes: Callable[[Params], list[TuningShape]]
    allocate_outputs: Callable[[Params, Mapping[str, Any]], dict[str, torch.Tensor]]
    launches: Callable[[Params, Config, Mapping[str, Any], Mapping[str, Any]], list[KernelLaunch]]
    reference: Callable[[Params, Mapping[str, Any]], dict[str, torch.Tensor]]
    bytes_moved: Callable[[Params, Dims], int]
    flops: Callable[[Params, Dims], int | None]
    tolerance: Callable[[torch.dtype], tuple[float, float]]
    # Elements of one program's working tile for the pruner, where the config's BLOCK_* sizes
    # are not the whole tile (a dimension the launch fixes, such as a whole row); None: theirs.
    tile_elements: Callable[[Params, Config], int] | None = None
    # A backward operator's forward template (generator.operators.backward): its peers are the
    # forward reference's backward as PyTorch training runs it, not a call of `reference`.
    forward: OperatorTemplate | None = None

    @property
    def kernel_source(self) -> str:
        """The text shipped as the kernel's source blob."""
        return self.kernel_source_path.read_text()


# --- params -----------------------------------------------------------------------------

FLOAT_DTYPES = ("fp32", "fp16", "bf16")
INDEX_DTYPES = ("int32", "int64")


def check_params(params: Params, allowed: Mapping[str, Sequence[str] | None]) -> None:
    """Refuse unknown params and values outside their choices; `None` means any positive integer.

    A typo in a key (`dtpye=bf16`) must fail at the edge, not silently build an fp32 kernel.
    """
    problems = []
    for name, value in params.items():
        if name not in allowed:
            problems.append(f"unknown param {name!r} (known: {', '.join(sorted(allowed))})")
            continue
        choices = allowed[name]
        if choices is None:
            if not (value.isdigit() and int(value) > 0):
                problems.append(f"param {name}={value!r}: want a positive integer")
        elif value not in choices:
            problems.append(f"param {name}={value!r}: want one of {', '.join(choices)}")
    if problems:
        raise ValueError("; ".join(problems))


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {
        "fp32": torch.float32,
        "fp16": torch.float16,
        "bf16": torch.bfloat16,
        "fp64": torch.float64,
        "int32": torch.int32,
        "int64": torch.int64,
    }[name]


def element_size(name: str) -> int:
    return {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8, "int32": 4, "int64": 8}[name]


def fixed_dim(params: Params, dims: Dims, name: str, default: int | None = None) -> int:
    """A dimension that may be fixed by the key (`D=128`): dims must then agree with it."""
    if name in params:
        value = int(params[name])
        if name in dims and dims[name] != value:
            raise ValueError(f"dims {name}={dims[name]} contradicts the key's {name}={value}")
        return value
    if name in dims:
        return dims[name]
    if default is None:
        raise ValueError(f"dims lack {name!r}")
    return default


def config_grid(
    constexprs: Mapping[str, Iterable[int]],
    num_warps: Iterable[int],
    num_stages: Iterable[int],
    keep: Callable[[Mapping[str, int], int, int], bool] = lambda c, w, s: True,
) -> list[Config]:
    """The cartesian product of the choices, filtered by `keep`, without duplicates, in order."""
    names = list(constexprs)
    seen: dict[Config, None] = {}
    for values in itertools.product(*(list(constexprs[n]) for n in names)):
        for warps in num_warps:
            for stages in num_stages:
                chosen = dict(zip(names, values))
                if keep(chosen, warps, stages):
                    seen.setdefault(Config(chosen, warps, stages), None)
    return list(seen)


# --- numerics -----------------------------------------------------------------------------


def float_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for float outputs computed with fp32 accumulation.

    The output is rounded to its dtype once, so rtol is a little over one unit in the last
    place of that dtype; atol only covers cancellation near zero and is kept small so that
    zeros cannot pass for values.
    """
    import torch

    table = {
        torch.float64: (1e-9, 1e-12),
        torch.float32: (1e-5, 1e-5),
        torch.float16: (2e-3, 1e-4),
        torch.bfloat16: (1.6e-2, 1e-3),
    }
    if dtype in table:
        return table[dtype]
    return (0.0, 0.0)


@dataclass(frozen=True)
class Comparison:
    """The verdict of one output against its reference."""

    ok: bool
    max_relative_error: float
    unwritten: int
    mismatches: int

    def __str__(self) -> str:
        return (
            f"ok={self.ok} max_rel_err={self.max_relative_error:.3g} "
            f"unwritten={self.unwritten} mismatches={self.mismatches}"
        )


INT_POISON = -(2**63)
"""Sentinel for int64 outputs (the dtype's minimum; likewise for other integer dtypes): no
operator here produces it except by a 2^-64 chance."""


def _int_poison(dtype: torch.dtype) -> int:
    import torch

    return int(torch.iinfo(dtype).min)


def poison(outputs: Mapping[str, torch.Tensor]) -> None:
    """Fill outputs so that any element the kernel fails to write fails the comparison."""
    for tensor in outputs.values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
        else:
            tensor.fill_(_int_poison(tensor.dtype))


def compare(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> Comparison:
    """Relative error with a floor: |a - e| / (|e| + atol/rtol), which is <= rtol exactly when
    |a - e| <= atol + rtol * |e| (torch.allclose's rule). Integers must match exactly.

    A NaN left in `actual` (the poison) counts as unwritten and fails.
    """
    import torch

    if actual.shape != expected.shape:
        raise ValueError(f"shape {tuple(actual.shape)} != reference shape {tuple(expected.shape)}")
    actual = actual.cpu()
    expected = expected.cpu()
    if not actual.is_floating_point():
        sentinel = _int_poison(actual.dtype)
        unwritten = int(((actual == sentinel) & (expected != sentinel)).sum())
        mismatches = int((actual != expected).sum())
        return Comparison(mismatches == 0, float(mismatches > 0), unwritten, mismatches)
    if rtol <= 0:
        raise ValueError(f"float outputs need rtol > 0, got {rtol}")
    a = actual.double()
    e = expected.double()
    unwritten = int((torch.isnan(a) & ~torch.isnan(e)).sum())
    rel = (a - e).abs() / (e.abs() + atol / rtol)
    rel = torch.where(torch.isnan(a) & torch.isnan(e), torch.zeros_like(rel), rel)
    rel = torch.where(torch.isnan(rel), torch.full_like(rel, math.inf), rel)
    mismatches = int((rel > rtol).sum())
    worst = float(rel.max()) if rel.numel() else 0.0
    return Comparison(mismatches == 0 and unwritten == 0, worst, unwritten, mismatches)


# --- jagged inputs --------------------------------------------------------------------------


def jagged_lengths(dims: Dims, generator: torch.Generator) -> torch.Tensor:
    """Row lengths from dims, as int64 [B].

    Dims: `B` rows; lengths uniform in [`len_min`, `len_max`] (defaults 0 and 32); with
    `empty_every` = k > 0, every row b with b % k == 0 is empty (row 0 included: an empty first
    row is the classic off-by-one).
    """
    import torch

    rows = dims["B"]
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    if not 0 <= low <= high:
        raise ValueError(f"want 0 <= len_min <= len_max, got {low}, {high}")
    lengths = torch.randint(low, high + 1, (rows,), generator=generator, dtype=torch.int64)
    every = dims.get("empty_every", 0)
    if every > 0:
        lengths[::every] = 0
    return lengths


def expected_total_length(dims: Dims) -> int:
    """L for bandwidth figures: dims["L"] when the caller knows it, else the mean of the
    distribution `jagged_lengths` draws from."""
    if "L" in dims:
        return dims["L"]
    rows = dims["B"]
    mean = (dims.get("len_min", 0) + dims.get("len_max", 32)) / 2
    every = dims.get("empty_every", 0)
    nonempty = rows - (math.ceil(rows / every) if every > 0 else 0)
    return round(nonempty * mean)


def jagged_from_lengths(
    lengths: torch.Tensor | Sequence[int],
    D: int,
    *,
    dtype: torch.dtype,
    index_dtype: torch.dtype,
    generator: torch.Generator,
    device: str,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """values [L, D] (normal * scale) and offsets [B+1] for explicit row lengths.

    Drawn on the CPU and then moved, so that a seed gives the same inputs on every device.
    """
    import torch

    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    total = int(offsets[-1])
    values = torch.randn(total, D, generator=generator, dtype=torch.float32) * scale
    return values.to(dtype).to(device), offsets.to(index_dtype).to(device)


def jagged_params(params: Params) -> tuple[torch.dtype, torch.dtype]:
    """(values dtype, offsets dtype) from `dtype` (default fp32) and `index_dtype` (default int64)."""
    return torch_dtype(params.get("dtype", "fp32")), torch_dtype(params.get("index_dtype", "int64"))


def make_jagged_inputs(
    params: Params,
    dims: Dims,
    seed: int,
    device: str,
    *,
    lengths: Sequence[int] | None = None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, offsets) for a jagged operator: row lengths drawn from dims (see
    `jagged_lengths`), or given explicitly by `lengths` (then dims["B"] is ignored)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    dtype, index_dtype = jagged_params(params)
    width = fixed_dim(params, dims, "D")
    rows = jagged_lengths(dims, generator) if lengths is None else lengths
    return jagged_from_lengths(
        rows, width, dtype=dtype, index_dtype=index_dtype, generator=generator, device=device, scale=scale
    )


def jagged_tile_configs(params: Params) -> list[Config]:
    """The search space of a kernel that walks one row per program in BLOCK_L x BLOCK_D tiles.

    Tiles of 1k-8k elements, 16-64 of them per thread of a 32-wide warp (the hardware pruner
    adjusts for 64-wide wavefronts); with D fixed by the key, column blocks wider than D are
    dropped. 58 configs unconstrained, 44 for D=128.
    """
    widest = max(32, next_power_of_2(int(params["D"]))) if "D" in params else 256

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_L"] * c["BLOCK_D"]
        return c["BLOCK_D"] <= widest and 1024 <= tile <= 8192 and 16 <= tile // (32 * warps) <= 64

    return config_grid(
        {"BLOCK_L": (8, 16, 32, 64, 128), "BLOCK_D": (32, 64, 128, 256)},
        num_warps=(2, 4, 8),
        num_stages=(1, 3),
        keep=keep,
    )


# --- running a template -------------------------------------------------------------------

_MODULES: dict[tuple[str, str, str], ModuleType] = {}


def with_source(template: OperatorTemplate, source: str) -> OperatorTemplate:
    """The template with its kernels replaced by `source` (a proposer's, vetted by
    generator.sandbox): written once to a file named by its content, since Triton reads a
    kernel's source from its file and everything downstream reads kernel_source_path."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "kreg-proposals" / f"{template.name}_{digest}" / "kernel.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(source)
        partial.replace(path)  # atomic: another child may be writing the same file
    return dataclasses.replace(template, kernel_source_path=path)


def load_kernel_module(path: Path) -> ModuleType:
    """Import kernel.py by path under a name unique to its content.

    The content hash keeps two versions of one file (a candidate rewritten by a proposer) from
    sharing Triton's per-function cache; TRITON_INTERPRET is part of the key because
    @triton.jit decides between compiling and interpreting at import.
    """
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    key = (str(path.resolve()), digest, os.environ.get("TRITON_INTERPRET", ""))
    module = _MODULES.get(key)
    if module is None:
        interp = "i" if key[2] not in ("", "0") else "c"
        name = f"generator_kernel_{path.parent.name}_{digest}_{interp}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import kernel source {path}")
        module = importlib.util.module_from_spec(spec)
        # Registered before exec: Triton resolves a kernel's globals through its module.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[key] = module
    return module


def run(
    template: OperatorTemplate,
    params: Params,
    config: Config,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
) -> None:
    """Launch every kernel of one operator call with one config (launches with an empty grid
    are skipped: there is nothing to compute, and some launchers refuse a zero grid)."""
    for launch in template.launches(params, config, inputs, outputs):
        if math.prod(launch.grid) > 0:
            launch_source(template, config, launch)


def launch_source(template: OperatorTemplate, config: Config, launch: KernelLaunch) -> None:
    """One launch of the template's kernel source, JIT-compiled (or interpreted) by Triton."""
    _check_triton_mode()
    if interpreting():
        _fix_interpreter_bf16_dot()
    clash = set(config.constexprs) & set(launch.constexprs)
    if clash:
        raise ValueError(f"{template.name}: constexprs set by both config and launch: {sorted(clash)}")
    kernel = getattr(load_kernel_module(template.kernel_source_path), launch.entry_point)
    kernel[launch.grid](
        *launch.args,
        **config.constexprs,
        **launch.constexprs,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )


def interpreting() -> bool:
    """Whether @triton.jit kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _check_triton_mode() -> None:
    """Refuse to launch when TRITON_INTERPRET changed after triton was imported.

    triton.language's own @jit helpers (tl.zeros, tl.sum, tl.max, ...) are decorated once, at
    triton's import, as compiled or interpreted functions; kernels imported later in the other
    mode fail deep inside Triton ("Cannot call @triton.jit'd outside of the scope of a kernel",
    or interpreter builders leaking into a compile). The mode is per process: set
    TRITON_INTERPRET before the first triton import, e.g. in a spawned child.
    """
    import triton.language as tl

    imported_interpreted = type(tl.standard.zeros).__name__ == "InterpretedFunction"
    if imported_interpreted != interpreting():
        raise RuntimeError(
            f"triton was imported with TRITON_INTERPRET {'on' if imported_interpreted else 'off'} but it is "
            f"{'on' if interpreting() else 'off'} now; choose the mode before triton's first import "
            "(one mode per process)"
        )


def _fix_interpreter_bf16_dot() -> None:
    """Make the interpreter's tl.dot correct for bfloat16 operands.

    The interpreter stores bfloat16 as uint16 and its create_dot multiplies those bit patterns
    (triton-lang/triton#11584, declined as "not supported yet"), so a bf16 tl.dot returns
    ~1e10. Converting bf16 operands to fp32 first is exact (every bf16 is an fp32) and gives
    what the GPU's bf16 MMA with fp32 accumulation computes. The kernels stay unchanged; only
    the interpreter is corrected, once per process; harmless if upstream fixes it.
    """
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    if getattr(builder.create_dot, "_bf16_fixed", False):
        return
    original = builder.create_dot

    def as_fp32(handle: Any) -> Any:
        if handle.dtype != tl.bfloat16:
            return handle
        bits = handle.data.astype(np.uint32) << np.uint32(16)
        return interpreter.TensorHandle(bits.view(np.float32), tl.float32)

    def create_dot(self: Any, a: Any, b: Any, *rest: Any, **kwargs: Any) -> Any:
        return original(self, as_fp32(a), as_fp32(b), *rest, **kwargs)

    create_dot._bf16_fixed = True  # type: ignore[attr-defined]
    builder.create_dot = create_dot  # type: ignore[method-assign]
