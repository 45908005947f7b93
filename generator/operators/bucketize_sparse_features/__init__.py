"""bucketize_sparse_features@1: fbgemm's bucketize_sparse_features / block_bucketize_sparse_features.

Key params: `dtype` int64 (the ids; the only choice, kept explicit in keys), `index_dtype`
int32|int64 (offsets, new_lengths, new_offsets; default int64), `block` 0|1 (default 0:
bucket = id % S, new id = id // S; 1: fbgemm's block rule with per-feature block sizes, a
runtime input), `positions` 0|1 (default 0: also output each id's position in its row).
S and block_sizes are runtime inputs: one compiled kernel serves every sharding.
Dims: `T` features (default 1) x `B` rows each (R = T*B rows, key-major), row lengths
uniform in [`len_min`, `len_max`], `empty_every` (see base.jagged_lengths), `S` buckets,
`id_max` (ids uniform in [0, id_max), default 2^40), `L` (optional, for bytes_moved).
Inputs: {"ids": [L] int64 >= 0, "offsets": [R+1], "S": int, "block_sizes": [T] int64 (block=1)};
outputs: {"new_lengths": [S*R], "new_offsets": [S*R+1], "new_ids": [L] int64, "positions":
[L] int64 (positions=1)}, bucket-major, ids in their original order within (bucket, row).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS

from generator.operators.base import (
    INDEX_DTYPES,
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    config_grid,
    element_size,
    expected_total_length,
    jagged_lengths,
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

NAME = "bucketize_sparse_features"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": ("int64",), "index_dtype": INDEX_DTYPES, "block": ("0", "1"), "positions": ("0", "1")}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    """BLOCK_R rows x BLOCK_L ids x BLOCK_S buckets per one-hot tile (the scan steps over as
    many counts), in two families. Several rows per program (32 or 8) with short tiles
    (BLOCK_L <= 32, 4096-8192 elements, 8-64 per thread, 4-8 warps), for rows of a few ids
    (26 features x 8192 samples of ~8); the first of them, 32 rows of 32 ids, is the default
    where nothing is timed. Then one row per program (512-8192 elements, 4-64 per thread):
    every config of the earlier one-row kernel, for rows of tens to hundreds. 59 configs."""
    _checked(params)

    def several_rows(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_R"] * c["BLOCK_L"] * c["BLOCK_S"]
        return warps >= 4 and 4096 <= tile <= 8192 and 8 <= tile // (32 * warps) <= 64

    def one_row(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_L"] * c["BLOCK_S"]
        return 512 <= tile <= 8192 and 4 <= tile // (32 * warps) <= 64

    buckets = (8, 16, 32)
    several = {"BLOCK_R": (32, 8), "BLOCK_L": (32, 16, 8), "BLOCK_S": buckets}
    one = {"BLOCK_R": (1,), "BLOCK_L": (32, 64, 128, 256, 512), "BLOCK_S": buckets}
    return [
        *config_grid(several, num_warps=(4, 8), num_stages=(1,), keep=several_rows),
        *config_grid(one, num_warps=(1, 2, 4, 8), num_stages=(1,), keep=one_row),
    ]


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """Ids uniform in [0, id_max); block sizes (block=1) drawn around id_max / S, so that
    some features send ids past blk*S the modulo way."""
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    features, buckets = dims.get("T", 1), dims["S"]
    id_max = dims.get("id_max", 2**40)
    lengths = torch.cat([jagged_lengths(dims, generator) for _ in range(features)]) if features else torch.zeros(0, dtype=torch.int64)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    ids = torch.randint(0, id_max, (int(offsets[-1]),), generator=generator, dtype=torch.int64)
    inputs: dict[str, Any] = {
        "ids": ids.to(device),
        "offsets": offsets.to(torch_dtype(params.get("index_dtype", "int64"))).to(device),
        "S": buckets,
    }
    if params.get("block", "0") == "1":
        typical = max(id_max // buckets, 1)
        sizes = torch.randint(max(typical // 2, 1), 2 * typical + 1, (max(features, 1),), generator=generator)
        if features > 3:
            sizes[::4] = 0  # a zero block size: every id of the feature goes the modulo way
        inputs["block_sizes"] = sizes.to(device)
    return inputs


def edge_cases(params: Params) -> list[dict[str, int]]:
    """No rows; all rows empty (L = 0); one row longer than every BLOCK_L (not a multiple);
    every other row empty over several features; one bucket; S past BLOCK_S (chunked
    buckets) and not a power of two; small ids (many equal buckets, long runs per bucket);
    more (bucket, row) counts than one scan block holds."""
    _checked(params)
    return [
        {"T": 1, "B": 0, "S": 4},
        {"T": 2, "B": 3, "len_min": 0, "len_max": 0, "S": 3},
        {"T": 1, "B": 1, "len_min": 1100, "len_max": 1100, "S": 5, "id_max": 1000},
        {"T": 4, "B": 5, "len_min": 0, "len_max": 40, "empty_every": 2, "S": 7},
        {"T": 3, "B": 4, "len_min": 1, "len_max": 20, "S": 1},
        {"T": 2, "B": 3, "len_min": 30, "len_max": 70, "S": 45, "id_max": 5000},
        {"T": 1, "B": 6, "len_min": 1, "len_max": 1, "S": 16, "id_max": 40},
        # 9,600 (bucket, row) counts: the scan spans several blocks of every config, the last partial.
        {"T": 2, "B": 300, "len_min": 0, "len_max": 3, "S": 16, "id_max": 1000},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: 300k ids, B 2048, S 16 (fbgemm's bench); then a DLRM step's hashed ids
    (26 features x B 8192, 8 buckets) and 2048 rows over 64 buckets."""
    _checked(params)
    return [
        TuningShape({"T": 1, "B": 2048, "len_min": 0, "len_max": 292, "S": 16, "id_max": 40_000_000}),
        TuningShape({"T": 26, "B": 8192, "len_min": 0, "len_max": 16, "S": 8, "id_max": 40_000_000}),
        TuningShape({"T": 8, "B": 2048, "len_min": 0, "len_max": 40, "S": 64, "id_max": 40_000_000}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    with_positions = params.get("positions", "0") == "1"
    out = ref.bucketize_sparse_features(
        inputs["offsets"],
        inputs["ids"],
        inputs["S"],
        block_sizes=inputs.get("block_sizes") if params.get("block", "0") == "1" else None,
        positions=with_positions,
    )
    names = ("new_lengths", "new_offsets", "new_ids", "positions")
    return dict(zip(names, out))


def bytes_moved(params: Params, dims: Dims) -> int:
    """Ids read twice (count, scatter) and written once (plus positions); offsets read twice;
    new_lengths written, read by the scan, new_offsets written and read back."""
    index_bytes = element_size(params.get("index_dtype", "int64"))
    rows = dims.get("T", 1) * dims["B"]
    total = expected_total_length({**dims, "B": rows})
    segments = dims["S"] * rows
    per_id = 3 + (params.get("positions", "0") == "1")
    return 8 * per_id * total + 2 * (rows + 1) * index_bytes + 4 * segments * index_bytes


def flops(params: Params, dims: Dims) -> int | None:
    return None


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """Integer outputs: exact."""
    return (0.0, 0.0)


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
    tolerance=tolerance,
)
