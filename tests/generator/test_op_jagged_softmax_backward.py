"""jagged_softmax_backward@1, the gradient of jagged_softmax (kreg.ops.backward): interpreted
kernel runs in test_operators_interpreter's spawned pool against autograd through the
forward's reference (random inputs, rows long enough for the multi-tile path, and every edge
case; fp32, bf16, fp16; int32 and int64 offsets; a key-fixed D), bit-identical reruns, the
oracle against a naive per-row softmax gradient, and cross-compilation of the default config
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
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS

NAME = "jagged_softmax_backward"
PARAMS = [
    {},
    {"dtype": "bf16", "index_dtype": "int32"},
    {"dtype": "fp16", "D": "24"},
]
# Rows up to 30 items, truncated at 20: short rows take the one-tile path for BLOCK_L >= 32.
RANDOM_DIMS = {"B": 6, "D": 40, "len_max": 30, "max_L": 20}
# Rows of 60-150 items truncated at 140: every config's BLOCK_L (<= 128) needs the multi-tile
# passes for the longest rows, and the truncation cuts some rows mid-tile (the edge cases of
# 129 items, and of 100 truncated at 65, cover the same with fixed lengths).
LONG_DIMS = {"B": 2, "D": 8, "len_min": 60, "len_max": 150, "max_L": 140}


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(
    interpreter_pool: Pool, params: dict[str, str], config: object
) -> None:
    template = OPERATORS[NAME]
    fixed = {"D": int(params["D"])} if "D" in params else {}
    tasks = [(NAME, params, config, {**RANDOM_DIMS, **fixed}, 0)]
    tasks += [(NAME, params, config, {**LONG_DIMS, **fixed}, 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    config = fields(template.config_space(params)[0])  # BLOCK_L 8: the multi-tile passes
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def test_the_oracle_is_the_naive_softmax_gradient() -> None:
    """Per row and column, over the first max_L items: the softmax's Jacobian
    diag(y) - y y^T applied to grad_out, in float64; items past max_L get 0."""
    template = OPERATORS[NAME]
    inputs = template.make_inputs({}, {"B": 5, "D": 3, "len_max": 7, "empty_every": 3, "max_L": 4}, 1, "cpu")
    got = template.reference({}, inputs)["grad_values"]
    x, g = inputs["values"].double(), inputs["grad_out"].double()
    offsets, max_len = inputs["offsets"].tolist(), inputs["max_L"]
    assert max(b - a for a, b in zip(offsets, offsets[1:])) > max_len  # some rows are truncated
    expected = torch.zeros_like(x)
    for a, b in zip(offsets, offsets[1:]):
        kept = min(b - a, max_len)
        for col in range(x.shape[1]):
            y = torch.softmax(x[a : a + kept, col], dim=0)
            jacobian = torch.diag(y) - torch.outer(y, y)
            expected[a : a + kept, col] = jacobian @ g[a : a + kept, col]
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    assert got.count_nonzero() > 0
    # max_L 0: the forward's output is a constant 0, so is the gradient (not autograd's NaN).
    zero = template.reference({}, {**inputs, "max_L": 0})["grad_values"]
    torch.testing.assert_close(zero, torch.zeros_like(inputs["values"]))


def test_bad_params_and_inputs_are_refused() -> None:
    template = OPERATORS[NAME]
    with pytest.raises(ValueError, match="want one of"):
        template.config_space({"index_dtype": "int16"})
    inputs = template.make_inputs({}, {"B": 2, "D": 4, "max_L": 3}, 0, "cpu")
    config = template.config_space({})[0]
    with pytest.raises(ValueError, match="max_L"):
        template.launches({}, config, {**inputs, "max_L": -1}, template.allocate_outputs({}, inputs))
    strided = {**inputs, "grad_out": torch.zeros(4, inputs["values"].shape[0]).t()}
    with pytest.raises(ValueError, match="unit stride"):
        template.launches({}, config, strided, template.allocate_outputs({}, inputs))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("params", [{"D": "128"}, {"D": "128", "dtype": "bf16", "index_dtype": "int32"}])
def test_default_config_cross_compiles(arch: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(
        f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build"
    )
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)
