"""A child that hangs, crashes or raises is reported, and the runner keeps working."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from generator.isolation import ChildFailure, IsolatedRunner


@pytest.fixture
def runner():  # type: ignore[no-untyped-def]
    # The child imports the handler module by name: make its folder importable there too.
    env = {"PYTHONPATH": str(Path(__file__).parent) + ":" + ":".join(sys.path), "TRITON_INTERPRET": "1"}
    with IsolatedRunner("isolation_handlers:behave", env) as r:
        yield r


def test_child_runs_tasks_with_its_environment_and_stays_up(runner: IsolatedRunner) -> None:
    first = runner.run("ok", timeout_s=60)
    second = runner.run("ok", timeout_s=60)
    assert isinstance(first, str) and "interpret=1" in first
    assert first == second  # same child process served both
    assert runner.restarts == 0


def test_hang_is_a_timeout_and_the_next_task_gets_a_fresh_child(runner: IsolatedRunner) -> None:
    before = runner.run("ok", timeout_s=60)
    hung = runner.run("hang", timeout_s=1)
    assert isinstance(hung, ChildFailure) and hung.kind == "timeout"
    after = runner.run("ok", timeout_s=60)
    assert isinstance(after, str) and after != before


def test_segfault_is_a_crash_naming_the_signal(runner: IsolatedRunner) -> None:
    crashed = runner.run("segfault", timeout_s=60)
    assert isinstance(crashed, ChildFailure) and crashed.kind == "crash" and "SIGSEGV" in crashed.message
    assert isinstance(runner.run("ok", timeout_s=60), str)


def test_exception_is_reported_with_its_message(runner: IsolatedRunner) -> None:
    failed = runner.run("raise", timeout_s=60)
    assert (
        isinstance(failed, ChildFailure) and failed.kind == "error" and "candidate exploded" in failed.message
    )
