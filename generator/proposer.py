"""The model proposer: a language model writes new kernel source for an operator, beside the
template's configuration search (KernelEvolve's loop). Off unless configured.

Each proposal is asked of an OpenAI-compatible chat endpoint (`POST {url}/chat/completions`)
with: the operator's PyTorch reference, the current best kernel and its config, what the
evaluator measured of it (time, fraction of roofline, which bound), every failure so far with
its reason, and the knowledge documents the runtime signals retrieve (generator/retrieval.py).
The reply's source is vetted (generator/sandbox.py) and then evaluated like a template
candidate. A model that is down, slow or out of budget ends the proposer for the job, never
the job: the template's search result stands.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.operators.base import OperatorTemplate
from generator.retrieval import Document, load, retrieve

log = logging.getLogger(__name__)

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
MAX_FAILURES_IN_PROMPT = 8


class ProposerError(RuntimeError):
    """The model could not be asked (unreachable, slow, an error reply, no source in it)."""


@dataclass(frozen=True, kw_only=True)
class ProposerConfig:
    url: str  # the API base, e.g. http://llm.internal:8000/v1
    model: str
    api_key: str = ""
    timeout_s: float = 120.0  # one chat request
    max_proposals: int = 4  # per job
    max_tokens: int = 100_000  # per job: prompt + completion tokens, as the server reports them
    max_reply_tokens: int = 4096
    temperature: float = 0.2
    knowledge_chars: int = 6000  # retrieved documents per prompt

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"proposer url: want http(s)://..., got {self.url!r}")
        if not self.model:
            raise ValueError("proposer model: required")
        if self.max_proposals < 1 or self.max_tokens < 1 or self.timeout_s <= 0:
            raise ValueError("proposer budgets: max_proposals, max_tokens and timeout_s must be positive")

    @classmethod
    def from_env(cls) -> ProposerConfig | None:
        """KREG_LLM_URL and KREG_LLM_MODEL turn it on; KREG_LLM_API_KEY or KREG_LLM_API_KEY_FILE,
        KREG_LLM_MAX_PROPOSALS, KREG_LLM_MAX_TOKENS, KREG_LLM_TIMEOUT_S tune it."""
        url, model = os.environ.get("KREG_LLM_URL", ""), os.environ.get("KREG_LLM_MODEL", "")
        if not url and not model:
            return None
        key = os.environ.get("KREG_LLM_API_KEY", "")
        if not key and (path := os.environ.get("KREG_LLM_API_KEY_FILE")):
            key = Path(path).read_text().strip()
        numbers = {
            name: kind(os.environ[env])
            for name, env, kind in (
                ("max_proposals", "KREG_LLM_MAX_PROPOSALS", int), ("max_tokens", "KREG_LLM_MAX_TOKENS", int), ("timeout_s", "KREG_LLM_TIMEOUT_S", float),
            )
            if env in os.environ
        }
        return cls(url=url, model=model, api_key=key, **numbers)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Failure:
    """A candidate that did not pass: which one, how, and the evaluator's reason."""

    candidate: str
    status: str
    reason: str


@dataclass(frozen=True)
class Context:
    """What the model is told for one proposal."""

    platform: str
    arch: str
    params: dict[str, str]
    best_source: str
    best_config: str
    profile: str  # the evaluator's measurements of the best, as text ("" when none passed)
    failures: tuple[Failure, ...]
    signals: frozenset[str]


@dataclass
class Proposer:
    """One job's proposals: counts what it spent; `propose` returns None once it is spent or failed."""

    config: ProposerConfig
    template: OperatorTemplate
    documents: list[Document] = field(default_factory=load)
    proposals: int = 0
    tokens: int = 0
    stopped: str = ""  # why no more proposals will be asked for, once so

    @property
    def name(self) -> str:
        return f"llm:{self.config.model}"

    def propose(self, context: Context) -> str | None:
        """New kernel source, or None (budget spent, or the model failed: see `stopped`)."""
        if self.stopped:
            return None
        if self.proposals >= self.config.max_proposals:
            self.stopped = f"{self.proposals} proposals made (the limit)"
            return None
        if self.tokens >= self.config.max_tokens:
            self.stopped = f"token budget spent ({self.tokens} of {self.config.max_tokens})"
            return None
        self.proposals += 1
        try:
            reply, used = self._chat(self.messages(context))
        except ProposerError as e:
            self.stopped = f"model unavailable: {e}"
            log.warning("proposer %s: %s; the template search result stands", self.name, e)
            return None
        self.tokens += used
        found = _FENCE.findall(reply)
        if not found:
            return reply.strip()  # vetted like any source: a reply of prose fails the sandbox with its reason
        return max(found, key=len).strip() + "\n"

    def messages(self, context: Context) -> list[dict[str, str]]:
        docs = retrieve(self.documents, context.platform, context.arch, set(context.signals), self.config.knowledge_chars)
        failures = "\n".join(f"- {f.candidate}: {f.status}: {f.reason}" for f in context.failures[-MAX_FAILURES_IN_PROMPT:]) or "- none yet"
        system = (
            "You write Triton GPU kernels. Reply with one complete Python module in a ```python block: "
            "only `import triton` / `import triton.language as tl` imports and @triton.jit functions. "
            "Keep every entry point's name and parameter list exactly as in the current kernel. "
            "No torch, no file, process or network access."
        )
        user = "\n\n".join(
            [
                f"Operator `{self.template.name}@{self.template.version}` with params {context.params}, "
                f"for {context.platform}/{context.arch}. The kernel must match this PyTorch reference:\n"
                f"```python\n{_reference_source(self.template)}\n```",
                f"Current best kernel (config {context.best_config or 'none passed'}):\n```python\n{context.best_source}\n```",
                f"What the evaluator measured of it: {context.profile or 'nothing (no candidate passed yet, or no GPU to time on)'}",
                f"Candidates that failed, with the evaluator's reasons:\n{failures}",
                "Hardware notes and rules (retrieved for this target and these signals: "
                f"{', '.join(sorted(context.signals)) or 'none'}):\n\n" + "\n".join(d.text() for d in docs),
                "Write a faster kernel that stays correct, or fix the failures above.",
            ]
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _chat(self, messages: list[dict[str, str]]) -> tuple[str, int]:
        body = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_reply_tokens,
        }
        request = urllib.request.Request(
            self.config.url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                reply: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise ProposerError(f"HTTP {e.code} from {self.config.url}: {e.read()[:300]!r}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise ProposerError(f"{self.config.url}: {getattr(e, 'reason', e)}") from None
        except ValueError as e:
            raise ProposerError(f"{self.config.url}: the reply is not JSON ({e})") from None
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ProposerError(f"{self.config.url}: no choices[0].message.content in the reply") from None
        usage = reply.get("usage") or {}
        used = int(usage.get("total_tokens") or 0) or (sum(len(m["content"]) for m in messages) + len(text)) // 4
        return str(text), used


def _reference_source(template: OperatorTemplate) -> str:
    """The reference as code: the template's call, and the kreg.ops.reference function it names."""
    import kreg.ops.reference as reference

    parts = [inspect.getsource(template.reference).strip()]
    function = getattr(reference, template.name, None)
    if function is not None:
        parts.append(inspect.getsource(function).strip())
    return "\n\n".join(parts)
