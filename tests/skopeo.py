"""skopeo, the independent client the tests cross-check reginsight against."""

from __future__ import annotations

import json
import shutil
import subprocess


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("skopeo")
    assert binary, "skopeo not installed: run the README's test command (scripts/test.sh)"
    return subprocess.run([binary, *args], capture_output=True, check=True, timeout=timeout)


def inspect_raw(url: str, repository: str, reference: str) -> bytes:
    """The manifest bytes exactly as skopeo fetches them."""
    host = url.split("://", 1)[1]
    sep = "@" if ":" in reference else ":"
    return skopeo("inspect", "--raw", "--tls-verify=false",
                  f"docker://{host}/{repository}{sep}{reference}").stdout


def list_tags(url: str, repository: str) -> list[str]:
    host = url.split("://", 1)[1]
    out = skopeo("list-tags", "--tls-verify=false", f"docker://{host}/{repository}").stdout
    return json.loads(out)["Tags"]
