"""hstu_attention (forward): per jagged row and head, O = (silu(alpha Q Kᵀ) / N * mask) V with
HSTU's causal + num_targets mask, rows truncated to N; fp32 accumulation.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def hstu_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    offsets_ptr,
    num_targets_ptr,
    out_ptr,
    D,
    max_len,
    alpha,
    stride_q_l,
    stride_q_h,
    stride_k_l,
    stride_k_h,
    stride_v_l,
    stride_v_h,
    stride_out_l,
    stride_out_h,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program per (row, head, BLOCK_M query block), grid (B, H, cdiv(N, BLOCK_M)).

    The row keeps n = min(len, N) items; with t targets (0: none), positions clamp at len - t. Query i
    sees key j when i == j or clamp(i) > clamp(j), so j <= i: the program walks keys
    0 .. min(n, end of its block) BLOCK_N at a time, S = alpha Q Kᵀ in fp32,
    A = silu(S) / N masked, acc += A V. No softmax, so no running max. Program 0 of each
    (row, head) also writes zeros to the row's items past N.
    """
    row = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    block = tl.program_id(2)
    start = tl.load(offsets_ptr + row).to(tl.int64)
    end = tl.load(offsets_ptr + row + 1).to(tl.int64)
    n = tl.minimum(end - start, max_len)
    # Positions clamp at len - num_targets (len, not n: as the padded reference does).
    max_id = end - start - tl.load(num_targets_ptr + row).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    queries = block * BLOCK_M + tl.arange(0, BLOCK_M)
    q_ok = queries < n
    q_mask = q_ok[:, None] & col_ok[None, :]
    q = tl.load(
        q_ptr + (start + queries)[:, None] * stride_q_l + head * stride_q_h + cols[None, :],
        mask=q_mask,
        other=0.0,
    )
    q_clamped = tl.minimum(queries.to(tl.int64), max_id)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    inv_n = 1.0 / (max_len * 1.0)
    hi = tl.minimum(n, (block + 1) * BLOCK_M)
    for first in range(0, hi, BLOCK_N):
        keys = first + tl.arange(0, BLOCK_N)
        k_ok = keys < n
        kv_mask = k_ok[:, None] & col_ok[None, :]
        k = tl.load(
            k_ptr + (start + keys)[:, None] * stride_k_l + head * stride_k_h + cols[None, :],
            mask=kv_mask,
            other=0.0,
        )
        v = tl.load(
            v_ptr + (start + keys)[:, None] * stride_v_l + head * stride_v_h + cols[None, :],
            mask=kv_mask,
            other=0.0,
        )
        if q.dtype == tl.float32:
            # fp32 must stay fp32: TF32 would be off by ~1e-3 relative.
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * alpha
        a = s / (1.0 + tl.exp(-s)) * inv_n
        k_clamped = tl.minimum(keys.to(tl.int64), max_id)
        visible = (q_clamped[:, None] > k_clamped[None, :]) | (queries[:, None] == keys[None, :])
        a = tl.where(visible & k_ok[None, :], a, 0.0)
        if v.dtype == tl.float32:
            acc = tl.dot(a, v, acc, input_precision="ieee")
        else:
            acc = tl.dot(a.to(v.dtype), v, acc)
    tl.store(
        out_ptr + (start + queries)[:, None] * stride_out_l + head * stride_out_h + cols[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=q_mask,
    )
    if block == 0:
        zeros = tl.zeros([BLOCK_M, BLOCK_D], dtype=out_ptr.dtype.element_ty)
        for tail in range(start + n, end, BLOCK_M):
            items = tail + tl.arange(0, BLOCK_M)
            tl.store(
                out_ptr + items[:, None] * stride_out_l + head * stride_out_h + cols[None, :],
                zeros,
                mask=(items < end)[:, None] & col_ok[None, :],
            )
