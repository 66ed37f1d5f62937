"""``--pulls SOURCE`` and ``--unpulled-for AGE``: the pull records a command reads
(a registry log, a folder of them, the listener's event folder, ``-`` for standard
input) and the cleanup rule they feed."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .._errors import PlanError, PullRecordsInvalid
from .._policy import age_limit
from ..registry._hosts import redact_text
from ._output import UsageError, name

if TYPE_CHECKING:
    import pandas as pd

STDIN = "-"
#: the window the report's plan and figures use when --pulls comes without one
DEFAULT_UNPULLED_FOR = "90d"


def pulls_option(parser: argparse.ArgumentParser, *, rule: bool) -> None:
    """--pulls (repeatable); with ``rule``, --unpulled-for too."""
    group = parser.add_argument_group(
        "pull activity", "what was used, from the registry's own records: its log (text or "
        "JSON formatter; a file, .gz, a folder of rotated logs, or - for standard input, "
        "e.g. `kubectl logs deploy/registry | reginsight ... --pulls -`) or the folder "
        "`reginsight listen` writes")
    group.add_argument("--pulls", metavar="SOURCE", action="append",
                       help="read pull records from SOURCE (repeat for several)")
    if rule:
        group.add_argument("--unpulled-for", metavar="AGE",
                           help="delete only images nobody pulled for AGE, e.g. 90d (needs "
                                "--pulls; an image without a record is kept unless the "
                                "records cover the whole AGE)")


def unpulled_rule(args: argparse.Namespace) -> dict[str, Any]:
    """plan_cleanup's ``unpulled_for`` from the flags, checked before anything is read;
    {} when not given. The pull records themselves are read later (:func:`pull_records`)."""
    if args.unpulled_for is None:
        if args.pulls:
            raise UsageError("--pulls needs --unpulled-for AGE (e.g. 90d): which images to "
                             "call unused")
        return {}
    if not args.pulls:
        raise UsageError("--unpulled-for needs --pulls SOURCE: without the registry's "
                         "records nothing is known to be unused")
    try:
        age_limit(args.unpulled_for)
    except PlanError as exc:
        raise UsageError(str(exc).replace("older_than=", "--unpulled-for ")) from None
    return {"unpulled_for": args.unpulled_for}


def pull_records(args: argparse.Namespace) -> pd.DataFrame | None:
    """The records --pulls names, read and summed up on standard error; None without
    --pulls."""
    if not args.pulls:
        return None
    from ..usage._frame import concat_pulls, covered
    from ..usage._read import read_pulls

    if args.pulls.count(STDIN) > 1:
        raise UsageError("--pulls - (standard input) can be given once")
    try:
        pulls = concat_pulls([read_pulls(sys.stdin if source == STDIN else source)
                              for source in args.pulls])
    except PullRecordsInvalid as exc:
        raise UsageError(f"--pulls: {exc}") from None
    print(f"pulls: {summary(pulls)}", file=sys.stderr)
    if not covered(pulls.attrs.get("coverage", [])):
        shown = ", ".join(name(redact_text(s)) for s in args.pulls)
        print(f"pulls: {shown} holds no timed record", file=sys.stderr)
    return pulls


def summary(pulls: pd.DataFrame) -> str:
    """"1,234 requests, 2026-09-01 .. 2026-12-06 (3 malformed lines skipped)"."""
    from .._units import count
    from ..usage._frame import covered

    parts = covered(pulls.attrs.get("coverage", []))
    span = "; ".join(f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"
                     for start, end in parts) or "no time covered"
    skipped = sum(pulls.attrs.get("skipped", {}).values())
    text = f"{count(len(pulls), 'request')} recorded, covering {span}"
    return text + (f" ({count(skipped, 'malformed line')} skipped)" if skipped else "")
