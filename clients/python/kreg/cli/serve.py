"""`kreg serve`: the registry server (imports `registry` only here, when asked to serve)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from registry.server import ServerConfig, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=Path(args.data), listen=args.listen, grace_s=args.grace)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
        logging.getLogger("kreg.serve").info("metrics on :%d/metrics", args.metrics_port)
    asyncio.run(serve(config))
    return 0
