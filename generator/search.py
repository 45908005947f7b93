"""The search loop: a draft of sampled configs, then refinement around the best.

Pure: candidates, evaluation and the clock come in as arguments, so the loop is tested
with fake evaluators. It stops on the candidate budget, the time budget, a plateau
(`plateau` evaluations in a row without a better result) or an exhausted neighbourhood.
With a `propose` callback (the model proposer), a plateau, an exhausted neighbourhood or a
space where nothing passed first asks it for a new candidate instead: proposals join the same
tree (refined around when they win) under the same budget, and the search ends when the
proposer has nothing more. A run is a value (SearchResult), never state left on an object.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Sequence, TypeVar

C = TypeVar("C", bound=Hashable)


@dataclass(frozen=True, kw_only=True)
class SearchBudget:
    max_candidates: int = 24
    max_seconds: float = 300.0
    draft: int = 8
    plateau: int = 6

    def __post_init__(self) -> None:
        if self.max_candidates < 1:
            raise ValueError("budget.max_candidates: at least 1")
        if self.max_seconds <= 0:
            raise ValueError("budget.max_seconds: must be positive")
        if self.draft < 1:
            raise ValueError("budget.draft: at least 1")


@dataclass(frozen=True)
class Outcome:
    """What evaluating one candidate found; `score` is lower-better (ms), None = failed."""

    score: float | None
    detail: object = None


@dataclass(frozen=True)
class Trial(Generic[C]):
    config: C
    outcome: Outcome
    phase: str  # "draft" | "refine" | "propose"


@dataclass(frozen=True)
class SearchResult(Generic[C]):
    trials: tuple[Trial[C], ...]
    best: Trial[C] | None
    stop_reason: str
    seconds: float = field(default=0.0)


def _better(a: Outcome, b: Outcome | None) -> bool:
    return a.score is not None and (b is None or b.score is None or a.score < b.score)


def search(
    space: Sequence[C],
    evaluate: Callable[[C], Outcome],
    neighbors: Callable[[C], Sequence[C]],
    budget: SearchBudget,
    *,
    seed: int = 0,
    clock: Callable[[], float] = time.monotonic,
    on_trial: Callable[[Trial[C], int], None] | None = None,
    propose: Callable[[Trial[C] | None, tuple[Trial[C], ...]], C | None] | None = None,
) -> SearchResult[C]:
    """Evaluate space[0] (the template's default) and a sample of the rest, then walk to
    better neighbours of the best until a stop condition holds. `propose(best, trials)`
    returns a new candidate or None."""
    start = clock()
    rng = random.Random(seed)
    tried: dict[C, Trial[C]] = {}
    best: Trial[C] | None = None
    since_improvement = 0

    def run(config: C, phase: str) -> str | None:
        nonlocal best, since_improvement
        trial = Trial(config, evaluate(config), phase)
        tried[config] = trial
        if on_trial is not None:
            on_trial(trial, len(tried))
        if _better(trial.outcome, best.outcome if best else None):
            best, since_improvement = trial, 0
        else:
            since_improvement += 1
        if len(tried) >= budget.max_candidates:
            return "candidate budget"
        if clock() - start >= budget.max_seconds:
            return "time budget"
        if best is not None and best.outcome.score is not None and since_improvement >= budget.plateau:
            return "plateau"
        return None

    def finish(reason: str) -> SearchResult[C]:
        return SearchResult(tuple(tried.values()), best, reason, clock() - start)

    def proposed(reason: str) -> str | None:
        """Where the search would end for `reason`: a proposal instead, if there is one. None
        to go on searching; else why to stop."""
        nonlocal since_improvement
        if reason not in ("plateau", "local optimum", "nothing passed") or propose is None:
            return reason
        candidate = propose(best, tuple(tried.values()))
        if candidate is None or candidate in tried:
            return reason
        since_improvement = 0  # a plateau of the template's configs is not one of the proposal's
        stop = run(candidate, "propose")
        return stop if stop in ("candidate budget", "time budget") else None

    if not space:
        return finish("empty space")
    rest = list(space[1:])
    draft = [space[0]] + rng.sample(rest, min(len(rest), budget.draft - 1))
    for config in draft:
        if (stop := run(config, "draft")) is not None:
            if (stop := proposed(stop)) is not None:
                return finish(stop)
            break

    while True:
        if best is None or best.outcome.score is None:
            # Nothing passed yet: keep drafting from the untried configs.
            untried = [c for c in space if c not in tried]
            if not untried:
                if (stop := proposed("nothing passed")) is not None:
                    return finish(stop)
                continue
            if (stop := run(rng.choice(untried), "draft")) is not None and (stop := proposed(stop)) is not None:
                return finish(stop)
            continue
        fresh = [n for n in neighbors(best.config) if n not in tried]
        if not fresh:
            if (stop := proposed("local optimum")) is not None:
                return finish(stop)
            continue
        anchor = best
        for config in fresh:
            if (stop := run(config, "refine")) is not None:
                if (stop := proposed(stop)) is not None:
                    return finish(stop)
                break
            if best is not anchor:
                break  # moved: explore around the new best
        else:
            if (stop := proposed("local optimum")) is not None:
                return finish(stop)
