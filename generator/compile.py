"""Cross-compile Triton kernel source text for any target (loading the result is kreg.loader's).

A worker compiles for arches it does not have (an H100 host building for MI300X): nothing
here touches a device.

Triton 3.6 and 3.9 (the versions in use) agree on everything this module calls:
`ASTSource(fn, signature, constexprs)` with constexprs keyed by parameter name, a signature
naming every parameter (constexpr ones as "constexpr"), `triton.compile(src, target, options)`,
`CompiledKernel(src, metadata_group, hash)` reading the cache layout `<name>.json` +
`<name>.<cubin|hsaco>`, and `CompiledKernel._init_handles()` binding it to the device. Where
they differ (3.6 builds its launcher from generated C, 3.9 uses a prebuilt one; 3.9 takes the
warp size from the metadata, 3.6 from the device; 3.9 defaults FP fusion through a knob that
warns) the code below passes the same inputs to both, so no version switch is needed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kreg.loader import BINARY_FORMATS, SourceError, check_source, clip, describe_error, import_source
from kreg.model import DIVISIBILITY, CandidateStatus, LaunchParam, Toolchain

from generator.hardware import HardwareRecord

if TYPE_CHECKING:
    from triton.runtime.jit import JITFunction

CONSTEXPR = "constexpr"
# Intermediate forms kept for debugging a published kernel; binaries never depend on them.
ASM_KEPT = ("ttgir", "ptx", "amdgcn")
ASM_LIMIT_CHARS = 256 * 1024

_KINDS = ("compile_error", "out_of_resources")


class CompileError(Exception):
    """A candidate that did not compile, or compiled into more than its target can hold.

    Raised in the child process that compiles a candidate and re-raised in the worker, so it
    must survive pickling with its fields (Exception's default pickling keeps only args).
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"CompileError kind {kind!r} is not one of {', '.join(_KINDS)}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[type[CompileError], tuple[str, str]]:
        return (CompileError, (self.kind, self.message))

    @property
    def status(self) -> CandidateStatus:
        """The candidate-log status this failure is recorded under."""
        return CandidateStatus[self.kind.upper()]


@dataclass(frozen=True)
class CompiledBinary:
    """What a compile produces and an artifact stores: the binary plus Triton's own metadata.

    metadata_json is byte-for-byte the `<name>.json` Triton wrote to its cache, which is what
    `load_compiled` needs (with the launch params) to rebuild a launchable kernel.
    """

    binary: bytes
    binary_format: str
    metadata_json: bytes
    shared_memory_bytes: int
    num_warps: int
    num_stages: int
    triton_version: str
    asm: Mapping[str, str] = field(default_factory=dict)

    @property
    def toolchain(self) -> Toolchain:
        backend = next(b for b, fmt in BINARY_FORMATS.items() if fmt == self.binary_format)
        return Toolchain(triton_version=self.triton_version, backend=backend)


def launch_params(signature: Mapping[str, str], divisible: Collection[str] = ()) -> tuple[LaunchParam, ...]:
    """The runtime parameters, in declaration order: what a caller passes at launch; those in
    `divisible` typed with the ":16" the binary assumes (kreg.model.LaunchParam)."""
    return tuple(
        LaunchParam(name, f"{ty}:{DIVISIBILITY}" if name in divisible else ty)
        for name, ty in signature.items()
        if ty != CONSTEXPR
    )


def compile_for_target(
    source: str,
    entry_point: str,
    signature: Mapping[str, str],
    constexprs: Mapping[str, int | bool],
    target: HardwareRecord,
    num_warps: int,
    num_stages: int,
    divisible: Collection[str] = (),
) -> CompiledBinary:
    """Compile `entry_point` from `source` for `target`, raising CompileError on any failure.

    signature names every parameter of the entry point in declaration order, each with its
    Triton type ("*fp32", "i32", ...) or "constexpr"; constexprs gives a value for exactly the
    "constexpr" ones. `divisible` names the runtime parameters the binary may assume are
    multiples of 16 (a pointer's address, an int's value), as Triton's JIT specializes them:
    without that, address arithmetic is not known to be aligned and no load or store
    vectorizes. A kernel whose shared memory exceeds what the target allows one block is
    out_of_resources: Triton itself only finds that out when loading on the device.
    """
    if target.compile_target is None:
        raise CompileError(
            "compile_error",
            f"no Triton backend compiles for {target.platform}/{target.arch}; run it in the interpreter",
        )
    try:
        check_source(source)
        module = import_source(source)
    except SourceError as e:
        raise CompileError("compile_error", str(e)) from None
    fn = _entry_point(module, entry_point)
    _check_signature(fn, entry_point, signature, constexprs)

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.errors import OutOfResources

    ct = target.compile_target
    # Keyed by the parameter's position among all of them, constexprs included (Triton 3.6 and
    # 3.9 alike; triton/tools/compile.py builds the same).
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", DIVISIBILITY]] for name in divisible}
    src = ASTSource(fn=fn, signature=dict(signature), constexprs=dict(constexprs), attrs=attrs)
    # FP fusion is pinned so that the binary does not depend on TRITON_DEFAULT_FP_FUSION (3.9
    # warns when it is unset and plans to change its default); True is both versions' default.
    options = {"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": True}
    try:
        kernel = triton.compile(src, target=GPUTarget(ct.backend, ct.arch, ct.warp_size), options=options)
    except OutOfResources as e:
        raise CompileError("out_of_resources", clip(str(e))) from None
    except Exception as e:  # noqa: BLE001 - every Triton, MLIR or ptxas failure is this candidate's compile error
        raise CompileError("compile_error", clip(describe_error(e))) from None

    shared = int(kernel.metadata.shared)
    if shared > target.max_shared_memory_bytes:
        raise CompileError(
            "out_of_resources",
            f"needs {shared} bytes of shared memory per block; {target.name} ({target.arch}) "
            f"allows {target.max_shared_memory_bytes}",
        )
    metadata_path = next(Path(p) for name, p in kernel.metadata_group.items() if name.endswith(".json"))
    return CompiledBinary(
        binary=bytes(kernel.kernel),
        binary_format=BINARY_FORMATS[ct.backend],
        metadata_json=metadata_path.read_bytes(),
        shared_memory_bytes=shared,
        num_warps=int(kernel.metadata.num_warps),
        num_stages=int(kernel.metadata.num_stages),
        triton_version=triton.__version__,
        asm={k: clip(kernel.asm[k], ASM_LIMIT_CHARS) for k in ASM_KEPT if k in kernel.asm},
    )


def _entry_point(module: ModuleType, entry_point: str) -> JITFunction:
    from triton.runtime.jit import JITFunction

    fn = getattr(module, entry_point, None)
    if not isinstance(fn, JITFunction):
        kernels = sorted(name for name, value in vars(module).items() if isinstance(value, JITFunction))
        raise CompileError(
            "compile_error",
            f"entry point {entry_point!r} is not a @triton.jit function; the source defines {kernels}",
        )
    return fn


def _check_signature(
    fn: JITFunction, entry_point: str, signature: Mapping[str, str], constexprs: Mapping[str, int | bool]
) -> None:
    """Fail with the mismatch spelled out, rather than deep inside Triton's code generator."""
    if list(signature) != fn.arg_names:
        raise CompileError(
            "compile_error",
            f"signature names {list(signature)}; {entry_point} takes {fn.arg_names} (same names, same order)",
        )
    declared = [p.name for p in fn.params if p.is_constexpr and signature[p.name] != CONSTEXPR]
    if declared:
        raise CompileError(
            "compile_error", f"{declared} are tl.constexpr in {entry_point}; type them 'constexpr'"
        )
    wanted = {name for name, ty in signature.items() if ty == CONSTEXPR}
    if wanted != set(constexprs):
        raise CompileError(
            "compile_error",
            f"constexprs must give exactly {sorted(wanted)}; got {sorted(constexprs)}",
        )
