"""kreg.ops as torch.library operators: every op's schema, fake implementation and autograd
formula agree with what it computes (torch.library.opcheck), a model calling the ops compiles
with fullgraph=True, and the differentiable ops' backward (the reference's, recomputed) passes
gradcheck in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kreg.ops
import pytest
import torch

kreg.ops.register_torch_ops()

G = torch.Generator().manual_seed(0)


def rand(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=G).to(dtype)


OFFSETS = torch.tensor([0, 3, 3, 8, 10])  # rows of 3, 0, 5 and 2 items
IDS = torch.tensor([4, 9, 1, 0, 7, 12, 3, 5, 8, 2])

# (torch op, args, kwargs) per op: small inputs with an empty row.
CASES: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
    "jagged_sum": (torch.ops.kreg.jagged_sum, (rand(10, 4), OFFSETS), {}),
    "jagged_sum_weighted": (torch.ops.kreg.jagged_sum, (rand(10, 4), OFFSETS, rand(10)), {}),
    "embedding_bag": (torch.ops.kreg.embedding_bag, (rand(16, 4), IDS, OFFSETS), {"mean": True}),
    "jagged_softmax": (torch.ops.kreg.jagged_softmax, (rand(10, 4), OFFSETS, 4), {}),
    "dlrm_dot_interaction": (torch.ops.kreg.dlrm_dot_interaction, (rand(2, 8), rand(2, 3, 8)), {}),
    "sigrid_hash": (torch.ops.kreg.sigrid_hash, (IDS, 7, 1000), {}),
    "swish_layer_norm": (torch.ops.kreg.swish_layer_norm, (rand(3, 16), rand(16), rand(16)), {}),
    "layer_norm_mul": (torch.ops.kreg.layer_norm_mul, (rand(3, 16), rand(3, 16), rand(16), rand(16), "silu"), {}),
    "dcn_lowrank_cross": (torch.ops.kreg.dcn_lowrank_cross, (rand(2, 12), rand(2, 4, 12), rand(2, 12, 4), rand(2, 12)), {}),
    "jagged_truncate": (torch.ops.kreg.jagged_truncate, (rand(10, 4), OFFSETS, 2, "last"), {}),
    "jagged_to_padded_dense": (torch.ops.kreg.jagged_to_padded_dense, (rand(10, 4), OFFSETS, 4, -1.0), {}),
    "dense_to_jagged": (torch.ops.kreg.dense_to_jagged, (rand(4, 5, 4), OFFSETS, 10), {}),
    "dense_to_jagged_unknown_length": (torch.ops.kreg.dense_to_jagged, (rand(4, 5, 4), OFFSETS), {}),
    "jagged_flash_attention": (torch.ops.kreg.jagged_flash_attention, (rand(10, 8), rand(10, 8), rand(10, 8), OFFSETS, 4), {}),
    "hstu_attention": (torch.ops.kreg.hstu_attention, (rand(10, 2, 8), rand(10, 2, 8), rand(10, 2, 8), OFFSETS, torch.tensor([1, 0, 2, 0])), {"max_len": 4}),
    "bucketize_sparse_features": (torch.ops.kreg.bucketize_sparse_features, (OFFSETS, IDS), {"num_buckets": 3, "positions": True}),
    "bucketize_sparse_features_block": (torch.ops.kreg.bucketize_sparse_features, (OFFSETS, IDS, torch.tensor([4, 6])), {"num_buckets": 2}),
    "batched_dense_bucketize": (torch.ops.kreg.batched_dense_bucketize, (rand(3, 2), torch.tensor([-1.0, 0.0, 1.0, -0.5, 0.5]), torch.tensor([0, 3, 5])), {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schema_and_fake_implementation_agree_with_the_op(case: str) -> None:
    op, args, kwargs = CASES[case]
    torch.library.opcheck(op, args, kwargs)


def _model(dense: torch.Tensor, sparse: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """A DLRM-style forward over kreg ops: hashed ids, pooled jagged features, interaction, cross."""
    hashed = kreg.ops.sigrid_hash(ids, salt=3, modulus=16)
    pooled = kreg.ops.embedding_bag(values, hashed, offsets)  # [B, D]
    truncated, short = kreg.ops.jagged_truncate(values[: ids.numel()], offsets, max_len=2)
    summed = kreg.ops.jagged_sum(truncated, short)
    features = torch.stack([pooled, summed, sparse], dim=1)
    z = kreg.ops.dlrm_dot_interaction(dense, features)
    return kreg.ops.swish_layer_norm(z, torch.ones(z.shape[1]), torch.zeros(z.shape[1]))


def _inputs() -> tuple[torch.Tensor, ...]:
    return rand(4, 8), rand(4, 8), rand(16, 8), OFFSETS, IDS


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_a_model_over_kreg_ops_compiles_whole_and_matches_eager(backend: str) -> None:
    inputs = _inputs()
    want = _model(*inputs)
    torch._dynamo.reset()
    compiled: Callable[..., torch.Tensor] = torch.compile(_model, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(*inputs), want)


def test_the_backward_is_the_references() -> None:
    values = rand(10, 4).requires_grad_()
    out = kreg.ops.jagged_sum(values, OFFSETS, mean=True)
    out.sum().backward()
    lengths = (OFFSETS[1:] - OFFSETS[:-1]).clamp(min=1).float()
    per_item = torch.repeat_interleave(1 / lengths, OFFSETS[1:] - OFFSETS[:-1])
    torch.testing.assert_close(values.grad, per_item[:, None].expand(10, 4))


def f64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=G, dtype=torch.float64, requires_grad=True)


# Each differentiable op on float64 inputs that need grad (the reference path: no kernel is
# published for fp64), through kreg.ops and so through its torch op's autograd formula.
GRADCHECKS: dict[str, tuple[Callable[..., Any], tuple[torch.Tensor, ...]]] = {
    "jagged_sum": (lambda v, w: kreg.ops.jagged_sum(v, OFFSETS, weights=w), (f64(10, 3), f64(10))),
    "embedding_bag": (lambda t: kreg.ops.embedding_bag(t, IDS, OFFSETS, mean=True), (f64(16, 3),)),
    "jagged_softmax": (lambda v: kreg.ops.jagged_softmax(v, OFFSETS, max_len=4), (f64(10, 3),)),
    "dlrm_dot_interaction": (kreg.ops.dlrm_dot_interaction, (f64(2, 4), f64(2, 3, 4))),
    "swish_layer_norm": (lambda x, w, b: kreg.ops.swish_layer_norm(x, w, b), (f64(3, 6), f64(6), f64(6))),
    "layer_norm_mul": (lambda x, u, w, b: kreg.ops.layer_norm_mul(x, u, w, b, act="silu"), (f64(3, 6), f64(3, 6), f64(6), f64(6))),
    "dcn_lowrank_cross": (kreg.ops.dcn_lowrank_cross, (f64(2, 6), f64(2, 3, 6), f64(2, 6, 3), f64(2, 6))),
    "jagged_truncate": (lambda v: kreg.ops.jagged_truncate(v, OFFSETS, max_len=2, keep="last")[0], (f64(10, 3),)),
    "jagged_to_padded_dense": (lambda v: kreg.ops.jagged_to_padded_dense(v, OFFSETS, max_len=4), (f64(10, 3),)),
    "dense_to_jagged": (lambda d: kreg.ops.dense_to_jagged(d, OFFSETS, total_L=10), (f64(4, 5, 3),)),
    "jagged_flash_attention": (lambda q, k, v: kreg.ops.jagged_flash_attention(q, k, v, OFFSETS, max_len=4), (f64(10, 4), f64(10, 4), f64(10, 4))),
    "hstu_attention": (lambda q, k, v: kreg.ops.hstu_attention(q, k, v, OFFSETS, max_len=4), (f64(10, 2, 4), f64(10, 2, 4), f64(10, 2, 4))),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck_through_the_torch_op(name: str) -> None:
    fn, inputs = GRADCHECKS[name]
    assert torch.autograd.gradcheck(fn, inputs)
    # and the call went through the torch op: its autograd node, not the reference's graph
    assert fn(*inputs).grad_fn.name() == f"GeneratedBackwardFor_kreg_{name}_defaultBackward"
