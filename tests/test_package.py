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


def test_the_built_wheel_runs_the_readme_command_on_its_sample(tmp_path):
    """Not only `pip install -e .`: the wheel a user installs must carry the sample."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel"), str(root)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("reginsight-*.whl"))
    venv = tmp_path / "venv"
    # the venv sees this interpreter's packages (nothing downloads), but reginsight only
    # from the wheel: a source checkout on the path would hide a missing file
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--force-reinstall", str(wheel)], check=True, capture_output=True)
    done = subprocess.run([venv / "bin" / "reginsight", "report", "-o", "r.html"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "42 tags" in done.stderr and (tmp_path / "r.html").stat().st_size > 10_000
    located = subprocess.run([python, "-c", "import reginsight; print(reginsight.__file__)"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(venv) in located  # the wheel's copy, not the checkout


def test_dir_lists_lazy_names_before_they_load():
    """Tab completion offers ``ri.crawl`` etc. in a fresh interpreter, without loading
    pandas to do so (tests/test_architecture.py checks it after they loaded)."""
    code = ("import sys, reginsight as ri; names = dir(ri); "
            "print(all(n in names for n in ri.__all__), 'crawl' in names, "
            "'storage_summary' in names, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "True", "True", "False"]


def test_help_of_inventory_documents_every_column_and_dtype():
    """``help(ri.Inventory)`` is the reference a user has: each frame's columns, with
    the dtype they really have, and no pointer to a file the user does not have."""
    import re

    from reginsight.inventory._frames import SCHEMAS, STORAGE_COLUMNS

    doc = ri.Inventory.__doc__
    assert "DESIGN" not in doc
    parts = re.split(r"\n {4}``(\w+)``, ", doc)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(sections) == set(SCHEMAS)
    for name, schema in SCHEMAS.items():
        for column, dtype in schema.items():
            pattern = rf"\b{re.escape(column)}\b[^()]*\({re.escape(dtype)}[):]"
            assert re.search(pattern, sections[name]), f"{name}.{column} ({dtype})"
    for name, columns in STORAGE_COLUMNS.items():
        for column, dtype in columns.items():
            assert f"``{name}.{column}`` ({dtype}" in doc
