"""The API reference's griffe extension (mkdocs.yml loads it into mkdocstrings): what
reginsight's docstrings need to become Markdown pages, read statically from the source.

- The names ``reginsight`` loads on first use (``_LAZY`` in reginsight/__init__.py)
  become aliases of the objects of their defining modules, so ``::: reginsight.crawl``
  documents them as it does the names imported eagerly.
- ``#:`` comments above an assignment (the Sphinx convention the code follows) become
  that attribute's docstring.
- Sphinx roles (``:func:`reginsight.crawl```, ``:class:`~reginsight.Inventory```) become
  links to the object's entry in the reference, or code where it has none; a reST
  ``::`` that ends a paragraph becomes ``:``.
- A name of ``reginsight.__all__`` that is a class or function, or a public method or
  property of such a class, without a docstring is a warning, which ``mkdocs build
  --strict`` turns into a failure. ``undocumented`` (this extension's option) names
  the known gaps; naming one that has a docstring is a warning too, so the list only
  shrinks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import griffe

# :func:`target`, :py:class:`~target`, ... (the roles the docstrings use)
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|exc|data|obj|const):`(~?)([^`<>]+)`")
# a reST literal-block marker: "text::" keeps one colon, a lone "::" line goes
_LITERAL_MARKER = re.compile(r"(?m)(\S)::$|^\s*::\s*$")


def public_names(init: Path) -> dict[str, str | None]:
    """``__all__`` of the package's ``__init__.py`` read from its syntax tree, each name
    mapped to its defining module (relative, as in ``_LAZY``) when it is loaded lazily,
    else None. ``*_LAZY`` inside ``__all__`` stands for the keys of ``_LAZY``."""
    assigned: dict[str, ast.expr] = {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                assigned[target.id] = node.value
    lazy: dict[str, str] = ast.literal_eval(assigned["_LAZY"]) if "_LAZY" in assigned else {}
    names: dict[str, str | None] = {}
    listed = assigned["__all__"]
    assert isinstance(listed, ast.List), "__all__ must be a list literal"
    for element in listed.elts:
        if isinstance(element, ast.Starred) and isinstance(element.value, ast.Name):
            starred = ast.literal_eval(assigned[element.value.id])
            names.update({name: lazy.get(name) for name in starred})
        else:
            name = ast.literal_eval(element)
            names[name] = lazy.get(name)
    return names


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    return obj.final_target if obj.is_alias else obj  # type: ignore[return-value]


def _walk(obj: griffe.Object) -> Any:
    """Every object defined inside ``obj`` (aliases are someone else's)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


class ReginsightDocs(griffe.Extension):
    """See the module's docstring."""

    def __init__(self, package: str = "reginsight",
                 undocumented: list[str] | None = None) -> None:
        self.package = package
        self.undocumented = set(undocumented or ())

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute,
                              agent: Any, **kwargs: Any) -> None:
        if attr.docstring is not None or attr.lineno is None or not isinstance(node, ast.AST):
            return
        lines = attr.module.lines
        comment: list[str] = []
        row = attr.lineno - 2  # the line above, 0-based
        while row >= 0 and lines[row].lstrip().startswith("#:"):
            comment.insert(0, lines[row].lstrip()[2:].strip())
            row -= 1
        if comment:
            attr.docstring = griffe.Docstring("\n".join(comment), lineno=row + 2,
                                              parent=attr, parser=agent.docstring_parser,
                                              parser_options=agent.docstring_options)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        if pkg.name != self.package:
            return
        names = public_names(Path(pkg.filepath))  # type: ignore[arg-type]
        for name, module in names.items():
            if module is not None:
                target = f"{self.package}.{module}.{name}"
                pkg.set_member(name, griffe.Alias(name, target, parent=pkg))
        public = _public_paths(pkg, names)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = markdown(obj, obj.docstring.value, public)
        self._check_docstrings(pkg, names)

    def _check_docstrings(self, pkg: griffe.Module, names: dict[str, str | None]) -> None:
        missing: set[str] = set()
        for name in names:
            obj = _target(pkg[name])
            if not (obj.is_class or obj.is_function):
                continue  # constants (NO_RETRY, __version__) and modules show their value
            if not obj.docstring:
                missing.add(f"{pkg.path}.{name}")
            if obj.is_class:
                for member_name, member in obj.members.items():
                    if (member.is_alias or member_name.startswith("_") or member.docstring
                            or not (member.is_function or "property" in member.labels)):
                        continue
                    missing.add(f"{pkg.path}.{name}.{member_name}")
        for path in sorted(missing - self.undocumented):
            griffe.logger.warning(f"{path} has no docstring: the API reference needs one")
        for path in sorted(self.undocumented - missing):
            griffe.logger.warning(f"{path} is listed as undocumented in mkdocs.yml "
                                  "but has a docstring (or is gone): drop it from the list")


def _public_paths(pkg: griffe.Module, names: dict[str, str | None]) -> dict[str, str]:
    """Each path the reference has an entry for (the entry's own, and the path of the
    object it documents) -> the entry's identifier (``reginsight.Inventory.save``)."""
    public: dict[str, str] = {}
    for name in names:
        entry = f"{pkg.path}.{name}"
        obj = _target(pkg[name])
        public.setdefault(entry, entry)
        public.setdefault(obj.path, entry)
        if obj.is_class or obj.is_module:
            for member_name, member in obj.members.items():
                if member.is_alias and obj.is_module:
                    member = _target(member)  # a module's names (schema1's) are imports
                if member.is_alias or member_name.startswith("_") or not member.docstring:
                    continue  # not rendered: no entry to link to
                public.setdefault(f"{entry}.{member_name}", f"{entry}.{member_name}")
                public.setdefault(member.path, f"{entry}.{member_name}")
    return public


def markdown(obj: griffe.Object, text: str, public: dict[str, str]) -> str:
    """``text``, a docstring of ``obj``, with its Sphinx roles as links to the entries of
    ``public`` (tried as written, under the package, then under ``obj`` and each of its
    parents) or as code, and its reST ``::`` markers as ``:``."""
    scopes = [p.path for p in (obj, *_parents(obj))]
    package = scopes[-1]

    def link(match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2).strip().lstrip(".")
        shown = target.rsplit(".", 1)[-1] if short else target
        for candidate in (target, f"{package}.{target}",
                          *(f"{scope}.{target}" for scope in scopes)):
            if candidate in public:
                return f"[`{shown}`][{public[candidate]}]"
        return f"`{shown}`"

    return _LITERAL_MARKER.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "",
                               _ROLE.sub(link, text))


def _parents(obj: griffe.Object) -> list[griffe.Object]:
    found = []
    while obj.parent is not None:
        obj = obj.parent
        found.append(obj)
    return found
