"""jagged_flash_attention_backward: the gradient of jagged_flash_attention (per jagged row
truncated to n = min(len, N) items, O = softmax(Q Kᵀ) V / N, no 1/sqrt(d)), flash-attention-2
style with recomputation and no atomics.

With P = softmax(S), S = Q Kᵀ, and dP = dO Vᵀ / N (the 1/N of the forward folded into dO):
    dV = Pᵀ dO / N,   dS = P * (dP - Delta),   dQ = dS K,   dK = dSᵀ Q,
where Delta_i = sum_j P_ij dP_ij = <dO_i, O_i> (a row's gradient of its softmax normaliser).

Two launches:
  1. dQ: one program per (row, query block). It walks the row's keys twice: first the forward's
     online softmax (running max m, sum l, acc = P V unnormalised) gives lse = m + log(l) and
     Delta = <dO, acc / (l N)> in fp32; then, with P = exp(S - lse) exact, dS and dQ += dS K.
     It writes dQ and the per-query lse and Delta to fp32 scratch [L].
  2. dK, dV: one program per (row, key block), walking the row's queries with the lse and
     Delta of launch 1: Pᵀ = exp(K Qᵀ - lse), dV += Pᵀ dO, dPᵀ = V dOᵀ / N, dK += dSᵀ Q.
Every product is a tl.dot with fp32 accumulation; half-precision inputs feed P and dS to the
second dots in the input dtype (as flash attention does), fp32 inputs run IEEE dots. Items
past N in their row get zero gradients (program 0 of each row writes them).

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b):
    """a @ b accumulated in fp32; fp32 operands stay fp32 (TF32 is off by ~1e-3 relative)."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, input_precision="ieee")
    else:
        out = tl.dot(a, b)
    return out


@triton.jit
def _zero_tail(ptr, stride, first, end, cols, col_ok, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """Zeros for the items [first, end) of a row (those past N), BLOCK at a time."""
    zeros = tl.zeros([BLOCK, BLOCK_D], dtype=ptr.dtype.element_ty)
    for tail in range(first, end, BLOCK):
        items = tail + tl.arange(0, BLOCK)
        mask = (items < end)[:, None] & col_ok[None, :]
        tl.store(ptr + items[:, None] * stride + cols[None, :], zeros, mask=mask)


@triton.jit
def jagged_flash_attention_backward_dq_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    offsets_ptr,
    grad_out_ptr,
    grad_q_ptr,
    lse_ptr,
    delta_ptr,
    D,
    max_len,
    stride_q,
    stride_k,
    stride_v,
    stride_grad_out,
    stride_grad_q,
    BLOCK_D: tl.constexpr,
    BLOCK_OWN: tl.constexpr,
    BLOCK_STEP: tl.constexpr,
):
    """One program per (row, BLOCK_OWN query block), grid (B, cdiv(min(N, L), BLOCK_OWN)),
    walking the row's n keys BLOCK_STEP at a time, twice (statistics, then dQ). Query blocks
    past n store nothing; program 0 of each row also zeroes grad_q (and the scratch) for the
    row's items past N."""
    row = tl.program_id(0)
    block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    n = tl.minimum(end - start, max_len)
    inv_len = 1.0 / (max_len * 1.0)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    queries = block * BLOCK_OWN + tl.arange(0, BLOCK_OWN)
    q_ok = queries < n
    q_mask = q_ok[:, None] & col_ok[None, :]
    items = start + queries  # int64
    q = tl.load(q_ptr + items[:, None] * stride_q + cols[None, :], mask=q_mask, other=0.0)
    do = tl.load(grad_out_ptr + items[:, None] * stride_grad_out + cols[None, :], mask=q_mask, other=0.0)
    hi = tl.where(block * BLOCK_OWN < n, n, 0)

    # Pass 1: the forward's online softmax, for lse and O (unnormalised in acc).
    m_i = tl.full([BLOCK_OWN], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_OWN], dtype=tl.float32)
    acc = tl.zeros([BLOCK_OWN, BLOCK_D], dtype=tl.float32)
    for first in range(0, hi, BLOCK_STEP):
        keys = first + tl.arange(0, BLOCK_STEP)
        k_ok = keys < n
        kv_mask = k_ok[:, None] & col_ok[None, :]
        k = tl.load(k_ptr + (start + keys)[:, None] * stride_k + cols[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + (start + keys)[:, None] * stride_v + cols[None, :], mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k))
        s = tl.where(k_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        scale = tl.exp(m_i - m_new)
        l_i = l_i * scale + tl.sum(p, axis=1)
        acc = acc * scale[:, None] + _dot(p.to(v.dtype), v)
        m_i = m_new
    # Query rows past n (never stored) have l = 0 or garbage; keep them finite.
    l_safe = tl.maximum(l_i, 1e-30)
    lse = tl.where(q_ok, m_i + tl.log(l_safe), 0.0)
    o = acc / (l_safe * max_len)[:, None]
    delta = tl.sum(do.to(tl.float32) * o, axis=1)
    delta = tl.where(q_ok, delta, 0.0)

    # Pass 2: dQ = sum over key blocks of dS K, dS = P * (dO Vᵀ / N - Delta).
    dq = tl.zeros([BLOCK_OWN, BLOCK_D], dtype=tl.float32)
    for first in range(0, hi, BLOCK_STEP):
        keys = first + tl.arange(0, BLOCK_STEP)
        k_ok = keys < n
        kv_mask = k_ok[:, None] & col_ok[None, :]
        k = tl.load(k_ptr + (start + keys)[:, None] * stride_k + cols[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + (start + keys)[:, None] * stride_v + cols[None, :], mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k))
        s = tl.where(k_ok[None, :], s, float("-inf"))
        p = tl.exp(s - lse[:, None])
        dp = _dot(do, tl.trans(v))
        ds = p * (dp * inv_len - delta[:, None])
        dq += _dot(ds.to(k.dtype), k)

    dq_ptrs = grad_q_ptr + items[:, None] * stride_grad_q + cols[None, :]
    tl.store(dq_ptrs, dq.to(grad_q_ptr.dtype.element_ty), mask=q_mask)
    tl.store(lse_ptr + items, lse, mask=q_ok)
    tl.store(delta_ptr + items, delta, mask=q_ok)
    if block == 0:
        _zero_tail(grad_q_ptr, stride_grad_q, start + n, end, cols, col_ok, BLOCK_OWN, BLOCK_D)
        for tail in range(start + n, end, BLOCK_OWN):
            rest = tail + tl.arange(0, BLOCK_OWN)
            zero = tl.zeros([BLOCK_OWN], dtype=tl.float32)
            tl.store(lse_ptr + rest, zero, mask=rest < end)
            tl.store(delta_ptr + rest, zero, mask=rest < end)


@triton.jit
def jagged_flash_attention_backward_dkdv_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    offsets_ptr,
    grad_out_ptr,
    lse_ptr,
    delta_ptr,
    grad_k_ptr,
    grad_v_ptr,
    D,
    max_len,
    stride_q,
    stride_k,
    stride_v,
    stride_grad_out,
    stride_grad_k,
    stride_grad_v,
    BLOCK_D: tl.constexpr,
    BLOCK_OWN: tl.constexpr,
    BLOCK_STEP: tl.constexpr,
):
    """One program per (row, BLOCK_OWN key block), grid (B, cdiv(min(N, L), BLOCK_OWN)),
    walking the row's n queries BLOCK_STEP at a time with launch 1's lse and Delta. Key
    blocks past n store nothing; program 0 of each row also zeroes grad_k and grad_v for the
    row's items past N.

    No masks on the scores: a query past n has Q = dO = 0 and lse = Delta = 0, so its
    column of Pᵀ is 1 and of dSᵀ is 0, which adds nothing to dV (dO = 0) or dK (dS = 0); a
    key past n only touches its own (unstored) row of dK and dV."""
    row = tl.program_id(0)
    block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    n = tl.minimum(end - start, max_len)
    inv_len = 1.0 / (max_len * 1.0)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    keys = block * BLOCK_OWN + tl.arange(0, BLOCK_OWN)
    k_ok = keys < n
    kv_mask = k_ok[:, None] & col_ok[None, :]
    key_items = start + keys  # int64
    k = tl.load(k_ptr + key_items[:, None] * stride_k + cols[None, :], mask=kv_mask, other=0.0)
    v = tl.load(v_ptr + key_items[:, None] * stride_v + cols[None, :], mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_OWN, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_OWN, BLOCK_D], dtype=tl.float32)
    hi = tl.where(block * BLOCK_OWN < n, n, 0)
    for first in range(0, hi, BLOCK_STEP):
        queries = first + tl.arange(0, BLOCK_STEP)
        q_ok = queries < n
        q_mask = q_ok[:, None] & col_ok[None, :]
        items = start + queries
        q = tl.load(q_ptr + items[:, None] * stride_q + cols[None, :], mask=q_mask, other=0.0)
        do = tl.load(grad_out_ptr + items[:, None] * stride_grad_out + cols[None, :], mask=q_mask, other=0.0)
        lse = tl.load(lse_ptr + items, mask=q_ok, other=0.0)
        delta = tl.load(delta_ptr + items, mask=q_ok, other=0.0)
        p_t = tl.exp(_dot(k, tl.trans(q)) - lse[None, :])  # [keys, queries]
        dv += _dot(p_t.to(do.dtype), do)
        dp_t = _dot(v, tl.trans(do))
        ds_t = p_t * (dp_t * inv_len - delta[None, :])
        dk += _dot(ds_t.to(q.dtype), q)
    dv = dv * inv_len
    dk_ptrs = grad_k_ptr + key_items[:, None] * stride_grad_k + cols[None, :]
    dv_ptrs = grad_v_ptr + key_items[:, None] * stride_grad_v + cols[None, :]
    tl.store(dk_ptrs, dk.to(grad_k_ptr.dtype.element_ty), mask=kv_mask)
    tl.store(dv_ptrs, dv.to(grad_v_ptr.dtype.element_ty), mask=kv_mask)
    if block == 0:
        _zero_tail(grad_k_ptr, stride_grad_k, start + n, end, cols, col_ok, BLOCK_OWN, BLOCK_D)
        _zero_tail(grad_v_ptr, stride_grad_v, start + n, end, cols, col_ok, BLOCK_OWN, BLOCK_D)
