"""jagged_flash_attention: per jagged row truncated to N items, softmax(Q Kᵀ) / N @ V (fbgemm
SLL semantics, no 1/sqrt(d)), with an online softmax over key blocks; fp32 accumulation.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def jagged_flash_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    offsets_ptr,
    out_ptr,
    D,
    max_len,
    stride_q,
    stride_k,
    stride_v,
    stride_out,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program per (row, BLOCK_M query block), grid (B, cdiv(N, BLOCK_M)).

    The row keeps n = min(len, N) items. The program loads its BLOCK_M queries (the whole
    head dim, BLOCK_D >= D), walks the n keys BLOCK_N at a time: S = Q Kᵀ in fp32, running
    max m, running sum l, acc = acc * exp(m_old - m_new) + exp(S - m_new) V; stores acc / (l N).
    Program 0 of each row also writes zeros to the row's items past N. Query blocks past n
    store nothing.
    """
    row = tl.program_id(0)
    block = tl.program_id(1)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    n = tl.minimum(end - start, max_len)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    queries = block * BLOCK_M + tl.arange(0, BLOCK_M)
    # A limit rather than `mask & scalar`: positions past n (or every one, for an idle block).
    q_ok = queries < n
    q_mask = q_ok[:, None] & col_ok[None, :]
    q = tl.load(q_ptr + (start + queries)[:, None] * stride_q + cols[None, :], mask=q_mask, other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    hi = tl.where(block * BLOCK_M < n, n, 0)
    for first in range(0, hi, BLOCK_N):
        keys = first + tl.arange(0, BLOCK_N)
        k_ok = keys < n
        kv_mask = k_ok[:, None] & col_ok[None, :]
        k = tl.load(k_ptr + (start + keys)[:, None] * stride_k + cols[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + (start + keys)[:, None] * stride_v + cols[None, :], mask=kv_mask, other=0.0)
        if q.dtype == tl.float32:
            # fp32 must stay fp32: TF32 would be off by ~1e-3 relative.
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(k_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        scale = tl.exp(m_i - m_new)
        l_i = l_i * scale + tl.sum(p, axis=1)
        if v.dtype == tl.float32:
            acc = tl.dot(p, v, acc * scale[:, None], input_precision="ieee")
        else:
            acc = tl.dot(p.to(v.dtype), v, acc * scale[:, None])
        m_i = m_new
    # Rows of queries past n have l = 0 and are not stored; max() keeps them finite.
    out = acc / (tl.maximum(l_i, 1e-30) * (max_len * 1.0))[:, None]
    tl.store(
        out_ptr + (start + queries)[:, None] * stride_out + cols[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=q_mask,
    )
    if block == 0:
        zeros = tl.zeros([BLOCK_M, BLOCK_D], dtype=out_ptr.dtype.element_ty)
        for tail in range(start + n, end, BLOCK_M):
            items = tail + tl.arange(0, BLOCK_M)
            tl.store(
                out_ptr + items[:, None] * stride_out + cols[None, :],
                zeros,
                mask=(items < end)[:, None] & col_ok[None, :],
            )
