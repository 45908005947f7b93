"""batched_dense_bucketize@1: per-feature bucketization of dense features (right=False).

Key params: `dtype` fp32|fp16|bf16 (x and the borders; default fp32), `index_dtype`
int32|int64 (border offsets; default int64), `F` (optional: fixes the feature count).
Dims: `B` rows, `F` features, border counts per feature uniform in [`n_min`, `n_max`]
(defaults 16 and 64), `empty_every` k > 0 gives features f % k == 0 no borders.
Inputs: {"x": [B, F], "border_values": [N] sorted within each feature, "border_offsets":
[F+1]}; outputs: {"out": [B, F] int64}, out[b, f] = #borders of f below x[b, f].
"""

from __future__ import annotations

from collections.abc import Mapping
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
    fixed_dim,
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

NAME = "batched_dense_bucketize"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": FLOAT_DTYPES, "index_dtype": INDEX_DTYPES, "F": None}


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    """BLOCK_B rows x BLOCK_F features per program, 256-4096 elements, 2-32 per thread, and
    PROBES borders gathered per search round (1: binary search; 8: up to 32 probed borders
    per thread); with F fixed by the key, feature blocks wider than F are dropped."""
    widest = max(16, 1 << (int(params["F"]) - 1).bit_length()) if "F" in _checked(params) else 128

    def keep(c: Mapping[str, int], warps: int, stages: int) -> bool:
        tile = c["BLOCK_B"] * c["BLOCK_F"]
        per_thread = tile // (32 * warps)
        return c["BLOCK_F"] <= widest and 256 <= tile <= 4096 and 2 <= per_thread <= 32 and per_thread * c["PROBES"] <= 32

    return config_grid(
        {"BLOCK_B": (8, 16, 32, 64, 128, 256), "BLOCK_F": (16, 32, 64, 128), "PROBES": (1, 8)},
        num_warps=(2, 4, 8),
        num_stages=(1,),
        keep=keep,
    )


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """x normal; borders sorted normal draws with some repeated values (ties), so x lands
    below, between, on and past them."""
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    dtype = torch_dtype(params.get("dtype", "fp32"))
    batch, features = dims["B"], fixed_dim(params, dims, "F")
    low, high = dims.get("n_min", 16), dims.get("n_max", 64)
    counts = torch.randint(low, high + 1, (features,), generator=generator, dtype=torch.int64)
    every = dims.get("empty_every", 0)
    if every > 0:
        counts[::every] = 0
    offsets = torch.zeros(features + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=offsets[1:])
    raw = (torch.randn(int(offsets[-1]), generator=generator) * 1.5).to(dtype)
    raw[1::7] = raw[0::7][: raw[1::7].numel()]  # ties: equal borders
    feature_of = torch.repeat_interleave(torch.arange(features), counts)
    # sort within each feature: by (feature, value)
    order = torch.argsort(raw.double() + feature_of.double() * 1e6, stable=True)
    values = raw[order]
    x = torch.randn(batch, features, generator=generator).to(dtype)
    if values.numel() and x.numel():
        picks = torch.randint(0, values.numel(), (x.numel() // 5,), generator=generator)
        x.view(-1)[: picks.numel()] = values[picks]  # x equal to a border
    return {
        "x": x.to(device),
        "border_values": values.to(device),
        "border_offsets": offsets.to(torch_dtype(params.get("index_dtype", "int64"))).to(device),
    }


def edge_cases(params: Params) -> list[dict[str, int]]:
    """One row; features with no borders; one border; borders past every BLOCK (1025);
    B and F one past a block; no rows."""
    _checked(params)

    def feats(default: int) -> int:
        return int(params["F"]) if "F" in params else default

    return [
        {"B": 1, "F": feats(3), "n_min": 1, "n_max": 5},
        {"B": 9, "F": feats(7), "n_min": 0, "n_max": 9, "empty_every": 2},
        {"B": 17, "F": feats(5), "n_min": 1, "n_max": 1},
        {"B": 5, "F": feats(2), "n_min": 1025, "n_max": 1025},
        {"B": 33, "F": feats(17), "n_min": 16, "n_max": 16},
        {"B": 0, "F": feats(4), "n_min": 3, "n_max": 3},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: B 8192 x 13-1000 features, 16-1024 borders (synthetic)."""
    _checked(params)
    if "F" in params:
        features = int(params["F"])
        return [
            TuningShape({"B": 8192, "F": features, "n_min": 16, "n_max": 64}),
            TuningShape({"B": 8192, "F": features, "n_min": 256, "n_max": 1024}),
        ]
    return [
        TuningShape({"B": 8192, "F": 13, "n_min": 16, "n_max": 64}),
        TuningShape({"B": 8192, "F": 256, "n_min": 64, "n_max": 256}),
        TuningShape({"B": 8192, "F": 1000, "n_min": 16, "n_max": 1024}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.batched_dense_bucketize(inputs["x"], inputs["border_values"], inputs["border_offsets"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    """x read once, the int64 output written once, borders read once (cached after)."""
    value_bytes = element_size(params.get("dtype", "fp32"))
    batch, features = dims["B"], fixed_dim(params, dims, "F")
    borders = features * (dims.get("n_min", 16) + dims.get("n_max", 64)) // 2
    return batch * features * (value_bytes + 8) + borders * value_bytes + (features + 1) * 8


def flops(params: Params, dims: Dims) -> int | None:
    return None


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """Bucket indices: exact."""
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
