"""jagged_sum@1: pooling of a jagged tensor, out[b] = sum (or mean) of row b's items; with
`weighted=1` each item times its weight (TorchRec's weighted features), with `gather=1` the
items are rows of a table picked by indices first (the embedding-bag variant, F.embedding_bag
with include_last_offset).

Key params: `dtype` fp32|fp16|bf16 (default fp32), `index_dtype` int32|int64 (offsets and
indices, default int64), `mean` 0|1, `weighted` 0|1, `gather` 0|1 (default 0; mean and
weighted exclude each other), `D` (optional: fixes the width).
Dims: `B` rows, `D` (unless the key fixes it), row lengths uniform in [`len_min`, `len_max`],
`empty_every` k > 0 makes rows b % k == 0 empty, `V` table rows (gather=1, default 1000),
`L` (optional, for bytes_moved only). Explicit length patterns: `inputs_from_lengths`.
Inputs: {"values": [L, D] (the table [V, D] when gather=1), "offsets": [B+1], "weights": [L]
(weighted=1), "indices": [L] in [0, V) (gather=1)}; outputs: {"out": [B, D]} in the values dtype.
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
    float_tolerance,
    jagged_tile_configs,
    make_jagged_inputs,
)

if TYPE_CHECKING:
    import torch

NAME = "jagged_sum"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_FLAG = ("0", "1")
_ALLOWED_PARAMS = {
    "dtype": FLOAT_DTYPES,
    "index_dtype": INDEX_DTYPES,
    "mean": _FLAG,
    "weighted": _FLAG,
    "gather": _FLAG,
    "D": None,
}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    if params.get("mean") == "1" and params.get("weighted") == "1":
        raise ValueError("params mean=1 and weighted=1 exclude each other: weights are for sums")
    return params


def config_space(params: Params) -> list[Config]:
    return jagged_tile_configs(_checked(params))


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    values, offsets = make_jagged_inputs(_checked(params), dims, seed, device)
    return _with_variant(params, dims, seed, device, values, offsets)


def inputs_from_lengths(
    params: Params, lengths: Sequence[int], D: int, seed: int, device: str
) -> dict[str, Any]:
    """Inputs with exactly these row lengths (hand-written ragged patterns)."""
    values, offsets = make_jagged_inputs(_checked(params), {"D": D}, seed, device, lengths=lengths)
    return _with_variant(params, {"D": D}, seed, device, values, offsets)


def _with_variant(
    params: Params, dims: Dims, seed: int, device: str, values: torch.Tensor, offsets: torch.Tensor
) -> dict[str, Any]:
    """Weights uniform in [0, 2) per item; for gather=1 the drawn items are replaced by a
    table of V rows and indices uniform over it (repeats included, as real bags have)."""
    import torch

    generator = torch.Generator().manual_seed(seed + 7919)
    inputs: dict[str, Any] = {"values": values, "offsets": offsets}
    total = values.shape[0]
    if params.get("weighted") == "1":
        inputs["weights"] = (2 * torch.rand(total, generator=generator)).to(values.dtype).to(device)
    if params.get("gather") == "1":
        rows = dims.get("V", 1000)
        table = torch.randn(rows, values.shape[1], generator=generator).to(values.dtype)
        inputs["values"] = table.to(device)
        inputs["indices"] = torch.randint(0, rows, (total,), generator=generator).to(offsets.dtype).to(device)
    return inputs


def edge_cases(params: Params) -> list[dict[str, int]]:
    """All rows empty (L = 0), one row, every other row empty, lengths one past a power of two
    (never a multiple of BLOCK_L), one item per row; widths below, at and past a block; for
    gather=1 also tables of 1, 3 and 5000 rows."""
    _checked(params)

    def width(default: int) -> int:
        return int(params["D"]) if "D" in params else default

    return [
        {"B": 5, "D": width(33), "len_min": 0, "len_max": 0},
        {"B": 1, "D": width(16), "len_min": 37, "len_max": 37},
        {"B": 7, "D": width(20), "len_min": 0, "len_max": 9, "empty_every": 2},
        {"B": 3, "D": width(3), "len_min": 129, "len_max": 129},
        {"B": 4, "D": width(130), "len_min": 1, "len_max": 1},
    ] + (
        # Bags over tables of one row (every index 0) and of a few (many repeats), and over
        # a table larger than the bags reach.
        [
            {"B": 6, "D": width(17), "len_min": 0, "len_max": 12, "V": 1},
            {"B": 9, "D": width(40), "len_min": 1, "len_max": 30, "V": 3},
            {"B": 4, "D": width(24), "len_min": 0, "len_max": 70, "V": 5000},
        ]
        if params.get("gather") == "1"
        else []
    )


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: T 26-32 features, D 128, bags 20-100, B 512-8192; rows = T x B bags.
    The first is the shape the peers were timed at (B 2048, ~101k items)."""
    _checked(params)
    width = int(params.get("D", 128))
    # The embedding-bag variant gathers from a table of 1M rows (512 MB in fp32 at D 128):
    # far past the L2, as a production table is.
    table = {"V": 1_000_000} if params.get("gather") == "1" else {}
    return [
        TuningShape({"B": 2048, "D": width, "len_min": 0, "len_max": 100, **table}),
        TuningShape({"B": 26 * 512, "D": width, "len_min": 0, "len_max": 40, **table}),
        TuningShape({"B": 26 * 2048, "D": width, "len_min": 0, "len_max": 40, **table}),
        TuningShape({"B": 32 * 512, "D": width, "len_min": 0, "len_max": 200, **table}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    mean = params.get("mean", "0") == "1"
    if params.get("gather") == "1":
        out = ref.embedding_bag(inputs["values"], inputs["indices"], inputs["offsets"], mean=mean, weights=inputs.get("weights"))
    else:
        out = ref.jagged_sum(inputs["values"], inputs["offsets"], mean=mean, weights=inputs.get("weights"))
    return {"out": out}


def bytes_moved(params: Params, dims: Dims) -> int:
    """Each item (a gathered table row for gather=1) read once, its weight and index once,
    offsets once, the output written once."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    index_bytes = element_size(params.get("index_dtype", "int64"))
    rows, width, items = dims["B"], fixed_dim(params, dims, "D"), expected_total_length(dims)
    per_item = (value_bytes if params.get("weighted") == "1" else 0) + (index_bytes if params.get("gather") == "1" else 0)
    return (items + rows) * width * value_bytes + (rows + 1) * index_bytes + items * per_item


def flops(params: Params, dims: Dims) -> int | None:
    return expected_total_length(dims) * fixed_dim(params, dims, "D")


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
    tolerance=float_tolerance,
)
