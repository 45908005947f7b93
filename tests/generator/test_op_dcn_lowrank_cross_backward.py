"""dcn_lowrank_cross_backward@1, the gradient of dcn_lowrank_cross (kreg.ops.backward):
interpreted kernels run in test_operators_interpreter's spawned pool against autograd
through the forward's reference (random inputs and every edge case; fp32, bf16, fp16 and a
key that fixes N, r and layers), bit-identical reruns, the oracle against a hand-derived
backward pass, and cross-compilation of the default config for every target."""

from __future__ import annotations

import inspect
import multiprocessing
import os
from multiprocessing.pool import Pool

import pytest
import torch
from kreg.model import CandidateStatus
from test_op_dcn_lowrank_cross import round_bf16_to_nearest
from test_operators_interpreter import (  # noqa: F401  (interpreter_pool is a fixture)
    config_cases,
    fields,
    interpreted_check,
    interpreted_run,
    interpreter_pool,
    kernel_constexprs,
    signature_of,
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS
from generator.operators.base import load_kernel_module

NAME = "dcn_lowrank_cross_backward"
PARAMS = [{}, {"dtype": "bf16"}, {"dtype": "fp16", "N": "24", "r": "8", "layers": "2"}]
RANDOM_DIMS = {"B": 19, "N": 40, "r": 24, "layers": 3}
ARCHS = ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"]


def interpreted_check_rne(*args: object) -> tuple[str | None, bool]:
    # The interpreter truncates fp32 -> bf16 casts (the GPUs round to nearest even): without
    # this the final rounding of every bf16 gradient could be an ulp low.
    round_bf16_to_nearest()
    return interpreted_check(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(
    interpreter_pool: Pool, params: dict[str, str], config: object
) -> None:
    template = OPERATORS[NAME]
    dims = {**RANDOM_DIMS, **{k: int(v) for k, v in params.items() if k != "dtype"}}
    tasks = [(NAME, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check_rne, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def test_many_row_blocks(interpreter_pool: Pool) -> None:
    """Batches of several row blocks: more than one group of 8 in the grouped tile order,
    several rows of partial column sums for grad_bias, weight-gradient loops of many steps."""
    template = OPERATORS[NAME]
    tasks = [
        (NAME, {}, fields(template.config_space({})[0]), {"B": 530, "N": 40, "r": 24, "layers": 2}, 3),
        (NAME, {"dtype": "bf16"}, fields(template.config_space({})[-1]), {"B": 150, "N": 40, "r": 24, "layers": 3}, 3),
    ]
    results = interpreter_pool.starmap(interpreted_check_rne, tasks, chunksize=1)
    assert not [message for message, _ in results if message]
    assert all(nonzero for _, nonzero in results)


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, expected = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    # The gradients; scratch rows past the batch's row blocks (partial's) stay unwritten.
    return all(torch.equal(first[k], second[k]) for k in expected)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def test_the_oracle_is_the_hand_derived_gradient() -> None:
    """The oracle (autograd through the forward's reference) equals the backward pass
    written out by hand: recompute x_l, xv_l, y_l; then from g = grad_out, per layer from
    the last, dy = g x0, grad_bias = sum_b dy, grad_W = dyᵀ xv, dxv = dy W, grad_V = dxvᵀ x_l,
    grad_x0 += g y_l, g += dxv V; grad_x0 += g at the end."""
    template = OPERATORS[NAME]
    inputs = template.make_inputs({}, {"B": 5, "N": 6, "r": 3, "layers": 3}, 2, "cpu")
    got = template.reference({}, inputs)
    x0, V, W, bias, grad = (inputs[k].double() for k in ("x0", "V", "W", "bias", "grad_out"))
    xs, xvs, ys = [x0], [], []
    for layer in range(3):
        xvs.append(xs[-1] @ V[layer].T)
        ys.append(xvs[-1] @ W[layer].T + bias[layer])
        xs.append(x0 * ys[-1] + xs[-1])
    g, grad_x0 = grad, torch.zeros_like(x0)

    def close(actual: torch.Tensor, expected: torch.Tensor) -> None:  # the oracle is float32
        torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)

    for layer in reversed(range(3)):
        dy = g * x0
        close(got["grad_bias"][layer], dy.sum(0))
        close(got["grad_W"][layer], dy.T @ xvs[layer])
        dxv = dy @ W[layer]
        close(got["grad_V"][layer], dxv.T @ xs[layer])
        grad_x0 = grad_x0 + g * ys[layer]
        g = g + dxv @ V[layer]
    close(got["grad_x0"], grad_x0 + g)


def test_the_forward_checks_apply() -> None:
    with pytest.raises(ValueError, match="want one of"):
        OPERATORS[NAME].config_space({"dtype": "fp8"})
    assert all(c.constexprs["BLOCK_M"] >= 16 for c in OPERATORS[NAME].config_space({"dtype": "bf16"}))


PRODUCTION = {"dtype": "bf16", "N": "3456", "r": "512", "layers": "3"}


def build_for(arch: str) -> str | None:
    """What failed building the default config for `arch` (None: every entry point has a
    binary); run in a compiled-mode child."""
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(PRODUCTION)[0]
    module = f"generator.operators.{NAME}"
    task = CandidateTask(module, PRODUCTION, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    if report.status is not CandidateStatus.PASSED:
        return f"{report.status}: {report.reason}"
    built = {k.entry_point for k in report.kernels if k.binary is not None}
    return None if len(built) == 8 and len(report.kernels) == 8 else f"built only {sorted(built)}"


def test_default_config_cross_compiles() -> None:
    """All eight entry points for every target. They take ~6-9 s a target to compile, so the
    five targets build in two spawned compiled-mode children."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("this process runs Triton's interpreter; cross-compilation needs the compiled mode")
    with multiprocessing.get_context("spawn").Pool(processes=min(2, os.cpu_count() or 1)) as pool:
        failures = dict(zip(ARCHS, pool.map(build_for, ARCHS, chunksize=1)))
    assert not any(failures.values()), failures


def test_launches_fit_the_kernels() -> None:
    """58 distinct configs for a production key, and each launch passes exactly its kernel's
    runtime args, with no constexpr beyond the config's; one entry point keeps one set of
    argument types across the layers (a binary is built once per entry point)."""
    template = OPERATORS[NAME]
    configs = template.config_space(PRODUCTION)
    assert 8 <= len(configs) <= 60 and len(set(configs)) == len(configs)
    entry_points = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in PARAMS:
        dims = {**RANDOM_DIMS, **{k: int(v) for k, v in params.items() if k != "dtype"}}
        inputs = template.make_inputs(params, dims, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        types: dict[str, list[str]] = {}
        for config in spread(template.config_space(params)):
            for launch in template.launches(params, config, inputs, outputs):
                assert not launch.constexprs and set(config.constexprs) == entry_points[launch.entry_point]
                parameters = inspect.signature(getattr(module, launch.entry_point).fn).parameters
                assert len(launch.args) == len(parameters) - len(config.constexprs)
                kinds = [signature_of(a) if isinstance(a, torch.Tensor) else "int" for a in launch.args]
                assert types.setdefault(launch.entry_point, kinds) == kinds, launch.entry_point
