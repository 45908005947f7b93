import triton
import triton.language as tl


@triton.jit
def triple_kernel(x_ptr, y_ptr, N, BLOCK: tl.constexpr):
    """Meant to compute y = 3x; computes 2x (the bug a proposal has to fix)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, x * 2.0, mask=mask)
