"""Static checks on model-written kernel source, before anything of it runs.

A proposal (generator/proposer.py) is text from a language model: it is refused here unless
it is a plain Triton kernel module — kreg.loader.check_source's rules for the top level (only
triton imports, docstrings and @triton.jit functions with literal defaults) plus, inside the
functions, no torch, no file, process or network access, no reflection or dynamic code, and
a size limit — and unless it keeps the template's entry points with their parameter lists
(the launch plan passes the same arguments on the serving host). What passes is then run
like any template candidate: in the isolated evaluator child, verified and timed.
"""

from __future__ import annotations

import ast

from kreg.loader import SourceError, check_source

MAX_SOURCE_BYTES = 64 * 1024
MAX_FUNCTIONS = 32
# Names whose use inside a kernel could reach outside it: modules, builtins that open files,
# run code or reflect. Triton would reject most at compile time; refusing them here means the
# evaluator never compiles them at all.
FORBIDDEN_NAMES = frozenset({
    "torch", "os", "sys", "subprocess", "socket", "shutil", "pathlib", "importlib", "urllib", "requests", "http",
    "ctypes", "pickle", "builtins", "open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars",
    "getattr", "setattr", "delattr", "input", "breakpoint", "exit", "quit", "memoryview", "type", "object",
})


def entry_points(source: str) -> dict[str, list[str]]:
    """The kernels a launch plan calls, with their parameter names: the module's @triton.jit
    functions that no other function of the module calls."""
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    called = {
        node.func.id
        for fn in functions.values()
        for node in ast.walk(fn)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id != fn.name
    }
    return {name: [a.arg for a in fn.args.args] for name, fn in functions.items() if name not in called}


def vet(source: str, template_source: str) -> str | None:
    """Why `source` may not run as a replacement for `template_source`'s kernels, or None."""
    if len(source.encode()) > MAX_SOURCE_BYTES:
        return f"source is {len(source.encode())} bytes, over the {MAX_SOURCE_BYTES}-byte limit"
    try:
        check_source(source)
    except SourceError as e:
        return str(e)
    tree = ast.parse(source)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(functions) > MAX_FUNCTIONS:
        return f"{len(functions)} functions, over the limit of {MAX_FUNCTIONS}"
    for fn in functions:
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                return f"line {node.lineno}: an import inside {fn.name}()"
            if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
                return f"line {node.lineno}: {fn.name}() uses {node.id!r}: a kernel may not touch torch, files, processes or the network"
            if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
                return f"line {node.lineno}: {fn.name}() reaches for {node.attr!r}"
            if isinstance(node, (ast.Global, ast.Nonlocal, ast.Lambda, ast.ClassDef, ast.AsyncFunctionDef, ast.With, ast.Try)):
                return f"line {node.lineno}: {type(node).__name__} inside {fn.name}() is not kernel code"
    want = entry_points(template_source)
    have = {fn.name: [a.arg for a in fn.args.args] for fn in functions}
    for name, params in want.items():
        if name not in have:
            return f"missing entry point {name}({', '.join(params)}): keep the template's kernel names"
        if have[name] != params:
            return f"{name}() takes ({', '.join(have[name])}); the launch plan passes ({', '.join(params)})"
    return None
