"""The report's sections beyond the registry-wide figures: supply chain, disk, and
the cleanup plan told per digest and per repository, with the commands that apply
it. Each returns cards (label, value) and tables (title, note, columns, rows): plain
values the template escapes."""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._errors import InvalidReference, ReginsightError
from .._policy import policy_flags
from .._units import count, format_bytes
from ..analysis._referrers import images_without, referrers, storage_by_role
from ..inventory._reach import Reach
from ..ops._frees import plan_frees

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

Section = tuple[list[tuple[str, str]], list[dict[str, Any]]]


def column(name: str, *, num: bool = False, code: bool = False, digest: bool = False
           ) -> dict[str, Any]:
    """A table column: ``num`` right-aligned, ``code`` monospace, ``digest`` a full
    digest shown short, whole on hover and whole when selected and copied."""
    return {"name": name, "num": num, "code": code, "digest": digest}


def day(created: Any) -> str:
    return "" if created is None or pd.isna(created) else f"{created:%Y-%m-%d}"


def supply_chain_sections(inv: Inventory, top: int, *, stored_bytes: int | None = None
                          ) -> Section:
    """Storage by role, orphaned referrers, and the images no signature is about.
    ``stored_bytes``: the "stored" card's figure (what tags reach), which the role
    table's total is told against."""
    roles = storage_by_role(inv)
    refs = referrers(inv)
    orphaned = refs[refs["orphaned"]]
    unsigned = images_without(inv, "signature")
    every = _distinct_bytes(inv)
    note = ("distinct config and layer blobs the role's manifests reference, every "
            "manifest the inventory holds (untagged ones too); a blob two roles use "
            "counts in both, and in neither's exclusive bytes. Signatures, SBOMs and "
            "attestations are kept and deleted with the image they are about.")
    if stored_bytes is not None and stored_bytes != every:
        note += (f" All roles together hold {format_bytes(every)}: "
                 f"{format_bytes(stored_bytes)} that tags reach (the \"stored\" card) and "
                 f"{format_bytes(every - stored_bytes)} that only manifests no tag reaches "
                 "use.")
    elif stored_bytes is not None:
        note += f" All roles together: {format_bytes(every)}, the \"stored\" card's figure."
    tables = [{
        "title": "Storage by role", "note": note,
        "columns": [column("role"), column("manifests", num=True),
                    column("stored", num=True), column("exclusive", num=True)],
        "rows": [(r.role, f"{r.manifests:,}", format_bytes(r.stored_bytes),
                  format_bytes(r.exclusive_bytes)) for r in roles.itertuples()]}]
    if len(orphaned):
        tables.append({
            "title": f"Orphaned referrers ({len(orphaned):,})",
            "note": "their subject is gone from the repository; reginsight cleanup URL "
            "--orphans (plan_cleanup(inv, orphans=True)) deletes them",
            "columns": [column("repository"), column("role"), column("subject", digest=True),
                        column("digest", digest=True), column("tags")],
            "rows": [(r.repository, r.role, r.subject, r.digest, r.tags)
                     for r in orphaned.head(top).itertuples()]})
    signed = int((refs["role"] == "signature").sum())
    if signed:
        tables.append({
            "title": f"Images without a signature ({count(len(unsigned), 'tag')})",
            "note": "tags of images and indexes that no signature (cosign, Notation, "
            "sigstore) is about, directly or through a platform image" + (
                f"; the first {top} shown" if len(unsigned) > top else ""),
            "columns": [column("repository"), column("tag"), column("digest", digest=True),
                        column("role")],
            "rows": [(r.repository, r.tag, r.digest, r.role)
                     for r in unsigned.head(top).itertuples()]})
    elif len(unsigned):  # every tag would be listed: one line says it
        tables.append({"title": "Signatures", "columns": [], "rows": [],
                       "note": "This registry holds no signatures (cosign, Notation, "
                       f"sigstore): none of its {count(len(unsigned), 'image tag')} is "
                       "signed."})
    cards = [("signatures, SBOMs, attestations", f"{len(refs):,}"),
             ("tags without a signature", f"{len(unsigned):,}")]
    return cards, tables


def _distinct_bytes(inv: Inventory) -> int:
    """The config and layer bytes every manifest of ``inv`` references, each blob once."""
    digests = inv.manifests["digest"].drop_duplicates()
    used = Reach.of(inv).blobs_referenced(pd.Series(0, index=digests.astype(object)))
    return int(used["size"].sum())


_MEANING = {
    "tagged": "reached by a tag, through indexes too",
    "untagged": "only manifests no tag reaches use them (a moved tag left them behind)",
    "unreferenced": "no manifest uses them: deleted manifests, unused uploads; "
                    "garbage-collect frees these",
    "uploads": "data of unfinished uploads (garbage-collect does not touch them)",
}


def disk_sections(inv: Inventory, top: int, *, collector: str | None = None,
                  shown: Inventory | None = None) -> Section:
    """Cards and tables only a storage scan can give: where the disk goes, and what
    the registry's garbage collector would delete and break (``collector``'s, or each
    version's where they differ): the whole storage's, as the collector works on all
    of it. ``shown``: the part of ``inv`` the report covers (its untagged manifests
    are listed; None: all)."""
    from ..analysis._disk import VERSION, disk_usage, gc_outcomes

    usage = disk_usage(inv)
    total = int(usage["bytes"].sum())
    cards = [("on disk", format_bytes(total))]
    tables = [{
        "title": "Where the disk goes", "note": "every byte under blobs/ and _uploads, "
        "by what still uses it" + ("; the whole storage's" if shown is not None else ""),
        "columns": [column("category"), column("holds", num=True), column("bytes", num=True),
                    column("share", num=True), column("meaning")],
        "rows": [(r.category, count(r.blobs, "upload" if r.category == "uploads" else "blob"),
                  format_bytes(r.bytes),
                  f"{r.bytes / total:.0%}" if total else "-", _MEANING[r.category])
                 for r in usage.itertuples()]}]
    try:
        runs = {command: gc_outcomes(inv, delete_untagged=untagged, collector=collector)
                for command, untagged in (("garbage-collect", False),
                                          ("garbage-collect --delete-untagged", True))}
    except ReginsightError as exc:
        tables.append({"title": "Garbage collection", "note": str(exc), "columns": [],
                       "rows": []})
        return cards, tables
    differ = any(len(outcomes) > 1 for outcomes in runs.values())
    modelled = (f"modelled on {VERSION[collector]}'s collector" if collector else
                "Distribution 2.x and 3.x collect this storage differently, and it does "
                "not say which version runs: each is shown (reginsight report --collector "
                "2|3 or gc_preview(collector=...) for one)" if differ else
                "Distribution 2.x and 3.x alike")
    rows, broken_tables = [], []
    for command, outcomes in runs.items():
        for name, outcome in outcomes.items():
            who = VERSION[name] if differ and name else ""
            broken = _broken(outcome)
            rows.append((who, command, *_gc_row(outcome, broken)))
            if len(broken):
                broken_tables.append({
                    "title": f"Images {who + ' ' if who else ''}{command.split(' ', 1)[-1]} "
                             f"would break ({len(broken)})",
                    "note": "their pulls fail afterwards: a manifest or its blobs are gone",
                    "columns": [column("image"), column("blobs and revisions lost", num=True),
                                column("bytes lost", num=True)],
                    "rows": [(r.tag, f"{r.lost:,}", format_bytes(r.bytes))
                             for r in broken.head(top).itertuples(index=False)]})
    plain = runs["garbage-collect"]
    cards.append(("garbage-collect frees", " / ".join(
        f"{VERSION[name] + ': ' if len(plain) > 1 else ''}{_gc_frees(outcome)}"
        for name, outcome in plain.items())))
    tables.append({
        "title": "What garbage-collect would do",
        "note": f"{modelled}. Distribution 2.x --delete-untagged deletes the children of "
        "tagged multi-platform indexes; 3.x --delete-untagged sweeps the blobs of a "
        "repository without tags and leaves its manifests pointing at nothing. The safe "
        "way to free untagged manifests on both: reginsight cleanup URL --untagged "
        "--storage ROOT (see Cleanup plan above), then a plain garbage-collect.",
        "columns": [*([column("registry")] if differ else []), column("command", code=True),
                    column("blobs", num=True), column("frees", num=True), column("breaks")],
        "rows": [row if differ else row[1:] for row in rows]})
    tables.extend(broken_tables)
    listed = (inv if shown is None else shown).manifests
    untagged = listed[~listed["tagged"]]
    manifests = untagged.sort_values(
        ["size", "digest"], ascending=[False, True], na_position="last").head(top)
    tables.append({
        "title": f"Largest untagged manifests (of {len(untagged):,})",
        "note": "manifests no tag reaches; their blobs count as untagged above",
        "columns": [column("repository"), column("digest", digest=True), column("kind"),
                    column("created"), column("size", num=True)],
        "rows": [(r.repository, r.digest, r.kind,
                  day(r.created),
                  "" if pd.isna(r.size) else format_bytes(int(r.size)))
                 for r in manifests.itertuples()]})
    return cards, tables


def plan_shown(inv: Inventory, *, collector: str | None, **rules: Any
               ) -> tuple[pd.DataFrame, str]:
    """:func:`reginsight.plan_cleanup` for a report or the explorer, and a note. Its
    bytes need a collector only where one would stop on the storage left (3.x on a
    schema1 manifest); not told which runs, they are the other's, and the note says
    that the stopping one frees nothing."""
    from .._errors import CollectorsDiffer
    from ..analysis._disk import VERSION
    from ..ops._plan import plan_cleanup

    try:
        return plan_cleanup(inv, collector=collector, **rules), ""
    except CollectorsDiffer as exc:
        stops = {n: o for n, o in exc.outcomes.items() if not isinstance(o, pd.DataFrame)}
        runs = [n for n in exc.outcomes if n not in stops]
        if not runs or collector is not None:
            raise
        note = "; ".join(f"{VERSION[n]}'s garbage-collect would stop before deleting "
                         f"anything ({o.reason}) and free nothing" for n, o in stops.items())
        return (plan_cleanup(inv, collector=runs[0], **rules),
                f"bytes freed as {VERSION[runs[0]]}'s garbage-collect frees them; {note}")


def _gc_row(outcome: Any, broken: pd.DataFrame) -> tuple[str, str, str]:
    """(blobs, frees, breaks) of one collector's outcome (a preview, or its stop) and
    the images it breaks."""
    if not isinstance(outcome, pd.DataFrame):
        return "-", "nothing", f"stops before deleting anything: {outcome.reason}"
    return (f"{int((outcome['kind'] != 'revision').sum()):,}", _gc_frees(outcome),
            count(len(broken), "image") if len(broken) else "nothing")


def _gc_frees(outcome: Any) -> str:
    """What one collector's outcome frees: its bytes, or nothing when it stops."""
    if not isinstance(outcome, pd.DataFrame):
        return "nothing"
    return format_bytes(int(outcome["size"].sum()))


def _broken(outcome: Any) -> pd.DataFrame:
    from ..analysis._disk import broken_images

    return broken_images(outcome) if isinstance(outcome, pd.DataFrame) else pd.DataFrame()


def describe_policy(keep_last: int | None, older_than: str | None, protect: str | None,
                    *, unpulled_for: str | None = None) -> str:
    """The cleanup rules in words, as the report's note and card say them;
    ``unpulled_for``: the pull records' rule (``plan_cleanup(unpulled_for=)``)."""
    rules = []
    if keep_last is not None:
        rules.append(f"keep the {keep_last} newest images per repository")
    if older_than:
        rules.append(f"delete only images older than {older_than}")
    if unpulled_for:
        rules.append(f"never an image pulled, pushed or created in the last {unpulled_for}")
    if protect:
        rules.append(f"never tags matching {protect}")
    if keep_last is None and not older_than and not unpulled_for:
        return "no rule given: nothing is deleted"
    return "; ".join(rules) + "; tags on one digest go together"


def cleanup_sections(inv: Inventory, plan: pd.DataFrame, partial: str, top: int
                     ) -> Section:
    """The plan per repository (subtotals) and per digest (the tags on it, what it
    frees alone), each figure the registry's garbage-collect would confirm (no table
    when it deletes nothing). Where the parts do not add up to the total, the note
    says why; where they do, it says so. ``partial``: what the figures leave out."""
    by_digest, by_repository = plan_frees(inv, plan)
    total = int(plan.attrs["reclaimable_bytes"])
    shown = by_digest.head(max(top, 100))
    across = _parts(by_repository, total, "repositories", "A blob that deleted images in "
                    "two repositories share is freed only when both go: it counts in the "
                    "total, in neither repository")
    within = _parts(by_digest, total, "images", "Layers two deleted images share are freed "
                    "only with both")
    tables = [{
        "title": f"Cleanup by repository ({len(by_repository):,})",
        "note": f"Frees {format_bytes(total)} in all after garbage collection; "
        f"a repository's figure is what its deletions alone free{across}.{partial}",
        "columns": [column("repository"), column("images", num=True),
                    column("tags", num=True), column("frees", num=True)],
        "rows": [(r.repository, f"{r.digests:,}", f"{r.tags:,}",
                  "" if pd.isna(r.frees) else format_bytes(int(r.frees)))
                 for r in by_repository.itertuples()]
        + ([("all repositories", f"{by_repository['digests'].sum():,}",
             f"{by_repository['tags'].sum():,}", format_bytes(total))]
           if len(by_repository) else [])}, {
        "title": f"Cleanup candidates ({count(len(by_digest), 'image')}, "
                 f"{count(int(plan['action'].eq('delete').sum()), 'row')} of the plan)",
        "note": "one row per image (digest) to delete, with every tag on it; frees: what "
        f"deleting only that image would free{within}"
        + (f"; the first {len(shown):,} shown" if len(shown) < len(by_digest) else ""),
        "columns": [column("repository"), column("tags"), column("digest", digest=True),
                    column("created"), column("frees", num=True), column("reason")],
        "rows": [(r.repository, r.tags or "(untagged)", r.digest, day(r.created),
                  "" if pd.isna(r.frees) else format_bytes(int(r.frees)), r.reason)
                 for r in shown.itertuples()]}]
    return [("cleanup would free", format_bytes(total))], tables if len(by_digest) else []


def _parts(parts: pd.DataFrame, total: int, what: str, why: str) -> str:
    """How the ``frees`` of the parts relate to the plan's total, said only as it is:
    "; these add up to the total", or "; <why>, so these add up to X, not the total"."""
    if not len(parts):
        return ""
    if parts["frees"].isna().any():
        return f"; computed for the {parts['frees'].notna().sum():,} {what} that free most"
    alone = int(parts["frees"].sum())
    if alone == total:
        return "; these add up to the total"
    return f". {why}, so these add up to {format_bytes(alone)}, not the total"


def command_target(inv: Inventory, registry_url: str | None) -> str:
    """The registry the commands name: ``registry_url`` as the user gave it, else the
    URL the inventory was crawled from; ``URL`` where none is known or it is not the
    reader's (a storage scan, the bundled sample). Never credentials."""
    from ..registry._hosts import redact_text
    from ..registry.protocol import parse_registry_url

    if registry_url is not None:
        return redact_text(registry_url)
    if inv.from_storage or inv.label is not None:
        return "URL"
    try:
        parse_registry_url(inv.registry)
    except InvalidReference:
        return "URL"
    return redact_text(inv.registry)


#: the name the report's plan downloads as, and its commands read
PLAN_FILE = "reginsight-plan.csv"


def cleanup_commands(*, target: str, rules: dict[str, Any], plan: pd.DataFrame,
                     repositories: Sequence[str] | None = None, storage: str | None = None,
                     collector: str | None = None, untagged: str | None = None,
                     plan_file: bool = True, pulls: Sequence[str] = ()
                     ) -> list[tuple[str, str]]:
    """(what it does, the command line) for each ``reginsight cleanup`` that applies the
    report's plans, each a dry run until ``--yes`` is added: the policy (``rules`` as
    :func:`plan_shown` takes them) over ``repositories``, the downloaded plan file, and,
    when the report read the registry's ``storage`` (its root), the untagged manifests
    there (``untagged`` says how many and what they free; None: there are none). From a
    storage, the policy is planned on it again, with the report's ``collector``.
    ``plan_file``: False when the plan could not be written as a file. ``pulls``:
    the flags of the pull records' rule (``_usage.pulls_flags``), when the plan has it."""
    scope = ["--repositories", ",".join(repositories)] if repositories else []
    read = [] if storage is None else ["--storage", redacted(storage)]
    if storage is not None and collector:
        read += ["--collector", collector.rsplit("-", 1)[-1]]
    commands = []
    deletes = bool(plan["action"].eq("delete").any())
    if deletes and (rules["keep_last"] is not None or rules["older_than"] or pulls):
        commands.append(("The same policy, planned again on what the registry holds then"
                         + (" and on the pull records read then" if pulls else ""),
                         shlex.join(["reginsight", "cleanup", target, *policy_flags(rules),
                                     *pulls, *scope, *read])))
    if deletes and plan_file:
        commands.append(("Exactly this plan (download it below); a tag that moved since "
                         "is left alone", shlex.join(["reginsight", "cleanup", target,
                                                      "--plan", PLAN_FILE])))
    if untagged:
        commands.append((f"{untagged[0].upper()}{untagged[1:]} this storage holds, deleted "
                         "through the API (the safe alternative to garbage-collect "
                         "--delete-untagged)",
                         shlex.join(["reginsight", "cleanup", target, "--untagged", *read,
                                     *scope])))
    return commands


def redacted(root: str) -> str:
    """A path as typed, or a URL less any credentials in it."""
    from ..registry._hosts import redact_text

    return redact_text(root) if "://" in root else root


def plan_download(plan: pd.DataFrame) -> dict[str, Any]:
    """The plan as the file ``reginsight cleanup --plan`` reads (CSV, full digests), as a
    ``data:`` link: its file name, URI and rows; or why there is none (a name the
    registry could not hold, from a damaged inventory: no command could apply it)."""
    from .._errors import PlanError
    from ..ops._planfile import plan_csv

    try:
        text = plan_csv(plan)
    except PlanError as exc:
        return {"file": PLAN_FILE, "rows": count(len(plan), "row"), "uri": "",
                "refused": f"No plan file: {exc}"}
    return {"file": PLAN_FILE, "rows": count(len(plan), "row"), "refused": "",
            "uri": "data:text/csv;base64," + base64.b64encode(text.encode()).decode()}


def layer_users(inv: Inventory, digests: list[str], *, most: int = 6) -> dict[str, str]:
    """digest -> the repositories whose tags reach that blob (the ones
    ``layer_sharing`` counts), "a, b, c and 4 more"."""
    pairs = Reach.of(inv).repositories_reaching(digests).astype(
        {"digest": str, "repository": str})
    named = {}
    for digest, part in pairs.groupby("digest"):
        names = sorted(part["repository"])
        extra = f" and {len(names) - most} more" if len(names) > most else ""
        named[str(digest)] = ", ".join(names[:most]) + extra
    return named
