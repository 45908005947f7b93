"""Launching a served cubin through the CUDA driver API alone: no Triton, no compiler.

Triton's own launch path builds a C launcher stub for each kernel signature it meets (Triton
3.6 compiles one with gcc, ~0.3-0.75 s, unless its cache already holds it), so a serving host
with an empty cache pays that per kernel at start. The cubin itself needs none of it: this
module loads it with cuModuleLoadData and launches it with cuLaunchKernel, marshalling the
runtime arguments by the sizes the driver reports for the kernel's parameters
(cuFuncGetParamInfo), which also checks that the stored ABI matches the binary.

Only what a plain Triton launch needs is supported: one CTA per program, no cooperative grid,
no programmatic dependent launch, no tensor descriptors, no global or profile scratch memory
to allocate. For anything else `unsupported` says why and the caller uses Triton's launcher.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kreg.model import LaunchParam

# The trailing pointer parameters Triton appends to every kernel, one per field present in
# its metadata (3.6 and 3.9 both have both); launched as null while their size is 0.
SCRATCH_FIELDS = ("global_scratch_size", "profile_scratch_size")
_SCALAR_TYPES: Mapping[tuple[str, int], type[ctypes._SimpleCData]] = {
    ("i1", 1): ctypes.c_uint8,
    ("i1", 4): ctypes.c_int32,  # some Triton versions widen i1 parameters
    ("i8", 1): ctypes.c_int8,
    ("i16", 2): ctypes.c_int16,
    ("i32", 4): ctypes.c_int32,
    ("i64", 8): ctypes.c_int64,
    ("u8", 1): ctypes.c_uint8,
    ("u16", 2): ctypes.c_uint16,
    ("u32", 4): ctypes.c_uint32,
    ("u64", 8): ctypes.c_uint64,
    ("fp32", 4): ctypes.c_float,
    ("fp64", 8): ctypes.c_double,
}
_POINTER_SIZE = 8
_SHARED_STATIC_LIMIT = 48 * 1024  # above this a kernel must opt in to dynamic shared memory
_CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1
_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97
_CU_FUNC_CACHE_PREFER_SHARED = 1
_CUDA_ERROR_INVALID_VALUE = 1

_DRIVER: ctypes.CDLL | None = None
_DRIVER_LOCK = threading.Lock()


class CudaError(RuntimeError):
    """A CUDA driver call that failed, with the driver's name for the error."""


def unsupported(metadata: Mapping[str, Any], params: Sequence[LaunchParam]) -> str | None:
    """Why this kernel needs Triton's launcher (None when cuLaunchKernel alone can run it)."""
    if metadata.get("num_ctas", 1) != 1:
        return f"num_ctas={metadata['num_ctas']} needs a cluster launch"
    for flag in ("launch_cooperative_grid", "launch_pdl"):
        if metadata.get(flag):
            return f"{flag} is set"
    if metadata.get("tensordesc_meta"):
        return "the kernel takes tensor descriptors"
    for name in SCRATCH_FIELDS:
        if metadata.get(name, 0):
            return f"the kernel needs {metadata[name]} bytes of {name.removesuffix('_size').replace('_', ' ')}"
    for p in params:
        if not p.triton_type.startswith("*") and p.triton_type not in {t for t, _ in _SCALAR_TYPES}:
            return f"param {p.name} has type {p.type}"
    return None


def driver() -> ctypes.CDLL:
    """libcuda, initialised once per process."""
    global _DRIVER
    with _DRIVER_LOCK:
        if _DRIVER is None:
            try:
                lib = ctypes.CDLL("libcuda.so.1")
            except OSError as e:
                raise CudaError(f"no CUDA driver on this host: {e}") from None
            _declare(lib)
            _check(lib, lib.cuInit(0), "cuInit")
            _DRIVER = lib
        return _DRIVER


def _declare(lib: ctypes.CDLL) -> None:
    """Argument types of the calls used: ctypes would pass every int as a C int, and
    cuFuncGetParamInfo's index is a size_t."""
    p, i, u, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t
    signatures: dict[str, list[Any]] = {
        "cuInit": [u],
        "cuGetErrorName": [i, ctypes.POINTER(ctypes.c_char_p)],
        "cuCtxGetCurrent": [p],
        "cuCtxSetCurrent": [p],
        "cuDeviceGet": [p, i],
        "cuDevicePrimaryCtxRetain": [p, i],
        "cuDeviceGetAttribute": [p, i, i],
        "cuModuleLoadData": [p, p],
        "cuModuleUnload": [p],
        "cuModuleGetFunction": [p, p, ctypes.c_char_p],
        "cuFuncGetAttribute": [p, i, p],
        "cuFuncSetAttribute": [p, i, i],
        "cuFuncSetCacheConfig": [p, i],
        "cuLaunchKernel": [p, u, u, u, u, u, u, u, p, p, p],
    }
    if hasattr(lib, "cuFuncGetParamInfo"):
        signatures["cuFuncGetParamInfo"] = [p, size, p, p]
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, ctypes.c_int


def _check(lib: ctypes.CDLL, status: int, call: str) -> None:
    if status != 0:
        name = ctypes.c_char_p()
        lib.cuGetErrorName(status, ctypes.byref(name))
        raise CudaError(f"{call} failed: {(name.value or b'?').decode()} ({status})")


def _current_context(lib: ctypes.CDLL, device_index: int) -> ctypes.c_void_p:
    """The calling thread's context, made the device's primary one when there is none (what
    Triton's launcher does: a thread torch never used for CUDA has no current context)."""
    ctx = ctypes.c_void_p()
    _check(lib, lib.cuCtxGetCurrent(ctypes.byref(ctx)), "cuCtxGetCurrent")
    if not ctx.value:
        device = ctypes.c_int()
        _check(lib, lib.cuDeviceGet(ctypes.byref(device), device_index), "cuDeviceGet")
        _check(lib, lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), device), "cuDevicePrimaryCtxRetain")
        _check(lib, lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    return ctx


def _unload(lib: ctypes.CDLL, module: int) -> None:
    lib.cuModuleUnload(ctypes.c_void_p(module))  # at process exit the context may be gone: ignore


Marshal = Callable[[Any], ctypes._SimpleCData]


def _pointer(arg: Any) -> ctypes.c_uint64:
    if arg is None:
        return ctypes.c_uint64(0)
    return ctypes.c_uint64(arg if isinstance(arg, int) else arg.data_ptr())


class CudaKernel:
    """One entry point of a cubin, loaded on a device; `kernel[grid](*runtime_args)` launches it
    on the device's current torch stream, like a Triton CompiledKernel."""

    def __init__(self, binary: bytes, metadata: Mapping[str, Any], params: Sequence[LaunchParam], device_index: int) -> None:
        why = unsupported(metadata, params)
        if why is not None:
            raise CudaError(f"cannot launch {metadata.get('name')} through the driver alone: {why}")
        lib = driver()
        _current_context(lib, device_index)
        self.name: str = metadata["name"]
        self.num_warps: int = int(metadata["num_warps"])
        self.shared: int = int(metadata.get("shared", 0))
        self.device_index = device_index
        self._lib = lib
        module = ctypes.c_void_p()
        image = ctypes.create_string_buffer(binary, len(binary))
        _check(lib, lib.cuModuleLoadData(ctypes.byref(module), image), "cuModuleLoadData")
        weakref.finalize(self, _unload, lib, module.value)
        self._function = ctypes.c_void_p()
        _check(lib, lib.cuModuleGetFunction(ctypes.byref(self._function), module, self.name.encode()), "cuModuleGetFunction")
        self._opt_in_shared_memory()
        sizes = self._param_sizes()
        scratch = sum(1 for f in SCRATCH_FIELDS if f in metadata)
        if len(sizes) != len(params) + scratch:
            raise CudaError(
                f"{self.name}: the binary takes {len(sizes)} parameters; its ABI lists {len(params)} "
                f"runtime params and {scratch} scratch pointers"
            )
        self._marshal: list[Marshal] = [self._marshaller(p, size) for p, size in zip(params, sizes)]
        self._scratch = [ctypes.c_uint64(0) for _ in range(scratch)]

    def _opt_in_shared_memory(self) -> None:
        """Kernels over 48 KiB of shared memory must ask for it (Triton's load_binary does the same)."""
        if self.shared <= _SHARED_STATIC_LIMIT:
            return
        lib, fn = self._lib, self._function
        device, optin, static = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        _check(lib, lib.cuDeviceGet(ctypes.byref(device), self.device_index), "cuDeviceGet")
        _check(lib, lib.cuDeviceGetAttribute(ctypes.byref(optin), _CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device), "cuDeviceGetAttribute")
        if self.shared > optin.value:
            raise CudaError(f"{self.name} needs {self.shared} bytes of shared memory; this device allows {optin.value}")
        _check(lib, lib.cuFuncSetCacheConfig(fn, _CU_FUNC_CACHE_PREFER_SHARED), "cuFuncSetCacheConfig")
        _check(lib, lib.cuFuncGetAttribute(ctypes.byref(static), _CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fn), "cuFuncGetAttribute")
        _check(lib, lib.cuFuncSetAttribute(fn, _CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, optin.value - static.value), "cuFuncSetAttribute")

    def _param_sizes(self) -> list[int]:
        """The byte size of each kernel parameter, as the driver reads them from the binary."""
        lib = self._lib
        if not hasattr(lib, "cuFuncGetParamInfo"):
            raise CudaError("this CUDA driver has no cuFuncGetParamInfo (CUDA 12.4 or newer)")
        sizes: list[int] = []
        offset, size = ctypes.c_size_t(), ctypes.c_size_t()
        while True:
            status = lib.cuFuncGetParamInfo(self._function, len(sizes), ctypes.byref(offset), ctypes.byref(size))
            if status == _CUDA_ERROR_INVALID_VALUE:  # past the last parameter
                return sizes
            _check(lib, status, "cuFuncGetParamInfo")
            sizes.append(size.value)

    def _marshaller(self, param: LaunchParam, size: int) -> Marshal:
        if param.triton_type.startswith("*"):
            if size != _POINTER_SIZE:
                raise CudaError(f"{self.name}: pointer param {param.name} is {size} bytes in the binary")
            return _pointer
        scalar = _SCALAR_TYPES.get((param.triton_type, size))
        if scalar is None:
            raise CudaError(f"{self.name}: param {param.name} ({param.type}) is {size} bytes in the binary")
        return scalar

    def __getitem__(self, grid: Sequence[int]) -> Callable[..., None]:
        def launch(*args: Any) -> None:
            self.launch(grid, args)

        return launch

    def launch(self, grid: Sequence[int], args: Sequence[Any]) -> None:
        import torch

        if len(args) != len(self._marshal):
            raise TypeError(f"{self.name} takes {len(self._marshal)} runtime arguments, got {len(args)}")
        x, y, z = (tuple(grid) + (1, 1, 1))[:3]
        if x * y * z == 0:
            return
        values = [marshal(arg) for marshal, arg in zip(self._marshal, args)] + self._scratch
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        lib = self._lib
        _current_context(lib, self.device_index)
        stream = ctypes.c_void_p(torch.cuda.current_stream(self.device_index).cuda_stream)
        status = lib.cuLaunchKernel(
            self._function, x, y, z, 32 * self.num_warps, 1, 1, self.shared, stream, pointers, None,
        )
        _check(lib, status, f"cuLaunchKernel({self.name})")
