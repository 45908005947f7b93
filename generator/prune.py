"""Prune a template's config space with the target's hardware record, before anything compiles.

Rules are cheap and conservative — they drop configs that cannot launch or that waste the
machine for certain; everything else is left to compilation (out-of-resources) and timing.
Each dropped config keeps its reason: the candidate log records it as PRUNED, so nobody
retries it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from generator.hardware import HardwareRecord
from generator.operators.base import Config

MAX_THREADS_PER_BLOCK = 1024
# A tile spread so thin that most threads hold nothing, or so thick that each thread keeps
# hundreds of fp32 values in registers, loses for certain.
MIN_TILE_ELEMENTS_PER_THREAD = 1 / 4
MAX_TILE_ELEMENTS_PER_THREAD = 512


@dataclass(frozen=True)
class Pruned:
    config: Config
    reason: str


# A reduction step (the K of a matrix product) sizes the operand tiles a program streams
# through shared memory, not the tile each thread holds: it is not a dimension of the tile.
REDUCTION_BLOCK = "BLOCK_K"


def tile_elements(config: Config) -> int:
    """Elements of one program's working tile: the product of its BLOCK_* sizes, the
    reduction step BLOCK_K excepted."""
    return math.prod(v for k, v in config.constexprs.items() if k.startswith("BLOCK") and k != REDUCTION_BLOCK)


def prune(
    configs: Sequence[Config], record: HardwareRecord, tile: Callable[[Config], int] = tile_elements
) -> tuple[list[Config], list[Pruned]]:
    """(kept, dropped with reasons); `tile` gives a config's working-tile elements (the
    template's own count where the launch fixes part of the tile)."""
    kept: list[Config] = []
    dropped: list[Pruned] = []
    for config in configs:
        reason = _reject(config, record, tile(config))
        if reason is None:
            kept.append(config)
        else:
            dropped.append(Pruned(config, reason))
    return kept, dropped


def _reject(config: Config, record: HardwareRecord, tile: int) -> str | None:
    threads = config.num_warps * record.warp_size
    if threads > MAX_THREADS_PER_BLOCK:
        return f"{config.num_warps} warps x {record.warp_size} lanes = {threads} threads > {MAX_THREADS_PER_BLOCK} per block on {record.arch}"
    if tile > 1:
        per_thread = tile / threads
        if per_thread < MIN_TILE_ELEMENTS_PER_THREAD:
            return f"tile of {tile} elements over {threads} threads leaves most threads idle"
        if per_thread > MAX_TILE_ELEMENTS_PER_THREAD:
            return f"tile of {tile} elements is {per_thread:.0f} per thread: spills registers"
    return None
