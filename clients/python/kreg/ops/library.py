"""kreg.ops as PyTorch operators (torch.library): `torch.ops.kreg.<op>`.

Each op is a custom op whose body is the op's dispatch (the served kernel, or the reference:
kreg.ops), with a fake implementation that gives its outputs' shapes and dtypes without
running it. So torch.compile(fullgraph=True) of a model calling kreg.ops.* traces one opaque
call per op — no graph break on the reference's data-dependent Python (`int(x.max())`), and
the served kernel, not a retrace of the reference, runs in the compiled graph. Outputs whose
size depends on the data (jagged_truncate's values, bucketize's ids are still [L]) get an
unbacked size.

The differentiable ops have an autograd formula that is the reference's backward: the
forward runs the served kernel (forward-only), the backward recomputes the op's PyTorch
reference on the saved inputs and differentiates it. That is the fallback a served backward
kernel would replace; training can use served forward kernels now.

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


# --- backward: the reference's --------------------------------------------------------------

# Each differentiable op's reference, in its torch op's own signature.
REFERENCES: dict[str, Callable[..., Any]] = {
    "jagged_sum": lambda values, offsets, weights=None, mean=False: _ref.jagged_sum(values, offsets, mean=mean, weights=weights),
    "embedding_bag": lambda table, indices, offsets, weights=None, mean=False: _ref.embedding_bag(table, indices, offsets, mean=mean, weights=weights),
    "jagged_softmax": lambda values, offsets, max_len: _ref.jagged_softmax(values, offsets, max_len=max_len),
    "dlrm_dot_interaction": _ref.dlrm_dot_interaction,
    "swish_layer_norm": lambda x, weight, bias, eps=1e-5: _ref.swish_layer_norm(x, weight, bias, eps=eps),
    "layer_norm_mul": lambda x, u, weight, bias, act="none", eps=1e-5: _ref.layer_norm_mul(x, u, weight, bias, act=act, eps=eps),
    "dcn_lowrank_cross": _ref.dcn_lowrank_cross,
    "jagged_truncate": lambda values, offsets, max_len, keep="first": _ref.jagged_truncate(values, offsets, max_len=max_len, keep=keep),
    "jagged_to_padded_dense": lambda values, offsets, max_len, padding_value=0.0: _ref.jagged_to_padded_dense(values, offsets, max_len=max_len, padding_value=padding_value),
    "dense_to_jagged": lambda dense, offsets, total_L=None: _ref.dense_to_jagged(dense, offsets, total_L=total_L),
    "jagged_flash_attention": lambda q, k, v, offsets, max_len: _ref.jagged_flash_attention(q, k, v, offsets, max_len=max_len),
    "hstu_attention": lambda q, k, v, offsets, num_targets=None, max_len=1, alpha=None: _ref.hstu_attention(
        q, k, v, offsets, max_len=max_len, num_targets=num_targets, alpha=alpha
    ),
}


def _reference_backward(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(backward, setup_context) differentiating `name`'s reference, recomputed on the inputs."""
    reference = REFERENCES[name]

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.inputs = inputs  # tensors and plain arguments alike: the recompute needs both
        # From the inputs themselves: ctx.needs_input_grad leaves out trailing defaulted args.
        ctx.needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)

    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        needs = ctx.needs
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_() if needs[i] else t for i, t in enumerate(ctx.inputs)]
            outputs = reference(*leaves)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
            wanted = [t for i, t in enumerate(leaves) if needs[i]]
            found = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True))
        return tuple(next(found) if needs[i] else None for i in range(len(leaves)))

    return backward, setup_context


for _name in REFERENCES:
    _backward, _setup = _reference_backward(_name)
    globals()[f"_{_name}"].register_autograd(_backward, setup_context=_setup)

# Ops whose calls may carry inputs that need grad: the rest (hashing, bucketizing) produce
# integers, and such calls run eagerly (kreg.ops._route).
DIFFERENTIABLE = frozenset(REFERENCES)
