"""``reginsight ls URL [REPO]``: the repositories of a registry, or the tags of one."""

from __future__ import annotations

import argparse
import sys

from ._options import connection_options
from ._output import EXIT_OK, message, name
from ._targets import check_repository, registry


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ls", help="list repositories, or the tags of one",
                                 description="List the repositories of URL, or the tags "
                                             "of REPO.")
    parser.add_argument("url", metavar="URL", help="e.g. localhost:5000 or ghcr.io")
    parser.add_argument("repository", metavar="REPO", nargs="?")
    connection_options(parser)
    parser.set_defaults(run=run, catalog_hint="reginsight ls URL REPO lists one "
                                              "repository's tags")


def run(args: argparse.Namespace) -> int:
    if args.repository:
        check_repository(args.repository)
    with registry(args, args.url) as reg:
        listing = None if args.repository else reg.catalog()
        names = reg.tags(args.repository) if listing is None else listing.names
    for each in names:
        print(name(each))
    for entry in listing.invalid if listing is not None else ():
        print(f"reginsight: warning: the catalog lists {name(entry.shown)}, not a "
              f"repository name ({message(entry.problem)}); left out", file=sys.stderr)
    return EXIT_OK
