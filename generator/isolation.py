"""Run candidate evaluations in a spawned child process with a timeout.

An illegal memory access poisons a CUDA context and a hung kernel never returns, so the
worker never runs candidate code itself: a long-lived child (imports paid once) takes
tasks over a pipe; on a timeout it is killed, on a crash it is gone, and either way the
next task starts a fresh one. The worker records TIMEOUT / CRASH for that candidate and
carries on.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping

_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class ChildFailure:
    """The child did not answer: kind is "timeout" or "crash" (died, e.g. by SIGSEGV)."""

    kind: str
    message: str


def _child_main(conn: multiprocessing.connection.Connection, handler: str, env: Mapping[str, str]) -> None:
    # Environment first: TRITON_INTERPRET and device visibility must be set before any
    # triton or torch import in this process.
    os.environ.update(env)
    module, _, name = handler.partition(":")
    fn: Callable[[Any], Any] = getattr(importlib.import_module(module), name)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", fn(task)))
        except BaseException as e:  # report everything: the parent decides what it means
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"))


class IsolatedRunner:
    """`handler` is "module:function"; it runs in the child on each task and must return
    a picklable value. Exceptions in it come back as ChildFailure("error", ...)."""

    def __init__(self, handler: str, env: Mapping[str, str] | None = None) -> None:
        self._handler = handler
        self._env = dict(env or {})
        self._proc: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self.restarts = 0

    def _ensure_child(self) -> multiprocessing.connection.Connection:
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                self.restarts += 1
            parent, child = _SPAWN.Pipe()
            self._proc = _SPAWN.Process(target=_child_main, args=(child, self._handler, self._env), daemon=True)
            self._proc.start()
            child.close()
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def run(self, task: Any, timeout_s: float) -> Any | ChildFailure:
        conn = self._ensure_child()
        conn.send(task)
        try:
            ready = conn.poll(timeout_s)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self._kill()
            return ChildFailure("timeout", f"no answer within {timeout_s:.0f}s; evaluator killed")
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            code = self._reap()
            return ChildFailure("crash", f"evaluator died ({_describe_exit(code)})")
        if status == "error":
            return ChildFailure("error", value)
        return value

    def restart(self) -> None:
        """Drop the child (e.g. after a CUDA error poisoned its context); the next task starts a fresh one."""
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> int | None:
        if self._proc is None:
            return None
        self._proc.join(timeout=10)
        code = self._proc.exitcode
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
        self.restarts += 1
        return code

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the child sees EOF and exits
        if self._proc is not None:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._proc, self._conn = None, None

    def __enter__(self) -> "IsolatedRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
