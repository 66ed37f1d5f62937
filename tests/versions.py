"""The Distribution versions every registry test runs on, and a server of each: Debian's
2.8 (schema1 accepted, as the tests configure it) and upstream v3.0.0 (no schema1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.registry_server import REGISTRY_BINARY, REGISTRY_V3_BINARY, RegistryServer

#: version -> (binary, what its configuration needs): 3.0 has no schema1 to enable
VERSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "2.8": (REGISTRY_BINARY, {}),
    "3.0": (REGISTRY_V3_BINARY, {"compatibility": None}),
}


def registry_of(version: str, workdir: Path, **overrides: Any) -> RegistryServer:
    """A registry of ``version`` ("2.8" or "3.0"), not started, its storage in
    ``workdir``; ``overrides`` merged into its configuration."""
    binary, needs = VERSIONS[version]
    return RegistryServer(workdir, binary=binary, overrides={**needs, **overrides})


def version_of(server: RegistryServer) -> str:
    """Which version ``server`` runs: "2.8" or "3.0"."""
    return "3.0" if server.binary == REGISTRY_V3_BINARY else "2.8"
