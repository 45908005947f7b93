"""jagged_to_padded_dense_backward@1 and dense_to_jagged_backward@1, the gradients of padding
and unpadding (kreg.ops.backward.padding): each template runs the other forward's kernel on
grad_out. Interpreted kernel runs in test_operators_interpreter's spawned pool against
autograd through the forward's reference (random inputs and every edge case; fp32, bf16 with
int32 offsets, fp16 with a fixed D), bit-identical reruns, the oracles against the
hand-derived gradients, the plans' stride checks, and cross-compilation of the default config
for every target."""

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
from generator.operators.base import Config

NAMES = ("jagged_to_padded_dense_backward", "dense_to_jagged_backward")
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24"}]
# N below the longest row: both the truncated items and the padded positions are exercised.
RANDOM_DIMS = {"B": 6, "D": 40, "len_max": 30, "N": 17}
PRODUCTION = {"D": "512", "dtype": "bf16"}


def check_cases() -> list[object]:
    return [
        pytest.param(name, *case.values, id=f"{name}-{case.id}")
        for name in NAMES
        for case in config_cases(name, PARAMS)
    ]


@pytest.mark.parametrize("name, params, config", check_cases())
def test_kernel_matches_the_reference_gradient(
    interpreter_pool: Pool, name: str, params: dict[str, str], config: object
) -> None:
    template = OPERATORS[name]
    dims = with_key_dims(params, RANDOM_DIMS)
    tasks = [(name, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(name, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(name: str, params: dict[str, str]) -> bool:
    template = OPERATORS[name]
    config = fields(template.config_space(params)[-1])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(name, params, config, inputs)
    second, _ = interpreted_run(name, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", NAMES)
def test_identical_across_runs(interpreter_pool: Pool, name: str) -> None:
    assert interpreter_pool.apply(interpreted_twice, (name, {"dtype": "bf16"}))


# Rows of 0-9 items against N 5: some rows truncated, some padded, some empty.
ORACLE_DIMS = {"B": 6, "D": 3, "len_min": 0, "len_max": 9, "empty_every": 3, "N": 5}


def test_the_oracle_of_padding_is_unpadding() -> None:
    """An item's gradient is grad_out at its dense position; items past N get 0, and the
    padding value changes nothing."""
    template = OPERATORS["jagged_to_padded_dense_backward"]
    inputs = template.make_inputs({}, ORACLE_DIMS, 3, "cpu")
    got = template.reference({}, inputs)["grad_values"]
    offsets, grad = inputs["offsets"].tolist(), inputs["grad_out"]
    assert any(b - a > ORACLE_DIMS["N"] for a, b in zip(offsets, offsets[1:]))
    for b in range(len(offsets) - 1):
        for i in range(offsets[b + 1] - offsets[b]):
            want = grad[b, i] if i < ORACLE_DIMS["N"] else torch.zeros(3)
            assert torch.equal(got[offsets[b] + i], want), (b, i)
    other = template.reference({}, {**inputs, "padding_value": 7.0})["grad_values"]
    assert torch.equal(other, got)


def test_the_oracle_of_unpadding_is_padding_with_zeros() -> None:
    """A dense position's gradient is grad_out at its item; positions past a row's end get 0."""
    template = OPERATORS["dense_to_jagged_backward"]
    inputs = template.make_inputs({}, ORACLE_DIMS, 3, "cpu")
    got = template.reference({}, inputs)["grad_dense"]
    offsets, grad = inputs["offsets"].tolist(), inputs["grad_out"]
    assert got.shape == inputs["dense"].shape
    for b in range(len(offsets) - 1):
        for i in range(ORACLE_DIMS["N"]):
            length = offsets[b + 1] - offsets[b]
            want = grad[offsets[b] + i] if i < length else torch.zeros(3)
            assert torch.equal(got[b, i], want), (b, i)


@pytest.mark.parametrize("name", NAMES)
def test_the_plans_refuse_a_strided_width(name: str) -> None:
    template = OPERATORS[name]
    inputs = template.make_inputs({}, RANDOM_DIMS, 0, "cpu")
    grad = inputs["grad_out"]
    inputs["grad_out"] = torch.cat([grad, grad], dim=-1)[..., ::2]
    outputs = template.allocate_outputs({}, inputs)
    with pytest.raises(ValueError, match="unit stride along D"):
        template.launches({}, template.config_space({})[0], inputs, outputs)
    inputs["grad_out"] = grad[:, :1] if grad.dim() == 2 else grad[:1]
    with pytest.raises(ValueError, match="grad_out must be"):
        template.launches({}, template.config_space({})[0], inputs, outputs)


@pytest.mark.parametrize("name", NAMES)
def test_each_gradient_runs_the_other_forward_kernel_over_its_configs(name: str) -> None:
    """No kernel of their own: the other forward's source blob, entry point and config space."""
    other = {
        "jagged_to_padded_dense_backward": "dense_to_jagged",
        "dense_to_jagged_backward": "jagged_to_padded_dense",
    }[name]
    template = OPERATORS[name]
    assert template.kernel_source_path == OPERATORS[other].kernel_source_path
    assert template.config_space(PRODUCTION) == OPERATORS[other].config_space(PRODUCTION)
    inputs = template.make_inputs({}, RANDOM_DIMS, 0, "cpu")
    config: Config = template.config_space({})[0]
    launches = template.launches({}, config, inputs, template.allocate_outputs({}, inputs))
    assert [launch.entry_point for launch in launches] == [f"{other}_kernel"]


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("name", NAMES)
def test_default_config_cross_compiles(arch: str, name: str) -> None:
    record = RECORDS[arch]
    config = OPERATORS[name].config_space(PRODUCTION)[0]
    module = f"generator.operators.{name}"
    task = CandidateTask(module, PRODUCTION, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)
