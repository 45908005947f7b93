"""The PyTorch references against naive loops written from the public sources' semantics
(fbgemm's CPU jagged kernels, TorchRec's InteractionArch, Folly/Velox for sigrid_hash).

The loops are deliberately the dumbest correct code: per row, per column, per pair, and the
hash in Python's unbounded integers masked to 64 bits, so they share no trick with the
vectorised references.
"""

from __future__ import annotations

import pytest
import torch
from kreg.ops import reference as ref

MASK64 = (1 << 64) - 1


# --- sigrid_hash --------------------------------------------------------------------------


def folly_twang_mix64(key: int) -> int:
    key &= MASK64
    key = (~key + (key << 21)) & MASK64
    key ^= key >> 24
    key = (key + (key << 3) + (key << 8)) & MASK64
    key ^= key >> 14
    key = (key + (key << 2) + (key << 4)) & MASK64
    key ^= key >> 28
    return (key + (key << 31)) & MASK64


def folly_hash_128_to_64(upper: int, lower: int) -> int:
    kmul = 0x9DDFEA08EB382D69
    a = ((lower ^ upper) * kmul) & MASK64
    a ^= a >> 47
    b = ((upper ^ a) * kmul) & MASK64
    b ^= b >> 47
    return (b * kmul) & MASK64


def velox_sigrid_hash(value: int, salt: int, max_value: int) -> int:
    if max_value == 1:
        return 0
    hashed = folly_hash_128_to_64(salt & MASK64, folly_twang_mix64(value))
    signed = hashed - (1 << 64) if hashed >> 63 else hashed
    return signed % max_value if max_value > 1 else signed  # Python's % is the floor modulus


def test_sigrid_hash_test_vector() -> None:
    """TorchArrow's published vector: ids 1..16, salt 0, M 100."""
    out = ref.sigrid_hash(torch.arange(1, 17, dtype=torch.int64), salt=0, modulus=100)
    assert out.dtype == torch.int64
    assert out.tolist() == [60, 54, 54, 9, 4, 91, 11, 67, 79, 2, 25, 92, 98, 83, 66, 2]


@pytest.mark.parametrize(
    "salt, modulus",
    [
        (0, 100),
        (7, 40_000_000),
        (-1, 2),
        (2**40 + 3, 2**31 + 11),
        (-(2**63), 2**62 + 1),
        (2**63 - 1, 0),
        (5, -7),
        (3, 1),
    ],
)
def test_sigrid_hash_matches_folly_in_python_integers(salt: int, modulus: int) -> None:
    generator = torch.Generator().manual_seed(salt & 0xFFFF)
    ids = torch.randint(-(2**63), 2**63 - 1, (200,), generator=generator, dtype=torch.int64)
    ids[:4] = torch.tensor([0, -1, 2**63 - 1, -(2**63)])
    out = ref.sigrid_hash(ids, salt=salt, modulus=modulus)
    assert out.tolist() == [velox_sigrid_hash(int(i), salt, modulus) for i in ids]


def test_sigrid_hash_sign_extends_int32_ids() -> None:
    ids = torch.tensor([-5, 0, 7, 2**31 - 1], dtype=torch.int32)
    assert torch.equal(
        ref.sigrid_hash(ids, salt=3, modulus=1000), ref.sigrid_hash(ids.long(), salt=3, modulus=1000)
    )


def test_sigrid_hash_rejects_what_is_not_int64() -> None:
    with pytest.raises(TypeError):
        ref.sigrid_hash(torch.zeros(3), salt=0, modulus=10)
    with pytest.raises(ValueError, match="salt"):
        ref.sigrid_hash(torch.zeros(3, dtype=torch.int64), salt=2**63, modulus=10)


# --- jagged helpers -----------------------------------------------------------------------

LENGTH_PATTERNS = {
    "mixed": [3, 0, 5, 1, 0, 8],
    "all_empty": [0, 0, 0],
    "one_row": [7],
    "no_rows": [],
    "leading_and_trailing_empty": [0, 4, 4, 0],
}


def jagged(lengths: list[int], width: int, dtype: torch.dtype, index_dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.tensor([0] + lengths, dtype=torch.int64).cumsum(0).to(index_dtype)
    values = (torch.randn(int(offsets[-1]), width, generator=generator, dtype=torch.float64) * 3).to(dtype)
    return values, offsets


def loop_jagged_sum(values: torch.Tensor, offsets: torch.Tensor, mean: bool) -> torch.Tensor:
    """fbgemm segment_sum_csr / TorchRec pooling, one row at a time in float64; empty rows 0."""
    rows = []
    for b in range(offsets.numel() - 1):
        row = values[int(offsets[b]) : int(offsets[b + 1])].double()
        total = row.sum(0) if row.shape[0] else torch.zeros(values.shape[1], dtype=torch.float64)
        rows.append(total / max(row.shape[0], 1) if mean else total)
    return torch.stack(rows) if rows else torch.zeros(0, values.shape[1], dtype=torch.float64)


def loop_jagged_softmax(values: torch.Tensor, offsets: torch.Tensor, max_len: int) -> torch.Tensor:
    """fbgemm's CPU jagged_softmax_kernel: per row and column, over the first min(len, max_L)
    items; items past max_L are 0 here (fbgemm leaves them unwritten)."""
    out = torch.zeros(values.shape, dtype=torch.float64)
    for b in range(offsets.numel() - 1):
        start = int(offsets[b])
        length = min(int(offsets[b + 1]) - start, max_len)
        for d in range(values.shape[1]):
            column = [float(values[start + i, d]) for i in range(length)]
            if not column:
                continue
            top = max(column)
            exps = [torch.exp(torch.tensor(x - top, dtype=torch.float64)) for x in column]
            total = sum(exps)
            for i, e in enumerate(exps):
                out[start + i, d] = e / total
    return out


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    tolerances = {
        torch.float64: (1e-12, 1e-12),
        torch.float32: (1e-5, 1e-6),
        torch.float16: (2e-3, 1e-4),
        torch.bfloat16: (1.6e-2, 1e-3),
    }
    rtol, atol = tolerances[dtype]
    assert actual.dtype == dtype
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)


# --- jagged_sum ---------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", sorted(LENGTH_PATTERNS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("mean", [False, True])
def test_jagged_sum_matches_loop(
    pattern: str, dtype: torch.dtype, index_dtype: torch.dtype, mean: bool
) -> None:
    values, offsets = jagged(LENGTH_PATTERNS[pattern], 5, dtype, index_dtype)
    out = ref.jagged_sum(values, offsets, mean=mean)
    assert out.shape == (offsets.numel() - 1, 5)
    assert_close(out, loop_jagged_sum(values, offsets, mean), dtype)


@pytest.mark.parametrize("index", [torch.int32, torch.int64])
@pytest.mark.parametrize("mode", ["sum", "mean", "weighted"])
def test_embedding_bag_is_torchs_embedding_bag(mode: str, index: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    offsets = torch.tensor([0, 3, 3, 10, 11], dtype=index)
    indices = torch.randint(0, 50, (11,), generator=gen, dtype=index)
    weights = torch.rand(11, generator=gen, dtype=torch.float64) if mode == "weighted" else None
    out = ref.embedding_bag(table, indices, offsets, mean=mode == "mean", weights=weights)
    expected = torch.nn.functional.embedding_bag(
        indices, table, offsets, mode="mean" if mode == "mean" else "sum", per_sample_weights=weights, include_last_offset=True
    )
    torch.testing.assert_close(out, expected)


def test_weighted_jagged_sum_scales_each_item_and_refuses_a_weighted_mean() -> None:
    values = torch.arange(12.0).reshape(4, 3)
    offsets = torch.tensor([0, 1, 4])
    weights = torch.tensor([2.0, 0.5, 0.0, -1.0])
    out = ref.jagged_sum(values, offsets, weights=weights)
    assert torch.equal(out, torch.stack([2 * values[0], 0.5 * values[1] - values[3]]))
    with pytest.raises(ValueError, match="weighted mean"):
        ref.jagged_sum(values, offsets, mean=True, weights=weights)
    with pytest.raises(ValueError, match="weights must be"):
        ref.jagged_sum(values, offsets, weights=weights[:3])


def test_jagged_sum_empty_rows_are_zero_not_nan() -> None:
    values, offsets = jagged([0, 2, 0], 3, torch.float32, torch.int64)
    out = ref.jagged_sum(values, offsets, mean=True)
    assert torch.equal(out[0], torch.zeros(3)) and torch.equal(out[2], torch.zeros(3))


# --- jagged_softmax -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", sorted(LENGTH_PATTERNS))
@pytest.mark.parametrize("max_len", [0, 1, 4, 100])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_jagged_softmax_matches_fbgemm_loop(
    pattern: str, max_len: int, dtype: torch.dtype, index_dtype: torch.dtype
) -> None:
    values, offsets = jagged(LENGTH_PATTERNS[pattern], 3, dtype, index_dtype)
    out = ref.jagged_softmax(values, offsets, max_len=max_len)
    assert out.shape == values.shape
    assert_close(out, loop_jagged_softmax(values, offsets, max_len), dtype)


def test_jagged_softmax_kept_items_sum_to_one_per_column() -> None:
    values, offsets = jagged([6, 2, 9], 4, torch.float32, torch.int64)
    out = ref.jagged_softmax(values, offsets, max_len=5)
    for b, kept in enumerate([5, 2, 5]):
        start = int(offsets[b])
        torch.testing.assert_close(out[start : start + kept].sum(0), torch.ones(4))
        assert not out[start + kept : int(offsets[b + 1])].any()


def test_jagged_softmax_survives_large_values() -> None:
    """The max is subtracted: exp(1000) would overflow without it."""
    values = torch.tensor([[1000.0], [1000.0], [-1000.0]])
    out = ref.jagged_softmax(values, torch.tensor([0, 3]), max_len=3)
    torch.testing.assert_close(out, torch.tensor([[0.5], [0.5], [0.0]]))


def test_jagged_rejects_malformed_inputs() -> None:
    with pytest.raises(ValueError):
        ref.jagged_sum(torch.zeros(3), torch.tensor([0, 3]))
    with pytest.raises(TypeError):
        ref.jagged_sum(torch.zeros(3, 2), torch.tensor([0.0, 3.0]))
    with pytest.raises(ValueError):
        ref.jagged_softmax(torch.zeros(3, 2), torch.tensor([0, 3]), max_len=-1)


# --- dlrm_dot_interaction -----------------------------------------------------------------


def loop_interaction(dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """TorchRec InteractionArch, pair by pair in float64, pairs (i < j) row-major."""
    batch, features = dense.shape[0], sparse.shape[1]
    rows = []
    for b in range(batch):
        t = [dense[b].double()] + [sparse[b, f].double() for f in range(features)]
        pairs = [torch.dot(t[i], t[j]) for i in range(features + 1) for j in range(i + 1, features + 1)]
        rows.append(
            torch.cat(
                [dense[b].double(), torch.stack(pairs) if pairs else torch.zeros(0, dtype=torch.float64)]
            )
        )
    return torch.stack(rows)


@pytest.mark.parametrize("batch, features, width", [(3, 4, 5), (1, 0, 3), (2, 1, 1), (2, 26, 8)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_dlrm_dot_interaction_matches_loop(batch: int, features: int, width: int, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(batch * 100 + features)
    dense = torch.randn(batch, width, generator=generator, dtype=torch.float64).to(dtype)
    sparse = torch.randn(batch, features, width, generator=generator, dtype=torch.float64).to(dtype)
    out = ref.dlrm_dot_interaction(dense, sparse)
    assert out.shape == (batch, width + (features + 1) * features // 2)
    assert_close(out, loop_interaction(dense, sparse), dtype)


def test_dlrm_output_width_is_479_for_f26_d128() -> None:
    out = ref.dlrm_dot_interaction(torch.randn(2, 128), torch.randn(2, 26, 128))
    assert out.shape == (2, 479)


def test_dlrm_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        ref.dlrm_dot_interaction(torch.randn(2, 8), torch.randn(3, 4, 8))
    with pytest.raises(TypeError):
        ref.dlrm_dot_interaction(torch.randn(2, 8), torch.randn(2, 4, 8).half())
