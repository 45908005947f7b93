"""The hardware records, one per exact arch, as plain data with the documents they came from.

Conventions (see HardwareRecord): spec-sheet peaks per second; matrix dtypes are dense (the
NVIDIA data sheets print with-sparsity figures, halved here); "fp32" is the non-tensor peak;
shared memory is the most one block may opt in to (cudaDevAttrMaxSharedMemoryPerBlockOptin,
which is what Triton checks a kernel's `shared` against at load); registers are 32-bit
registers per SM/CU. One record describes one device as the runtime enumerates it — for
MI250X that is one GCD, not the two-die package the data sheet describes.
"""

from __future__ import annotations

from generator.hardware.model import CompileTarget, HardwareRecord

KIB = 1024
MIB = 1024 * 1024
TERA = 1e12

_CUDA_GUIDE = (
    "NVIDIA CUDA C++ Programming Guide, 'Technical Specifications per Compute Capability' "
    "(https://docs.nvidia.com/cuda/cuda-c-programming-guide/#features-and-technical-specifications)"
)
_ROCM_SPECS = "AMD ROCm documentation, 'AMD GPU specifications' (https://rocm.docs.amd.com/en/latest/reference/gpu-specs.html)"

SM_80 = HardwareRecord(
    platform="nvidia",
    arch="sm_80",
    name="NVIDIA A100-SXM4-80GB",
    warp_size=32,
    sm_count=108,
    max_shared_memory_bytes=163 * KIB,
    registers_per_sm=65_536,
    l2_bytes=40 * MIB,
    memory_bandwidth_bytes_s=2039e9,
    peak_flops={
        "fp32": 19.5 * TERA,
        "tf32": 156 * TERA,
        "fp16": 312 * TERA,
        "bf16": 312 * TERA,
        "int8": 624 * TERA,
    },
    triton_backend="cuda",
    compile_target=CompileTarget("cuda", 80, 32),
    sources=(
        (
            "NVIDIA A100 Tensor Core GPU data sheet "
            "(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)"
        ),
        "NVIDIA A100 Tensor Core GPU Architecture white paper (GA100: 108 SMs, 40 MB L2)",
        "NVIDIA Ampere GPU Architecture Tuning Guide (https://docs.nvidia.com/cuda/ampere-tuning-guide/)",
        _CUDA_GUIDE,
    ),
    notes="No FP8 tensor cores on sm_80.",
)

SM_90 = HardwareRecord(
    platform="nvidia",
    arch="sm_90",
    name="NVIDIA H100 SXM5 80GB",
    warp_size=32,
    sm_count=132,
    max_shared_memory_bytes=227 * KIB,
    registers_per_sm=65_536,
    l2_bytes=50 * MIB,
    memory_bandwidth_bytes_s=3.35e12,
    peak_flops={
        "fp32": 67 * TERA,
        "tf32": 494.5 * TERA,
        "fp16": 989.5 * TERA,
        "bf16": 989.5 * TERA,
        "fp8": 1979 * TERA,
        "int8": 1979 * TERA,
    },
    triton_backend="cuda",
    compile_target=CompileTarget("cuda", 90, 32),
    sources=(
        (
            "NVIDIA H100 Tensor Core GPU data sheet, SXM column "
            "(https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet)"
        ),
        "NVIDIA Hopper Tuning Guide (https://docs.nvidia.com/cuda/hopper-tuning-guide/)",
        _CUDA_GUIDE,
        "Cross-check: https://glennklockwood.com/garden/processors/h100 (132 SMs, 50 MB L2)",
    ),
)

SM_100 = HardwareRecord(
    platform="nvidia",
    arch="sm_100",
    name="NVIDIA B200 (HGX B200, 180 GB)",
    warp_size=32,
    sm_count=148,
    max_shared_memory_bytes=227 * KIB,
    registers_per_sm=65_536,
    l2_bytes=126 * MIB,
    memory_bandwidth_bytes_s=7.7e12,
    peak_flops={
        "fp32": 75 * TERA,
        "tf32": 1.1e3 * TERA,
        "fp16": 2.25e3 * TERA,
        "bf16": 2.25e3 * TERA,
        "fp8": 4.5e3 * TERA,
        "int8": 4.5e3 * TERA,
    },
    triton_backend="cuda",
    compile_target=CompileTarget("cuda", 100, 32),
    sources=(
        (
            "NVIDIA GB200 NVL72 / HGX B200 specifications, 'Individual Blackwell GPU' column "
            "(https://www.nvidia.com/en-us/data-center/hgx/)"
        ),
        "NVIDIA Blackwell Tuning Guide (https://docs.nvidia.com/cuda/blackwell-tuning-guide/)",
        _CUDA_GUIDE,
        (
            "Chips and Cheese, 'Nvidia's B200: Keeping the CUDA Juggernaut Rolling' "
            "(https://chipsandcheese.com/p/nvidias-b200-keeping-the-cuda-juggernaut): 148 SMs enabled"
        ),
    ),
    notes=(
        "NVIDIA's B200 tables give neither SM count nor L2 size: 148 SMs is a third-party reading, "
        "and the 126 MB L2 is the commonly reported l2CacheSize (other third-party pages disagree), "
        "so treat both as approximate. Peaks are the 1000 W HGX configuration; GB200 parts run higher."
    ),
)

GFX90A = HardwareRecord(
    platform="amd",
    arch="gfx90a",
    name="AMD Instinct MI250X (one GCD)",
    warp_size=64,
    sm_count=110,
    max_shared_memory_bytes=64 * KIB,
    registers_per_sm=131_072,  # 512 KiB VGPR file per CU / 4 bytes
    l2_bytes=8 * MIB,
    memory_bandwidth_bytes_s=3.2768e12 / 2,
    peak_flops={
        "fp32": 47.9 * TERA / 2,
        "fp16": 383 * TERA / 2,
        "bf16": 383 * TERA / 2,
        "int8": 383 * TERA / 2,
    },
    triton_backend="hip",
    compile_target=CompileTarget("hip", "gfx90a", 64),
    sources=(
        (
            "AMD Instinct MI250X accelerator product page and data sheet "
            "(https://www.amd.com/en/products/accelerators/instinct/mi200/mi250x.html)"
        ),
        _ROCM_SPECS
        + ": MI250X row (220 CUs = 110 per GCD, 64 KiB LDS, 16 MiB L2 = 8 per GCD, 512 KiB VGPR file)",
        "AMD ROCm documentation, 'AMD Instinct MI250 microarchitecture' (each GCD is a separate device)",
    ),
    notes=(
        "ROCm enumerates each of the package's two GCDs as its own device, so CUs, L2, bandwidth and "
        "peaks are the package figures halved. fp32 is the non-packed vector peak (packed FP32 doubles it). "
        "CDNA2 has no TF32 or FP8 matrix instructions."
    ),
)

GFX942 = HardwareRecord(
    platform="amd",
    arch="gfx942",
    name="AMD Instinct MI300X",
    warp_size=64,
    sm_count=304,
    max_shared_memory_bytes=64 * KIB,
    registers_per_sm=131_072,  # 512 KiB VGPR file per CU / 4 bytes
    l2_bytes=32 * MIB,
    memory_bandwidth_bytes_s=5.3e12,
    peak_flops={
        "fp32": 163.4 * TERA,
        "tf32": 653.7 * TERA,
        "fp16": 1307.4 * TERA,
        "bf16": 1307.4 * TERA,
        "fp8": 2614.9 * TERA,
        "int8": 2614.9 * TERA,
    },
    triton_backend="hip",
    compile_target=CompileTarget("hip", "gfx942", 64),
    sources=(
        (
            "AMD Instinct MI300X accelerator data sheet "
            "(https://www.amd.com/content/dam/amd/en/documents/instinct-tech-docs/data-sheets/"
            "amd-instinct-mi300x-data-sheet.pdf)"
        ),
        _ROCM_SPECS + ": MI300X row (304 CUs, 64 KiB LDS, 32 MiB L2 = 4 per XCD, 256 MiB Infinity Cache)",
        "AMD ROCm documentation, 'AMD Instinct MI300 series microarchitecture'",
    ),
    notes=(
        "SPX partition mode (the default): one device of 8 XCDs. L2 is per XCD (4 MiB each); the "
        "256 MiB Infinity Cache (memory-side) is not counted in l2_bytes."
    ),
)

X86_64 = HardwareRecord(
    platform="cpu",
    arch="x86_64",
    name="generic x86-64 CPU",
    warp_size=1,
    sm_count=0,
    max_shared_memory_bytes=0,
    registers_per_sm=0,
    l2_bytes=0,
    memory_bandwidth_bytes_s=0.0,
    peak_flops={},
    triton_backend="cpu",
    compile_target=None,
    sources=(
        "triton-lang/triton python/triton/backends/: upstream ships nvidia and amd backends only",
        "triton-lang/triton python/triton/runtime/interpreter.py: TRITON_INTERPRET=1 runs kernels on the CPU",
    ),
    notes=(
        "Generic: core count, caches, memory bandwidth and peak FLOP/s depend on the host's SKU and "
        "socket count, so they are 0/absent here and must be measured on the worker. Kernels run in "
        "Triton's interpreter (tier INTERPRETED); no binary is compiled for this arch."
    ),
)

RECORDS: dict[str, HardwareRecord] = {r.arch: r for r in (SM_80, SM_90, SM_100, GFX90A, GFX942, X86_64)}
