"""How the CLI prints: aligned tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Sequence

from kreg.model import Artifact, Job, Resolution, WorkerStatus
from kreg.serde import to_jsonable


def print_json(value: Any) -> None:
    json.dump(to_jsonable(value), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers)] + cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """Progress of long work on stderr: a bar redrawn in place on a terminal; elsewhere (CI,
    a log file) a plain line at most every few seconds and at the end. Thread-safe."""

    WIDTH = 30
    PLAIN_EVERY_S = 5.0

    def __init__(self, label: str, total: int) -> None:
        self._label, self._total, self._done = label, max(total, 0), 0
        self._note = ""
        self._tty = sys.stderr.isatty()
        self._lock = threading.Lock()
        self._last_plain = 0.0
        self._draw()

    def advance(self, n: int = 1, note: str = "") -> None:
        with self._lock:
            self._done = min(self._done + n, self._total)
            self._note = note or self._note
            self._draw()

    def log(self, line: str) -> None:
        """Print `line` above the bar."""
        with self._lock:
            if self._tty:
                sys.stderr.write("\r\x1b[2K")
            print(line, file=sys.stderr, flush=True)
            if self._tty:
                self._draw()

    def close(self) -> None:
        with self._lock:
            self._last_plain = 0.0
            self._draw(final=True)
            if self._tty:
                sys.stderr.write("\n")
                sys.stderr.flush()

    def _line(self) -> str:
        filled = self.WIDTH * self._done // self._total if self._total else self.WIDTH
        note = f"  {self._note}" if self._note else ""
        return f"{self._label} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {self._done}/{self._total}{note}"

    def _draw(self, final: bool = False) -> None:
        if self._tty:
            sys.stderr.write("\r\x1b[2K" + self._line())
            sys.stderr.flush()
        elif final or time.monotonic() - self._last_plain >= self.PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            print(self._line(), file=sys.stderr, flush=True)


def short(digest_or_id: str) -> str:
    return digest_or_id[:12] if digest_or_id else "-"


def latency(a: Artifact | None) -> str:
    ms = a.measurements.median_ms if a is not None else None
    return f"{ms:.4g} ms" if ms is not None else "-"


def speedup(a: Artifact | None) -> str:
    s = a.measurements.speedup_vs_eager if a is not None else 0.0
    return f"{s:.2f}x" if s else "-"


def resolution_row(r: Resolution) -> list[object]:
    a = r.artifact
    return [
        str(r.key.operator),
        r.kind.name.lower(),
        a.tier.name if a else "-",
        latency(a),
        speedup(a),
        short(a.artifact_id) if a else "-",
        short(r.job_id),
        r.reason,
    ]


RESOLUTION_HEADERS = ("operator", "kind", "tier", "latency", "vs eager", "artifact", "job", "reason")


def artifact_row(a: Artifact) -> list[object]:
    return [str(a.key), a.tier.name, a.state.name.lower(), str(a.toolchain), latency(a), short(a.artifact_id)]


ARTIFACT_HEADERS = ("key", "tier", "state", "toolchain", "latency", "artifact")


def job_row(j: Job) -> list[object]:
    note = f"WAITING: {j.waiting_for}" if j.waiting_for else j.progress or j.last_error
    return [j.job_id, str(j.key), j.state.name.lower(), f"{j.attempts}/{j.max_attempts}", j.worker_id or "-", note]


JOB_HEADERS = ("job", "key", "state", "attempts", "worker", "progress / last error")


def worker_row(w: WorkerStatus, now: float) -> list[object]:
    serves = ",".join(f"{c.platform}/{c.arch}" for c in w.info.capabilities)
    state = "live" if w.live(now) else "gone"
    return [w.info.worker_id, serves, str(w.info.toolchain or "-"), state, f"{now - w.last_seen:.0f}s ago", short(w.job_id)]


WORKER_HEADERS = ("worker", "serves", "toolchain", "state", "last seen", "job")
