"""Backward templates: a differentiable operator's gradient kernel as a template of its own.

A backward operator (kreg.ops.backward documents its key, inputs and outputs) takes its
forward template's params, dims, edge cases and tuning shapes, so a model profile's shapes
tune both; its inputs are the forward's plus a random `grad_out`, and its oracle is autograd
through the forward template's PyTorch reference, run in float32 (float64 for float64) on
the same inputs and rounded to each input's dtype once, the way the kernels round. What a
backward template brings of its own: its kernel source, config space, launch plan
(kreg.ops.backward), cost model and tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kreg.ops.backward import GRAD_OUT, SUFFIX, WRT, grad_name
from kreg.ops.plans import PLANS

from generator.operators.base import Config, Dims, OperatorTemplate, Params, float_tolerance

if TYPE_CHECKING:
    import torch


def make_backward_inputs(forward: OperatorTemplate, params: Params, dims: Dims, seed: int, device: str) -> dict[str, Any]:
    """The forward's inputs for (dims, seed) plus grad_out ~ N(0, 1) in the forward output's
    shape and dtype, drawn on the CPU (a seed gives the same inputs on every device)."""
    import torch

    inputs = forward.make_inputs(params, dims, seed, device)
    out = forward.allocate_outputs(params, inputs)["out"]
    generator = torch.Generator().manual_seed(seed + 104_729)
    grad = torch.randn(out.shape, generator=generator, dtype=torch.float32)
    inputs[GRAD_OUT] = grad.to(out.dtype).to(device)
    return inputs


def reference_backward(forward: OperatorTemplate, params: Params, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """grad_<name> for each differentiated input the call has: autograd through the forward
    reference, with every float input upcast to float32 (float64 stays) so that the oracle
    rounds once, at the end, to each input's dtype."""
    import torch

    wrt = [name for name in WRT[forward.name].wrt if inputs.get(name) is not None]

    def upcast(t: Any) -> Any:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
            return t.detach().float()
        return t

    with torch.enable_grad():
        leaves = {k: upcast(v) for k, v in inputs.items() if k != GRAD_OUT}
        for name in wrt:
            leaves[name] = leaves[name].detach().requires_grad_()
        out = forward.reference(params, leaves)["out"]
        grad = inputs[GRAD_OUT].to(out.dtype)
        found = torch.autograd.grad([out], [leaves[n] for n in wrt], [grad], allow_unused=True)
    return {
        grad_name(n): (g if g is not None else torch.zeros_like(leaves[n])).to(inputs[n].dtype)
        for n, g in zip(wrt, found)
    }


def backward_template(
    forward: OperatorTemplate,
    *,
    kernel_source_path: Path,
    config_space: Callable[[Params], list[Config]],
    bytes_moved: Callable[[Params, Dims], int],
    flops: Callable[[Params, Dims], int | None],
    tolerance: Callable[[torch.dtype], tuple[float, float]] = float_tolerance,
    tile_elements: Callable[[Params, Config], int] | None = None,
) -> OperatorTemplate:
    """`forward`'s backward operator; its launch plan is kreg.ops.plans.PLANS[<name>_backward]."""
    plan = PLANS[forward.name + SUFFIX]
    return OperatorTemplate(
        name=forward.name + SUFFIX,
        version=forward.version,
        kernel_source_path=kernel_source_path,
        config_space=config_space,
        make_inputs=lambda params, dims, seed, device: make_backward_inputs(forward, params, dims, seed, device),
        edge_cases=forward.edge_cases,
        tuning_shapes=forward.tuning_shapes,
        allocate_outputs=plan.allocate_outputs,
        launches=plan.launches,
        reference=lambda params, inputs: reference_backward(forward, params, inputs),
        bytes_moved=bytes_moved,
        flops=flops,
        tolerance=tolerance,
        tile_elements=tile_elements,
        forward=forward,
    )


def backward_pass(forward: OperatorTemplate, params: Params, inputs: Mapping[str, Any], *, compiled: bool) -> Callable[[], object]:
    """The peer a backward kernel is timed against: the forward reference's backward as a
    PyTorch training step runs it, in the inputs' own dtypes. The forward runs once here, with
    grad (eagerly, or under torch.compile, whose AOTAutograd compiles the backward graph too);
    each call of the returned function runs only the backward."""
    import torch

    wrt = [n for n in WRT[forward.name].wrt if inputs.get(n) is not None]
    leaves = {k: v for k, v in inputs.items() if k != GRAD_OUT}
    for name in wrt:
        leaves[name] = inputs[name].detach().requires_grad_()

    def run(leaves: dict[str, Any]) -> torch.Tensor:
        return forward.reference(params, leaves)["out"]

    with torch.enable_grad():
        out = (torch.compile(run, dynamic=False) if compiled else run)(leaves)
    wanted = [leaves[n] for n in wrt]
    return lambda: torch.autograd.grad([out], wanted, [inputs[GRAD_OUT]], retain_graph=True)
