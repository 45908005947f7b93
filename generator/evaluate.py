"""Evaluating one candidate inside the isolated child: compile for the target, verify, time.

Runs only in the evaluator child (generator.isolation), which is spawned with
TRITON_INTERPRET=1 when the worker lacks the target hardware. Verification follows
DESIGN.md §6: fresh random inputs per seed, every ragged edge case, outputs poisoned and
fenced by canaries (an unwritten element or an out-of-bounds write fails), relative error
against the reference, and a second run that must give bit-identical results. On the
target device the binary that would be published is what gets verified and timed.
"""

from __future__ import annotations

import ast
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from kreg.loader import load_compiled
from kreg.model import CandidateStatus, LaunchParam, TuningShape
from kreg.ops.launch import triton_type
from kreg.ops.loaded import binary_mismatch, divisible

from generator.compile import CONSTEXPR, CompiledBinary, CompileError, compile_for_target, launch_params
from generator.hardware import record_for
from generator.operators import load_template
from generator.operators.backward import backward_pass
from generator.operators.base import Config, KernelLaunch, OperatorTemplate, compare, launch_source, poison, run, with_source

if TYPE_CHECKING:
    import torch

GUARD_ELEMENTS = 1024


@dataclass(frozen=True)
class CandidateTask:
    template_module: str  # dotted path of the module holding the operator's TEMPLATE
    params: Mapping[str, str]
    config: Config
    platform: str
    arch: str
    on_device: bool
    # Triton compiles or interprets, one mode per process: off the target hardware a candidate
    # is built in a compiling child and verified in an interpreting one; on it, one child
    # does everything ("full").
    stage: Literal["build", "verify", "full"] = "full"
    seeds: tuple[int, ...] = (0, 1)
    time_shapes: tuple[TuningShape, ...] = ()
    # A proposer's kernel source (vetted by generator.sandbox) in place of the template's.
    kernel_source: str | None = None


@dataclass(frozen=True)
class PeerTask:
    """Time the PyTorch reference eagerly and under torch.compile on the tuning shapes."""

    template_module: str
    params: Mapping[str, str]
    shapes: tuple[TuningShape, ...]


@dataclass(frozen=True)
class BuiltKernel:
    """One launch's kernel as it will be published: binary (None on targets Triton cannot
    compile for) plus the runtime parameter list and the constexprs baked into it."""

    entry_point: str
    params: tuple[LaunchParam, ...]
    constexprs: tuple[tuple[str, str], ...]
    binary: CompiledBinary | None


@dataclass(frozen=True)
class ShapeTiming:
    dims: Mapping[str, int]
    median_ms: float
    p20_ms: float
    p80_ms: float


@dataclass(frozen=True)
class CandidateReport:
    status: CandidateStatus
    reason: str = ""
    max_relative_error: float = 0.0
    kernels: tuple[BuiltKernel, ...] = ()
    timings: tuple[ShapeTiming, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PeerTiming:
    dims: Mapping[str, int]
    eager_ms: float
    compile_ms: float


@dataclass(frozen=True)
class ProbeTask:
    """What accelerator this host has, and its measured copy bandwidth."""


@dataclass(frozen=True)
class DeviceInfo:
    platform: str
    arch: str
    name: str
    copy_bytes_per_s: float  # a large device-to-device copy, bytes read + written
    # A large bf16 matrix product on random data: the ceiling compute-bound kernels are held to.
    matmul_flops_per_s: float = 0.0


def handle(task: CandidateTask | PeerTask | ProbeTask) -> CandidateReport | tuple[PeerTiming, ...] | DeviceInfo | None:
    """The evaluator child's entry point (IsolatedRunner handler)."""
    if isinstance(task, PeerTask):
        return time_peers(task)
    if isinstance(task, ProbeTask):
        return probe()
    return evaluate(task)


def probe() -> DeviceInfo | None:
    """The local GPU, or None. Probed in a child so the worker itself never holds a context."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    if torch.version.hip:
        platform, arch = "amd", props.gcnArchName.split(":")[0]
    else:
        platform, arch = "nvidia", f"sm_{props.major}{props.minor}"
    return DeviceInfo(platform, arch, props.name, _copy_bytes_per_s(), _matmul_flops_per_s())


def _copy_bytes_per_s() -> float:
    """A 256 MiB device-to-device copy, bytes read plus written."""
    import torch

    src = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() / (_bench(lambda: dst.copy_(src))[0] / 1e3)


def _matmul_flops_per_s(n: int = 8192) -> float:
    """An n x n x n bf16 matrix product on random data (zeros run faster than real data)."""
    import torch

    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    return 2 * n**3 / (_bench(lambda: a @ b)[0] / 1e3)


# ---------------------------------------------------------------- candidates


def evaluate(task: CandidateTask) -> CandidateReport:
    template = load_template(task.template_module)
    if task.kernel_source is not None:
        template = with_source(template, task.kernel_source)
    device = "cuda" if task.on_device else "cpu"
    kernels: tuple[BuiltKernel, ...] = ()
    if task.stage in ("build", "full"):
        try:
            kernels = build(template, task, device)
        except CompileError as e:
            return CandidateReport(e.status, e.message)
        if task.stage == "build":
            return CandidateReport(CandidateStatus.PASSED, "built", kernels=kernels)
    launcher = _binary_launcher(kernels) if task.on_device else None
    verdict = verify(template, task, device, launcher)
    if verdict.status is not CandidateStatus.PASSED:
        return replace(verdict, kernels=kernels)
    timings = time_candidate(template, task, launcher) if task.on_device else ()
    return CandidateReport(CandidateStatus.PASSED, "", verdict.max_relative_error, kernels, timings)


def sample_launches(template: OperatorTemplate, task: CandidateTask, device: str) -> list[KernelLaunch]:
    """Launches for every edge case and, on the device, the largest tuning shape: together
    they fix each kernel's signature (see `build`)."""
    samples = [dict(d) for d in template.edge_cases(task.params)]
    if task.on_device and task.time_shapes:
        samples.append(dict(max((s.dims for s in task.time_shapes), key=lambda d: template.bytes_moved(task.params, d))))
    launches = []
    for dims in samples:
        inputs = inputs_for(task, template, dims, 0, device)
        launches += template.launches(task.params, task.config, inputs, template.allocate_outputs(task.params, inputs))
    return launches


def build(template: OperatorTemplate, task: CandidateTask, device: str) -> tuple[BuiltKernel, ...]:
    """Compile each entry point once for the target. An int parameter is typed i64 when any
    sample needs it, else i32 (what Triton's JIT would pick); a parameter whose argument is a
    multiple of 16 in every sample (an aligned pointer, a stride of a key-fixed width) is
    compiled as one, as the JIT specializes it, so that accesses vectorize. The loader
    refuses a launch that breaks either assumption and JIT-compiles the source instead."""
    record = record_for(task.platform, task.arch)
    source = template.kernel_source
    signatures: dict[str, dict[str, str]] = {}
    divisible_of: dict[str, set[str]] = {}
    constexprs_of: dict[str, dict[str, Any]] = {}
    for launch in sample_launches(template, task, device):
        constexprs = {**task.config.constexprs, **launch.constexprs}
        signature = signature_for(source, launch.entry_point, launch.args, constexprs)
        seen = signatures.setdefault(launch.entry_point, signature)
        for name, ty in signature.items():
            if seen[name] != ty:
                seen[name] = _wider(seen[name], ty, f"{launch.entry_point}.{name}")
        runtime = [name for name, ty in signature.items() if ty != CONSTEXPR]
        aligned = {name for name, arg in zip(runtime, launch.args) if divisible(arg)}
        divisible_of[launch.entry_point] = divisible_of.get(launch.entry_point, aligned) & aligned
        constexprs_of.setdefault(launch.entry_point, constexprs)
    built = []
    for entry_point, signature in signatures.items():
        constexprs, aligned = constexprs_of[entry_point], divisible_of[entry_point]
        binary = None
        if record.compile_target is not None:
            binary = compile_for_target(
                source, entry_point, signature, constexprs, record, task.config.num_warps, task.config.num_stages, aligned
            )
        params = launch_params(signature, aligned)
        built.append(BuiltKernel(entry_point, params, tuple((k, repr(v)) for k, v in constexprs.items()), binary))
    return tuple(built)


def _wider(a: str, b: str, where: str) -> str:
    if {a, b} == {"i32", "i64"}:
        return "i64"
    raise CompileError("compile_error", f"{where} is {a} in one sample and {b} in another")


def parameter_names(source: str, entry_point: str) -> list[str]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return [a.arg for a in node.args.args]
    raise CompileError("compile_error", f"no function {entry_point!r} in the kernel source")


def signature_for(source: str, entry_point: str, args: tuple[Any, ...], constexprs: Mapping[str, Any]) -> dict[str, str]:
    """Every parameter of the entry point in order: "constexpr" for the fixed ones, the
    Triton type of the matching runtime argument for the rest."""
    names = parameter_names(source, entry_point)
    runtime = [n for n in names if n not in constexprs]
    if len(runtime) != len(args):
        raise CompileError("compile_error", f"{entry_point}: {len(args)} runtime args for parameters {runtime}")
    types = dict(zip(runtime, (triton_type(a) for a in args)))
    return {n: "constexpr" if n in constexprs else types[n] for n in names}


Launcher = Callable[[OperatorTemplate, Mapping[str, str], Config, Mapping[str, Any], Mapping[str, Any]], None]


def _binary_launcher(kernels: tuple[BuiltKernel, ...]) -> Launcher:
    """Launch through the compiled binaries, exactly as a serving host will: a launch a
    binary cannot take (kreg.ops.loaded.binary_mismatch: an int past i32, an argument not the
    multiple of 16 it assumes) runs the kernel's source through Triton's JIT instead."""
    built = {k.entry_point: k for k in kernels if k.binary is not None}
    loaded = {name: load_compiled(k.binary.binary, k.binary.metadata_json, k.params) for name, k in built.items() if k.binary}
    baked = {name: {c: ast.literal_eval(v) for c, v in k.constexprs} for name, k in built.items()}

    def launch(template: OperatorTemplate, params: Mapping[str, str], config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        for launch in template.launches(params, config, inputs, outputs):
            if math.prod(launch.grid) == 0:
                continue
            name = launch.entry_point
            if binary_mismatch(built[name].params, baked[name], launch) is None:
                grid = tuple(launch.grid) + (1,) * (3 - len(launch.grid))
                loaded[name][grid](*launch.args)
            else:
                launch_source(template, config, launch)

    return launch


# ---------------------------------------------------------------- verification


def _guarded_outputs(template: OperatorTemplate, params: Mapping[str, str], inputs: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """Outputs as views into larger buffers whose margins hold a canary: a write just past
    either end of an output changes a canary and fails the candidate."""
    import torch

    outputs: dict[str, torch.Tensor] = {}
    fences = []
    for name, t in template.allocate_outputs(params, inputs).items():
        buf = torch.empty(t.numel() + 2 * GUARD_ELEMENTS, dtype=t.dtype, device=t.device)
        canary = torch.full((GUARD_ELEMENTS,), -7777 if not t.is_floating_point() else -7777.0, dtype=t.dtype, device=t.device)
        buf[:GUARD_ELEMENTS] = canary
        buf[-GUARD_ELEMENTS:] = canary
        outputs[name] = buf[GUARD_ELEMENTS : GUARD_ELEMENTS + t.numel()].view(t.shape)
        fences.append((name, buf, canary))
    return outputs, fences


def _fences_intact(fences: list[tuple[str, torch.Tensor, torch.Tensor]]) -> str | None:
    import torch

    for name, buf, canary in fences:
        if not (torch.equal(buf[:GUARD_ELEMENTS], canary) and torch.equal(buf[-GUARD_ELEMENTS:], canary)):
            return f"wrote out of bounds of output {name!r}"
    return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    if a.is_floating_point():
        return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return bool(torch.equal(a, b))


def verification_cases(template: OperatorTemplate, task: CandidateTask) -> list[tuple[int, dict[str, int]]]:
    """(seed, dims): every edge case under every seed; on the device also the first tuning
    shape, at production size."""
    cases = [(seed, dict(dims)) for seed in task.seeds for dims in template.edge_cases(task.params)]
    if task.on_device and task.time_shapes:
        cases.append((task.seeds[0] + 100, dict(task.time_shapes[0].dims)))
    return cases


_INPUTS: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
_INPUTS_KEPT = 6
# Inputs smaller than this are drawn again each time rather than kept: the edge cases (a
# dozen per job) would otherwise push the production-size batches out of the cache, and
# every candidate would wait seconds for them again.
_INPUTS_KEPT_FROM_BYTES = 16 << 20


def inputs_for(task: CandidateTask | PeerTask, template: OperatorTemplate, dims: Mapping[str, int], seed: int, device: str) -> dict[str, Any]:
    """The inputs for (dims, seed), the large ones kept across the candidates of a job:
    drawing a production-size jagged batch takes seconds, and every candidate sees the same
    inputs anyway. Kernels only write their outputs, so sharing is safe."""
    key = (task.template_module, tuple(sorted(task.params.items())), tuple(sorted(dims.items())), seed, device)
    if key in _INPUTS:
        _INPUTS.move_to_end(key)
        return _INPUTS[key]
    inputs = template.make_inputs(task.params, dims, seed, device)
    size = sum(v.numel() * v.element_size() for v in inputs.values() if hasattr(v, "element_size"))
    if size >= _INPUTS_KEPT_FROM_BYTES:
        _INPUTS[key] = inputs
        while len(_INPUTS) > _INPUTS_KEPT:
            _INPUTS.popitem(last=False)
    return inputs


def verify(template: OperatorTemplate, task: CandidateTask, device: str, launcher: Launcher | None) -> CandidateReport:
    import torch

    launch = launcher or run
    worst = 0.0
    for seed, dims in verification_cases(template, task):
        inputs = inputs_for(task, template, dims, seed, device)
        expected = template.reference(task.params, inputs)
        results = []
        for attempt in range(2):
            outputs, fences = _guarded_outputs(template, task.params, inputs)
            poison(outputs)
            launch(template, task.params, task.config, inputs, outputs)
            if device == "cuda":
                torch.cuda.synchronize()
            if (oob := _fences_intact(fences)) is not None:
                return CandidateReport(CandidateStatus.WRONG_RESULT, f"{oob} (dims {dims}, seed {seed})")
            results.append({k: v.clone() for k, v in outputs.items()})
        for name, want in expected.items():
            got = results[0][name]
            rtol, atol = template.tolerance(want.dtype)
            verdict = compare(got, want, rtol, atol)
            worst = max(worst, verdict.max_relative_error)
            if not verdict.ok:
                what = f"{verdict.unwritten} elements never written" if verdict.unwritten else f"{verdict.mismatches} elements wrong"
                return CandidateReport(
                    CandidateStatus.WRONG_RESULT,
                    f"output {name!r}: {what}, max rel err {verdict.max_relative_error:.3g} > {rtol:g} (dims {dims}, seed {seed})",
                    verdict.max_relative_error,
                )
            if not _same(results[0][name], results[1][name]):
                return CandidateReport(CandidateStatus.WRONG_RESULT, f"output {name!r} differs between two runs (dims {dims}): a race")
    return CandidateReport(CandidateStatus.PASSED, "", worst)


# ---------------------------------------------------------------- timing (target device only)


def _bench(fn: Callable[[], object]) -> tuple[float, float, float]:
    """(median, p20, p80) ms; do_bench warms up, flushes L2 between runs and times with events."""
    from triton.testing import do_bench

    median, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    return float(median), float(p20), float(p80)


def time_candidate(template: OperatorTemplate, task: CandidateTask, launcher: Launcher | None) -> tuple[ShapeTiming, ...]:
    assert launcher is not None
    timings = []
    for shape in task.time_shapes:
        inputs = inputs_for(task, template, shape.dims, 0, "cuda")
        outputs = template.allocate_outputs(task.params, inputs)
        median, p20, p80 = _bench(lambda: launcher(template, task.params, task.config, inputs, outputs))
        timings.append(ShapeTiming(dict(shape.dims), median, p20, p80))
    return tuple(timings)


def time_peers(task: PeerTask) -> tuple[PeerTiming, ...]:
    import torch

    template = load_template(task.template_module)
    timings = []
    for shape in task.shapes:
        inputs = inputs_for(task, template, shape.dims, 0, "cuda")
        # A fresh compile per shape, as a model compiled for that shape would get; otherwise
        # runtime scalars (max_L) hit dynamo's recompile limit and it silently runs eager.
        torch._dynamo.reset()
        if template.forward is not None:  # a gradient kernel: against PyTorch's backward pass
            eager_fn = backward_pass(template.forward, task.params, inputs, compiled=False)
            compiled_fn = backward_pass(template.forward, task.params, inputs, compiled=True)
        else:
            eager_fn = lambda: template.reference(task.params, inputs)  # noqa: E731
            compiled_op = torch.compile(lambda inputs: template.reference(task.params, inputs), dynamic=False)
            compiled_fn = lambda: compiled_op(inputs)  # noqa: E731
        compiled_fn()  # compile outside the timed region
        compiled_fn()
        timings.append(PeerTiming(dict(shape.dims), _bench(eager_fn)[0], _bench(compiled_fn)[0]))
    return tuple(timings)
