"""dcn_lowrank_cross: DCN-v2's low-rank cross network (TorchRec LowRankCrossNet),
x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l for every layer, fp32 accumulation.

Two tiled matrix products per layer, launched in order on one stream:
1. project: xv = x_l V_lᵀ  [B, r], rounded to the input dtype (as the model's own matmul is);
2. expand:  x_{l+1} = x0 * (xv W_lᵀ + b_l) + x_l  [B, N], the epilogue fused into the product.
Both tile their output [BLOCK_B, BLOCK_N] over a 2-D grid and step the reduction BLOCK_K at a
time, so even a small batch fills the machine (one program per row block across all layers
left all but B / BLOCK_B SMs idle). This file is the kernel's source blob: only triton
imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, acc):
    if a.dtype == tl.float32:
        # fp32 products must be exact-ish: TF32 would be off by ~1e-3 relative.
        return tl.dot(a, b, acc, input_precision="ieee")
    return tl.dot(a, b, acc)


@triton.jit
def dcn_project_kernel(
    xl_ptr,
    v_ptr,
    xv_ptr,
    B,
    N,
    R,
    stride_xl,
    stride_vr,
    stride_xv,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """xv[b, j] = sum_k x_l[b, k] V[j, k]; grid (cdiv(B, BLOCK_B), cdiv(R, BLOCK_N)), the
    output tile's columns are ranks."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    ranks = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < B
    rank_mask = ranks < R
    rows = rows.to(tl.int64)
    acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    for first in range(0, N, BLOCK_K):
        ks = first + tl.arange(0, BLOCK_K)
        k_mask = ks < N
        xl = tl.load(xl_ptr + rows[:, None] * stride_xl + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        # V is [R, N]: this is the [BLOCK_K, BLOCK_N] slice of Vᵀ.
        vt = tl.load(v_ptr + ranks[None, :] * stride_vr + ks[:, None], mask=k_mask[:, None] & rank_mask[None, :], other=0.0)
        acc = _dot(xl, vt, acc)
    where = xv_ptr + rows[:, None] * stride_xv + ranks[None, :]
    tl.store(where, acc.to(xv_ptr.dtype.element_ty), mask=row_mask[:, None] & rank_mask[None, :])


@triton.jit
def dcn_expand_kernel(
    x0_ptr,
    xl_ptr,
    xv_ptr,
    w_ptr,
    bias_ptr,
    out_ptr,
    B,
    N,
    R,
    stride_x0,
    stride_xl,
    stride_xv,
    stride_wn,
    stride_out,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """out = x0 * (xv Wᵀ + b) + x_l; grid (cdiv(B, BLOCK_B), cdiv(N, BLOCK_N)).

    `out` may be x_l itself (layers after the first update in place): each program reads the
    x_l tile it then overwrites, and no other program reads it."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < B
    col_mask = cols < N
    rows = rows.to(tl.int64)
    acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    for first in range(0, R, BLOCK_K):
        ks = first + tl.arange(0, BLOCK_K)
        k_mask = ks < R
        xv = tl.load(xv_ptr + rows[:, None] * stride_xv + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        # W is [N, R]: this is the [BLOCK_K, BLOCK_N] slice of Wᵀ.
        wt = tl.load(w_ptr + cols[None, :] * stride_wn + ks[:, None], mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        acc = _dot(xv, wt, acc)
    mask = row_mask[:, None] & col_mask[None, :]
    bias = tl.load(bias_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    x0 = tl.load(x0_ptr + rows[:, None] * stride_x0 + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    xl = tl.load(xl_ptr + rows[:, None] * stride_xl + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    out = x0 * (acc + bias[None, :]) + xl
    tl.store(out_ptr + rows[:, None] * stride_out + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)
