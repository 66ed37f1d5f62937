"""The documentation: what `mkdocs build --strict` (scripts/test.sh) cannot see by itself,
and the griffe extension that makes it fail on a public name without a docstring."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

import reginsight as ri

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference"


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def test_every_public_class_and_function_has_a_docstring():
    documentable = {name: getattr(ri, name) for name in ri.__all__}
    documentable = {name: obj for name, obj in documentable.items()
                    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj)}
    assert len(documentable) > 80  # constants (NO_RETRY, __version__) are the others
    assert [name for name, obj in documentable.items() if not (obj.__doc__ or "").strip()] == []


def test_every_public_name_has_one_entry_in_the_api_reference():
    entries = Counter(name for page in sorted(REFERENCE.glob("*.md"))
                      for name in re.findall(r"^::: reginsight\.(\w+)$",
                                             page.read_text(encoding="utf-8"), flags=re.M))
    public = set(ri.__all__) - {"__version__"}  # the reference's index page names it
    assert sorted(public - set(entries)) == [], "public names missing from docs/reference"
    assert sorted(set(entries) - public - {"_errors"}) == [], "entries that are not public"
    assert [name for name, count in entries.items() if count > 1] == []


def test_the_readme_opens_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["# reginsight", "", "```bash"]
    assert lines[3].startswith("pip install -e . && reginsight report ")
    assert lines[4].startswith("bash scripts/test.sh ")
    assert lines[5] == "```"


def test_the_readme_reads_in_three_minutes():
    # about 200 words a minute, code included
    assert len(README.read_text(encoding="utf-8").split()) <= 600


def _github_anchors(markdown: str) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_the_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text)
    links = [markdown or html for markdown, html in links]
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links to the docs"
    assert "docs/images/explorer.png" in local and "docs/images/report.png" in local
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README links to {link}: no such file"
        if anchor:
            assert anchor in _github_anchors(target.read_text(encoding="utf-8")), link


def test_the_readme_notebook_example_runs(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    (example,) = _code_blocks(README.read_text(encoding="utf-8"), "python")
    assert len(example.strip().splitlines()) <= 10
    *statements, last = example.strip().splitlines()
    scope: dict = {}
    try:
        exec("\n".join(statements), scope)  # noqa: S102 - the README's own code
        explorer = eval(last, scope)  # noqa: S307
    finally:
        plt.close("all")
    assert type(explorer).__name__ == "Explorer"
    assert scope["plan"].attrs["reclaimable_bytes"] > 0


def test_the_test_command_builds_the_docs_strictly():
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    build = [line for line in script.splitlines() if "mkdocs build" in line]
    assert len(build) == 1 and "--strict" in build[0]
    assert "--quiet" not in build[0] and " -q" not in build[0]  # it hides the warnings
    assert "-e '.[test,docs]'" in script


# --- the griffe extension (scripts/docs_griffe.py) ------------------------------------

def _extension():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("docs_griffe",
                                                  ROOT / "scripts" / "docs_griffe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_extension_reads_all_as_the_package_exports_it():
    names = _extension().public_names(ROOT / "reginsight" / "__init__.py")
    assert list(names) == list(ri.__all__)
    for name, module in names.items():
        if module is not None:  # loaded on first use: documented from its module
            assert getattr(ri, name).__module__ == f"reginsight.{module}"


def _load(tmp_path: Path, source: str, **options):
    import griffe

    docs = _extension()
    package = tmp_path / "demo"
    package.mkdir()
    (package / "__init__.py").write_text(source, encoding="utf-8")
    (package / "_impl.py").write_text(
        '"""Implementation."""\n\n'
        "def documented():\n"
        '    """Returns :class:`Thing`; see :func:`demo.undocumented` and :mod:`._impl`."""\n\n'
        "def undocumented():\n    pass\n\n"
        "class Thing:\n"
        '    """A thing. Its :meth:`size` matters::\n\n        code\n\n    Then more.\n    """\n\n'
        "    def size(self):\n"
        '        """The size."""\n\n'
        "    def color(self):\n        pass\n\n"
        "#: What every thing starts as.\nDEFAULT = Thing()\n",
        encoding="utf-8")
    return griffe.load("demo", search_paths=[str(tmp_path)], docstring_parser="sphinx",
                       extensions=griffe.load_extensions(
                           docs.ReginsightDocs(package="demo", **options)))


PACKAGE = ('from ._impl import DEFAULT, Thing\n'
           '_LAZY = {"documented": "_impl", "undocumented": "_impl"}\n'
           '__all__ = [*_LAZY, "DEFAULT", "Thing"]\n')


def test_a_public_name_without_a_docstring_is_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _load(tmp_path, PACKAGE)
    warned = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert warned == ["demo.Thing.color has no docstring: the API reference needs one",
                      "demo.undocumented has no docstring: the API reference needs one"]


def test_the_known_gaps_leave_the_list_once_documented(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _load(tmp_path, PACKAGE,
              undocumented=["demo.undocumented", "demo.Thing.color", "demo.Thing.size"])
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == ["demo.Thing.size is listed as undocumented in mkdocs.yml but has a "
                      "docstring (or is gone): drop it from the list"]


def test_lazy_names_roles_and_comments_become_markdown(tmp_path):
    package = _load(tmp_path, PACKAGE, undocumented=["demo.undocumented", "demo.Thing.color"])
    documented = package["documented"]
    assert documented.is_alias and documented.target_path == "demo._impl.documented"
    assert documented.docstring.value == (
        "Returns [`Thing`][demo.Thing]; see [`demo.undocumented`][demo.undocumented] "
        "and `_impl`.")
    # :meth: inside the class finds its member; a reST literal block marker keeps one colon
    assert package["Thing"].docstring.value == (
        "A thing. Its [`size`][demo.Thing.size] matters:\n\n    code\n\nThen more.")
    assert package["DEFAULT"].docstring.value == "What every thing starts as."
