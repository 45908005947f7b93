"""kreg.logs: JSON lines (or text) carrying the request id being served; the CLI's bar."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from kreg import logs
from kreg.cli._output import ProgressBar


@pytest.fixture
def root_logger() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_json_lines_carry_the_request_id(root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    log = logging.getLogger("kreg.test")
    log.info("outside a request")
    token = logs.request_id.set("abc123")
    try:
        log.warning("inside one: %d", 7)
    finally:
        logs.request_id.reset(token)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["level"], e["message"], e.get("request_id")) for e in lines] == [
        ("info", "outside a request", None), ("warning", "inside one: 7", "abc123"), ("error", "failed", None),
    ]
    assert lines[0]["logger"] == "kreg.test" and lines[0]["ts"].endswith("+00:00")
    assert "RuntimeError: boom" in lines[2]["exception"]


def test_text_lines_name_the_request(root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("text", logging.WARNING)
    token = logs.request_id.set("feed42")
    try:
        logging.getLogger("kreg.test").warning("slow")
        logging.getLogger("kreg.test").info("not shown at WARNING")
    finally:
        logs.request_id.reset(token)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING kreg.test: slow [request feed42]")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="want one of text, json"):
        logs.configure("xml")


def test_progress_off_a_terminal_is_plain_lines_and_a_last_one(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar("fetching blobs", 4)
    for i in range(4):
        bar.advance(note=f"blob {i}")
    bar.log("a line between")
    bar.close()
    err = capsys.readouterr().err.splitlines()
    # The first state at once, nothing again within PLAIN_EVERY_S, the final state at close.
    assert err == [
        "fetching blobs [------------------------------] 0/4",
        "a line between",
        "fetching blobs [##############################] 4/4  blob 3",
    ]
