"""hstu_attention_backward: the gradient of hstu_attention. Per jagged row (truncated to
n = min(len, N) items) and head, with S = alpha Q Kᵀ, A = silu(S) / N * mask, O = A V:

    dV = Aᵀ dO,   dP = dO Vᵀ,   dS = dP * mask / N * silu'(S) * alpha,
    dQ = dS K,    dK = dSᵀ Q,   silu'(s) = sig(s) (1 + s (1 - sig(s))).

No softmax, so nothing to recompute but the scores themselves. Two kernels, so that every
output element is summed by one program (no atomics, bit-identical reruns): one per key
block accumulates dK and dV over the query blocks that see it, one per query block
accumulates dQ over the key blocks it sees. fp32 accumulation throughout; the pointwise
intermediates A and dS feed tl.dot in the input dtype (fp16/bf16) as in flash attention's
backward, fp32 stays IEEE fp32.

The mask (the forward kernel's, generative-recommenders'): positions clamp at len - t
(t = num_targets[b]; len, not n, as the padded reference does), and query i sees key j when
i == j or clamp(i) > clamp(j); so j <= i and blocks above the diagonal are skipped. A block
pair whose keys all precede its queries and len - t sees every key: its step skips the mask.
Items past n load as zeros, which give S = 0 and dP = 0, so A = dS = 0 there: they need no
mask of their own.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def _row_bounds(offsets_ptr, num_targets_ptr, row, max_len):
    """The row's item range [start, end) (int64), its kept length n = min(len, N) and the
    position its targets start at, max_id = len - t, both int32 (positions stay int32,
    addresses int64). max_id is clamped to [-1, N], which keeps the mask's order on
    positions < n, so that the mask compares int32."""
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    n = tl.minimum(end - start, max_len).to(tl.int32)
    max_id = end - start - tl.load(num_targets_ptr + row).to(tl.int64)
    max_id = tl.minimum(tl.maximum(max_id, -1), max_len).to(tl.int32)
    return start, end, n, max_id


@triton.jit
def _dkdv_step(
    dk, dv, k, v, keys, k_clamped, q_ptr, grad_out_ptr, start, head, first, n, max_id, cols, col_ok,
    alpha, inv_n, ds_scale, stride_q_l, stride_q_h, stride_do_l, stride_do_h,
    BLOCK_INNER: tl.constexpr, MASKED: tl.constexpr,
):
    """dK and dV of a key block, plus the BLOCK_INNER queries from `first`, in the transposed
    layout (keys x queries): Sᵀ = alpha K Qᵀ, dPᵀ = V dOᵀ, dV += Aᵀ dO, dK += dSᵀ Q."""
    queries = first + tl.arange(0, BLOCK_INNER)
    q_mask = (queries < n)[:, None] & col_ok[None, :]
    q = tl.load(
        q_ptr + (start + queries)[:, None] * stride_q_l + head * stride_q_h + cols[None, :], mask=q_mask, other=0.0
    )
    do = tl.load(
        grad_out_ptr + (start + queries)[:, None] * stride_do_l + head * stride_do_h + cols[None, :],
        mask=q_mask,
        other=0.0,
    )
    if q.dtype == tl.float32:
        # fp32 must stay fp32: TF32 would be off by ~1e-3 relative.
        st = tl.dot(k, tl.trans(q), input_precision="ieee")
        dpt = tl.dot(v, tl.trans(do), input_precision="ieee")
    else:
        st = tl.dot(k, tl.trans(q))
        dpt = tl.dot(v, tl.trans(do))
    st = st * alpha
    sig = 1.0 / (1.0 + tl.exp(-st))
    silu = st * sig
    at = silu * inv_n
    # silu'(s) = sig (1 + s (1 - sig)) = sig + silu (1 - sig)
    dst = dpt * (sig + silu * (1.0 - sig)) * ds_scale
    if MASKED:
        q_clamped = tl.minimum(queries, max_id)
        visible = (q_clamped[None, :] > k_clamped[:, None]) | (queries[None, :] == keys[:, None])
        at = tl.where(visible, at, 0.0)
        dst = tl.where(visible, dst, 0.0)
    if q.dtype == tl.float32:
        dv = tl.dot(at, do, dv, input_precision="ieee")
        dk = tl.dot(dst, q, dk, input_precision="ieee")
    else:
        dv = tl.dot(at.to(do.dtype), do, dv)
        dk = tl.dot(dst.to(q.dtype), q, dk)
    return dk, dv


@triton.jit
def _dq_step(
    dq, q, do, queries, q_clamped, k_ptr, v_ptr, start, head, first, n, max_id, cols, col_ok,
    alpha, ds_scale, stride_k_l, stride_k_h, stride_v_l, stride_v_h,
    BLOCK_INNER: tl.constexpr, MASKED: tl.constexpr,
):
    """dQ of a query block, plus the BLOCK_INNER keys from `first`: S = alpha Q Kᵀ,
    dP = dO Vᵀ, dQ += dS K."""
    keys = first + tl.arange(0, BLOCK_INNER)
    kv_mask = (keys < n)[:, None] & col_ok[None, :]
    k = tl.load(
        k_ptr + (start + keys)[:, None] * stride_k_l + head * stride_k_h + cols[None, :], mask=kv_mask, other=0.0
    )
    v = tl.load(
        v_ptr + (start + keys)[:, None] * stride_v_l + head * stride_v_h + cols[None, :], mask=kv_mask, other=0.0
    )
    if q.dtype == tl.float32:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
        dp = tl.dot(do, tl.trans(v), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
        dp = tl.dot(do, tl.trans(v))
    s = s * alpha
    sig = 1.0 / (1.0 + tl.exp(-s))
    ds = dp * (sig + s * sig * (1.0 - sig)) * ds_scale
    if MASKED:
        k_clamped = tl.minimum(keys, max_id)
        visible = (q_clamped[:, None] > k_clamped[None, :]) | (queries[:, None] == keys[None, :])
        ds = tl.where(visible, ds, 0.0)
    if q.dtype == tl.float32:
        dq = tl.dot(ds, k, dq, input_precision="ieee")
    else:
        dq = tl.dot(ds.to(k.dtype), k, dq)
    return dq


@triton.jit
def hstu_attention_backward_dkdv_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    grad_out_ptr,
    offsets_ptr,
    num_targets_ptr,
    grad_k_ptr,
    grad_v_ptr,
    D,
    max_len,
    alpha,
    stride_q_l,
    stride_q_h,
    stride_k_l,
    stride_k_h,
    stride_v_l,
    stride_v_h,
    stride_do_l,
    stride_do_h,
    stride_dk_l,
    stride_dk_h,
    stride_dv_l,
    stride_dv_h,
    BLOCK_D: tl.constexpr,
    BLOCK_OUTER: tl.constexpr,
    BLOCK_INNER: tl.constexpr,
):
    """One program per (row, head, BLOCK_OUTER key block), grid (B, H, cdiv(min(N, L),
    BLOCK_OUTER)). It holds its keys' K and V and walks the queries from its first key's
    block to n, BLOCK_INNER at a time, in the transposed layout (keys x queries):
    Sᵀ = alpha K Qᵀ, Aᵀ masked, dV += Aᵀ dO, dPᵀ = V dOᵀ, dSᵀ, dK += dSᵀ Q. Program 0 of
    each (row, head) also writes zeros to the gradients of the row's items past N."""
    row = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    block = tl.program_id(2)
    start, end, n, max_id = _row_bounds(offsets_ptr, num_targets_ptr, row, max_len)
    tl.static_assert(BLOCK_INNER <= BLOCK_OUTER, "a held block spans whole steps")
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    keys = block * BLOCK_OUTER + tl.arange(0, BLOCK_OUTER)
    k_ok = keys < n
    kv_mask = k_ok[:, None] & col_ok[None, :]
    k = tl.load(
        k_ptr + (start + keys)[:, None] * stride_k_l + head * stride_k_h + cols[None, :], mask=kv_mask, other=0.0
    )
    v = tl.load(
        v_ptr + (start + keys)[:, None] * stride_v_l + head * stride_v_h + cols[None, :], mask=kv_mask, other=0.0
    )
    k_clamped = tl.minimum(keys, max_id)
    dk = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=tl.float32)
    inv_n = 1.0 / (max_len * 1.0)
    ds_scale = inv_n * alpha
    # Queries before the block's first key see none of its keys; those of the key block's own
    # span meet the diagonal, and a block with keys at or past len - t (targets, seen by their
    # own query alone) needs the mask throughout; past both, every query sees every key.
    first_key = block * BLOCK_OUTER
    lo = (first_key // BLOCK_INNER) * BLOCK_INNER
    mid = tl.where(first_key + BLOCK_OUTER > max_id, n, first_key + BLOCK_OUTER)
    for first in range(lo, tl.minimum(mid, n), BLOCK_INNER):
        dk, dv = _dkdv_step(
            dk, dv, k, v, keys, k_clamped, q_ptr, grad_out_ptr, start, head, first, n, max_id, cols, col_ok,
            alpha, inv_n, ds_scale, stride_q_l, stride_q_h, stride_do_l, stride_do_h, BLOCK_INNER, True,
        )
    for first in range(mid, n, BLOCK_INNER):
        dk, dv = _dkdv_step(
            dk, dv, k, v, keys, k_clamped, q_ptr, grad_out_ptr, start, head, first, n, max_id, cols, col_ok,
            alpha, inv_n, ds_scale, stride_q_l, stride_q_h, stride_do_l, stride_do_h, BLOCK_INNER, False,
        )
    tl.store(
        grad_k_ptr + (start + keys)[:, None] * stride_dk_l + head * stride_dk_h + cols[None, :],
        dk.to(grad_k_ptr.dtype.element_ty),
        mask=kv_mask,
    )
    tl.store(
        grad_v_ptr + (start + keys)[:, None] * stride_dv_l + head * stride_dv_h + cols[None, :],
        dv.to(grad_v_ptr.dtype.element_ty),
        mask=kv_mask,
    )
    if block == 0:
        zeros_k = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=grad_k_ptr.dtype.element_ty)
        zeros_v = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=grad_v_ptr.dtype.element_ty)
        for tail in range(start + n, end, BLOCK_OUTER):
            items = tail + tl.arange(0, BLOCK_OUTER)
            tail_mask = (items < end)[:, None] & col_ok[None, :]
            tl.store(
                grad_k_ptr + items[:, None] * stride_dk_l + head * stride_dk_h + cols[None, :],
                zeros_k,
                mask=tail_mask,
            )
            tl.store(
                grad_v_ptr + items[:, None] * stride_dv_l + head * stride_dv_h + cols[None, :],
                zeros_v,
                mask=tail_mask,
            )


@triton.jit
def hstu_attention_backward_dq_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    grad_out_ptr,
    offsets_ptr,
    num_targets_ptr,
    grad_q_ptr,
    D,
    max_len,
    alpha,
    stride_q_l,
    stride_q_h,
    stride_k_l,
    stride_k_h,
    stride_v_l,
    stride_v_h,
    stride_do_l,
    stride_do_h,
    stride_dq_l,
    stride_dq_h,
    BLOCK_D: tl.constexpr,
    BLOCK_OUTER: tl.constexpr,
    BLOCK_INNER: tl.constexpr,
):
    """One program per (row, head, BLOCK_OUTER query block), grid (B, H, cdiv(min(N, L),
    BLOCK_OUTER)), the last query blocks (the most keys) first. It holds its queries' Q and
    dO and walks the keys 0 .. min(n, end of its block), BLOCK_INNER at a time:
    S = alpha Q Kᵀ, dP = dO Vᵀ, dS masked, dQ += dS K. Program 0 of each (row, head) also
    writes zeros to the gradients of the row's items past N."""
    row = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    block = tl.num_programs(2) - 1 - tl.program_id(2)
    start, end, n, max_id = _row_bounds(offsets_ptr, num_targets_ptr, row, max_len)
    tl.static_assert(BLOCK_INNER <= BLOCK_OUTER, "a held block spans whole steps")
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    queries = block * BLOCK_OUTER + tl.arange(0, BLOCK_OUTER)
    q_ok = queries < n
    q_mask = q_ok[:, None] & col_ok[None, :]
    q = tl.load(
        q_ptr + (start + queries)[:, None] * stride_q_l + head * stride_q_h + cols[None, :], mask=q_mask, other=0.0
    )
    do = tl.load(
        grad_out_ptr + (start + queries)[:, None] * stride_do_l + head * stride_do_h + cols[None, :],
        mask=q_mask,
        other=0.0,
    )
    q_clamped = tl.minimum(queries, max_id)
    dq = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=tl.float32)
    ds_scale = alpha / (max_len * 1.0)
    first_query = block * BLOCK_OUTER
    hi = tl.minimum(n, first_query + BLOCK_OUTER)
    # Keys before both the block's first query and len - t are seen by all its queries.
    mid = tl.minimum(tl.minimum(first_query, tl.maximum(max_id, 0)), hi)
    mid = (mid // BLOCK_INNER) * BLOCK_INNER
    for first in range(0, mid, BLOCK_INNER):
        dq = _dq_step(
            dq, q, do, queries, q_clamped, k_ptr, v_ptr, start, head, first, n, max_id, cols, col_ok,
            alpha, ds_scale, stride_k_l, stride_k_h, stride_v_l, stride_v_h, BLOCK_INNER, False,
        )
    for first in range(mid, hi, BLOCK_INNER):
        dq = _dq_step(
            dq, q, do, queries, q_clamped, k_ptr, v_ptr, start, head, first, n, max_id, cols, col_ok,
            alpha, ds_scale, stride_k_l, stride_k_h, stride_v_l, stride_v_h, BLOCK_INNER, True,
        )
    tl.store(
        grad_q_ptr + (start + queries)[:, None] * stride_dq_l + head * stride_dq_h + cols[None, :],
        dq.to(grad_q_ptr.dtype.element_ty),
        mask=q_mask,
    )
    if block == 0:
        zeros = tl.zeros([BLOCK_OUTER, BLOCK_D], dtype=grad_q_ptr.dtype.element_ty)
        for tail in range(start + n, end, BLOCK_OUTER):
            items = tail + tl.arange(0, BLOCK_OUTER)
            tl.store(
                grad_q_ptr + items[:, None] * stride_dq_l + head * stride_dq_h + cols[None, :],
                zeros,
                mask=(items < end)[:, None] & col_ok[None, :],
            )
