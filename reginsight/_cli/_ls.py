"""``reginsight ls URL [REPO] [-l]``: the repositories of a registry, or the tags of one;
``-l``: each tag with its size, creation time, full digest and platforms."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._options import connection_options
from ._output import EXIT_ERROR, EXIT_OK, message, name, warn_errors
from ._targets import check_repository, registry

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: what a field the registry did not tell (or that has no meaning: an artifact's
#: platform) shows
UNKNOWN = "-"


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ls", help="list repositories, or the tags of one",
                                 description="List the repositories of URL, or the tags "
                                             "of REPO. -l: one line per tag with its "
                                             "size, creation time, digest and platforms "
                                             "(without REPO: every tag of the registry).")
    parser.add_argument("url", metavar="URL", help="e.g. localhost:5000 or ghcr.io")
    parser.add_argument("repository", metavar="REPO", nargs="?")
    parser.add_argument("-l", "--long", action="store_true",
                        help="per tag: SIZE (the image's layers and config; an index: "
                             "the distinct blobs of its platforms), CREATED (UTC; an "
                             "index: its newest platform), DIGEST, PLATFORMS")
    connection_options(parser)
    parser.set_defaults(run=run, catalog_hint="reginsight ls URL REPO lists one "
                                              "repository's tags")


def run(args: argparse.Namespace) -> int:
    if args.repository:
        check_repository(args.repository)
    if args.long:
        return _run_long(args)
    with registry(args, args.url) as reg:
        listing = None if args.repository else reg.catalog()
        names = reg.tags(args.repository) if listing is None else listing.names
    for each in names:
        print(name(each))
    for entry in listing.invalid if listing is not None else ():
        print(f"reginsight: warning: the catalog lists {name(entry.shown)}, not a "
              f"repository name ({message(entry.problem)}); left out", file=sys.stderr)
    return EXIT_OK


def _run_long(args: argparse.Namespace) -> int:
    """The tags read as a crawl reads them (concurrently, each digest once), so a
    tag's size and time mean what they mean in the inventory and the report."""
    from ..inventory._crawl import crawl

    with registry(args, args.url) as reg:
        inv = crawl(reg, [args.repository] if args.repository else None,
                    progress=_on_terminal())
    unlisted = inv.errors[inv.errors["stage"] == "tags"]
    if args.repository and len(unlisted):  # as plain ls: no listing, an error
        print(f"reginsight: {message(unlisted['error'].iloc[0])}", file=sys.stderr)
        return EXIT_ERROR
    for line in long_lines(inv, repository_column=not args.repository):
        print(line)
    warn_errors(inv)
    return EXIT_OK


def long_lines(inv: Inventory, *, repository_column: bool) -> Iterator[str]:
    """The header and one line per tag (a tag whose manifest could not be read too,
    its fields ``-``), in aligned columns; nothing when there is no tag."""
    rows = [(repo, tag, *fields) for repo, tag, fields in _tag_fields(inv)]
    if not rows:
        return
    header = ("REPOSITORY", "TAG", "SIZE", "CREATED", "DIGEST", "PLATFORMS")
    if not repository_column:
        header, rows = header[1:], [row[1:] for row in rows]
    right = {header.index("SIZE")}
    yield from _aligned([header, *rows], right=right)


def _tag_fields(inv: Inventory) -> list[tuple[str, str, tuple[str, str, str, str]]]:
    """(repository, tag, (size, created, digest, platforms)) shown inert, sorted."""
    import pandas as pd

    from .._units import format_bytes

    platforms = _platforms(inv)
    tags = inv.tags
    found = [(name(repo), name(tag), (
        UNKNOWN if pd.isna(size) else format_bytes(int(size)),
        UNKNOWN if pd.isna(created) else created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        name(digest),
        ",".join(name(p) for p in platforms.get((str(repo), str(digest)), ())) or UNKNOWN))
        for repo, tag, digest, size, created in zip(
            tags["repository"].astype(str), tags["tag"], tags["digest"], tags["size"],
            tags["created"], strict=True)]
    errors = inv.errors[inv.errors["stage"] == "tag"]
    failed = [(name(repo), name(tag), (UNKNOWN,) * 4) for repo, tag in zip(
        errors["repository"].astype(str), errors["reference"], strict=True)]
    return sorted(found + failed, key=lambda row: (row[0], row[1]))


def _platforms(inv: Inventory) -> dict[tuple[str, str], list[str]]:
    """``os/architecture[/variant]`` of each (repository, tagged digest): an image's
    own (its config's); an index's platforms, in its order, through nested indexes,
    leaving out what is no platform (an attestation, a signature about it)."""
    facts = {(str(repo), str(digest)): (kind, _platform(os, arch, variant))
             for repo, digest, kind, os, arch, variant in zip(
                 inv.manifests["repository"], inv.manifests["digest"],
                 inv.manifests["kind"], inv.manifests["os"], inv.manifests["architecture"],
                 inv.manifests["variant"], strict=True)}
    children: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    shown = inv.children[inv.children["subject"].isna()]  # an attestation names a subject
    for repo, parent, digest, os, arch, variant in zip(
            shown["repository"].astype(str), shown["parent"], shown["digest"], shown["os"],
            shown["architecture"], shown["variant"], strict=True):
        children.setdefault((repo, str(parent)), []).append(
            (str(digest), _platform(os, arch, variant)))

    def of(repo: str, digest: str, seen: frozenset[str]) -> list[str]:
        kind, own = facts.get((repo, digest), (None, None))
        if kind != "index":
            return [own] if own else []
        found: list[str] = []
        for child, declared in children.get((repo, digest), ()):
            if child in seen:  # an index listing itself: no platform, no loop
                continue
            nested = facts.get((repo, child), (None,))[0] == "index"
            # the platform the index declares, else the child's own (its config's)
            found += [declared] if declared and not nested else of(repo, child,
                                                                   seen | {child})
        return list(dict.fromkeys(found))

    tagged = zip(inv.tags["repository"].astype(str), inv.tags["digest"], strict=True)
    return {(repo, str(digest)): of(repo, str(digest), frozenset({str(digest)}))
            for repo, digest in set(tagged)}


def _platform(os: object, architecture: object, variant: object) -> str | None:
    import pandas as pd

    parts = [str(part) for part in (os, architecture, variant)
             if not pd.isna(part) and str(part)]
    return "/".join(parts) if len(parts) > 1 else None  # at least os and architecture


def _aligned(rows: Sequence[Sequence[str]], *, right: set[int]) -> Iterator[str]:
    """Columns padded to their widest cell (``right``: numbers, aligned on the right),
    two spaces apart, the last one unpadded."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(width) if column in right else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths, strict=True))]
        cells[-1] = row[-1]
        yield "  ".join(cells)


def _on_terminal() -> bool:
    """A progress bar where someone watches it; none in a pipe (lines there would
    only add to what a script reads)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, OSError, ValueError):  # no stderr, or a closed one
        return False
