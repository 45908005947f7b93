import triton
import triton.language as tl


@triton.jit
def double_kernel(x_ptr, y_ptr, N, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """y = 2x, or one deliberate fault chosen by MODE: 1 writes past the end, 2 never
    returns, 3 computes the wrong value, 4 writes nothing, 0 is correct."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if MODE == 1:
        tl.store(y_ptr + offs + 3, x * 2.0, mask=mask)
    elif MODE == 2:
        i = tl.program_id(0)
        while i >= 0:
            i = i + 1
        tl.store(y_ptr + offs, x * 2.0, mask=mask)
    elif MODE == 3:
        tl.store(y_ptr + offs, x * 3.0, mask=mask)
    elif MODE == 0:
        tl.store(y_ptr + offs, x * 2.0, mask=mask)
