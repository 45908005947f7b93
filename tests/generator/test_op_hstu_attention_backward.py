"""hstu_attention_backward@1, the gradient of hstu_attention (kreg.ops.backward): interpreted
kernel runs in test_operators_interpreter's spawned pool against autograd through the
forward's reference (random inputs with and without targets and every edge case; fp32,
bf16 and fp16; int32 and int64 offsets; a given alpha), bit-identical reruns, the oracle
against a hand-derived gradient written as a loop, and cross-compilation of the default
config for every target."""

from __future__ import annotations

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
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS

NAME = "hstu_attention_backward"
PARAMS = [{}, {"dtype": "bf16", "index_dtype": "int32"}, {"dtype": "fp16", "D": "24", "H": "2"}]
RANDOM_DIMS = {"B": 3, "H": 2, "D": 32, "len_max": 30, "N": 20, "targets": 5}
# Rows of several blocks, some past N: the steps past the diagonal, which skip the mask, run
# with every config of the spread but the last.
LONG_DIMS = {"B": 2, "H": 1, "D": 16, "len_min": 60, "len_max": 80, "N": 72, "targets": 5}


def with_key(params: dict[str, str], dims: dict[str, int]) -> dict[str, int]:
    return {**dims, **{k: int(v) for k, v in params.items() if k in ("D", "H")}}


@pytest.mark.parametrize("params, config", config_cases(NAME, PARAMS))
def test_kernel_matches_the_reference_gradient(interpreter_pool: Pool, params: dict[str, str], config: object) -> None:
    template = OPERATORS[NAME]
    tasks = [(NAME, params, config, with_key(params, RANDOM_DIMS), 0)]
    tasks += [(NAME, params, config, with_key(params, LONG_DIMS), 1)]
    tasks += [(NAME, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_given_alpha(params: dict[str, str]) -> str | None:
    """A given alpha (not 1/sqrt(D)) reaches both kernels and the oracle alike."""
    template = OPERATORS[NAME]
    inputs = {**template.make_inputs(params, RANDOM_DIMS, 3, "cpu"), "alpha": 0.4}
    got, want = interpreted_run(NAME, params, fields(template.config_space(params)[-1]), inputs)
    for key, expected in want.items():
        if not torch.allclose(got[key], expected, *template.tolerance(expected.dtype)):
            return f"{key}: max error {(got[key] - expected).abs().max():.3g}"
    return None


def test_a_given_alpha(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_given_alpha, ({},)) is None


def interpreted_twice(params: dict[str, str]) -> bool:
    template = OPERATORS[NAME]
    configs = template.config_space(params)
    config = fields(configs[len(configs) // 2])
    inputs = template.make_inputs(params, RANDOM_DIMS, 4, "cpu")
    first, _ = interpreted_run(NAME, params, config, inputs)
    second, _ = interpreted_run(NAME, params, config, inputs)
    return all(torch.equal(first[k], second[k]) for k in first)


def test_identical_across_runs(interpreter_pool: Pool) -> None:
    assert interpreter_pool.apply(interpreted_twice, ({"dtype": "bf16"},))


def naive_gradients(inputs: dict[str, object]) -> dict[str, torch.Tensor]:
    """The chain rule written out per (row, head, query i, key j) over generative-recommenders'
    mask (i == j or min(i, len - t) > min(j, len - t), both below N), in float64: with
    s = alpha q_i.k_j and a = silu(s) / N, dv_j += a do_i; ds = (do_i.v_j) silu'(s) / N,
    dq_i += alpha ds k_j, dk_j += alpha ds q_i."""
    q, k, v, grad = (inputs[n].double() for n in ("q", "k", "v", "grad_out"))  # type: ignore[union-attr]
    offsets, targets = inputs["offsets"].tolist(), inputs["num_targets"].tolist()  # type: ignore[union-attr]
    max_len = inputs["max_N"]
    alpha = 1.0 / math.sqrt(q.shape[2])
    dq, dk, dv = (torch.zeros_like(t) for t in (q, k, v))
    for b in range(len(offsets) - 1):
        start, length = offsets[b], offsets[b + 1] - offsets[b]
        max_id = length - targets[b]
        for h in range(q.shape[1]):
            for i in range(min(length, max_len)):
                for j in range(min(length, max_len)):
                    if not (i == j or min(i, max_id) > min(j, max_id)):
                        continue
                    qi, kj = q[start + i, h], k[start + j, h]
                    s = alpha * float(qi @ kj)
                    sig = 1.0 / (1.0 + math.exp(-s))
                    dv[start + j, h] += s * sig / max_len * grad[start + i, h]
                    ds = float(grad[start + i, h] @ v[start + j, h]) * sig * (1.0 + s * (1.0 - sig)) / max_len
                    dq[start + i, h] += alpha * ds * kj
                    dk[start + j, h] += alpha * ds * qi
    return {"grad_q": dq, "grad_k": dk, "grad_v": dv}


def test_the_oracle_is_the_hand_derived_gradient() -> None:
    """Rows longer than N, empty rows, more targets than items; fp32 oracle vs float64 loop."""
    template = OPERATORS[NAME]
    for dims in (
        {"B": 5, "H": 2, "D": 4, "N": 6, "len_min": 0, "len_max": 9, "targets": 3, "empty_every": 3},
        {"B": 3, "H": 1, "D": 3, "N": 9, "len_min": 1, "len_max": 4, "targets": 6},
    ):
        inputs = template.make_inputs({}, dims, 1, "cpu")
        got, want = template.reference({}, inputs), naive_gradients(inputs)
        assert set(got) == set(want)
        for key in want:
            assert got[key].dtype == torch.float32
            torch.testing.assert_close(got[key].double(), want[key], rtol=1e-5, atol=1e-6)
        assert all(bool(want[key].count_nonzero()) for key in want)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
def test_default_config_cross_compiles(arch: str) -> None:
    record = RECORDS[arch]
    params = {"D": "128", "H": "4", "dtype": "bf16"}
    config = OPERATORS[NAME].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{NAME}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert {k.entry_point for k in report.kernels} == {
        "hstu_attention_backward_dkdv_kernel",
        "hstu_attention_backward_dq_kernel",
    }
    assert all(k.binary is not None for k in report.kernels)
