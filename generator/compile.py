"""Cross-compile Triton kernel source text for any target, and load the result back without compiling.

A worker compiles for arches it does not have (an H100 host building for MI300X), so nothing
here touches a device until `load_compiled`, which runs on the host that launches the kernel.

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

import ast
import hashlib
import json
import linecache
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kreg.model import CandidateStatus, LaunchParam, Toolchain

from generator.hardware import HardwareRecord

if TYPE_CHECKING:
    from triton.compiler import CompiledKernel
    from triton.runtime.jit import JITFunction

CONSTEXPR = "constexpr"
BINARY_FORMATS = {"cuda": "cubin", "hip": "hsaco"}
# Intermediate forms kept for debugging a published kernel; binaries never depend on them.
ASM_KEPT = ("ttgir", "ptx", "amdgcn")
ASM_LIMIT_CHARS = 256 * 1024
MESSAGE_LIMIT_CHARS = 8 * 1024

_KINDS = ("compile_error", "out_of_resources")
# Serialises registering a source with linecache and importing it (see _import_source).
_IMPORT_LOCK = threading.Lock()


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


class LoadError(RuntimeError):
    """A compiled kernel that cannot be made launchable on this host, with the reason."""


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


def launch_params(signature: Mapping[str, str]) -> tuple[LaunchParam, ...]:
    """The runtime parameters, in declaration order: what a caller passes at launch."""
    return tuple(LaunchParam(name, ty) for name, ty in signature.items() if ty != CONSTEXPR)


def compile_for_target(
    source: str,
    entry_point: str,
    signature: Mapping[str, str],
    constexprs: Mapping[str, int | bool],
    target: HardwareRecord,
    num_warps: int,
    num_stages: int,
) -> CompiledBinary:
    """Compile `entry_point` from `source` for `target`, raising CompileError on any failure.

    signature names every parameter of the entry point in declaration order, each with its
    Triton type ("*fp32", "i32", ...) or "constexpr"; constexprs gives a value for exactly the
    "constexpr" ones. A kernel whose shared memory exceeds what the target allows one block is
    out_of_resources: Triton itself only finds that out when loading on the device.
    """
    if target.compile_target is None:
        raise CompileError(
            "compile_error",
            f"no Triton backend compiles for {target.platform}/{target.arch}; run it in the interpreter",
        )
    _check_source(source)
    fn = _entry_point(_import_source(source), entry_point)
    _check_signature(fn, entry_point, signature, constexprs)

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.errors import OutOfResources

    ct = target.compile_target
    src = ASTSource(fn=fn, signature=dict(signature), constexprs=dict(constexprs))
    # FP fusion is pinned so that the binary does not depend on TRITON_DEFAULT_FP_FUSION (3.9
    # warns when it is unset and plans to change its default); True is both versions' default.
    options = {"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": True}
    try:
        kernel = triton.compile(src, target=GPUTarget(ct.backend, ct.arch, ct.warp_size), options=options)
    except OutOfResources as e:
        raise CompileError("out_of_resources", _clip(str(e))) from None
    except Exception as e:  # noqa: BLE001 - every Triton, MLIR or ptxas failure is this candidate's compile error
        raise CompileError("compile_error", _clip(_describe(e))) from None

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
        asm={k: _clip(kernel.asm[k], ASM_LIMIT_CHARS) for k in ASM_KEPT if k in kernel.asm},
    )


def unpack_compiled(binary: bytes, metadata_json: bytes, params: Sequence[LaunchParam]) -> CompiledKernel:
    """Rebuild Triton's CompiledKernel from stored bytes, without compiling and without a device.

    params are the runtime parameters (launch_params of the compile signature, or the
    artifact's LaunchAbi.params): the kernel is launched as `kernel[grid](*runtime_args)`.
    Only the Triton version that built the binary may load it: the metadata's fields and the
    launcher's calling convention change between versions.
    """
    import triton
    from triton.compiler import CompiledKernel

    try:
        metadata: dict[str, Any] = json.loads(metadata_json)
        name, kernel_hash, backend = metadata["name"], metadata["hash"], metadata["target"]["backend"]
        built_with = metadata["triton_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise LoadError(f"metadata is not Triton kernel metadata: {e!r}") from None
    if built_with != triton.__version__:
        raise LoadError(f"binary was built by triton {built_with}; this host has triton {triton.__version__}")
    if backend not in BINARY_FORMATS:
        raise LoadError(f"unknown backend {backend!r} in metadata; known: {', '.join(BINARY_FORMATS)}")
    # CompiledKernel reads both files in its constructor, so the directory can go right after.
    with tempfile.TemporaryDirectory(prefix="kreg-load-") as tmp:
        files = {f"{name}.json": metadata_json, f"{name}.{BINARY_FORMATS[backend]}": binary}
        group = {}
        for file_name, data in files.items():
            path = Path(tmp) / file_name
            path.write_bytes(data)
            group[file_name] = str(path)
        return CompiledKernel(_LaunchSource(params), group, kernel_hash)


def load_compiled(binary: bytes, metadata_json: bytes, params: Sequence[LaunchParam]) -> CompiledKernel:
    """unpack_compiled, then bind to the current device now, so a binary that cannot run here
    (no driver, another arch, too much shared memory) fails at load rather than at first launch.
    """
    from triton.runtime.driver import driver

    kernel = unpack_compiled(binary, metadata_json, params)
    built_for = kernel.metadata.target
    try:
        here = driver.active.get_current_target()
    except Exception as e:  # noqa: BLE001 - RuntimeError ("0 active drivers") or the driver's own import failure
        raise LoadError(
            f"cannot load a {built_for.backend}/{built_for.arch} binary: no GPU driver is active ({e})"
        ) from None
    if (here.backend, here.arch) != (built_for.backend, built_for.arch):
        raise LoadError(
            f"binary is for {built_for.backend}/{built_for.arch}; this device is {here.backend}/{here.arch}"
        )
    try:
        kernel._init_handles()  # what kernel[grid] would do on first launch
    except Exception as e:  # noqa: BLE001 - the driver's load errors and Triton's OutOfResources alike
        raise LoadError(f"loading {kernel.name} on the device failed: {type(e).__name__}: {e}") from None
    return kernel


@dataclass(frozen=True)
class _LaunchSource:
    """Stands in for the ASTSource a CompiledKernel is normally built from: the launchers of 3.6
    and 3.9 read only `signature` (and `constants`, when present) to marshal arguments. Listing
    the runtime params alone makes a launch take runtime arguments alone; the launchers would
    skip constexpr entries anyway."""

    params: Sequence[LaunchParam]

    @property
    def signature(self) -> dict[str, str]:
        return {p.name: p.type for p in self.params}


def _check_source(source: str) -> None:
    """Reject source that would do anything but define kernels when imported.

    Candidate source can come from a proposer (an LLM), and importing a module runs its top
    level, including decorators, defaults and annotations; @triton.jit bodies are compiled by
    Triton, never run by Python. So before anything executes, allow only triton imports,
    docstrings and @triton.jit functions whose defaults are literals and whose annotations are
    names (tl.constexpr). This makes the contract checkable; it is not a sandbox (candidates
    run in an isolated child process for that).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise CompileError("compile_error", f"syntax error at line {e.lineno}: {e.msg}") from None
    for node in tree.body:
        if _is_allowed_top_level(node):
            continue
        raise CompileError(
            "compile_error",
            f"line {node.lineno}: a kernel module may hold only triton imports, docstrings and "
            f"@triton.jit functions, not {type(node).__name__}",
        )


def _is_allowed_top_level(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(alias.name.split(".")[0] == "triton" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "triton"
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    if isinstance(node, ast.FunctionDef):
        args = node.args
        params = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
        annotations = (node.returns, *(p.annotation for p in params if p is not None))
        return (
            len(node.decorator_list) == 1
            and _is_triton_jit(node.decorator_list[0])
            and all(_is_literal(d) for d in (*args.defaults, *args.kw_defaults) if d is not None)
            and all(_is_annotation(a) for a in annotations if a is not None)
        )
    return False


def _is_triton_jit(decorator: ast.expr) -> bool:
    """`@triton.jit` or `@triton.jit(key=literal, ...)`."""
    if isinstance(decorator, ast.Call):
        return (
            _is_triton_jit(decorator.func)
            and not decorator.args
            and all(_is_literal(k.value) for k in decorator.keywords)
        )
    return (
        isinstance(decorator, ast.Attribute)
        and decorator.attr == "jit"
        and isinstance(decorator.value, ast.Name)
        and decorator.value.id == "triton"
    )


def _is_annotation(node: ast.expr) -> bool:
    """A dotted name (tl.constexpr) or a string: evaluating it runs nothing."""
    if isinstance(node, ast.Attribute):
        return _is_annotation(node.value)
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _import_source(source: str) -> ModuleType:
    """Execute the source as a fresh module that inspect.getsource can read.

    @triton.jit reads the function's source with inspect.getsourcelines when it decorates, and
    Triton writes the file name into the binary's line info. The source is therefore served
    from linecache under a name derived from its digest (no temp file): the same source gives
    the same binary on every host, so content digests dedupe. The entry lives only while the
    module executes; the lock keeps two threads importing the same source from racing on it.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    file_name = f"kreg_kernel_{digest}.py"
    module = ModuleType(f"kreg_kernel_{digest}")
    module.__file__ = file_name
    with _IMPORT_LOCK:
        linecache.cache[file_name] = (len(source), None, source.splitlines(keepends=True), file_name)
        try:
            exec(compile(source, file_name, "exec"), module.__dict__)  # noqa: S102 - _check_source vetted the top level
        except Exception as e:  # noqa: BLE001 - an import or decoration failure is the source's error
            raise CompileError("compile_error", _clip(_describe(e))) from None
        finally:
            linecache.cache.pop(file_name, None)
    return module


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


def _describe(error: BaseException) -> str:
    """The error and its causes, outermost first: Triton reports a failure inside a called
    @triton.jit helper as a chain, and only the innermost link names what was wrong."""
    links: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\ncaused by ".join(links)


def _clip(text: str, limit: int = MESSAGE_LIMIT_CHARS) -> str:
    """Bound what goes into candidate logs and artifacts; keep both ends, where the outermost
    context and the innermost cause of an error are."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"
