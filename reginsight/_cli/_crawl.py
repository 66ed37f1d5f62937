"""``reginsight crawl URL -o DIR``: crawl a registry into a saved inventory."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._errors import InventoryError
from .._text import printable
from ._options import connection_options, crawl_options, repositories_option
from ._output import EXIT_ERROR, EXIT_OK, UsageError, message, warn_errors
from ._targets import crawl

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("crawl", help="crawl a registry into a saved inventory",
                                 description="Crawl URL and save the inventory (Parquet).")
    parser.add_argument("url", metavar="URL")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="a new or empty folder, or an earlier saved inventory to "
                             "replace (a folder holding other files is refused)")
    repositories_option(parser)
    crawl_options(parser)
    connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """DIR is checked before the crawl: an empty path, or a folder that holds files and
    no inventory, is refused before a request is sent."""
    from ..inventory._dataset import utf8_path
    from ..inventory._replace import check_save_target

    try:
        utf8_path(args.output)  # pyarrow writes UTF-8 names only: said before the crawl
    except InventoryError as exc:
        raise UsageError(f"-o {exc}") from None
    try:
        check_save_target(args.output)
    except InventoryError as exc:
        raise UsageError(f"-o {args.output!r}: {exc}") from None
    inv = crawl(args, args.url)
    try:
        inv.save(args.output)
    except (InventoryError, OSError) as exc:
        reason = exc if isinstance(exc, InventoryError) else f"{exc.strerror or exc}"
        print(f"reginsight: the crawl could not be saved to {printable(args.output)}: "
              f"{message(reason)}; "
              "what was there before is as it was", file=sys.stderr)
        return EXIT_ERROR
    print(_saved(inv, args.output), file=sys.stderr)
    warn_errors(inv)
    return EXIT_OK


def _saved(inv: Inventory, output: str) -> str:
    """``saved 42 tags, 38 manifests in 9 repositories (1.2 GiB stored) to DIR``."""
    from .._units import count, format_bytes
    from ..analysis._storage import storage_summary

    summary = storage_summary(inv)
    return (f"saved {count(int(summary['tags']), 'tag')}, "
            f"{count(int(summary['manifests']), 'manifest')} in "
            f"{count(int(summary['repositories']), 'repository')} "
            f"({format_bytes(summary['stored_bytes'])} stored) to {printable(output)}")
