"""Handlers the isolation tests run in a child process."""

from __future__ import annotations

import ctypes
import os
import time


def behave(task: str) -> str:
    if task == "ok":
        return f"ok from {os.getpid()} interpret={os.environ.get('TRITON_INTERPRET')}"
    if task == "hang":
        while True:
            time.sleep(1)
    if task == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV, like an illegal access in native code
    if task == "raise":
        raise RuntimeError("candidate exploded")
    raise ValueError(task)
