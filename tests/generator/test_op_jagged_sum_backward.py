"""jagged_sum_backward@1, the gradient of jagged_sum (kreg.ops.backward): interpreted kernel
runs in test_operators_interpreter's spawned pool against autograd through the forward's
reference (random inputs and every edge case; plain, mean, weighted; int32 and int64
offsets), bit-identical reruns, the oracle against a hand-derived gradient, and
cross-compilation of the default config for every target."""

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

NAME = "jagged_sum_backward"
PARAMS = [
    {},
    {"dtype": "bf16", "index_dtype": "int32", "mean": "1"},
    {"weighted": "1"},
    {"weighted": "1", "dtype": "fp16", "D": "24"},
]
RANDOM_DIMS = {"B": 6, "D": 40, "len_max": 30}


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    dims = {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}
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
    assert interpreter_pool.apply(interpreted_twice, ({"weighted": "1"},))


def test_the_oracle_is_the_hand_derived_gradient() -> None:
    """Each item gets its row's gradient (over the length for the mean, times its weight);
    a weight gets <grad_out[row], value>."""
    template = OPERATORS[NAME]
    for params in ({"mean": "1"}, {"weighted": "1"}):
        inputs = template.make_inputs(params, {"B": 5, "D": 3, "len_max": 4, "empty_every": 2}, 1, "cpu")
        got = template.reference(params, inputs)
        offsets, grad = inputs["offsets"].tolist(), inputs["grad_out"]
        for b in range(len(offsets) - 1):
            length = offsets[b + 1] - offsets[b]
            for i in range(offsets[b], offsets[b + 1]):
                if params.get("mean") == "1":
                    torch.testing.assert_close(got["grad_values"][i], grad[b] / length)
                else:
                    w = inputs["weights"][i]
                    torch.testing.assert_close(got["grad_values"][i], grad[b] * w)
                    torch.testing.assert_close(got["grad_weights"][i], (grad[b] * inputs["values"][i]).sum())


def test_the_embedding_bag_variant_has_no_backward_kernel() -> None:
    with pytest.raises(ValueError, match="gather=1"):
        OPERATORS[NAME].config_space({"gather": "1"})


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize("params", [{"D": "128", "dtype": "bf16"}, {"D": "128", "weighted": "1"}])
def test_default_config_cross_compiles(arch: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)
