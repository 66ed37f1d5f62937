"""One self-contained HTML report of an Inventory: summary -> template -> file.

A pure function gathers the figures (:func:`report_data`); a Jinja template with
autoescape renders them; plots are embedded as base64 SVG images, drawn at the size
they are shown (so 11 pt in a plot reads as 11 pt on the page), and the cleanup plan
as a CSV download (a ``data:`` link). Nothing is fetched when the file is opened, and
every string from the registry is inert: made printable (no bidi override reorders a
row, no control character or lone surrogate reaches the file) and HTML-escaped by the
template, which marks nothing ``|safe``; the plots label outside text with
``plot_label``.
"""

from __future__ import annotations

import base64
import io
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._errors import InventoryError
from .._policy import SUGGESTED_POLICY, policy_from_text
from .._text import printable
from .._units import count, format_bytes
from .._version import __version__
from ..analysis._reclaim import PartialInventoryWarning
from ..analysis._referrers import storage_by_role
from ..analysis._storage import (
    layer_sharing,
    repositories_without_tags,
    sharing_matrix,
    storage_by_repository,
    storage_summary,
)
from ..inventory._subset import selected
from ..usage._frame import as_pulls
from ._plots import (
    MAX_ANNOTATED,
    plot_image_age,
    plot_layer_sharing,
    plot_pulls,
    plot_sharing_matrix,
    plot_storage,
    plot_storage_by_role,
)
from ._sections import (
    cleanup_commands,
    cleanup_sections,
    column,
    command_target,
    describe_policy,
    disk_sections,
    layer_users,
    plan_download,
    plan_shown,
    supply_chain_sections,
)
from ._usage import PULLS_PLACEHOLDER, pulls_flags, unknown_use, usage_data

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: the page's content width in CSS pixels (the template's ``max-width``): a plot is
#: drawn this wide, or half of it less the gap, and shown at that size
PAGE_PX = 1200
GAP_PX = 24
_WIDE = PAGE_PX / 96  # inches: an SVG's point is 1/72 inch, a CSS pixel 1/96
_HALF = (PAGE_PX - GAP_PX) / 2 / 96
#: the pulls-per-day plot: full width, a bar a day
PULLS_SIZE = (_WIDE, 3.4)

#: plot text at the size it is shown: 11 pt (14.7 px, the page's 14 px text);
#: "small" (legends, bar labels) 9.2 pt, 12 px
READABLE = {"font.size": 11, "axes.titlesize": 12, "legend.fontsize": "small",
            "svg.fonttype": "none"}


def _svg(plot: Callable[..., Any], inv: Inventory | pd.DataFrame, size: tuple[float, float]
         ) -> str:
    """``plot`` of ``inv`` (or of pull records) drawn on a figure of ``size`` inches, as
    a data: URI."""
    import matplotlib.pyplot as plt

    with plt.rc_context(READABLE):
        figure, ax = plt.subplots(figsize=size, layout="constrained")
        try:
            plot(inv, ax=ax)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="svg", metadata={"Date": None})  # reproducible
        finally:
            plt.close(figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figures(inv: Inventory) -> list[dict[str, Any]]:
    """The plots, each sized for its place: full width, or half (two side by side).
    The halves come in pairs, so that no half sits alone in its row."""
    bars = len(storage_by_repository(inv).query("stored_bytes > 0").head(20))
    shared = len(sharing_matrix(inv, top=20))
    small_matrix = shared <= MAX_ANNOTATED // 2
    plots = [("storage by repository", plot_storage, (_WIDE, 1.5 + 0.3 * max(bars, 3)))]
    matrix = ("shared bytes between repositories", plot_sharing_matrix,
              (_HALF, _HALF * 0.92) if small_matrix else (_WIDE, _WIDE * 0.85))
    sharing = ("layer sharing", plot_layer_sharing, (_HALF, _HALF * 0.92 if small_matrix
                                                     else 4.2))
    roles = ("storage by role", plot_storage_by_role,  # a bar a role: as tall as needed
             (_WIDE, 1.4 + 0.4 * max(len(storage_by_role(inv)), 2)) if small_matrix
             else (_HALF, 4.2))
    plots += [sharing, matrix, roles] if small_matrix else [matrix, sharing, roles]
    plots.append(("image size and age", plot_image_age, (_WIDE, 4.6)))
    return [{"title": title, "uri": _svg(plot, inv, size), "wide": size[0] == _WIDE,
             "width": round(size[0] * 96)} for title, plot, size in plots]


def report_data(inv: Inventory, *, top: int = 20, plots: bool = True,
                keep_last: int | None = SUGGESTED_POLICY["keep_last"],
                older_than: str | None = SUGGESTED_POLICY["older_than"],
                protect: str | None = SUGGESTED_POLICY["protect"],
                collector: str | None = None,
                repositories: str | Sequence[str] | None = None,
                registry_url: str | None = None, pulls: pd.DataFrame | None = None,
                unpulled_for: str | None = "90d", pulls_source: str | None = None
                ) -> dict[str, Any]:
    """Everything the report shows, as plain values (strings escaped by the template).

    ``keep_last``, ``older_than``, ``protect``: the cleanup policy the report plans
    (:func:`reginsight.plan_cleanup`'s rules; None leaves a rule out). ``collector``:
    the registry's garbage collector, ``"distribution-2"`` or ``"distribution-3"``
    (:func:`reginsight.gc_preview`; None: each where they differ). ``repositories``:
    only these (names or globs; InventoryError when one is not in ``inv``): every
    table, card and plot covers them, while what a cleanup frees is counted against
    the whole inventory (a blob another repository uses stays), and a storage
    report's disk and garbage-collect figures stay the whole storage's, as the
    registry's collector works on all of it. ``registry_url``: the registry as the
    ``reginsight cleanup`` commands shown should name it (None: the one the inventory
    was crawled from; ``URL`` for a storage scan or the bundled sample).

    ``pulls``: pull records (:func:`reginsight.read_pulls`, or a DataFrame with its
    columns): a "What is used" section (the images nobody used in 30, 90 and 180
    days and what deleting them frees, the most pulled images, pulls per day), and
    the plan gains ``unpulled_for`` (None: not) as ``plan_cleanup`` takes it, all as
    of the inventory's time. ``pulls_source``: the records as the user named them on
    the command line (``reginsight cleanup --pulls SOURCE``), which the commands
    repeat; None: they say PULLS."""
    records = None if pulls is None else as_pulls(pulls)
    pull_rule = ({"pulls": records, "unpulled_for": unpulled_for}
                 if records is not None and unpulled_for else {})
    shown = inv if repositories is None else selected(inv, repositories)
    summary = storage_summary(shown)
    by_repo = storage_by_repository(shown).head(top)
    sharing = layer_sharing(shown)
    shared = sharing[sharing["repositories"] > 1].head(top)
    users = layer_users(shown, shared["digest"].astype(str).tolist())
    rules = policy_from_text(keep_last=keep_last, older_than=older_than, protect=protect)
    with warnings.catch_warnings():  # said in the table's note instead
        warnings.simplefilter("ignore", PartialInventoryWarning)
        plan, gc_note = plan_shown(inv, collector=collector, repositories=repositories,
                                   now=inv.taken_at, **rules, **pull_rule)
    partial = "" if inv.complete else (
        f" An upper bound: the inventory covers {inv.scope or 'the catalog'} with "
        f"{count(len(inv.errors), 'error')}, and blobs shared with what it does not see "
        "look free.")
    partial += f" {gc_note[0].upper()}{gc_note[1:]}." if gc_note else ""
    ratio = summary.attrs["dedup_ratio"]
    cards = [
        ("repositories", f"{summary['repositories']:,}"),
        ("tags", f"{summary['tags']:,}"),
        ("manifests", f"{summary['manifests']:,}"),
        ("stored (what tags reach)", format_bytes(summary["stored_bytes"])),
        ("logical (pull every tag)", format_bytes(summary["logical_bytes"])),
        ("dedup ratio", "-" if pd.isna(ratio) else f"{ratio:.2f}x"),
    ]
    policy = describe_policy(rules["keep_last"], rules["older_than"], rules["protect"],
                             unpulled_for=pull_rule and unpulled_for)
    cleanup_cards, cleanup_tables = cleanup_sections(inv, plan, partial, top)
    target = command_target(inv, registry_url)
    scope = _command_scope(inv, repositories)
    untagged = _untagged_plan(inv, collector, repositories) if inv.from_storage else None
    download = plan_download(plan)
    cleanup = {
        "policy": policy[0].upper() + policy[1:], "freed": cleanup_cards[0][1],
        "deletes": int(plan["action"].eq("delete").sum()),
        "commands": cleanup_commands(
            target=target, rules=rules, repositories=scope, plan=plan,
            storage=inv.registry if inv.from_storage else None, collector=collector,
            untagged=f"the {untagged['what']} ({untagged['freed']} freed after "
                     "garbage-collect)" if untagged and untagged["manifests"] else None,
            plan_file=bool(download["uri"]),
            pulls=pulls_flags(unpulled_for, pulls_source) if pull_rule else ()),
        "download": download, "placeholder": target == "URL",
        "pulls_placeholder": bool(pull_rule) and pulls_source is None,
        "pulls_note": unknown_use(records, unpulled_for, inv.taken_at) if pull_rule else "",
        "untagged": untagged, "tables": cleanup_tables}
    cards += [*cleanup_cards, ("errors", f"{len(inv.errors):,}")]
    tables = [
        {"title": "Repositories by stored bytes", "note": f"the {top} largest shown"
         if len(by_repo) == top else "",
         "columns": [column("repository"), column("tags", num=True),
                     column("stored", num=True), column("exclusive", num=True),
                     column("shared", num=True), column("logical", num=True)],
         "rows": [(r.repository, f"{r.tags:,}", format_bytes(r.stored_bytes),
                   format_bytes(r.exclusive_bytes), format_bytes(r.shared_bytes),
                   format_bytes(r.logical_bytes)) for r in by_repo.itertuples()]},
        *_tagless(shown),
        {"title": f"Top {count(len(shared), 'shared layer')}",
         "note": "used by: the repositories whose tags reach it; bytes saved: size x "
         "(images using it - 1), what one copy per image would cost on top",
         "columns": [column("used by"), column("size", num=True), column("kind"),
                     column("images", num=True), column("bytes saved", num=True),
                     column("digest", digest=True)],
         "rows": [(users.get(str(r.digest), ""), format_bytes(r.size), r.kind,
                   f"{r.manifests:,}", format_bytes(r.bytes_saved), r.digest)
                  for r in shared.itertuples()]},
        {"title": f"Errors ({len(shown.errors):,})", "note": "what could not be read",
         "columns": [column("repository"), column("reference"), column("stage"),
                     column("error")],
         "rows": [tuple(str(v) for v in row) for row in
                  shown.errors.head(100).itertuples(index=False)]},
    ]
    role_cards, role_tables = supply_chain_sections(
        shown, top, stored_bytes=int(summary["stored_bytes"]))
    cards += role_cards
    tables[1:1] = role_tables  # after the repositories
    disk: list[dict[str, Any]] = []
    if inv.from_storage:
        disk_cards, disk = disk_sections(inv, top, collector=collector,
                                         shown=None if repositories is None else shown)
        cards = disk_cards + cards
    figures = []
    if plots and (len(shown.tags) or len(shown.manifests)):  # empty: no blank plots
        figures = _figures(shown)
    usage = None
    if records is not None:
        usage = usage_data(inv, shown, records, collector=collector)
        frame = usage.pop("pulls")
        usage["plot"] = {"uri": _svg(plot_pulls, frame, PULLS_SIZE),
                         "width": round(PULLS_SIZE[0] * 96)} if plots else None
    name = inv.label or inv.registry
    return {"registry": name, "sample": inv.label is not None,
            "taken_at": f"{inv.taken_at:%Y-%m-%d %H:%M UTC}",
            "source": "storage read" if inv.from_storage else "crawled",
            "version": __version__, "banners": _banners(inv, shown, summary, repositories),
            "cards": cards, "cleanup": cleanup, "usage": usage, "disk": disk,
            "plots": figures, "pulls_placeholder": PULLS_PLACEHOLDER,
            "page": PAGE_PX, "gap": GAP_PX, "tables": tables}


def _command_scope(inv: Inventory, repositories: str | Sequence[str] | None
                   ) -> list[str] | None:
    """The ``--repositories`` of the commands: those chosen, or those the inventory
    was crawled with (its scope, as the command line records it)."""
    from ..inventory._selection import filter_of_scope

    if repositories is not None:
        return [repositories] if isinstance(repositories, str) else list(repositories)
    wanted = filter_of_scope(inv.scope)
    if wanted is None:
        return None
    # a regex scope (the Python API) has no flag: the reader names the repositories
    return ["NAMES"] if any(isinstance(w, re.Pattern) for w in wanted) else list(wanted)


def _untagged_plan(inv: Inventory, collector: str | None,
                   repositories: str | Sequence[str] | None) -> dict[str, Any]:
    """The untagged manifests a storage scan found, as ``cleanup --untagged`` deletes
    them: how many, and what garbage-collect then frees."""
    try:
        plan, note = plan_shown(inv, collector=collector, untagged=True,
                                repositories=repositories)
    except InventoryError as exc:  # the storage cannot be modelled: said, not guessed
        return {"manifests": 0, "note": f"Untagged manifests: {exc}"}
    manifests = int((plan["action"].eq("delete") & plan["tag"].isna()).sum())
    return {"manifests": manifests, "what": count(manifests, "untagged manifest"),
            "freed": format_bytes(plan.attrs["reclaimable_bytes"]),
            "note": note and f"Untagged manifests: {note}."}


def _banners(inv: Inventory, shown: Inventory, summary: pd.Series,
             repositories: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """What must not go unnoticed, said above everything else."""
    banners: list[tuple[str, str]] = []  # (kind: error/info/sample, text)
    if inv.label is not None:
        banners.append(("sample", f"This is {inv.label}: a real Distribution registry, "
                        "crawled once and shipped with reginsight so that everything can "
                        "be tried. It is not your registry. For yours: reginsight report "
                        "URL (a registry), DIRECTORY (a saved inventory) or STORAGE_ROOT "
                        "(the registry's storage)."))
    failed = shown.failed_reads()
    if failed is not None:
        number, where, first = failed
        banners.append(("error",
            f"{number}: the figures below leave out what could not be read (the first, "
            f"{where}, {first['stage']}: {first['error']}). See Errors at the end."))
    if repositories is not None:
        chosen = ", ".join(_command_scope(inv, repositories) or ())
        with_tags = count(shown.tags["repository"].nunique(), "repository")
        banners.append(("info", f"Only {chosen} shown ({with_tags} with tags). What a "
            "cleanup frees counts what the other repositories still use"
            + (" and the disk and garbage-collect figures are the whole storage's, as the "
               "registry's collector works on all of it." if inv.from_storage else ".")))
    if inv.scope is not None:
        banners.append(("info", f"Only part of the registry was read ({inv.scope}): "
                        "what garbage collection frees is an upper bound."))
    if not inv.from_storage:
        banners.append(("info", "Read through the registry's API, this report sees what "
                        "tags reach and the referrers the registry lists. It cannot see "
                        "the untagged manifests a moved tag left behind, the blobs of "
                        "deleted manifests, or abandoned uploads, which all take disk "
                        "until garbage collection. To see them, report on the registry's "
                        "storage: reginsight report STORAGE_ROOT (the folder holding "
                        "docker/registry/v2, or its s3:// gs:// az:// URL)."))
    if not summary["tags"] and not len(shown.manifests):
        banners.append(("info", "This inventory holds no tags and no manifests: the "
                        "registry is empty, or the crawl saw none of it."))
    return banners


def _tagless(inv: Inventory) -> list[dict[str, Any]]:
    """Repositories that hold no tag: they would vanish from every tag-based table."""
    tagless = repositories_without_tags(inv)
    if tagless.empty:
        return []
    return [{"title": f"Repositories without tags ({len(tagless):,})",
             "note": "no tag points into them; untagged manifests (left behind by moved "
             "tags, or referrers) still hold storage until deleted and garbage-collected",
             "columns": [column("repository"), column("untagged manifests", num=True)],
             "rows": [(r.repository, f"{r.untagged_manifests:,}")
                      for r in tagless.itertuples()]}]


def render_report(inv: Inventory, **options: Any) -> str:
    """The report as one HTML string (options: :func:`report_data`'s)."""
    import jinja2
    import markupsafe

    # finalize runs on every {{ value }} before autoescape: a name, tag or error holding
    # a bidi override or a control character shows it as an escape instead of acting
    # (a macro's output is the template's own markup, already made so)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reginsight.present", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined,
        finalize=lambda value: value if isinstance(value, markupsafe.Markup)
        else printable(value))
    environment.globals["zip"] = zip
    return environment.get_template("report.html.j2").render(**report_data(inv, **options))


def export_report(inv: Inventory, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the report to ``path`` (one self-contained HTML file) and return the path.

    Options as :func:`report_data`: ``top`` rows per table, ``plots``, the cleanup
    policy ``keep_last``, ``older_than``, ``protect`` (None: no such rule), the
    ``collector`` a storage report models, ``repositories`` to report on only some,
    the ``registry_url`` its cleanup commands name, and ``pulls`` (pull records:
    what is used, and the plan's ``unpulled_for`` rule), ``pulls_source`` (how the
    commands name them)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "svg") and "inline" not in \
            matplotlib.get_backend():
        matplotlib.use("Agg")  # no window for a file; inline backends are left alone
    target = Path(path)
    target.write_text(render_report(inv, **options), encoding="utf-8")
    return target
