"""batched_dense_bucketize: out[b, f] = torch.bucketize(x[b, f], borders_f, right=False).

This file is the kernel's source blob: only triton imports, compiled on other hosts.
"""

import triton
import triton.language as tl


@triton.jit
def batched_dense_bucketize_kernel(
    x_ptr,
    border_values_ptr,
    border_offsets_ptr,
    out_ptr,
    B,
    F,
    stride_x,
    stride_out,
    BLOCK_B: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    """One program per [BLOCK_B, BLOCK_F] tile of x, grid (cdiv(B, BLOCK_B), cdiv(F, BLOCK_F)).

    Every element runs its own lower-bound binary search over its feature's borders
    (gathered loads, which the feature's few KB keep in cache): lo/hi start at the feature's
    [0, n) and the loop runs while any element of the tile has lo < hi, i.e. about
    log2(max n) + 1 steps. `not (border >= x)` moves right, so a NaN x ends past every
    border, as torch.bucketize's lower bound does. Compared in fp32 (exact for fp16/bf16).
    """
    pid_b = tl.program_id(0)
    pid_f = tl.program_id(1)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    feats = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    row_mask = rows < B
    feat_mask = feats < F
    mask = row_mask[:, None] & feat_mask[None, :]
    rows64 = rows.to(tl.int64)
    x = tl.load(x_ptr + rows64[:, None] * stride_x + feats[None, :], mask=mask, other=0.0).to(tl.float32)
    first = tl.load(border_offsets_ptr + feats, mask=feat_mask, other=0).to(tl.int64)
    last = tl.load(border_offsets_ptr + feats + 1, mask=feat_mask, other=0).to(tl.int64)
    # positions within a feature's borders fit int32; addresses are int64
    lo = tl.zeros([BLOCK_B, BLOCK_F], dtype=tl.int32)
    hi = tl.zeros([BLOCK_B, BLOCK_F], dtype=tl.int32) + (last - first).to(tl.int32)[None, :]
    hi = tl.where(mask, hi, 0)
    base = first[None, :]
    while tl.max(tl.max(hi - lo, axis=1), axis=0) > 0:
        active = lo < hi
        mid = (lo + hi) // 2
        border = tl.load(border_values_ptr + base + mid.to(tl.int64), mask=active, other=0.0).to(tl.float32)
        right = (border >= x) == 0
        lo = tl.where(active & right, mid + 1, lo)
        hi = tl.where(active & (right == 0), mid, hi)
    tl.store(out_ptr + rows64[:, None] * stride_out + feats[None, :], lo.to(tl.int64), mask=mask)
