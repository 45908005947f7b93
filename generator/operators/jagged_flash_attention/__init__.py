"""jagged_flash_attention@1: per jagged row truncated to N items, softmax(Q Kᵀ) / N @ V
(fbgemm SLL `jagged_flash_attention_basic` semantics: no 1/sqrt(d); items past N are 0).

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `D` (optional: fixes the head dim).
Dims: `B` rows, `D` (unless the key fixes it), `N` the truncation length (max_seq_len), row
lengths uniform in [`len_min`, `len_max`], `empty_every` k > 0 makes rows b % k == 0 empty,
`L` (optional, for bytes_moved only).
Inputs: {"q", "k", "v": [L, D], "offsets": [B+1], "max_N": int}; outputs: {"out": [L, D]}.
Random inputs scale Q and K by D^-1/4 (scores of unit variance) and V by N (outputs of order 1,
so that the relative comparison is meaningful despite the / N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS

from generator.operators.base import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    config_grid,
    element_size,
    expected_total_length,
    fixed_dim,
    jagged_lengths,
    jagged_params,
)

if TYPE_CHECKING:
    import torch

NAME = "jagged_flash_attention"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "D": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def attention_configs(params: Params) -> list[Config]:
    """BLOCK_M queries x BLOCK_N keys per step, with the whole head dim (BLOCK_D, fixed by the
    launch) in registers: score tiles of 256-8192 elements, 4-64 of them per thread of a
    32-wide warp (the hardware pruner adjusts for 64-wide wavefronts). 52 configs."""

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_M"] * c["BLOCK_N"]
        return 256 <= tile <= 8192 and 4 <= tile // (32 * warps) <= 64

    return config_grid(
        {"BLOCK_M": (16, 32, 64, 128), "BLOCK_N": (16, 32, 64, 128)},
        num_warps=(4, 8),
        num_stages=(1, 2),
        keep=keep,
    )


def config_space(params: Params) -> list[Config]:
    return attention_configs(_checked(params))


def attention_tensors(
    params: Params, lengths: Any, shape: tuple[int, ...], max_len: int, seed_generator: Any, device: str
) -> tuple[Any, Any, Any, Any]:
    """(q, k, v, offsets) for rows of these lengths, items of `shape` each (the last dim D):
    Q, K scaled by D^-1/4, V by max_len."""
    import torch

    dtype, index_dtype = jagged_params(params)
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    total = int(offsets[-1])
    qk_scale = shape[-1] ** -0.25
    q, k, v = (torch.randn(total, *shape, generator=seed_generator) for _ in range(3))
    q, k, v = q * qk_scale, k * qk_scale, v * max_len
    return (
        q.to(dtype).to(device),
        k.to(dtype).to(device),
        v.to(dtype).to(device),
        offsets.to(index_dtype).to(device),
    )


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    width, max_len = fixed_dim(params, dims, "D"), dims["N"]
    q, k, v, offsets = attention_tensors(params, jagged_lengths(dims, generator), (width,), max_len, generator, device)
    return {"q": q, "k": k, "v": v, "offsets": offsets, "max_N": max_len}


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], D: int, N: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    q, k, v, offsets = attention_tensors(_checked(params), lengths, (fixed_dim(params, {"D": D}, "D"),), N, generator, device)
    return {"q": q, "k": k, "v": v, "offsets": offsets, "max_N": N}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty (L = 0), one row longer than N, every other row empty, lengths one past
    a block (never a multiple of BLOCK_M/BLOCK_N), rows of one item, N = 1, widths below and
    past a power of two."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 4, "D": width(16), "N": 8, "len_min": 0, "len_max": 0},
        {"B": 1, "D": width(20), "N": 24, "len_min": 37, "len_max": 37},
        {"B": 6, "D": width(16), "N": 16, "len_min": 0, "len_max": 20, "empty_every": 2},
        {"B": 3, "D": width(33), "N": 40, "len_min": 17, "len_max": 17},
        {"B": 4, "D": width(8), "N": 5, "len_min": 1, "len_max": 1},
        {"B": 3, "D": width(16), "N": 1, "len_min": 0, "len_max": 4},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 1024, N <= 512, D 64-128 (synthetic); rows fill most of N."""
    _checked(params)
    widths = (int(params["D"]),) if "D" in params else (64, 128)
    return [
        TuningShape({"B": 1024, "D": width, "N": n, "len_min": n // 2, "len_max": n})
        for width in widths
        for n in (128, 256, 512)
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {
        "out": ref.jagged_flash_attention(inputs["q"], inputs["k"], inputs["v"], inputs["offsets"], max_len=inputs["max_N"])
    }


def bytes_moved(params: Params, dims: Dims) -> int:
    """Q, K, V read once, the output written once, offsets read once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    width = fixed_dim(params, dims, "D")
    return 4 * expected_total_length(dims) * width * value_bytes + (dims["B"] + 1) * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    """Q Kᵀ and P V over each row's n x n scores (n = min(len, N)): 4 n^2 D per row."""
    width, max_len = fixed_dim(params, dims, "D"), dims["N"]
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    mean_square = sum(min(length, max_len) ** 2 for length in range(low, high + 1)) / (high - low + 1)
    return max(1, round(4 * dims["B"] * mean_square * width))


def attention_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for outputs of order 1: fp32 runs IEEE dots (a few ulps over a long sum
    and exp); fp16/bf16 feed the probabilities to the second dot in the input dtype, as flash
    attention does, which adds one rounding of each weight on top of the output's own."""
    import torch

    table = {
        torch.float64: (1e-9, 1e-12),
        torch.float32: (1e-4, 1e-4),
        torch.float16: (5e-3, 5e-3),
        torch.bfloat16: (3e-2, 3e-2),
    }
    return table.get(dtype, (0.0, 0.0))


TEMPLATE = OperatorTemplate(
    name=NAME,
    version=VERSION,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    make_inputs=make_inputs,
    edge_cases=edge_cases,
    tuning_shapes=tuning_shapes,
    allocate_outputs=_PLAN.allocate_outputs,
    launches=_PLAN.launches,
    reference=reference,
    bytes_moved=bytes_moved,
    flops=flops,
    tolerance=attention_tolerance,
)
