"""generator.sandbox: model-written source is refused, with a reason, unless it is a plain
Triton kernel module that keeps the template's entry points."""

from __future__ import annotations

import pytest

from generator.operators import OPERATORS
from generator.sandbox import MAX_SOURCE_BYTES, entry_points, vet

TEMPLATE = (
    "import triton\nimport triton.language as tl\n\n\n@triton.jit\ndef _helper(x):\n    return x * 2\n\n\n"
    "@triton.jit\ndef k(x_ptr, y_ptr, N, BLOCK: tl.constexpr):\n    i = tl.arange(0, BLOCK)\n    tl.store(y_ptr + i, _helper(tl.load(x_ptr + i)))\n"
)


def test_the_template_itself_and_every_shipped_kernel_pass() -> None:
    assert entry_points(TEMPLATE) == {"k": ["x_ptr", "y_ptr", "N", "BLOCK"]}
    assert vet(TEMPLATE, TEMPLATE) is None
    for template in OPERATORS.values():
        assert vet(template.kernel_source, template.kernel_source) is None, template.name


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("    torch.zeros(4)\n", "uses 'torch'"),
        ("    open('/tmp/x', 'w')\n", "uses 'open'"),
        ("    eval('1')\n", "uses 'eval'"),
        ("    getattr(tl, 'load')\n", "uses 'getattr'"),
        ("    import os\n", "an import inside k()"),
        ("    x = tl.arange(0, BLOCK).__class__\n", "reaches for '__class__'"),
        ("    f = lambda v: v\n", "Lambda inside k()"),
        ("    with tl.static_range(2):\n        pass\n", "With inside k()"),
    ],
)
def test_escapes_inside_a_kernel_are_refused(body: str, why: str) -> None:
    source = TEMPLATE.replace("    i = tl.arange(0, BLOCK)\n", body + "    i = tl.arange(0, BLOCK)\n")
    assert why in (vet(source, TEMPLATE) or "")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("import os\n" + TEMPLATE, "only triton imports"),
        (TEMPLATE + "\nprint('at import')\n", "only triton imports"),
        (TEMPLATE.replace("def k(", "def renamed("), "missing entry point k(x_ptr, y_ptr, N, BLOCK)"),
        (TEMPLATE.replace("def k(x_ptr, y_ptr, N,", "def k(y_ptr, x_ptr, N,"), "k() takes (y_ptr, x_ptr, N, BLOCK); the launch plan passes (x_ptr, y_ptr, N, BLOCK)"),
        ("def k(:\n", "syntax error"),
        (TEMPLATE + "#" * MAX_SOURCE_BYTES, "over the 65536-byte limit"),
    ],
)
def test_modules_that_are_not_plain_kernels_are_refused(source: str, why: str) -> None:
    assert why in (vet(source, TEMPLATE) or "")
