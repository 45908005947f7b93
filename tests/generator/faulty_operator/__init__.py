"""A test operator whose config space holds deliberately bad kernels (out-of-bounds write,
endless loop, wrong result, writes nothing) beside one correct kernel.

`double@1`: y = 2x over an fp32 vector. Used by the generator's isolation tests through
GenerationSettings.extra_operators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from generator.operators.base import Config, KernelLaunch, OperatorTemplate, float_tolerance
from kreg.model import TuningShape

MODES = {1: "out-of-bounds write", 2: "endless loop", 3: "wrong result", 4: "writes nothing", 0: "correct"}


def config_space(params: Mapping[str, str]) -> list[Config]:
    return [Config({"MODE": mode, "BLOCK": 64}, 1, 1) for mode in MODES]


def make_inputs(params: Mapping[str, str], dims: Mapping[str, int], seed: int, device: str) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(dims["N"], generator=gen).to(device)}


def allocate_outputs(params: Mapping[str, str], inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    return {"y": torch.empty_like(inputs["x"])}


def launches(params: Mapping[str, str], config: Config, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[KernelLaunch]:
    n = inputs["x"].numel()
    return [KernelLaunch("double_kernel", (inputs["x"], outputs["y"], n), (-(-n // config.constexprs["BLOCK"]),))]


TEMPLATE = OperatorTemplate(
    name="double",
    version=1,
    kernel_source_path=Path(__file__).with_name("kernel.py"),
    config_space=config_space,
    make_inputs=make_inputs,
    edge_cases=lambda params: [{"N": 100}, {"N": 1}],
    tuning_shapes=lambda params: [TuningShape({"N": 1 << 20})],
    allocate_outputs=allocate_outputs,
    launches=launches,
    reference=lambda params, inputs: {"y": inputs["x"] * 2},
    bytes_moved=lambda params, dims: 8 * dims["N"],
    flops=lambda params, dims: dims["N"],
    tolerance=float_tolerance,
)
