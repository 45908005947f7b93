"""dcn_lowrank_cross_backward: the gradient of DCN-v2's low-rank cross network
x_{l+1} = x0 * y_l + x_l, y_l = xv_l W_lᵀ + b_l, xv_l = x_l V_lᵀ, as tiled tl.dot products.

Nothing is saved by the forward, so the plan first recomputes it (per layer: `project`
xv_l = x_l V_lᵀ, then `expand` y_l and x_{l+1}), keeping x_1..x_{L-1}, y_0..y_{L-2} and every
xv_l in scratch, and then walks the layers backwards with g = dL/dx_{l+1}:

    dy = g * x0                  grad_bias_l = sum_b dy      grad_x0 += g * y_l
    grad_W_l = dyᵀ xv_l  [N, r]  dxv = dy W_l  [B, r]        grad_V_l = dxvᵀ x_l  [r, N]
    g <- g + dxv V_l             (after layer 0: grad_x0 = its sum + g)

One kernel per product, each a [BLOCK_M, BLOCK_N] output tile per program over a grouped 1-D
grid, stepping the reduction BLOCK_K at a time, with its elementwise work fused into the
epilogue. The weight gradients reduce over the batch inside one program's loop (their
reduction dimension is B), so nothing is atomic and reruns are bit-identical; grad_bias sums
the per-row-block column sums that the producers of dy leave in `partial`, in order.

Precision. With fp32 inputs every product is an IEEE fp32 tl.dot. With fp16/bf16 inputs the
products run on tensor cores, but every recomputed intermediate (x_l for l > 0, xv, dy, dxv)
is kept as two planes of the input dtype, hi = rn(v) and lo = rn(v - hi), and a product with
such an operand sums hi·B + lo·B (and hi·hi + hi·lo + lo·hi when both are intermediates):
the operands then carry ~16 significant bits instead of 8 (bf16), so the gradients agree
with float32 autograd to about their final rounding (see the template's tolerance). The
exact inputs (x0, V, W) and fp32 scratch (g, y, grad_x0's sum) need no split.

Each entry point is compiled once and serves every layer with one set of constexprs: where
a product's operand is x0 rather than a split intermediate, its inner loop differs and it has
an entry point of its own (`*_first`); where only the epilogue differs by layer, a runtime
argument chooses it. This file is the kernel's source blob: only triton imports, compiled on
other hosts.
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
def _tile(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """(row block, column block, row offsets, column offsets) of this program's output tile:
    programs walk groups of 8 row blocks column by column, so that concurrent programs share
    operand tiles in L2."""
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    width = 8 * grid_n
    first_m = (pid // width) * 8
    size_m = tl.minimum(grid_m - first_m, 8)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    return pid_m, pid_n, pid_m * BLOCK_M + tl.arange(0, BLOCK_M), pid_n * BLOCK_N + tl.arange(0, BLOCK_N)


@triton.jit
def _matmul(
    a_hi,
    a_lo,
    lda,
    b_hi,
    b_lo,
    ldb,
    rows,
    cols,
    M,
    N,
    K,
    A_T: tl.constexpr,
    B_T: tl.constexpr,
    SPLIT_A: tl.constexpr,
    SPLIT_B: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """sum_k A[m, k] B[k, n] over the tile (rows, cols), fp32. A[m, k] is at a + m*lda + k,
    or at a + k*lda + m when A_T; B[k, n] at b + k*ldb + n, or at b + n*ldb + k when B_T.
    SPLIT_X: X is an intermediate held as hi and lo planes (X = hi + lo) when it is of a half
    dtype (fp32 intermediates are one plane); the lo·lo product (~2^-18 relative) is left out."""
    row_mask = rows < M
    col_mask = cols < N
    rows64 = rows.to(tl.int64)
    cols64 = cols.to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    ks64 = ks.to(tl.int64)
    lda64 = lda.to(tl.int64)
    ldb64 = ldb.to(tl.int64)
    if A_T:
        a_offsets = ks64[None, :] * lda64 + rows64[:, None]
        a_step = BLOCK_K * lda64
    else:
        a_offsets = rows64[:, None] * lda64 + ks64[None, :]
        a_step = BLOCK_K
    if B_T:
        b_offsets = cols64[None, :] * ldb64 + ks64[:, None]
        b_step = BLOCK_K
    else:
        b_offsets = ks64[:, None] * ldb64 + cols64[None, :]
        b_step = BLOCK_K * ldb64
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for first in range(0, K, BLOCK_K):
        k_mask = (first + ks) < K
        a_mask = row_mask[:, None] & k_mask[None, :]
        b_mask = k_mask[:, None] & col_mask[None, :]
        a = tl.load(a_hi + a_offsets, mask=a_mask, other=0.0)
        b = tl.load(b_hi + b_offsets, mask=b_mask, other=0.0)
        if SPLIT_B:
            if b.dtype != tl.float32:
                acc = _dot(a, tl.load(b_lo + b_offsets, mask=b_mask, other=0.0), acc)
        if SPLIT_A:
            if a.dtype != tl.float32:
                acc = _dot(tl.load(a_lo + a_offsets, mask=a_mask, other=0.0), b, acc)
        acc = _dot(a, b, acc)
        a_offsets += a_step
        b_offsets += b_step
    return acc


@triton.jit
def _store_split(hi_ptr, lo_ptr, offsets, mask, value):
    """An intermediate as hi = rn(value) and, for a half dtype, lo = rn(value - hi)."""
    hi = value.to(hi_ptr.dtype.element_ty)
    tl.store(hi_ptr + offsets, hi, mask=mask)
    if hi_ptr.dtype.element_ty != tl.float32:
        tl.store(lo_ptr + offsets, (value - hi.to(tl.float32)).to(lo_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _load_split(hi_ptr, lo_ptr, offsets, mask):
    value = tl.load(hi_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if hi_ptr.dtype.element_ty != tl.float32:
        value += tl.load(lo_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    return value


# --- forward recomputation -------------------------------------------------------------------
# Scratch of shape [B, N] or [B, R] is contiguous: its rows are N or R apart.


@triton.jit
def _project(x_hi, x_lo, v_ptr, xv_hi, xv_lo, B, N, R, stride_x, stride_v,
             SPLIT_X: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m, pid_n, rows, cols = _tile(B, R, BLOCK_M, BLOCK_N)
    # V is [R, N]: Vᵀ[k, j] = V[j, k] is at v + j*stride_v + k.
    acc = _matmul(x_hi, x_lo, stride_x, v_ptr, v_ptr, stride_v, rows, cols, B, R, N,
                  False, True, SPLIT_X, False, BLOCK_M, BLOCK_N, BLOCK_K)
    mask = (rows < B)[:, None] & (cols < R)[None, :]
    _store_split(xv_hi, xv_lo, rows.to(tl.int64)[:, None] * R + cols[None, :], mask, acc)


@triton.jit
def dcn_bwd_project_first_kernel(x0_ptr, v_ptr, xv_hi, xv_lo, B, N, R, stride_x0, stride_v,
                                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """xv_0 = x0 V_0ᵀ [B, R] as planes; grid cdiv(B, BLOCK_M) * cdiv(R, BLOCK_N)."""
    _project(x0_ptr, x0_ptr, v_ptr, xv_hi, xv_lo, B, N, R, stride_x0, stride_v,
             False, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def dcn_bwd_project_kernel(x_hi, x_lo, v_ptr, xv_hi, xv_lo, B, N, R, stride_v,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """xv_l = x_l V_lᵀ for l > 0, x_l from its planes; grid as the first layer's."""
    _project(x_hi, x_lo, v_ptr, xv_hi, xv_lo, B, N, R, N, stride_v, True, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _start_dy(g, x0, rows, cols, mask, pid_m, dy_hi, dy_lo, partial_ptr, N):
    """dy = g * x0 as planes, and this row block's column sums of dy (in fp32) as row pid_m of
    `partial` (rows past B hold g = 0, so they add nothing)."""
    dy = g * x0
    _store_split(dy_hi, dy_lo, rows.to(tl.int64)[:, None] * N + cols[None, :], mask, dy)
    tl.store(partial_ptr + pid_m.to(tl.int64) * N + cols, tl.sum(dy, axis=0), mask=cols < N)


@triton.jit
def dcn_bwd_expand_kernel(x0_ptr, x_hi, x_lo, xv_hi, xv_lo, w_ptr, bias_ptr, grad_out_ptr,
                          f32_ptr, out_hi, out_lo, g_ptr, partial_ptr,
                          B, N, R, stride_x0, stride_w, stride_grad_out, stage,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """y_l = xv_l W_lᵀ + b_l on a [B, N] tile, then by `stage` (a runtime value: one binary
    serves every layer):
    0: layer 0 < L-1: y_0 to f32 (ys[0]), x_1 = x0 * y_0 + x0 to out (planes);
    1: layer 0 < l < L-1: likewise, with x_l read from the planes x_hi, x_lo;
    2: layer L-1, where the backward starts with g = grad_out: g to g_ptr (fp32), grad_x0's
       sum g * y_{L-1} to f32, dy = g * x0 to out (planes) and its column sums to partial.
    Unused pointers are never read. Grid cdiv(B, BLOCK_M) * cdiv(N, BLOCK_N)."""
    pid_m, pid_n, rows, cols = _tile(B, N, BLOCK_M, BLOCK_N)
    # W is [N, R]: Wᵀ[k, n] = W[n, k] is at w + n*stride_w + k.
    acc = _matmul(xv_hi, xv_lo, R, w_ptr, w_ptr, stride_w, rows, cols, B, N, R,
                  False, True, True, False, BLOCK_M, BLOCK_N, BLOCK_K)
    y = acc + tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    mask = (rows < B)[:, None] & (cols < N)[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    scratch = rows64 * N + cols[None, :]
    x0 = tl.load(x0_ptr + rows64 * stride_x0 + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if stage == 2:
        g = tl.load(grad_out_ptr + rows64 * stride_grad_out + cols[None, :], mask=mask, other=0.0)
        g = g.to(tl.float32)
        tl.store(g_ptr + scratch, g, mask=mask)
        tl.store(f32_ptr + scratch, g * y, mask=mask)
        _start_dy(g, x0, rows, cols, mask, pid_m, out_hi, out_lo, partial_ptr, N)
    else:
        xl = x0
        if stage == 1:
            xl = _load_split(x_hi, x_lo, scratch, mask)
        tl.store(f32_ptr + scratch, y, mask=mask)
        _store_split(out_hi, out_lo, scratch, mask, x0 * y + xl)


# --- backward --------------------------------------------------------------------------------


@triton.jit
def dcn_bwd_grad_w_kernel(dy_hi, dy_lo, xv_hi, xv_lo, partial_ptr, grad_w_ptr, grad_b_ptr,
                          B, N, R, stride_grad_w, partial_rows,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """grad_W_l = dyᵀ xv_l [N, R], reduced over the whole batch in one program's loop; the
    programs of the first column block also sum `partial`'s rows (in order) into grad_b_l.
    Grid cdiv(N, BLOCK_M) * cdiv(R, BLOCK_N)."""
    pid_m, pid_n, rows, cols = _tile(N, R, BLOCK_M, BLOCK_N)
    # dyᵀ[n, b] = dy[b, n] is at dy + b*N + n.
    acc = _matmul(dy_hi, dy_lo, N, xv_hi, xv_lo, R, rows, cols, N, R, B,
                  True, False, True, True, BLOCK_M, BLOCK_N, BLOCK_K)
    mask = (rows < N)[:, None] & (cols < R)[None, :]
    where = grad_w_ptr + rows.to(tl.int64)[:, None] * stride_grad_w + cols[None, :]
    tl.store(where, acc.to(grad_w_ptr.dtype.element_ty), mask=mask)
    if pid_n == 0:
        total = tl.zeros([BLOCK_M], dtype=tl.float32)
        partial_row = partial_ptr + rows
        for _ in range(0, partial_rows):
            total += tl.load(partial_row, mask=rows < N, other=0.0)
            partial_row += N
        tl.store(grad_b_ptr + rows, total.to(grad_b_ptr.dtype.element_ty), mask=rows < N)


@triton.jit
def dcn_bwd_dxv_kernel(dy_hi, dy_lo, w_ptr, dxv_hi, dxv_lo, B, N, R, stride_w,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """dxv = dy W_l [B, R] as planes; grid cdiv(B, BLOCK_M) * cdiv(R, BLOCK_N)."""
    pid_m, pid_n, rows, cols = _tile(B, R, BLOCK_M, BLOCK_N)
    acc = _matmul(dy_hi, dy_lo, N, w_ptr, w_ptr, stride_w, rows, cols, B, R, N,
                  False, False, True, False, BLOCK_M, BLOCK_N, BLOCK_K)
    mask = (rows < B)[:, None] & (cols < R)[None, :]
    _store_split(dxv_hi, dxv_lo, rows.to(tl.int64)[:, None] * R + cols[None, :], mask, acc)


@triton.jit
def _grad_v(dxv_hi, dxv_lo, x_hi, x_lo, grad_v_ptr, B, N, R, stride_x, stride_grad_v,
            SPLIT_X: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m, pid_n, rows, cols = _tile(R, N, BLOCK_M, BLOCK_N)
    # dxvᵀ[j, b] = dxv[b, j] is at dxv + b*R + j.
    acc = _matmul(dxv_hi, dxv_lo, R, x_hi, x_lo, stride_x, rows, cols, R, N, B,
                  True, False, True, SPLIT_X, BLOCK_M, BLOCK_N, BLOCK_K)
    mask = (rows < R)[:, None] & (cols < N)[None, :]
    where = grad_v_ptr + rows.to(tl.int64)[:, None] * stride_grad_v + cols[None, :]
    tl.store(where, acc.to(grad_v_ptr.dtype.element_ty), mask=mask)


@triton.jit
def dcn_bwd_grad_v_first_kernel(dxv_hi, dxv_lo, x0_ptr, grad_v_ptr, B, N, R, stride_x0, stride_grad_v,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """grad_V_0 = dxvᵀ x0 [R, N], reduced over the batch in one program's loop; grid
    cdiv(R, BLOCK_M) * cdiv(N, BLOCK_N)."""
    _grad_v(dxv_hi, dxv_lo, x0_ptr, x0_ptr, grad_v_ptr, B, N, R, stride_x0, stride_grad_v,
            False, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def dcn_bwd_grad_v_kernel(dxv_hi, dxv_lo, x_hi, x_lo, grad_v_ptr, B, N, R, stride_grad_v,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """grad_V_l = dxvᵀ x_l for l > 0, x_l from its planes; grid as the first layer's."""
    _grad_v(dxv_hi, dxv_lo, x_hi, x_lo, grad_v_ptr, B, N, R, N, stride_grad_v,
            True, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def dcn_bwd_carry_kernel(dxv_hi, dxv_lo, v_ptr, g_ptr, x0_ptr, y_ptr, sum_ptr, dy_hi, dy_lo, partial_ptr,
                         grad_x0_ptr, B, N, R, stride_v, stride_x0, stride_grad_x0, first,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """g + dxv V_l, the gradient of x_l, on a [B, N] tile; then, by `first` (a runtime value):
    layers l > 0 (first = 0): g to g_ptr (in place: each program rewrites only the tile it
    read), grad_x0's sum += g * y_{l-1}, layer l-1's dy and its column sums (x0, y_ptr,
    dy_*, partial_ptr); layer 0 (first = 1): grad_x0 = the sum + g, x0 being x_0 too.
    Unused pointers are never read. Grid cdiv(B, BLOCK_M) * cdiv(N, BLOCK_N)."""
    pid_m, pid_n, rows, cols = _tile(B, N, BLOCK_M, BLOCK_N)
    acc = _matmul(dxv_hi, dxv_lo, R, v_ptr, v_ptr, stride_v, rows, cols, B, N, R,
                  False, False, True, False, BLOCK_M, BLOCK_N, BLOCK_K)
    mask = (rows < B)[:, None] & (cols < N)[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    scratch = rows64 * N + cols[None, :]
    g = tl.load(g_ptr + scratch, mask=mask, other=0.0) + acc
    total = tl.load(sum_ptr + scratch, mask=mask, other=0.0)
    if first:
        out = total + g
        where = grad_x0_ptr + rows64 * stride_grad_x0 + cols[None, :]
        tl.store(where, out.to(grad_x0_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(g_ptr + scratch, g, mask=mask)
        y = tl.load(y_ptr + scratch, mask=mask, other=0.0)
        tl.store(sum_ptr + scratch, total + g * y, mask=mask)
        x0 = tl.load(x0_ptr + rows64 * stride_x0 + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        _start_dy(g, x0, rows, cols, mask, pid_m, dy_hi, dy_lo, partial_ptr, N)
