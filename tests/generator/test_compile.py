"""Cross-compilation from source text for every target, its failures, and loading binaries back.

Runs on a CPU-only host: Triton's NVIDIA and AMD backends compile without a device. The one
test that launches a loaded kernel runs only where a CUDA/ROCm device is present.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from kreg.model import CandidateStatus, LaunchParam

from generator.compile import CompileError, compile_for_target, launch_params
from kreg.loader import LoadError, load_compiled, unpack_compiled
from generator.hardware import RECORDS, HardwareRecord

KERNELS = '''"""Row sum and masked vector add: a reduction (shared memory) and a plain elementwise kernel."""
import triton
import triton.language as tl


@triton.jit
def _masked_row(x_ptr, row, cols, n_cols):
    return tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0)


@triton.jit
def row_sum(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    tl.store(out_ptr + row, tl.sum(_masked_row(x_ptr, row, cols, n_cols), axis=0))


@triton.jit
def vector_add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)
'''
ROW_SUM = {"x_ptr": "*fp32", "out_ptr": "*fp32", "n_cols": "i32", "BLOCK": "constexpr"}
VECTOR_ADD = {"x_ptr": "*fp32", "y_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"}

# tl.dot stages its operand tiles in shared memory: 64x512 + 512x64 fp32 is 256 KiB on NVIDIA and
# 128 KiB on AMD (operands one at a time), over every GPU's per-block limit in Triton 3.6 and 3.9
# alike. (A large tl.trans is not: how much of it goes through shared memory changed in between.)
MATMUL = """import triton
import triton.language as tl


@triton.jit
def matmul(a_ptr, b_ptr, c_ptr, M: tl.constexpr, N: tl.constexpr, K: tl.constexpr):
    m = tl.arange(0, M)
    n = tl.arange(0, N)
    k = tl.arange(0, K)
    a = tl.load(a_ptr + m[:, None] * K + k[None, :])
    b = tl.load(b_ptr + k[:, None] * N + n[None, :])
    tl.store(c_ptr + m[:, None] * N + n[None, :], tl.dot(a, b))
"""

GPU_ARCHS = ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"]


@pytest.fixture(scope="module", autouse=True)
def fresh_triton_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compile for real: a cache warmed by an earlier run would hide a broken compile path."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.mktemp("triton-cache")))
        yield


@pytest.mark.parametrize("arch", GPU_ARCHS)
def test_compiles_for_every_gpu_target(arch: str) -> None:
    record = RECORDS[arch]
    built = compile_for_target(KERNELS, "row_sum", ROW_SUM, {"BLOCK": 1024}, record, 4, 3)
    assert built.binary.startswith(b"\x7fELF")  # cubin and hsaco are both ELF
    assert built.binary_format == {"cuda": "cubin", "hip": "hsaco"}[record.triton_backend]
    metadata = json.loads(built.metadata_json)
    assert record.compile_target is not None
    assert metadata["target"]["arch"] == record.compile_target.arch
    assert metadata["name"] == "row_sum"
    # A cross-warp reduction needs a shared-memory scratch buffer; the record of it must be exact.
    assert built.shared_memory_bytes == metadata["shared"] > 0
    assert (built.num_warps, built.num_stages) == (4, 3)
    assert built.triton_version == metadata["triton_version"]
    assert built.toolchain.backend == record.triton_backend
    assert "ttgir" in built.asm and ("ptx" in built.asm or "amdgcn" in built.asm)


def test_the_same_source_gives_the_same_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Content digests dedupe only if no host- or run-specific path ends up in the binary."""
    monkeypatch.setenv("TRITON_ALWAYS_COMPILE", "1")
    first = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, RECORDS["sm_90"], 4, 3)
    second = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, RECORDS["sm_90"], 4, 3)
    assert first.binary == second.binary


def test_launch_params_are_the_runtime_params_in_order() -> None:
    assert launch_params(VECTOR_ADD) == (
        LaunchParam("x_ptr", "*fp32"),
        LaunchParam("y_ptr", "*fp32"),
        LaunchParam("out_ptr", "*fp32"),
        LaunchParam("n", "i32"),
    )


@pytest.mark.parametrize("arch", ["sm_90", "gfx942"])
def test_too_much_shared_memory_is_out_of_resources(arch: str) -> None:
    record = RECORDS[arch]
    signature = {
        "a_ptr": "*fp32",
        "b_ptr": "*fp32",
        "c_ptr": "*fp32",
        "M": "constexpr",
        "N": "constexpr",
        "K": "constexpr",
    }
    with pytest.raises(CompileError) as info:
        compile_for_target(MATMUL, "matmul", signature, {"M": 64, "N": 64, "K": 512}, record, 8, 1)
    assert info.value.kind == "out_of_resources"
    assert info.value.status is CandidateStatus.OUT_OF_RESOURCES
    assert (
        f"bytes of shared memory per block; {record.name} ({arch}) allows {record.max_shared_memory_bytes}"
        in (info.value.message)
    )


@pytest.mark.parametrize(
    ("source", "entry", "signature", "constexprs", "says"),
    [
        ("import triton\n@triton.jit\ndef k(:\n", "k", {}, {}, "syntax error at line 3"),
        (KERNELS.replace("row * n_cols", "row * n_colz"), "row_sum", ROW_SUM, {"BLOCK": 1024}, "n_colz"),
        (KERNELS, "row_sum", ROW_SUM, {"BLOCK": 1000}, "power of 2"),
        (KERNELS, "_missing", ROW_SUM, {"BLOCK": 1024}, "defines ['_masked_row', 'row_sum', 'vector_add']"),
        (KERNELS, "row_sum", dict(reversed(ROW_SUM.items())), {"BLOCK": 1024}, "same order"),
        (KERNELS, "row_sum", {**ROW_SUM, "BLOCK": "i32"}, {}, "type them 'constexpr'"),
        (KERNELS, "row_sum", ROW_SUM, {}, "must give exactly ['BLOCK']"),
    ],
    ids=[
        "syntax",
        "undefined-name",
        "non-power-of-2",
        "no-entry",
        "signature-order",
        "constexpr-typed",
        "no-value",
    ],
)
def test_broken_candidates_are_compile_errors(
    source: str, entry: str, signature: dict[str, str], constexprs: dict[str, int], says: str
) -> None:
    with pytest.raises(CompileError) as info:
        compile_for_target(source, entry, signature, constexprs, RECORDS["sm_90"], 4, 3)
    assert info.value.kind == "compile_error"
    assert says in info.value.message


PLANTS = {
    "top-level statement": "import triton\nopen(PLANTED, 'w').close()\n",
    "default": "import triton\n@triton.jit\ndef k(x, y=open(PLANTED, 'w').close()):\n    pass\n",
    "annotation": "import triton\n@triton.jit\ndef k(x: open(PLANTED, 'w').close()):\n    pass\n",
    "decorator argument": "import triton\n@triton.jit(repr=open(PLANTED, 'w').close())\ndef k(x):\n    pass\n",
    "other decorator": "import triton\n@open(PLANTED, 'w').close\ndef k(x):\n    pass\n",
    "other import": "import os\nos.close(os.open(PLANTED, os.O_CREAT))\n",
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_source_is_not_executed_unless_it_only_defines_kernels(plant: str, tmp_path: Path) -> None:
    planted = tmp_path / "ran"
    source = plant.replace("PLANTED", repr(str(planted)))
    with pytest.raises(
        CompileError, match="may hold only triton imports, docstrings and @triton.jit functions"
    ):
        compile_for_target(source, "k", {"x": "i32"}, {}, RECORDS["sm_90"], 4, 3)
    assert not planted.exists()


def test_no_binary_for_cpu() -> None:
    with pytest.raises(CompileError, match="no Triton backend compiles for cpu/x86_64"):
        compile_for_target(KERNELS, "row_sum", ROW_SUM, {"BLOCK": 1024}, RECORDS["x86_64"], 4, 3)


def test_compile_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(CompileError("out_of_resources", "needs 1 byte too many")))
    assert (error.kind, error.message, str(error)) == (
        "out_of_resources",
        "needs 1 byte too many",
        "out_of_resources: needs 1 byte too many",
    )
    with pytest.raises(ValueError, match="not one of"):
        CompileError("crash", "x")


@pytest.mark.parametrize("arch", ["sm_90", "gfx942"])
def test_unpack_round_trips_binary_and_metadata(arch: str) -> None:
    built = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, RECORDS[arch], 4, 3)
    kernel = unpack_compiled(built.binary, built.metadata_json, launch_params(VECTOR_ADD))
    assert kernel.kernel == built.binary
    assert kernel.name == "vector_add"
    assert kernel.metadata.shared == built.shared_memory_bytes
    assert kernel.metadata.num_warps == 4
    assert kernel.metadata.target.arch == RECORDS[arch].compile_target.arch  # type: ignore[union-attr]


def test_unpack_refuses_another_triton_version() -> None:
    built = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, RECORDS["sm_90"], 4, 3)
    metadata = json.loads(built.metadata_json) | {"triton_version": "0.0.1"}
    with pytest.raises(LoadError, match="built by triton 0.0.1"):
        unpack_compiled(built.binary, json.dumps(metadata).encode(), launch_params(VECTOR_ADD))
    with pytest.raises(LoadError, match="not Triton kernel metadata"):
        unpack_compiled(built.binary, b'{"name": "vector_add"}', launch_params(VECTOR_ADD))


def _gpu_record() -> HardwareRecord | None:
    """The record of this host's GPU, or None where no CUDA/ROCm device is usable."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        return None
    if torch.version.hip:
        arch = torch.cuda.get_device_properties(0).gcnArchName.split(":")[0]
    else:
        arch = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
    return RECORDS.get(arch)


def test_load_without_a_gpu_fails_clearly() -> None:
    if _gpu_record() is not None:
        pytest.skip("this host has a GPU; the launch test below covers loading")
    built = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, RECORDS["sm_90"], 4, 3)
    with pytest.raises(LoadError, match="cannot load a cuda/90 binary: no GPU driver is active"):
        load_compiled(built.binary, built.metadata_json, launch_params(VECTOR_ADD))


def test_loaded_binary_launches_on_this_gpu() -> None:
    record = _gpu_record()
    if record is None:
        pytest.skip("needs a CUDA or ROCm device whose arch has a hardware record")
    import torch
    import triton

    built = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, record, 4, 3)
    kernel = load_compiled(built.binary, built.metadata_json, launch_params(VECTOR_ADD))
    n = 1000  # not a multiple of BLOCK: the mask must hold
    x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = torch.full((n + 1,), float("nan"), device="cuda")
    kernel[(triton.cdiv(n, 256), 1, 1)](x, y, out, n)
    torch.cuda.synchronize()
    assert torch.equal(out[:n], x + y)
    assert torch.isnan(out[n])  # the element past n was never written

    other = next(r for r in RECORDS.values() if r.triton_backend == record.triton_backend and r is not record)
    foreign = compile_for_target(KERNELS, "vector_add", VECTOR_ADD, {"BLOCK": 256}, other, 4, 3)
    with pytest.raises(LoadError, match="this device is"):
        load_compiled(foreign.binary, foreign.metadata_json, launch_params(VECTOR_ADD))


def test_a_key_fixed_width_compiles_aligned_and_vectorized() -> None:
    """The build specializes what every sample has as a multiple of 16, as Triton's JIT would:
    with D fixed by the key the row strides are (and the pointers are aligned), the binary's
    params say so (":16") and its loads and stores are 16-byte vectors. Without D in the key,
    the edge cases' odd widths leave the strides unspecialized."""
    import re

    from generator.evaluate import CandidateTask, evaluate
    from generator.operators import OPERATORS

    def built(params: dict[str, str]) -> tuple[list[str], str]:
        config = OPERATORS["swish_layer_norm"].config_space(params)[0]
        task = CandidateTask("generator.operators.swish_layer_norm", params, config, "nvidia", "sm_90", on_device=False, stage="build")
        report = evaluate(task)
        assert report.status is CandidateStatus.PASSED, report.reason
        (kernel,) = report.kernels
        assert kernel.binary is not None
        return [p.type for p in kernel.params], kernel.binary.asm["ptx"]

    fixed_types, fixed_ptx = built({"D": "512", "dtype": "bf16"})
    assert fixed_types == ["*bf16:16"] * 4 + ["i32", "i32:16", "i32:16", "i32:16"]  # N (the row count) varies
    assert re.search(r"ld\.global[.\w]*\.v4", fixed_ptx) and re.search(r"st\.global[.\w]*\.v4", fixed_ptx)
    free_types, free_ptx = built({"dtype": "bf16"})
    assert free_types[4:] == ["i32", "i32", "i32", "i32"]
