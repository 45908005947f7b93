"""The operator templates, by name: a plain dict, so what exists is one grep away.

Each entry's module documents its key params, dims, inputs and outputs; base.py documents
the template fields and `run`.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from generator.operators import dlrm_dot_interaction, jagged_softmax, jagged_sum, sigrid_hash
from generator.operators import layer_norm_mul, swish_layer_norm
from generator.operators import dense_to_jagged, jagged_to_padded_dense, jagged_truncate
from generator.operators import hstu_attention, jagged_flash_attention
from generator.operators import batched_dense_bucketize, bucketize_sparse_features
from generator.operators import dcn_lowrank_cross
from generator.operators import dcn_lowrank_cross_backward, dlrm_dot_interaction_backward, jagged_sum_backward
from generator.operators import dense_to_jagged_backward, jagged_softmax_backward, jagged_to_padded_dense_backward
from generator.operators import hstu_attention_backward, jagged_flash_attention_backward
from generator.operators import layer_norm_mul_backward, swish_layer_norm_backward
from generator.operators.base import OperatorTemplate

OPERATORS: dict[str, OperatorTemplate] = {
    "batched_dense_bucketize": batched_dense_bucketize.TEMPLATE,
    "bucketize_sparse_features": bucketize_sparse_features.TEMPLATE,
    "jagged_flash_attention": jagged_flash_attention.TEMPLATE,
    "hstu_attention": hstu_attention.TEMPLATE,
    "sigrid_hash": sigrid_hash.TEMPLATE,
    "jagged_sum": jagged_sum.TEMPLATE,
    "jagged_softmax": jagged_softmax.TEMPLATE,
    "dlrm_dot_interaction": dlrm_dot_interaction.TEMPLATE,
    "swish_layer_norm": swish_layer_norm.TEMPLATE,
    "layer_norm_mul": layer_norm_mul.TEMPLATE,
    "jagged_truncate": jagged_truncate.TEMPLATE,
    "jagged_to_padded_dense": jagged_to_padded_dense.TEMPLATE,
    "dense_to_jagged": dense_to_jagged.TEMPLATE,
    "dcn_lowrank_cross": dcn_lowrank_cross.TEMPLATE,
    # Backward operators (generator.operators.backward): the gradients, under their own keys.
    "jagged_sum_backward": jagged_sum_backward.TEMPLATE,
    "jagged_softmax_backward": jagged_softmax_backward.TEMPLATE,
    "jagged_to_padded_dense_backward": jagged_to_padded_dense_backward.TEMPLATE,
    "dense_to_jagged_backward": dense_to_jagged_backward.TEMPLATE,
    "dlrm_dot_interaction_backward": dlrm_dot_interaction_backward.TEMPLATE,
    "dcn_lowrank_cross_backward": dcn_lowrank_cross_backward.TEMPLATE,
    "swish_layer_norm_backward": swish_layer_norm_backward.TEMPLATE,
    "layer_norm_mul_backward": layer_norm_mul_backward.TEMPLATE,
    "jagged_flash_attention_backward": jagged_flash_attention_backward.TEMPLATE,
    "hstu_attention_backward": hstu_attention_backward.TEMPLATE,
}


def template_module(name: str, extra_modules: Sequence[str] = ()) -> str | None:
    """The dotted path of the module whose TEMPLATE serves operator `name`: modules named by
    the worker's settings (a team's own operators, test operators) first, then the built-ins.
    A path, not the template: evaluator children import the template themselves."""
    for module in extra_modules:
        if load_template(module).name == name:
            return module
    return f"{__name__}.{name}" if name in OPERATORS else None


def load_template(module: str) -> OperatorTemplate:
    template = getattr(importlib.import_module(module), "TEMPLATE", None)
    if not isinstance(template, OperatorTemplate):
        raise ValueError(f"module {module!r} has no TEMPLATE of type OperatorTemplate")
    return template


__all__ = ["OPERATORS", "OperatorTemplate", "load_template", "template_module"]
