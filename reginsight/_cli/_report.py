"""``reginsight report [TARGET]``: one self-contained HTML report."""

from __future__ import annotations

import argparse
import sys

from .._errors import PlanError
from .._text import printable
from ._options import (
    collector,
    collector_option,
    connection_options,
    crawl_options,
    flag_words,
    policy,
    policy_options,
    repositories_option,
    storage_options,
)
from ._output import EXIT_OK, UsageError, name, warn_errors
from ._targets import inventory_of


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="write an HTML report (of the bundled sample by default)",
        description="Write one self-contained HTML report. TARGET is a registry URL "
                    "(crawled first), a saved inventory directory, or a registry's "
                    "storage root (a folder holding docker/registry/v2, or an fsspec "
                    "URL such as s3://bucket/root: then the report shows where the disk "
                    "goes); without TARGET, the sample inventory shipped with the "
                    "package (data/sample).")
    parser.add_argument("target", metavar="TARGET", nargs="?")
    parser.add_argument("-o", "--output", default="report.html", help="default: report.html")
    policy_options(parser, what="what the report's \"cleanup would free\" estimates")
    repositories_option(parser)
    crawl_options(parser)
    storage_options(parser)
    collector_option(parser)
    connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..present._report import export_report

    rules = policy(args)
    inv = inventory_of(args, args.target)
    try:
        path = export_report(inv, args.output, collector=collector(args), **rules)
    except PlanError as exc:  # the policy flags, read by plan_cleanup
        raise UsageError(flag_words(exc)) from None
    print(f"wrote {printable(path)} ({name(inv.label or inv.registry)}, {len(inv.tags)} tags)",
          file=sys.stderr)
    warn_errors(inv)
    return EXIT_OK
