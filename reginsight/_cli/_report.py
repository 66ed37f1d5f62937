"""``reginsight report [TARGET]``: one self-contained HTML report."""

from __future__ import annotations

import argparse
import sys

from .._errors import PlanError
from .._text import printable
from .._units import count
from ._options import (
    collector,
    collector_option,
    connection_options,
    crawl_options,
    flag_words,
    policy,
    policy_options,
    repositories,
    repositories_option,
    storage_options,
)
from ._output import EXIT_OK, UsageError, name, warn_errors
from ._pulls import DEFAULT_UNPULLED_FOR, STDIN, pull_records, pulls_option, unpulled_rule
from ._targets import inventory_of, target_kind


def shown_url(target: str) -> str:
    """A registry TARGET as the user typed it, less any ``user:password@``: what the
    report's cleanup commands name."""
    from ..registry._hosts import redact_text

    return redact_text(target) if "://" in target else target.rsplit("@", 1)[-1]


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="write an HTML report (of the bundled sample by default)",
        description="Write one self-contained HTML report. TARGET is a registry URL "
                    "(crawled first), a saved inventory directory, or a registry's "
                    "storage root (a folder holding docker/registry/v2, or an fsspec "
                    "URL such as s3://bucket/root: then the report shows where the disk "
                    "goes); without TARGET, the sample inventory shipped with the "
                    "package (data/sample). --repositories: from a registry, only those "
                    "are crawled; from a saved inventory or a storage root, the report "
                    "shows only those, while what a cleanup frees is counted against "
                    "all the rest still uses (and a storage's disk and garbage-collect "
                    "figures stay the whole storage's: its collector works on all of it). "
                    "The report ends each plan with the reginsight cleanup command that "
                    "applies it.")
    parser.add_argument("target", metavar="TARGET", nargs="?")
    parser.add_argument("-o", "--output", default="report.html", help="default: report.html")
    policy_options(parser, what="what the report's \"cleanup would free\" estimates")
    pulls_option(parser, rule=True)
    repositories_option(parser)
    crawl_options(parser)
    storage_options(parser)
    collector_option(parser)
    connection_options(parser)
    parser.set_defaults(run=run)


def _one_source(sources: list[str] | None) -> str | None:
    """The --pulls source the printed cleanup command repeats: the one given (several,
    or standard input, which the command cannot read again: None, a placeholder)."""
    return sources[0] if sources and len(sources) == 1 and sources[0] != STDIN else None


def run(args: argparse.Namespace) -> int:
    from ..inventory._selection import selection
    from ..inventory._subset import missing_repositories
    from ..present._report import export_report

    rules = policy(args)
    chosen = repositories(args.repositories)
    if args.pulls and not args.unpulled_for:
        args.unpulled_for = DEFAULT_UNPULLED_FOR  # the report's plan: nothing pulled goes
    unpulled = unpulled_rule(args)
    pulls = pull_records(args)  # before a long crawl: a bad source is said at once
    crawled = args.target is not None and target_kind(args.target) == "registry"
    inv = inventory_of(args, args.target)  # a registry: only the chosen are crawled
    if chosen and not crawled and (missing := missing_repositories(inv, chosen)):
        raise UsageError(f"--repositories {printable(', '.join(missing))}: not in "
                         f"{printable(inv.label or inv.registry)}")
    try:
        path = export_report(inv, args.output, collector=collector(args),
                             repositories=None if crawled else chosen,
                             registry_url=shown_url(args.target) if crawled else None,
                             pulls=pulls, pulls_source=_one_source(args.pulls),
                             **unpulled, **rules)
    except PlanError as exc:  # the policy flags, read by plan_cleanup
        raise UsageError(flag_words(exc)) from None
    what, tags = name(inv.label or inv.registry), len(inv.tags)
    if chosen and not crawled:  # the report shows only these
        what += f", only {printable(', '.join(chosen))}:"
        tags = int(inv.tags["repository"].astype(str).map(selection(chosen).matches).sum())
    else:
        what += ","
    print(f"wrote {printable(path)} ({what} {count(tags, 'tag')})", file=sys.stderr)
    warn_errors(inv)
    return EXIT_OK
