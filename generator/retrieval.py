"""Retrieval over the team's kernel-writing knowledge (generator/knowledge/*.md) for the model
proposer: the documents a prompt carries are chosen by the target and by what the evaluator
saw (a compile error retrieves debugging guidance, a memory-bound profile memory-hierarchy
notes), nearest first, within a size budget.

Signals are plain words so the documents stay readable: the failure statuses of the
candidates so far (compile_error, out_of_resources, wrong_result, timeout, crash) and the
best kernel's profile (memory_bound, compute_bound, or untimed off the target GPU).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kreg.model import CandidateStatus, ShapeMeasurement

KNOWLEDGE_DIR = Path(__file__).with_name("knowledge")
SIGNALS = frozenset(
    {"always", "compile_error", "out_of_resources", "wrong_result", "timeout", "crash", "memory_bound", "compute_bound", "latency_bound", "untimed"}
)
_FAILURE_SIGNALS = {
    CandidateStatus.COMPILE_ERROR: "compile_error",
    CandidateStatus.OUT_OF_RESOURCES: "out_of_resources",
    CandidateStatus.WRONG_RESULT: "wrong_result",
    CandidateStatus.TIMEOUT: "timeout",
    CandidateStatus.CRASH: "crash",
}


@dataclass(frozen=True)
class Document:
    name: str
    title: str
    applies_to: str  # PLATFORM/ARCH, PLATFORM/* or */*
    signals: frozenset[str]
    sources: tuple[str, ...]
    body: str

    def applies(self, platform: str, arch: str) -> int:
        """How closely it targets (platform, arch): 2 exactly, 1 the platform, 0 anywhere, -1 not."""
        want_platform, _, want_arch = self.applies_to.partition("/")
        if want_platform == "*":
            return 0
        if want_platform != platform:
            return -1
        return 1 if want_arch == "*" else 2 if want_arch == arch else -1

    def text(self) -> str:
        sources = "".join(f"\n  source: {s}" for s in self.sources)
        return f"## {self.title}{sources}\n{self.body.strip()}\n"


def parse(name: str, text: str) -> Document:
    """One knowledge file: a `---` header of `key: value` lines (sources as a `- ` list), then the body."""
    head, sep, body = text.removeprefix("---\n").partition("\n---\n")
    if not text.startswith("---\n") or not sep:
        raise ValueError(f"{name}: no '---' header")
    fields: dict[str, str] = {}
    sources: list[str] = []
    for line in head.splitlines():
        if line.startswith("  - "):
            sources.append(line[4:].strip())
        elif ":" in line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    missing = {"title", "applies_to", "signals"} - fields.keys()
    if missing or not sources:
        raise ValueError(f"{name}: header lacks {', '.join(sorted(missing)) or 'sources'}")
    signals = frozenset(s.strip() for s in fields["signals"].split(",") if s.strip())
    if not signals <= SIGNALS:
        raise ValueError(f"{name}: unknown signals {sorted(signals - SIGNALS)} (known: {sorted(SIGNALS)})")
    return Document(name, fields["title"], fields["applies_to"], signals, tuple(sources), body)


def load(directory: Path = KNOWLEDGE_DIR) -> list[Document]:
    return [parse(p.name, p.read_text()) for p in sorted(directory.glob("*.md")) if p.name != "README.md"]


def signals_of(failures: Iterable[CandidateStatus], profile: Iterable[ShapeMeasurement], timed: bool) -> set[str]:
    """The signals of a search so far: its candidates' failures and the best kernel's profile."""
    signals = {_FAILURE_SIGNALS[s] for s in failures if s in _FAILURE_SIGNALS}
    shapes = list(profile)
    if not timed:
        signals.add("untimed")
    elif shapes:
        memory = sum(s.bandwidth_fraction for s in shapes) / len(shapes)
        compute = sum(s.flops_fraction for s in shapes) / len(shapes)
        signals.add("memory_bound" if memory >= compute else "compute_bound")
        if max(memory, compute) < 0.1:
            signals.add("latency_bound")
    return signals


def retrieve(documents: Iterable[Document], platform: str, arch: str, signals: set[str], max_chars: int = 6000) -> list[Document]:
    """The documents for this target and these signals, nearest first, within `max_chars`:
    every "always" document, then those sharing a signal, ranked by how many they share and
    how closely they target the arch."""
    ranked = []
    for doc in documents:
        closeness = doc.applies(platform, arch)
        shared = len(doc.signals & signals)
        if closeness < 0 or not (shared or "always" in doc.signals):
            continue
        ranked.append(("always" not in doc.signals, -shared, -closeness, doc.name, doc))
    chosen, used = [], 0
    for *_, doc in sorted(ranked):
        size = len(doc.text())
        if used + size > max_chars:
            continue
        chosen.append(doc)
        used += size
    return chosen
