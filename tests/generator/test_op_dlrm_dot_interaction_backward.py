"""dlrm_dot_interaction_backward@1, the gradient of dlrm_dot_interaction (kreg.ops.backward):
interpreted kernel runs in test_operators_interpreter's spawned pool against autograd through
the forward's reference (random inputs and every edge case; fp32, bf16, fp16 with fixed F and
D), bit-identical reruns, the oracle against a gradient summed pair by pair, the plan's stride
checks, and cross-compilation of the default config for every target."""

from __future__ import annotations

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
    with_key_dims,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS

NAME = "dlrm_dot_interaction_backward"
PARAMS = [
    {},
    {"dtype": "bf16"},
    {"dtype": "fp16", "F": "5", "D": "16"},
]
RANDOM_DIMS = {"B": 5, "F": 7, "D": 40}
PRODUCTION = {"dtype": "bf16", "F": "26", "D": "128"}


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    dims = with_key_dims(params, RANDOM_DIMS)
    tasks = [(NAME, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def interpreted_strided(params: dict[str, str]) -> bool:
    """Inputs that are views with row strides wider than their rows (unit stride along D)."""
    from generator.operators.base import compare

    template = OPERATORS[NAME]
    inputs = template.make_inputs(params, {"B": 5, "F": 6, "D": 24}, 3, "cpu")
    views = {}
    for name, tensor in inputs.items():
        wider = torch.zeros(*tensor.shape[:-1], tensor.shape[-1] + 5, dtype=tensor.dtype)
        views[name] = wider[..., : tensor.shape[-1]]
        views[name].copy_(tensor)
    sparse = torch.zeros(5, 9, 24, dtype=inputs["sparse"].dtype)[:, 2:8]
    views["sparse"] = sparse.copy_(inputs["sparse"])
    config = fields(template.config_space(params)[len(template.config_space(params)) // 2])
    outputs, expected = interpreted_run(NAME, params, config, views)
    return all(compare(outputs[k], expected[k], *template.tolerance(expected[k].dtype)).ok for k in expected)


def test_strided_views(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_strided, ({"dtype": "fp16"},))


def test_the_oracle_is_the_pairwise_gradient() -> None:
    """Pair p = (i, j), i < j, numbered row-major over the strict upper triangle, is
    <T[i], T[j]>: its gradient g adds g T[j] to T[i]'s gradient and g T[i] to T[j]'s; the
    dense columns pass their gradient straight to dense. Summed in float64, pair by pair."""
    template = OPERATORS[NAME]
    features, width = 4, 3
    inputs = template.make_inputs({}, {"B": 3, "F": features, "D": width}, 1, "cpu")
    got = template.reference({}, inputs)
    for b in range(3):
        t = torch.cat([inputs["dense"][b, None], inputs["sparse"][b]]).double()
        grad = inputs["grad_out"][b].double()
        want = torch.zeros_like(t)
        want[0] += grad[:width]
        pair = width
        for i in range(features + 1):
            for j in range(i + 1, features + 1):
                want[i] += grad[pair] * t[j]
                want[j] += grad[pair] * t[i]
                pair += 1
        assert pair == grad.numel()
        torch.testing.assert_close(got["grad_dense"][b].double(), want[0])
        torch.testing.assert_close(got["grad_sparse"][b].double(), want[1:])


def test_the_plan_refuses_strides_it_cannot_address() -> None:
    template = OPERATORS[NAME]
    params = {"dtype": "bf16"}
    config = template.config_space(params)[0]
    inputs = template.make_inputs(params, {"B": 4, "F": 3, "D": 8}, 0, "cpu")
    outputs = template.allocate_outputs(params, inputs)
    assert len(template.launches(params, config, inputs, outputs)) == 1
    strided = {**inputs, "sparse": inputs["sparse"].transpose(1, 2).contiguous().transpose(1, 2)}
    with pytest.raises(ValueError, match="unit stride"):
        template.launches(params, config, strided, outputs)
    with pytest.raises(ValueError, match="output shape"):
        template.launches(params, config, {**inputs, "grad_out": inputs["grad_out"][:, 1:]}, outputs)


def test_config_space_follows_the_forward() -> None:
    template = OPERATORS[NAME]
    for params in ({}, PRODUCTION, {"D": "1"}):
        configs = template.config_space(params)
        assert 8 <= len(configs) <= 60 and len(set(configs)) == len(configs)
    with pytest.raises(ValueError, match="want one of"):
        template.config_space({"dtype": "int32"})


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("params", [PRODUCTION, {"F": "26", "D": "128"}])
def test_default_config_cross_compiles(arch: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)
