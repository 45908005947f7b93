"""`kreg worker`: a standalone generation worker (imports `generator` only here)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from kreg import logs

if TYPE_CHECKING:
    from generator.pipeline import GenerationSettings


def parse_capability(text: str) -> tuple[str, str]:
    platform, sep, arch = text.partition("/")
    if not sep or not platform or not arch:
        raise ValueError(f"--serve: want PLATFORM/ARCH ('*' matches any), got {text!r}")
    return platform, arch


def settings_for(args: argparse.Namespace) -> GenerationSettings:
    """The generation settings `--max-candidates` asks for (the defaults without it), with the
    model proposer when the environment configures one (KREG_LLM_URL, KREG_LLM_MODEL, ...)."""
    from generator.pipeline import GenerationSettings
    from generator.proposer import ProposerConfig

    settings = GenerationSettings(proposer=ProposerConfig.from_env())
    if args.max_candidates is None:
        return settings
    return replace(
        settings,
        tuned_budget=replace(settings.tuned_budget, max_candidates=args.max_candidates),
        interpreted_budget=replace(settings.interpreted_budget, max_candidates=min(args.max_candidates, settings.interpreted_budget.max_candidates)),
    )


def run(args: argparse.Namespace) -> int:
    from generator.worker import WorkerConfig, run_worker
    from kreg.model import Capability

    logs.configure(args.KREG_LOG_FORMAT, logging.WARNING if args.quiet else logging.INFO)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
        logging.getLogger("kreg.worker").info("metrics on :%d/metrics", args.metrics_port)
    capabilities = tuple(Capability(*parse_capability(s)) for s in args.serve)
    config = WorkerConfig(
        registry=args.registry, capabilities=capabilities, lease_s=args.lease, use_device=not args.no_device, settings=settings_for(args)
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_worker(config, stop)
    return 0
