"""`kreg`: the command line. argparse only; each verb is a thin handler in its own module.

Exit codes: 0 ok, 1 other error, 2 bad usage or input, 3 not found, 4 registry unreachable
or deadline exceeded, 5 data loss (digest mismatch), 6 permission denied / unauthenticated,
7 a waited-for kernel ended as a reference directive.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from kreg import errors

DEFAULT_REGISTRY = "127.0.0.1:7600"

EXIT_CODES: dict[type[errors.KregError], int] = {
    errors.InvalidArgument: 2,
    errors.NotFound: 3,
    errors.Unavailable: 4,
    errors.DeadlineExceeded: 4,
    errors.DataLoss: 5,
    errors.PermissionDenied: 6,
    errors.Unauthenticated: 6,
}
EXIT_REFERENCE = 7


def _handler(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """Import a verb's module only when it runs: `kreg get` must not pay for `serve`'s imports."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(f"kreg.cli.{module}"), name)(args))

    return run


def _generation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-candidates", type=int, help="at most this many candidates per job (default: 24 on the target GPU, 3 in the interpreter)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kreg", description="Kernel Registry: the best known kernel for every key.")
    parser.add_argument(
        "--registry",
        default=os.environ.get("KREG_REGISTRY", DEFAULT_REGISTRY),
        help="registry address HOST:PORT (env KREG_REGISTRY; default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline in seconds (default %(default)s)")
    parser.add_argument(
        "--log-format", dest="KREG_LOG_FORMAT", choices=["text", "json"], default=os.environ.get("KREG_LOG_FORMAT", "text"),
        help="logs of serve, worker and fleet: text, or one JSON object per line (env KREG_LOG_FORMAT; default %(default)s)",
    )
    # Client credentials: set as the environment kreg.credentials reads, so workers and the
    # embedded workers `serve` starts inherit them.
    for flag, env, what in (
        ("--token-file", "KREG_TOKEN_FILE", "file holding the bearer token to present"),
        ("--tls-ca", "KREG_TLS_CA", "CA bundle to verify the registry by (turns TLS on)"),
        ("--tls-client-cert", "KREG_TLS_CERT", "client certificate, for mutual TLS"),
        ("--tls-client-key", "KREG_TLS_KEY", "client key, for mutual TLS"),
        ("--tls-server-name", "KREG_TLS_SERVER_NAME", "name to verify the registry's certificate by"),
    ):
        parser.add_argument(flag, dest=env, help=f"{what} (env {env})")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("serve", help="run the registry server")
    p.add_argument("--data", required=True, help="data directory (LMDB store)")
    p.add_argument("--listen", default=DEFAULT_REGISTRY, help="HOST:PORT to listen on (default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain calls on SIGTERM (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="embedded local workers to start (0: none; default %(default)s)")
    p.add_argument("--auth-file", help="token file (ROLE TOKEN [NAME] per line; roles reader, worker, admin); default: no auth")
    p.add_argument("--tls-cert", help="server certificate chain (PEM); with --tls-key, serve TLS")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", help="CA that client certificates must be signed by: mutual TLS")
    p.set_defaults(func=_handler("serve", "run"))

    p = sub.add_parser("worker", help="run a generation worker against a registry")
    p.add_argument(
        "--serve", action="append", default=[], metavar="PLATFORM/ARCH",
        help="targets to lease jobs for (repeatable; '*' matches any; default: the local GPU, or every target on a CPU host)",
    )
    p.add_argument("--lease", type=float, default=60.0, help="lease length in seconds, renewed every third (default %(default)s)")
    p.add_argument("--no-device", action="store_true", help="never use a local GPU: verify in the interpreter only")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    _generation_flags(p)
    p.set_defaults(func=_handler("worker", "run"))

    p = sub.add_parser(
        "fleet", help="run one generation worker per accelerator of a Ray cluster (needs kernel-registry[ray])",
        description="Starts a worker on every accelerator of the Ray cluster, placed by its node's labels "
        "kreg.io/platform and kreg.io/arch (or Ray's accelerator type of a GPU node), and keeps them running: "
        "workers for nodes that join, restarts for workers that die. See docs/deploy.md.",
    )
    p.add_argument("--ray", default=os.environ.get("RAY_ADDRESS", "auto"), help="Ray cluster address (env RAY_ADDRESS; default %(default)s)")
    p.add_argument("--lease", type=float, default=60.0, help="workers' lease length in seconds (default %(default)s)")
    p.add_argument("--reconcile", type=float, default=10.0, help="seconds between looks at the cluster (default %(default)s)")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds a worker may take to come up (default %(default)s)")
    p.add_argument("--worker-cpus", type=float, default=0.0, help="CPUs each worker reserves in Ray (default %(default)s)")
    _generation_flags(p)
    p.set_defaults(func=_handler("fleet", "run"))

    p = sub.add_parser("demo", help="an embedded registry + worker, playing a serving host asking for a model's kernels")
    p.add_argument("--data", help="data directory (default: a temporary one)")
    p.add_argument("--model", default="dlrm-v2", help="model profile (default %(default)s)")
    p.add_argument(
        "--target", action="append", default=[], metavar="PLATFORM/ARCH",
        help="serving-host targets (repeatable; default nvidia/sm_90 and amd/gfx942)",
    )
    p.add_argument("--wait", type=float, default=900.0, help="seconds to wait for the kernels (default %(default)s)")
    p.set_defaults(func=_handler("demo", "run"))

    p = sub.add_parser("get", help="resolve one kernel key")
    p.add_argument("key", help="platform/arch/model/operator@version{params}")
    p.add_argument("--toolchain", help="caller's toolchain TRITON_VERSION/BACKEND (default: the installed triton)")
    p.add_argument("--no-queue", action="store_true", help="do not queue a generation job on a miss")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to SECONDS for a kernel to be generated")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_handler("read", "get"))

    p = sub.add_parser("manifest", help="resolve every kernel a model needs in one call")
    p.add_argument("--platform", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("operators", nargs="*", help="operator@version{params} ... (default: the model's profile)")
    p.add_argument("--toolchain", help="caller's toolchain TRITON_VERSION/BACKEND (default: the installed triton)")
    p.add_argument("--no-queue", action="store_true")
    p.add_argument("--training", action="store_true", help="the profile's backward kernels too (a training job's manifest)")
    p.add_argument("--lock", metavar="FILE", help="pin the answer to FILE and fetch its blobs into --cache")
    p.add_argument("--cache", metavar="DIR", default=os.path.expanduser("~/.cache/kreg"), help="node-local blob cache")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("read", "manifest"))

    p = sub.add_parser("warm", help="queue generation of every kernel a model needs that is not served yet")
    p.add_argument("--model", required=True, help="model profile (see kreg.profiles)")
    p.add_argument("--platform", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even what is served")
    p.add_argument("--training", action="store_true", help="the profile's backward kernels too, for a training job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("write", "warm"))

    p = sub.add_parser("ls", help="list published kernels")
    p.add_argument("--platform", default="")
    p.add_argument("--arch", default="")
    p.add_argument("--model", default="")
    p.add_argument("--op", default="", help="operator name")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows (default %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("read", "ls"))

    p = sub.add_parser("describe", help="every variant of a key, or one artifact by id")
    p.add_argument("target", help="a kernel key or an artifact id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("read", "describe"))

    p = sub.add_parser("jobs", help="list generation jobs, or show one with its candidate log")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--state", choices=["queued", "leased", "succeeded", "failed"])
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("read", "jobs"))

    p = sub.add_parser("workers", help="list the workers the registry has heard from lately, and what they serve")
    p.add_argument("--all", action="store_true", help="also the workers no longer live")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("read", "workers"))

    p = sub.add_parser("publish", help="publish an artifact described by a JSON spec and its files")
    p.add_argument("spec", help="JSON spec; file paths in it are relative to the spec")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("write", "publish"))

    p = sub.add_parser("keygen", help="make an ed25519 signing key (PATH, 0600) and its public key (PATH.pub)")
    p.add_argument("path")
    p.set_defaults(func=_handler("write", "keygen"))

    p = sub.add_parser("retract", help="quarantine a kernel fleet-wide")
    p.add_argument("artifact_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_handler("write", "retract"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for env in ("KREG_TOKEN_FILE", "KREG_TLS_CA", "KREG_TLS_CERT", "KREG_TLS_KEY", "KREG_TLS_SERVER_NAME", "KREG_LOG_FORMAT"):
        if getattr(args, env):
            os.environ[env] = getattr(args, env)
    try:
        return args.func(args)
    except errors.KregError as e:
        print(f"kreg {args.verb}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CODES.get(type(e), 1)
    except (ValueError, OSError) as e:
        print(f"kreg {args.verb}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
