"""A test operator whose shipped kernel is wrong, for the model proposer's tests: only a
proposal can make `triple@1` (y = 3x over an fp32 vector) pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from faulty_operator import allocate_outputs, make_inputs  # the same fp32 vector in, one out

from generator.operators.base import Config, KernelLaunch, OperatorTemplate, float_tolerance
from kreg.model import TuningShape


def launches(params: Mapping[str, str], config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    n = inputs["x"].numel()
    return [KernelLaunch("triple_kernel", (inputs["x"], outputs["y"], n), (-(-n // config.constexprs["BLOCK"]),))]


TEMPLATE = OperatorTemplate(
    name="triple",
    version=1,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=lambda params: [Config({"BLOCK": 64}, 1, 1)],
    make_inputs=make_inputs,
    edge_cases=lambda params: [{"N": 100}, {"N": 1}],
    tuning_shapes=lambda params: [TuningShape({"N": 1 << 20})],
    allocate_outputs=allocate_outputs,
    launches=launches,
    reference=lambda params, inputs: {"y": inputs["x"] * 3},
    bytes_moved=lambda params, dims: 8 * dims["N"],
    flops=lambda params, dims: dims["N"],
    tolerance=float_tolerance,
)
