"""One self-contained HTML report of an Inventory: summary -> template -> file.

A pure function gathers the figures (:func:`report_data`); a Jinja template with
autoescape renders them; plots are embedded as base64 SVG images. Nothing is
fetched when the file is opened, and every string from the registry is inert: made
printable (no bidi override reorders a row, no control character or lone surrogate
reaches the file) and HTML-escaped by the template, which marks nothing ``|safe``;
the plots label outside text with ``plot_label``.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._policy import SUGGESTED_POLICY
from .._text import printable
from .._units import format_bytes
from .._version import __version__
from ..analysis._reclaim import PartialInventoryWarning
from ..analysis._storage import (
    layer_sharing,
    repositories_without_tags,
    storage_by_repository,
    storage_summary,
)
from ._plots import (
    plot_image_age,
    plot_layer_sharing,
    plot_sharing_matrix,
    plot_storage,
    plot_storage_by_role,
)
from ._sections import (
    cleanup_sections,
    column,
    describe_policy,
    disk_sections,
    layer_users,
    plan_shown,
    supply_chain_sections,
)

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def _svg(plot: Any, inv: Inventory) -> str:
    import matplotlib.pyplot as plt

    with plt.rc_context(READABLE):
        ax = plot(inv)
        buffer = io.BytesIO()
        try:
            ax.figure.savefig(buffer, format="svg")
        finally:
            plt.close(ax.figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


#: the report's plots are shown at about their own size: 12 pt reads like the text
READABLE = {"font.size": 12, "axes.titlesize": 13, "svg.fonttype": "none"}


def report_data(inv: Inventory, *, top: int = 20, plots: bool = True,
                keep_last: int | None = SUGGESTED_POLICY["keep_last"],
                older_than: str | None = SUGGESTED_POLICY["older_than"],
                protect: str | None = SUGGESTED_POLICY["protect"],
                collector: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain values (strings escaped by the template).

    ``keep_last``, ``older_than``, ``protect``: the cleanup policy the report plans
    (:func:`reginsight.plan_cleanup`'s rules; None leaves a rule out). ``collector``:
    the registry's garbage collector, ``"distribution-2"`` or ``"distribution-3"``
    (:func:`reginsight.gc_preview`; None: each where they differ)."""
    summary = storage_summary(inv)
    by_repo = storage_by_repository(inv).head(top)
    sharing = layer_sharing(inv)
    shared = sharing[sharing["repositories"] > 1].head(top)
    users = layer_users(inv, shared["digest"].astype(str).tolist())
    with warnings.catch_warnings():  # said in the table's note instead
        warnings.simplefilter("ignore", PartialInventoryWarning)
        plan, gc_note = plan_shown(inv, collector=collector, keep_last=keep_last,
                                   older_than=older_than or None, protect=protect or None,
                                   now=inv.taken_at)
    partial = "" if inv.complete else (
        f" An upper bound: the inventory covers {inv.scope or 'the catalog'} with "
        f"{len(inv.errors)} errors, and blobs shared with what it does not see look free.")
    partial += f" {gc_note[0].upper()}{gc_note[1:]}." if gc_note else ""
    ratio = summary.attrs["dedup_ratio"]
    cards = [
        ("repositories", f"{summary['repositories']:,}"),
        ("tags", f"{summary['tags']:,}"),
        ("manifests", f"{summary['manifests']:,}"),
        ("stored", format_bytes(summary["stored_bytes"])),
        ("logical (pull every tag)", format_bytes(summary["logical_bytes"])),
        ("dedup ratio", "-" if pd.isna(ratio) else f"{ratio:.2f}x"),
    ]
    cleanup_cards, cleanup_tables = cleanup_sections(
        inv, plan, describe_policy(keep_last, older_than, protect), partial, top)
    cards += [*cleanup_cards, ("errors", f"{len(inv.errors):,}")]
    tables = [
        {"title": "Repositories by stored bytes", "note": f"the {top} largest shown"
         if len(by_repo) == top else "",
         "columns": [column("repository"), column("tags", num=True),
                     column("stored", num=True), column("exclusive", num=True),
                     column("shared", num=True), column("logical", num=True)],
         "rows": [(r.repository, r.tags, format_bytes(r.stored_bytes),
                   format_bytes(r.exclusive_bytes), format_bytes(r.shared_bytes),
                   format_bytes(r.logical_bytes)) for r in by_repo.itertuples()]},
        *_tagless(inv),
        {"title": f"Top {len(shared)} shared layers", "note": "used by: the repositories "
         "whose tags reach it; bytes saved: size x (images using it - 1), what one copy "
         "per image would cost on top",
         "columns": [column("used by"), column("size", num=True), column("kind"),
                     column("images", num=True), column("bytes saved", num=True),
                     column("digest", code=True)],
         "rows": [(users.get(str(r.digest), ""), format_bytes(r.size), r.kind, r.manifests,
                   format_bytes(r.bytes_saved), r.digest[:19]) for r in shared.itertuples()]},
        *cleanup_tables,
        {"title": f"Errors ({len(inv.errors)})", "note": "what could not be read",
         "columns": [column("repository"), column("reference"), column("stage"),
                     column("error")],
         "rows": [tuple(str(v) for v in row) for row in
                  inv.errors.head(100).itertuples(index=False)]},
    ]
    role_cards, role_tables = supply_chain_sections(inv, top)
    cards += role_cards
    tables[1:1] = role_tables  # after the repositories
    if inv.from_storage:
        disk_cards, disk_tables = disk_sections(inv, top, collector=collector)
        cards = disk_cards + cards
        tables = disk_tables + tables
    figures = []
    if plots and (len(inv.tags) or len(inv.manifests)):  # an empty registry: no blank plots
        figures = [("storage by repository", _svg(plot_storage, inv)),
                   ("storage by role", _svg(plot_storage_by_role, inv)),
                   ("layer sharing", _svg(plot_layer_sharing, inv)),
                   ("shared bytes between repositories", _svg(plot_sharing_matrix, inv)),
                   ("image size and age", _svg(plot_image_age, inv))]
    return {"registry": inv.registry, "taken_at": f"{inv.taken_at:%Y-%m-%d %H:%M UTC}",
            "source": "storage read" if inv.from_storage else "crawled",
            "version": __version__, "banners": _banners(inv, summary), "cards": cards,
            "tables": tables, "plots": figures}


def _banners(inv: Inventory, summary: pd.Series) -> list[tuple[str, str]]:
    """What must not go unnoticed, said above everything else."""
    banners: list[tuple[str, str]] = []  # (kind: error/info, text)
    failed = inv.failed_reads()
    if failed is not None:
        count, where, first = failed
        banners.append(("error",
            f"{count}: the figures below leave out what could not be read (the first, {where}, "
            f"{first['stage']}: {first['error']}). See Errors at the end."))
    if inv.scope is not None:
        banners.append(("info", f"Only part of the registry was read ({inv.scope}): "
                        "what garbage collection frees is an upper bound."))
    if not summary["tags"] and not len(inv.manifests):
        banners.append(("info", "This inventory holds no tags and no manifests: the "
                        "registry is empty, or the crawl saw none of it."))
    return banners


def _tagless(inv: Inventory) -> list[dict[str, Any]]:
    """Repositories that hold no tag: they would vanish from every tag-based table."""
    tagless = repositories_without_tags(inv)
    if tagless.empty:
        return []
    return [{"title": f"Repositories without tags ({len(tagless)})",
             "note": "no tag points into them; untagged manifests (left behind by moved "
             "tags, or referrers) still hold storage until deleted and garbage-collected",
             "columns": [column("repository"), column("untagged manifests", num=True)],
             "rows": [(r.repository, f"{r.untagged_manifests:,}")
                      for r in tagless.itertuples()]}]


def render_report(inv: Inventory, **options: Any) -> str:
    """The report as one HTML string (options: :func:`report_data`'s)."""
    import jinja2

    # finalize runs on every {{ value }} before autoescape: a name, tag or error holding
    # a bidi override or a control character shows it as an escape instead of acting
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reginsight.present", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, finalize=printable)
    environment.globals["zip"] = zip
    return environment.get_template("report.html.j2").render(**report_data(inv, **options))


def export_report(inv: Inventory, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the report to ``path`` (one self-contained HTML file) and return the path.

    Options as :func:`report_data`: ``top`` rows per table, ``plots``, the cleanup
    policy ``keep_last``, ``older_than``, ``protect`` (None: no such rule), and the
    ``collector`` a storage report models."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "svg") and "inline" not in \
            matplotlib.get_backend():
        matplotlib.use("Agg")  # no window for a file; inline backends are left alone
    target = Path(path)
    target.write_text(render_report(inv, **options), encoding="utf-8")
    return target
