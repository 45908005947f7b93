"""Backward operators: the gradient kernels of the differentiable ops, served under keys of
their own.

A differentiable operator X@v{params} has the backward operator X_backward@v{params}: same
version, same specialization, so a training host asks for both with one manifest. Its inputs
are X's inputs as X's launch plan names them, plus `grad_out` (the gradient of X's output, of
X's output shape and dtype); its outputs are `grad_<name>` for each input in `WRT[X]` that the
call has (jagged_sum's `grad_weights` only when the call is weighted), in the inputs' dtypes.
Backward kernels recompute what they need from the inputs (row statistics, attention scores)
rather than reading saved forward state, so the forward and backward keys stay independent:
either may be served, retracted or fall back to its reference alone.

Operators whose gradient has no kernel (jagged_truncate, embedding bags, the integer ops)
keep the reference's backward (kreg.ops.library). Nothing here imports torch or triton.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kreg.keys import OperatorSpec

SUFFIX = "_backward"
GRAD_OUT = "grad_out"


@dataclass(frozen=True)
class BackwardOperator:
    """What X's backward kernel differentiates, and which of X's specializations it serves."""

    wrt: tuple[str, ...]  # X's inputs (launch-plan names) that get a gradient, in this order
    # X's params whose value has no backward kernel (the reference's backward serves them).
    excluded: Mapping[str, str] = field(default_factory=dict)


WRT: dict[str, BackwardOperator] = {
    # The embedding-bag variant (gather=1) scatters into its table: no kernel yet.
    "jagged_sum": BackwardOperator(("values", "weights"), {"gather": "1"}),
    "jagged_softmax": BackwardOperator(("values",)),
    "jagged_to_padded_dense": BackwardOperator(("values",)),
    "dense_to_jagged": BackwardOperator(("dense",)),
    "dlrm_dot_interaction": BackwardOperator(("dense", "sparse")),
    "dcn_lowrank_cross": BackwardOperator(("x0", "V", "W", "bias")),
    "swish_layer_norm": BackwardOperator(("x", "weight", "bias")),
    "layer_norm_mul": BackwardOperator(("x", "u", "weight", "bias")),
    "jagged_flash_attention": BackwardOperator(("q", "k", "v")),
    "hstu_attention": BackwardOperator(("q", "k", "v")),
}


def grad_name(input_name: str) -> str:
    return f"grad_{input_name}"


def backward_spec(forward: OperatorSpec) -> OperatorSpec | None:
    """The key of `forward`'s gradient kernel; None when none serves that specialization."""
    op = WRT.get(forward.name)
    if op is None or any(forward.params.get(k) == v for k, v in op.excluded.items()):
        return None
    return OperatorSpec(forward.name + SUFFIX, forward.version, forward.params)


def forward_spec(spec: OperatorSpec) -> OperatorSpec | None:
    """The forward operator a backward spec differentiates; None for a forward spec."""
    if not spec.name.endswith(SUFFIX) or spec.name[: -len(SUFFIX)] not in WRT:
        return None
    return OperatorSpec(spec.name[: -len(SUFFIX)], spec.version, spec.params)


# The backward operators' launch plans, registered in kreg.ops.plans.PLANS on import.
from kreg.ops.backward import dcn, dot_interaction, hstu_attention, jagged_flash_attention  # noqa: E402, F401
from kreg.ops.backward import jagged_softmax, jagged_sum, layer_norm, padding  # noqa: E402, F401

__all__ = ["BackwardOperator", "GRAD_OUT", "SUFFIX", "WRT", "backward_spec", "forward_spec", "grad_name"]
