"""Start and stop the real Distribution registry (Debian's ``docker-registry``) for tests.

A process per configuration: a free loopback port, storage in a temp dir, waited
on until ``/v2/`` answers, stopped by its process id. Failure to start is an error
with the registry's own output, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_BINARY = "docker-registry"


def _registry_v3() -> str:
    """The upstream Distribution v3.0.0 registry (its README beside it), looked for where
    scripts/test.sh looks, in the same order: REGINSIGHT_REGISTRY_V3, else
    ``../shared/registry-v3/registry`` beside the checkout (/work/shared's for a clone
    elsewhere), else the one that script builds with Go into ``.cache/registry-v3``.

    A binary found must say v3.0.0 to ``--version``; any other stops the run (a 2.8 taken
    for 3.0 would prove nothing). None found: the first place looked, which the fixture
    then reports missing."""
    checkout = Path(__file__).resolve().parents[1]
    explicit = os.environ.get("REGINSIGHT_REGISTRY_V3")
    places = [Path(explicit)] if explicit else [
        checkout.parent / "shared" / "registry-v3" / "registry",
        Path("/work/shared/registry-v3/registry"),
        checkout / ".cache" / "registry-v3" / "registry",
    ]
    found = next((place for place in places if place.is_file()), None)
    if found is None:
        return str(places[0])
    try:
        answer = subprocess.run([str(found), "--version"], capture_output=True, text=True,
                                timeout=20)
        said = (answer.stdout or answer.stderr).strip().partition("\n")[0]
    except (OSError, subprocess.TimeoutExpired) as exc:
        said = str(exc)
    # "<argv0> github.com/distribution/distribution/v3 v3.0.0"
    if said.split()[-2:] != ["github.com/distribution/distribution/v3", "v3.0.0"]:
        raise RuntimeError(
            f"{found} is not Distribution v3.0.0's registry (its --version said "
            f"{said[:200]!r}); point REGINSIGHT_REGISTRY_V3 at that registry (how it is "
            "built: ../shared/registry-v3/README.md)")
    return str(found)


REGISTRY_V3_BINARY = _registry_v3()


def launch(command: list[str], log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen:
    """Start a server process in its own session, its output appended to ``log``."""
    with open(log, "ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def listening(process: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """Wait until ``process`` accepts connections on ``host:port``; False if it exits or
    the time runs out. (A bare socket: TLS set-ups may refuse a plain HTTP request.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen | None) -> None:
    """Stop a server by its process id: TERM, then KILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def registry_environment() -> dict[str, str]:
    """The registry's environment: ours, less AWS_CA_BUNDLE, with which the Go
    registry refuses to start its S3 driver."""
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


class RegistryStartError(RuntimeError):
    """The registry binary is missing, or the process did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _yaml(value: Any, indent: int = 0) -> str:
    """Tiny YAML writer for the registry config (dicts, lists, scalars); YAML is a
    superset of JSON for scalars, so strings are written JSON-quoted."""
    import json

    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines.append(_yaml(item, indent + 1))
        elif isinstance(item, list):
            lines.append(f"{pad}{key}: {json.dumps(item)}")
        else:
            lines.append(f"{pad}{key}: {json.dumps(item)}")
    return "\n".join(lines)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@dataclass
class RegistryServer:
    """One running registry process."""

    workdir: Path
    overrides: dict = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "http"
    process: subprocess.Popen | None = None
    binary: str = REGISTRY_BINARY  # Debian's 2.8; REGISTRY_V3_BINARY for Distribution 3

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def config(self) -> dict:
        base = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"{self.host}:{self.port}", "secret": "reginsight-tests"},
            "compatibility": {"schema1": {"enabled": True}},
        }
        return _merge(base, self.overrides)

    def start(self, *, timeout: float = 20.0) -> RegistryServer:
        binary = shutil.which(self.binary)
        if binary is None:
            raise RegistryStartError(
                f"{self.binary!r} not found: run the README's test command, which "
                "installs Debian's docker-registry (Distribution 3: ../shared/registry-v3, "
                "or REGINSIGHT_REGISTRY_V3=PATH)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.config_path.write_text(_yaml(self.config()) + "\n")
        self.process = launch([binary, "serve", str(self.config_path)],
                              self.workdir / "registry.log", env=registry_environment())
        if listening(self.process, self.host, self.port, timeout):
            return self
        output = (self.workdir / "registry.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RegistryStartError(f"registry did not start on {self.url}:\n{output}")

    def stop(self) -> None:
        stop_process(self.process)

    def garbage_collect(self, *extra: str, config: Path | None = None) -> str:
        """Run ``docker-registry garbage-collect`` on this registry's config (stopped),
        or on ``config``, a copy pointing at other storage."""
        result = subprocess.run(
            [self.binary, "garbage-collect", *extra, str(config or self.config_path)],
            capture_output=True, text=True, check=True, timeout=300,
            env=registry_environment(),
        )
        return result.stdout
