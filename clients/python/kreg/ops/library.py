"""kreg.ops as PyTorch operators (torch.library): `torch.ops.kreg.<op>`.

Each op is a custom op whose body is the op's dispatch (the served kernel, or the reference:
kreg.ops), with a fake implementation that gives its outputs' shapes and dtypes without
running it. So torch.compile(fullgraph=True) of a model calling kreg.ops.* traces one opaque
call per op — no graph break on the reference's data-dependent Python (`int(x.max())`), and
the served kernel, not a retrace of the reference, runs in the compiled graph. Outputs whose
size depends on the data (jagged_truncate's values, bucketize's ids are still [L]) get an
unbacked size.

The differentiable ops have an autograd formula. For those with a backward kernel
(kreg.ops.backward) it is a second op, `torch.ops.kreg.<op>_backward`, that runs the served
backward kernel (its own key) and falls back, like any op, to the reference's backward: the
op's PyTorch reference recomputed on the saved inputs and differentiated. The others
(jagged_truncate, embedding bags) always take the reference's backward.

The schemas put tensors first and positional (torch.library's rule); the adapters below take
kreg.ops' own signatures. Imported once torch is (kreg.ops.register_torch_ops).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from kreg import ops as _ops
from kreg.ops import reference as _ref
from kreg.ops.backward import SUFFIX, WRT

_NS = "kreg"


def _eager(name: str) -> Callable[..., Any]:
    eager: Callable[..., Any] = getattr(_ops, f"_eager_{name}")
    return eager


# --- jagged pooling ------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::jagged_sum", mutates_args=())
def _jagged_sum(values: Tensor, offsets: Tensor, weights: Tensor | None = None, mean: bool = False) -> Tensor:
    return _eager("jagged_sum")(values, offsets, mean=mean, weights=weights)


@_jagged_sum.register_fake
def _(values: Tensor, offsets: Tensor, weights: Tensor | None = None, mean: bool = False) -> Tensor:
    return values.new_empty(offsets.shape[0] - 1, values.shape[1])


@torch.library.custom_op(f"{_NS}::embedding_bag", mutates_args=())
def _embedding_bag(table: Tensor, indices: Tensor, offsets: Tensor, weights: Tensor | None = None, mean: bool = False) -> Tensor:
    return _eager("embedding_bag")(table, indices, offsets, mean=mean, weights=weights)


@_embedding_bag.register_fake
def _(table: Tensor, indices: Tensor, offsets: Tensor, weights: Tensor | None = None, mean: bool = False) -> Tensor:
    return table.new_empty(offsets.shape[0] - 1, table.shape[1])


@torch.library.custom_op(f"{_NS}::jagged_softmax", mutates_args=())
def _jagged_softmax(values: Tensor, offsets: Tensor, max_len: int) -> Tensor:
    return _eager("jagged_softmax")(values, offsets, max_len=max_len)


@_jagged_softmax.register_fake
def _(values: Tensor, offsets: Tensor, max_len: int) -> Tensor:
    return torch.empty_like(values)


# --- dense -----------------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::dlrm_dot_interaction", mutates_args=())
def _dlrm_dot_interaction(dense: Tensor, sparse: Tensor) -> Tensor:
    return _eager("dlrm_dot_interaction")(dense, sparse)


@_dlrm_dot_interaction.register_fake
def _(dense: Tensor, sparse: Tensor) -> Tensor:
    features = sparse.shape[1] + 1
    return dense.new_empty(dense.shape[0], dense.shape[1] + features * (features - 1) // 2)


@torch.library.custom_op(f"{_NS}::sigrid_hash", mutates_args=())
def _sigrid_hash(ids: Tensor, salt: int, modulus: int) -> Tensor:
    return _eager("sigrid_hash")(ids, salt=salt, modulus=modulus)


@_sigrid_hash.register_fake
def _(ids: Tensor, salt: int, modulus: int) -> Tensor:
    return ids.new_empty(ids.shape, dtype=torch.int64)


@torch.library.custom_op(f"{_NS}::swish_layer_norm", mutates_args=())
def _swish_layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    return _eager("swish_layer_norm")(x, weight, bias, eps=eps)


@_swish_layer_norm.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op(f"{_NS}::layer_norm_mul", mutates_args=())
def _layer_norm_mul(x: Tensor, u: Tensor, weight: Tensor, bias: Tensor, act: str = "none", eps: float = 1e-5) -> Tensor:
    return _eager("layer_norm_mul")(x, u, weight, bias, act=act, eps=eps)


@_layer_norm_mul.register_fake
def _(x: Tensor, u: Tensor, weight: Tensor, bias: Tensor, act: str = "none", eps: float = 1e-5) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op(f"{_NS}::dcn_lowrank_cross", mutates_args=())
def _dcn_lowrank_cross(x0: Tensor, V: Tensor, W: Tensor, bias: Tensor) -> Tensor:  # noqa: N803 - TorchRec's names
    return _eager("dcn_lowrank_cross")(x0, V, W, bias)


@_dcn_lowrank_cross.register_fake
def _(x0: Tensor, V: Tensor, W: Tensor, bias: Tensor) -> Tensor:  # noqa: N803
    return torch.empty_like(x0)


# --- jagged layout -------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::jagged_truncate", mutates_args=())
def _jagged_truncate(values: Tensor, offsets: Tensor, max_len: int, keep: str = "first") -> tuple[Tensor, Tensor]:
    new_values, new_offsets = _eager("jagged_truncate")(values, offsets, max_len=max_len, keep=keep)
    return new_values, new_offsets


@_jagged_truncate.register_fake
def _(values: Tensor, offsets: Tensor, max_len: int, keep: str = "first") -> tuple[Tensor, Tensor]:
    kept = torch.library.get_ctx().new_dynamic_size()  # sum over rows of min(length, max_len)
    return values.new_empty(kept, values.shape[1]), offsets.new_empty(offsets.shape)


@torch.library.custom_op(f"{_NS}::jagged_to_padded_dense", mutates_args=())
def _jagged_to_padded_dense(values: Tensor, offsets: Tensor, max_len: int, padding_value: float = 0.0) -> Tensor:
    return _eager("jagged_to_padded_dense")(values, offsets, max_len=max_len, padding_value=padding_value)


@_jagged_to_padded_dense.register_fake
def _(values: Tensor, offsets: Tensor, max_len: int, padding_value: float = 0.0) -> Tensor:
    return values.new_empty(offsets.shape[0] - 1, max_len, values.shape[1])


@torch.library.custom_op(f"{_NS}::dense_to_jagged", mutates_args=())
def _dense_to_jagged(dense: Tensor, offsets: Tensor, total_L: int | None = None) -> Tensor:  # noqa: N803 - fbgemm's name
    return _eager("dense_to_jagged")(dense, offsets, total_L=total_L)


@_dense_to_jagged.register_fake
def _(dense: Tensor, offsets: Tensor, total_L: int | None = None) -> Tensor:  # noqa: N803
    rows = total_L if total_L is not None else torch.library.get_ctx().new_dynamic_size()  # offsets[-1]
    return dense.new_empty(rows, dense.shape[2])


# --- attention -------------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::jagged_flash_attention", mutates_args=())
def _jagged_flash_attention(q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, max_len: int) -> Tensor:
    return _eager("jagged_flash_attention")(q, k, v, offsets, max_len=max_len)


@_jagged_flash_attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, max_len: int) -> Tensor:
    return torch.empty_like(q)


@torch.library.custom_op(f"{_NS}::hstu_attention", mutates_args=())
def _hstu_attention(
    q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, num_targets: Tensor | None = None, max_len: int = 1, alpha: float | None = None
) -> Tensor:
    return _eager("hstu_attention")(q, k, v, offsets, max_len=max_len, num_targets=num_targets, alpha=alpha)


@_hstu_attention.register_fake
def _(
    q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, num_targets: Tensor | None = None, max_len: int = 1, alpha: float | None = None
) -> Tensor:
    return torch.empty_like(q)


# --- bucketize -------------------------------------------------------------------------------


@torch.library.custom_op(f"{_NS}::bucketize_sparse_features", mutates_args=())
def _bucketize_sparse_features(
    offsets: Tensor, ids: Tensor, block_sizes: Tensor | None = None, num_buckets: int = 1, positions: bool = False
) -> list[Tensor]:
    return list(_eager("bucketize_sparse_features")(offsets, ids, num_buckets, block_sizes=block_sizes, positions=positions))


@_bucketize_sparse_features.register_fake
def _(offsets: Tensor, ids: Tensor, block_sizes: Tensor | None = None, num_buckets: int = 1, positions: bool = False) -> list[Tensor]:
    segments = num_buckets * (offsets.shape[0] - 1)
    out = [offsets.new_empty(segments), offsets.new_empty(segments + 1), ids.new_empty(ids.shape, dtype=torch.int64)]
    return out + [ids.new_empty(ids.shape, dtype=torch.int64)] if positions else out


@torch.library.custom_op(f"{_NS}::batched_dense_bucketize", mutates_args=())
def _batched_dense_bucketize(x: Tensor, border_values: Tensor, border_offsets: Tensor) -> Tensor:
    return _eager("batched_dense_bucketize")(x, border_values, border_offsets)


@_batched_dense_bucketize.register_fake
def _(x: Tensor, border_values: Tensor, border_offsets: Tensor) -> Tensor:
    return x.new_empty(x.shape, dtype=torch.int64)


# --- kreg.ops' signatures onto the schemas ---------------------------------------------------

ADAPTERS: dict[str, Callable[..., Any]] = {
    "jagged_sum": lambda values, offsets, *, mean=False, weights=None: _jagged_sum(values, offsets, weights, mean),
    "embedding_bag": lambda table, indices, offsets, *, mean=False, weights=None: _embedding_bag(table, indices, offsets, weights, mean),
    "jagged_softmax": lambda values, offsets, *, max_len: _jagged_softmax(values, offsets, max_len),
    "dlrm_dot_interaction": lambda dense, sparse: _dlrm_dot_interaction(dense, sparse),
    "sigrid_hash": lambda ids, *, salt, modulus: _sigrid_hash(ids, salt, modulus),
    "swish_layer_norm": lambda x, weight, bias, *, eps=1e-5: _swish_layer_norm(x, weight, bias, eps),
    "layer_norm_mul": lambda x, u, weight, bias, *, act="none", eps=1e-5: _layer_norm_mul(x, u, weight, bias, act, eps),
    "dcn_lowrank_cross": lambda x0, V, W, bias: _dcn_lowrank_cross(x0, V, W, bias),
    "jagged_truncate": lambda values, offsets, *, max_len, keep="first": _jagged_truncate(values, offsets, max_len, keep),
    "jagged_to_padded_dense": lambda values, offsets, *, max_len, padding_value=0.0: _jagged_to_padded_dense(values, offsets, max_len, padding_value),
    "dense_to_jagged": lambda dense, offsets, *, total_L=None: _dense_to_jagged(dense, offsets, total_L),
    "jagged_flash_attention": lambda q, k, v, offsets, *, max_len: _jagged_flash_attention(q, k, v, offsets, max_len),
    "hstu_attention": lambda q, k, v, offsets, *, max_len, num_targets=None, alpha=None: _hstu_attention(q, k, v, offsets, num_targets, max_len, alpha),
    "bucketize_sparse_features": lambda offsets, ids, num_buckets, *, block_sizes=None, positions=False: tuple(
        _bucketize_sparse_features(offsets, ids, block_sizes, num_buckets, positions)
    ),
    "batched_dense_bucketize": lambda x, border_values, border_offsets: _batched_dense_bucketize(x, border_values, border_offsets),
}


# --- backward -----------------------------------------------------------------------------

# Each differentiable op's kreg.ops (args, kwargs) from its torch op's inputs: what its
# reference and its forward call (kreg.ops._PREPARE) take.
CALL_ARGS: dict[str, Callable[..., tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "jagged_sum": lambda values, offsets, weights=None, mean=False: ((values, offsets), {"mean": mean, "weights": weights}),
    "embedding_bag": lambda table, indices, offsets, weights=None, mean=False: ((table, indices, offsets), {"mean": mean, "weights": weights}),
    "jagged_softmax": lambda values, offsets, max_len: ((values, offsets), {"max_len": max_len}),
    "dlrm_dot_interaction": lambda dense, sparse: ((dense, sparse), {}),
    "swish_layer_norm": lambda x, weight, bias, eps=1e-5: ((x, weight, bias), {"eps": eps}),
    "layer_norm_mul": lambda x, u, weight, bias, act="none", eps=1e-5: ((x, u, weight, bias), {"act": act, "eps": eps}),
    "dcn_lowrank_cross": lambda x0, V, W, bias: ((x0, V, W, bias), {}),
    "jagged_truncate": lambda values, offsets, max_len, keep="first": ((values, offsets), {"max_len": max_len, "keep": keep}),
    "jagged_to_padded_dense": lambda values, offsets, max_len, padding_value=0.0: ((values, offsets), {"max_len": max_len, "padding_value": padding_value}),
    "dense_to_jagged": lambda dense, offsets, total_L=None: ((dense, offsets), {"total_L": total_L}),
    "jagged_flash_attention": lambda q, k, v, offsets, max_len: ((q, k, v, offsets), {"max_len": max_len}),
    "hstu_attention": lambda q, k, v, offsets, num_targets=None, max_len=1, alpha=None: (
        (q, k, v, offsets), {"max_len": max_len, "num_targets": num_targets, "alpha": alpha}
    ),
}


def _reference_grads(name: str, inputs: tuple[Any, ...], grads: tuple[Tensor | None, ...], wanted: list[int]) -> list[Tensor]:
    """The gradients of `name`'s reference at `inputs` for the input positions `wanted`,
    given its outputs' gradients (None: zeros): the reference recomputed on the inputs and
    differentiated. torch.func.vjp rather than autograd, since the backward op's body runs
    below autograd, where a recomputed graph would record nothing."""

    kept: list[int] = []  # positions of the float outputs (offsets get no gradient)

    def float_outputs(*differentiated: Tensor) -> tuple[Tensor, ...]:
        leaves = list(inputs)
        for i, t in zip(wanted, differentiated):
            leaves[i] = t
        args, kwargs = CALL_ARGS[name](*leaves)
        outputs = getattr(_ref, name)(*args, **kwargs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        kept[:] = [i for i, o in enumerate(outputs) if o.is_floating_point()]
        return tuple(outputs[i] for i in kept)

    outputs, vjp = torch.func.vjp(float_outputs, *(inputs[i].detach() for i in wanted))
    cotangents = tuple(g if (g := grads[i]) is not None else torch.zeros_like(o) for o, i in zip(outputs, kept))
    return list(vjp(cotangents))


def _saved_inputs(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.inputs = inputs  # tensors and plain arguments alike: the backward needs both
    # From the inputs themselves: ctx.needs_input_grad leaves out trailing defaulted args.
    ctx.needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)


def _reference_backward(name: str) -> Callable[..., tuple[Tensor | None, ...]]:
    """The backward of an op whose gradient has no kernel: its reference's."""

    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        wanted = [i for i, need in enumerate(ctx.needs) if need]
        found = iter(_reference_grads(name, ctx.inputs, grads, wanted))
        return tuple(next(found) if need else None for need in ctx.needs)

    return backward


# Per op with a backward kernel: the schema positions of the inputs it differentiates, in
# WRT order (read once: the backward of every training step asks).
_WRT_POSITIONS: dict[str, tuple[int, ...]] = {}


def _differentiated(name: str, inputs: tuple[Any, ...]) -> list[int]:
    """Positions of the inputs that `name`'s backward kernel differentiates and the call has.
    (torch.library drops trailing arguments left at their defaults, so `inputs` may be short.)"""
    return [i for i in _WRT_POSITIONS[name] if i < len(inputs) and inputs[i] is not None]


def _backward_op(name: str) -> Any:
    """torch.ops.kreg.<name>_backward(grad, *<name>'s inputs): the gradients of the inputs that
    `name`'s backward kernel differentiates (kreg.ops.backward.WRT), those the call has, in that
    order; on the served backward kernel, else the reference's backward. An op of its own, so
    that a compiled training graph calls it as one opaque node, as it does the forward."""
    forward = getattr(torch.ops.kreg, name).default._schema
    arguments = str(forward).split("(", 1)[1].rsplit(") ->", 1)[0]
    names = [a.name for a in forward.arguments]
    _WRT_POSITIONS[name] = tuple(names.index(n) for n in WRT[name].wrt)

    def body(grad: Tensor, *inputs: Any) -> list[Tensor]:
        present = _differentiated(name, inputs)
        args, kwargs = CALL_ARGS[name](*inputs)
        grads = _ops._eager_backward(name, grad, args, kwargs, lambda: tuple(_reference_grads(name, inputs, (grad,), present)))
        return [g.contiguous() for g in grads]  # the fake's layout, whatever the reference's strides

    op = torch.library.custom_op(f"{_NS}::{name}{SUFFIX}", body, mutates_args=(), schema=f"(Tensor grad, {arguments}) -> Tensor[]")

    @op.register_fake
    def _(grad: Tensor, *inputs: Any) -> list[Tensor]:
        return [inputs[i].new_empty(inputs[i].shape) for i in _differentiated(name, inputs)]

    return op


def _kernel_backward(name: str, op: Any) -> Callable[..., tuple[Tensor | None, ...]]:
    """The backward of an op with a backward kernel: its backward op."""

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        found = dict(zip(_differentiated(name, ctx.inputs), op(grad, *ctx.inputs)))
        return tuple(found.get(i) if need else None for i, need in enumerate(ctx.needs))

    return backward


for _name in CALL_ARGS:
    _forward = globals()[f"_{_name}"]
    if _name in WRT:
        _forward.register_autograd(_kernel_backward(_name, _backward_op(_name)), setup_context=_saved_inputs)
    else:
        _forward.register_autograd(_reference_backward(_name), setup_context=_saved_inputs)

# Ops whose calls may carry inputs that need grad: the rest (hashing, bucketizing) produce
# integers, and such calls run eagerly (kreg.ops._route).
DIFFERENTIABLE = frozenset(CALL_ARGS)
