"""Every operator template, end to end in Triton's CPU interpreter: three configs spread
over its space, on several random input sets and on every edge case, against the reference.
The interpreted runs happen in `interpreter_pool`'s spawned workers; this process stays in
Triton's compiled mode for the cross-compilation tests.

Outputs are poisoned first (NaN, or INT_POISON for ints) and every element must be
overwritten, so a kernel that writes nothing, or zeros where the reference has zeros,
cannot pass by accident. The template contract (config spaces, kernel-source rules, ABI
agreement between launches and kernel signatures, cross-compilation for sm_80, sm_90,
sm_100, gfx90a and gfx942) is checked here too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import multiprocessing
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Mapping
from multiprocessing.pool import Pool
from typing import Any

import pytest
import torch

from generator.operators import OPERATORS
from generator.operators.base import (
    INT_POISON,
    Config,
    OperatorTemplate,
    compare,
    config_grid,
    interpreting,
    load_kernel_module,
    poison,
    run,
)
from generator.operators.sigrid_hash import division_magic

# Key params worth covering per operator: the default, the other dtypes and index widths,
# the flags, and a fixed dimension.
PARAMS: dict[str, list[dict[str, str]]] = {
    "sigrid_hash": [{}],
    "jagged_sum": [
        {},
        {"dtype": "bf16", "index_dtype": "int32", "mean": "1"},
        {"dtype": "fp16", "D": "24"},
        {"weighted": "1"},
        {"gather": "1", "index_dtype": "int32", "mean": "1"},
        {"gather": "1", "weighted": "1", "dtype": "bf16"},
    ],
    "jagged_softmax": [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24"}],
    "dlrm_dot_interaction": [{}, {"dtype": "bf16"}, {"dtype": "fp16", "F": "5", "D": "16"}],
}
# Random (not edge) shapes: small, because the interpreter runs every program in Python.
# Operators absent from these tables (PARAMS, RANDOM_DIMS, SPECIALIZATIONS) are covered by
# their own tests/generator/test_op_<name>.py, which reuses this module's pool and helpers.
RANDOM_DIMS: dict[str, dict[str, int]] = {
    "sigrid_hash": {"N": 3000, "M": 40_000_000, "salt": 11},
    "jagged_sum": {"B": 6, "D": 40, "len_max": 30},
    "jagged_softmax": {"B": 6, "D": 40, "len_max": 30, "max_L": 20},
    "dlrm_dot_interaction": {"B": 5, "F": 7, "D": 40},
    "jagged_truncate": {"B": 6, "D": 40, "len_max": 30, "N": 17},
    "jagged_to_padded_dense": {"B": 6, "D": 40, "len_max": 30, "N": 17},
    "dense_to_jagged": {"B": 6, "D": 40, "len_max": 30, "N": 17},
}
SEEDS = (0, 1, 2)


def spread(configs: list[Config]) -> list[Config]:
    """First, middle and last: the space's extremes of block sizes and warps."""
    return [configs[0], configs[len(configs) // 2], configs[-1]]


def with_key_dims(params: Mapping[str, str], dims: Mapping[str, int]) -> dict[str, int]:
    """dims with any dimension the key fixes (D, F) set to the key's value."""
    fixed = {name: int(value) for name, value in params.items() if name in ("D", "F")}
    return {**dims, **fixed}


ConfigFields = tuple[dict[str, int], int, int]


def fields(config: Config) -> ConfigFields:
    """A Config as plain data, to cross into a pool worker (a mapping proxy does not pickle)."""
    return dict(config.constexprs), config.num_warps, config.num_stages


def config_cases(name: str, params_list: list[dict[str, str]]) -> list[Any]:
    """pytest params (params, config fields) for a spread of each param set's configs: the
    matrix every per-operator test file checks against its reference."""
    out = []
    for params in params_list:
        for index, config in enumerate(spread(OPERATORS[name].config_space(params))):
            label = f"{','.join(f'{k}={v}' for k, v in params.items()) or 'default'}-cfg{index}"
            out.append(pytest.param(params, fields(config), id=label))
    return out


def cases() -> list[Any]:
    out = []
    for name, param_sets in PARAMS.items():
        template = OPERATORS[name]
        for params in param_sets:
            for index, config in enumerate(spread(template.config_space(params))):
                label = f"{name}-{','.join(f'{k}={v}' for k, v in params.items()) or 'default'}-cfg{index}"
                out.append(pytest.param(name, params, fields(config), id=label))
    return out


@pytest.fixture(scope="module")
def interpreter_pool() -> Iterator[Pool]:
    """Two spawned workers (the interpreter is CPU-bound; CI has 2 cores) that run Triton's
    interpreter; tasks are this module's `interpreted_*` functions.

    Triton's mode is fixed per process when triton is first imported: triton.language's own
    @jit helpers (tl.zeros, tl.sum, ...) are decorated then, compiled or interpreted, and
    `base.run` refuses a mismatch. This folder also holds cross-compilation tests that need
    the compiled mode in this process, so TRITON_INTERPRET=1 cannot be set process-wide; the
    workers get it in their environment from their first instruction instead. (Not a
    conftest.py fixture: a conftest here would shadow tests/conftest.py, which
    tests/integration imports as `conftest`.)
    """
    previous = os.environ.get("TRITON_INTERPRET")
    # Pool starts its workers in the constructor, and a spawned child copies the environment
    # when it starts, so the variable need only be set around the constructor.
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pool = multiprocessing.get_context("spawn").Pool(processes=min(2, os.cpu_count() or 1))
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


# --- run in the interpreter pool's workers (module-level, so they pickle by reference) -----


def interpreted_run(
    name: str, params: Mapping[str, str], config: ConfigFields, inputs: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(poisoned-then-computed outputs, reference outputs) for one template call."""
    assert interpreting(), "pool worker without TRITON_INTERPRET=1"
    template = OPERATORS[name]
    outputs = template.allocate_outputs(params, inputs)
    poison(outputs)
    run(template, params, Config(*config), inputs, outputs)
    return outputs, template.reference(params, inputs)


def interpreted_check(
    name: str, params: Mapping[str, str], config: ConfigFields, dims: Mapping[str, int], seed: int
) -> tuple[str | None, bool]:
    """(what failed or None, whether every output has a nonzero element)."""
    template = OPERATORS[name]
    outputs, expected = interpreted_run(name, params, config, template.make_inputs(params, dims, seed, "cpu"))
    where = f"{name} {dict(params)} {Config(*config)} dims={dict(dims)} seed={seed}"
    # Outputs beyond the reference's are scratch between a template's launches (dcn's xv).
    if not set(expected) <= set(outputs):
        return f"{where}: outputs {sorted(outputs)} lack reference outputs {sorted(set(expected) - set(outputs))}", False
    for key, reference in expected.items():
        verdict = compare(outputs[key], reference, *template.tolerance(reference.dtype))
        if verdict.unwritten:
            return f"{where} output={key}: poison left ({verdict})", False
        if not verdict.ok:
            return f"{where} output={key}: {verdict}", False
    return None, all(bool(outputs[key].count_nonzero()) for key in expected)


def interpreted_runs_agree(name: str, dims: Mapping[str, int]) -> bool:
    template = OPERATORS[name]
    config = fields(template.config_space({})[0])
    inputs = template.make_inputs({}, dims, 3, "cpu")
    first, _ = interpreted_run(name, {}, config, inputs)
    second, _ = interpreted_run(name, {}, config, inputs)
    return all(torch.equal(first[key], second[key]) for key in first)


def interpreted_sigrid_test_vector(config_index: int) -> list[int]:
    template = OPERATORS["sigrid_hash"]
    config = fields(template.config_space({})[config_index])
    inputs = {"ids": torch.arange(1, 17, dtype=torch.int64), "salt": 0, "M": 100}
    outputs, _ = interpreted_run("sigrid_hash", {}, config, inputs)
    return outputs["out"].tolist()


def interpreted_from_lengths(name: str, lengths: list[int]) -> tuple[list[int], bool]:
    """(row lengths of the built inputs, whether the kernel matched the reference)."""
    module = importlib.import_module(f"generator.operators.{name}")
    args = (lengths, 12, 4) if name == "jagged_softmax" else (lengths, 12)
    inputs = module.inputs_from_lengths({}, *args, seed=5, device="cpu")
    template = OPERATORS[name]
    outputs, expected = interpreted_run(name, {}, fields(template.config_space({})[0]), inputs)
    verdict = compare(outputs["out"], expected["out"], *template.tolerance(expected["out"].dtype))
    return inputs["offsets"].diff().tolist(), verdict.ok


def interpreted_no_rows() -> tuple[int, ...]:
    template = OPERATORS["jagged_sum"]
    inputs = {"values": torch.zeros(0, 8), "offsets": torch.zeros(1, dtype=torch.int64)}
    outputs, _ = interpreted_run("jagged_sum", {}, fields(template.config_space({})[0]), inputs)
    return tuple(outputs["out"].shape)


# --- the tests that use them ----------------------------------------------------------------


@pytest.mark.parametrize("name, params, config", cases())
def test_template_matches_reference(
    interpreter_pool: Pool, name: str, params: dict[str, str], config: ConfigFields
) -> None:
    template = OPERATORS[name]
    random_cases = [(name, params, config, with_key_dims(params, RANDOM_DIMS[name]), seed) for seed in SEEDS]
    edge = [(name, params, config, dims, 7) for dims in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, random_cases + edge, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    # Random inputs must give a non-trivial answer, or the comparison proves little.
    assert all(nonzero for _, nonzero in results[: len(random_cases)])


@pytest.mark.parametrize("name", sorted(RANDOM_DIMS))
def test_results_are_identical_across_runs(interpreter_pool: Pool, name: str) -> None:
    assert interpreter_pool.apply(interpreted_runs_agree, (name, RANDOM_DIMS[name]))


@pytest.mark.parametrize("config_index", [0, -1])
def test_sigrid_hash_kernel_reproduces_the_test_vector(interpreter_pool: Pool, config_index: int) -> None:
    out = interpreter_pool.apply(interpreted_sigrid_test_vector, (config_index,))
    assert out == [60, 54, 54, 9, 4, 91, 11, 67, 79, 2, 25, 92, 98, 83, 66, 2]


@pytest.mark.parametrize(
    "name, lengths", [("jagged_sum", [0, 0, 5, 0, 17, 1]), ("jagged_softmax", [9, 0, 33, 2, 0])]
)
def test_explicit_length_patterns(interpreter_pool: Pool, name: str, lengths: list[int]) -> None:
    """`inputs_from_lengths` builds hand-written ragged patterns; rows come out as asked."""
    built, ok = interpreter_pool.apply(interpreted_from_lengths, (name, lengths))
    assert built == lengths and ok


def test_no_rows_launches_nothing(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_no_rows) == (0, 8)


def test_launching_in_the_wrong_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process imported triton compiled; flipping TRITON_INTERPRET afterwards must fail
    with an explanation rather than deep inside Triton."""
    pytest.importorskip("triton")  # imported now, in the compiled mode, if not before
    if interpreting():
        pytest.skip("this process runs Triton's interpreter")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    template = OPERATORS["jagged_sum"]
    inputs = template.make_inputs({}, {"B": 2, "D": 4}, 0, "cpu")
    with pytest.raises(RuntimeError, match="one mode per process"):
        run(template, {}, template.config_space({})[0], inputs, template.allocate_outputs({}, inputs))


# --- the comparison itself ----------------------------------------------------------------


def test_compare_rejects_zeros_poison_and_drift() -> None:
    expected = torch.tensor([1.0, -2.0, 0.0, 3.0])
    assert compare(expected.clone(), expected, 1e-5, 1e-5).ok
    assert not compare(torch.zeros(4), expected, 1e-5, 1e-5).ok
    unwritten = expected.clone()
    unwritten[1] = float("nan")
    verdict = compare(unwritten, expected, 1e-5, 1e-5)
    assert not verdict.ok and verdict.unwritten == 1
    assert not compare(expected * (1 + 1e-3), expected, 1e-5, 1e-5).ok


def test_compare_integers_exactly_and_counts_the_sentinel() -> None:
    expected = torch.tensor([5, 0, -3])
    left = torch.tensor([5, INT_POISON, -3])
    verdict = compare(left, expected, 0.0, 0.0)
    assert not verdict.ok and verdict.unwritten == 1 and verdict.mismatches == 1


def test_poison_fills_floats_with_nan_and_ints_with_the_sentinel() -> None:
    outputs = {"f": torch.zeros(3, dtype=torch.bfloat16), "i": torch.zeros(2, dtype=torch.int64)}
    poison(outputs)
    assert outputs["f"].isnan().all() and (outputs["i"] == INT_POISON).all()


# --- the template contract ----------------------------------------------------------------


def kernel_constexprs(template: OperatorTemplate) -> dict[str, set[str]]:
    """For each @triton.jit entry point in kernel.py: its constexpr parameter names."""
    tree = ast.parse(template.kernel_source)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = {
                a.arg
                for a in node.args.args
                if a.annotation is not None and "constexpr" in ast.unparse(a.annotation)
            }
    return found


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_kernel_source_is_only_triton(name: str) -> None:
    """kernel.py ships as the source blob: only triton imports, docstrings and @triton.jit
    functions, so it imports and compiles on any host with Triton."""
    tree = ast.parse(OPERATORS[name].kernel_source)
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] in (["triton"], ["triton.language"]), ast.unparse(node)
        elif isinstance(node, ast.FunctionDef):
            assert [ast.unparse(d) for d in node.decorator_list] == ["triton.jit"], node.name
        else:
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant), ast.unparse(node)


SPECIALIZATIONS = {
    "sigrid_hash": [{}, {"dtype": "int64"}],
    "jagged_sum": [{}, {"D": "128"}, {"D": "128", "dtype": "bf16", "mean": "1"}],
    "jagged_softmax": [{}, {"D": "128"}, {"D": "512", "dtype": "bf16"}],
    "dlrm_dot_interaction": [{}, {"D": "128", "F": "26", "dtype": "bf16"}],
    "jagged_truncate": [{}, {"D": "128", "dtype": "bf16", "keep": "last"}],
    "jagged_to_padded_dense": [{}, {"D": "512", "dtype": "bf16"}],
    "dense_to_jagged": [{}, {"D": "512", "dtype": "bf16"}],
}


@pytest.mark.parametrize("name", sorted(SPECIALIZATIONS))
def test_config_space_fits_the_kernel(name: str) -> None:
    """12-60 distinct candidates for production keys, and each launch passes exactly the
    kernel's constexprs (config tunables plus launch-fixed ones) and its runtime args."""
    template = OPERATORS[name]
    entry_points = kernel_constexprs(template)
    for params in SPECIALIZATIONS[name]:
        configs = template.config_space(params)
        assert 12 <= len(configs) <= 60, (params, len(configs))
        assert len(set(configs)) == len(configs)
        dims = with_key_dims(params, RANDOM_DIMS[name])
        inputs = template.make_inputs(params, dims, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        for config in spread(configs):
            for launch in template.launches(params, config, inputs, outputs):
                constexprs = entry_points[launch.entry_point]
                assert set(config.constexprs) | set(launch.constexprs) == constexprs
                assert not set(config.constexprs) & set(launch.constexprs)
                module = load_kernel_module(template.kernel_source_path)
                params_of = inspect.signature(getattr(module, launch.entry_point).fn).parameters
                assert len(launch.args) == len(params_of) - len(constexprs)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_shapes_and_costs(name: str) -> None:
    template = OPERATORS[name]
    assert (template.name, template.version) == (name, 1)
    shapes = template.tuning_shapes({})
    assert shapes
    for shape in shapes:
        assert template.bytes_moved({}, shape.dims) > 0
        flops = template.flops({}, shape.dims)
        assert flops is None or flops > 0
    assert len(template.edge_cases({})) >= 5


def test_every_profiled_kernel_has_a_template_that_takes_its_key_and_shapes() -> None:
    from kreg.profiles import PROFILES

    for model, kernels in PROFILES.items():
        assert kernels, model
        for kernel in kernels:
            template = OPERATORS[kernel.operator.name]
            params = dict(kernel.operator.params)
            assert template.version == kernel.operator.version and template.config_space(params)
            # The template's own shapes name the dims it reads: a profile shape names the same
            # ones (no typo'd dim silently falls back to a default), with values the key allows.
            vocabulary = {name for shape in template.tuning_shapes(params) for name in shape.dims}
            assert kernel.tuning_shapes, f"{model} {kernel.operator}"
            for shape in kernel.tuning_shapes:
                assert set(shape.dims) == vocabulary, f"{model} {kernel.operator} {shape.dims}"
                assert template.bytes_moved(params, shape.dims) > 0  # refuses dims that contradict the key


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_unknown_or_bad_params_are_refused(name: str) -> None:
    template = OPERATORS[name]
    with pytest.raises(ValueError, match="dtpye"):
        template.config_space({"dtpye": "bf16"})
    with pytest.raises(ValueError, match="want one of"):
        template.config_space({"dtype": "fp8"})


def test_key_dims_must_agree_with_dims() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        OPERATORS["jagged_sum"].make_inputs({"D": "128"}, {"B": 2, "D": 64}, 0, "cpu")


def test_config_grid_filters_and_deduplicates() -> None:
    configs = config_grid({"A": (1, 2, 2)}, (4,), (1, 2), keep=lambda c, w, s: c["A"] * s < 4)
    assert [str(c) for c in configs] == [
        "A=1,num_warps=4,num_stages=1",
        "A=1,num_warps=4,num_stages=2",
        "A=2,num_warps=4,num_stages=1",
    ]


def test_listing_operators_imports_neither_torch_nor_triton() -> None:
    code = "import sys, generator.operators as g; assert g.OPERATORS; print('torch' in sys.modules, 'triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_division_magic_divides_every_folded_hash() -> None:
    """x // M == (x * m) >> (64 + s) for 0 <= x < 2^63: extremes, multiples, random."""
    rng = random.Random(0)
    divisors = [2, 3, 7, 100, 128, 40_000_000, 2**31 - 1, 2**31 + 11, 2**62 + 1, 2**63 - 1]
    divisors += [rng.randrange(2, 2**63) for _ in range(200)] + [rng.randrange(2, 2**16) for _ in range(200)]
    for divisor in divisors:
        multiplier, shift = division_magic(divisor)
        assert 0 <= multiplier < 2**64
        k = rng.randrange(1, (2**63 - 1) // divisor + 1)
        numerators = [0, 1, divisor - 1, divisor, 2**63 - 1, k * divisor - 1, k * divisor]
        numerators += [rng.randrange(0, 2**63) for _ in range(50)]
        for x in numerators:
            assert (x * multiplier) >> (64 + shift) == x // divisor, (divisor, x)


# --- cross-compilation --------------------------------------------------------------------

_TRITON_TYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int32: "i32",
    torch.int64: "i64",
}


def signature_of(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "*" + _TRITON_TYPES[value.dtype]
    if isinstance(value, float):
        return "fp32"
    return "i32" if -(2**31) <= value < 2**31 else "i64"


CROSS_TARGETS = [("cuda", 80, 32), ("cuda", 90, 32), ("cuda", 100, 32), ("hip", "gfx90a", 64), ("hip", "gfx942", 64)]


@pytest.mark.parametrize("target", CROSS_TARGETS, ids=["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("name", sorted(RANDOM_DIMS))
def test_kernels_cross_compile(name: str, target: tuple[Any, Any, int]) -> None:
    """The launch ABI derived from a KernelLaunch (arg types in order, constexprs by name)
    compiles to a binary for every target the hardware records name, without a device (the
    operators of their own test files check the same for their default config)."""
    triton = pytest.importorskip("triton")
    if interpreting():
        pytest.skip("this process runs Triton's interpreter; cross-compilation needs the compiled mode")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    template = OPERATORS[name]
    params = {"dtype": "bf16"} if name != "sigrid_hash" else {}
    dims = {**RANDOM_DIMS[name], "salt": 2**40} if name == "sigrid_hash" else RANDOM_DIMS[name]
    inputs = template.make_inputs(params, dims, 0, "cpu")
    outputs = template.allocate_outputs(params, inputs)
    config = template.config_space(params)[len(template.config_space(params)) // 2]
    module = load_kernel_module(template.kernel_source_path)
    for launch in template.launches(params, config, inputs, outputs):
        kernel = getattr(module, launch.entry_point)
        constexprs = {**config.constexprs, **launch.constexprs}
        runtime = iter(launch.args)
        signature = {
            p: "constexpr" if p in constexprs else signature_of(next(runtime)) for p in kernel.arg_names
        }
        source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
        compiled = triton.compile(
            source,
            target=GPUTarget(*target),
            options={"num_warps": config.num_warps, "num_stages": config.num_stages},
        )
        assert compiled.asm["cubin" if target[0] == "cuda" else "hsaco"]
