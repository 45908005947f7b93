"""Regenerate the Python stubs of protos/kreg/v1 into clients/python/kreg/v1.

The stubs are committed so that neither users nor the server image need grpcio-tools.
grpcio-tools is pinned (see pyproject's `dev` extra) because stubs from a newer
grpcio-tools refuse to import on an older grpcio runtime; tests compare the committed
stubs with a fresh generation and fail when they differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
STUB_DIR = ROOT / "clients" / "python"
PROTOS = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / "kreg" / "v1").glob("*.proto"))
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every proto under protos/kreg/v1; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return sorted(p for p in (out_root / "kreg" / "v1").iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def stale_files() -> list[str]:
    """Names of committed stubs that differ from a fresh generation (or are missing/extra)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_bytes() for p in generate(Path(tmp))}
    committed_dir = STUB_DIR / "kreg" / "v1"
    committed = {
        p.name: p.read_bytes() for p in committed_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES)
    }
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed stubs are stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale stubs: " + ", ".join(stale) + " (run python scripts/gen_protos.py)", file=sys.stderr)
            return 1
        print("stubs are up to date")
        return 0
    for path in generate(STUB_DIR):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
