"""Exact PyTorch references: the correctness oracle for generated kernels and the fallback
when no kernel is served.

Semantics follow the public sources named in OPERATORS.md (fbgemm, TorchRec, Velox/TorchArrow,
Folly). Float ops compute in float32 (float64 when given float64) and cast back to the input
dtype once, the way the kernels do. Everything is vectorised (segment ids from
`repeat_interleave`, `index_add_`, `scatter_reduce`): no Python loop over rows, so a reference
is usable as a baseline at production shapes.

Jagged preconditions (not checked, since checking values would force a device sync on every
call): `offsets` is non-decreasing, `offsets[0] == 0` and `offsets[-1] == values.shape[0]`.
"""

from __future__ import annotations

import torch

__all__ = [
    "dcn_lowrank_cross",
    "dense_to_jagged",
    "dlrm_dot_interaction",
    "embedding_bag",
    "hstu_attention",
    "jagged_flash_attention",
    "jagged_softmax",
    "jagged_sum",
    "jagged_to_padded_dense",
    "jagged_truncate",
    "layer_norm_mul",
    "sigrid_hash",
    "swish_layer_norm",
]


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_jagged(values: torch.Tensor, offsets: torch.Tensor) -> None:
    if values.dim() != 2:
        raise ValueError(f"values must be [L, D], got shape {tuple(values.shape)}")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"offsets must be [B+1] with B >= 0, got shape {tuple(offsets.shape)}")
    if offsets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"offsets must be int32 or int64, got {offsets.dtype}")
    if not values.is_floating_point():
        raise TypeError(f"values must be floating point, got {values.dtype}")


def _row_ids(offsets: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row index of every item [L], row lengths [B]), both int64."""
    offsets = offsets.long()
    lengths = offsets[1:] - offsets[:-1]
    rows = torch.arange(lengths.numel(), device=offsets.device)
    return torch.repeat_interleave(rows, lengths, output_size=total), lengths


def jagged_sum(
    values: torch.Tensor, offsets: torch.Tensor, *, mean: bool = False, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """out[b] = sum(values[offsets[b]:offsets[b+1]]), [B, D]; the mean when `mean`; with
    `weights` [L] (the values' dtype), each item times its weight first (TorchRec's
    per-feature weights; weights and the mean exclude each other, as in F.embedding_bag).

    An empty row gives 0, also for the mean (fbgemm's segment_sum_csr and TorchRec's pooling
    produce 0 there, never NaN).
    """
    _check_jagged(values, offsets)
    if weights is not None:
        if mean:
            raise ValueError("weights are for sums: a weighted mean is not defined (F.embedding_bag refuses it too)")
        if weights.shape != values.shape[:1] or weights.dtype != values.dtype:
            raise ValueError(f"weights must be [{values.shape[0]}] {values.dtype}, got {tuple(weights.shape)} {weights.dtype}")
    acc = _accumulator(values.dtype)
    total, width = values.shape
    rows, lengths = _row_ids(offsets, total)
    items = values.to(acc) if weights is None else values.to(acc) * weights.to(acc)[:, None]
    out = torch.zeros(lengths.numel(), width, dtype=acc, device=values.device)
    out.index_add_(0, rows, items)
    if mean:
        out /= lengths.clamp(min=1).to(acc)[:, None]
    return out.to(values.dtype)


def embedding_bag(
    table: torch.Tensor,
    indices: torch.Tensor,
    offsets: torch.Tensor,
    *,
    mean: bool = False,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """F.embedding_bag with offsets [B+1] (include_last_offset): bag b pools the table rows
    indices[offsets[b]:offsets[b+1]], i.e. jagged_sum of table[indices]. indices and offsets
    share one dtype (int32 or int64), as F.embedding_bag requires; an index outside the
    table raises (IndexError)."""
    if table.dim() != 2 or indices.dim() != 1:
        raise ValueError(f"want table [V, D] and indices [L], got {tuple(table.shape)}, {tuple(indices.shape)}")
    if indices.dtype != offsets.dtype:
        raise TypeError(f"indices ({indices.dtype}) and offsets ({offsets.dtype}) must share one dtype")
    return jagged_sum(table[indices.long()], offsets, mean=mean, weights=weights)


def jagged_softmax(values: torch.Tensor, offsets: torch.Tensor, *, max_len: int) -> torch.Tensor:
    """Softmax over each row's items, per column, on the first `max_len` items of the row.

    Output has the shape of `values`. Items at position >= max_len within their row are 0:
    fbgemm's jagged_softmax leaves them unwritten (its output is `empty_like`), which no
    verifier can compare, so we define them as 0 (excluded from the softmax, written as 0).
    """
    _check_jagged(values, offsets)
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    acc = _accumulator(values.dtype)
    total, width = values.shape
    rows, lengths = _row_ids(offsets, total)
    num_rows = lengths.numel()
    position = torch.arange(total, device=values.device) - offsets.long()[:-1][rows]
    kept = (position < max_len)[:, None]
    x = values.to(acc)
    index = rows[:, None].expand(total, width)
    row_max = torch.full((num_rows, width), float("-inf"), dtype=acc, device=values.device)
    row_max.scatter_reduce_(0, index, x.masked_fill(~kept, float("-inf")), "amax", include_self=True)
    # The exponent is masked before the exp, not only the result: rows with nothing kept have
    # max -inf, and exp(x - -inf) = inf there would make autograd's 0 * inf a NaN gradient.
    zero = torch.zeros((), dtype=acc, device=values.device)
    e = torch.where(kept, torch.exp(torch.where(kept, x - row_max[rows], zero)), zero)
    sums = torch.zeros(num_rows, width, dtype=acc, device=values.device).index_add_(0, rows, e)
    out = torch.where(kept, e / sums[rows], zero)
    return out.to(values.dtype)


def dlrm_dot_interaction(dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """TorchRec's InteractionArch: T = cat(dense[:, None], sparse) [B, F+1, D], Z = T Tᵀ,
    out = cat(dense, Z[:, triu(F+1, offset=1)]) of width D + (F+1)F/2, pairs in the order of
    torch.triu_indices(F+1, F+1, 1) (row-major over the strict upper triangle)."""
    if dense.dim() != 2 or sparse.dim() != 3:
        raise ValueError(
            f"want dense [B, D] and sparse [B, F, D], got {tuple(dense.shape)}, {tuple(sparse.shape)}"
        )
    batch, width = dense.shape
    if sparse.shape[0] != batch or sparse.shape[2] != width:
        raise ValueError(f"sparse {tuple(sparse.shape)} does not match dense {tuple(dense.shape)}")
    if sparse.dtype != dense.dtype:
        raise TypeError(f"dense is {dense.dtype} but sparse is {sparse.dtype}")
    acc = _accumulator(dense.dtype)
    features = sparse.shape[1]
    t = torch.cat([dense[:, None, :], sparse], dim=1).to(acc)
    z = torch.bmm(t, t.transpose(1, 2))
    i, j = torch.triu_indices(features + 1, features + 1, offset=1, device=dense.device)
    return torch.cat([dense.to(acc), z[:, i, j]], dim=1).to(dense.dtype)


# Folly's hash_128_to_64 multiplier, as the int64 with the same bits.
_KMUL = 0x9DDFEA08EB382D69 - (1 << 64)


def _lshr(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> on int64 is arithmetic)."""
    return (x >> shift) & ((1 << (64 - shift)) - 1)


def _twang_mix64(k: torch.Tensor) -> torch.Tensor:
    k = ~k + (k << 21)
    k = k ^ _lshr(k, 24)
    k = k + (k << 3) + (k << 8)
    k = k ^ _lshr(k, 14)
    k = k + (k << 2) + (k << 4)
    k = k ^ _lshr(k, 28)
    return k + (k << 31)


def _hash_128_to_64(upper: int, lower: torch.Tensor) -> torch.Tensor:
    # `upper` stays a Python int: no host-to-device copy, so the reference can be graph-captured.
    a = (lower ^ upper) * _KMUL
    a = a ^ _lshr(a, 47)
    b = (a ^ upper) * _KMUL
    b = b ^ _lshr(b, 47)
    return b * _KMUL


def sigrid_hash(ids: torch.Tensor, *, salt: int, modulus: int) -> torch.Tensor:
    """Velox/TorchArrow sigrid_hash: floormod(hash_128_to_64(salt, twang_mix64(id)), modulus).

    Arithmetic is uint64 (Folly), emulated on int64: add and multiply wrap identically, right
    shifts are made logical by masking. The hash is read back as int64 and reduced with a floor
    modulus (the result is in [0, modulus)). modulus == 1 gives 0; modulus <= 0 gives the raw
    int64 hash, as Velox does. int32 ids are sign-extended first, as C++ does.
    """
    if ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"ids must be int32 or int64, got {ids.dtype}")
    for name, value in (("salt", salt), ("modulus", modulus)):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{name}={value} does not fit int64")
    if modulus == 1:
        return torch.zeros(ids.shape, dtype=torch.int64, device=ids.device)
    hashed = _hash_128_to_64(salt, _twang_mix64(ids.to(torch.int64)))
    if modulus > 1:
        return torch.remainder(hashed, modulus)
    return hashed


# --- layer norms (generative-recommenders pt_layer_norm.py) -------------------------------------

LAYER_NORM_ACTIVATIONS = ("none", "sigmoid", "silu")


def _layer_norm_fp32(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LN over the last dim of x [N, D] in the accumulator dtype, with weight and bias [D]."""
    if x.dim() != 2:
        raise ValueError(f"x must be [N, D], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    width = x.shape[1]
    if weight.shape != (width,) or bias.shape != (width,):
        raise ValueError(f"weight and bias must be [{width}], got {tuple(weight.shape)}, {tuple(bias.shape)}")
    acc = _accumulator(x.dtype)
    return torch.nn.functional.layer_norm(x.to(acc), (width,), weight.to(acc), bias.to(acc), eps)


def swish_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """x * sigmoid(LN(x; weight, bias)) per row of x [N, D], in float32, cast back once."""
    y = _layer_norm_fp32(x, weight, bias, eps)
    return (x.to(y.dtype) * torch.sigmoid(y)).to(x.dtype)


def layer_norm_mul(
    x: torch.Tensor, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, act: str = "none", eps: float = 1e-5
) -> torch.Tensor:
    """act(u) * LN(x; weight, bias) for x, u [N, D], act none|sigmoid|silu, in float32, cast back once."""
    if act not in LAYER_NORM_ACTIVATIONS:
        raise ValueError(f"act must be one of {', '.join(LAYER_NORM_ACTIVATIONS)}, got {act!r}")
    if u.shape != x.shape or u.dtype != x.dtype:
        raise ValueError(f"u {tuple(u.shape)} {u.dtype} must match x {tuple(x.shape)} {x.dtype}")
    y = _layer_norm_fp32(x, weight, bias, eps)
    gate = u.to(y.dtype)
    if act == "sigmoid":
        gate = torch.sigmoid(gate)
    elif act == "silu":
        gate = torch.nn.functional.silu(gate)
    return (gate * y).to(x.dtype)


def _positions(offsets: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row of every item [L], its position within its row [L], row lengths [B]), int64."""
    rows, lengths = _row_ids(offsets, total)
    position = torch.arange(total, device=offsets.device) - offsets.long()[:-1][rows]
    return rows, position, lengths


def jagged_truncate(
    values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, keep: str = "first"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the first (`keep="first"`) or the last (`keep="last"`) min(len_b, max_len) items
    of every row: (new values [sum of kept, D], new offsets [B+1] of the offsets' dtype).
    Items keep their order; an empty row or max_len 0 keeps nothing."""
    _check_jagged(values, offsets)
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if keep not in ("first", "last"):
        raise ValueError(f"keep must be 'first' or 'last', got {keep!r}")
    rows, position, lengths = _positions(offsets, values.shape[0])
    if keep == "first":
        kept = position < max_len
    else:
        kept = position >= lengths[rows] - max_len
    new_offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=offsets.device)
    torch.cumsum(lengths.clamp(max=max_len), 0, out=new_offsets[1:])
    return values[kept], new_offsets.to(offsets.dtype)


def jagged_to_padded_dense(
    values: torch.Tensor, offsets: torch.Tensor, *, max_len: int, padding_value: float = 0.0
) -> torch.Tensor:
    """fbgemm's jagged_to_padded_dense for one jagged dimension: [B, max_len, D], row b's
    first min(len_b, max_len) items, then `padding_value` (rows longer than max_len are
    truncated). The padding is rounded to the values' dtype."""
    _check_jagged(values, offsets)
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    total, width = values.shape
    rows, position, lengths = _positions(offsets, total)
    out = torch.full((lengths.numel(), max_len, width), padding_value, dtype=values.dtype, device=values.device)
    kept = position < max_len
    out[rows[kept], position[kept]] = values[kept]
    return out


def dense_to_jagged(dense: torch.Tensor, offsets: torch.Tensor, *, total_L: int | None = None) -> torch.Tensor:
    """fbgemm's dense_to_jagged: values [L, D] with L = offsets[-1], item i of row b taken
    from dense[b, i]; items at positions >= N (rows longer than the dense [B, N, D]) are 0.
    `total_L` is L when the caller knows it (as fbgemm's argument: saves a device sync)."""
    if dense.dim() != 3:
        raise ValueError(f"dense must be [B, N, D], got shape {tuple(dense.shape)}")
    if offsets.dim() != 1 or offsets.numel() != dense.shape[0] + 1:
        raise ValueError(f"offsets must be [B+1] for dense {tuple(dense.shape)}, got {tuple(offsets.shape)}")
    if offsets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"offsets must be int32 or int64, got {offsets.dtype}")
    if not dense.is_floating_point():
        raise TypeError(f"dense must be floating point, got {dense.dtype}")
    batch, max_len, width = dense.shape
    total = int(offsets[-1]) if total_L is None else total_L
    rows, position, _ = _positions(offsets, total)
    out = torch.zeros(total, width, dtype=dense.dtype, device=dense.device)
    kept = position < max_len
    out[kept] = dense[rows[kept], position[kept]]
    return out


# --- attention over jagged rows (jagged_flash_attention, hstu_attention) --------------------


def _pad_rows(
    tensors: tuple[torch.Tensor, ...], offsets: torch.Tensor, max_len: int, acc: torch.dtype
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each [L, *rest] tensor padded to [B, max_len, *rest] in `acc` with zeros, rows truncated
    to max_len; also (row of each item, its position, whether it is kept, row lengths)."""
    total = tensors[0].shape[0]
    rows, lengths = _row_ids(offsets, total)
    position = torch.arange(total, device=offsets.device) - offsets.long()[:-1][rows]
    kept = position < max_len
    padded = []
    for t in tensors:
        dense = torch.zeros((lengths.numel(), max_len, *t.shape[1:]), dtype=acc, device=t.device)
        dense[rows[kept], position[kept]] = t[kept].to(acc)
        padded.append(dense)
    return tuple(padded), rows, position, kept, lengths


def _unpad_rows(dense: torch.Tensor, rows: torch.Tensor, position: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """[B, N, *rest] back to the jagged [L, *rest]; items past N (truncated) are 0."""
    out = torch.zeros((rows.numel(), *dense.shape[2:]), dtype=dense.dtype, device=dense.device)
    out[kept] = dense[rows[kept], position[kept]]
    return out


def _check_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, dims: int) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != dims:
            raise ValueError(f"{name} must have {dims} dims, got shape {tuple(t.shape)}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must have one shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    _check_jagged(q.flatten(1), offsets)


def jagged_flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, *, max_len: int
) -> torch.Tensor:
    """fbgemm SLL `jagged_flash_attention_basic` semantics: per row b truncated to its first
    n = min(len_b, max_len) items, out = softmax(Q Kᵀ, over keys) / max_len @ V, no 1/√d.

    q, k, v are [L, D]; the output is [L, D] in their dtype. Items past max_len in their row
    are 0 (fbgemm's output there is its zero-initialised buffer); an empty row has nothing.
    """
    _check_attention(q, k, v, offsets, 2)
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    acc = _accumulator(q.dtype)
    (qd, kd, vd), rows, position, kept, lengths = _pad_rows((q, k, v), offsets, max_len, acc)
    scores = qd @ kd.transpose(1, 2)  # [B, N, N]
    key_ok = torch.arange(max_len, device=q.device)[None, :] < lengths[:, None]  # [B, N]
    scores = scores.masked_fill(~key_ok[:, None, :], float("-inf"))
    # Padding query rows of an empty row are all -inf (nan after softmax): never gathered back.
    attn = torch.softmax(scores, dim=-1) / max_len
    out = torch.nan_to_num(attn, nan=0.0) @ vd
    return _unpad_rows(out, rows, position, kept).to(q.dtype)


def hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    *,
    max_len: int,
    num_targets: torch.Tensor | None = None,
    alpha: float | None = None,
) -> torch.Tensor:
    """HSTU's attention forward (generative-recommenders `pytorch_hstu_mha`, causal, no
    dropout): per row and head, A = silu(alpha · Q Kᵀ) / max_len, A *= mask, O = A V.

    q, k, v are [L, H, D]; output [L, H, D] in their dtype; alpha defaults to 1/sqrt(D). The
    mask lets query i see key j when i == j or c(i) > c(j), with c(x) = min(x, len_b - t_b)
    and t_b = num_targets[b] (0 without targets): causal over the history, and the last t_b
    items (targets) see the whole history and themselves but not each other. Rows longer than
    max_len are truncated to it (items past it are 0 and are not keys).
    """
    _check_attention(q, k, v, offsets, 3)
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    acc = _accumulator(q.dtype)
    width = q.shape[2]
    scale = float(alpha) if alpha is not None else 1.0 / width**0.5
    (qd, kd, vd), rows, position, kept, lengths = _pad_rows((q, k, v), offsets, max_len, acc)
    # [B, N, H, D] -> [B, H, N, D]
    qd, kd, vd = (t.transpose(1, 2) for t in (qd, kd, vd))
    attn = torch.nn.functional.silu(scale * (qd @ kd.transpose(-1, -2))) / max_len  # [B, H, N, N]
    ids = torch.arange(max_len, device=q.device)[None, :]  # [1, N]
    max_ids = lengths[:, None]
    if num_targets is not None:
        max_ids = max_ids - num_targets.to(device=q.device, dtype=torch.int64)[:, None]
    clamped = torch.minimum(ids, max_ids)  # [B, N]
    valid = (clamped[:, :, None] > clamped[:, None, :]) | torch.eye(max_len, dtype=torch.bool, device=q.device)
    valid &= (ids < lengths[:, None])[:, None, :]  # keys past the row (its padding) are not keys
    attn = attn * valid[:, None].to(acc)
    out = (attn @ vd).transpose(1, 2)  # [B, N, H, D]
    return _unpad_rows(out, rows, position, kept).to(q.dtype)


# --- bucketize_sparse_features / batched_dense_bucketize (appended; see OPERATORS.md rows 2-3) ---

__all__ += ["batched_dense_bucketize", "bucketize_sparse_features"]


def bucketize_sparse_features(
    offsets: torch.Tensor,
    ids: torch.Tensor,
    num_buckets: int,
    *,
    block_sizes: torch.Tensor | None = None,
    positions: bool = False,
) -> tuple[torch.Tensor, ...]:
    """fbgemm's (block_)bucketize_sparse_features on a jagged id list.

    `offsets` [R+1] (int32/int64) delimit R rows of `ids` [L] (int64, >= 0: fbgemm reads ids
    unsigned). Modulo variant: bucket p = id % S, new id = id // S. Block variant (given
    `block_sizes` [T], one per feature, rows key-major so row r is feature r // (R / T)):
    with blk = block_sizes[t], an id < blk * S goes to bucket id // blk as id % blk, any other
    to bucket id % S as id // S (a block size of 0 sends every id the modulo way).

    Returns (new_lengths [S*R], new_offsets [S*R+1], new_ids [L]) and positions [L] when
    asked: bucket-major (`new_lengths[p*R + r]` counts row r's ids in bucket p), ids keep
    their order within each (bucket, row); positions are each id's index within its original
    row. new_lengths / new_offsets have the offsets' dtype, new_ids and positions int64.
    """
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype not in (torch.int32, torch.int64):
        raise ValueError("offsets must be an int32/int64 tensor [R+1]")
    if ids.dim() != 1 or ids.dtype != torch.int64:
        raise ValueError(f"ids must be an int64 tensor [L], got {ids.dtype} {tuple(ids.shape)}")
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    total = ids.numel()
    num_rows = offsets.numel() - 1
    rows, _ = _row_ids(offsets, total)
    if block_sizes is None:
        bucket, new = ids % num_buckets, ids // num_buckets
    else:
        features = block_sizes.numel()
        if features < 1 or num_rows % features:
            raise ValueError(f"{num_rows} rows are not {features} features x a batch")
        blk = block_sizes.to(device=ids.device, dtype=torch.int64)[rows // (num_rows // features)]
        inblock = ids < blk * num_buckets
        safe = blk.clamp(min=1)
        bucket = torch.where(inblock, ids // safe, ids % num_buckets)
        new = torch.where(inblock, ids % safe, ids // num_buckets)
    segment = bucket * num_rows + rows
    new_lengths = torch.bincount(segment, minlength=num_buckets * num_rows).to(offsets.dtype)
    new_offsets = torch.zeros(num_buckets * num_rows + 1, dtype=offsets.dtype, device=offsets.device)
    torch.cumsum(new_lengths, 0, out=new_offsets[1:])
    order = torch.sort(segment, stable=True).indices
    out = (new_lengths, new_offsets, new[order])
    if positions:
        position = torch.arange(total, device=ids.device) - offsets.long()[:-1][rows]
        out += (position[order],)
    return out


def batched_dense_bucketize(
    x: torch.Tensor, border_values: torch.Tensor, border_offsets: torch.Tensor
) -> torch.Tensor:
    """out[b, f] = torch.bucketize(x[b, f], borders_f, right=False) (int64 [B, F]): the
    number of borders of feature f below x, i.e. i with borders[i-1] < x <= borders[i].

    Feature f's borders, sorted ascending, are border_values[border_offsets[f]:border_offsets[f+1]]
    (a jagged list, F+1 offsets). Compared in float32 (float64 for float64); a NaN x
    lands past every border, as in torch.bucketize.
    """
    if x.dim() != 2 or border_values.dim() != 1 or border_offsets.dim() != 1:
        raise ValueError("want x [B, F], border_values [N], border_offsets [F+1]")
    if border_offsets.numel() != x.shape[1] + 1:
        raise ValueError(f"{border_offsets.numel()} border offsets for {x.shape[1]} features")
    acc = _accumulator(x.dtype)
    features = x.shape[1]
    offsets = border_offsets.long()
    counts = offsets[1:] - offsets[:-1]
    widest = int(counts.max()) if features else 0
    # Pad every feature's borders to the widest with +inf and take the lower bound of each x
    # per feature (torch.searchsorted over rows); clamping to the feature's count maps the
    # padding (x = +inf, NaN) back to len(borders_f), as torch.bucketize does.
    position = torch.arange(widest, device=x.device)
    kept = position[None, :] < counts[:, None]
    index = (offsets[:-1, None] + position[None, :]).clamp(max=max(border_values.numel() - 1, 0))
    padded = torch.full((features, widest), float("inf"), dtype=acc, device=x.device)
    if border_values.numel():
        padded = torch.where(kept, border_values.to(acc)[index], padded)
    found = torch.searchsorted(padded, x.to(acc).t().contiguous(), right=False)  # [F, B]
    return torch.minimum(found, counts[:, None]).t().contiguous()


# --- dcn_lowrank_cross (TorchRec LowRankCrossNet) --------------------------------------------


def dcn_lowrank_cross(x0: torch.Tensor, V: torch.Tensor, W: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """DCN-v2's low-rank cross network: x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l for each of
    the L layers, x0 [B, N], V [L, r, N], W [L, N, r], bias [L, N] (TorchRec's V_kernels,
    W_kernels, bias); returns x_L [B, N].

    Computed in float32 with two roundings to the input dtype per layer, where a model run
    in that dtype (and the kernel's MMA) has them: the low-rank projection V_l x_l, and
    x_{l+1} itself. In float32 both are exact, so it is the plain float32 network.
    """
    if x0.dim() != 2 or V.dim() != 3 or W.dim() != 3 or bias.dim() != 2:
        raise ValueError(
            f"want x0 [B, N], V [L, r, N], W [L, N, r], bias [L, N]; got {tuple(x0.shape)}, "
            f"{tuple(V.shape)}, {tuple(W.shape)}, {tuple(bias.shape)}"
        )
    layers, rank, width = V.shape
    if W.shape != (layers, width, rank) or bias.shape != (layers, width) or x0.shape[1] != width:
        raise ValueError(
            f"shapes disagree: x0 {tuple(x0.shape)}, V {tuple(V.shape)}, W {tuple(W.shape)}, bias {tuple(bias.shape)}"
        )
    if not x0.is_floating_point() or any(t.dtype != x0.dtype for t in (V, W, bias)):
        raise TypeError(f"want one float dtype, got {x0.dtype}, {V.dtype}, {W.dtype}, {bias.dtype}")
    dtype = x0.dtype
    acc = _accumulator(dtype)
    first = x0.to(acc)
    xl = first
    for layer in range(layers):  # over the (few) layers, not over rows
        xv = (xl @ V[layer].to(acc).T).to(dtype).to(acc)
        xw = xv @ W[layer].to(acc).T + bias[layer].to(acc)
        xl = (first * xw + xl).to(dtype).to(acc)
    return xl.to(dtype)
