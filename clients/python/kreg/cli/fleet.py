"""`kreg fleet`: generation workers on a Ray cluster, one per accelerator (generator.fleet)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading

from kreg import logs


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("ray") is None:
        print("kreg fleet: Ray is not installed here: pip install 'kernel-registry[ray]'", file=sys.stderr)
        return 2
    from generator.fleet import Fleet, FleetConfig
    from generator.worker import WorkerConfig
    from kreg.cli.worker import settings_for

    logs.configure(args.KREG_LOG_FORMAT, logging.WARNING if args.quiet else logging.INFO)
    worker = WorkerConfig(registry=args.registry, lease_s=args.lease, settings=settings_for(args), signing_key=None)
    config = FleetConfig(
        ray_address=args.ray,
        worker=worker,
        reconcile_s=args.reconcile,
        start_timeout_s=args.start_timeout,
        worker_cpus=args.worker_cpus,
    )
    fleet = Fleet(config)  # connects to Ray, whose own signal handlers the next lines replace
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fleet.run(stop)
    return 0
