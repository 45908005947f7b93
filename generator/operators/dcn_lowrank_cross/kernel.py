"""dcn_lowrank_cross: DCN-v2's low-rank cross network (TorchRec LowRankCrossNet),
x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l for every layer, fp32 accumulation.

This file is the kernel's source blob: only triton imports, compiled on other hosts.
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
def _cross_layer(
    x0_ptr,
    xl_ptr,
    out_ptr,
    v_ptr,
    w_ptr,
    bias_ptr,
    rows,
    row_mask,
    N,
    R,
    stride_x0,
    stride_xl,
    stride_out,
    stride_vr,
    stride_wn,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    """One layer for the program's rows: xv = x_l V^T over N in BLOCK_K slices, then per
    BLOCK_N slice of the output xw = xv W^T and the epilogue x0 * (xw + b) + x_l."""
    ranks = tl.arange(0, BLOCK_R)
    rank_mask = ranks < R
    xv = tl.zeros([BLOCK_B, BLOCK_R], dtype=tl.float32)
    for first in range(0, N, BLOCK_K):
        ks = first + tl.arange(0, BLOCK_K)
        k_mask = ks < N
        xl = tl.load(xl_ptr + rows[:, None] * stride_xl + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        # V is [R, N]: this is the [BLOCK_K, BLOCK_R] slice of V^T.
        vt = tl.load(v_ptr + ranks[None, :] * stride_vr + ks[:, None], mask=k_mask[:, None] & rank_mask[None, :], other=0.0)
        xv = _dot(xl, vt, xv)
    # The low-rank projection feeds the second product in the input dtype (the MMA's).
    xv = xv.to(out_ptr.dtype.element_ty)
    # Every read of x_l above precedes any write of x_{l+1} below (x_l may be `out` itself).
    tl.debug_barrier()
    for first in range(0, N, BLOCK_N):
        ns = first + tl.arange(0, BLOCK_N)
        n_mask = ns < N
        # W is [N, R]: this is the [BLOCK_R, BLOCK_N] slice of W^T.
        wt = tl.load(w_ptr + ns[None, :] * stride_wn + ranks[:, None], mask=rank_mask[:, None] & n_mask[None, :], other=0.0)
        xw = _dot(xv, wt, tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32))
        mask = row_mask[:, None] & n_mask[None, :]
        bias = tl.load(bias_ptr + ns, mask=n_mask, other=0.0).to(tl.float32)
        x0 = tl.load(x0_ptr + rows[:, None] * stride_x0 + ns[None, :], mask=mask, other=0.0).to(tl.float32)
        xl = tl.load(xl_ptr + rows[:, None] * stride_xl + ns[None, :], mask=mask, other=0.0).to(tl.float32)
        out = x0 * (xw + bias[None, :]) + xl
        tl.store(out_ptr + rows[:, None] * stride_out + ns[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)
    # The next layer reads what every thread of the program wrote.
    tl.debug_barrier()


@triton.jit
def dcn_lowrank_cross_kernel(
    x0_ptr,
    v_ptr,
    w_ptr,
    bias_ptr,
    out_ptr,
    B,
    N,
    R,
    LAYERS,
    stride_x0,
    stride_out,
    stride_vl,
    stride_vr,
    stride_wl,
    stride_wn,
    stride_bl,
    BLOCK_R: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program per BLOCK_B consecutive rows (samples), grid (cdiv(B, BLOCK_B),), all
    layers in one launch.

    The program owns its rows across layers, so x_l lives in `out`: layer 0 reads x0, each
    later layer reads and overwrites `out` in place (x_{l+1} rounded to the output dtype, as
    a model run in that dtype stores it). The rank dimension R <= BLOCK_R (a power of two
    >= 16, padding ranks masked to 0) is held whole: xv [BLOCK_B, BLOCK_R] in fp32.
    """
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    rows = rows.to(tl.int64)
    _cross_layer(
        x0_ptr, x0_ptr, out_ptr, v_ptr, w_ptr, bias_ptr, rows, row_mask, N, R,
        stride_x0, stride_x0, stride_out, stride_vr, stride_wn,
        BLOCK_B, BLOCK_K, BLOCK_N, BLOCK_R,
    )
    for layer in range(1, LAYERS):
        _cross_layer(
            x0_ptr, out_ptr, out_ptr,
            v_ptr + layer * stride_vl, w_ptr + layer * stride_wl, bias_ptr + layer * stride_bl,
            rows, row_mask, N, R,
            stride_x0, stride_out, stride_out, stride_vr, stride_wn,
            BLOCK_B, BLOCK_K, BLOCK_N, BLOCK_R,
        )
