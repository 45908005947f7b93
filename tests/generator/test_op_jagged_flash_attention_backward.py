"""jagged_flash_attention_backward@1, the gradient of jagged_flash_attention (kreg.ops.backward):
interpreted kernels run in test_operators_interpreter's spawned pool against autograd through
the forward's reference (random inputs and every edge case; fp32, bf16 with int32 offsets,
fp16 with a fixed odd width), a normwise check of each gradient on its own scale, bit-identical
reruns, the oracle against a hand-derived gradient, the launches against the kernels'
signatures, and cross-compilation of the default config for every target."""

from __future__ import annotations

import inspect
import math
from multiprocessing.pool import Pool

import pytest
import torch
from kreg.model import CandidateStatus
from test_operators_interpreter import (  # noqa: F401  (interpreter_pool is a fixture)
    config_cases,
    fields,
    interpreted_check,
    interpreted_run,
    interpreter_pool,
    kernel_constexprs,
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS
from generator.operators.base import load_kernel_module

NAME = "jagged_flash_attention_backward"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24"}]
RANDOM_DIMS = {"B": 4, "D": 32, "len_max": 40, "N": 24}


def dims_for(params: dict[str, str]) -> dict[str, int]:
    return {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(
    interpreter_pool: Pool, params: dict[str, str], config: object
) -> None:
    template = OPERATORS[NAME]
    tasks = [(NAME, params, config, dims_for(params), seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_normwise_errors(params: dict[str, str]) -> dict[str, float]:
    """||kernel - oracle|| / ||oracle|| per gradient, rows longer than N included."""
    template = OPERATORS[NAME]
    dims = {**dims_for(params), "len_min": 10, "len_max": 40}
    inputs = template.make_inputs(params, dims, 2, "cpu")
    outputs, expected = interpreted_run(NAME, params, fields(template.config_space(params)[0]), inputs)
    errors = {}
    for name, want in expected.items():
        errors[name] = float((outputs[name].double() - want.double()).norm() / want.double().norm())
    return errors


@pytest.mark.parametrize("params, bound", [({}, 1e-5), ({"dtype": "fp16"}, 2e-3), ({"dtype": "bf16"}, 2e-2)])
def test_each_gradient_is_close_on_its_own_scale(
    interpreter_pool: Pool, params: dict[str, str], bound: float
) -> None:
    """grad_v is ~1/(N sqrt(n)) of the others (softmax weights ~1/n, the forward's 1/N), so the
    elementwise tolerance's atol, sized for grad_q and grad_k, says little about it: a
    normwise error per gradient does. Measured: ~1e-6 fp32, 4e-4 fp16, 7e-3 bf16 (the input
    dtype's rounding of P and dS, see the template's tolerance)."""
    errors = interpreter_pool.apply(interpreted_normwise_errors, (params,))
    assert set(errors) == {"grad_q", "grad_k", "grad_v"}
    assert all(error < bound for error in errors.values()), errors


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    configs = template.config_space(params)
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, fields(configs[len(configs) // 2]), inputs)
    second, _ = interpreted_run(NAME, params, fields(configs[len(configs) // 2]), inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def naive_gradient(inputs: dict[str, object]) -> dict[str, torch.Tensor]:
    """Loops in float64 over each row's n = min(len, N) items: P = softmax(Q Kᵀ), O = P V / N,
    dV = Pᵀ dO / N, dP = dO Vᵀ / N, dS_ij = P_ij (dP_ij - sum_l P_il dP_il), dQ = dS K,
    dK = dSᵀ Q; items past N get 0."""
    q, k, v, g = (inputs[name].double() for name in ("q", "k", "v", "grad_out"))  # type: ignore[union-attr]
    offsets, max_len = inputs["offsets"].tolist(), inputs["max_N"]  # type: ignore[union-attr]
    grads = {name: torch.zeros_like(q) for name in ("grad_q", "grad_k", "grad_v")}
    for b in range(len(offsets) - 1):
        start = offsets[b]
        n = min(offsets[b + 1] - start, max_len)
        for i in range(start, start + n):
            scores = [float(q[i] @ k[j]) for j in range(start, start + n)]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            p = [w / sum(weights) for w in weights]
            dp = [float(g[i] @ v[j]) / max_len for j in range(start, start + n)]
            delta = sum(pj * dpj for pj, dpj in zip(p, dp))
            for j in range(n):
                ds = p[j] * (dp[j] - delta)
                grads["grad_q"][i] += ds * k[start + j]
                grads["grad_k"][start + j] += ds * q[i]
                grads["grad_v"][start + j] += p[j] / max_len * g[i]
    return grads


def test_the_oracle_is_the_hand_derived_gradient() -> None:
    template = OPERATORS[NAME]
    for params, dims in (
        ({}, {"B": 5, "D": 3, "N": 4, "len_min": 0, "len_max": 7, "empty_every": 3}),
        ({"index_dtype": "int32"}, {"B": 3, "D": 5, "N": 1, "len_min": 1, "len_max": 3}),
    ):
        inputs = template.make_inputs(params, dims, 1, "cpu")
        got, want = template.reference(params, inputs), naive_gradient(inputs)
        offsets = inputs["offsets"].tolist()
        # Truncation is exercised: some row is longer than N.
        assert any(offsets[b + 1] - offsets[b] > dims["N"] for b in range(dims["B"]))
        for name in want:
            assert got[name].dtype == torch.float32
            torch.testing.assert_close(got[name].double(), want[name], rtol=1e-5, atol=1e-6)


def test_launches_fit_the_kernels() -> None:
    """8-60 distinct configs for the production keys; each launch passes
    exactly its kernel's constexprs and runtime args; the forward's checks apply."""
    template = OPERATORS[NAME]
    constexprs_of = kernel_constexprs(template)
    module = load_kernel_module(template.kernel_source_path)
    for params in ({}, {"D": "128", "dtype": "bf16"}, {"D": "64", "dtype": "fp16", "index_dtype": "int32"}):
        configs = template.config_space(params)
        assert 8 <= len(configs) <= 60 and len(set(configs)) == len(configs), (params, len(configs))
        inputs = template.make_inputs(params, dims_for(params), 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        for config in spread(configs):
            launches = template.launches(params, config, inputs, outputs)
            assert [launch.entry_point for launch in launches] == [
                "jagged_flash_attention_backward_dq_kernel",
                "jagged_flash_attention_backward_dkdv_kernel",
            ]
            for launch in launches:
                constexprs = constexprs_of[launch.entry_point]
                assert set(config.constexprs) | set(launch.constexprs) == constexprs
                assert not set(config.constexprs) & set(launch.constexprs)
                signature = inspect.signature(getattr(module, launch.entry_point).fn).parameters
                assert len(launch.args) == len(signature) - len(constexprs)
    with pytest.raises(ValueError, match="dtpye"):
        template.config_space({"dtpye": "bf16"})


def test_the_plan_refuses_what_the_kernels_cannot_address() -> None:
    template = OPERATORS[NAME]
    inputs = template.make_inputs({}, RANDOM_DIMS, 0, "cpu")
    config = template.config_space({})[0]
    outputs = template.allocate_outputs({}, inputs)
    with pytest.raises(ValueError, match="unit stride"):
        template.launches({}, config, {**inputs, "q": inputs["q"].t().contiguous().t()}, outputs)
    with pytest.raises(ValueError, match="max_N"):
        template.launches({}, config, {**inputs, "max_N": 0}, outputs)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
def test_default_config_cross_compiles(arch: str) -> None:
    record = RECORDS[arch]
    params = {"D": "128", "dtype": "bf16"}
    config = OPERATORS[NAME].config_space(params)[0]
    module = f"generator.operators.{NAME}"
    task = CandidateTask(module, params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert {k.entry_point for k in report.kernels} == {
        "jagged_flash_attention_backward_dq_kernel",
        "jagged_flash_attention_backward_dkdv_kernel",
    }
    assert all(k.binary is not None for k in report.kernels)
