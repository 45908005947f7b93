"""The committed gRPC stubs match protos/kreg/v1 and import on the fleet's grpcio.

The stubs are committed so hosts need no grpcio-tools; an edit to the .proto without
regenerating would ship a contract the code does not speak, so this fails until they agree.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# GPU hosts run grpcio 1.84.0, and stubs from a newer grpcio-tools refuse to import there.
PINNED_GRPC = "1.84.0"


def _gen_protos() -> ModuleType:
    """scripts/ is not a package: load gen_protos.py from its path."""
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_is_the_pinned_grpcio_tools() -> None:
    installed = importlib.metadata.version("grpcio-tools")
    assert installed == PINNED_GRPC, (
        f"grpcio-tools {installed} is installed; stubs must come from {PINNED_GRPC}: "
        f"pip install grpcio-tools=={PINNED_GRPC}"
    )


def test_committed_stubs_match_the_protos() -> None:
    stale = _gen_protos().stale_files()
    assert stale == [], (
        f"stubs in clients/python/kreg/v1 differ from protos/kreg/v1: {', '.join(stale)}; "
        "run `python scripts/gen_protos.py` and commit the result"
    )


def test_committed_grpc_stub_targets_the_fleets_grpcio() -> None:
    text = (ROOT / "clients" / "python" / "kreg" / "v1" / "registry_pb2_grpc.py").read_text()
    found = re.search(r"^GRPC_GENERATED_VERSION = '([^']*)'$", text, re.MULTILINE)
    assert found is not None, "registry_pb2_grpc.py declares no GRPC_GENERATED_VERSION"
    assert found.group(1) == PINNED_GRPC, (
        f"registry_pb2_grpc.py was generated for grpcio {found.group(1)}; GPU hosts run "
        f"{PINNED_GRPC}: regenerate with grpcio-tools=={PINNED_GRPC} (`python scripts/gen_protos.py`)"
    )
