"""hstu_attention@1 (forward): HSTU's pointwise attention over jagged rows, per head:
O = (silu(alpha Q Kᵀ) / N * mask) V, alpha = 1/sqrt(D) unless given (generative-recommenders
`pytorch_hstu_mha`, causal, no dropout; see kreg.ops.reference.hstu_attention for the mask
with num_targets). Rows are truncated to N; items past N are 0.

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets,
default int64), `D` and `H` (optional: fix the head dim and the number of heads).
Dims: `B` rows, `H` heads, `D` head dim (H and D unless the key fixes them), `N` the padded
max length, row lengths uniform in [`len_min`, `len_max`], `empty_every` k > 0 makes rows
b % k == 0 empty, `targets` t: num_targets[b] uniform in [0, t] (default 0: no targets, which
is the mask without num_targets), `L` (optional, for bytes_moved only).
Inputs: {"q", "k", "v": [L, H, D], "offsets": [B+1], "num_targets": int64 [B] (zeros: none),
"max_N": int, "alpha": float or None}; outputs: {"out": [L, H, D]}.
Random inputs: Q, K standard normal (alpha brings the scores to unit variance), V scaled by
sqrt(N): an output sums up to N signed terms silu(s) v / N, so it is of order sqrt(i / N) <= 1
at every N, and so is the error of rounding A to bf16/fp16 before the second dot (as flash
attention does); V scaled by N would make both grow as sqrt(N) past any fixed tolerance.
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
    element_size,
    expected_total_length,
    fixed_dim,
    jagged_lengths,
    jagged_params,
)
from generator.operators.jagged_flash_attention import attention_configs, attention_tolerance

if TYPE_CHECKING:
    import torch

NAME = "hstu_attention"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "D": None, "H": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    """As jagged_flash_attention's: BLOCK_M queries x BLOCK_N keys, the head dim whole. 52."""
    return attention_configs(_checked(params))


def _inputs(
    params: Params, lengths: Any, heads: int, width: int, max_len: int, targets: int, seed: int, device: str
) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    dtype, index_dtype = jagged_params(params)
    lengths = torch.as_tensor(lengths, dtype=torch.int64) if not isinstance(lengths, torch.Tensor) else lengths
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    total = int(offsets[-1])
    q, k, v = (torch.randn(total, heads, width, generator=generator) for _ in range(3))
    num_targets = torch.randint(0, targets + 1, (lengths.numel(),), generator=generator, dtype=torch.int64)
    return {
        "q": q.to(dtype).to(device),
        "k": k.to(dtype).to(device),
        "v": (v * max_len**0.5).to(dtype).to(device),
        "offsets": offsets.to(index_dtype).to(device),
        "num_targets": num_targets.to(device),
        "max_N": max_len,
        "alpha": None,
    }


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    import torch

    _checked(params)
    lengths = jagged_lengths(dims, torch.Generator().manual_seed(seed + 1_000_003))
    heads, width = fixed_dim(params, dims, "H"), fixed_dim(params, dims, "D")
    return _inputs(params, lengths, heads, width, dims["N"], dims.get("targets", 0), seed, device)


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], H: int, D: int, N: int, targets: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    return _inputs(_checked(params), lengths, H, D, N, targets, seed, device)


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty (L = 0), one row longer than N with targets, every other row empty,
    lengths one past a block, rows of one item, more targets than items, N = 1, widths below
    and past a power of two."""
    _checked(params)

    def dim(name: str, default: int) -> int:
        return int(params[name]) if name in params else default

    return [
        {"B": 3, "H": dim("H", 1), "D": dim("D", 16), "N": 8, "len_min": 0, "len_max": 0, "targets": 2},
        {"B": 1, "H": dim("H", 2), "D": dim("D", 20), "N": 24, "len_min": 37, "len_max": 37, "targets": 5},
        {"B": 6, "H": dim("H", 1), "D": dim("D", 16), "N": 16, "len_min": 0, "len_max": 20, "empty_every": 2},
        {"B": 3, "H": dim("H", 2), "D": dim("D", 33), "N": 40, "len_min": 17, "len_max": 17, "targets": 4},
        {"B": 4, "H": dim("H", 1), "D": dim("D", 8), "N": 5, "len_min": 1, "len_max": 3, "targets": 6},
        {"B": 3, "H": dim("H", 1), "D": dim("D", 16), "N": 1, "len_min": 0, "len_max": 4, "targets": 1},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 512, H 4, d 128, N 256-4096, lengths ~U[0.9N, N), 20 targets.

    At N 4096 the batch is 32, the same ~120k tokens as B 512 at N 256: the padded reference
    (the peer, and the oracle on the first shape) holds [B, H, N, N] scores in fp32, which at
    B 512 would be 137 GB, more than any GPU has."""
    _checked(params)
    heads, width = int(params.get("H", 4)), int(params.get("D", 128))
    return [
        TuningShape(
            {"B": batch, "H": heads, "D": width, "N": n, "len_min": (9 * n) // 10, "len_max": n - 1, "targets": 20}
        )
        for batch, n in ((512, 256), (512, 1024), (32, 4096))
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    out = ref.hstu_attention(
        inputs["q"],
        inputs["k"],
        inputs["v"],
        inputs["offsets"],
        max_len=inputs["max_N"],
        num_targets=inputs.get("num_targets"),
        alpha=inputs.get("alpha"),
    )
    return {"out": out}


def bytes_moved(params: Params, dims: Dims) -> int:
    """Q, K, V read once, the output written once, offsets (and num_targets) read once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    heads, width = fixed_dim(params, dims, "H"), fixed_dim(params, dims, "D")
    return 4 * expected_total_length(dims) * heads * width * value_bytes + (dims["B"] + 1) * (index_bytes + 8)


def flops(params: Params, dims: Dims) -> int | None:
    """The causal half of Q Kᵀ and A V per row and head: about 2 n^2 D (n = min(len, N))."""
    heads, width, max_len = fixed_dim(params, dims, "H"), fixed_dim(params, dims, "D"), dims["N"]
    low, high = dims.get("len_min", 0), dims.get("len_max", 32)
    mean_square = sum(min(length, max_len) ** 2 for length in range(low, high + 1)) / (high - low + 1)
    return max(1, round(2 * dims["B"] * heads * mean_square * width))


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
