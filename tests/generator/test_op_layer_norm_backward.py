"""swish_layer_norm_backward@1 and layer_norm_mul_backward@1, the gradients of the row
layer-norm operators (kreg.ops.backward): interpreted kernel runs in test_operators_interpreter's
spawned pool against autograd through the forwards' references (random inputs and every edge
case; fp32, bf16, fp16; every gate of layer_norm_mul; a fixed D), bit-identical reruns, the
oracle against a hand-derived gradient (and, in fp32, the kernel against the float64 oracle
at the tolerance), the plan's checks, and cross-compilation of the default config for every
target."""

from __future__ import annotations

from multiprocessing.pool import Pool

import pytest
import torch
from kreg.model import CandidateStatus
from test_operators_interpreter import (  # noqa: F401  (interpreter_pool is a fixture)
    fields,
    interpreted_check,
    interpreted_run,
    interpreter_pool,
    spread,
)

from generator.evaluate import CandidateTask, evaluate
from generator.hardware import RECORDS
from generator.operators import OPERATORS

SWISH = "swish_layer_norm_backward"
MUL = "layer_norm_mul_backward"
PARAMS: dict[str, list[dict[str, str]]] = {
    SWISH: [{}, {"dtype": "bf16"}, {"dtype": "fp16", "D": "24"}],
    MUL: [{"act": "silu"}, {"act": "sigmoid", "dtype": "bf16"}, {"dtype": "fp16", "D": "24"}],
}
# Enough row blocks that the bounded grid (kreg.ops.backward.layer_norm: 2-32 programs off a
# GPU) has programs walking several blocks.
RANDOM_DIMS = {"N": 35, "D": 40}


def check_cases() -> list[object]:
    out = []
    for name, param_sets in PARAMS.items():
        for params in param_sets:
            for index, config in enumerate(spread(OPERATORS[name].config_space(params))):
                label = f"{name}-{','.join(f'{k}={v}' for k, v in params.items()) or 'default'}-cfg{index}"
                out.append(pytest.param(name, params, fields(config), id=label))
    return out


@pytest.mark.parametrize("name, params, config", check_cases())
def test_kernel_matches_the_reference_gradient(
    interpreter_pool: Pool, name: str, params: dict[str, str], config: object
) -> None:
    template = OPERATORS[name]
    dims = {**RANDOM_DIMS, **({"D": int(params["D"])} if "D" in params else {})}
    tasks = [(name, params, config, dims, seed) for seed in (0, 1)]
    tasks += [(name, params, config, edge, 7) for edge in template.edge_cases(params)]
    results = interpreter_pool.starmap(interpreted_check, tasks, chunksize=1)
    failures = [message for message, _ in results if message]
    assert not failures, "\n".join(failures)
    assert all(nonzero for _, nonzero in results[:2])


def interpreted_twice(name: str, params: dict[str, str]) -> bool:
    template = OPERATORS[name]
    config = fields(template.config_space(params)[0])
    inputs = template.make_inputs(params, {"N": 70, "D": 40}, 4, "cpu")
    first, want = interpreted_run(name, params, config, inputs)
    second, _ = interpreted_run(name, params, config, inputs)
    # The reference's outputs: the scratch's rows past the grid stay poisoned (NaN != NaN).
    return all(torch.equal(first[k], second[k]) for k in want)


@pytest.mark.parametrize("name, params", [(SWISH, {}), (MUL, {"act": "silu"})])
def test_identical_across_runs(interpreter_pool: Pool, name: str, params: dict[str, str]) -> None:
    assert interpreter_pool.apply(interpreted_twice, (name, params))


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_hat, rstd [N, 1]) in float64, by the textbook formulas."""
    mean = x.mean(dim=1, keepdim=True)
    rstd = 1 / torch.sqrt(((x - mean) ** 2).mean(dim=1, keepdim=True) + 1e-5)
    return (x - mean) * rstd, rstd


def _through_layer_norm(dy: torch.Tensor, x_hat: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    dx_hat = dy * weight
    grad_x = rstd * (dx_hat - dx_hat.mean(1, keepdim=True) - x_hat * (dx_hat * x_hat).mean(1, keepdim=True))
    return {"grad_x": grad_x, "grad_weight": (dy * x_hat).sum(0), "grad_bias": dy.sum(0)}


def test_the_oracle_is_the_hand_derived_gradient() -> None:
    """swish: out = x * s, s = sigmoid(y): grad_x = g * s + LN's backward of dy = g x s (1 - s).
    layer_norm_mul: out = a(u) * y: dy = g a(u), grad_u = g y a'(u) (1; s (1 - s); s (1 + u (1 - s)))."""
    dims = {"N": 6, "D": 5, "constant_every": 4}
    template = OPERATORS[SWISH]
    inputs = template.make_inputs({}, dims, 3, "cpu")
    x, w, b, g = (inputs[k].double() for k in ("x", "weight", "bias", "grad_out"))
    x_hat, rstd = _layer_norm(x, w, b)
    s = torch.sigmoid(x_hat * w + b)
    want = _through_layer_norm(g * x * s * (1 - s), x_hat, rstd, w)
    want["grad_x"] = want["grad_x"] + g * s
    got = template.reference({}, inputs)
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k].float(), rtol=1e-6, atol=1e-6)

    template = OPERATORS[MUL]
    for act in ("none", "sigmoid", "silu"):
        params = {"act": act}
        inputs = template.make_inputs(params, dims, 5, "cpu")
        x, u, w, b, g = (inputs[k].double() for k in ("x", "u", "weight", "bias", "grad_out"))
        x_hat, rstd = _layer_norm(x, w, b)
        y = x_hat * w + b
        s = torch.sigmoid(u)
        gate, slope = {"none": (u, 1.0), "sigmoid": (s, s * (1 - s)), "silu": (u * s, s * (1 + u * (1 - s)))}[act]
        want = {**_through_layer_norm(g * gate, x_hat, rstd, w), "grad_u": g * y * slope}
        got = template.reference(params, inputs)
        assert set(got) == set(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k].float(), rtol=1e-6, atol=1e-6, msg=lambda m: f"{act} {k}: {m}")


def interpreted_edge_errors(name: str, params: dict[str, str]) -> dict[str, float]:
    """Worst |kernel - float64 gradient| / (|float64 gradient| + 1) per output, fp32 kernel,
    over the edge cases where LN is worst conditioned (constant rows, a large offset, D = 1)."""
    template = OPERATORS[name]
    config = fields(template.config_space(params)[0])
    worst: dict[str, float] = {}
    for dims in ({"N": 9, "D": 130, "constant_every": 2}, {"N": 12, "D": 20, "shift": 100}, {"N": 5, "D": 1}):
        for seed in (0, 1):
            inputs = template.make_inputs(params, dims, seed, "cpu")
            got, want = interpreted_run(name, params, config, inputs)
            for k, w in want.items():
                err = float(((got[k].double() - w.double()).abs() / (w.double().abs() + 1)).max())
                worst[k] = max(worst.get(k, 0.0), err)
    return worst


@pytest.mark.parametrize("name, params", [(SWISH, {}), (MUL, {"act": "silu"})])
def test_the_fp32_kernel_is_close_to_the_float64_gradient(interpreter_pool: Pool, name: str, params: dict[str, str]) -> None:
    """The oracle is float64 (swish_layer_norm_backward says why): in fp32 the kernel stays
    within 2e-5 of it on the ill-conditioned rows, under layer_norm_tolerance's 3e-5."""
    worst = interpreter_pool.apply(interpreted_edge_errors, (name, params))
    assert worst and all(err < 2e-5 for err in worst.values()), worst


def test_the_grid_is_bounded_and_the_scratch_fits_it() -> None:
    """The row launch has PROGRAMS_PER_SM programs per SM (2 SMs assumed off a GPU), at most
    one per row block, and the scratch has a row for each; the reduce launch reads exactly
    those partial rows."""
    template = OPERATORS[SWISH]
    params = {"dtype": "bf16"}
    space = template.config_space(params)
    for rows in (1000, 5, 0):
        inputs = template.make_inputs(params, {"N": rows, "D": 40}, 0, "cpu")
        outputs = template.allocate_outputs(params, inputs)
        assert outputs["partial_weight"].shape == (min(rows, 32), 40)
        for config in space:
            row_launch, reduce_launch = template.launches(params, config, inputs, outputs)
            programs = row_launch.grid[0]
            expected = min(-(-rows // config.constexprs["BLOCK_ROWS"]), 2 * config.constexprs["PROGRAMS_PER_SM"])
            assert programs == expected <= outputs["partial_weight"].shape[0]
            assert reduce_launch.args[4] == programs and reduce_launch.grid == (1,)


def test_the_plan_refuses_strided_rows() -> None:
    template = OPERATORS[MUL]
    params = {"act": "silu"}
    inputs = template.make_inputs(params, {"N": 4, "D": 8}, 0, "cpu")
    inputs["u"] = torch.randn(8, 4).t()
    outputs = template.allocate_outputs(params, inputs)
    with pytest.raises(ValueError, match="unit stride"):
        template.launches(params, template.config_space(params)[0], inputs, outputs)


def test_the_forward_checks_are_kept() -> None:
    with pytest.raises(ValueError, match="act"):
        OPERATORS[MUL].config_space({"act": "gelu"})
    with pytest.raises(ValueError, match="unknown param"):
        OPERATORS[SWISH].config_space({"act": "silu"})


@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_100", "gfx90a", "gfx942"])
@pytest.mark.parametrize(
    "name, params", [(SWISH, {"D": "512", "dtype": "bf16"}), (MUL, {"D": "512", "dtype": "bf16", "act": "silu"})]
)
def test_default_config_cross_compiles(arch: str, name: str, params: dict[str, str]) -> None:
    record = RECORDS[arch]
    config = OPERATORS[name].config_space(params)[0]
    task = CandidateTask(f"generator.operators.{name}", params, config, record.platform, arch, on_device=False, stage="build")
    report = evaluate(task)
    assert report.status is CandidateStatus.PASSED, report.reason
    assert report.kernels and all(k.binary is not None for k in report.kernels)
