"""sigrid_hash@1: floormod(hash_128_to_64(salt, twang_mix64(id)), M) (Velox/TorchArrow).

Key params: `dtype` int64 (the ids; the only choice, kept explicit in keys).
salt and M are runtime arguments, not key params: one compiled kernel serves every feature
table, each with its own salt and modulus.
Dims: `N` ids, `M` modulus (default 40M; 1 gives 0, <= 0 the raw hash), `salt` (default 0).
Inputs: {"ids": [N] int64, "salt": int, "M": int}; outputs: {"out": [N] int64}.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.model import TuningShape
from kreg.ops.plans import PLANS, division_magic  # noqa: F401 - division_magic: re-exported

from generator.operators.base import (
    Config,
    Dims,
    OperatorTemplate,
    Params,
    check_params,
    config_grid,
)

if TYPE_CHECKING:
    import torch

NAME = "sigrid_hash"
VERSION = 1
# allocate_outputs and launches are the calling convention, shared with serving hosts.
_PLAN = PLANS[NAME]
_ALLOWED_PARAMS = {"dtype": ("int64",)}
_DEFAULT_MODULUS = 40_000_000
# ids per GPU step of MLPerf DLRM-DCNv2: 214 ids per sample x 8192 samples.
_IDS_PER_STEP = 214 * 8192


def _checked(params: Params) -> Params:
    check_params(params, _ALLOWED_PARAMS)
    return params


def config_space(params: Params) -> list[Config]:
    """BLOCK ids per program x warps, at least 2 ids per thread; num_stages is irrelevant
    (there is no loop to pipeline). 19 configs."""
    _checked(params)
    return config_grid(
        {"BLOCK": (256, 512, 1024, 2048, 4096)},
        num_warps=(1, 2, 4, 8),
        num_stages=(1,),
        keep=lambda c, warps, stages: c["BLOCK"] >= 2 * 32 * warps,
    )


def make_inputs(params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """Ids over the whole int64 range (negative ids exercise the unsigned reinterpretation),
    with the first ones small (the range real id spaces use)."""
    import torch

    _checked(params)
    generator = torch.Generator().manual_seed(seed)
    count = dims["N"]
    ids = torch.randint(-(2**63), 2**63 - 1, (count,), generator=generator, dtype=torch.int64)
    small = count // 2
    ids[:small] = torch.randint(0, 1 << 20, (small,), generator=generator, dtype=torch.int64)
    return {"ids": ids.to(device), "salt": dims.get("salt", 0), "M": dims.get("M", _DEFAULT_MODULUS)}


def edge_cases(params: Params) -> list[dict[str, int]]:
    """One id, N one past a power of two, M 1 (zeros), 2, past int32, near int64's top, and
    M <= 0 (raw hash); salts negative, past int32 and extreme."""
    _checked(params)
    return [
        {"N": 1, "M": 100, "salt": 0},
        {"N": 1025, "M": 1, "salt": 7},
        {"N": 257, "M": 2, "salt": -1},
        {"N": 300, "M": 2**31 + 11, "salt": 2**40 + 3},
        {"N": 129, "M": 2**62 + 1, "salt": -(2**63)},
        {"N": 100, "M": 0, "salt": 2**63 - 1},
        {"N": 64, "M": -5, "salt": 12345},
    ]


def tuning_shapes(params: Params) -> list[TuningShape]:
    """OPERATORS.md: 1.75M ids per GPU step (MLPerf DLRM-DCNv2), M up to 40M."""
    _checked(params)
    return [
        TuningShape({"N": _IDS_PER_STEP, "M": _DEFAULT_MODULUS, "salt": 0}),
        TuningShape({"N": _IDS_PER_STEP, "M": 100_000, "salt": 17}),
        TuningShape({"N": 214 * 2048, "M": _DEFAULT_MODULUS, "salt": 0}),
    ]


def reference(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from kreg.ops import reference as ref

    return {"out": ref.sigrid_hash(inputs["ids"], salt=inputs["salt"], modulus=inputs["M"])}


def bytes_moved(params: Params, dims: Dims) -> int:
    return 16 * dims["N"]


def flops(params: Params, dims: Dims) -> int | None:
    return None


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """Hashes are exact."""
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
