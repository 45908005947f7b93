"""swish_layer_norm_backward and layer_norm_mul_backward: grad_x, grad_weight, grad_bias (and
grad_u for layer_norm_mul) of the row layer-norm operators, mean and rstd recomputed per row.

Two launches: a bounded grid of P programs (the config's PROGRAMS_PER_SM per SM, at most
one per row block) walks the row blocks, writes grad_x (grad_u) and sums each program's
weight and bias gradients into row p of two fp32 scratch outputs [P, D]; a second launch adds
the P partial rows up in a fixed order (deterministic, no atomics: P depends on the device's
SM count, so the sums are bit-identical run to run on one kind of device). The scratch
outputs are sized for the largest P any config can use, so they do not depend on the config:
at D 512 on 132 SMs they are 2 x 2112 x 512 fp32, 8.6 MB, whatever N.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kreg.ops.launch import Config, KernelLaunch, Params
from kreg.ops.plans import LAYER_NORM_ACTS, LAYER_NORM_MAX_D, PLANS, LaunchPlan, layer_norm_block_d

if TYPE_CHECKING:
    import torch

# The most programs per SM a config may ask for (its PROGRAMS_PER_SM): the scratch's size.
MAX_PROGRAMS_PER_SM = 16
# SMs assumed off a GPU (Triton's CPU interpreter): few programs, so each one loops.
HOST_SMS = 2
# The reduce launch's tile: REDUCE_P partial rows x REDUCE_D columns per step.
REDUCE_P = 32
REDUCE_D = 64


def _sm_count(device: Any) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return HOST_SMS


def partial_rows(rows: int, device: Any) -> int:
    """Rows of the partial buffers: the most programs a row-kernel launch can have."""
    return min(rows, MAX_PROGRAMS_PER_SM * _sm_count(device))


def _allocate(inputs: Mapping[str, Any], gated: bool) -> dict[str, torch.Tensor]:
    import torch

    x, weight, bias = inputs["x"], inputs["weight"], inputs["bias"]
    rows, width = x.shape
    outputs = {
        "grad_x": torch.empty(x.shape, dtype=x.dtype, device=x.device),
        "grad_weight": torch.empty(weight.shape, dtype=weight.dtype, device=weight.device),
        "grad_bias": torch.empty(bias.shape, dtype=bias.dtype, device=bias.device),
    }
    if gated:
        u = inputs["u"]
        outputs["grad_u"] = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    # Scratch between the two launches (not compared: the reference has no such outputs).
    scratch = partial_rows(rows, x.device)
    outputs["partial_weight"] = torch.empty(scratch, width, dtype=torch.float32, device=x.device)
    outputs["partial_bias"] = torch.empty(scratch, width, dtype=torch.float32, device=x.device)
    return outputs


def swish_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return _allocate(inputs, gated=False)


def mul_allocate_outputs(params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return _allocate(inputs, gated=True)


def _launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any], swish: bool) -> list[KernelLaunch]:
    """One layer_norm_backward_kernel, then its reduce; swish passes x and grad_x again where
    layer_norm_mul passes u and grad_u (unread under SWISH)."""
    entry_point = "layer_norm_backward_kernel"
    x, weight, bias, grad_out, grad_x = inputs["x"], inputs["weight"], inputs["bias"], inputs["grad_out"], outputs["grad_x"]
    u, grad_u = (x, grad_x) if swish else (inputs["u"], outputs["grad_u"])
    count, width = x.shape
    what = "swish_layer_norm_backward" if swish else "layer_norm_mul_backward"
    if width > LAYER_NORM_MAX_D:
        raise ValueError(f"{what}: D={width} is over the row kernels' {LAYER_NORM_MAX_D}")
    dense = (x, u, grad_out, grad_x, grad_u)
    if any(t.shape != x.shape for t in dense):
        raise ValueError(f"{what}: x, grad_out and the other [N, D] operands must share one shape")
    if width > 1 and any(t.stride(1) != 1 for t in dense):
        raise ValueError(f"{what}: needs unit stride along D")
    vectors = (weight, bias, outputs["grad_weight"], outputs["grad_bias"])
    if width > 1 and any(t.stride(0) != 1 for t in vectors):
        raise ValueError(f"{what}: needs contiguous weight, bias and their gradients")
    partial_weight, partial_bias = outputs["partial_weight"], outputs["partial_bias"]
    if partial_weight.stride() != partial_bias.stride() or (width > 1 and partial_weight.stride(1) != 1):
        raise ValueError(f"{what}: the partial buffers need one layout with unit stride along D")
    per_sm = config.constexprs["PROGRAMS_PER_SM"]
    if not 1 <= per_sm <= MAX_PROGRAMS_PER_SM:
        raise ValueError(f"{what}: PROGRAMS_PER_SM={per_sm} is outside 1..{MAX_PROGRAMS_PER_SM}")
    programs = min(-(-count // config.constexprs["BLOCK_ROWS"]), per_sm * _sm_count(x.device))
    if programs > partial_weight.shape[0]:
        raise ValueError(f"{what}: {programs} programs need more partial rows than the {partial_weight.shape[0]} allocated")
    act = 0 if swish else LAYER_NORM_ACTS[params.get("act", "none")]
    return [
        KernelLaunch(
            entry_point=entry_point,
            args=(
                x, u, weight, bias, grad_out, grad_x, grad_u, partial_weight, partial_bias, count, width,
                x.stride(0), u.stride(0), grad_out.stride(0), grad_x.stride(0), grad_u.stride(0), partial_weight.stride(0),
            ),
            grid=(programs,),
            constexprs={"SWISH": swish, "ACT": act, "BLOCK_D": layer_norm_block_d(width)},
        ),
        KernelLaunch(
            entry_point="layer_norm_backward_reduce_kernel",
            args=(
                partial_weight, partial_bias, outputs["grad_weight"], outputs["grad_bias"], programs, width,
                partial_weight.stride(0),
            ),
            grid=(-(-width // REDUCE_D),),
            constexprs={"REDUCE_P": REDUCE_P, "REDUCE_D": REDUCE_D},
        ),
    ]


def swish_launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    return _launches(params, config, inputs, outputs, swish=True)


def mul_launches(params: Params, config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    return _launches(params, config, inputs, outputs, swish=False)


PLANS["swish_layer_norm_backward"] = LaunchPlan(swish_allocate_outputs, swish_launches)
PLANS["layer_norm_mul_backward"] = LaunchPlan(mul_allocate_outputs, mul_launches)
