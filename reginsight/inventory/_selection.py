"""Which repositories a crawl or a plan covers: the ``repositories=`` argument.

Names are read directly; only patterns need the catalog, which Docker Hub, GHCR and
GitLab refuse. So ``"team/app"`` or ``["a", "b"]`` work on every registry, and
``"team/*"`` or ``re.compile("^team/")`` where the catalog is listed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import InvalidReference
from ..registry.protocol import InvalidEntry

RepositoryFilter = None | str | re.Pattern[str] | Iterable[str]

#: Characters that make a string a glob (fnmatch) rather than a repository name.
GLOB_CHARACTERS = frozenset("*?[")


def is_glob(text: str) -> bool:
    """True when ``text`` is a pattern; repository names never hold these characters."""
    return not GLOB_CHARACTERS.isdisjoint(text)


@dataclass(frozen=True)
class Selection:
    """``repositories=`` taken apart: ``names`` to read directly, ``patterns`` (globs
    or regexes) to match against the catalog; ``everything`` for None."""

    names: tuple[str, ...] = ()
    patterns: tuple[str | re.Pattern[str], ...] = ()
    everything: bool = False

    @property
    def needs_catalog(self) -> bool:
        return self.everything or bool(self.patterns)

    def matches(self, name: str) -> bool:
        return self.everything or name in self.names or any(
            pattern.search(name) if isinstance(pattern, re.Pattern)
            else fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)


def selection(wanted: RepositoryFilter) -> Selection:
    """None (everything), a name or glob string, a compiled regex (searched), or an
    iterable of those."""
    if wanted is None:
        return Selection(everything=True)
    items = [wanted] if isinstance(wanted, str | re.Pattern) else list(wanted)
    names, patterns = [], []
    for item in items:
        if isinstance(item, re.Pattern) or is_glob(str(item)):
            patterns.append(item if isinstance(item, re.Pattern) else str(item))
        else:
            names.append(str(item))
    return Selection(names=tuple(dict.fromkeys(names)), patterns=tuple(patterns))


def select_repositories(names: Iterable[str], wanted: RepositoryFilter) -> list[str]:
    """The ``names`` that ``wanted`` covers, in their order."""
    chosen = selection(wanted)
    return [name for name in names if chosen.matches(name)]


def describe_scope(repositories: RepositoryFilter) -> str | None:
    """How an inventory records what was asked for: None for the whole catalog."""
    if repositories is None:
        return None
    if isinstance(repositories, re.Pattern):
        return repositories.pattern
    if isinstance(repositories, str):
        return repositories
    return ", ".join(sorted(r.pattern if isinstance(r, re.Pattern) else str(r)
                            for r in repositories))


#: in a recorded scope, a part that is a regular expression, not a name or a glob
_REGEX = re.compile(r"[\^$()|+\\{]")


def filter_of_scope(scope: str | None) -> RepositoryFilter:
    """The ``repositories=`` that :func:`describe_scope` recorded as ``scope`` (None,
    or names, globs and regex patterns joined by ", "): what a crawl again asks for."""
    from ..registry._reference import validate_repository

    if scope is None:
        return None
    wanted: list[str | re.Pattern[str]] = []
    for part in scope.split(", "):
        if _REGEX.search(part):
            wanted.append(re.compile(part))
            continue
        try:
            wanted.append(part if is_glob(part) else validate_repository(part))
        except InvalidReference:
            wanted.append(re.compile(part))
    return wanted


def invalid_rows(invalid: Iterable[InvalidEntry], chosen: Selection
                 ) -> list[tuple[str, str, str, str]]:
    """``errors`` rows for catalog entries that are no repository name: those the
    selection covers (a pattern is matched against the entry as listed; an entry that
    is no string only the whole catalog covers). Such a name is never read, and no
    request names it: it might walk the URL path (``../../x``), and the registry would
    refuse it anyway. One row each, so the crawl goes on with the valid names."""
    return [(entry.shown, "", "catalog",
             f"ProtocolViolation: the catalog lists an {entry.problem}; the name breaks the "
             "repository-name grammar, so it was not read")
            for entry in invalid
            if chosen.everything or (entry.listed is not None and chosen.matches(entry.listed))]
