"""The public surface and the cost of importing it."""

from __future__ import annotations

import subprocess
import sys

import reginsight as ri
from tests.images import Pusher


def test_public_names_are_pinned():
    assert set(ri.__all__) >= {
        "Registry", "Manifest", "ImageManifest", "ImageIndex", "Schema1Manifest", "Descriptor",
        "Platform", "Reference", "parse_reference", "parse_digest", "parse_manifest",
        "RegistryError", "DigestMismatch", "NotFound", "AuthenticationError",
    }
    for name in ri.__all__:
        assert hasattr(ri, name), name


def test_every_error_derives_from_the_one_base():
    errors = [getattr(ri, n) for n in ri.__all__
              if isinstance(getattr(ri, n), type) and issubclass(getattr(ri, n), Exception)
              and not issubclass(getattr(ri, n), Warning)]
    assert len(errors) > 10
    assert all(issubclass(e, ri.RegistryError) for e in errors)


def test_import_stays_light():
    code = "import sys, reginsight; print(sorted(m for m in ('pandas', 'matplotlib', " \
           "'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_cli_lists_repositories_and_tags(registry_server, prefix):
    pusher = Pusher(registry_server.url)
    pusher.image(f"{prefix}/cli", "v2")
    pusher.image(f"{prefix}/cli", "v1")
    run = [sys.executable, "-m", "reginsight", "ls", registry_server.url]
    repos = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    assert f"{prefix}/cli" in repos
    tags = subprocess.run([*run, f"{prefix}/cli"], capture_output=True, text=True, check=True)
    assert tags.stdout.split() == ["v1", "v2"]
    missing = subprocess.run([*run, f"{prefix}/none"], capture_output=True, text=True)
    assert missing.returncode == 1 and "NAME_UNKNOWN" in missing.stderr
