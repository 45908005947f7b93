"""Loading and launching cubins through the CUDA driver alone (kreg.cuda_launch).

What needs no device runs everywhere: which kernels the driver path takes, from the metadata
Triton really writes. The launches run only where a CUDA device is present (the GPU bench
host runs this file too).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from generator.compile import compile_for_target, launch_params
from generator.hardware import RECORDS
from kreg.cuda_launch import CudaKernel, unsupported
from kreg.loader import LoadError, load_compiled

SCALARS = '''import triton
import triton.language as tl


@triton.jit
def scale_shift(x_ptr, out_ptr, n, scale, shift, offset, negate, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(x_ptr + offs, mask=mask) * scale + shift
    if negate:
        y = -y
    tl.store(out_ptr + offs + offset, y, mask=mask)
'''
SIGNATURE = {
    "x_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "scale": "fp32", "shift": "fp32",
    "offset": "i64", "negate": "i1", "BLOCK": "constexpr",
}


def _metadata(arch: str = "sm_90") -> dict[str, Any]:
    built = compile_for_target(SCALARS, "scale_shift", SIGNATURE, {"BLOCK": 128}, RECORDS[arch], 4, 3)
    return json.loads(built.metadata_json)


def test_plain_triton_kernels_take_the_driver_path() -> None:
    assert unsupported(_metadata(), launch_params(SIGNATURE)) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"num_ctas": 2}, "num_ctas=2 needs a cluster launch"),
        ({"launch_cooperative_grid": True}, "launch_cooperative_grid is set"),
        ({"launch_pdl": True}, "launch_pdl is set"),
        ({"global_scratch_size": 64}, "needs 64 bytes of global scratch"),
        ({"profile_scratch_size": 8}, "needs 8 bytes of profile scratch"),
        ({"tensordesc_meta": [{"block": [64]}]}, "takes tensor descriptors"),
    ],
)
def test_what_needs_tritons_launcher_is_named(change: dict[str, Any], why: str) -> None:
    reason = unsupported(_metadata() | change, launch_params(SIGNATURE))
    assert reason is not None and why in reason


def test_a_scalar_type_the_driver_path_cannot_marshal_is_named() -> None:
    params = launch_params(SIGNATURE | {"scale": "bf16"})
    assert unsupported(_metadata(), params) == "param scale has type bf16"


def _cuda_record() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.version.hip:
        pytest.skip("needs a CUDA device")
    return RECORDS.get("sm_{}{}".format(*torch.cuda.get_device_capability(0))) or pytest.skip("no hardware record")


def test_scalars_reach_the_kernel_through_the_driver() -> None:
    record = _cuda_record()
    import torch

    built = compile_for_target(SCALARS, "scale_shift", SIGNATURE, {"BLOCK": 128}, record, 4, 3)
    kernel = load_compiled(built.binary, built.metadata_json, launch_params(SIGNATURE))
    assert isinstance(kernel, CudaKernel)
    n, offset = 1000, 3
    x = torch.randn(n, device="cuda")
    for negate in (False, True):
        out = torch.full((n + offset + 1,), float("nan"), device="cuda")
        kernel[((n + 127) // 128,)](x, out, n, 2.0, -0.25, offset, negate)
        torch.cuda.synchronize()
        want = x * 2.0 - 0.25  # exact doubling: the same with or without a fused multiply-add
        torch.testing.assert_close(out[offset:offset + n], -want if negate else want, rtol=0, atol=0)
        assert torch.isnan(out[:offset]).all() and torch.isnan(out[-1])


def test_an_abi_the_binary_does_not_have_fails_at_load() -> None:
    record = _cuda_record()
    built = compile_for_target(SCALARS, "scale_shift", SIGNATURE, {"BLOCK": 128}, record, 4, 3)
    short = launch_params(SIGNATURE)[:-1]
    with pytest.raises(LoadError, match="the binary takes 9 parameters; its ABI lists 6 runtime params"):
        load_compiled(built.binary, built.metadata_json, short)
    widened = launch_params(SIGNATURE | {"n": "i64"})
    with pytest.raises(LoadError, match=r"param n \(i64\) is 4 bytes in the binary"):
        load_compiled(built.binary, built.metadata_json, widened)
