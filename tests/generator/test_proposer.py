"""The model proposer against a local fake chat server that replays scripted answers, through
a real registry, the real sandbox and the real evaluator children (interpreter on this CPU).

`triple@1`'s shipped kernel is wrong (tests/generator/llm_operator), so only a proposal can
pass: a wrong one, a silent one (writes nothing), a torch-calling one, a file-opening one
and a socket-importing one are each rejected with their reason, every reason reaches the
next prompt, and the correct one is published as the model's. A model that is down or
slow ends the proposer, not the job."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from generator.evaluators import Evaluators
from generator.pipeline import GenerationSettings
from generator.proposer import Context, Proposer, ProposerConfig
from generator.retrieval import load, retrieve, signals_of
from generator.search import SearchBudget
from generator.worker import WorkerConfig, process, worker_info
from kreg.client import Client
from kreg.keys import KernelKey
from kreg.model import CandidateStatus, JobState, ResolutionKind

KEY = KernelKey.parse("nvidia/sm_90/test/triple@1")

HEADER = "import triton\nimport triton.language as tl\n\n\n@triton.jit\ndef triple_kernel(x_ptr, y_ptr, N, BLOCK: tl.constexpr):\n"
LOAD = "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n    mask = offs < N\n    x = tl.load(x_ptr + offs, mask=mask, other=0.0)\n"
WRONG = HEADER + LOAD + "    tl.store(y_ptr + offs, x * 4.0, mask=mask)\n"
SILENT = HEADER + LOAD
TORCH = HEADER + LOAD + "    y = torch.empty(N)\n    tl.store(y_ptr + offs, x * 3.0, mask=mask)\n"
FILE = HEADER + "    open('/etc/passwd').read()\n" + LOAD + "    tl.store(y_ptr + offs, x * 3.0, mask=mask)\n"
NETWORK = "import socket\n" + HEADER + LOAD + "    tl.store(y_ptr + offs, x * 3.0, mask=mask)\n"
CORRECT = HEADER + LOAD + "    tl.store(y_ptr + offs, x * 3.0, mask=mask)\n"


def fenced(source: str) -> str:
    return f"Here is a kernel that should work.\n\n```python\n{source}```\n"


class FakeChat:
    """An OpenAI-compatible /v1/chat/completions answering from a script: each entry is a
    reply text, or ("sleep", seconds) to be slow, or ("status", code) to fail."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                chat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                step = chat.script.pop(0) if chat.script else ("status", 503)
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = fenced(CORRECT)
                if isinstance(step, tuple):
                    self.send_response(step[1])
                    self.end_headers()
                    return
                reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": step}}], "usage": {"total_tokens": 1500}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def evaluators() -> Iterator[Evaluators]:
    with Evaluators(use_device=False) as e:
        yield e


def _run_job(server, evaluators: Evaluators, proposer: ProposerConfig, candidates: int = 8):  # type: ignore[no-untyped-def]
    config = WorkerConfig(
        registry=server.address,
        settings=GenerationSettings(
            interpreted_budget=SearchBudget(max_candidates=candidates, max_seconds=600, draft=1, plateau=0),
            candidate_timeout_s=60,
            extra_operators=("llm_operator",),
            proposer=proposer,
        ),
    )
    with Client(server.address, timeout_s=10) as client:
        client.get_kernel(KEY)
        job = client.lease_job(worker_info(config, evaluators), wait_s=2, lease_s=120)
        assert job is not None
        process(client, job, evaluators, config)
        done, log = client.get_job(job.job_id)
        resolution = client.get_kernel(KEY, queue=False)
        source = client.fetch_blob(resolution.artifact.kernels[0].source).decode() if resolution.artifact else ""
    return done, log, resolution, source


def test_bad_proposals_are_rejected_with_reasons_and_the_correct_one_is_published(server, evaluators: Evaluators) -> None:  # type: ignore[no-untyped-def]
    chat = FakeChat([fenced(s) for s in (WRONG, SILENT, TORCH, FILE, NETWORK, CORRECT)])
    try:
        proposer = ProposerConfig(url=chat.url, model="fake-coder", api_key="sk-test", max_proposals=6)
        done, log, resolution, source = _run_job(server, evaluators, proposer)
    finally:
        chat.close()

    assert done.state is JobState.SUCCEEDED, done.last_error
    statuses = [(c.config.split(" ")[0], c.status) for c in log]
    assert statuses == [
        ('{"BLOCK":', CandidateStatus.WRONG_RESULT),  # the template's own (broken) kernel
        ("llm:fake-coder#1", CandidateStatus.WRONG_RESULT),
        ("llm:fake-coder#2", CandidateStatus.WRONG_RESULT),
        ("llm:fake-coder#3", CandidateStatus.REJECTED),
        ("llm:fake-coder#4", CandidateStatus.REJECTED),
        ("llm:fake-coder#5", CandidateStatus.REJECTED),
        ("llm:fake-coder#6", CandidateStatus.PASSED),
    ]
    reasons = [c.reason for c in log]
    assert "elements wrong" in reasons[1] and "never written" in reasons[2]
    assert "uses 'torch'" in reasons[3] and "uses 'open'" in reasons[4] and "only triton imports" in reasons[5]
    # Every failure so far went into the next prompt, with its reason.
    prompts = chat.prompts()
    assert len(prompts) == 6
    for k, prompt in enumerate(prompts):  # prompt k follows candidates 0..k
        assert all(reason[:60] in prompt for reason in reasons[: k + 1]), k
    # The prompt carries the reference, the current kernel and retrieved knowledge with sources.
    assert "inputs[\"x\"] * 3" in prompts[0] and "def triple_kernel" in prompts[0]
    assert "Correctness rules every kernel must keep" in prompts[0] and "source: " in prompts[0]
    assert chat.requests[0]["auth"] == "Bearer sk-test" and chat.requests[0]["model"] == "fake-coder"
    assert chat.requests[0]["path"] == "/v1/chat/completions"
    # Published as the model's kernel: its source is the blob, the provenance names the proposer.
    assert resolution.kind is not ResolutionKind.REFERENCE and resolution.artifact is not None
    assert source == CORRECT
    assert resolution.artifact.provenance.search_strategy.endswith("+llm:fake-coder; won by llm:fake-coder")


def test_a_model_that_is_down_ends_the_proposer_not_the_job(server, evaluators: Evaluators) -> None:  # type: ignore[no-untyped-def]
    chat = FakeChat([("status", 503)])
    try:
        done, log, resolution, _ = _run_job(server, evaluators, ProposerConfig(url=chat.url, model="fake-coder"))
    finally:
        chat.close()
    # The job ends by its own rules (here: the template's only kernel is wrong), with why.
    assert done.state is JobState.FAILED
    assert "no candidate passed (wrong_result" in done.last_error
    assert "llm:fake-coder: 1 proposals, stopped: model unavailable: HTTP 503" in done.last_error
    assert [c.status for c in log] == [CandidateStatus.WRONG_RESULT] and len(chat.requests) == 1


def test_a_slow_model_times_out_and_ends_the_proposer(server, evaluators: Evaluators) -> None:  # type: ignore[no-untyped-def]
    chat = FakeChat([("sleep", 20)])
    try:
        done, _, _, _ = _run_job(server, evaluators, ProposerConfig(url=chat.url, model="fake-coder", timeout_s=1.5))
    finally:
        chat.close()
    # The request timed out (the model would have answered a correct kernel after 20 s): the
    # proposer stopped, and the job ended without that answer.
    assert done.state is JobState.FAILED and "stopped: model unavailable" in done.last_error and "timed out" in done.last_error
    assert len(chat.requests) == 1


def test_retrieval_follows_the_runtime_signals() -> None:
    documents = load()
    compile_error = signals_of([CandidateStatus.COMPILE_ERROR], [], timed=False)
    titles = [d.title for d in retrieve(documents, "nvidia", "sm_90", compile_error)]
    assert titles[0] == "Correctness rules every kernel must keep" and "Reading Triton compile errors" in titles
    assert not any("memory" in t.lower() for t in titles)

    from kreg.model import ShapeMeasurement, TuningShape

    memory_bound = signals_of([], [ShapeMeasurement(TuningShape({"N": 1}), 0.1, bandwidth_fraction=0.4, flops_fraction=0.01)], timed=True)
    assert memory_bound == {"memory_bound"}
    titles = [d.title for d in retrieve(documents, "nvidia", "sm_90", memory_bound)]
    assert "NVIDIA H100 / H200 (sm_90) memory hierarchy" in titles and "Memory-bound kernels: move each byte once, in wide coalesced accesses" in titles
    assert not any("MI300X" in t or "A100" in t for t in titles)  # other targets' notes stay out
    amd = [d.title for d in retrieve(documents, "amd", "gfx942", memory_bound)]
    assert any("MI300X" in t for t in amd) and not any("H100" in t for t in amd)
    # Every document names its sources.
    assert all(d.sources for d in documents)


def test_the_proposer_stops_at_its_token_budget() -> None:
    chat = FakeChat([fenced(CORRECT)] * 3)
    try:
        from generator.operators import load_template

        proposer = Proposer(ProposerConfig(url=chat.url, model="m", max_tokens=2000, max_proposals=10), load_template("llm_operator"))
        context = Context("nvidia", "sm_90", {}, CORRECT, "", "", (), frozenset())
        assert proposer.propose(context) == CORRECT and proposer.propose(context) == CORRECT  # 1500 + 1500 tokens
        assert proposer.propose(context) is None and proposer.stopped.startswith("token budget spent (3000 of 2000)")
    finally:
        chat.close()
