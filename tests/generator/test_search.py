"""The search loop with fake evaluators: budgets, plateau, refinement, failures."""

from __future__ import annotations

import itertools

import pytest

from generator.search import Outcome, SearchBudget, search

GRID = [(a, b) for a in range(8) for b in range(8)]


def neighbors(c: tuple[int, int]) -> list[tuple[int, int]]:
    a, b = c
    return [(x, y) for x, y in ((a - 1, b), (a + 1, b), (a, b - 1), (a, b + 1)) if 0 <= x < 8 and 0 <= y < 8]


def bowl(c: tuple[int, int]) -> Outcome:
    """A convex cost with its minimum at (5, 2)."""
    return Outcome(1.0 + (c[0] - 5) ** 2 + (c[1] - 2) ** 2)


def test_refinement_walks_from_the_draft_to_the_optimum() -> None:
    result = search(GRID, bowl, neighbors, SearchBudget(max_candidates=64, draft=4, plateau=64))
    assert result.best is not None and result.best.config == (5, 2)
    assert result.stop_reason == "local optimum"
    assert any(t.phase == "refine" for t in result.trials)
    assert len(result.trials) < len(GRID)  # it searched, not enumerated


def test_the_default_config_is_always_tried_first() -> None:
    result = search(GRID, bowl, neighbors, SearchBudget(draft=3))
    assert result.trials[0].config == GRID[0]


def test_candidate_budget_stops_the_search() -> None:
    result = search(GRID, bowl, neighbors, SearchBudget(max_candidates=5, draft=8))
    assert len(result.trials) == 5 and result.stop_reason == "candidate budget"


def test_time_budget_stops_the_search() -> None:
    ticks = itertools.count()
    result = search(GRID, bowl, neighbors, SearchBudget(max_seconds=3.0), clock=lambda: float(next(ticks)))
    assert result.stop_reason == "time budget" and len(result.trials) <= 3


def test_plateau_stops_when_nothing_improves() -> None:
    flat = lambda c: Outcome(1.0)  # noqa: E731
    result = search(GRID, flat, neighbors, SearchBudget(max_candidates=64, draft=10, plateau=4))
    assert result.stop_reason == "plateau" and len(result.trials) == 5


def test_failures_never_win_and_drafting_continues_until_something_passes() -> None:
    only_one_works = lambda c: Outcome(2.0 if c == (7, 7) else None, "wrong result")  # noqa: E731
    result = search(GRID, only_one_works, neighbors, SearchBudget(max_candidates=64, draft=2, plateau=64))
    assert result.best is not None and result.best.config == (7, 7)
    assert all(t.outcome.score is None for t in result.trials if t.config != (7, 7))


def test_nothing_passing_is_reported() -> None:
    result = search(GRID[:5], lambda c: Outcome(None), neighbors, SearchBudget(max_candidates=64))
    assert result.best is None and result.stop_reason == "nothing passed" and len(result.trials) == 5


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="max_candidates"):
        SearchBudget(max_candidates=0)
