"""``reginsight cleanup URL``: plan a cleanup (the report's policy flags, or the
untagged manifests a storage scan finds, or a plan file), show it, and apply it
through the registry's API with ``--yes``; then say what garbage collection to run.

Where the plan comes from and where it goes: the plan is made from a crawl of URL,
or from the registry's storage (``--storage ROOT``: it sees the untagged manifests
the API does not list, and its bytes are the collector's own); deletions always go
to URL, through the API, with every check of :func:`reginsight.apply_cleanup` (each
digest's tags read again just before its DELETE). Bytes are "what garbage-collect
frees once it runs": nothing is freed before it does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import CleanupStopped, CollectorsDiffer, NotFound, PlanError
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
from ._output import EXIT_ERROR, EXIT_OK, EXIT_REFUSED, UsageError, message, name
from ._pulls import pull_records, pulls_option, unpulled_rule
from ._targets import crawl_with, registry, scan, shown

if TYPE_CHECKING:
    import pandas as pd

    from ..inventory._inventory import Inventory
    from ..registry._client import Registry

#: apply_cleanup's word for a planned tag that is gone (nothing of it left to delete)
GONE = "no longer exists"
POLICY_FLAGS = {"keep_last": "--keep-last", "older_than": "--older-than",
                "protect": "--protect"}


class _DefaultNumber(int):
    """A policy flag's default, told apart from the same value typed."""


class _DefaultText(str):
    """A policy flag's default, told apart from the same text typed."""


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "cleanup", help="plan a cleanup, and apply it with --yes (a dry run by default)",
        description="Plan which manifests to delete from the registry at URL, print "
                    "each (full repo@sha256 reference, its tags, what garbage collection "
                    "frees for it) and the total, and with --yes delete them through the "
                    "API: every digest is checked again just before its DELETE and "
                    "skipped when a tag moved, a tag the plan did not choose points at "
                    "it, or a tagged index references it. Then it prints the registry's "
                    "garbage-collect command: the disk space comes back only when that "
                    "runs. "
                    "The plan comes from the policy flags (those of `reginsight report`) "
                    "applied to a crawl of URL, or to the registry's storage with "
                    "--storage ROOT; --untagged --storage ROOT plans the untagged "
                    "manifests only the storage shows (no tag is deleted unless a policy "
                    "flag is given too); --plan FILE applies a plan written by -o, the "
                    "report or the explorer. Exit 3 when --yes skipped a row for safety "
                    "(it is listed with why), 1 when a deletion failed or the registry "
                    "refused deletions (what was done is listed).")
    parser.add_argument("url", metavar="URL", help="the registry: http(s)://HOST[:PORT]")
    parser.add_argument("--yes", action="store_true",
                        help="delete; without it nothing is deleted (a dry run that "
                             "checks each row against the registry as it is now)")
    parser.add_argument("--plan", metavar="FILE",
                        help="apply this plan (.csv or .json, from -o, the report or the "
                             "explorer) instead of planning one")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the plan to FILE (.csv or .json), to apply later with "
                             "--plan FILE")
    policy_options(parser, what="which tags the plan deletes")
    pulls_option(parser, rule=True)
    parser.set_defaults(**{dest: _default(parser.get_default(dest)) for dest in POLICY_FLAGS})
    repositories_option(parser)
    parser.add_argument("--orphans", action="store_true",
                        help="also delete referrers (signatures, SBOMs) whose subject is gone")
    parser.add_argument("--untagged", action="store_true",
                        help="plan the untagged manifests the storage holds (needs "
                             "--storage): the safe alternative to garbage-collect "
                             "--delete-untagged")
    parser.add_argument("--storage", metavar="ROOT",
                        help="the registry's storage (a folder holding docker/registry/v2, "
                             "or an fsspec URL): read it instead of crawling URL, for the "
                             "plan or (with --plan) its bytes")
    storage_options(parser)
    collector_option(parser)
    crawl_options(parser)
    connection_options(parser)
    parser.set_defaults(run=run)


def _default(value: Any) -> Any:
    return _DefaultNumber(value) if isinstance(value, int) else _DefaultText(value)


def _policy_flags_given(args: argparse.Namespace) -> list[str]:
    return [flag for dest, flag in POLICY_FLAGS.items()
            if not isinstance(getattr(args, dest), _DefaultNumber | _DefaultText)]


def run(args: argparse.Namespace) -> int:
    from ..ops._planfile import SUFFIXES, load_plan

    rules = _rules(args)
    if args.output and Path(args.output).suffix.lower() not in SUFFIXES:  # before a crawl
        raise UsageError(f"-o {name(args.output)}: a plan file is .csv or .json")
    if args.output and not Path(args.output).parent.is_dir():
        raise UsageError(f"-o {name(args.output)}: no such folder "
                         f"{name(str(Path(args.output).parent))}")
    plan = load_plan(args.plan) if args.plan else None
    pulls = pull_records(args)  # before a long crawl: a bad source is said at once
    with registry(args, args.url) as reg:
        inv = scan(args, args.storage) if args.storage else crawl_with(args, reg)
        if plan is None:
            plan = _planned(args, inv, rules, pulls)
        elif args.repositories:
            plan = _within(plan, repositories(args.repositories))
        if args.output:
            from ..ops._planfile import save_plan

            print(f"wrote {name(save_plan(plan, args.output))}", file=sys.stderr)
        doomed = plan[plan["action"] == "delete"]
        if doomed.empty:
            print(f"the plan deletes nothing ({_kept(plan)})")
            return EXIT_OK
        if args.storage:
            _same_registry(reg, inv, doomed, args)
        return _apply(args, reg, _Figures(args, inv, plan))


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    """The policy rules, with every combination of flags checked before anything is
    read: --plan takes no planning flag, --untagged needs --storage and keeps every
    tag unless a policy flag is given."""
    given = _policy_flags_given(args) + (["--unpulled-for"] if args.unpulled_for else [])
    if args.plan:
        planning = given + [flag for flag, on in (("--untagged", args.untagged),
                                                  ("--orphans", args.orphans),
                                                  ("--pulls", args.pulls)) if on]
        if planning:
            raise UsageError(f"--plan FILE is applied as it is: {', '.join(planning)} "
                             "would plan another (drop --plan to plan from the flags)")
        return {}
    if args.untagged and not args.storage:
        raise UsageError("--untagged needs --storage ROOT: the API lists no untagged "
                         "manifests, only the registry's storage holds them")
    unpulled = unpulled_rule(args)
    if args.untagged and not given:
        return {}
    return {**policy(args), **unpulled}


def _planned(args: argparse.Namespace, inv: Inventory, rules: dict[str, Any],
             pulls: pd.DataFrame | None) -> pd.DataFrame:
    import warnings

    from ..analysis._reclaim import PartialInventoryWarning
    from ..ops._plan import plan_cleanup

    try:
        with warnings.catch_warnings():  # said with the total, in the command's words
            warnings.simplefilter("ignore", PartialInventoryWarning)
            return plan_cleanup(inv, repositories=repositories(args.repositories),
                                untagged=args.untagged, orphans=args.orphans,
                                collector=collector(args),
                                pulls=pulls if "unpulled_for" in rules else None, **rules)
    except CollectorsDiffer:
        raise UsageError(_collector_needed()) from None
    except PlanError as exc:
        raise UsageError(flag_words(exc)) from None


def _collector_needed() -> str:
    return ("the two garbage collectors free different bytes on this storage: give "
            "--collector 2 or --collector 3 (`registry --version` on the registry's host; "
            "the image tag registry:2 or registry:3)")


def _within(plan: pd.DataFrame, wanted: list[str] | None) -> pd.DataFrame:
    """The plan's rows of the repositories --repositories names (globs matched)."""
    from ..inventory._selection import select_repositories

    names = sorted(set(plan["repository"].astype(str)))
    chosen = set(select_repositories(names, wanted))
    return plan[plan["repository"].astype(str).isin(chosen)].reset_index(drop=True)


def _kept(plan: pd.DataFrame) -> str:
    from .._units import count

    kept = plan[plan["action"] == "keep"]
    return f"keeps {count(len(kept), 'tag')}" if len(kept) else "keeps no tag"


def _same_registry(reg: Registry, inv: Inventory, doomed: pd.DataFrame,
                   args: argparse.Namespace) -> None:
    """ROOT must be URL's storage: a few of the plan's repositories, listed at URL,
    must share tags with the scan. (Each deletion is checked anyway; this says clearly
    when the two do not match, before anything is sent.)"""
    tags = inv.tags.astype({"repository": str, "tag": str})
    checked = 0
    for repository in sorted(set(doomed["repository"].astype(str))):
        mine = set(tags.loc[tags["repository"] == repository, "tag"])
        if not mine:
            continue
        try:
            if mine & set(reg.tags(repository)):
                return
        except NotFound:
            pass
        checked += 1
        if checked == 3:
            break
    if checked:
        raise UsageError(f"{shown(args.storage)} does not look like the storage of "
                         f"{shown(args.url)}: the tags of its repositories are not those "
                         "URL lists (give the registry that writes this storage)")


class _Figures:
    """What garbage collection frees for the plan's digests, each alone and all
    together, computed before anything is deleted."""

    def __init__(self, args: argparse.Namespace, inv: Inventory, plan: pd.DataFrame) -> None:
        import pandas as pd

        from .._units import format_bytes
        from ..ops._frees import plan_frees

        self.args, self.inv, self.plan = args, inv, plan
        self.doomed = plan[plan["action"] == "delete"]
        try:
            by_digest, _ = plan_frees(inv, plan)  # it says nothing of a partial crawl
            whole = plan.attrs.get("reclaimable_bytes")  # a plan file has none: computed
            self.total = int(whole) if whole is not None else self._reclaimable(self.doomed)
        except CollectorsDiffer:
            raise UsageError(_collector_needed()) from None
        held = _held(inv, by_digest)
        keys = list(zip(by_digest["repository"].astype(str), by_digest["digest"].astype(str),
                        strict=True))
        self.order = {key: n for n, key in enumerate(keys)}
        self.frees = {key: format_bytes(int(f)) if ok and not pd.isna(f) else "?"
                      for key, f, ok in zip(keys, by_digest["frees"].astype(object), held,
                                            strict=True)}
        self.reasons = dict(zip(keys, by_digest["reason"].fillna("").astype(str),
                                strict=True))
        self.unheld = {key for key, ok in zip(keys, held, strict=True) if not ok}

    def bytes_of(self, part: pd.DataFrame) -> int:
        """What collecting ``part`` (delete rows of the plan) frees; the total, worked
        out once, when it is all of them."""
        return self.total if len(part) == len(self.doomed) else self._reclaimable(part)

    def _reclaimable(self, part: pd.DataFrame) -> int:
        import warnings

        from ..analysis._reclaim import PartialInventoryWarning, reclaimable

        with warnings.catch_warnings():  # said once below, in the command's words
            warnings.simplefilter("ignore", PartialInventoryWarning)
            return reclaimable(self.inv, part, collector=collector(self.args))


def _apply(args: argparse.Namespace, reg: Registry, figures: _Figures) -> int:
    from ..ops._apply import apply_cleanup

    try:
        result = apply_cleanup(reg, figures.plan, dry_run=not args.yes)
    except CleanupStopped as stop:
        _print_rows(args, figures, stop.result)
        print("stopped: interrupted; the rows after it were not attempted" if stop.interrupted
              else "stopped: the registry refused to delete (is deletion enabled? storage: "
                   "delete: enabled: true); the rows after it were not attempted")
        _print_next(args, figures, stop.result)
        raise
    _print_rows(args, figures, result)
    _print_next(args, figures, result)
    if not args.yes:
        print("dry run: nothing deleted; add --yes to delete")
        return EXIT_OK
    if (result["status"] == "failed").any():
        return EXIT_ERROR
    # a planned tag gone already is no refusal: re-applying a plan meets them
    refused = (result["status"] == "skipped") & (result["detail"] != GONE)
    return EXIT_REFUSED if refused.any() else EXIT_OK


def _print_rows(args: argparse.Namespace, figures: _Figures, result: pd.DataFrame) -> None:
    """One line per digest and outcome: the full reference, its tags, what collecting
    it frees, why (the plan's reason, or why it was skipped)."""
    from .._units import count

    doomed = figures.doomed
    digests = doomed[["repository", "digest"]].drop_duplicates()
    tags = int(doomed["tag"].notna().sum())
    source = f" (read from the storage {shown(args.storage)})" if args.storage else ""
    print(f"plan for {name(shown(args.url))}{source}: delete {count(len(digests), 'manifest')}"
          f" ({count(tags, 'tag') if tags else 'untagged'}) in "
          f"{count(doomed['repository'].nunique(), 'repository')}; {_kept(figures.plan)}")
    rows = result[result["digest"] != ""]
    keys = list(zip(rows["repository"].astype(str), rows["digest"].astype(str), strict=True))
    groups: dict[tuple[tuple[str, str], str, str], list[str]] = {}
    for key, tag, status, detail in zip(keys, rows["tag"].astype(str), rows["status"],
                                        rows["detail"].astype(str), strict=True):
        groups.setdefault((key, str(status), detail), []).append(tag)
    lines = []
    for (key, status, detail), tags in sorted(groups.items(), key=lambda g: (
            figures.order.get(g[0][0], len(figures.order)), g[0][1])):
        tags = sorted(t for t in tags if t)
        held = (f"tag{'s' if len(tags) > 1 else ''} {', '.join(map(name, tags))}" if tags
                else "untagged")
        reason = figures.reasons.get(key, "")
        why = detail if status in ("skipped", "failed", "not attempted") or not reason \
            else reason + (f"; {detail}" if detail and detail != reason else "")
        size = (f"  frees {figures.frees.get(key, '?')}"
                if status in ("would delete", "deleted") else "")
        lines.append((status, name(f"{key[0]}@{key[1]}"), held, size, message(why)))
    width = max((len(line[1]) for line in lines), default=0)
    for status, ref, held, size, why in lines:
        print(f"  {status:<13}  {ref:<{width}}  {held}{size}  ({why})")
    for row in result[result["digest"] == ""].itertuples(index=False):  # unchecked
        print(f"reginsight: warning: {name(row.repository)}: {message(row.detail)}",
              file=sys.stderr)
    for row in result[result["status"] == "lost"].itertuples(index=False):
        print(f"reginsight: warning: tag {name(f'{row.repository}:{row.tag}')} is gone "
              f"although the plan kept it: {message(row.detail)}", file=sys.stderr)


def _held(inv: Inventory, frame: pd.DataFrame) -> list[bool]:
    """Whether the inventory holds each (repository, digest) of ``frame``: a plan
    file's row it does not (an untagged manifest a crawl cannot see) has no figure."""
    held = set(zip(inv.manifests["repository"].astype(str),
                   inv.manifests["digest"].astype(str), strict=True))
    return [(str(r), str(d)) in held for r, d in zip(frame["repository"], frame["digest"],
                                                     strict=True)]


def _print_next(args: argparse.Namespace, figures: _Figures, result: pd.DataFrame) -> None:
    """The bytes garbage collection frees for what was (or would be) deleted, and the
    command that runs it."""
    from .._units import count, format_bytes

    done = result[result["status"].isin(["deleted", "would delete"])]
    keys = set(zip(done["repository"].astype(str), done["digest"].astype(str), strict=True))
    if not keys:
        print("nothing " + ("deleted" if args.yes else "would be deleted")
              + ": no garbage collection to run")
        return
    doomed, inv = figures.doomed, figures.inv
    part = doomed[[key in keys for key in zip(doomed["repository"].astype(str),
                                              doomed["digest"].astype(str), strict=True)]]
    try:
        total = figures.bytes_of(part)
    except CollectorsDiffer:
        total = None
    bound = "" if inv.from_storage or inv.complete else "at most "
    figure = ("an amount that depends on the collector (give --collector 2 or 3)"
              if total is None else f"{bound}{format_bytes(total)} ({total:,} bytes)")
    what = "of what was deleted" if args.yes else "of what this deletes"
    print(("next: run the registry's garbage collector; it frees " if args.yes
           else "then the registry's garbage collector would free ")
          + f"{figure} {what} (a line above: that digest alone)")
    if bound:
        print(f"  an upper bound: the crawl covered {name(inv.scope or 'the catalog')} with "
              f"{count(len(inv.errors), 'error')}, and blobs shared with what it did not "
              "see count as reclaimable")
    unheld = len(keys & figures.unheld)
    if unheld:
        print(f"  not counted: {count(unheld, 'manifest')} the crawl does not hold (untagged "
              "ones only the storage shows: add --storage ROOT for their bytes)")
    if inv.from_storage and total is not None:
        _print_unreferenced(inv, total)
    if args.yes:
        for line in gc_commands(collector(args), untagged_hint=not args.untagged):
            print(line)


def _print_unreferenced(inv: Inventory, total: int) -> None:
    """A collection also frees the blobs the storage holds unreferenced already."""
    from .._units import format_bytes
    from ..analysis._disk import disk_usage

    usage = disk_usage(inv).set_index("category")["bytes"]
    loose = int(usage.get("unreferenced", 0))
    if loose:
        print(f"  and {format_bytes(loose)} ({loose:,} bytes) the storage already holds "
              f"unreferenced: {format_bytes(total + loose)} ({total + loose:,} bytes) in all "
              "(`reginsight gc-preview ROOT` lists them)")


def gc_commands(chosen: str | None, *, untagged_hint: bool = True) -> list[str]:
    """What to run next, for the collector in use (None: both kinds)."""
    import shlex

    from ..analysis._gc import RUN_COLLECTOR

    lines = []
    for kind in [chosen] if chosen else list(RUN_COLLECTOR):
        lines += [f"  {where + ':':<23} {shlex.join(argv)}"
                  for where, argv in RUN_COLLECTOR[kind]]
    if not chosen:
        lines.append("  (--collector 2 or 3 shows only your registry's)")
    lines.append("  with the registry read-only (storage: maintenance: readonly: enabled: true) "
                 "or stopped; never with --delete-untagged" + (
                     " (the safe way to untagged manifests: reginsight cleanup URL "
                     "--untagged --storage ROOT)" if untagged_hint else ""))
    return lines

